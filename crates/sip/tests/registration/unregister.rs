//! Un-registration: Expires: 0 on shutdown or when a trunk is removed.

use concierge_sip::registration::{RegistrationEvent, Removal, StatusState};
use concierge_sip::wire::HeaderName;

use crate::rig::{config, secs, Rig};

#[test]
fn rfc3261_10_2_2_unregister_sends_expires_zero_for_our_contact() {
    let mut rig = Rig::registered(config());
    rig.reg.unregister();
    rig.drain();
    let (_, r) = rig.last_register();
    assert_eq!(r.header(&HeaderName::EXPIRES), Some("0"));
    assert_eq!(
        r.header(&HeaderName::CONTACT),
        Some("<sip:concierge@192.0.2.10:5060>"),
        "ours only, never `*`"
    );
    assert_eq!(rig.status().state, StatusState::Unregistering);
    rig.answer(200, &[]);
    assert!(rig.reg.is_done());
    assert_eq!(
        rig.events.last(),
        Some(&RegistrationEvent::Unregistered {
            removal: Removal::Confirmed
        })
    );
    assert_eq!(rig.reg.poll_timeout(), None);
}

#[test]
fn an_unregister_challenge_is_answered_once() {
    let mut rig = Rig::registered(config());
    rig.reg.unregister();
    rig.drain();
    let challenge = (
        "WWW-Authenticate",
        "Digest realm=\"r\", nonce=\"u-1\", qop=\"auth\"",
    );
    rig.answer(401, &[challenge]);
    assert!(rig.header("Authorization").is_some());
    assert_eq!(rig.header("Expires").as_deref(), Some("0"));
    rig.answer(
        401,
        &[(
            "WWW-Authenticate",
            "Digest realm=\"r\", nonce=\"u-2\", qop=\"auth\"",
        )],
    );
    assert!(rig.reg.is_done(), "given up after one answer");
}

#[test]
fn an_unanswered_unregister_ends_unconfirmed() {
    let mut rig = Rig::registered(config());
    rig.reg.unregister();
    rig.drain();
    rig.no_response();
    assert!(rig.reg.is_done());
    assert_eq!(
        rig.events.last(),
        Some(&RegistrationEvent::Unregistered {
            removal: Removal::Unconfirmed
        })
    );
}

#[test]
fn unregister_without_a_binding_sends_nothing() {
    let mut rig = Rig::start(config());
    rig.answer(403, &[]);
    rig.reg.unregister();
    rig.drain();
    assert_eq!(rig.sent.len(), 1);
    assert!(rig.reg.is_done());
    assert_eq!(
        rig.events.last(),
        Some(&RegistrationEvent::Unregistered {
            removal: Removal::NothingToRemove
        })
    );
}

#[test]
fn unregister_while_the_first_register_is_out_removes_what_it_may_have_made() {
    let mut rig = Rig::start(config());
    rig.reg.unregister();
    rig.drain();
    assert_eq!(rig.registers().len(), 2);
    assert_eq!(rig.header("Expires").as_deref(), Some("0"));
    let first = rig.registers()[0].clone();
    let first_id = rig.sent[0].0;
    rig.answer_request(first_id, &first, 200, &[]);
    assert_eq!(
        rig.status().state,
        StatusState::Unregistering,
        "the stale 200 changes nothing"
    );
}

#[test]
fn nothing_is_refreshed_after_unregistering() {
    let mut rig = Rig::registered(config());
    rig.reg.unregister();
    rig.drain();
    rig.answer(200, &[]);
    rig.advance(secs(7200));
    assert_eq!(rig.sent.len(), 2);
}
