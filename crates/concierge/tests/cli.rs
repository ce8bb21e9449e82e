//! `concierge check` and `concierge simulate` as an operator runs them.

mod common;

use std::process::Command;

fn concierge(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_concierge"))
        .args(args)
        .current_dir(common::repo_root())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn check_passes_on_the_shipped_config_and_fails_on_a_broken_flow() {
    let (ok, out) = concierge(&["check", "config"]);
    assert!(ok, "{out}");
    assert!(out.contains("ok: 6 flow(s)"), "{out}");
    let dir = common::scratch_dir("broken-flow");
    let broken = dir.join("broken.toml");
    std::fs::write(
        &broken,
        "start = \"a\"\n[nodes.a]\ntype = \"play\"\nprompts = [\"welcom\"]\nnext = \"b\"\n",
    )
    .unwrap();
    let (ok, out) = concierge(&["check", broken.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("node \"a\", field \"prompts\": unknown prompt \"welcom\""),
        "{out}"
    );
    assert!(
        out.contains("node \"a\", field \"next\": exit to unknown node \"b\""),
        "{out}"
    );
}

#[test]
fn simulate_shows_the_three_paths_of_the_reference_flow() {
    // Its own directory port and a flow pointing at it, so tests do not share 8089.
    let dir = common::scratch_dir("simulate");
    let port = common::free_port();
    let root = common::repo_root();
    let flow = std::fs::read_to_string(root.join("config/flows/vip.toml"))
        .unwrap()
        .replace("127.0.0.1:8089", &format!("127.0.0.1:{port}"));
    let flow_path = dir.join("vip.toml");
    std::fs::write(&flow_path, flow).unwrap();
    let cfg = dir.join("concierge.toml");
    std::fs::write(
        &cfg,
        format!("[demo]\ndirectory_listen = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let run = |caller: &str, digits: &str| -> serde_json::Value {
        let verified = caller.starts_with("verified:");
        let caller = caller.trim_start_matches("verified:");
        let mut args = vec![
            "simulate",
            "--flow",
            flow_path.to_str().unwrap(),
            "--caller",
            caller,
            "--json",
            "--config",
            cfg.to_str().unwrap(),
        ];
        if !digits.is_empty() {
            args.extend(["--digits", digits]);
        }
        if verified {
            args.push("--verified");
        }
        let (ok, out) = concierge(&args);
        assert!(ok, "{out}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let vip = run("verified:+46706170786", "");
    assert_eq!(
        vip["final"]["transfer"]["target"],
        "sip:vip-desk@127.0.0.1:5060"
    );
    // The same number, only claimed: asked for the code; none typed → customer service.
    let claimed = run("+46706170786", "");
    assert_eq!(
        claimed["final"]["transfer"]["target"],
        "sip:service-desk@127.0.0.1:5060"
    );
    let gold = run("+46700000009", "101010");
    assert_eq!(gold["final"]["transfer"]["headers"][0][1], "gold");
    assert_eq!(gold["variables"]["securityCode"], "***");
    let wrong = run("+46700000003", "999999");
    assert_eq!(
        wrong["final"]["transfer"]["target"],
        "sip:service-desk@127.0.0.1:5060"
    );
    // The lookup comes first now (while the phone would ring).
    assert_eq!(
        wrong["steps"][0]["result"]["status"], 200,
        "the lookup really reached the API"
    );
    assert_eq!(
        wrong["steps"][0]["cache"], "miss",
        "simulate shows the cache"
    );
    assert_eq!(
        wrong["steps"][1]["interruptible"], true,
        "the welcome can be skipped"
    );
}
