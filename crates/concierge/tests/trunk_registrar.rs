//! A real registrar for issue 23: Kamailio with `registrar`, `usrloc` (in memory) and
//! Digest auth (`tests/kamailio/registrar.cfg`), started on free loopback ports. First the
//! harness checks itself with SIPp registering; then the sans-IO trunk registration
//! (`concierge_sip::registration`), driven over a real UDP socket, registers with it: the
//! location table holds our contact, a short grant is refreshed, a wrong password stops,
//! 423 is answered, Service-Route and Path are kept, a call to the address-of-record
//! reaches our contact, and un-registering removes the binding.

mod common;

use std::time::Duration;

use common::registrar::{Registrar, RegistrarOptions};
use common::registration_client::RegistrationClient;
use common::{free_port, scenario, scratch_dir};
use concierge_sip::registration::{
    Credentials, Failure, Password, RegistrationConfig, RegistrationEvent, Removal, StatusState,
};
use concierge_sip::wire::{SipUri, Transport};

/// The registration of `+4612345` at `registrar` with its user and password, our Contact
/// at the client's port.
fn trunk(registrar: &Registrar, client: &RegistrationClient, expires: u32) -> RegistrationConfig {
    RegistrationConfig {
        registrar: SipUri::parse(&format!("sip:127.0.0.1:{}", registrar.port)).unwrap(),
        user: "+4612345".into(),
        credentials: Credentials {
            username: registrar.options.user.clone(),
            password: Password::new(registrar.options.password.clone()),
        },
        contact: SipUri::parse(&format!("sip:ivr@127.0.0.1:{}", client.port())).unwrap(),
        contact_v6: None,
        expires,
        outbound_proxy: None,
        transport: Transport::Udp,
        keepalive: None,
        user_agent: Some("Concierge".into()),
    }
}

fn registered(c: &RegistrationClient) -> bool {
    matches!(c.status("carrier").state, StatusState::Registered { .. })
}

/// A client registering `+4612345` with `registrar` for `expires` s, run until it is
/// registered (the test fails, with the registrar's log, if it is not within 10 s).
fn registered_client(registrar: &Registrar, expires: u32) -> RegistrationClient {
    let mut client = RegistrationClient::new(Duration::from_millis(100));
    let cfg = trunk(registrar, &client, expires);
    client.add("carrier", cfg);
    assert!(
        client.run_until(Duration::from_secs(10), registered),
        "{:?}\n{}",
        client.status("carrier"),
        registrar.log()
    );
    client
}

fn settled(c: &RegistrationClient) -> bool {
    !matches!(c.status("carrier").state, StatusState::Starting)
}

fn our_binding(
    registrar: &Registrar,
    client: &RegistrationClient,
) -> Vec<common::registrar::Binding> {
    let contact = format!("sip:ivr@127.0.0.1:{}", client.port());
    registrar
        .bindings()
        .into_iter()
        .filter(|b| b.aor == "+4612345" && b.contact == contact)
        .collect()
}

#[test]
fn harness_sipp_registers_with_digest_and_the_location_table_holds_its_contact() {
    let registrar = Registrar::start(RegistrarOptions::default());
    let dir = scratch_dir("sipp-register");
    let port = free_port();
    let out = std::process::Command::new("sipp")
        .args(["-sf", &scenario("register_once.xml"), "-s", "+4699"])
        .args([
            "-au",
            &registrar.options.user,
            "-ap",
            &registrar.options.password,
        ])
        .args(["-key", "expires", "600", "-m", "1", "-nostdin"])
        .args(["-timeout", "10", "-timeout_error"])
        .args(["-p", &port.to_string(), "-i", "127.0.0.1"])
        .arg(format!("127.0.0.1:{}", registrar.port))
        .current_dir(&dir)
        .output()
        .expect("SIPp runs (apt-get install -y sip-tester)");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        registrar.log()
    );
    let table = registrar.bindings();
    assert!(
        table
            .iter()
            .any(|b| b.aor == "+4699" && b.contact == format!("sip:+4699@127.0.0.1:{port}")),
        "{table:?}"
    );
}

#[test]
fn the_registration_registers_with_digest_and_kamailio_binds_our_contact() {
    let registrar = Registrar::start(RegistrarOptions::default());
    let client = registered_client(&registrar, 600);
    let bound = our_binding(&registrar, &client);
    assert_eq!(bound.len(), 1, "{:?}", registrar.bindings());
    assert!(bound[0].expires.is_some_and(|e| e > 500), "{bound:?}");
    assert!(matches!(
        client.events[..],
        [(_, RegistrationEvent::Registered { .. })]
    ));
}

