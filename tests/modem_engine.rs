//! The AT engine against a scripted module on a raw pty: echo, final results, URCs while a
//! command runs, the SMS prompt, timeouts.

use std::io::{Read, Write};
use std::time::Duration;

use serialport::{SerialPort, TTYPort};
use vigil::modem::at::{ErrorCode, FinalResult, Urc};
use vigil::modem::{engine, Command, ModemError};

/// A scripted module: answers each command line (CR-terminated) with the next reply.
fn scripted(replies: Vec<&'static [u8]>) -> (String, std::sync::mpsc::Receiver<Vec<u8>>) {
    let (mut master, slave) = TTYPort::pair().unwrap();
    master.set_timeout(Duration::from_millis(50)).unwrap();
    let path = slave.name().unwrap();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _keep = slave;
        let mut replies = replies.into_iter();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let n = match master.read(&mut buf) {
                Ok(n) => n,
                Err(_) => continue,
            };
            for &b in &buf[..n] {
                got.push(b);
                if b == b'\r' || b == 0x1A || b == 0x1B {
                    let _ = seen_tx.send(std::mem::take(&mut got));
                    match replies.next() {
                        Some(r) => {
                            let _ = master.write_all(r);
                        }
                        None => return,
                    }
                }
            }
        }
    });
    (path, seen_rx)
}

fn cmd(line: &str) -> Command {
    Command::new(line, Duration::from_millis(800))
}

