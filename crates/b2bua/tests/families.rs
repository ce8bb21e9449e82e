//! Which of our addresses a caller sees, in virtual time: an IPv6 caller gets our IPv6
//! host in Contact and an `IP6` SDP answer, an IPv4 caller the IPv4 ones; a TLS dialog's
//! Contact is `sips:` at the TLS port; a message from a connection whose client
//! certificate was verified (mutual TLS) comes from a trusted peer.

mod testkit;

use std::net::SocketAddr;

use concierge_b2bua::{CallRecord, SwitchConfig};
use concierge_sip::wire::{HeaderName, Message, Response, Transport};
use concierge_sip::Peer;

use testkit::Kit;

/// A kit whose switch has an IPv4 and an IPv6 address, a UDP and a TLS port, and no flow.
fn kit() -> Kit {
    let cfg = SwitchConfig {
        advertised_host: "192.0.2.10".into(),
        advertised_host_v6: Some("[2001:db8::10]".into()),
        media_ip: "192.0.2.10".parse().unwrap(),
        media_ip_v6: Some("2001:db8::10".parse().unwrap()),
        sip_port: 5060,
        tls_port: Some(5061),
        seed: 7,
        ..SwitchConfig::default()
    };
    Kit::with(cfg, Default::default())
}

fn invite(via: &str, host: &str, c_line: &str, extra: &str) -> String {
    let sdp = format!(
        "v=0\r\no=- 1 1 {c_line}\r\ns=-\r\nc={c_line}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    );
    format!(
        "INVITE sip:ivr@{host} SIP/2.0\r\nVia: {via};branch=z9hG4bKcall1;rport\r\nFrom: <sip:anonymous@anonymous.invalid>;tag=ph\r\nTo: <sip:ivr@{host}>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:phone@{host}>\r\nMax-Forwards: 70\r\n{extra}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// The 200 OK the switch sent to `to`.
fn ok_to(kit: &mut Kit, to: SocketAddr) -> Response {
    kit.inbox(to)
        .into_iter()
        .find_map(|m| match m {
            Message::Response(r) if r.status.0 == 200 => Some(r),
            _ => None,
        })
        .expect("a 200 OK")
}

fn contact(r: &Response) -> String {
    r.headers
        .get(&HeaderName::CONTACT)
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn an_ipv6_caller_gets_our_ipv6_contact_and_an_ip6_answer_an_ipv4_caller_the_ipv4_ones() {
    let mut kit = kit();
    let v6: SocketAddr = "[2001:db8::5]:5070".parse().unwrap();
    let text = invite(
        "SIP/2.0/UDP [2001:db8::5]:5070",
        "[2001:db8::10]",
        "IN IP6 2001:db8::5",
        "",
    );
    kit.sip_from(v6, &text);
    let ok = ok_to(&mut kit, v6);
    assert_eq!(contact(&ok), "<sip:concierge@[2001:db8::10]:5060>");
    let body = String::from_utf8_lossy(&ok.body);
    assert!(body.contains("c=IN IP6 2001:db8::10\r\n"), "{body}");

    let mut kit = self::kit();
    let v4: SocketAddr = "198.51.100.5:5070".parse().unwrap();
    let text = invite(
        "SIP/2.0/UDP 198.51.100.5:5070",
        "192.0.2.10",
        "IN IP4 198.51.100.5",
        "",
    );
    kit.sip_from(v4, &text);
    let ok = ok_to(&mut kit, v4);
    assert_eq!(contact(&ok), "<sip:concierge@192.0.2.10:5060>");
    assert!(String::from_utf8_lossy(&ok.body).contains("c=IN IP4 192.0.2.10\r\n"));
}

const VIP_PAI: &str = "P-Asserted-Identity: <sip:+46706170786@carrier.example;user=phone>\r\n";

/// The caller's TLS connection.
fn tls_peer() -> Peer {
    Peer {
        transport: Transport::Tls,
        addr: "198.51.100.5:40000".parse().unwrap(),
    }
}

/// `text` framed from the caller's TLS connection; `authenticated`: its client
/// certificate was verified.
fn over_tls(kit: &mut Kit, text: &str, authenticated: bool) {
    let (head, body) = text.split_at(text.find("\r\n\r\n").unwrap() + 4);
    kit.sip_framed(tls_peer(), head.as_bytes(), body.as_bytes(), authenticated);
}

/// An INVITE over TLS with a PAI, framed; `authenticated`: a verified client certificate.
fn tls_call(authenticated: bool) -> (Response, Kit) {
    tls_call_to(authenticated, "sip")
}

/// A call over TLS whose INVITE's Request-URI has `scheme`.
fn tls_call_to(authenticated: bool, scheme: &str) -> (Response, Kit) {
    let mut kit = kit();
    let text = invite(
        "SIP/2.0/TLS 198.51.100.5:40000",
        "192.0.2.10",
        "IN IP4 198.51.100.5",
        VIP_PAI,
    )
    .replacen("INVITE sip:", &format!("INVITE {scheme}:"), 1);
    over_tls(&mut kit, &text, authenticated);
    let ok = ok_to(&mut kit, tls_peer().addr);
    (ok, kit)
}

/// Ends the call with the caller's BYE and returns its record.
fn hang_up(mut kit: Kit, ok: &Response) -> CallRecord {
    let tag = ok.to.tag().unwrap();
    for (method, seq) in [("ACK", 1), ("BYE", 2)] {
        let text = format!(
            "{method} sips:concierge@192.0.2.10:5061 SIP/2.0\r\nVia: SIP/2.0/TLS 198.51.100.5:40000;branch=z9hG4bK{method}\r\nFrom: <sip:anonymous@anonymous.invalid>;tag=ph\r\nTo: <sip:ivr@192.0.2.10>;tag={tag}\r\nCall-ID: c1\r\nCSeq: {seq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        over_tls(&mut kit, &text, false);
    }
    kit.records.pop().expect("a record")
}

#[test]
fn a_tls_dialog_gets_a_contact_at_the_tls_port_with_transport_tls() {
    // A phone that dialled `sip:…;transport=tls` may not speak `sips:` (baresip 1.0 drops
    // the call on a `sips:` Contact): the transport goes in the parameter.
    let (ok, _) = tls_call(false);
    assert_eq!(
        contact(&ok),
        "<sip:concierge@192.0.2.10:5061;transport=tls>"
    );
}

#[test]
fn a_dialog_set_up_with_a_sips_uri_gets_a_sips_contact() {
    // RFC 3261 §12.1.1: a SIPS Request-URI makes the response's Contact a SIPS URI.
    let (ok, _) = tls_call_to(false, "sips");
    assert_eq!(contact(&ok), "<sips:concierge@192.0.2.10:5061>");
}

#[test]
fn a_verified_client_certificate_makes_the_sender_a_trusted_peer_and_nothing_else_does() {
    let (ok, kit) = tls_call(true);
    let rec = hang_up(kit, &ok);
    assert_eq!((rec.caller.as_str(), rec.verified), ("+46706170786", true));
    // Without a verified certificate the same INVITE's PAI is ignored.
    let (ok, kit) = tls_call(false);
    let rec = hang_up(kit, &ok);
    assert_eq!((rec.caller.as_str(), rec.verified), ("", false));
}
