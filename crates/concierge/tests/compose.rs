//! `docker-compose.yml`: Kamailio in front of two Concierge instances and a SIPp load
//! service. With Docker Compose on the machine, `docker compose config` validates it;
//! either way the file is parsed as YAML (python3's yaml module) and checked against the
//! files it names: build contexts, instance configs (which `concierge check` must accept),
//! Kamailio's dispatcher list and the ports everything uses.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::repo_root;

/// The compose file as JSON, through python3's yaml module.
fn compose() -> serde_json::Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(repo_root().join("docker-compose.yml"))
        .output()
        .expect("python3 is required for this test");
    assert!(
        out.status.success(),
        "docker-compose.yml must be YAML (python3-yaml installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from python")
}

fn strs(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}

/// `key = value` of a TOML file's `[table]`, as text.
fn toml_value(text: &str, table: &str, key: &str) -> Option<String> {
    let doc: toml::Table = text.parse().expect("TOML");
    let v = doc.get(table)?.get(key)?;
    Some(match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// `docker compose config` where Docker Compose exists (it does not on every CI machine;
/// the checks of the parsed file below run everywhere).
fn docker_compose_config_if_installed() {
    let installed = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if installed {
        let out = Command::new("docker")
            .args(["compose", "config", "--quiet"])
            .current_dir(repo_root())
            .output()
            .expect("docker compose config");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn compose_runs_kamailio_in_front_of_two_instances_and_a_sipp_load_service() {
    docker_compose_config_if_installed();
    let root = repo_root();
    let doc = compose();
    let services = doc["services"].as_object().expect("services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["kamailio", "concierge-1", "concierge-2", "sipp"])
    );
    for (name, s) in services {
        assert_eq!(
            s["network_mode"], "host",
            "{name}: RTP ranges need host networking"
        );
        let context = s["build"].as_str().expect("each service is built here");
        assert!(
            root.join(context).join("Dockerfile").is_file(),
            "{name}: no Dockerfile in {context}"
        );
        for volume in strs(&s["volumes"]) {
            let source = volume.split(':').next().unwrap();
            if source != "./records" {
                assert!(
                    root.join(source).exists(),
                    "{name}: {source} does not exist"
                );
            }
        }
    }
    assert_eq!(
        strs(&services["sipp"]["profiles"]),
        ["load"],
        "SIPp runs only on demand"
    );

    // The instances: distinct names, SIP ports and RTP ranges; configs the binary accepts.
    let mut instance_ports = Vec::new();
    let mut rtp_ranges = Vec::new();
    let mut instance_names = BTreeSet::new();
    for name in ["concierge-1", "concierge-2"] {
        let command = strs(&services[name]["command"]);
        assert_eq!(&command[..2], ["run", "--config"], "{name}");
        let config = root.join(&command[2]);
        let text = std::fs::read_to_string(&config).expect("the instance config");
        let check = Command::new(env!("CARGO_BIN_EXE_concierge"))
            .args(["check"])
            .arg(&config)
            .current_dir(&root)
            .output()
            .expect("concierge check");
        assert!(
            check.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        let listen = toml_value(&text, "sip", "listen").expect("sip.listen");
        instance_ports.push(listen.rsplit(':').next().unwrap().to_owned());
        let min: u32 = toml_value(&text, "rtp", "port_min")
            .unwrap()
            .parse()
            .unwrap();
        let max: u32 = toml_value(&text, "rtp", "port_max")
            .unwrap()
            .parse()
            .unwrap();
        rtp_ranges.push((min, max));
        instance_names.insert(toml_value(&text, "server", "instance").expect("server.instance"));
    }
    assert_eq!(instance_names.len(), 2, "each instance has its own name");
    assert_ne!(instance_ports[0], instance_ports[1]);
    assert!(rtp_ranges[0].1 < rtp_ranges[1].0 || rtp_ranges[1].1 < rtp_ranges[0].0);

    // Kamailio dispatches to exactly those ports, and SIPp calls Kamailio.
    let list = std::fs::read_to_string(root.join("deploy/kamailio/dispatcher.list")).unwrap();
    let targets: Vec<String> = list
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(targets, instance_ports);
    let kamailio = strs(&services["kamailio"]["command"]).join(" ");
    let listen = kamailio
        .split_whitespace()
        .find_map(|a| a.strip_prefix("LISTEN=udp:"))
        .expect("LISTEN define");
    let sipp = strs(&services["sipp"]["command"]);
    assert_eq!(sipp.last().unwrap(), listen, "SIPp calls Kamailio");
    let scenario = sipp[sipp.iter().position(|a| a == "-sf").unwrap() + 1]
        .replace("/scenarios/", "tests/sipp/");
    assert!(root.join(scenario).is_file());
    assert!(
        !instance_ports.contains(&listen.rsplit(':').next().unwrap().to_owned()),
        "Kamailio and the instances need their own ports"
    );
}
