//! Failures: what stops for good, what backs off and how long, and a registration lost
//! and found again.

use concierge_sip::registration::{
    Failure, RegistrationEvent, StatusState, MAX_BACKOFF, RETRY_BASE,
};
use concierge_sip::wire::{SipUri, StatusCode};

use crate::rig::{config, secs, udp, Rig};

#[test]
fn a_403_stops_with_its_reason_and_nothing_is_retried() {
    let mut rig = Rig::start(config());
    rig.answer(403, &[]);
    let why = Failure::Refused(StatusCode(403));
    assert_eq!(rig.status().state, StatusState::Failed { why });
    assert_eq!(rig.status().last_response, Some(StatusCode(403)));
    assert_eq!(rig.events, [RegistrationEvent::Stopped { why }]);
    assert_eq!(rig.reg.poll_timeout(), None);
    rig.advance(secs(3600));
    assert_eq!(rig.registers().len(), 1);
}

#[test]
fn a_404_stops_too() {
    let mut rig = Rig::start(config());
    rig.answer(404, &[]);
    assert!(matches!(rig.status().state, StatusState::Failed { .. }));
}

#[test]
fn no_answer_backs_off_doubling_up_to_five_minutes() {
    let mut rig = Rig::start(config());
    let mut waits = Vec::new();
    for _ in 0..8 {
        rig.no_response();
        let StatusState::BackingOff { until, why } = rig.status().state else {
            panic!("{:?}", rig.status());
        };
        assert_eq!(why, Failure::NoResponse);
        waits.push(until - rig.now);
        rig.step();
    }
    for (n, wait) in waits.iter().enumerate() {
        let full = (RETRY_BASE * 2u32.pow(n as u32)).min(MAX_BACKOFF);
        assert!(
            *wait >= full / 2 && *wait <= full,
            "attempt {n}: {wait:?} not within 50–100 % of {full:?}"
        );
    }
    assert_eq!(rig.registers().len(), 9, "it keeps trying");
}

#[test]
fn only_the_first_failure_of_a_run_counts_as_first() {
    let mut rig = Rig::start(config());
    rig.no_response();
    rig.step();
    rig.no_response();
    let consecutive: Vec<u32> = rig
        .events
        .iter()
        .filter_map(|e| match e {
            RegistrationEvent::AttemptFailed { consecutive, .. } => Some(*consecutive),
            _ => None,
        })
        .collect();
    assert_eq!(consecutive, [1, 2]);
}

#[test]
fn a_success_resets_the_back_off() {
    let mut rig = Rig::start(config());
    for _ in 0..4 {
        rig.no_response();
        rig.step();
    }
    rig.answer(200, &[]);
    rig.step(); // refresh
    rig.no_response();
    let StatusState::Registered { .. } = rig.status().state else {
        panic!(
            "a failed refresh leaves the binding in place: {:?}",
            rig.status()
        );
    };
    let retry = rig.reg.poll_timeout().unwrap() - rig.now;
    assert!(retry <= RETRY_BASE, "{retry:?}");
}

#[test]
fn a_503_with_retry_after_waits_at_least_that_long() {
    let mut rig = Rig::start(config());
    rig.answer(503, &[("Retry-After", "600")]);
    let StatusState::BackingOff { until, .. } = rig.status().state else {
        panic!("{:?}", rig.status());
    };
    assert_eq!(until - rig.now, secs(600));
}

#[test]
fn a_423_without_min_expires_backs_off() {
    let mut rig = Rig::start(config());
    rig.answer(423, &[]);
    assert!(matches!(
        rig.status().state,
        StatusState::BackingOff {
            why: Failure::IntervalTooBrief,
            ..
        }
    ));
}

#[test]
fn a_second_423_in_one_attempt_backs_off() {
    let mut rig = Rig::start(config());
    rig.answer(423, &[("Min-Expires", "7200")]);
    rig.answer(423, &[("Min-Expires", "9000")]);
    assert_eq!(rig.registers().len(), 2);
    assert!(matches!(rig.status().state, StatusState::BackingOff { .. }));
}

#[test]
fn rfc3263_no_response_from_one_address_tries_the_next() {
    let mut cfg = config();
    cfg.registrar = SipUri::parse("sip:carrier.example").unwrap();
    let mut rig = Rig::start(cfg);
    let now = rig.now;
    rig.reg
        .handle_resolved(now, vec![udp("192.0.2.7:5060"), udp("192.0.2.8:5060")]);
    rig.drain();
    rig.no_response();
    assert_eq!(rig.sent.last().unwrap().2, udp("192.0.2.8:5060"));
    rig.answer(503, &[]);
    assert!(
        matches!(rig.status().state, StatusState::BackingOff { .. }),
        "no third address"
    );
    rig.step();
    assert_eq!(rig.resolves.len(), 2, "located afresh for the next attempt");
}

#[test]
fn a_name_without_an_address_backs_off() {
    let mut cfg = config();
    cfg.registrar = SipUri::parse("sip:nowhere.example").unwrap();
    let mut rig = Rig::start(cfg);
    let now = rig.now;
    rig.reg.handle_resolved(now, Vec::new());
    rig.drain();
    assert!(matches!(
        rig.status().state,
        StatusState::BackingOff {
            why: Failure::Unresolvable,
            ..
        }
    ));
}

#[test]
fn a_refresh_that_keeps_failing_loses_the_registration_when_it_expires() {
    let mut rig = Rig::start(config());
    rig.answer(200, &[("Expires", "120")]);
    // Every attempt from the refresh on meets a registrar that answers 500.
    while rig.now < rig.t0 + secs(121) {
        let before = rig.registers().len();
        rig.step();
        if rig.registers().len() > before {
            rig.answer(500, &[]);
        }
    }
    assert!(
        rig.events.contains(&RegistrationEvent::Lost {
            why: Failure::Refused(StatusCode(500))
        }),
        "{:?}",
        rig.events
    );
    assert!(matches!(rig.status().state, StatusState::BackingOff { .. }));
}

#[test]
fn registered_again_after_a_loss_is_reported() {
    let mut rig = Rig::start(config());
    rig.answer(200, &[("Expires", "20")]);
    rig.step(); // refresh at 10 s
    rig.no_response();
    rig.advance(secs(15)); // the binding expires at 20 s
    assert!(rig
        .events
        .iter()
        .any(|e| matches!(e, RegistrationEvent::Lost { .. })));
    while !matches!(rig.status().state, StatusState::Starting) || rig.sent.len() < 3 {
        rig.step();
    }
    rig.answer(200, &[]);
    let registered = rig
        .events
        .iter()
        .filter(|e| matches!(e, RegistrationEvent::Registered { .. }))
        .count();
    assert_eq!(registered, 2, "{:?}", rig.events);
}
