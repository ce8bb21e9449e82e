//! RFC 4475 torture messages (written from the RFC's descriptions into `torture/`): the
//! valid ones parse, the invalid ones are rejected with the answer the RFC expects, and
//! none of them, cut short or with bits flipped, makes the parser panic.

use std::path::PathBuf;

use concierge_sip::wire::{
    check_request, parse_datagram, Message, Method, StatusCode, StreamFramer,
};

fn load(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/torture")
        .join(format!("{name}.sip"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const SUPPORTED: &[&str] = &["replaces", "norefersub"];

/// What a UAS does with the message: parse error status, sanity rejection, or accept.
fn verdict(bytes: &[u8]) -> Result<Message, StatusCode> {
    let msg = parse_datagram(bytes)
        .map_err(|e| e.status())?
        .expect("not a keep-alive");
    if let Message::Request(r) = &msg {
        check_request(r, SUPPORTED).map_err(|rej| rej.status)?;
    }
    Ok(msg)
}

fn request(name: &str) -> concierge_sip::wire::Request {
    match verdict(&load(name)) {
        Ok(Message::Request(r)) => r,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn wsinv_short_tortuous_invite() {
    let r = request("valid/wsinv");
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.call_id, "wsinv.ndaksdj@192.0.2.1");
    assert_eq!(r.cseq.seq, 9);
    assert_eq!(r.max_forwards, Some(68));
    assert_eq!(
        r.vias.len(),
        3,
        "one Via line and a compact one with two values"
    );
    assert_eq!(r.vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(&*r.vias[2].host, "192.168.255.111");
    assert_eq!(r.to.tag(), Some("1918181833n"));
    assert_eq!(r.from.tag(), Some("98asjd8"));
    assert_eq!(r.from.display.as_deref(), Some("J Rosenberg \\\""));
    assert!(r.body.starts_with(b"v=0"));
}

#[test]
fn intmeth_wide_range_of_valid_characters() {
    let r = request("valid/intmeth");
    assert_eq!(
        r.method,
        Method::Other("!interesting-Method0123456789_*+`.%indeed'~".into())
    );
    assert_eq!(r.uri.host(), "example.com");
    assert_eq!(r.from.tag(), Some("_token~1'+`*%!-."));
}

#[test]
fn escapes_in_uris_are_kept_as_written() {
    let r = request("valid/esc01");
    assert_eq!(r.uri.user(), Some("sips%3Auser%40example.com"));
    assert_eq!(r.uri.host(), "example.net");
    let r = request("valid/escnull");
    assert_eq!(r.to.uri.user(), Some("null-%00-null"));
    let r = request("valid/esc02");
    assert_eq!(
        r.method,
        Method::Other("RE%47IST%45R".into()),
        "% is a token character, not an escape, in a method"
    );
}

#[test]
fn dblreq_trailing_octets_are_not_the_body() {
    let r = request("valid/dblreq");
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
}

#[test]
fn every_valid_message_is_accepted() {
    for name in [
        "wsinv",
        "intmeth",
        "esc01",
        "escnull",
        "esc02",
        "lwsdisp",
        "longreq",
        "dblreq",
        "semiuri",
        "transports",
        "mpart01",
        "unreason",
        "noreason",
        "inv2543",
        "badbranch",
    ] {
        if let Err(status) = verdict(&load(&format!("valid/{name}"))) {
            panic!("{name} rejected with {status}");
        }
    }
    let r = request("valid/lwsdisp");
    assert_eq!(r.from.display.as_deref(), Some("caller"));
    let r = request("valid/semiuri");
    assert_eq!(r.uri.user(), Some("user;par=u%40example.net"));
    assert_eq!(r.uri.host(), "example.com");
    let r = request("valid/transports");
    assert_eq!(r.vias.len(), 5);
    let r = request("valid/inv2543");
    assert!(!r.top_via().unwrap().has_rfc3261_branch());
}

#[test]
fn every_invalid_message_is_rejected_with_the_right_status() {
    let cases: &[(&str, u16)] = &[
        ("badinv01", 400),
        ("clerr", 400),
        ("ncl", 400),
        ("scalar02", 400),
        ("quotbal", 400),
        ("ltgtruri", 400),
        ("lwsruri", 400),
        ("lwsstart", 400),
        ("trws", 400),
        ("badvers", 505),
        ("mismatch01", 400),
        ("mismatch02", 400),
        ("insuf", 400),
        ("unkscm", 416),
        ("bext01", 420),
        ("multi01", 400),
        ("mcl01", 400),
        ("baddn", 400),
    ];
    for (name, want) in cases {
        match verdict(&load(&format!("invalid/{name}"))) {
            Err(status) => assert_eq!(status, StatusCode(*want), "{name}"),
            Ok(m) => panic!("{name} accepted: {m:?}"),
        }
    }
    // Responses that cannot be parsed are dropped (§18.1.2): no status to send.
    for name in ["scalarlg", "bigcode"] {
        assert!(
            parse_datagram(&load(&format!("invalid/{name}"))).is_err(),
            "{name}"
        );
    }
}

/// Every prefix and every single-bit flip of every message, through the datagram parser
/// and the stream framer: errors are fine, panics are not.
#[test]
fn truncated_and_corrupted_messages_never_panic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/torture");
    for sub in ["valid", "invalid"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap().flatten() {
            let bytes = std::fs::read(entry.path()).unwrap();
            for cut in 0..bytes.len() {
                let _ = parse_datagram(&bytes[..cut]);
            }
            let step = (bytes.len() / 200).max(1);
            for i in (0..bytes.len()).step_by(step) {
                for bit in 0..8 {
                    let mut b = bytes.clone();
                    b[i] ^= 1 << bit;
                    let _ = parse_datagram(&b);
                    let mut f = StreamFramer::new();
                    f.push(&b);
                    while let Ok(Some(_)) = f.next_item() {}
                }
            }
        }
    }
}
