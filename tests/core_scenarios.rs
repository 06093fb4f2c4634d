//! Alarm scenarios driven through the sans-IO core with a fake clock.

mod common;

use std::time::Duration;

use common::*;
use vigil::core::*;

const S: fn(u64) -> Duration = Duration::from_secs;

fn single(outputs: &[Output]) -> Delivery {
    let d = deliveries(outputs);
    assert_eq!(d.len(), 1, "expected exactly one delivery in {outputs:#?}");
    d.into_iter().next().unwrap()
}

#[test]
fn help_press_is_journaled_first_then_delivered_and_acknowledged() {
    let mut h = Harness::new(settings());
    let out = h.radio(1, RadioEventKind::Help);
    // The very first output is the durable record of the alarm.
    let Output::Persist(Record::Raised {
        alarm,
        window_until,
        frame,
    }) = &out[0]
    else {
        panic!("first output must persist the alarm: {out:#?}");
    };
    assert_eq!(alarm.cause, AlarmCause::Help);
    assert_eq!(alarm.device.as_ref().unwrap().location, "room 1");
    assert_eq!(*window_until, None);
    // The frame's counter is journaled with the alarm, in the same transaction.
    assert_eq!(*frame, Some(1));
    // The pendant is acknowledged only after the alarm is on disk.
    let ack_at = out
        .iter()
        .position(|o| matches!(o, Output::AckPendant { .. }))
        .unwrap();
    assert!(ack_at > 0);
    let d = single(&out);
    assert_eq!(d.route, RouteId(0));
    assert_eq!(d.attempt, 1);
    assert!(prompts(&out).contains(&Prompt::CallingCentre));

    let out = h.result(&d, acked("SCAIP receiver"));
    assert!(matches!(
        &records(&out)[..],
        [Record::Acknowledged {
            attempt: 1,
            route: RouteId(0),
            ..
        }]
    ));
    assert_eq!(prompts(&out), vec![Prompt::HelpComing]);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::AutoAnswer { until } if *until == h.now + S(900))));
    assert!(h.core.open_alarms().is_empty());
}

#[test]
fn cancel_inside_pre_alarm_window_stops_the_alarm_without_any_delivery() {
    let mut h = Harness::new(settings());
    let out = h.radio(3, RadioEventKind::Help); // fixed trigger: 10 s window
    assert!(deliveries(&out).is_empty());
    assert!(prompts(&out).contains(&Prompt::PreAlarm));
    h.advance(S(9));
    let out = h.input(Input::Button(BaseButton::Cancel));
    assert!(matches!(
        &records(&out)[..],
        [Record::Cancelled {
            by: CancelSource::BaseButton,
            ..
        }]
    ));
    assert_eq!(prompts(&out), vec![Prompt::Cancelled]);
    let out = h.advance(S(3600));
    assert!(deliveries(&out).is_empty());
    assert!(deliveries(&h.outputs).is_empty());
}

#[test]
fn cancel_after_the_window_does_not_stop_help() {
    let mut h = Harness::new(settings());
    h.radio(3, RadioEventKind::Help);
    let out = h.advance(S(10));
    let d = single(&out);
    assert!(records(&out).iter().any(|r| matches!(
        r,
        Record::Escalated {
            reason: EscalationReason::WindowExpired,
            ..
        }
    )));
    let out = h.input(Input::Button(BaseButton::Cancel));
    assert!(
        records(&out).is_empty(),
        "a late cancel must not end the alarm"
    );
    assert_eq!(h.core.open_alarms().len(), 1);
    let out = h.result(&d, acked("centre"));
    assert!(matches!(&records(&out)[..], [Record::Acknowledged { .. }]));
}

#[test]
fn fall_with_no_answer_escalates_when_the_window_ends() {
    let mut h = Harness::new(settings());
    let out = h.radio(2, RadioEventKind::Fall { evidence: None });
    assert!(prompts(&out).contains(&Prompt::FallDetected));
    assert!(out.iter().any(|o| matches!(o, Output::Listen { .. })));
    // The question is repeated during the window.
    let out = h.advance(S(29));
    assert!(
        prompts(&out)
            .iter()
            .filter(|p| **p == Prompt::FallDetected)
            .count()
            >= 2
    );
    assert!(deliveries(&out).is_empty());
    let out = h.advance(S(1));
    let d = single(&out);
    assert_eq!(d.alarm.cause, AlarmCause::Fall);
    assert_eq!(AlarmCause::Fall.contact_id(), (1, 100));
}

