//! Shared pieces of the end-to-end tests and the crash harness: a simulated site with the
//! unit assembled in-process, pendants that keep retransmitting until acknowledged, waiting
//! on the unit's events, and reading the journal independently of the code under test.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use vigil::config::Config;
use vigil::core::{DeviceId, Input, Output, Record};
use vigil::journal::Journal;
use vigil::radio::driver::sim::SimPeer;
use vigil::radio::frame::{Event as Frame, FrameCipher, PendantKey};
use vigil::runtime::appliance::{assemble, AudioChoice, Options, Parts};
use vigil::runtime::simsite::{SimSite, SiteOptions, PENDANTS};
use vigil::runtime::Event;

/// Milliseconds since the epoch, as the unit's `Timestamp` counts them.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One press of a pendant, as the pendant saw it.
#[derive(Clone, Debug)]
pub struct Press {
    /// Which pendant of the site.
    pub index: usize,
    /// Its device id.
    pub device: DeviceId,
    /// The frame's counter.
    pub counter: u32,
    /// When the first transmission left (ms since the epoch).
    pub sent_at: u64,
    /// When the acknowledgement came back, if it did.
    pub acked_at: Option<u64>,
    /// Transmissions made.
    pub transmissions: u32,
}

/// Sends `event` as frame `counter` of pendant `index`, retransmitting the very same frame
/// (as a real pendant does, for its nonce is bound to the counter) until the base
/// acknowledges it or `give_up` passes. Transmission errors (the base's port closed while
/// the unit restarts) count as unanswered transmissions. Blocking.
pub fn press_until_acked(
    radio: SocketAddr,
    index: usize,
    counter: u32,
    event: Frame,
    give_up: Duration,
) -> Press {
    let (id, _, _, key) = PENDANTS[index];
    let device = DeviceId(id);
    let cipher = FrameCipher::new(&PendantKey::from_hex(key).expect("site key"));
    let frame = cipher.seal_event(device, counter, event);
    let peer = SimPeer::new(radio, -70).expect("pendant socket");
    let sent_at = now_ms();
    let deadline = Instant::now() + give_up;
    let mut press = Press {
        index,
        device,
        counter,
        sent_at,
        acked_at: None,
        transmissions: 0,
    };
    while Instant::now() < deadline {
        press.transmissions += 1;
        match vigil::radio::pendant::send_until_acked(
            &peer,
            frame.as_bytes(),
            &cipher,
            device,
            counter,
            0,
            Duration::from_millis(500),
        ) {
            Ok(Some(_)) => {
                press.acked_at = Some(now_ms());
                return press;
            }
            Ok(None) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    press
}

/// Sends one frame without waiting for an acknowledgement (a heartbeat).
pub fn send_once(radio: SocketAddr, index: usize, counter: u32, event: Frame) {
    let (id, _, _, key) = PENDANTS[index];
    let cipher = FrameCipher::new(&PendantKey::from_hex(key).expect("site key"));
    let frame = cipher.seal_event(DeviceId(id), counter, event);
    SimPeer::new(radio, -70)
        .expect("pendant socket")
        .send(frame.as_bytes())
        .expect("send");
}

/// A press on a blocking thread.
pub fn press(radio: SocketAddr, index: usize, counter: u32, event: Frame) -> JoinHandle<Press> {
    tokio::task::spawn_blocking(move || {
        press_until_acked(radio, index, counter, event, Duration::from_secs(20))
    })
}

/// A site with the unit assembled in-process and running.
pub struct Running {
    /// The simulators.
    pub site: SimSite,
    /// Every input and output of the unit.
    pub events: mpsc::UnboundedReceiver<Event>,
    /// Where adapters send inputs (as the GPIO adapter does).
    pub inputs: mpsc::Sender<Input>,
    /// Everything seen so far by [`Running::until`].
    pub seen: Vec<Event>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Journal>>,
    parts: Option<Parts>,
    _dir: tempfile::TempDir,
}

/// Starts the simulators, lets `tweak` adjust the loaded configuration (values the file
/// format would refuse, such as supervision times shorter than its minimum), assembles the
/// unit and runs it.
pub async fn start(
    options: SiteOptions,
    audio: impl FnOnce(&Path) -> AudioChoice,
    tweak: impl FnOnce(&mut Config),
) -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut site = SimSite::start(dir.path(), options).await.expect("site");
    tweak(&mut site.config);
    let audio = audio(dir.path());
    let built = assemble(
        &site.config,
        Options {
            audio,
            modem_timing: vigil::modem::Timing::fast(),
        },
    )
    .await
    .expect("assemble");
    let mut unit = built.unit;
    let events = unit.events();
    let inputs = unit.inputs();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(unit.run(async {
        let _ = stopped.await;
    }));
    Running {
        site,
        events,
        inputs,
        seen: Vec::new(),
        stop: Some(stop),
        task: Some(task),
        parts: Some(built.parts),
        _dir: dir,
    }
}

impl Running {
    /// Collects events until `done` is true of one of them; panics with what was seen if
    /// `limit` passes first. Returns the index in [`Running::seen`] of the matching event.
    pub async fn until(
        &mut self,
        what: &str,
        limit: Duration,
        mut done: impl FnMut(&Event) -> bool,
    ) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let e = tokio::select! {
                e = self.events.recv() => e.expect("unit stopped"),
                _ = tokio::time::sleep_until(deadline) => {
                    panic!("{what}: not within {limit:?}; seen:\n{:#?}", self.seen)
                }
            };
            let hit = done(&e);
            self.seen.push(e);
            if hit {
                return self.seen.len() - 1;
            }
        }
    }

    /// Collects whatever arrives during `period`.
    pub async fn drain_for(&mut self, period: Duration) {
        let deadline = tokio::time::Instant::now() + period;
        loop {
            tokio::select! {
                e = self.events.recv() => match e {
                    Some(e) => self.seen.push(e),
                    None => return,
                },
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// Every record persisted so far.
    pub fn records(&self) -> Vec<Record> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                Event::Output(_, Output::Persist(r)) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    /// The alarms raised so far.
    pub fn raised(&self) -> Vec<vigil::core::Alarm> {
        self.records()
            .into_iter()
            .filter_map(|r| match r {
                Record::Raised { alarm, .. } => Some(alarm),
                _ => None,
            })
            .collect()
    }

    /// Stops the unit and returns its journal.
    pub async fn stop(mut self) -> Journal {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let journal = self.task.take().expect("running").await.expect("unit task");
        drop(self.parts.take());
        journal
    }
}

/// Whether `e` is the acknowledgement of an alarm.
pub fn is_ack(e: &Event) -> bool {
    matches!(
        e,
        Event::Output(_, Output::Persist(Record::Acknowledged { .. }))
    )
}

/// Whether `e` is the acknowledgement of an alarm with `cause`, according to `alarms`.
pub fn acked_alarm(e: &Event) -> Option<vigil::core::AlarmId> {
    match e {
        Event::Output(_, Output::Persist(Record::Acknowledged { alarm, .. })) => Some(*alarm),
        _ => None,
    }
}

/// The alarm as the journal file holds it, read with SQL, not through the journal module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAlarm {
    /// Alarm id.
    pub id: i64,
    /// Reference.
    pub reference: String,
    /// Cause.
    pub cause: String,
    /// Device id, if from a device.
    pub device: Option<u32>,
    /// Raised at, ms since the epoch.
    pub raised_at: u64,
    /// `open`, `acknowledged` or `cancelled`.
    pub state: String,
    /// Who acknowledged or cancelled it.
    pub closed_by: Option<String>,
}

/// Every alarm in the journal file at `path`, and the times of its `repeated` events.
pub fn read_journal(path: &Path) -> (Vec<StoredAlarm>, Vec<(i64, u64)>) {
    let conn = rusqlite::Connection::open(path).expect("open journal");
    conn.busy_timeout(Duration::from_secs(5)).expect("timeout");
    let mut stmt = conn
        .prepare("SELECT id, reference, cause, device, raised_at, state, closed_by FROM alarm ORDER BY id")
        .expect("query");
    let alarms = stmt
        .query_map([], |r| {
            Ok(StoredAlarm {
                id: r.get(0)?,
                reference: r.get(1)?,
                cause: r.get(2)?,
                device: r.get::<_, Option<i64>>(3)?.map(|d| d as u32),
                raised_at: r.get::<_, i64>(4)? as u64,
                state: r.get(5)?,
                closed_by: r.get(6)?,
            })
        })
        .expect("rows")
        .collect::<Result<Vec<_>, _>>()
        .expect("alarms");
    let mut stmt = conn
        .prepare("SELECT alarm, at FROM event WHERE kind = 'repeated'")
        .expect("query");
    let repeated = stmt
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64))
        })
        .expect("rows")
        .collect::<Result<Vec<_>, _>>()
        .expect("repeated");
    (alarms, repeated)
}

