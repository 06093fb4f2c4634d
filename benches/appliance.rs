//! The whole appliance, measured: alarm path latency through the assembled unit, the idle cost
//! of the real `vigil run` binary, and the size of that binary. Figures are printed, never
//! asserted (the machines that run this are shared and noisy).
//!
//! ```text
//! scripts/bench-appliance.sh                         # shipped binary size, then all of this
//! cargo bench --bench appliance                      # all three, 1,000 alarms, 60 s idle
//! cargo bench --bench appliance -- --alarms 200 --idle-secs 20 --fast-modem
//! cargo bench --bench appliance -- --only latency    # or idle, size
//! ```
//!
//! **Latency.** A simulated site (SCAIP and DC-09 receivers, modem on a pty, radio on UDP
//! loopback) and the unit built by `runtime::appliance::assemble` from its configuration, run
//! in this process on a two-worker tokio runtime like `vigil run`. The SCAIP route's proxy
//! address points at a relay on loopback that timestamps each datagram as it arrives and
//! forwards it to the receiver (answers go back the same way; the receiver's `<mrs>` goes to
//! the unit's registered contact directly). For each alarm the pendant's frame is sealed, the
//! clock is read right before `send_to` on the pendant's socket (t0), and t1 is the arrival at
//! the relay of the first SCAIP `MESSAGE` carrying an alarm `<mrq>`: radio worker, frame gate,
//! core, journal commits (SQLite WAL, synchronous=FULL, on disk), route task and SIP encoding
//! are all inside t1 − t0. Alarms from one pendant merge while one is open, so each alarm waits
//! for its acknowledgement (`Record::Acknowledged` on the unit's event stream) before the next
//! frame goes out; the pendant's radio acks are not awaited (the base's duty-cycle budget
//! withholds most of them after the first few dozen alarms, which is right on air and beside
//! the point here), but those that come are timestamped as they reach the pendant's socket.
//!
//! **Idle.** The real release binary, `vigil run --config <site>/config.toml --no-audio`
//! (real modem timing unless `--fast-modem`), against the same simulators. After a warm-up the
//! bench reads `/proc/PID/stat` (utime + stime) and the voluntary and non-voluntary context
//! switches of every thread (`/proc/PID/task/*/status`) before and after the window, and
//! VmHWM/VmRSS at its end. Context switches of a sleeping process are its wakeups.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use vigil::config::Transport as RouteConfig;
use vigil::core::{Output, Record};
use vigil::radio::driver::sim::SimPeer;
use vigil::radio::frame::{Event as Frame, FrameCipher, PendantKey};
use vigil::runtime::appliance::{assemble, AudioChoice, Options};
use vigil::runtime::simsite::{SimSite, SiteOptions, PENDANTS};
use vigil::runtime::Event;

struct Args {
    alarms: usize,
    idle: Duration,
    warmup: Duration,
    fast_modem: bool,
    only: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        alarms: 1000,
        idle: Duration::from_secs(60),
        warmup: Duration::from_secs(10),
        fast_modem: false,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--alarms" => a.alarms = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.alarms),
            "--idle-secs" => {
                if let Some(s) = it.next().and_then(|v| v.parse().ok()) {
                    a.idle = Duration::from_secs(s);
                }
            }
            "--warmup-secs" => {
                if let Some(s) = it.next().and_then(|v| v.parse().ok()) {
                    a.warmup = Duration::from_secs(s);
                }
            }
            "--fast-modem" => a.fast_modem = true,
            "--only" => a.only = it.next(),
            // `cargo bench` passes `--bench`; filters and other harness flags mean nothing here.
            _ => {}
        }
    }
    a
}