#[test]
fn help_during_fall_window_escalates_at_once() {
    let mut h = Harness::new(settings());
    h.radio(2, RadioEventKind::Fall { evidence: None });
    h.advance(S(5));
    let out = h.radio(2, RadioEventKind::Help);
    assert!(records(&out).iter().any(|r| matches!(
        r,
        Record::Escalated {
            reason: EscalationReason::HelpPressed,
            ..
        }
    )));
    assert_eq!(deliveries(&out).len(), 1);
    assert_eq!(h.core.open_alarms().len(), 1, "merged, not a second alarm");
}

#[test]
fn speech_or_unclear_audio_escalates_and_silence_waits_for_the_window() {
    for (heard, reason, prompt) in [
        (
            Heard::Speech,
            EscalationReason::SpeechHeard,
            Prompt::HeardYou,
        ),
        (
            Heard::Unclear,
            EscalationReason::Unclear,
            Prompt::CallingCentre,
        ),
    ] {
        let mut h = Harness::new(settings());
        let out = h.radio(2, RadioEventKind::Fall { evidence: None });
        let id = records(&out)[0].alarm();
        h.advance(S(3));
        let out = h.input(Input::Heard { alarm: id, heard });
        assert!(records(&out)
            .iter()
            .any(|r| matches!(r, Record::Escalated { reason: r2, .. } if *r2 == reason)));
        assert!(prompts(&out).contains(&prompt));
        assert_eq!(deliveries(&out).len(), 1);
    }
    let mut h = Harness::new(settings());
    let out = h.radio(2, RadioEventKind::Fall { evidence: None });
    let id = records(&out)[0].alarm();
    let out = h.input(Input::Heard {
        alarm: id,
        heard: Heard::Silence,
    });
    assert!(deliveries(&out).is_empty());
    let out = h.advance(S(30));
    assert_eq!(deliveries(&out).len(), 1);
}

#[test]
fn pendant_long_press_cancels_its_own_fall_only() {
    let mut h = Harness::new(settings());
    h.radio(2, RadioEventKind::Fall { evidence: None });
    h.radio(3, RadioEventKind::Help);
    let out = h.radio(2, RadioEventKind::Cancel);
    let cancelled: Vec<_> = records(&out)
        .into_iter()
        .filter(|r| matches!(r, Record::Cancelled { .. }))
        .collect();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(h.core.open_alarms().len(), 1);
    assert_eq!(h.core.open_alarms()[0].alarm.cause, AlarmCause::Help);
}

/// A route whose last attempt failed is tried after the others: before, every alarm went
/// to the dead first route and waited out its timeout before the working one. It is still
/// tried in each round (last), and one acknowledgement on it puts it back in its place.
#[test]
fn a_route_known_to_be_down_is_tried_after_the_others() {
    let mut h = Harness::new(settings());
    let d = single(&h.radio(1, RadioEventKind::Help));
    assert_eq!(d.route, RouteId(0));
    let d = single(&h.result(&d, failed("no answer from the proxy")));
    assert_eq!(d.route, RouteId(1));
    h.result(&d, acked("centre"));
    assert_eq!(
        h.core.routes_down().map(|(r, _)| r).collect::<Vec<_>>(),
        vec![RouteId(0)]
    );

    // The next alarm goes to a route not known to be down first.
    let d = single(&h.radio(1, RadioEventKind::Help));
    assert_eq!(
        d.route,
        RouteId(1),
        "the known-dead route is not tried first"
    );
    let d = single(&h.result(&d, failed("busy")));
    assert_eq!(d.route, RouteId(2));
    let d = single(&h.result(&d, failed("busy")));
    assert_eq!(
        d.route,
        RouteId(0),
        "the dead route still gets its turn, last"
    );
    h.result(&d, acked("centre"));
    assert!(
        !h.core.routes_down().any(|(r, _)| r == RouteId(0)),
        "an acknowledgement brings it back"
    );
}

#[test]
fn failed_routes_are_tried_in_order_then_rounds_repeat_fast_then_slow_forever() {
    let mut h = Harness::new(settings());
    let mut d = single(&h.radio(1, RadioEventKind::Help));
    let mut attempts = 0;
    let mut pauses = Vec::new();
    let mut last_round_start = h.now;
    for round in 1..=20 {
        for expected_route in 0..3 {
            assert_eq!(d.route, RouteId(expected_route), "round {round}");
            attempts += 1;
            assert_eq!(d.attempt, attempts);
            let out = h.result(&d, failed("no network"));
            if expected_route < 2 {
                d = single(&out);
            } else {
                assert!(prompts(&out).contains(&Prompt::StillTrying));
                assert!(deliveries(&out).is_empty());
            }
        }
        // Wait for the next round.
        let before = h.now;
        let mut out = Vec::new();
        while deliveries(&out).is_empty() {
            out = h.advance(S(10));
            assert!(h.now.since(before) <= S(620), "retries must go on");
        }
        pauses.push(h.now.since(before).as_secs());
        d = single(&out);
        last_round_start = h.now;
    }
    let _ = last_round_start;
    assert!(
        pauses[..16].iter().all(|p| (30..=40).contains(p)),
        "{pauses:?}"
    );
    assert!(
        pauses[16..].iter().all(|p| (600..=610).contains(p)),
        "{pauses:?}"
    );
    assert_eq!(h.core.open_alarms().len(), 1);
}