/// libfaketime's preload library, where Debian installs it.
pub fn faketime_library() -> Option<std::path::PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ]
    .iter()
    .map(|d| Path::new(d).join("faketime/libfaketime.so.1"))
    .find(|p| p.exists())
}

/// The real `vigil` binary running against a site, as systemd would run it.
pub struct VigilProcess {
    child: std::process::Child,
    socket: std::path::PathBuf,
}

impl VigilProcess {
    /// Starts `vigil run --config <site>/config.toml --no-audio --fast-modem`; its log goes
    /// to `log` (appended). Returns once the unit answers on its control socket.
    pub async fn start(site: &SimSite, log: &Path) -> VigilProcess {
        VigilProcess::start_logging(site, log, "info").await
    }

    /// As [`VigilProcess::start`], logging at `level` (a `VIGIL_LOG` filter).
    pub async fn start_logging(site: &SimSite, log: &Path, level: &str) -> VigilProcess {
        VigilProcess::start_with(site, log, level, &["--no-audio"]).await
    }

    /// As [`VigilProcess::start`], with its prompts played into WAV files in `sound_dir`
    /// (`--simulated-audio`): a unit whose loudspeaker works.
    pub async fn start_with_sound(site: &SimSite, log: &Path, sound_dir: &Path) -> VigilProcess {
        let dir = sound_dir.display().to_string();
        VigilProcess::start_with(site, log, "info", &["--simulated-audio", &dir]).await
    }