#[tokio::test]
async fn echo_is_dropped_and_results_matched() {
    let (path, _seen) = scripted(vec![
        b"AT+CSQ\r\r\n+CSQ: 17,99\r\n\r\nOK\r\n",
        b"AT+CPIN?\r\r\n+CME ERROR: SIM not inserted\r\n",
        b"\r\n+CMS ERROR: 331\r\n",
    ]);
    let at = engine::open(&path, 115_200).unwrap();
    let r = at.send(cmd("AT+CSQ").expect("+CSQ:")).await.unwrap();
    assert_eq!(r.lines, vec!["+CSQ: 17,99"]);
    match at.send(cmd("AT+CPIN?")).await {
        Err(ModemError::Rejected { result, .. }) => {
            assert_eq!(
                result,
                FinalResult::Cme(ErrorCode::Verbose("SIM not inserted".into()))
            )
        }
        other => panic!("{other:?}"),
    }
    match at.send(cmd("AT+CMGS=5")).await {
        Err(ModemError::Rejected { result, .. }) => {
            assert_eq!(result, FinalResult::Cms(ErrorCode::Numeric(331)))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn urcs_during_a_command_are_events_not_responses() {
    let (path, _seen) = scripted(vec![
        b"\r\nRING\r\n\r\n+CLIP: \"+46701234567\",145,\"\",0,\"\",0\r\n\r\n+CREG: 2\r\n\r\n+CREG: 1,5\r\n\r\n+CMTI: \"SM\",2\r\n\r\nNO CARRIER\r\n\r\nOK\r\n",
    ]);
    let at = engine::open(&path, 115_200).unwrap();
    let mut urcs = at.subscribe();
    let r = at.send(cmd("AT+CREG?").expect("+CREG:")).await.unwrap();
    // `+CREG: 1,5` answers the query; `+CREG: 2` (no <n>) and everything else is unsolicited.
    assert_eq!(r.lines, vec!["+CREG: 1,5"]);
    let mut got = Vec::new();
    while let Ok(u) = urcs.try_recv() {
        got.push(u);
    }
    assert_eq!(
        got,
        vec![
            Urc::Ring,
            Urc::Clip {
                number: "+46701234567".into()
            },
            Urc::Creg(vigil::modem::at::RegStatus::Searching),
            Urc::Cmti {
                mem: "SM".into(),
                index: 2
            },
            Urc::NoCarrier,
        ]
    );
}

#[tokio::test]
async fn sms_body_goes_after_the_prompt_and_ends_with_ctrl_z() {
    let (path, seen) = scripted(vec![b"\r\n> ", b"\r\n+CMGS: 12\r\n\r\nOK\r\n"]);
    let at = engine::open(&path, 115_200).unwrap();
    let r = at
        .send(cmd("AT+CMGS=23").expect("+CMGS:").with_body("0011AB"))
        .await
        .unwrap();
    assert_eq!(r.line("+CMGS:"), Some("+CMGS: 12"));
    assert_eq!(seen.recv().unwrap(), b"AT+CMGS=23\r");
    assert_eq!(seen.recv().unwrap(), b"0011AB\x1a");
}

#[tokio::test]
async fn missing_prompt_times_out_and_aborts_with_esc() {
    // The aborted command ends with OK after the ESC; then the synchronising `AT`, then ours.
    let (path, seen) = scripted(vec![b"", b"\r\nOK\r\n", b"\r\nOK\r\n", b"\r\nOK\r\n"]);
    let at = engine::open(&path, 115_200).unwrap();
    let e = at
        .send(Command::new("AT+CMGS=23", Duration::from_millis(200)).with_body("00"))
        .await
        .unwrap_err();
    assert!(matches!(e, ModemError::Timeout { .. }), "{e}");
    assert_eq!(seen.recv().unwrap(), b"AT+CMGS=23\r");
    assert_eq!(seen.recv().unwrap(), b"\x1b");
    // The engine is usable afterwards.
    at.send(cmd("AT")).await.unwrap();
    assert_eq!(seen.recv().unwrap(), b"AT\r");
    assert_eq!(seen.recv().unwrap(), b"AT\r");
}

#[tokio::test]
async fn garbage_and_a_silent_module_are_survived() {
    let (path, _seen) = scripted(vec![b"\xff\xfe\x00junk\r\n\x13\r\nOK\r\n", b""]);
    let at = engine::open(&path, 115_200).unwrap();
    at.send(cmd("AT")).await.unwrap();
    let e = at
        .send(Command::new("AT", Duration::from_millis(150)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ModemError::Timeout {
                timeout_ms: 150,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn a_caller_that_gave_up_in_the_queue_is_never_sent() {
    // FIRST gets no answer (times out); SECOND waits behind it and is aborted; THIRD runs
    // after the synchronising `AT`.
    let (path, seen) = scripted(vec![b"", b"\r\nOK\r\n", b"\r\nOK\r\n"]);
    let at = engine::open(&path, 115_200).unwrap();
    let first = tokio::spawn({
        let at = at.clone();
        async move {
            at.send(Command::new("AT+FIRST", Duration::from_millis(300)))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = tokio::spawn({
        let at = at.clone();
        async move { at.send(cmd("AT+SECOND")).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    second.abort();
    assert!(first.await.unwrap().is_err());
    at.send(cmd("AT+THIRD")).await.unwrap();
    assert_eq!(seen.recv().unwrap(), b"AT+FIRST\r");
    assert_eq!(seen.recv().unwrap(), b"AT\r");
    assert_eq!(seen.recv().unwrap(), b"AT+THIRD\r");
}

#[tokio::test]
async fn a_pin_never_appears_in_an_error() {
    let (path, _seen) = scripted(vec![b""]);
    let at = engine::open(&path, 115_200).unwrap();
    let e = at
        .send(Command::new("AT+CPIN=\"4921\"", Duration::from_millis(100)))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(!text.contains("4921"), "{text}");
    assert!(text.contains("AT+CPIN=<secret>"), "{text}");
}

#[tokio::test]
async fn a_urc_in_the_same_read_as_the_prompt_does_not_hide_it() {
    let (path, seen) = scripted(vec![
        b"\r\n> \r\n+CMTI: \"SM\",3\r\n",
        b"\r\n+CMGS: 12\r\n\r\nOK\r\n",
    ]);
    let at = engine::open(&path, 115_200).unwrap();
    let mut urcs = at.subscribe();
    let r = at
        .send(cmd("AT+CMGS=23").expect("+CMGS:").with_body("0011AB"))
        .await
        .unwrap();
    assert_eq!(r.line("+CMGS:"), Some("+CMGS: 12"));
    assert_eq!(seen.recv().unwrap(), b"AT+CMGS=23\r");
    assert_eq!(seen.recv().unwrap(), b"0011AB\x1a");
    assert_eq!(
        urcs.recv().await.unwrap(),
        Urc::Cmti {
            mem: "SM".into(),
            index: 3
        }
    );
}

#[tokio::test]
async fn a_late_answer_is_never_credited_to_the_next_command() {
    // AT+CPIN? gets no answer in time; its answer comes late, after the engine's
    // synchronising `AT` has gone out, followed by that `AT`'s own OK.
    let (path, seen) = scripted(vec![
        b"",
        b"\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n\r\nOK\r\n",
        b"\r\n+CSQ: 17,99\r\n\r\nOK\r\n",
    ]);
    let at = engine::open(&path, 115_200).unwrap();
    let e = at
        .send(Command::new("AT+CPIN?", Duration::from_millis(200)).expect("+CPIN:"))
        .await
        .unwrap_err();
    assert!(matches!(e, ModemError::Timeout { .. }), "{e}");
    let r = at.send(cmd("AT+CSQ").expect("+CSQ:")).await.unwrap();
    assert_eq!(r.line("+CSQ:"), Some("+CSQ: 17,99"));
    assert_eq!(r.lines, vec!["+CSQ: 17,99"]);
    assert_eq!(seen.recv().unwrap(), b"AT+CPIN?\r");
    assert_eq!(seen.recv().unwrap(), b"AT\r");
    assert_eq!(seen.recv().unwrap(), b"AT+CSQ\r");
}