#[test]
fn an_attempt_without_result_times_out_is_aborted_and_the_next_route_goes() {
    let mut h = Harness::new(settings());
    let d = single(&h.radio(1, RadioEventKind::Help));
    let out = h.advance(S(60));
    assert!(out.contains(&Output::AbortDelivery {
        alarm: d.alarm.id,
        attempt: 1
    }));
    assert!(records(&out).iter().any(|r| matches!(r, Record::AttemptFailed { reason, .. } if reason.contains("no result within 1m"))));
    let next = single(&out);
    assert_eq!(next.route, RouteId(1));
    // A failure of the abandoned attempt arriving late changes nothing...
    let out = h.result(&d, failed("late"));
    assert!(out.is_empty());
    // ...but a late acknowledgement is still an acknowledgement: the receiver has it.
    let out = h.result(&d, acked("slow centre"));
    assert!(records(&out).iter().any(|r| matches!(
        r,
        Record::Acknowledged {
            attempt: 1,
            route: RouteId(0),
            ..
        }
    )));
    assert!(out.contains(&Output::AbortDelivery {
        alarm: d.alarm.id,
        attempt: 2
    }));
    assert!(h.core.open_alarms().is_empty());
}

#[test]
fn hold_resends_on_the_same_route_until_its_limit_then_moves_on() {
    let mut h = Harness::new(settings());
    let mut d = single(&h.radio(1, RadioEventKind::Help));
    let hold = DeliveryResult::Hold { retry_after: S(10) };
    let mut resends = 0;
    loop {
        let out = h.result(&d, hold.clone());
        if let Some(next) = deliveries(&out).pop() {
            assert_eq!(
                next.route,
                RouteId(1),
                "after the hold limit, the next route"
            );
            break;
        }
        let out = h.advance(S(10));
        d = single(&out);
        assert_eq!(d.route, RouteId(0));
        resends += 1;
        assert!(resends < 100);
    }
    assert!(
        (17..=19).contains(&resends),
        "{resends} resends in a 180 s hold limit"
    );
}

#[test]
fn declined_goes_to_the_next_route_at_once() {
    let mut h = Harness::new(settings());
    let d = single(&h.radio(1, RadioEventKind::Help));
    let out = h.result(
        &d,
        DeliveryResult::Declined {
            reason: "snu=6 busy".into(),
        },
    );
    assert_eq!(single(&out).route, RouteId(1));
}

#[test]
fn acknowledgement_of_an_attempt_never_started_opens_nothing() {
    let mut h = Harness::new(settings());
    let d = single(&h.radio(1, RadioEventKind::Help));
    let forged = Delivery {
        attempt: d.attempt + 7,
        ..d.clone()
    };
    let out = h.result(
        &forged,
        DeliveryResult::Acked {
            by: "centre".into(),
            callback: Some("+46705555555".into()),
        },
    );
    assert!(
        !out.iter().any(|o| matches!(
            o,
            Output::AutoAnswer { .. } | Output::StartCall { .. } | Output::Persist(_)
        )),
        "{out:?}"
    );
    // The genuine attempt still acknowledges the alarm and opens the window.
    let out = h.result(
        &d,
        DeliveryResult::Acked {
            by: "centre".into(),
            callback: None,
        },
    );
    assert!(
        out.iter().any(|o| matches!(o, Output::AutoAnswer { .. })),
        "{out:?}"
    );
}

#[test]
fn callback_request_starts_a_call() {
    let mut h = Harness::new(settings());
    let d = single(&h.radio(1, RadioEventKind::Help));
    let out = h.result(
        &d,
        DeliveryResult::Acked {
            by: "centre".into(),
            callback: Some("+46705555555".into()),
        },
    );
    assert!(out.contains(&Output::StartCall {
        alarm: d.alarm.id,
        number: "+46705555555".into()
    }));
    let out = h.input(Input::Call {
        alarm: d.alarm.id,
        event: CallEvent::Connected,
    });
    assert_eq!(prompts(&out), vec![Prompt::Connected]);
}