fn main() {
    let args = args();
    let wants = |part: &str| args.only.as_deref().is_none_or(|o| o == part);
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_vigil"));
    println!("vigil appliance bench — binary {}", exe.display());
    if wants("size") {
        size(&exe);
    }
    if wants("latency") {
        if let Err(e) = latency(args.alarms) {
            println!("latency: FAILED: {e}");
        }
    }
    if wants("idle") {
        if let Err(e) = idle(&exe, args.idle, args.warmup, args.fast_modem) {
            println!("idle: FAILED: {e}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (c) size

fn size(exe: &Path) {
    match std::fs::metadata(exe) {
        Ok(m) => println!(
            "(c) binary size (bench build, dev-dependency features unified in): {} bytes = {:.2} MB ({:.2} MiB)   target ≤ 10 MB",
            m.len(),
            m.len() as f64 / 1e6,
            m.len() as f64 / (1024.0 * 1024.0)
        ),
        Err(e) => println!("(c) binary size: {}: {e}", exe.display()),
    }
}

// ---------------------------------------------------------------------------------------------
// (a) latency

/// A UDP relay between the unit and the SCAIP receiver that timestamps what the unit sends.
struct Relay {
    addr: SocketAddr,
    arrivals: std_mpsc::Receiver<(Instant, String)>,
}

fn relay(upstream: SocketAddr) -> std::io::Result<Relay> {
    let front = UdpSocket::bind("127.0.0.1:0")?;
    let back = UdpSocket::bind("127.0.0.1:0")?;
    back.connect(upstream)?;
    let addr = front.local_addr()?;
    let (tx, arrivals) = std_mpsc::channel();
    let unit: std::sync::Arc<std::sync::Mutex<Option<SocketAddr>>> = Default::default();
    {
        let (front, back, unit) = (front.try_clone()?, back.try_clone()?, unit.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = front.recv_from(&mut buf) {
                let at = Instant::now();
                let d = buf.get(..n).unwrap_or_default();
                if d.starts_with(b"MESSAGE ") {
                    let _ = tx.send((at, String::from_utf8_lossy(d).into_owned()));
                }
                *unit.lock().unwrap_or_else(|e| e.into_inner()) = Some(from);
                let _ = back.send(d);
            }
        });
    }
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = back.recv(&mut buf) {
            let to = *unit.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(to) = to {
                let _ = front.send_to(buf.get(..n).unwrap_or_default(), to);
            }
        }
    });
    Ok(Relay { addr, arrivals })
}

struct Stats {
    sorted: Vec<Duration>,
}

impl Stats {
    fn new(mut v: Vec<Duration>) -> Stats {
        v.sort();
        Stats { sorted: v }
    }
    /// Nearest-rank percentile.
    fn pct(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted
            .get(rank.clamp(1, self.sorted.len()) - 1)
            .copied()
            .unwrap_or_default()
    }
    fn max(&self) -> Duration {
        self.sorted.last().copied().unwrap_or_default()
    }
    fn line(&self, what: &str) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "{what:<44} n={:<5} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            self.sorted.len(),
            ms(self.pct(50.0)),
            ms(self.pct(99.0)),
            ms(self.max())
        )
    }
}

fn latency(alarms: usize) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(latency_run(alarms))
}

