//! A fall carries what the pendant's detector measured (impact, free fall, posture change,
//! stillness) from the radio frame to the journal, `vigil log`, the SCAIP `<ite>`, the DC-09
//! alarm text and the SMS, and keeps it across a restart.

mod site_support;

use std::time::Duration;

use site_support::*;
use vigil::centre::receiver::scaip::ScaipAnswer;
use vigil::core::{Alarm, AlarmCause, AlarmId, AlarmRef, FallEvidence, Record, Timestamp};
use vigil::journal::Journal;
use vigil::modem::network::Record as Net;
use vigil::radio::frame::Event as Frame;
use vigil::runtime::appliance::AudioChoice;
use vigil::runtime::simsite::{numbers, SiteOptions};

const LIMIT: Duration = Duration::from_secs(40);

const MEASURED: FallEvidence = FallEvidence {
    peak_mg: 4870,
    free_fall_ms: 160,
    posture_change_deg: 95,
    stillness_mg: 60,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fall_reaches_every_centre_with_its_evidence() {
    let options = SiteOptions {
        fall_window: Duration::from_secs(1),
        ..SiteOptions::default()
    };
    let mut r = start(options, |_| AudioChoice::Mute, |_| {}).await;
    // SCAIP refuses the first message, so DC-09 carries the alarm too.
    r.site.scaip.script(vec![ScaipAnswer::snu(5)]);
    let p = press(r.site.radio, 0, 1, Frame::Fall(MEASURED))
        .await
        .unwrap();
    assert!(p.acked_at.is_some());
    r.until("acknowledged", LIMIT, is_ack).await;

    let raised = r.raised();
    assert_eq!(raised[0].cause, AlarmCause::Fall);
    assert_eq!(raised[0].evidence, Some(MEASURED), "the core keeps it");
    let words = "impact 4.9 g, free fall 160 ms, turned 95";
    let mrq = r
        .site
        .scaip
        .received()
        .into_iter()
        .find_map(|x| x.mrq)
        .expect("SCAIP got the alarm");
    let ite = mrq.ite.expect("<ite> carries the evidence");
    assert!(ite.contains(words) && ite.len() <= 128, "{ite}");
    let dc09 = r.site.dc09.received();
    // The receiver decrypts the frame and shows its alarm text to the operator.
    let text = &dc09.last().expect("DC-09 got it").display;
    assert!(text.contains(words), "{text}");

    // The SMS route, with the IP centre down.
    r.site.ip_centre_down(true);
    let p = press(r.site.radio, 0, 2, Frame::Fall(MEASURED))
        .await
        .unwrap();
    assert!(p.acked_at.is_some());
    let deadline = std::time::Instant::now() + LIMIT;
    let sms = loop {
        let found = r
            .site
            .cellular
            .network
            .records()
            .into_iter()
            .find_map(|x| match x {
                Net::SmsDelivered { to, text, .. } if to == numbers::SMS_GATEWAY => Some(text),
                _ => None,
            });
        if let Some(t) = found {
            break t;
        }
        assert!(std::time::Instant::now() < deadline, "no SMS");
        r.drain_for(Duration::from_millis(200)).await;
    };
    assert!(sms.contains(words), "{sms}");
    // No degree sign: it is not in the GSM 7-bit alphabet and would double the SMS's size.
    assert!(!sms.contains('°'), "{sms}");

    let journal = r.stop().await;
    let log: Vec<String> = journal
        .timeline(50)
        .unwrap()
        .into_iter()
        .map(|e| e.text)
        .collect();
    assert!(
        log.iter()
            .any(|l| l.starts_with("RAISED") && l.contains("impact 4.9 g") && l.contains("95°")),
        "{log:#?}"
    );
}

#[test]
fn the_journal_keeps_the_evidence_of_an_open_alarm_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let at = Timestamp(1_764_000_000_000);
    let alarm = Alarm {
        id: AlarmId(3),
        reference: AlarmRef::new(AlarmId(3), at),
        cause: AlarmCause::Fall,
        device: None,
        raised_at: at,
        evidence: Some(MEASURED),
    };
    {
        let mut j = Journal::open(&path).unwrap();
        j.append(&Record::Raised {
            alarm: alarm.clone(),
            window_until: None,
            frame: None,
        })
        .unwrap();
    }
    let j = Journal::open(&path).unwrap();
    let open = j.recover().unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].alarm, alarm, "resumed with its evidence");
}

#[test]
fn evidence_reads_back_from_its_record_and_refuses_anything_else() {
    assert_eq!(
        FallEvidence::from_record(&MEASURED.to_record()),
        Some(MEASURED)
    );
    for bad in ["", "1,2,3", "1,2,3,4,5", "a,b,c,d", "1,2,300,4"] {
        assert_eq!(FallEvidence::from_record(bad), None, "{bad}");
    }
}