/// A call-back the adapter refused (a number not on the allow-list) is journalled against
/// its alarm: the household can see the centre asked for it and that it was not placed.
#[test]
fn refused_callback_is_journalled() {
    let mut h = Harness::new(settings());
    let d = single(&h.radio(1, RadioEventKind::Help));
    h.result(
        &d,
        DeliveryResult::Acked {
            by: "centre".into(),
            callback: Some("+46709999999".into()),
        },
    );
    let out = h.input(Input::Call {
        alarm: d.alarm.id,
        event: CallEvent::Refused {
            reason: "+46709999999 is not an allowed number".into(),
        },
    });
    assert!(
        matches!(
            &records(&out)[..],
            [Record::CallBackRefused { alarm, reason, .. }]
                if *alarm == d.alarm.id && reason.contains("not an allowed")
        ),
        "{out:?}"
    );
    assert!(prompts(&out).is_empty(), "{out:?}");
}

#[test]
fn second_pendant_during_an_alarm_is_a_second_alarm_that_waits_for_the_line() {
    let mut h = Harness::new(settings());
    let d1 = single(&h.radio(1, RadioEventKind::Help));
    let out = h.radio(3, RadioEventKind::Help);
    let out2 = h.advance(S(10)); // fixed trigger window ends
    assert!(records(&out)
        .iter()
        .any(|r| matches!(r, Record::Raised { .. })));
    assert!(
        deliveries(&out).is_empty() && deliveries(&out2).is_empty(),
        "one call at a time"
    );
    assert_eq!(h.core.open_alarms().len(), 2);
    let out = h.result(&d1, acked("centre"));
    let d2 = single(&out);
    assert_eq!(d2.alarm.device.unwrap().id, DeviceId(0xA003));
}

#[test]
fn same_pendant_pressing_again_is_merged_not_a_call_storm() {
    let mut h = Harness::new(settings());
    single(&h.radio(1, RadioEventKind::Help));
    for _ in 0..10 {
        let out = h.radio(1, RadioEventKind::Help);
        assert!(matches!(&records(&out)[..], [Record::Repeated { .. }]));
        assert!(deliveries(&out).is_empty());
        assert!(out.iter().any(|o| matches!(o, Output::AckPendant { .. })));
    }
    assert_eq!(h.core.open_alarms().len(), 1);
}

#[test]
fn a_personal_alarm_sets_aside_a_technical_report_in_flight() {
    let mut h = Harness::new(settings());
    h.input(Input::Mains { present: false });
    let out = h.advance(S(120));
    let tech = single(&out);
    assert_eq!(tech.alarm.cause, AlarmCause::MainsLost);
    let out = h.radio(1, RadioEventKind::Help);
    assert!(out.contains(&Output::AbortDelivery {
        alarm: tech.alarm.id,
        attempt: 1
    }));
    let d = single(&out);
    assert_eq!(d.alarm.cause, AlarmCause::Help);
    // The technical report resumes on the same route once the personal alarm is through.
    let out = h.result(&d, acked("centre"));
    let again = single(&out);
    assert_eq!(
        (again.alarm.id, again.route, again.attempt),
        (tech.alarm.id, RouteId(0), 2)
    );
}

#[test]
fn technical_reports_skip_routes_that_carry_personal_alarms_only() {
    let mut h = Harness::new(settings());
    let d = single(&h.input(Input::TestRequest));
    assert_eq!(d.alarm.cause, AlarmCause::ManualTest);
    let d = single(&h.result(&d, failed("x")));
    assert_eq!(d.route, RouteId(1));
    let out = h.result(&d, failed("x"));
    assert!(
        deliveries(&out).is_empty(),
        "the person's phone is not called for a test"
    );
}

#[test]
fn short_mains_dips_are_not_reported_long_ones_are_and_so_is_the_return() {
    let mut h = Harness::new(settings());
    h.input(Input::Mains { present: false });
    h.advance(S(100));
    h.input(Input::Mains { present: true });
    assert!(deliveries(&h.advance(S(600))).is_empty());
    assert!(records(&h.outputs).is_empty());

    h.input(Input::Mains { present: false });
    let out = h.advance(S(120));
    let d = single(&out);
    assert_eq!(d.alarm.cause, AlarmCause::MainsLost);
    assert!(prompts(&out).contains(&Prompt::MainsLost));
    h.result(&d, acked("centre"));
    let out = h.input(Input::Mains { present: true });
    assert_eq!(single(&out).alarm.cause, AlarmCause::MainsRestored);
}

