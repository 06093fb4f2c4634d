//! `vigil demo`: the base unit's runtime through a scripted alarm scenario, with a timeline.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use vigil::core::*;
use vigil::runtime::timeline::Timeline;
use vigil::runtime::*;

const CONFIG: &str = include_str!("demo.toml");

/// A receiver reached over a route of the demo: answers each delivery after a short delay.
struct ScriptedReceiver {
    name: &'static str,
    up: bool,
}

impl Transport for ScriptedReceiver {
    fn deliver(&self, delivery: Delivery) -> DeliveryFuture {
        let (name, up) = (self.name, self.up);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if up {
                DeliveryResult::Acked {
                    by: format!("{name} (ref {})", delivery.alarm.reference),
                    callback: None,
                }
            } else {
                DeliveryResult::Failed {
                    reason: format!("{name}: connection refused"),
                }
            }
        })
    }
}

struct Speaker;
impl VoiceOut for Speaker {
    fn play(&self, _prompt: Prompt) {}
    fn listen(
        &self,
        _alarm: AlarmId,
        _until: Timestamp,
        _inputs: tokio::sync::mpsc::Sender<Input>,
    ) {
    }
    fn stop_listening(&self) {}
}
struct Radio;
impl PendantAcks for Radio {
    fn ack(&self, _device: DeviceId, _counter: u32) {}
}
struct Phone;
impl CallControl for Phone {
    fn start_call(
        &self,
        _alarm: AlarmId,
        _number: String,
        _inputs: tokio::sync::mpsc::Sender<Input>,
    ) {
    }
    fn auto_answer(&self, _until: Timestamp) {}
}

pub fn run(out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = vigil::config::parse(CONFIG, std::path::Path::new("demo.toml"))?;
    let tmp = tempfile::tempdir()?;
    let dir = out.unwrap_or_else(|| tmp.path().to_path_buf());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut journal = vigil::journal::Journal::open_dir(&dir)?;
        let names: Vec<String> = config.routes.iter().map(|r| r.name.clone()).collect();
        journal.set_route_names(names.clone());
        let settings = Settings::from_config(&config);
        let (core, journal) = restore(settings, journal, Timestamp::now())?;
        let adapters = Adapters {
            status: Vec::new(),
            routes: vec![
                Arc::new(ScriptedReceiver {
                    name: "SCAIP receiver",
                    up: false,
                }),
                Arc::new(ScriptedReceiver {
                    name: "SMS responder",
                    up: true,
                }),
            ],
            voice: Arc::new(Speaker),
            pendants: Arc::new(Radio),
            calls: Arc::new(Phone),
        };
        let mut unit = Unit::new(core, journal, adapters, Arc::new(SystemClock));
        let mut events = unit.events();
        let inputs = unit.inputs();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(unit.run(async {
            let _ = stop_rx.await;
        }));
        let mut timeline = Timeline::new(names);
        let pendant = DeviceId(0x00A1_B2C3);
        println!("Vigil demo: a fall, no answer, the IP receiver down, delivery by SMS.\n");
        inputs
            .send(Input::Radio(RadioEvent {
                device: pendant,
                counter: 1,
                kind: RadioEventKind::Fall,
                rssi_dbm: Some(-71),
            }))
            .await?;
        let mut acked = false;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !acked {
            let e = tokio::select! {
                e = events.recv() => e,
                _ = tokio::time::sleep_until(deadline) => None,
            };
            let Some(e) = e else { break };
            if let Some(line) = timeline.line(&e) {
                println!("{line}");
            }
            acked = matches!(
                e,
                Event::Output(_, Output::Persist(Record::Acknowledged { .. }))
            );
        }
        let _ = stop_tx.send(());
        let journal = task.await?;
        println!("\nJournal ({}):", journal.path().display());
        for e in journal.timeline(50)? {
            println!("  {}  {}  {}", e.at, e.reference, e.text);
        }
        anyhow::Ok(if acked {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}
