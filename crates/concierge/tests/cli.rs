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
    // The directory moved off the shipped port, as `run` would move it with the same flag.
    let directory = format!("127.0.0.1:{}", common::free_port());
    let (ok, out) = concierge(&["check", "config", "--directory-listen", &directory]);
    assert!(ok, "{out}");
    assert!(out.contains("ok: 4 flow(s)"), "{out}");
    let served = format!(
        "demo directory: 5 customer(s) from config/customers.csv, served on http://{directory}"
    );
    for checked in [
        "default flow: config/flows/vip.toml",
        "route \"echo-digits\": config/flows/echo.toml",
        "prompts: 31 in prompts",
        served.as_str(),
    ] {
        assert!(out.contains(checked), "{checked:?} not in {out}");
    }
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
    // Its own directory port, so tests never share the demo's: the shipped flow follows it
    // through {system.directory_url}.
    let dir = common::scratch_dir("simulate");
    let port = common::free_port();
    // And its own SIP address, which the desks' URIs name ({system.local_host}).
    let listen = format!("127.0.0.1:{}", common::free_port());
    let root = common::repo_root();
    let flow_path = root.join("config/flows/vip.toml");
    let cfg = dir.join("concierge.toml");
    std::fs::write(
        &cfg,
        format!(
            "[demo]\ndirectory_listen = \"127.0.0.1:{port}\"\ncustomers = \"{}\"\n[prompts]\ndir = \"{}\"\n",
            root.join("config/customers.csv").display(),
            root.join("prompts").display()
        ),
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
            "--listen",
            &listen,
        ];
        if !digits.is_empty() {
            args.extend(["--digits", digits]);
        }
        if verified {
            args.push("--verified");
        }
        // The JSON on stdout; warnings (an unset ${CRM_TOKEN}) go to stderr.
        let out = Command::new(env!("CARGO_BIN_EXE_concierge"))
            .args(&args)
            .current_dir(common::repo_root())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    let vip = run("verified:+46706170786", "");
    assert_eq!(
        vip["final"]["transfer"]["target"],
        format!("sip:vip-desk@{listen}").as_str()
    );
    // The same number, only claimed: asked for the code; none typed → customer service.
    let claimed = run("+46706170786", "");
    assert_eq!(
        claimed["final"]["transfer"]["target"],
        format!("sip:service-desk@{listen}").as_str()
    );
    let gold = run("+46700000009", "101010");
    assert_eq!(gold["final"]["transfer"]["headers"][0][1], "gold");
    assert_eq!(gold["variables"]["securityCode"], "***");
    let wrong = run("+46700000003", "999999");
    assert_eq!(
        wrong["final"]["transfer"]["target"],
        format!("sip:service-desk@{listen}").as_str()
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

/// A flow file in a scratch directory, checked from the repository.
fn check_flow(name: &str, text: &str) -> (bool, String) {
    let dir = common::scratch_dir(name);
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    concierge(&["check", path.to_str().unwrap()])
}

const LOOKUP: &str = "start = \"lookup\"\n[nodes.lookup]\ntype = \"http\"\n";
const LOOKUP_END: &str =
    "save_as = \"r\"\nsuccess = \"bye\"\nfailure = \"bye\"\n[nodes.bye]\ntype = \"hangup\"\n";

#[test]
fn check_fails_on_a_path_that_does_not_exist_or_names_nothing_to_check() {
    for path in ["does-not-exist.toml", "confg", "config/flows/nope.toml"] {
        let (ok, out) = concierge(&["check", path]);
        assert!(!ok, "{path}: {out}");
        assert!(out.contains(path) && out.starts_with("error:"), "{out}");
    }
    // A directory without a concierge.toml is not a config either.
    let (ok, out) = concierge(&["check", "prompts"]);
    assert!(!ok && out.contains("no concierge.toml"), "{out}");
}

#[test]
fn a_broken_default_flow_fails_check_as_it_stops_run() {
    let dir = common::scratch_dir("broken-default");
    std::fs::write(
        dir.join("broken.toml"),
        "start = \"a\"\n[nodes.a]\ntype = \"play\"\nprompts = [\"welcome\"]\nnext = \"nowhere\"\n",
    )
    .unwrap();
    // Relative paths: from the config file's directory, whatever the working directory.
    let prompts = common::repo_root().join("prompts");
    std::fs::write(
        dir.join("concierge.toml"),
        format!(
            "[sip]\nlisten = \"127.0.0.1:{}\"\n[demo]\ndirectory = false\n[prompts]\ndir = \"{}\"\n[flows]\ndefault = \"broken.toml\"\n",
            common::free_port(),
            prompts.display()
        ),
    )
    .unwrap();
    let config = dir.join("concierge.toml");
    let (ok, out) = concierge(&["check", "--config", config.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("broken.toml:5: node \"a\", field \"next\": exit to unknown node \"nowhere\""),
        "{out}"
    );
    assert!(out.contains("`concierge run` would refuse this"), "{out}");
    // The positional form checks the same.
    let (ok, _) = concierge(&["check", config.to_str().unwrap()]);
    assert!(!ok);
    let (ok, out) = concierge(&["run", "--config", config.to_str().unwrap()]);
    assert!(!ok && out.contains("exit to unknown node"), "{out}");
}

#[test]
fn check_outside_the_repository_checks_the_built_in_demo_that_run_would_start() {
    let dir = common::scratch_dir("elsewhere");
    let (ok, out) = common::concierge_in(&dir, &["check"]);
    assert!(ok, "{out}");
    assert!(out.contains("checking the built-in demo"), "{out}");
    assert!(out.contains("ok: 4 flow(s), 31 prompt(s)"), "{out}");
    // And the repository's config from here: its paths are read from its own directory.
    let config = common::repo_root().join("config/concierge.toml");
    let (ok, out) = common::concierge_in(&dir, &["check", "--config", config.to_str().unwrap()]);
    assert!(ok, "{out}");
}

#[test]
fn a_misspelt_system_variable_fails_check_with_the_valid_names() {
    let (ok, out) = check_flow(
        "callr",
        &format!(
            "{LOOKUP}url = \"{{system.directory_url}}/customers/{{system.callr}}\"\n{LOOKUP_END}"
        ),
    );
    assert!(!ok, "{out}");
    assert!(out.contains("unknown variable \"system.callr\""), "{out}");
    for valid in [
        "system.caller",
        "system.called",
        "system.call_id",
        "system.local_host",
        "system.directory_url",
        "system.caller_verified",
        "system.caller_verstat",
    ] {
        assert!(out.contains(valid), "{valid} not in {out}");
    }
}

#[test]
fn an_unset_environment_variable_is_a_warning() {
    let (ok, out) = check_flow(
        "env",
        &format!("{LOOKUP}url = \"{{system.directory_url}}/x\"\nheaders = {{ Authorization = \"Bearer ${{CONCIERGE_TEST_UNSET_TOKEN}}\" }}\n{LOOKUP_END}"),
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("warning: ") && out.contains("${CONCIERGE_TEST_UNSET_TOKEN} is not set"),
        "{out}"
    );
}

#[test]
fn template_and_toml_errors_point_at_the_character() {
    let (ok, out) = check_flow(
        "brace",
        &format!("{LOOKUP}url = \"http://crm/customers/{{system.caller\"\n{LOOKUP_END}"),
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("brace.toml:4:29: node \"lookup\", field \"url\": bad template"),
        "{out}"
    );
    assert!(!out.contains("is not an http"), "{out}");
    let dir = common::scratch_dir("toml-syntax");
    let config = dir.join("concierge.toml");
    std::fs::write(&config, "[flows]\nroutes = { a = \"x.toml\" \n").unwrap();
    let (ok, out) = concierge(&["check", config.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(out.contains("concierge.toml: line 2, column "), "{out}");
    assert!(
        !out.contains("field \"]\"") && !out.contains("field `]`"),
        "{out}"
    );
}

#[test]
fn a_lookup_at_a_local_port_nothing_serves_is_a_warning() {
    let dir = common::scratch_dir("unserved");
    let port = common::free_port();
    let config = dir.join("concierge.toml");
    std::fs::write(
        &config,
        format!("[demo]\ndirectory_listen = \"127.0.0.1:{port}\"\ncustomers = \"{}\"\n[prompts]\ndir = \"{}\"\n",
            common::repo_root().join("config/customers.csv").display(),
            common::repo_root().join("prompts").display()),
    )
    .unwrap();
    // A flow written for a directory that has moved since: its port is served by nothing.
    let stale = std::iter::repeat_with(common::free_port)
        .find(|p| *p != port)
        .expect("a second free port");
    let flow = dir.join("old.toml");
    std::fs::write(
        &flow,
        format!(
            "{LOOKUP}url = \"http://127.0.0.1:{stale}/customers/{{system.caller}}\"\n{LOOKUP_END}"
        ),
    )
    .unwrap();
    let (ok, out) = concierge(&[
        "check",
        "--config",
        config.to_str().unwrap(),
        flow.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "points at local port {stale}, which nothing in this config serves"
        )) && out.contains(&format!("the demo directory is on 127.0.0.1:{port}")),
        "{out}"
    );
    // The shipped flow follows the directory wherever it is: no warning.
    let (ok, out) = concierge(&[
        "check",
        "--config",
        config.to_str().unwrap(),
        "config/flows/vip.toml",
    ]);
    assert!(ok && !out.contains("points at local port"), "{out}");
}

#[test]
fn every_flag_has_help_and_run_help_describes_the_built_in_demo() {
    for cmd in ["run", "check", "simulate"] {
        let (ok, out) = concierge(&[cmd, "--help"]);
        assert!(ok, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            if t.starts_with("--")
                || (t.starts_with('-') && t.chars().nth(1).is_some_and(char::is_alphabetic))
            {
                // clap puts the help on the same line or, for long help, on the next.
                let described = t.split("  ").filter(|p| !p.trim().is_empty()).count() > 1
                    || lines.get(i + 1).is_some_and(|n| {
                        let n = n.trim_start();
                        !n.is_empty() && !n.starts_with('-')
                    });
                assert!(described, "{cmd}: no help for {t:?}\n{out}");
            }
        }
    }
    let (_, out) = concierge(&["run", "--help"]);
    for needle in [
        "built into the binary",
        "customer directory",
        "--listen",
        "--rtp-ports",
        "--directory-listen",
    ] {
        assert!(out.contains(needle), "{needle:?} not in {out}");
    }
    assert!(!out.contains("built-in defaults"), "{out}");
}

#[test]
fn simulate_judges_opening_hours_at_the_given_time() {
    let dir = common::scratch_dir("simulate-hours");
    let flow = dir.join("hours.toml");
    std::fs::write(
        &flow,
        "start = \"open\"\n[schedules.desk]\ntime_zone = \"Europe/Stockholm\"\nhours = [\"mon-fri 08:00-18:00\"]\n\
         [nodes.open]\ntype = \"condition\"\nvariable = \"system.now\"\n\
         cases = [{ operator = \"WithinSchedule\", value = \"desk\", exit = \"desk\" }]\ndefault = \"closed\"\n\
         [nodes.desk]\ntype = \"transfer\"\ntarget = \"sip:vip@127.0.0.1\"\npriority = \"urgent\"\n\
         [nodes.closed]\ntype = \"hangup\"\n",
    )
    .unwrap();
    // The shipped config starts the demo directory: on a port of its own, not the demo's.
    let directory = format!("127.0.0.1:{}", common::free_port());
    let at = |now: &str| {
        let (ok, out) = concierge(&[
            "simulate",
            "--flow",
            flow.to_str().unwrap(),
            "--caller",
            "+46700000009",
            "--now",
            now,
            "--json",
            "--directory-listen",
            &directory,
        ]);
        assert!(ok, "{out}");
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        v["path"][0]["exit"].as_str().unwrap_or_default().to_owned()
    };
    // Monday 30 March 2026 (summer time since Sunday): 06:00 UTC is 08:00 in Stockholm.
    assert_eq!(at("1774850400"), "case 1", "08:00 CEST is open");
    assert_eq!(at("1774850340"), "default", "07:59 CEST is closed");
}
