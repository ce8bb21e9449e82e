//! Registrars that misbehave: every number bounded, every list cut short, no loop
//! without end, no peer text in what we report, and never a panic.

use concierge_sip::registration::{ChallengeProblem, Failure, StatusState, MAX_EXPIRES};
use concierge_sip::wire::{response_to, HeaderName, StatusCode};

use crate::rig::{config, secs, Rig};

#[test]
fn a_registrar_challenging_every_answer_in_a_new_realm_is_given_up_on() {
    let mut rig = Rig::start(config());
    for n in 0..10 {
        if !matches!(rig.status().state, StatusState::Starting) {
            break;
        }
        let nonce = format!("Digest realm=\"r{n}\", nonce=\"loop-{n}\", qop=\"auth\"");
        rig.answer(401, &[("WWW-Authenticate", &nonce)]);
    }
    assert_eq!(
        rig.registers().len(),
        4,
        "the first REGISTER and three answers"
    );
    assert!(matches!(
        rig.status().state,
        StatusState::BackingOff {
            why: Failure::TooManyChallenges,
            ..
        }
    ));
}

#[test]
fn a_nonce_too_long_or_holding_a_quote_is_not_echoed() {
    for nonce in ["x".repeat(4000), "a\\\"b".into()] {
        let mut rig = Rig::start(config());
        let value = format!("Digest realm=\"r\", nonce=\"{nonce}\", qop=\"auth\"");
        rig.answer(401, &[("WWW-Authenticate", &value)]);
        assert_eq!(rig.registers().len(), 1);
        assert_eq!(
            rig.status().state,
            StatusState::Failed {
                why: Failure::Challenge(ChallengeProblem::Malformed)
            }
        );
    }
}

#[test]
fn a_401_without_a_challenge_stops() {
    let mut rig = Rig::start(config());
    rig.answer(401, &[]);
    assert_eq!(
        rig.status().state,
        StatusState::Failed {
            why: Failure::Challenge(ChallengeProblem::NotDigest)
        }
    );
}

#[test]
fn an_absurd_min_expires_is_refused() {
    let mut rig = Rig::start(config());
    rig.answer(423, &[("Min-Expires", "99999999999999999999")]);
    assert_eq!(rig.registers().len(), 1);
    assert!(matches!(rig.status().state, StatusState::BackingOff { .. }));
    let mut rig = Rig::start(config());
    rig.answer(423, &[("Min-Expires", "4294967296")]);
    assert_eq!(
        rig.header("Expires").as_deref(),
        Some(MAX_EXPIRES.to_string().as_str()),
        "cut to a day"
    );
}

#[test]
fn ten_thousand_contacts_in_a_200_cost_a_bounded_look() {
    let mut rig = Rig::start(config());
    let (id, request) = rig.last_register();
    let mut response = response_to(&request.clone(), StatusCode::OK, Some("r"));
    for i in 0..10_000 {
        response.headers.push(
            HeaderName::CONTACT,
            format!("<sip:other{i}@198.51.100.1>;expires=10"),
        );
    }
    response.headers.push(
        HeaderName::CONTACT,
        "<sip:concierge@192.0.2.10:5060>;expires=600",
    );
    response.headers.push(HeaderName::EXPIRES, "900");
    let now = rig.now;
    rig.reg.handle_response(now, id, &response);
    rig.drain();
    assert_eq!(
        rig.status().state,
        StatusState::Registered {
            expires_at: rig.t0 + secs(900)
        },
        "ours lies beyond the contacts looked at: the Expires header decides"
    );
}

#[test]
fn answers_to_requests_no_longer_awaited_change_nothing() {
    let mut rig = Rig::start(config());
    let (old_id, old) = rig.last_register();
    let old = old.clone();
    rig.no_response();
    let before = rig.status();
    rig.answer_request(old_id, &old, 200, &[]);
    assert_eq!(rig.status(), before);
}

#[test]
fn a_response_on_another_call_id_is_not_ours() {
    let mut rig = Rig::start(config());
    let (id, request) = rig.last_register();
    let mut forged = request.clone();
    forged.call_id = "someone-else".into();
    rig.answer_request(id, &forged, 200, &[]);
    assert!(matches!(rig.status().state, StatusState::Starting));
}

#[test]
fn every_status_code_leaves_a_registration_that_retries_stops_or_is_registered() {
    for code in 100..=699u16 {
        let mut rig = Rig::start(config());
        rig.answer(
            code,
            &[
                ("Retry-After", "x"),
                ("Min-Expires", "-1"),
                ("Expires", "9e9"),
            ],
        );
        let state = rig.status().state;
        let settled = match state {
            StatusState::Starting => code < 200 || rig.registers().len() == 2,
            StatusState::Registered { .. } => (200..300).contains(&code),
            StatusState::BackingOff { .. } => rig.reg.poll_timeout().is_some(),
            StatusState::Failed { .. } => rig.reg.poll_timeout().is_none(),
            _ => false,
        };
        assert!(settled, "{code}: {state:?}");
    }
}