    /// As [`VigilProcess::start`], with the unit's wall clock `offset_s` seconds off the real
    /// one (libfaketime; monotonic time stays true), as a Raspberry Pi boots with no real-time
    /// clock: at 1970, or at the stale time fake-hwclock saved. Offset 0 runs it unchanged.
    pub async fn start_with_clock(site: &SimSite, log: &Path, offset_s: i64) -> VigilProcess {
        if offset_s == 0 {
            return VigilProcess::start(site, log).await;
        }
        let preload = faketime_library().expect("libfaketime (Debian package libfaketime)");
        let env = [
            ("LD_PRELOAD", preload.display().to_string()),
            ("FAKETIME", format!("{offset_s:+}s")),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
        ];
        VigilProcess::spawn(site, log, "info", &["--no-audio"], &env).await
    }

    async fn start_with(site: &SimSite, log: &Path, level: &str, audio: &[&str]) -> VigilProcess {
        VigilProcess::spawn(site, log, level, audio, &[]).await
    }

    async fn spawn(
        site: &SimSite,
        log: &Path,
        level: &str,
        audio: &[&str],
        env: &[(&str, String)],
    ) -> VigilProcess {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("run")
            .arg("--config")
            .arg(&site.config_path)
            .args(audio)
            .arg("--fast-modem")
            .env("VIGIL_LOG", level)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("vigil starts");
        let mut p = VigilProcess {
            child,
            socket: vigil::runtime::control::socket_path(&site.config.data_dir),
        };
        p.wait_ready(log).await;
        p
    }

