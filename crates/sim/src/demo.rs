//! `vigil demo`: the real runtime with every simulator, through a scripted day in the life of
//! a unit, printed as a timeline a person can follow.
//!
//! Simulated pendants send sealed frames over the loopback radio; the SCAIP and DC-09
//! receivers listen on loopback; the cellular module sits on a pseudo-terminal with its
//! network, SMS gateway and the daughter's phone behind it; prompts go to WAV files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::core::{AlarmCause, Input, Output, Record, Timestamp};
use crate::radio::frame::Event as Frame;
use crate::radio::pendant::SimPendant;
use crate::runtime::appliance::{assemble_with_clock, AudioChoice, Options};
use crate::runtime::simsite::{SimSite, SiteOptions};
use crate::runtime::timeline::Timeline;
use crate::runtime::{Clock, Event, SystemClock};
use anyhow::Context;
use tokio::sync::mpsc;

/// The demo's fall comes from real accelerometer data: a SisFall trial (SE06, 60–75 years,
/// fall F05) streamed through the pendant's fall detector.
const FALL_TRIAL: &str = "F05_SE06_R01.txt";

/// That trial, built into the program, so an installed `vigil demo` needs no source tree.
const FALL_TRIAL_TEXT: &str =
    include_str!("../../../tests/data/sisfall/original/SE06/F05_SE06_R01.txt");

/// A clock the script can move forward ("four hours later"), both monotonic and wall time, so
/// supervision shows without waiting hours. Everything else runs in real time.
#[derive(Default)]
struct ShiftedClock(AtomicU64);

impl ShiftedClock {
    fn skip(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn monotonic(&self) -> Duration {
        SystemClock.monotonic() + Duration::from_millis(self.0.load(Ordering::SeqCst))
    }

    fn wall(&self) -> Timestamp {
        SystemClock.wall() + Duration::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// Prints the timeline while waiting for something to happen.
struct Story<'a> {
    events: mpsc::UnboundedReceiver<Event>,
    timeline: Timeline,
    outcomes: Vec<String>,
    /// The centre's screens, shown where the route's attempt reaches them.
    site: &'a SimSite,
    shown: (usize, usize),
}

impl Story<'_> {
    /// Prints what the centre's receivers showed since the last call.
    fn centre_lines(&mut self) {
        let scaip = self.site.scaip.received();
        for r in scaip.iter().skip(self.shown.0) {
            println!("{}", r.display);
        }
        let dc09 = self.site.dc09.received();
        for r in dc09.iter().skip(self.shown.1) {
            println!("{}", r.display);
        }
        self.shown = (scaip.len(), dc09.len());
    }

    fn scene(&mut self, title: &str) {
        println!("\n== {title}");
        self.timeline.reset();
    }

    /// Prints events until one matches `done`, or fails after `limit`.
    async fn until(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl Fn(&Event) -> bool,
    ) -> anyhow::Result<Event> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let e = tokio::select! {
                e = self.events.recv() => e.context("the unit stopped")?,
                _ = tokio::time::sleep_until(deadline) => anyhow::bail!("demo: no {what} within {limit:?}"),
            };
            if matches!(e, Event::Input(_, Input::Delivery { .. })) {
                // The centre saw the attempt before the unit heard how it went.
                self.centre_lines();
            }
            if let Some(line) = self.timeline.line(&e) {
                println!("{line}");
            }
            if done(&e) {
                return Ok(e);
            }
        }
    }

    async fn acknowledged(&mut self, limit: Duration) -> anyhow::Result<()> {
        let e = self
            .until(limit, "acknowledgement", |e| {
                matches!(
                    e,
                    Event::Output(_, Output::Persist(Record::Acknowledged { .. }))
                )
            })
            .await?;
        if let Event::Output(_, Output::Persist(Record::Acknowledged { alarm, by, .. })) = e {
            self.outcomes
                .push(format!("alarm {alarm}: acknowledged by {by}"));
        }
        Ok(())
    }

    /// Prints whatever else happens for a moment (prompts after an acknowledgement…).
    async fn settle(&mut self, for_: Duration) {
        let _ = self.until(for_, "", |_| false).await;
    }
}

impl Story<'_> {
    /// A press on the simulated pendant, told in the order it happens: the press, what the
    /// unit did with it up to its radio acknowledgement, then what the pendant shows. A radio
    /// acknowledgement means the base has the alarm, not that a centre has it: the pendant
    /// says "alarm received", never "help is coming".
    async fn press(
        &mut self,
        pendant: &mut SimPendant,
        frame: Frame,
        what: &str,
    ) -> anyhow::Result<()> {
        let id = pendant.id();
        println!("           pendant {id}: {what}");
        // The simulated pendant waits for its acknowledgement on a blocking socket.
        let acked = tokio::task::block_in_place(|| pendant.send(frame))?;
        if acked.is_some() {
            let device = id;
            let _ = self
                .until(Duration::from_secs(2), "radio acknowledgement", |e| {
                    matches!(e, Event::Output(_, Output::AckPendant { device: d, .. }) if *d == device)
                })
                .await;
        }
        let light = if frame == Frame::Cancel {
            "light off"
        } else {
            "\"alarm received\" light on"
        };
        match acked {
            Some(n) => {
                println!("           pendant {id}: acknowledged after {n} transmission(s): {light}")
            }
            None => println!(
                "           pendant {id}: no acknowledgement (it keeps its frame for the next press)"
            ),
        }
        Ok(())
    }
}

