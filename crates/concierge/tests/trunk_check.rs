//! `concierge check` on `[[trunks]]` (issue 23): a good trunk is listed with the variable
//! its password comes from and never the password; a missing variable, an unknown field
//! or a flow naming an undefined trunk fails the check as it would stop `run`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The password the tests hand the binary; searched for in every output.
const SECRET: &str = "trunk-check-pw-7f3a9c";

/// A config in a scratch directory with `trunks` appended and, when given, a default
/// flow file with `flow` as its text.
fn config(name: &str, trunks: &str, flow: Option<&str>) -> PathBuf {
    let dir = common::scratch_dir(name);
    let prompts = common::repo_root().join("prompts");
    let mut text = format!(
        "[sip]\nlisten = \"127.0.0.1:{}\"\n[demo]\ndirectory = false\n[prompts]\ndir = \"{}\"\n",
        common::free_port(),
        prompts.display()
    );
    if let Some(flow) = flow {
        std::fs::write(dir.join("flow.toml"), flow).unwrap();
        text.push_str("[flows]\ndefault = \"flow.toml\"\n");
    }
    text.push_str(trunks);
    let path = dir.join("concierge.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `concierge check --config FILE` with the password variable set: (ok, output).
fn check(config: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_concierge"))
        .args(["check", "--config", config.to_str().unwrap()])
        .env("CONCIERGE_TEST_TRUNK_PW", SECRET)
        .env_remove("CONCIERGE_TEST_TRUNK_PW_UNSET")
        .current_dir(common::repo_root())
        .output()
        .expect("run concierge");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains(SECRET), "the password was printed:\n{text}");
    (out.status.success(), text)
}

const TRUNK: &str = "[[trunks]]\nname = \"carrier\"\nregistrar = \"sip:192.0.2.1:5070\"\nusername = \"+4612345\"\nauth_username = \"acct-17\"\npassword_env = \"CONCIERGE_TEST_TRUNK_PW\"\nexpires_s = 600\ntrusted = true\n";

#[test]
fn a_good_trunk_is_listed_with_its_password_variable_and_never_its_password() {
    let (ok, out) = check(&config("trunk-ok", TRUNK, None));
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "trunk carrier: registers sip:+4612345@192.0.2.1 at sip:192.0.2.1:5070 over udp"
        ),
        "{out}"
    );
    assert!(
        out.contains("password from $CONCIERGE_TEST_TRUNK_PW, trusted"),
        "{out}"
    );
    assert!(
        !out.contains("does not register trunks yet"),
        "the phase-1 warning is gone: trunks register: {out}"
    );
}

#[test]
fn a_missing_password_variable_fails_the_check_naming_it() {
    let trunk = TRUNK.replace("CONCIERGE_TEST_TRUNK_PW", "CONCIERGE_TEST_TRUNK_PW_UNSET");
    let (ok, out) = check(&config("trunk-unset", &trunk, None));
    assert!(!ok, "{out}");
    assert!(
        out.contains("trunks.password_env")
            && out.contains("CONCIERGE_TEST_TRUNK_PW_UNSET is not set"),
        "{out}"
    );
}

#[test]
fn an_unknown_trunk_field_fails_the_check() {
    let (ok, out) = check(&config(
        "trunk-field",
        &format!("{TRUNK}pasword = \"x\"\n"),
        None,
    ));
    assert!(!ok, "{out}");
    assert!(out.contains("pasword"), "{out}");
}

#[test]
fn a_flow_naming_an_undefined_trunk_fails_the_check() {
    let flow = "start = \"out\"\n[nodes.out]\ntype = \"transfer\"\ntarget = \"sip:+4699@trunk:other\"\nmode = \"bridge\"\nfailed = \"bye\"\n[nodes.bye]\ntype = \"hangup\"\n";
    let (ok, out) = check(&config("trunk-flow", TRUNK, Some(flow)));
    assert!(!ok, "{out}");
    assert!(
        out.contains("node \"out\", field \"trunk\": no [[trunks]] named \"other\""),
        "{out}"
    );
    let good = flow.replace("trunk:other", "trunk:carrier");
    let (ok, out) = check(&config("trunk-flow-ok", TRUNK, Some(&good)));
    assert!(ok, "{out}");
}