    async fn wait_ready(&mut self, log: &Path) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "vigil exited at start ({status}); log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "vigil did not open its control socket within 30 s; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The unit's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Power cut: SIGKILL, then reaped.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit (at most `limit`); the exit status.
    pub async fn terminate(mut self, limit: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill(1)");
        assert!(sent.success());
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("vigil did not stop within {limit:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for VigilProcess {
    fn drop(&mut self) {
        // Never leave a unit running behind a failed test.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until the journal holds at least `n` alarms and none is open; panics after `limit`.
pub async fn wait_all_closed(
    journal: &Path,
    n: usize,
    limit: Duration,
    log: &Path,
) -> Vec<StoredAlarm> {
    let deadline = Instant::now() + limit;
    loop {
        if journal.exists() {
            let (alarms, _) = read_journal(journal);
            if alarms.len() >= n && alarms.iter().all(|a| a.state != "open") {
                return alarms;
            }
            if Instant::now() >= deadline {
                panic!(
                    "alarms still open after {limit:?}: {alarms:#?}\nlog tail:\n{}",
                    log_tail(log)
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The last lines of a log file.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// What the receivers acknowledged, by the alarm reference they carried: SCAIP `<mrq>`
/// answered `snu=0` (the session `ref` starts with the alarm's reference cut to 12), SMS
/// texts the centre's gateway answered with `ACK <reference> <code>`.
pub fn acknowledged_references(site: &SimSite) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for r in site.scaip.received() {
        if let (Some(mrq), Some(0)) = (&r.mrq, r.answered) {
            if mrq.mty == Some(vigil::centre::scaip::MessageType::Message) {
                // The session `ref` is random; `stt` carries the alarm's reference.
                out.push((mrq.stt.clone().unwrap_or_default(), "scaip"));
            }
        }
    }
    // The gateway answers `ACK <reference> <code>` for each alarm text it accepts.
    for r in site.cellular.network.records() {
        if let vigil::modem::network::Record::SmsReplied { from, text } = r {
            let mut words = text.split_whitespace();
            if from == vigil::runtime::simsite::numbers::SMS_GATEWAY && words.next() == Some("ACK")
            {
                if let Some(reference) = words.next() {
                    out.push((reference.to_string(), "sms"));
                }
            }
        }
    }
    out
}

/// Whether a receiver's reference is the alarm's (for SCAIP, the `stt` the alarm carries).
pub fn same_alarm(receiver_ref: &str, _via: &str, alarm_ref: &str) -> bool {
    receiver_ref == alarm_ref
}

/// Makes every route of `site` fail: no IP centre, a silent SMS gateway, nobody picks up.
/// Each test brings back the route it needs.
pub fn every_route_down(site: &SimSite) {
    use vigil::modem::network::{Party, Person, Pickup};
    site.ip_centre_down(true);
    site.sms_gateway_silent(true);
    let nobody = Person {
        pickup: Pickup::NoAnswer,
        key: None,
        drop_after: None,
    };
    site.cellular.network.add(
        vigil::runtime::simsite::numbers::DAUGHTER,
        Party::Person(nobody),
    );
}

/// `vigil pendant ACTION` as the site's first pendant, sending to `to` and keeping its counter
/// in `state`, with `extra` options.
pub fn pendant_cli(action: &str, to: &str, state: &Path, extra: &[&str]) -> std::process::Output {
    let (id, _, _, key) = PENDANTS[0];
    std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "pendant",
            action,
            "--id",
            &format!("{id:08X}"),
            "--key",
            key,
            "--to",
            to,
            "--state",
            &state.display().to_string(),
        ])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("vigil pendant runs")
}

/// A small tmpfs mounted at a folder (root only), unmounted when dropped: a disk that really
/// fills.
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, mb: u32) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount -t tmpfs (as root) failed");
        Tmpfs(dir.to_path_buf())
    }

    /// Fills it to the last byte (until the filesystem says it is full); the filler is removed
    /// to free the space again.
    pub fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![7u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let small = [7u8; 512];
        let full = loop {
            if let Err(e) = f.write_all(&small) {
                break e;
            }
        };
        assert_eq!(
            full.kind(),
            std::io::ErrorKind::StorageFull,
            "the filler stopped for another reason: {full}"
        );
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}
