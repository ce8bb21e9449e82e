//! The signed transfer context through the real server: the REFER's Refer-To carries
//! X-Concierge-Token, which the shipped `deploy/verify_transfer_token.py` accepts, and
//! rejects once the tier is changed. One test per process: it sets the key in the
//! environment the server inherits.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{header, start_vip, RawCall};

const KEY_ENV: &str = "CONCIERGE_TRANSFER_KEY";
const KEY: &str = "a test key, 32 bytes or more ....";

/// Runs the documented verifier on a Refer-To; whether it accepted it, and what it said.
fn verify(uri: &str, key: &str) -> (bool, String) {
    let out = Command::new("python3")
        .arg(common::repo_root().join("deploy/verify_transfer_token.py"))
        .args(["--uri", uri])
        .env(KEY_ENV, key)
        .output()
        .expect("python3 runs the verifier");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_transfer_token_verifies_with_the_documented_script_and_fails_when_the_tier_is_altered() {
    // Set before any thread of this process starts a child: the server inherits it.
    std::env::set_var(KEY_ENV, KEY);
    let server = start_vip("token", |f| f, "");
    let mut call = RawCall::invite(server.port, "+46706170786", "token1", "0 101");
    call.answer_and_ack();
    let refer = call.sip.expect("REFER ", Duration::from_secs(30));
    call.bye();
    let to = header(&refer, "Refer-To").unwrap().to_owned();
    assert!(to.contains("X-Concierge-Tier=member"), "{to}");
    assert!(to.contains("X-Concierge-Call-Id=token1"), "{to}");
    assert!(to.contains("X-Concierge-Token=v1"), "{to}");

    let (ok, said) = verify(&to, KEY);
    assert!(ok, "{said}");
    assert!(said.contains("x-concierge-tier: member"), "{said}");
    let (ok, said) = verify(&to.replace("Tier=member", "Tier=gold"), KEY);
    assert!(!ok && said.contains("does not match"), "{said}");
    let (ok, _) = verify(&to.replace("Call-Id=token1", "Call-Id=token2"), KEY);
    assert!(!ok, "another call's context");
    let (ok, _) = verify(&to, "another key");
    assert!(!ok, "another key");
}
