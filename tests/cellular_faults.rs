//! The cellular fault matrix: every fault the simulated module, its SIM, the network or the
//! far end can show, and what becomes of the alarm. Each row runs an escalation plan the way
//! the core would (routes in order, a retry after a pause) against real `serialport` on a pty,
//! and checks either that the alarm still gets through (by a retry or the next route) or that
//! the failure is reported with its reason.

use std::time::Duration;

use tokio::task::JoinSet;
use vigil::centre::contact_id::ContactIdCall;
use vigil::centre::sms::Sms;
use vigil::centre::voice_call::VoiceCall;
use vigil::config::{ContactIdRoute, Credentials, SmsRoute, Unit, VoiceRoute};
use vigil::core::{
    Alarm, AlarmCause, AlarmId, AlarmRef, Delivery, DeliveryResult, Device, DeviceId, DeviceKind,
    RouteId, Timestamp,
};
use vigil::modem::device::Settings;
use vigil::modem::network::{CidCentre, Kissoff, Party, Person, Pickup, Record, Reply, Responder};
use vigil::modem::sim::{Fault, SimConfig, SimWorld};
use vigil::modem::{Modem, ModemEvent};

const UNIT_NO: &str = "+46700000001";
const SMS_GW: &str = "+46700000010";
const PERSON: &str = "+46700000020";
const CID: &str = "+46700000030";
const SECRET: &str = "route-secret";

/// A route of the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum R {
    Sms,
    Voice,
    Cid,
}