async fn latency_run(alarms: usize) -> Result<(), String> {
    // On disk (not tmpfs), so the journal's fsyncs cost what they cost.
    let dir = tempfile::Builder::new()
        .prefix("vigil-bench-")
        .tempdir_in(std::env::temp_dir())
        .map_err(|e| e.to_string())?;
    let site = SimSite::start(dir.path(), SiteOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let relay = relay(site.scaip.addr()).map_err(|e| e.to_string())?;
    let mut config = site.config.clone();
    for r in &mut config.routes {
        if let RouteConfig::Scaip(s) = &mut r.transport {
            s.proxy = relay.addr.to_string();
        }
    }
    let built = assemble(
        &config,
        Options {
            audio: AudioChoice::Mute,
            modem_timing: vigil::modem::Timing::real(),
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut unit = built.unit;
    let mut events = unit.events();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(unit.run(async {
        let _ = stopped.await;
    }));
    // Let the SCAIP route register before the first alarm, as a unit in service has.
    let deadline = Instant::now() + Duration::from_secs(10);
    while site.scaip.registrations().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (id, _, _, key) = PENDANTS[0];
    let key = PendantKey::from_hex(key).map_err(|e| e.to_string())?;
    let cipher = FrameCipher::new(&key);
    let device = vigil::core::DeviceId(id);
    let peer = std::sync::Arc::new(SimPeer::new(site.radio, -68).map_err(|e| e.to_string())?);
    // The base's radio acknowledgements, timestamped as they reach the pendant.
    let (ack_tx, acks) = std_mpsc::channel::<(Instant, u32)>();
    {
        let (peer, cipher) = (peer.clone(), FrameCipher::new(&key));
        std::thread::spawn(move || loop {
            match peer.receive(Duration::from_secs(3600)) {
                Ok(Some(bytes)) => {
                    let at = Instant::now();
                    if let Ok(counter) = vigil::radio::frame::Frame::new_checked(&bytes[..])
                        .and_then(|f| cipher.open_ack(&f))
                    {
                        if ack_tx.send((at, counter)).is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => {}
                Err(_) => return,
            }
        });
    }
    let mut sent_at = Vec::with_capacity(alarms);

    let mut to_wire = Vec::with_capacity(alarms);
    let mut to_deliver = Vec::with_capacity(alarms);
    let mut to_ack = Vec::with_capacity(alarms);
    let mut not_scaip = 0usize;
    let started = Instant::now();
    println!("(a) alarm path latency: {alarms} alarms, pendant {device}, SCAIP route via a timestamping relay");
    for i in 0..alarms {
        let counter = u32::try_from(i + 1).map_err(|e| e.to_string())?;
        let frame = cipher.seal_event(device, counter, Frame::Help);
        // Anything left from the previous alarm (heartbeats, resends) is not this alarm's.
        while relay.arrivals.try_recv().is_ok() {}
        let t0 = Instant::now();
        peer.send(frame.as_bytes()).map_err(|e| e.to_string())?;
        sent_at.push(t0);
        let mut delivered = None;
        let acked = loop {
            let e = tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .map_err(|_| format!("alarm {i}: no acknowledgement within 30 s"))?
                .ok_or("the unit stopped")?;
            match e {
                Event::Output(_, Output::Deliver(_)) if delivered.is_none() => {
                    delivered = Some(Instant::now());
                }
                Event::Output(_, Output::Persist(Record::Acknowledged { route, .. })) => {
                    if route.0 != 0 {
                        not_scaip += 1;
                    }
                    break Instant::now();
                }
                _ => {}
            }
        };
        let wire = relay
            .arrivals
            .try_iter()
            .find(|(_, m)| m.contains("<mrq>") && !m.contains("<mty>PI</mty>"))
            .map(|(at, _)| at);
        match wire {
            Some(at) => to_wire.push(at.saturating_duration_since(t0)),
            None => {
                return Err(format!(
                    "alarm {i}: acknowledged without a SCAIP MESSAGE seen"
                ))
            }
        }
        if let Some(d) = delivered {
            to_deliver.push(d.saturating_duration_since(t0));
        }
        to_ack.push(acked.saturating_duration_since(t0));
    }
    let elapsed = started.elapsed();
    // Radio acks may come after the centre's acknowledgement; match them by counter at the end.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let to_radio_ack: Vec<Duration> = acks
        .try_iter()
        .filter_map(|(at, counter)| {
            let t0 = sent_at.get(usize::try_from(counter).ok()?.checked_sub(1)?)?;
            Some(at.saturating_duration_since(*t0))
        })
        .collect();
    let wire = Stats::new(to_wire);
    println!(
        "    {}   target p99 ≤ 20 ms",
        wire.line("frame sent → SCAIP MESSAGE on the wire")
    );
    println!(
        "    {}",
        Stats::new(to_deliver).line("frame sent → Deliver carried out (≈, event)")
    );
    println!(
        "    {}",
        Stats::new(to_ack).line("frame sent → acknowledged (snu=0) in core")
    );
    println!(
        "    {}   (the rest withheld by the 0.1 % duty cycle)",
        Stats::new(to_radio_ack).line("frame sent → radio ack heard by the pendant")
    );
    println!(
        "    {alarms} alarms in {:.1} s; {not_scaip} acknowledged on a route other than SCAIP; {} SCAIP messages received",
        elapsed.as_secs_f64(),
        site.scaip.received().len()
    );
    let _ = stop.send(());
    let _ = task.await;
    drop(built.parts);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// (b) idle

#[derive(Default)]
struct Sample {
    ticks: u64,
    switches: BTreeMap<String, (u64, u64)>,
    threads: usize,
    hwm_kb: u64,
    rss_kb: u64,
}

fn status_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn sample(pid: u32) -> Result<Sample, String> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let stat = std::fs::read_to_string(proc_dir.join("stat")).map_err(|e| e.to_string())?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let mut s = Sample {
        ticks: num(11) + num(12),
        ..Sample::default()
    };
    let status = std::fs::read_to_string(proc_dir.join("status")).map_err(|e| e.to_string())?;
    s.hwm_kb = status_field(&status, "VmHWM:").unwrap_or(0);
    s.rss_kb = status_field(&status, "VmRSS:").unwrap_or(0);
    let tasks = std::fs::read_dir(proc_dir.join("task")).map_err(|e| e.to_string())?;
    for t in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let key = format!("{} ({})", comm.trim(), t.file_name().to_string_lossy());
        let v = status_field(&text, "voluntary_ctxt_switches:").unwrap_or(0);
        let n = status_field(&text, "nonvoluntary_ctxt_switches:").unwrap_or(0);
        s.switches.insert(key, (v, n));
        s.threads += 1;
    }
    Ok(s)
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        // SIGTERM for a clean stop, then make sure.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn idle(exe: &Path, window: Duration, warmup: Duration, fast_modem: bool) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let dir = tempfile::Builder::new()
        .prefix("vigil-idle-")
        .tempdir_in(std::env::temp_dir())
        .map_err(|e| e.to_string())?;
    let site = rt
        .block_on(SimSite::start(dir.path(), SiteOptions::default()))
        .map_err(|e| e.to_string())?;
    let log = std::fs::File::create(dir.path().join("vigil.log")).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .arg("--config")
        .arg(&site.config_path)
        .arg("--no-audio");
    if fast_modem {
        cmd.arg("--fast-modem");
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    let child = Running(child);
    let pid = child.0.id();
    println!(
        "(b) idle cost: `vigil run --config <site>/config.toml --no-audio{}` (pid {pid}), {} s warm-up, {} s window",
        if fast_modem { " --fast-modem" } else { "" },
        warmup.as_secs(),
        window.as_secs()
    );
    std::thread::sleep(warmup);
    let before = sample(pid)?;
    let t = Instant::now();
    std::thread::sleep(window);
    let after = sample(pid)?;
    let secs = t.elapsed().as_secs_f64();
    let hz = clock_ticks() as f64;
    let cpu = after.ticks.saturating_sub(before.ticks) as f64 / hz;
    let mut total = 0u64;
    let mut per_thread = Vec::new();
    for (name, (v, n)) in &after.switches {
        let (v0, n0) = before.switches.get(name).copied().unwrap_or((0, 0));
        let d = (v + n).saturating_sub(v0 + n0);
        total += d;
        per_thread.push((d, name.clone()));
    }
    per_thread.sort_by(|a, b| b.cmp(a));
    println!(
        "    CPU time        {:.3} s over {:.0} s ({:.3} %)",
        cpu,
        secs,
        100.0 * cpu / secs
    );
    println!(
        "    wakeups         {:.2} /s ({} context switches, {} threads)   target ≤ 1 /s",
        total as f64 / secs,
        total,
        after.threads
    );
    for (d, name) in per_thread.iter().filter(|(d, _)| *d > 0) {
        println!("        {:>8.2} /s  {name}", *d as f64 / secs);
    }
    println!(
        "    RSS             peak (VmHWM) {:.1} MiB, steady (VmRSS) {:.1} MiB   target ≤ 16 MB",
        after.hwm_kb as f64 / 1024.0,
        after.rss_kb as f64 / 1024.0
    );
    drop(child);
    if let Ok(text) = std::fs::read_to_string(dir.path().join("vigil.log")) {
        let lines: Vec<&str> = text.lines().collect();
        println!("    last lines of the unit's log ({} lines):", lines.len());
        for l in lines.iter().skip(lines.len().saturating_sub(8)) {
            println!("      | {l}");
        }
    }
    drop(site);
    Ok(())
}
