//! Digest challenges (RFC 3261 §22.4, RFC 2617 §3.2.2 qop=auth, RFC 8760 SHA-256).

use concierge_sip::registration::{Failure, RegistrationEvent, StatusState};
use md5::{Digest, Md5};
use sha2::Sha256;

use crate::rig::{config, digest_param, Rig, PASSWORD};

const MD5_CHALLENGE: &str =
    "Digest realm=\"carrier.example\", nonce=\"n-1\", qop=\"auth\", algorithm=MD5, opaque=\"op\"";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 2617 §3.2.2.1 computed here, apart from the code under test.
fn expected_md5(line: &str) -> String {
    let p = |n| digest_param(line, n).unwrap();
    let ha1 = hex(&Md5::digest(format!("acct-17:carrier.example:{PASSWORD}")));
    let ha2 = hex(&Md5::digest(format!("REGISTER:{}", p("uri"))));
    hex(&Md5::digest(format!(
        "{ha1}:{}:{}:{}:auth:{ha2}",
        p("nonce"),
        p("nc"),
        p("cnonce")
    )))
}

#[test]
fn rfc3261_22_4_a_401_is_answered_with_digest_and_the_200_registers() {
    let mut rig = Rig::start(config());
    rig.answer(401, &[("WWW-Authenticate", MD5_CHALLENGE)]);
    let line = rig
        .header("Authorization")
        .expect("the REGISTER again, with credentials");
    assert_eq!(digest_param(&line, "username").as_deref(), Some("acct-17"));
    assert_eq!(
        digest_param(&line, "uri").as_deref(),
        Some("sip:192.0.2.1:5070")
    );
    assert_eq!(digest_param(&line, "nc").as_deref(), Some("00000001"));
    assert_eq!(digest_param(&line, "opaque").as_deref(), Some("op"));
    assert_eq!(digest_param(&line, "response"), Some(expected_md5(&line)));
    assert_eq!(rig.registers().len(), 2);
    assert!(rig.registers()[1].cseq.seq > rig.registers()[0].cseq.seq);
    rig.answer(200, &[]);
    assert!(matches!(rig.status().state, StatusState::Registered { .. }));
    assert!(matches!(
        rig.events[..],
        [RegistrationEvent::Registered { .. }]
    ));
}

#[test]
fn rfc8760_a_sha256_challenge_is_answered_with_sha256() {
    let mut rig = Rig::start(config());
    rig.answer(
        401,
        &[
            ("WWW-Authenticate", MD5_CHALLENGE),
            (
                "WWW-Authenticate",
                "Digest realm=\"carrier.example\", nonce=\"n-2\", qop=\"auth\", algorithm=SHA-256",
            ),
        ],
    );
    let line = rig.header("Authorization").unwrap();
    assert_eq!(digest_param(&line, "algorithm").as_deref(), Some("SHA-256"));
    let p = |n| digest_param(&line, n).unwrap();
    let h = |s: String| hex(&Sha256::digest(s));
    let ha1 = h(format!("acct-17:carrier.example:{PASSWORD}"));
    let ha2 = h(format!("REGISTER:{}", p("uri")));
    let want = h(format!("{ha1}:n-2:{}:{}:auth:{ha2}", p("nc"), p("cnonce")));
    assert_eq!(p("response"), want);
}

#[test]
fn rfc3261_22_3_a_407_is_answered_in_proxy_authorization() {
    let mut rig = Rig::start(config());
    rig.answer(
        407,
        &[(
            "Proxy-Authenticate",
            "Digest realm=\"edge\", nonce=\"p-1\", qop=\"auth\"",
        )],
    );
    assert!(rig.header("Proxy-Authorization").is_some());
    assert!(rig.header("Authorization").is_none());
}

