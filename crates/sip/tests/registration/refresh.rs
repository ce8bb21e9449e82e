//! What a 2xx grants (RFC 3261 §10.2.4), when it is renewed, and the routes it returns.

use concierge_sip::registration::{RegistrationEvent, StatusState, MIN_REFRESH};
use concierge_sip::wire::HeaderName;

use crate::rig::{config, secs, Rig};

#[test]
fn rfc3261_10_2_4_the_binding_is_refreshed_at_half_the_granted_interval() {
    let mut rig = Rig::registered(config());
    assert_eq!(
        rig.status().state,
        StatusState::Registered {
            expires_at: rig.t0 + secs(3600)
        }
    );
    assert_eq!(rig.step(), secs(1800), "the refresh");
    assert_eq!(rig.registers().len(), 2);
    assert_eq!(rig.header("Expires").as_deref(), Some("3600"));
}

#[test]
fn a_200_granting_less_than_asked_refreshes_earlier() {
    let mut rig = Rig::start(config());
    rig.answer(200, &[("Expires", "120")]);
    assert_eq!(
        rig.status().state,
        StatusState::Registered {
            expires_at: rig.t0 + secs(120)
        }
    );
    assert_eq!(rig.step(), secs(60));
    assert_eq!(rig.registers().len(), 2);
}

#[test]
fn a_registrar_granting_next_to_nothing_is_not_refreshed_more_often_than_the_floor() {
    let mut rig = Rig::start(config());
    rig.answer(200, &[("Expires", "2")]);
    rig.advance(secs(60));
    let n = rig.registers().len() as u64;
    // Each refresh is answered by no one: count only the sends the floor allows.
    assert!(n <= 1 + 60 / MIN_REFRESH.as_secs(), "{n} REGISTERs in 60 s");
}

#[test]
fn rfc3261_10_2_4_our_contact_s_expires_parameter_wins_over_the_header() {
    let mut rig = Rig::start(config());
    rig.answer(
        200,
        &[
            ("Contact", "<sip:concierge@192.0.2.10:5060>;expires=600"),
            ("Expires", "3600"),
        ],
    );
    assert_eq!(rig.step(), secs(300));
}

#[test]
fn a_200_listing_several_contacts_takes_our_contact_s_expires() {
    let mut rig = Rig::start(config());
    rig.answer(
        200,
        &[
            ("Contact", "<sip:deskphone@198.51.100.7:5062>;expires=3500"),
            ("Contact", "<sip:concierge@192.0.2.10>;expires=900"),
            (
                "Contact",
                "<sip:softphone@203.0.113.9;transport=tcp>;expires=60",
            ),
        ],
    );
    assert_eq!(
        rig.status().state,
        StatusState::Registered {
            expires_at: rig.t0 + secs(900)
        },
        "ours is the one at 192.0.2.10 (port 5060 written or not)"
    );
}

#[test]
fn a_200_binding_our_contact_for_zero_seconds_is_no_registration() {
    let mut rig = Rig::start(config());
    rig.answer(
        200,
        &[("Contact", "<sip:concierge@192.0.2.10:5060>;expires=0")],
    );
    assert!(matches!(rig.status().state, StatusState::BackingOff { .. }));
}

#[test]
fn rfc3608_the_service_route_is_kept_and_never_routes_a_register() {
    let mut rig = Rig::start(config());
    rig.answer(
        200,
        &[
            ("Service-Route", "<sip:orig@scscf.carrier.example;lr>"),
            ("Service-Route", "<sip:pcscf.carrier.example;lr>"),
        ],
    );
    let kept: Vec<&str> = rig
        .reg
        .service_route()
        .iter()
        .map(|r| r.uri.as_str())
        .collect();
    assert_eq!(
        kept,
        [
            "sip:orig@scscf.carrier.example;lr",
            "sip:pcscf.carrier.example;lr"
        ]
    );
    rig.step(); // the refresh
    assert_eq!(
        rig.last_register()
            .1
            .headers
            .get_all(&HeaderName::ROUTE)
            .count(),
        0,
        "RFC 3608 §6: the refresh is routed as before, not by the Service-Route"
    );
}

#[test]
fn rfc3608_each_2xx_replaces_the_service_route() {
    let mut rig = Rig::start(config());
    rig.answer(200, &[("Service-Route", "<sip:a.example;lr>")]);
    rig.step();
    rig.answer(200, &[]);
    assert!(rig.reg.service_route().is_empty());
}

#[test]
fn rfc3327_the_path_the_registrar_stored_is_kept() {
    let mut rig = Rig::start(config());
    rig.answer(200, &[("Path", "<sip:edge.carrier.example;lr>")]);
    assert_eq!(
        rig.reg.path()[0].uri.as_str(),
        "sip:edge.carrier.example;lr"
    );
}

#[test]
fn rfc3261_10_2_8_a_423_is_retried_with_min_expires_and_kept_for_refreshes() {
    let mut rig = Rig::start(config());
    rig.answer(423, &[("Min-Expires", "7200")]);
    assert_eq!(rig.registers().len(), 2);
    assert_eq!(rig.header("Expires").as_deref(), Some("7200"));
    rig.answer(200, &[]);
    rig.step();
    assert_eq!(
        rig.header("Expires").as_deref(),
        Some("7200"),
        "the refresh too"
    );
}

#[test]
fn a_refresh_that_succeeds_is_no_new_registration() {
    let mut rig = Rig::registered(config());
    rig.step();
    rig.answer(200, &[]);
    let registered = rig
        .events
        .iter()
        .filter(|e| matches!(e, RegistrationEvent::Registered { .. }))
        .count();
    assert_eq!(registered, 1, "INFO once, not at every refresh");
}
