//! `docker-compose.yml`: Kamailio in front of two Concierge instances, Prometheus scraping
//! both, and a SIPp load service. With Docker Compose on the machine, `docker compose
//! config` validates it; either way the file is parsed as YAML (python3's yaml module) and
//! checked against the files it names: build contexts, instance configs (which `concierge
//! check` must accept), Kamailio's dispatcher list, Prometheus' scrape targets (which
//! `promtool check config` must accept), the Valkey both instances share state through,
//! and the ports everything uses. The Grafana
//! dashboard's queries must parse as PromQL and name only documented metrics.

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
        BTreeSet::from([
            "kamailio",
            "concierge-1",
            "concierge-2",
            "prometheus",
            "sipp",
            "valkey"
        ])
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
    let mut metrics_listen = Vec::new();
    let mut shared_urls = Vec::new();
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
        metrics_listen.push(toml_value(&text, "metrics", "listen").expect("metrics.listen"));
        shared_urls.push(toml_value(&text, "shared", "url").expect("shared.url"));
        let depends = strs(&services[name]["depends_on"]);
        assert!(
            depends.contains(&"valkey".to_owned()),
            "{name}: {depends:?}"
        );
    }
    // Both instances share state through the valkey service's port.
    assert_eq!(shared_urls[0], shared_urls[1]);
    let valkey = std::fs::read_to_string(root.join("deploy/valkey/Dockerfile")).unwrap();
    let valkey_port = valkey
        .split("\"--port\", \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("valkey's --port");
    assert_eq!(shared_urls[0], format!("redis://127.0.0.1:{valkey_port}"));
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

    // Prometheus scrapes exactly the instances' metrics listeners, with a config promtool accepts.
    assert_ne!(metrics_listen[0], metrics_listen[1]);
    let prometheus_yml = root.join("deploy/prometheus/prometheus.yml");
    let check = Command::new("promtool")
        .args(["check", "config"])
        .arg(&prometheus_yml)
        .output()
        .expect("promtool is required (Debian package prometheus)");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let scrape = yaml(&prometheus_yml);
    let targets: Vec<String> = scrape["scrape_configs"]
        .as_array()
        .expect("scrape_configs")
        .iter()
        .flat_map(|job| {
            job["static_configs"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|s| strs(&s["targets"]))
        .collect();
    assert_eq!(targets, metrics_listen, "Prometheus scrapes both instances");
    let prometheus = strs(&services["prometheus"]["command"]).join(" ");
    assert!(prometheus.contains("--config.file=/etc/prometheus/prometheus.yml"));
    let dockerfile = std::fs::read_to_string(root.join("deploy/prometheus/Dockerfile")).unwrap();
    assert!(dockerfile.contains("COPY prometheus.yml /etc/prometheus/prometheus.yml"));
}

/// A YAML file as JSON, through python3's yaml module.
fn yaml(path: &std::path::Path) -> serde_json::Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from python")
}

#[test]
fn the_grafana_dashboard_queries_parse_and_use_only_documented_metrics() {
    let root = repo_root();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/concierge.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("expr").to_owned())
        .collect();
    assert!(exprs.len() >= 15, "{exprs:?}");
    // Each query as a recording rule: promtool parses its PromQL.
    let dir = common::scratch_dir("grafana-rules");
    let rules: String = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            format!(
                "      - record: dashboard:query{i}\n        expr: '{}'\n",
                e.replace('\'', "''")
            )
        })
        .collect();
    let file = dir.join("rules.yml");
    std::fs::write(
        &file,
        format!("groups:\n  - name: dashboard\n    rules:\n{rules}"),
    )
    .unwrap();
    let check = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    // Every metric a query names is in the README's metrics table.
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let documented: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect();
    for expr in &exprs {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("concierge_") || word.starts_with("process_") {
                let family = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| word.strip_suffix(s))
                    .unwrap_or(word);
                assert!(
                    documented.contains(family),
                    "{family} (in `{expr}`) is not in README's metrics table"
                );
            }
        }
    }
}