#[test]
fn rfc8760_kamailio_accepts_our_sha256_digest() {
    let registrar = Registrar::start(RegistrarOptions {
        algorithm: "SHA-256".into(),
        ..RegistrarOptions::default()
    });
    let client = registered_client(&registrar, 600);
    assert_eq!(our_binding(&registrar, &client).len(), 1);
}

#[test]
fn a_wrong_password_stops_with_the_credentials_rejected() {
    let registrar = Registrar::start(RegistrarOptions::default());
    let mut client = RegistrationClient::new(Duration::from_millis(100));
    let mut cfg = trunk(&registrar, &client, 600);
    cfg.credentials.password = Password::new("not-the-password");
    client.add("carrier", cfg);
    assert!(client.run_until(Duration::from_secs(10), settled));
    assert_eq!(
        client.status("carrier").state,
        StatusState::Failed {
            why: Failure::CredentialsRejected
        },
        "{}",
        registrar.log()
    );
    assert_eq!(
        client.registers_sent, 2,
        "the first REGISTER and one answer, no hammering"
    );
    assert!(our_binding(&registrar, &client).is_empty());
}

#[test]
fn a_short_grant_is_refreshed_before_it_lapses_and_un_registering_removes_the_binding() {
    let registrar = Registrar::start(RegistrarOptions {
        max_expires: 10,
        ..RegistrarOptions::default()
    });
    let mut client = registered_client(&registrar, 600);
    let first = registrar
        .full_log()
        .matches("registered sip:+4612345")
        .count();
    // Granted 10 s, refreshed at 5 s: a second successful REGISTER well inside the grant.
    client.run_until(Duration::from_secs(9), |_| {
        registrar
            .full_log()
            .matches("registered sip:+4612345")
            .count()
            > first
    });
    assert!(
        registrar
            .full_log()
            .matches("registered sip:+4612345")
            .count()
            > first,
        "{}",
        registrar.log()
    );
    assert!(registered(&client));
    assert_eq!(our_binding(&registrar, &client).len(), 1);
    client.unregister_all();
    assert!(client.run_until(Duration::from_secs(10), RegistrationClient::is_idle));
    assert!(
        client.events.iter().any(|(_, e)| *e
            == RegistrationEvent::Unregistered {
                removal: Removal::Confirmed
            }),
        "{:?}",
        client.events
    );
    assert!(
        our_binding(&registrar, &client).is_empty(),
        "{:?}",
        registrar.bindings()
    );
}

#[test]
fn rfc3261_10_2_8_kamailio_s_423_is_answered_with_its_min_expires() {
    let registrar = Registrar::start(RegistrarOptions {
        min_expires: 120,
        ..RegistrarOptions::default()
    });
    let client = registered_client(&registrar, 30);
    let bound = our_binding(&registrar, &client);
    assert!(bound[0].expires.is_some_and(|e| e > 60), "{bound:?}");
}

#[test]
fn service_route_and_path_of_the_200_are_kept_and_a_call_to_the_aor_reaches_our_contact() {
    let registrar = Registrar::start(RegistrarOptions {
        service_route: Some("<sip:orig@127.0.0.1:5999;lr>".into()),
        with_path: true,
        ..RegistrarOptions::default()
    });
    let mut client = registered_client(&registrar, 600);
    assert_eq!(
        client.service_route("carrier"),
        ["<sip:orig@127.0.0.1:5999;lr>"]
    );
    let path = format!("<sip:127.0.0.1:{};lr>", registrar.port);
    assert_eq!(client.path("carrier"), std::slice::from_ref(&path));
    assert_eq!(
        our_binding(&registrar, &client)[0].path.as_deref(),
        Some(path.as_str())
    );
    // A caller sends an INVITE for the address-of-record to the registrar.
    let caller = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let invite = format!(
        "INVITE sip:+4612345@127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKc{t};rport\r\nFrom: <sip:+46700000001@127.0.0.1>;tag=c{t}\r\nTo: <sip:+4612345@127.0.0.1:{p}>\r\nCall-ID: call-{t}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{me}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        p = registrar.port,
        me = caller.local_addr().unwrap(),
        t = common::rand_token()
    );
    caller
        .send_to(invite.as_bytes(), ("127.0.0.1", registrar.port))
        .unwrap();
    let contact = format!("sip:ivr@127.0.0.1:{}", client.port());
    let arrived = client.run_until(Duration::from_secs(10), |c| {
        c.requests
            .iter()
            .any(|r| r.method.as_str() == "INVITE" && r.uri.as_str() == contact)
    });
    assert!(arrived, "{:?}\n{}", client.requests, registrar.log());
}