/// `SILENCE` (an authenticated remote command) keeps technical prompts quiet at the base for
/// eight hours; the reports still go to the centre and alarm prompts still play. Before, the
/// command was accepted and then ignored.
#[test]
fn silence_quiets_technical_prompts_for_eight_hours_only() {
    let mut h = Harness::new(settings());
    h.input(Input::SilenceWarnings);
    assert!(h.core.silenced_until().is_some());
    h.input(Input::Mains { present: false });
    let out = h.advance(S(120));
    let d = single(&out);
    assert_eq!(d.alarm.cause, AlarmCause::MainsLost, "still reported");
    assert!(!prompts(&out).contains(&Prompt::MainsLost), "{out:?}");
    h.result(&d, acked("centre"));
    // Help is never silenced.
    let out = h.radio(1, RadioEventKind::Help);
    assert!(
        !prompts(&out).is_empty() || !deliveries(&out).is_empty(),
        "{out:?}"
    );

    h.advance(S(8 * 3600));
    assert!(h.core.silenced_until().is_none());
    let out = h.input(Input::Mains { present: true });
    assert!(prompts(&out).contains(&Prompt::MainsRestored), "{out:?}");
}

#[test]
fn a_silent_pendant_is_reported_missing_and_restored_when_heard() {
    let mut h = Harness::new(settings());
    h.advance(S(3600));
    h.radio(
        1,
        RadioEventKind::Heartbeat {
            battery_mv: 2900,
            alarms_sent: None,
        },
    );
    h.radio(
        2,
        RadioEventKind::Heartbeat {
            battery_mv: 2900,
            alarms_sent: None,
        },
    );
    let out = h.advance(S(3 * 3600 - 60));
    // Device 3 never spoke since start; devices 1 and 2 spoke just now: nothing yet.
    assert!(deliveries(&out).is_empty());
    let out = h.advance(S(60));
    let d = single(&out);
    assert_eq!(
        (d.alarm.cause, d.alarm.device.as_ref().unwrap().id),
        (AlarmCause::PendantMissing, DeviceId(0xA003))
    );
    assert!(h
        .core
        .devices()
        .iter()
        .any(|s| s.device.id == DeviceId(0xA003) && s.missing));
    h.result(&d, acked("centre"));
    let out = h.radio(
        3,
        RadioEventKind::Heartbeat {
            battery_mv: 3000,
            alarms_sent: None,
        },
    );
    assert_eq!(single(&out).alarm.cause, AlarmCause::PendantRestored);
}

#[test]
fn low_battery_is_reported_once_a_day_and_jamming_once_per_episode() {
    let mut h = Harness::new(settings());
    let d = single(&h.radio(1, RadioEventKind::LowBattery { battery_mv: 2100 }));
    h.result(&d, acked("c"));
    assert!(deliveries(&h.radio(1, RadioEventKind::LowBattery { battery_mv: 2090 })).is_empty());
    h.advance(S(24 * 3600));
    // After a day the periodic test also ran; accept whatever is in flight, then check.
    for d in deliveries(&h.outputs.clone())
        .into_iter()
        .filter(|d| d.alarm.cause == AlarmCause::PeriodicTest)
    {
        h.result(&d, acked("c"));
    }
    let out = h.radio(1, RadioEventKind::LowBattery { battery_mv: 2080 });
    assert!(records(&out).iter().any(|r| matches!(r, Record::Raised { alarm, .. } if alarm.cause == AlarmCause::PendantBatteryLow)));

    let mut h = Harness::new(settings());
    let d = single(&h.input(Input::Jamming { active: true }));
    assert_eq!(d.alarm.cause, AlarmCause::Jamming);
    h.result(&d, acked("c"));
    assert!(h.input(Input::Jamming { active: true }).is_empty());
    assert_eq!(
        single(&h.input(Input::Jamming { active: false }))
            .alarm
            .cause,
        AlarmCause::JammingEnded
    );
}

#[test]
fn periodic_test_runs_at_the_units_offset_every_interval() {
    let mut s = settings();
    s.supervision.missing_after = S(7 * 86_400);
    let mut h = Harness::new(s);
    let first = h.core.next_test();
    assert_eq!((first.as_secs() % 86_400), 3 * 3600);
    assert!(first > T0 && first.since(T0) <= S(86_400));
    let out = h.advance(first.since(T0));
    let d = single(&out);
    assert_eq!(d.alarm.cause, AlarmCause::PeriodicTest);
    h.result(&d, acked("c"));
    assert_eq!(h.core.next_test(), first + S(86_400));
}