#[test]
fn a_second_challenge_with_the_nonce_we_answered_rejects_the_credentials_and_stops() {
    let mut rig = Rig::start(config());
    rig.answer(401, &[("WWW-Authenticate", MD5_CHALLENGE)]);
    rig.answer(401, &[("WWW-Authenticate", MD5_CHALLENGE)]);
    assert_eq!(rig.registers().len(), 2, "no third REGISTER");
    assert_eq!(
        rig.status().state,
        StatusState::Failed {
            why: Failure::CredentialsRejected
        }
    );
    assert_eq!(rig.reg.poll_timeout(), None, "nothing retried");
    assert!(rig.events.contains(&RegistrationEvent::Stopped {
        why: Failure::CredentialsRejected
    }));
}

#[test]
fn rfc2617_a_stale_nonce_is_answered_again() {
    let mut rig = Rig::start(config());
    rig.answer(401, &[("WWW-Authenticate", MD5_CHALLENGE)]);
    rig.answer(
        401,
        &[(
            "WWW-Authenticate",
            "Digest realm=\"carrier.example\", nonce=\"n-1\", qop=\"auth\", stale=true",
        )],
    );
    assert_eq!(rig.registers().len(), 3);
    rig.answer(200, &[]);
    assert!(matches!(rig.status().state, StatusState::Registered { .. }));
}

#[test]
fn a_second_challenge_in_one_attempt_rejects_the_credentials_even_with_a_fresh_nonce() {
    // Kamailio and others issue a new nonce with every challenge, wrong password or not.
    let mut rig = Rig::start(config());
    rig.answer(401, &[("WWW-Authenticate", MD5_CHALLENGE)]);
    rig.answer(
        401,
        &[(
            "WWW-Authenticate",
            "Digest realm=\"carrier.example\", nonce=\"n-9\", qop=\"auth\"",
        )],
    );
    assert_eq!(rig.registers().len(), 2);
    assert_eq!(
        rig.status().state,
        StatusState::Failed {
            why: Failure::CredentialsRejected
        }
    );
}

#[test]
fn a_fresh_challenge_to_a_refresh_s_reused_nonce_is_answered() {
    let mut rig = Rig::start(config());
    rig.answer(401, &[("WWW-Authenticate", MD5_CHALLENGE)]);
    rig.answer(200, &[]);
    rig.step(); // the refresh, answering n-1 again
    rig.answer(
        401,
        &[(
            "WWW-Authenticate",
            "Digest realm=\"carrier.example\", nonce=\"n-9\", qop=\"auth\"",
        )],
    );
    let line = rig.header("Authorization").unwrap();
    assert_eq!(digest_param(&line, "nonce").as_deref(), Some("n-9"));
    assert_eq!(digest_param(&line, "nc").as_deref(), Some("00000001"));
}

#[test]
fn a_refresh_answers_the_last_challenge_again_with_a_higher_nonce_count() {
    let mut rig = Rig::start(config());
    rig.answer(401, &[("WWW-Authenticate", MD5_CHALLENGE)]);
    rig.answer(200, &[]);
    rig.step(); // the refresh
    let line = rig
        .header("Authorization")
        .expect("credentials without a new round trip");
    assert_eq!(digest_param(&line, "nonce").as_deref(), Some("n-1"));
    assert_eq!(digest_param(&line, "nc").as_deref(), Some("00000002"));
    assert_eq!(digest_param(&line, "response"), Some(expected_md5(&line)));
}

#[test]
fn a_challenge_we_cannot_answer_stops_naming_no_peer_text() {
    let mut rig = Rig::start(config());
    rig.answer(
        401,
        &[(
            "WWW-Authenticate",
            "Digest realm=\"x\", nonce=\"n\", algorithm=\"\u{1b}[2J\"",
        )],
    );
    let StatusState::Failed { why } = rig.status().state else {
        panic!("{:?}", rig.status());
    };
    assert_eq!(
        why.to_string(),
        "cannot answer the registrar's challenge: unsupported algorithm"
    );
}

#[test]
fn the_password_is_in_no_request() {
    let mut rig = Rig::start(config());
    rig.answer(401, &[("WWW-Authenticate", MD5_CHALLENGE)]);
    rig.answer(200, &[]);
    for (_, r, _) in &rig.sent {
        let bytes = r.to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(PASSWORD), "{text}");
    }
    assert!(!format!("{:?}", rig.reg).contains(PASSWORD));
}
