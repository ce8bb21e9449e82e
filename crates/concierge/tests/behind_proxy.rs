//! The real server behind a record-routing proxy, played by SIPp (RFC 3261 §12, §16.6):
//! the 180 and 200 carry the Record-Route values in order and both Vias, the caller's ACK,
//! NOTIFY and BYE sent along the route set reach the server, and the server's REFER and
//! BYE to the caller go through the route set — to SIPp, the first route — and never to
//! the caller's unreachable Contact.

mod common;

use common::proxy::{header_values, sipp_from, SippRun};
use common::{free_port, scenario, start_vip, wait_records, Server};

/// The first traced message whose first line starts with `start`.
fn message<'a>(messages: &'a [String], start: &str) -> &'a str {
    messages
        .iter()
        .find(|m| m.starts_with(start))
        .unwrap_or_else(|| panic!("no {start:?} among {:?}", first_lines(messages)))
}

fn first_lines(messages: &[String]) -> Vec<&str> {
    messages.iter().filter_map(|m| m.lines().next()).collect()
}

fn assert_ok(run: &SippRun, server: &Server) {
    assert!(
        run.ok,
        "SIPp failed\n--- server log (tail)\n{}\n--- SIPp\n{}",
        common::tail(&server.log(), 60),
        run.report
    );
}

/// A VIP caller behind the proxy: welcome, lookup, REFER to the VIP desk, our BYE.
/// Returns what SIPp received.
fn vip_call_through(server: &Server, sipp_port: u16, rr1: &str, rr2: &str) -> Vec<String> {
    let run = sipp_from(
        sipp_port,
        server.port,
        &[
            "-sf",
            &scenario("proxy_refer.xml"),
            "-key",
            "caller",
            "+46706170786",
            "-key",
            "rr1",
            rr1,
            "-key",
            "rr2",
            rr2,
            "-m",
            "1",
            "-timeout",
            "40",
            "-timeout_error",
        ],
    );
    assert_ok(&run, server);
    let rec = wait_records(server, 1).pop().expect("a record");
    assert_eq!(rec["transfer"]["result"], "succeeded", "{rec}");
    assert_eq!(rec["reason"], "transferred");
    run.received
}

/// What the 180 and the 200 must carry: the Record-Route values in order, both Vias.
fn assert_dialog_responses(received: &[String], record_route: &[String], server: &Server) {
    for start in ["SIP/2.0 180", "SIP/2.0 200"] {
        let r = message(received, start);
        assert_eq!(header_values(r, "Record-Route"), record_route, "{r}");
        let vias = header_values(r, "Via");
        assert_eq!(vias.len(), 2, "{r}");
        assert!(
            vias[1].contains("10.0.0.5:5060"),
            "the phone's Via below ours: {r}"
        );
        assert_eq!(
            header_values(r, "Contact"),
            vec![format!("<sip:concierge@127.0.0.1:{}>", server.port)]
        );
    }
}

#[test]
fn rfc3261_12_1_1_several_loose_record_routes_are_echoed_and_refer_and_bye_follow_them() {
    let server = start_vip("rr-loose", |f| f, "");
    let sipp_port = free_port();
    // Two header lines, three values; the first is SIPp (the proxy next to us).
    let rr1 = format!("<sip:127.0.0.1:{sipp_port};lr;ftag=x>, <sip:10.0.0.1;lr>");
    let rr2 = "<sip:10.0.0.2:5080;lr>";
    let received = vip_call_through(&server, sipp_port, &rr1, rr2);
    let expected = vec![
        format!("<sip:127.0.0.1:{sipp_port};lr;ftag=x>"),
        "<sip:10.0.0.1;lr>".to_owned(),
        rr2.to_owned(),
    ];
    assert_dialog_responses(&received, &expected, &server);
    // §12.2.1.1, loose routing: Request-URI is the remote target (the Contact, which is
    // unreachable: these only got here through the route set), Route is the route set.
    for method in ["REFER", "BYE"] {
        let m = message(&received, method);
        assert!(
            m.starts_with(&format!("{method} sip:phone@10.0.0.5:5060 SIP/2.0")),
            "{m}"
        );
        assert_eq!(header_values(m, "Route"), expected, "{m}");
    }
}

#[test]
fn rfc3261_12_2_1_1_a_strict_router_first_gets_the_request_uri() {
    let server = start_vip("rr-strict", |f| f, "");
    let sipp_port = free_port();
    let rr1 = format!("<sip:127.0.0.1:{sipp_port}>");
    let rr2 = "<sip:10.0.0.2:5080;lr>";
    let received = vip_call_through(&server, sipp_port, &rr1, rr2);
    assert_dialog_responses(&received, &[rr1.clone(), rr2.to_owned()], &server);
    for method in ["REFER", "BYE"] {
        let m = message(&received, method);
        assert!(
            m.starts_with(&format!("{method} sip:127.0.0.1:{sipp_port} SIP/2.0")),
            "{m}"
        );
        assert_eq!(
            header_values(m, "Route"),
            vec![rr2.to_owned(), "<sip:phone@10.0.0.5:5060>".to_owned()],
            "the rest of the route set, then the remote target: {m}"
        );
    }
}

#[test]
fn rfc3261_12_1_1_one_record_route_and_the_callers_ack_and_bye_along_it_reach_the_server() {
    let server = Server::start("rr-one", "", "");
    let sipp_port = free_port();
    let rr = format!("<sip:127.0.0.1:{sipp_port};lr>");
    let run = sipp_from(
        sipp_port,
        server.port,
        &[
            "-sf",
            &scenario("proxy_caller_bye.xml"),
            "-key",
            "rr",
            &rr,
            "-m",
            "1",
            "-timeout",
            "20",
            "-timeout_error",
        ],
    );
    assert_ok(&run, &server);
    assert_dialog_responses(&run.received, std::slice::from_ref(&rr), &server);
    // SIPp's ACK and BYE carried the route set (reversed: it is the caller) …
    for method in ["ACK", "BYE"] {
        let m = message(&run.sent, method);
        assert_eq!(header_values(m, "Route"), vec![rr.clone()], "{m}");
    }
    // … and the server took them: confirmed by the ACK (no 200 resent), ended by the BYE.
    let oks = run
        .received
        .iter()
        .filter(|m| m.starts_with("SIP/2.0 200") && m.contains("INVITE"))
        .count();
    assert_eq!(oks, 1, "the ACK stopped the 200's retransmissions");
    let rec = wait_records(&server, 1).pop().unwrap();
    assert_eq!(
        (rec["ended_by"].as_str(), rec["reason"].as_str()),
        (Some("caller"), Some("hung up"))
    );
    assert!(server.log().contains("call confirmed by ACK"));
}