/// Options of `vigil demo`.
pub struct DemoOptions {
    /// Keep the site (configuration, journal, recordings) here.
    pub out: Option<PathBuf>,
    /// Let a person drive the pendant instead of the script.
    pub interactive: bool,
}

pub fn run(options: DemoOptions) -> anyhow::Result<ExitCode> {
    let tmp = tempfile::tempdir()?;
    let dir = options
        .out
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(demo(&dir, options.interactive))
}

async fn demo(dir: &Path, interactive: bool) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let site = SimSite::start(
        dir,
        // The demo prints the centre's lines itself, in order with the unit's.
        SiteOptions::default(),
    )
    .await?;
    let clock = Arc::new(ShiftedClock::default());
    // One clock for the unit and the centre's display.
    site.scaip.set_clock(clock.clone());
    let audio_dir = dir.join("audio");
    let built = assemble_with_clock(
        &site.config,
        Options {
            audio: AudioChoice::Simulated(audio_dir.clone()),
            modem_timing: crate::modem::Timing::fast(),
        },
        clock.clone(),
    )
    .await?;
    let (mut unit, _parts) = (built.unit, built.parts);
    let mut story = Story {
        events: unit.events(),
        timeline: Timeline::new(site.config.routes.iter().map(|r| r.name.clone()).collect()),
        outcomes: Vec::new(),
        site: &site,
        shown: (0, 0),
    };
    let inputs = unit.inputs();
    let control = unit.control();
    // `vigil status --config <site>/config.toml` works against the demo's unit too.
    let socket = crate::runtime::control::serve(
        &crate::runtime::control::socket_path(&site.config.data_dir),
        control.clone(),
    )?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(unit.run(async {
        let _ = stopped.await;
    }));

    println!("Vigil demo: the base unit on simulated hardware.");
    println!("  site:    {}", site.config_path.display());
    println!(
        "  routes:  SCAIP {} -> DC-09 {} -> SMS {} -> daughter's phone {}",
        site.scaip.addr(),
        site.dc09.addr(),
        crate::runtime::simsite::numbers::SMS_GATEWAY,
        crate::runtime::simsite::numbers::DAUGHTER
    );
    println!(
        "  modem:   simulated module on {}",
        site.cellular.module.path()
    );
    println!("  radio:   {}", site.radio);

    if interactive {
        let code = interactive_session(&site, story, stop, task).await;
        socket.abort();
        return code;
    }

    let mut neck = site.pendant(0, 0)?;
    let mut cord = site.pendant(1, 0)?;

    story.scene("1. Anna presses her pendant");
    story
        .press(&mut neck, Frame::Help, "help button pressed")
        .await?;
    story.acknowledged(Duration::from_secs(20)).await?;
    story.settle(Duration::from_millis(600)).await;
    // The base tells the pendant once the centre has the alarm.
    if tokio::task::block_in_place(|| neck.help_coming(Duration::from_secs(2)))? {
        println!(
            "           pendant {}: the base says the centre has it: \"help is coming\" light on",
            neck.id()
        );
    } else {
        anyhow::bail!("demo: the pendant never heard that help is coming");
    }

    story.scene("2. Anna falls and does not answer (real accelerometer data)");
    let trial = crate::fall::sisfall::trial_from_text("SE06", FALL_TRIAL, FALL_TRIAL_TEXT)?;
    let falls = crate::fall::replay(&trial, 50)?;
    let Some((sample, fall)) = falls.first() else {
        anyhow::bail!("demo: the fall detector did not fire on {FALL_TRIAL}");
    };
    println!(
        "           pendant fall detector on {}: fall at {:.1} s: peak {:.1} g, free fall {} ms, posture change {:.0}°, stillness after {:.2} g",
        trial.file_name,
        *sample as f64 / 50.0,
        fall.evidence.peak_g,
        fall.evidence.free_fall_ms,
        fall.evidence.posture_change_deg,
        fall.evidence.motion_after_g
    );
    let evidence = crate::radio::pendant::frame_evidence(&fall.evidence);
    story
        .press(
            &mut neck,
            Frame::Fall(evidence),
            "sends the fall and what it measured",
        )
        .await?;
    story.acknowledged(Duration::from_secs(30)).await?;
    story.settle(Duration::from_millis(600)).await;

    story.scene("3. The bathroom cord is pulled by mistake and cancelled in time");
    site.ip_centre_down(true);
    story.press(&mut cord, Frame::Help, "cord pulled").await?;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    story.press(&mut cord, Frame::Cancel, "cancel held").await?;
    story
        .until(Duration::from_secs(10), "cancel", |e| {
            matches!(
                e,
                Event::Output(_, Output::Persist(Record::Cancelled { .. }))
            )
        })
        .await?;
    story
        .outcomes
        .push("cord alarm: cancelled inside its window, nothing sent".into());
    story.settle(Duration::from_millis(600)).await;

    story.scene("4. The IP centre is down and the SMS gateway silent: the daughter's phone");
    site.sms_gateway_silent(true);
    story.press(&mut cord, Frame::Help, "cord pulled").await?;
    story.acknowledged(Duration::from_secs(90)).await?;
    site.sms_gateway_silent(false);
    story.settle(Duration::from_millis(600)).await;

    story.scene("5. Mains power fails while the IP centre is still down: reported by SMS");
    println!("           mains-present input goes low");
    inputs.send(Input::Mains { present: false }).await?;
    story.acknowledged(Duration::from_secs(60)).await?;
    story.settle(Duration::from_millis(300)).await;

    story.scene("6. The DC-09 receiver is back (SCAIP still silent) when mains returns");
    site.dc09
        .set_default(crate::centre::receiver::dc09::Dc09Answer::Ack);
    println!("           mains-present input goes high");
    inputs.send(Input::Mains { present: true }).await?;
    story.acknowledged(Duration::from_secs(30)).await?;
    site.ip_centre_down(false);

    story.scene("7. Later that day the pull cord's battery dies and it goes silent");
    let missing = site.config.supervision.missing_after;
    clock.skip(missing - Duration::from_secs(120));
    println!(
        "           ... {} later: the neck pendant sends its heartbeat, the cord says nothing",
        crate::config::format_duration(missing - Duration::from_secs(120))
    );
    neck.send_once(Frame::Heartbeat {
        battery_mv: 2950,
        alarms_sent: None,
    })?;
    story
        .until(Duration::from_secs(5), "heartbeat", |e| {
            matches!(e, Event::Input(_, Input::Radio(_)))
        })
        .await?;
    clock.skip(Duration::from_secs(180));
    println!("           ... 3m later");
    wake(&control).await;
    story.acknowledged(Duration::from_secs(30)).await?;
    story.settle(Duration::from_millis(300)).await;

    let _ = stop.send(());
    let journal = task.await?;
    socket.abort();
    println!("\n== Summary ({:.1} s)", started.elapsed().as_secs_f64());
    for o in &story.outcomes {
        println!("  {o}");
    }
    let scaip = site.scaip.received().len();
    let dc09 = site.dc09.received().len();
    println!(
        "  the SCAIP centre received {scaip} alarm message(s), the DC-09 centre {dc09} frame(s)"
    );
    println!("  open alarms left: {}", journal.recover()?.len());
    println!(
        "  prompts played: {} (WAV files and timeline in {})",
        count_wavs(&audio_dir),
        audio_dir.display()
    );
    println!("\nThe journal, as `vigil log` prints it:");
    for e in journal.timeline(200)? {
        println!("  {}  {:<14}  {}", e.at, e.reference, e.text);
    }
    let expected = 6;
    let acked = story
        .outcomes
        .iter()
        .filter(|o| o.contains("acknowledged"))
        .count();
    Ok(if acked == expected && journal.recover()?.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("demo: {acked} of {expected} alarms acknowledged");
        ExitCode::FAILURE
    })
}