/// What must become of the alarm.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Acknowledged by the plan's route at this index; the attempts before it failed with a
    /// reason containing `reason`.
    AckedAt(usize, &'static str),
    /// Every attempt failed; the first reason contains this.
    Failed(&'static str),
}

/// Something done to the world once the modem is up.
#[derive(Clone, Debug)]
enum Act {
    Nothing,
    Inject(Fault),
    Reboot,
    LoseSms(u32),
}

struct Case {
    name: &'static str,
    /// Faults the module has from power-on.
    faults: Vec<Fault>,
    /// The SIM asks for PIN 1234 (the configured one).
    pin: bool,
    /// Done after the modem is ready, before the first attempt.
    act: Act,
    /// Who the numbers reach.
    person: Person,
    centre: CidCentre,
    reply: Reply,
    plan: Vec<R>,
    expect: Expect,
}

impl Case {
    fn new(name: &'static str, plan: Vec<R>, expect: Expect) -> Case {
        Case {
            name,
            faults: Vec::new(),
            pin: false,
            act: Act::Nothing,
            person: Person::accepting('5'),
            centre: CidCentre::working(),
            reply: Reply::Valid,
            plan,
            expect,
        }
    }
    fn faults(mut self, f: Vec<Fault>) -> Case {
        self.faults = f;
        self
    }
    fn act(mut self, a: Act) -> Case {
        self.act = a;
        self
    }
    fn person(mut self, p: Person) -> Case {
        self.person = p;
        self
    }
    fn centre(mut self, c: CidCentre) -> Case {
        self.centre = c;
        self
    }
    fn reply(mut self, r: Reply) -> Case {
        self.reply = r;
        self
    }
}

fn person(pickup: Pickup, key: Option<char>, drop_after: Option<Duration>) -> Person {
    Person {
        pickup,
        key,
        drop_after,
    }
}

fn matrix() -> Vec<Case> {
    use Expect::*;
    use R::*;
    vec![
        Case::new("no SIM", vec![Sms, Voice], Failed("SIM not inserted"))
            .faults(vec![Fault::NoSim]),
        {
            let mut c = Case::new("wrong PIN", vec![Sms], Failed("refused the configured PIN"))
                .faults(vec![Fault::WrongPin]);
            c.pin = true;
            c
        },
        Case::new(
            "registration denied",
            vec![Sms, Cid],
            Failed("registration denied"),
        )
        .faults(vec![Fault::RegistrationDenied]),
        Case::new("no network", vec![Sms, Voice], Failed("searching"))
            .faults(vec![Fault::NoNetwork]),
        Case::new(
            "CMS error on submit",
            vec![Sms, Sms],
            AckedAt(1, "+CMS ERROR: network error"),
        )
        .act(Act::Inject(Fault::CmsError {
            code: 332,
            count: 1,
        })),
        Case::new("busy", vec![Voice, Sms], AckedAt(1, "busy")).person(person(
            Pickup::Busy,
            None,
            None,
        )),
        Case::new("no answer", vec![Voice, Sms], AckedAt(1, "no answer")).person(person(
            Pickup::NoAnswer,
            None,
            None,
        )),
        Case::new(
            "no carrier mid-call (person)",
            vec![Voice, Sms],
            AckedAt(1, "hung up without pressing"),
        )
        .person(person(
            Pickup::Answers,
            None,
            Some(Duration::from_millis(30)),
        )),
        Case::new(
            "no carrier mid-call (centre)",
            vec![Cid, Sms],
            AckedAt(1, "receiver hung up before the kissoff"),
        )
        .centre(CidCentre {
            kissoff: Kissoff::Never,
            drop_after: Some(Duration::from_millis(45)),
            ..CidCentre::working()
        }),
        Case::new(
            "silent modem, power-cycled",
            vec![Sms, Sms],
            AckedAt(1, "did not answer"),
        )
        .act(Act::Inject(Fault::Silent)),
        Case::new(
            "garbage bytes on the line",
            vec![Sms, Voice],
            AckedAt(0, ""),
        )
        .faults(vec![Fault::Garbage]),
        Case::new(
            "reboot in the middle of an SMS",
            vec![Sms, Sms],
            AckedAt(1, "restarted"),
        )
        .act(Act::Inject(Fault::RebootOnSms)),
        Case::new("spontaneous reboot while idle", vec![Sms], AckedAt(0, "")).act(Act::Reboot),
        Case::new(
            "voicemail answers",
            vec![Voice, Sms],
            AckedAt(1, "no accept key"),
        )
        .person(person(Pickup::Voicemail, None, None)),
        Case::new(
            "person answers, presses nothing",
            vec![Voice, Cid],
            AckedAt(1, "no accept key"),
        )
        .person(person(Pickup::Answers, None, None)),
        Case::new(
            "no kissoff",
            vec![Cid, Sms],
            AckedAt(1, "no kissoff after 4 attempts"),
        )
        .centre(CidCentre {
            kissoff: Kissoff::Never,
            ..CidCentre::working()
        }),
        Case::new(
            "a 1400 Hz burst as short as a handshake's is no kissoff",
            vec![Cid, Sms],
            AckedAt(1, "no kissoff after 4 attempts"),
        )
        .centre(CidCentre {
            kissoff_ms: 100,
            ..CidCentre::working()
        }),
        Case::new(
            "a 1400 Hz tone of 2 s is no kissoff",
            vec![Cid, Sms],
            AckedAt(1, "no kissoff after 4 attempts"),
        )
        .centre(CidCentre {
            kissoff_ms: 2000,
            ..CidCentre::working()
        }),
        Case::new(
            "the shortest kissoff DC-05 allows",
            vec![Cid],
            AckedAt(0, ""),
        )
        .centre(CidCentre {
            kissoff_ms: 750,
            ..CidCentre::working()
        }),
        Case::new(
            "the longest kissoff DC-05 allows",
            vec![Cid],
            AckedAt(0, ""),
        )
        .centre(CidCentre {
            kissoff_ms: 1000,
            ..CidCentre::working()
        }),
        Case::new("kissoff only on the 3rd attempt", vec![Cid], AckedAt(0, "")).centre(CidCentre {
            kissoff: Kissoff::FromAttempt(3),
            ..CidCentre::working()
        }),
        Case::new(
            "no handshake from the receiver",
            vec![Cid, Voice],
            AckedAt(1, "no Contact ID handshake"),
        )
        .centre(CidCentre {
            handshake: false,
            ..CidCentre::working()
        }),
        Case::new(
            "forged SMS acknowledgement",
            vec![Sms, Voice],
            AckedAt(1, "no acknowledgement came back"),
        )
        .reply(Reply::Forged),
        Case::new(
            "acknowledgement from another number",
            vec![Sms],
            Failed("no acknowledgement came back"),
        )
        .reply(Reply::FromNumber("+46700000099".into())),
        Case::new(
            "SMS lost in the network",
            vec![Sms, Sms],
            AckedAt(1, "no acknowledgement came back"),
        )
        .act(Act::LoseSms(1)),
    ]
}

fn unit() -> Unit {
    Unit {
        controller_id: "4711".into(),
        contact_id_account: "1234".into(),
        sia_account: "1234".into(),
        subscriber: "Anna Öberg".into(),
        address: "Storgatan 1, Uppsala".into(),
        language: "en".into(),
        volume: 80,
        quiet_hours: None,
    }
}

fn delivery(attempt: u32) -> Delivery {
    let raised_at = Timestamp::from_secs(1_764_100_000);
    let id = AlarmId(42);
    Delivery {
        alarm: Alarm {
            id,
            reference: AlarmRef::new(id, raised_at),
            cause: AlarmCause::Help,
            device: Some(Device {
                id: DeviceId(0x0BADCAFE),
                kind: DeviceKind::Personal,
                zone: 1,
                location: "Anna's pendant".into(),
            }),
            raised_at,
            evidence: None,
        },
        route: RouteId(attempt as usize - 1),
        attempt,
    }
}

async fn attempt(m: &Modem, r: R, d: &Delivery) -> DeliveryResult {
    let u = unit();
    match r {
        R::Sms => {
            Sms::new(
                m.clone(),
                &SmsRoute {
                    number: SMS_GW.into(),
                    credentials: "gw".into(),
                    reply_timeout: Duration::from_millis(600),
                },
                &Credentials {
                    username: None,
                    secret: SECRET.into(),
                    realm: None,
                },
                &u,
            )
            .deliver(d)
            .await
        }
        R::Voice => {
            VoiceCall::new(
                m.clone(),
                &VoiceRoute {
                    number: PERSON.into(),
                    accept_key: '5',
                },
                &u,
            )
            .deliver(d)
            .await
        }
        R::Cid => {
            ContactIdCall::new(m.clone(), &ContactIdRoute { number: CID.into() }, &u)
                .deliver(d)
                .await
        }
    }
}

struct Outcome {
    results: Vec<(R, DeliveryResult)>,
    events: Vec<ModemEvent>,
    records: Vec<Record>,
    commands: Vec<String>,
}

async fn run(case: Case) -> Result<Outcome, String> {
    let mut cfg = SimConfig::new(UNIT_NO);
    cfg.faults = case.faults.clone();
    if case.pin {
        cfg.pin = Some("1234".into());
    }
    let w = SimWorld::start(cfg).map_err(|e| e.to_string())?;
    w.network.add(
        SMS_GW,
        Party::Responder(Responder {
            secret: SECRET.into(),
            reply: case.reply.clone(),
        }),
    );
    w.network.add(PERSON, Party::Person(case.person.clone()));
    w.network.add(CID, Party::Centre(case.centre.clone()));
    let m = w
        .open_modem(Settings {
            sim_pin: Some("1234".into()),
            allowed_numbers: vec![],
            remote_secret: None,
            voice_port: None,
            call_device: None,
            call_audio: None,
        })
        .map_err(|e| e.to_string())?;
    let mut ev = m.events();
    // A modem that can never become usable (no SIM…) is given a fair chance, then tried anyway.
    let _ = m.wait_usable(Duration::from_secs(3)).await;
    match &case.act {
        Act::Nothing => {}
        Act::Inject(f) => w.module.inject(f.clone()),
        Act::Reboot => {
            let mut down = m.events();
            w.module.reboot();
            // The runtime learns of it from the modem's `Down` event, then waits for re-init.
            let _ = tokio::time::timeout(Duration::from_secs(3), async {
                while let Ok(e) = down.recv().await {
                    if matches!(e, ModemEvent::Down { .. }) {
                        return;
                    }
                }
            })
            .await;
            let _ = m.wait_usable(Duration::from_secs(3)).await;
        }
        Act::LoseSms(n) => w.network.lose_next_sms(*n),
    }
    let mut results = Vec::new();
    for (i, r) in case.plan.iter().enumerate() {
        if i > 0 {
            // The core's backoff before the next attempt; a recovering modem comes back (a
            // hung one only after three synchronising `AT`s went unanswered, then the reset).
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = m.wait_usable(Duration::from_secs(10)).await;
        }
        let res = attempt(&m, *r, &delivery(i as u32 + 1)).await;
        let acked = matches!(res, DeliveryResult::Acked { .. });
        results.push((*r, res));
        if acked {
            break;
        }
    }
    let mut events = Vec::new();
    while let Ok(e) = ev.try_recv() {
        events.push(e);
    }
    Ok(Outcome {
        results,
        events,
        records: w.network.records(),
        commands: w.module.commands(),
    })
}

fn check(case: &Case, o: &Outcome) -> Result<(), String> {
    let reason_of = |r: &DeliveryResult| match r {
        DeliveryResult::Failed { reason } | DeliveryResult::Declined { reason } => reason.clone(),
        other => format!("{other:?}"),
    };
    match case.expect {
        Expect::AckedAt(idx, reason) => {
            let Some((route, DeliveryResult::Acked { .. })) = o.results.get(idx) else {
                return Err(format!("not acknowledged at step {idx}: {:?}", o.results));
            };
            if o.results.len() != idx + 1 {
                return Err(format!(
                    "expected exactly {} attempts: {:?}",
                    idx + 1,
                    o.results
                ));
            }
            if *route != case.plan[idx] {
                return Err(format!(
                    "acknowledged by {route:?}, not {:?}",
                    case.plan[idx]
                ));
            }
            if idx > 0 {
                let first = reason_of(&o.results[0].1);
                if !first.contains(reason) {
                    return Err(format!("first failure `{first}` does not say `{reason}`"));
                }
            }
        }
        Expect::Failed(reason) => {
            if o.results.len() != case.plan.len() {
                return Err(format!("every route should be tried: {:?}", o.results));
            }
            for (_, r) in &o.results {
                if matches!(r, DeliveryResult::Acked { .. }) {
                    return Err(format!("acknowledged despite the fault: {r:?}"));
                }
            }
            let first = reason_of(&o.results[0].1);
            if !first.contains(reason) {
                return Err(format!("failure `{first}` does not say `{reason}`"));
            }
        }
    }
    Ok(())
}

/// Extra facts some rows must show beyond the outcome.
fn check_details(case: &Case, o: &Outcome) -> Result<(), String> {
    let cid_messages = o
        .records
        .iter()
        .filter(|r| matches!(r, Record::CidMessage { valid: true, .. }))
        .count();
    match case.name {
        "no kissoff" if cid_messages != 4 => Err(format!(
            "Contact ID must be sent 4 times, was {cid_messages}"
        )),
        "kissoff only on the 3rd attempt" if cid_messages != 3 => Err(format!(
            "Contact ID must be sent 3 times, was {cid_messages}"
        )),
        "silent modem, power-cycled"
        | "reboot in the middle of an SMS"
        | "spontaneous reboot while idle" => {
            let down = o
                .events
                .iter()
                .any(|e| matches!(e, ModemEvent::Down { .. }));
            let ready_again = o.events.contains(&ModemEvent::Ready);
            if down && ready_again {
                Ok(())
            } else {
                Err(format!("modem must go down and come back: {:?}", o.events))
            }
        }
        "wrong PIN" => {
            // Init is retried, but a refused PIN never is: three tries would PUK-lock the SIM.
            let tries = o.commands.iter().filter(|c| *c == "AT+CPIN=<pin>").count();
            (tries == 1)
                .then_some(())
                .ok_or_else(|| format!("PIN tried {tries} times"))
        }
        "SMS lost in the network" => {
            let lost = o
                .records
                .iter()
                .any(|r| matches!(r, Record::SmsLost { .. }));
            lost.then_some(())
                .ok_or_else(|| "no SMS was lost".to_string())
        }
        _ => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cellular_fault_matrix() {
    let cases = matrix();
    assert!(cases.len() >= 12);
    let mut set = JoinSet::new();
    // A few rows at a time: fast simulated timings, shared machine.
    let mut failures = Vec::new();
    let mut pending = cases.into_iter();
    let mut running = 0;
    loop {
        while running < 4 {
            let Some(case) = pending.next() else { break };
            running += 1;
            set.spawn(async move {
                let o = run_case(&case).await;
                (case.name, o)
            });
        }
        let Some(done) = set.join_next().await else {
            break;
        };
        running -= 1;
        match done {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(e))) => failures.push(format!("{name}: {e}")),
            Err(e) => failures.push(format!("task: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "fault matrix rows failed:\n{}",
        failures.join("\n")
    );
}

async fn run_case(case: &Case) -> Result<(), String> {
    let case_copy = Case {
        name: case.name,
        faults: case.faults.clone(),
        pin: case.pin,
        act: case.act.clone(),
        person: case.person.clone(),
        centre: case.centre.clone(),
        reply: case.reply.clone(),
        plan: case.plan.clone(),
        expect: case.expect,
    };
    let o = run(case_copy).await?;
    check(case, &o)?;
    check_details(case, &o)
}