#[test]
fn restart_resumes_open_alarms_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite");
    let (fall_id, help_id);
    {
        let mut journal = vigil::journal::Journal::open(&path).unwrap();
        let mut h = Harness::new(settings());
        h.radio(1, RadioEventKind::Help); // escalates at once, attempt 1 running
        h.radio(2, RadioEventKind::Fall { evidence: None }); // in its 30 s window
        for r in records(&h.outputs) {
            journal.append(&r).unwrap();
        }
        let recs = records(&h.outputs);
        help_id = recs[0].alarm();
        fall_id = recs
            .iter()
            .find_map(|r| match r {
                Record::Raised { alarm, .. } if alarm.cause == AlarmCause::Fall => Some(alarm.id),
                _ => None,
            })
            .unwrap();
        // Power lost here.
    }
    let journal = vigil::journal::Journal::open(&path).unwrap();
    let recovered = journal.recover().unwrap();
    assert_eq!(recovered.len(), 2);
    assert_eq!(recovered[0].attempts, 1);
    let now = T0 + S(10);
    let mut core = Core::new(settings(), now, journal.next_id().unwrap());
    core.restore(now, recovered);
    let mut out = Vec::new();
    while let Some(o) = core.poll_output() {
        out.push(o);
    }
    // The help alarm goes on with attempt 2; the fall window resumes with 20 s left.
    let d = single(&out);
    assert_eq!((d.alarm.id, d.attempt), (help_id, 2));
    assert!(out.contains(&Output::Listen {
        alarm: fall_id,
        until: T0 + S(30)
    }));
    // New alarms do not reuse ids.
    core.handle(now, Input::TestRequest);
    let new_id = std::iter::from_fn(|| core.poll_output())
        .find_map(|o| match o {
            Output::Persist(Record::Raised { alarm, .. }) => Some(alarm.id),
            _ => None,
        })
        .unwrap();
    assert!(new_id > fall_id && new_id > help_id);
}

#[test]
fn a_window_that_ended_while_the_unit_was_off_escalates_on_start() {
    let mut h = Harness::new(settings());
    let out = h.radio(2, RadioEventKind::Fall { evidence: None });
    let Record::Raised {
        alarm,
        window_until,
        ..
    } = records(&out)[0].clone()
    else {
        panic!()
    };
    let now = T0 + S(300);
    let mut core = Core::new(settings(), now, 10);
    core.restore(
        now,
        vec![Recovered {
            alarm,
            window_until,
            escalated: false,
            attempts: 0,
        }],
    );
    let out: Vec<_> = std::iter::from_fn(|| core.poll_output()).collect();
    assert!(records(&out).iter().any(|r| matches!(
        r,
        Record::Escalated {
            reason: EscalationReason::Resumed,
            ..
        }
    )));
    assert_eq!(deliveries(&out).len(), 1);
}

#[test]
fn unknown_device_still_raises_help() {
    let mut h = Harness::new(settings());
    let out = h.input(Input::Radio(RadioEvent {
        device: DeviceId(0xDEAD),
        counter: 1,
        kind: RadioEventKind::Help,
        rssi_dbm: None,
    }));
    let d = single(&out);
    assert!(d.alarm.device.unwrap().location.contains("unregistered"));
}

#[test]
fn unit_faults_are_reported_once_restored_once_and_listed_while_present() {
    let mut h = Harness::new(settings());
    let d = single(&h.input(Input::Fault {
        fault: UnitFault::Radio,
        active: true,
    }));
    assert_eq!(d.alarm.cause, AlarmCause::Fault(UnitFault::Radio));
    assert_eq!(d.alarm.class(), AlarmClass::Technical);
    h.result(&d, acked("c"));
    // Still present: no second report, and status lists it.
    assert!(deliveries(&h.input(Input::Fault {
        fault: UnitFault::Radio,
        active: true
    }))
    .is_empty());
    assert_eq!(
        h.core.faults().map(|(f, _)| f).collect::<Vec<_>>(),
        [UnitFault::Radio]
    );
    let d = single(&h.input(Input::Fault {
        fault: UnitFault::Radio,
        active: false,
    }));
    assert_eq!(d.alarm.cause, AlarmCause::FaultCleared(UnitFault::Radio));
    assert_eq!(h.core.faults().count(), 0);
    // A restore without a fault is not news.
    h.result(&d, acked("c"));
    assert!(deliveries(&h.input(Input::Fault {
        fault: UnitFault::Audio,
        active: false
    }))
    .is_empty());
    // A one-off fault has no restore, and stays listed.
    let d = single(&h.input(Input::Fault {
        fault: UnitFault::JournalLost,
        active: true,
    }));
    h.result(&d, acked("c"));
    assert!(deliveries(&h.input(Input::Fault {
        fault: UnitFault::JournalLost,
        active: false
    }))
    .is_empty());
    assert_eq!(h.core.faults().count(), 1);
}

#[test]
fn every_cause_has_a_distinct_journal_name_that_parses_back() {
    let mut names = std::collections::BTreeSet::new();
    for cause in AlarmCause::ALL {
        assert_eq!(AlarmCause::parse(cause.as_str()), Some(cause));
        assert!(names.insert(cause.as_str()), "{} twice", cause.as_str());
    }
}

