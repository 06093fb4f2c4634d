//! Remote SMS commands stay unreplayable across a restart: the last accepted nonce is kept in
//! a store the next modem reads (the journal on the unit).

use std::time::Duration;

use vigil::journal::Journal;
use vigil::modem::device::Settings;
use vigil::modem::sim::{SimConfig, SimWorld};
use vigil::modem::{
    auth, MemoryNonce, Modem, ModemEvent, NonceStore, RemoteCommand, RemoteRefusal, Timing,
};

const UNIT_NO: &str = "+46700000001";
const PERSON: &str = "+46700000020";
const SECRET: &str = "remote-secret";

/// A unit's modem starting over `nonces`: a fresh simulated module and network.
async fn boot(nonces: Box<dyn NonceStore>) -> (SimWorld, Modem) {
    let w = SimWorld::start(SimConfig::new(UNIT_NO)).expect("pty");
    let at = vigil::modem::engine::open(w.module.path(), 115_200).expect("open");
    let m = Modem::start_with_nonces(
        at,
        Settings {
            sim_pin: None,
            allowed_numbers: vec![PERSON.into()],
            remote_secret: Some(SECRET.into()),
            voice_port: None,
            call_device: None,
            call_audio: None,
        },
        Timing::fast(),
        None,
        nonces,
    );
    m.wait_usable(Duration::from_secs(5)).await.expect("usable");
    (w, m)
}

/// Sends `verb nonce code` from the allowed number; what the modem made of it.
async fn command(w: &SimWorld, m: &Modem, verb: &str, nonce: u64) -> ModemEvent {
    let text = format!("{verb} {nonce}");
    let code = auth::code(SECRET, &text);
    sms(w, m, &format!("{text} {code}")).await
}

/// Sends `text` from the allowed number; what the modem made of it.
async fn sms(w: &SimWorld, m: &Modem, text: &str) -> ModemEvent {
    let mut ev = m.events();
    w.network.sms_to_modem(UNIT_NO, PERSON, text);
    loop {
        match tokio::time::timeout(Duration::from_secs(3), ev.recv()).await {
            Ok(Ok(e @ (ModemEvent::Remote { .. } | ModemEvent::Ignored { .. }))) => return e,
            Ok(Ok(_)) => {}
            other => panic!("no verdict on `{text}`: {other:?}"),
        }
    }
}

fn accepted(e: &ModemEvent, command: RemoteCommand) -> bool {
    *e == ModemEvent::Remote {
        from: PERSON.into(),
        command,
    }
}

fn replayed(e: &ModemEvent) -> bool {
    matches!(
        e,
        ModemEvent::Ignored {
            why: RemoteRefusal::Replayed,
            ..
        }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_replayed_after_a_restart_is_refused() {
    let store = MemoryNonce::default();
    let (w, m) = boot(Box::new(store.clone())).await;
    let e = command(&w, &m, "SILENCE", 41).await;
    assert!(accepted(&e, RemoteCommand::Silence), "{e:?}");
    assert_eq!(store.last_nonce().unwrap(), 41);
    drop((w, m));

    // The unit restarts; the same store, a new modem.
    let (w, m) = boot(Box::new(store.clone())).await;
    let e = command(&w, &m, "SILENCE", 41).await;
    assert!(replayed(&e), "{e:?}");
    let e = command(&w, &m, "TEST", 40).await;
    assert!(replayed(&e), "{e:?}");
    let e = command(&w, &m, "TEST", 42).await;
    assert!(accepted(&e, RemoteCommand::Test), "{e:?}");

    // A fresh store (what the unit had before) would have let the replay through.
    let (w, m) = boot(Box::new(MemoryNonce::default())).await;
    let e = command(&w, &m, "SILENCE", 41).await;
    assert!(accepted(&e, RemoteCommand::Silence), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_keeps_the_nonce_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (w, m) = boot(Box::new(Journal::open_dir(dir.path()).unwrap())).await;
    let e = command(&w, &m, "STATUS", 7).await;
    assert!(accepted(&e, RemoteCommand::Status), "{e:?}");
    // A wrong code does not move the nonce.
    let e = sms(&w, &m, "TEST 99 000000").await;
    assert!(
        matches!(
            &e,
            ModemEvent::Ignored {
                why: RemoteRefusal::WrongCode,
                ..
            }
        ),
        "{e:?}"
    );
    drop((w, m));

    let (w, m) = boot(Box::new(Journal::open_dir(dir.path()).unwrap())).await;
    let e = command(&w, &m, "STATUS", 7).await;
    assert!(replayed(&e), "{e:?}");
    let e = command(&w, &m, "TEST", 8).await;
    assert!(accepted(&e, RemoteCommand::Test), "{e:?}");
    assert_eq!(
        Journal::open_dir(dir.path())
            .unwrap()
            .remote_nonce()
            .unwrap(),
        8
    );

    // Nonces use all 64 bits.
    let mut j = Journal::open_dir(dir.path()).unwrap();
    j.set_remote_nonce(u64::MAX - 1).unwrap();
    assert_eq!(
        Journal::open_dir(dir.path())
            .unwrap()
            .remote_nonce()
            .unwrap(),
        u64::MAX - 1
    );
    let e = command(&w, &m, "TEST", u64::MAX - 1).await;
    assert!(replayed(&e), "{e:?}");
    let e = command(&w, &m, "TEST", u64::MAX).await;
    assert!(accepted(&e, RemoteCommand::Test), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_usable_store_remote_commands_are_refused() {
    let (w, m) = boot(Box::new(vigil::modem::NoNonceStore(
        "journal unavailable".into(),
    )))
    .await;
    let e = command(&w, &m, "TEST", 1).await;
    assert!(
        matches!(&e, ModemEvent::Ignored { why: RemoteRefusal::NonceUnreadable(e), .. } if e.0.contains("journal unavailable")),
        "{e:?}"
    );
}