/// Makes the loop look at the (shifted) clock now.
async fn wake(control: &mpsc::Sender<crate::runtime::control::ControlRequest>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if control
        .send(crate::runtime::control::ControlRequest::Status(tx))
        .await
        .is_ok()
    {
        let _ = rx.await;
    }
}

fn count_wavs(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
                .count()
        })
        .unwrap_or(0)
}

async fn interactive_session(
    site: &SimSite,
    mut story: Story<'_>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<crate::journal::Journal>,
) -> anyhow::Result<ExitCode> {
    let (id, ..) = crate::runtime::simsite::PENDANTS[0];
    println!("\nThe unit is running. In another terminal, be the pendant:");
    println!(
        "  vigil pendant press --config {} --id {id:08X}",
        site.config_path.display()
    );
    println!(
        "  vigil pendant hold  --config {} --id {id:08X}   (cancel)",
        site.config_path.display()
    );
    println!(
        "  vigil pendant fall  --config {} --id {id:08X}",
        site.config_path.display()
    );
    println!("Ctrl-C ends the demo.\n");
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            e = story.events.recv() => {
                let Some(e) = e else { break };
                if let Some(line) = story.timeline.line(&e) {
                    println!("{line}");
                }
                if let Event::Output(_, Output::Persist(Record::Raised { alarm, .. })) = &e {
                    if alarm.cause == AlarmCause::Help || alarm.cause == AlarmCause::Fall {
                        story.timeline.reset();
                    }
                }
            }
        }
    }
    let _ = stop.send(());
    let journal = task.await?;
    println!("\nopen alarms left: {}", journal.recover()?.len());
    Ok(ExitCode::SUCCESS)
}