/// A jammer that spares heartbeats (or a help frame simply lost) used to go unnoticed: the
/// base never heard the press. The heartbeat carries the pendant's count of alarms sent; when
/// it is ahead of what the base received, the base raises an alarm at once.
#[test]
fn a_heartbeat_that_counts_an_alarm_the_base_never_heard_raises_one() {
    let hb = |n| RadioEventKind::Heartbeat {
        battery_mv: 2900,
        alarms_sent: Some(n),
    };
    let mut h = Harness::new(settings());
    // The first heartbeat since start only sets the baseline.
    assert!(deliveries(&h.radio(1, hb(7))).is_empty());
    // A press that arrived, then a heartbeat that counts it: nothing missed.
    let d = single(&h.radio(1, RadioEventKind::Help));
    h.result(&d, acked("centre"));
    assert!(deliveries(&h.radio(1, hb(8))).is_empty());
    // Two presses sent, none received.
    let d = single(&h.radio(1, hb(10)));
    assert_eq!(d.alarm.cause, AlarmCause::AlarmNotReceived);
    assert_eq!(d.alarm.device.as_ref().unwrap().id, DeviceId(0xA001));
    assert_eq!(d.alarm.cause.class(), AlarmClass::Personal);
    h.result(&d, acked("centre"));
    // The count wraps at 65536.
    assert!(deliveries(&h.radio(2, hb(65535))).is_empty());
    let d = single(&h.radio(2, hb(0)));
    assert_eq!(d.alarm.cause, AlarmCause::AlarmNotReceived);
    h.result(&d, acked("centre"));
    // A pendant that does not count says nothing either way.
    let none = RadioEventKind::Heartbeat {
        battery_mv: 2900,
        alarms_sent: None,
    };
    assert!(deliveries(&h.radio(3, none)).is_empty());
}

/// Jamming and a radio fault are said aloud at the base too: the person must know that a press
/// may not get through, not only the centre.
#[test]
fn jamming_and_a_radio_fault_are_spoken_at_the_base() {
    let mut h = Harness::new(settings());
    let out = h.input(Input::Jamming { active: true });
    assert!(prompts(&out).contains(&Prompt::RadioTrouble), "{out:?}");
    let out = h.input(Input::Fault {
        fault: UnitFault::Radio,
        active: true,
    });
    assert!(prompts(&out).contains(&Prompt::RadioTrouble), "{out:?}");
    // Another fault of the unit says nothing about the radio.
    let out = h.input(Input::Fault {
        fault: UnitFault::Modem,
        active: true,
    });
    assert!(!prompts(&out).contains(&Prompt::RadioTrouble), "{out:?}");
}

/// Every route down: the alarm waits out the pause between rounds. When a route's own traffic
/// shows it works again (its registration is back), the alarm goes at once on it, rather than
/// up to the pause later.
#[test]
fn a_route_that_works_again_ends_the_pause_between_rounds() {
    let mut h = Harness::new(settings());
    let mut d = single(&h.radio(1, RadioEventKind::Help));
    let first_route = d.route;
    // Every route of the round fails.
    loop {
        let out = h.result(&d, failed("unreachable"));
        match deliveries(&out).into_iter().next() {
            Some(next) => d = next,
            None => break,
        }
    }
    // Paused: nothing goes out for a while.
    assert!(deliveries(&h.advance(S(5))).is_empty());
    // The first route is registered again.
    let out = h.input(Input::RouteUp { route: first_route });
    let d = single(&out);
    assert_eq!(
        d.route, first_route,
        "the route that came back is tried first"
    );
    h.result(&d, acked("centre"));
    // A route up again with nothing waiting changes nothing.
    assert!(deliveries(&h.input(Input::RouteUp { route: first_route })).is_empty());
}

/// Fails every delivery from `d` on until the round is over, and returns the routes tried.
fn fail_round(h: &mut Harness, mut d: vigil::core::Delivery) -> Vec<RouteId> {
    let mut tried = vec![d.route];
    loop {
        let out = h.result(&d, failed("unreachable"));
        match deliveries(&out).into_iter().next() {
            Some(next) => {
                tried.push(next.route);
                d = next;
            }
            None => return tried,
        }
    }
}

/// A call route that cannot work on the unit's module (here the voice route, on a module that
/// does not report the accept key) is reported once as a route fault and left out of every
/// round; when it can work again it is back. If no route could work, every route is tried:
/// towards help.
#[test]
fn a_route_that_cannot_work_on_this_module_is_left_out_of_the_plan() {
    let mut h = Harness::new(settings());
    let voice = RouteId(2);
    let out = h.input(Input::RouteUnusable {
        route: voice,
        why: Some("SIMCom: the module does not report the accept key".into()),
    });
    let fault = single(&out);
    assert_eq!(
        fault.alarm.cause,
        AlarmCause::Fault(UnitFault::Route),
        "a technical alarm says so"
    );
    h.result(&fault, acked("centre"));
    assert!(h.core.routes_unusable().any(|(r, _, _)| r == voice));
    // Said again (a module re-initialised): no second technical alarm.
    let again = h.input(Input::RouteUnusable {
        route: voice,
        why: Some("SIMCom: the module does not report the accept key".into()),
    });
    assert!(deliveries(&again).is_empty(), "{again:?}");

    let d = single(&h.radio(1, RadioEventKind::Help));
    let tried = fail_round(&mut h, d);
    assert_eq!(
        tried,
        vec![RouteId(0), RouteId(1)],
        "the voice route is left out"
    );

    // Every route unusable: all are tried rather than none.
    for r in [RouteId(0), RouteId(1)] {
        h.input(Input::RouteUnusable {
            route: r,
            why: Some("test".into()),
        });
    }
    let d = single(&h.advance(S(30)));
    let tried = fail_round(&mut h, d);
    // The voice route first: the other two are also known to be down since the last round.
    assert_eq!(tried, vec![voice, RouteId(0), RouteId(1)]);
}

/// A route that fails every attempt for an hour is a fault of the unit: a technical alarm
/// goes to the centre, once, and its restore when the route works again. One failure that is
/// soon followed by a success says nothing.
#[test]
fn a_route_failing_for_an_hour_is_a_technical_alarm_with_its_restore() {
    let mut h = Harness::new(settings());
    // The first route fails, the second takes the alarm.
    let d = single(&h.radio(1, RadioEventKind::Help));
    assert_eq!(d.route, RouteId(0));
    let next = single(&h.result(&d, failed("unreachable")));
    h.result(&next, acked("gateway"));
    // Before the hour: no fault.
    let out = h.advance(S(3500));
    assert!(
        deliveries(&out)
            .iter()
            .all(|d| d.alarm.cause != AlarmCause::Fault(UnitFault::Route)),
        "{out:?}"
    );
    let out = h.advance(S(200));
    let fault = deliveries(&out)
        .into_iter()
        .find(|d| d.alarm.cause == AlarmCause::Fault(UnitFault::Route))
        .expect("a route fault after an hour of failures");
    assert!(h.core.faults().any(|(f, _)| f == UnitFault::Route));
    // Delivered by the route that works; the failing one stays a fault, reported once.
    assert_ne!(fault.route, RouteId(0), "tried last while down");
    h.result(&fault, acked("gateway"));
    let out = h.advance(S(1800));
    assert!(
        deliveries(&out)
            .iter()
            .all(|d| d.alarm.cause != AlarmCause::Fault(UnitFault::Route)),
        "reported once: {out:?}"
    );
    // The route works again: the restore is raised.
    let out = h.input(Input::RouteUp { route: RouteId(0) });
    let restored = out.iter().any(|o| {
        matches!(o, Output::Persist(Record::Raised { alarm, .. })
            if alarm.cause == AlarmCause::FaultCleared(UnitFault::Route))
    });
    assert!(restored, "{out:?}");
    assert!(!h.core.faults().any(|(f, _)| f == UnitFault::Route));
}

/// The pendant is told "help is coming" only once a receiving centre acknowledged its alarm,
/// under the counter of its latest frame for it; never on the radio acknowledgement alone.
#[test]
fn the_pendant_is_told_help_is_coming_only_when_a_centre_has_the_alarm() {
    let mut h = Harness::new(settings());
    let told = |out: &[Output]| {
        out.iter()
            .filter_map(|o| match o {
                Output::TellPendantHelpComing { device, counter } => Some((*device, *counter)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let out = h.radio(1, RadioEventKind::Help);
    assert!(told(&out).is_empty(), "{out:?}");
    let d = single(&out);
    // A second press while the first is on its way: the pendant now waits under its counter.
    let again = h.radio(1, RadioEventKind::Help);
    assert!(told(&again).is_empty(), "{again:?}");
    let out = h.result(&d, failed("unreachable"));
    assert!(
        told(&out).is_empty(),
        "a failed attempt says nothing: {out:?}"
    );
    let d = single(&out);
    let out = h.result(&d, acked("centre"));
    assert_eq!(told(&out), vec![(DeviceId(0xA001), 2)]);
    // A technical alarm from the base has no pendant to tell.
    let out = h.input(Input::Mains { present: false });
    assert!(told(&out).is_empty());
}
