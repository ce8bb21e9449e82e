//! `concierge diagram`: every node and exit of each shipped flow is drawn, in Mermaid and
//! DOT, and the README's Mermaid block of the reference flow is what the command prints.
//!
//! After changing `config/flows/vip.toml`, refresh the README with
//! `UPDATE_README=1 cargo test -p concierge --test diagram`.

mod common;

use std::process::Command;

use common::repo_root;

fn diagram(flow: &str, format: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_concierge"))
        .args(["diagram", flow, "--format", format])
        .current_dir(repo_root())
        .output()
        .expect("run concierge diagram");
    assert!(
        out.status.success(),
        "{flow}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Every `(node, exit target)` pair the flow file declares, read from the TOML itself.
fn declared_exits(node: &toml::Table) -> Vec<String> {
    let mut targets = Vec::new();
    for field in [
        "next", "success", "failure", "done", "no_input", "invalid", "locked", "default", "failed",
    ] {
        if let Some(t) = node.get(field).and_then(|v| v.as_str()) {
            targets.push(t.to_owned());
        }
    }
    for case in node
        .get("cases")
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
    {
        targets.push(case["exit"].as_str().expect("case exit").to_owned());
    }
    targets
}

fn shipped_flows() -> Vec<String> {
    let mut flows: Vec<String> = std::fs::read_dir(repo_root().join("config/flows"))
        .expect("config/flows")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| format!("config/flows/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    flows.sort();
    assert!(flows.len() >= 4, "{flows:?}");
    flows
}

#[test]
fn every_node_and_exit_of_each_shipped_flow_is_drawn() {
    for flow in shipped_flows() {
        let text = std::fs::read_to_string(repo_root().join(&flow)).unwrap();
        let doc: toml::Table = text.parse().unwrap();
        let nodes = doc["nodes"].as_table().expect("nodes");
        let mermaid = diagram(&flow, "mermaid");
        let dot = diagram(&flow, "dot");
        assert!(mermaid.starts_with("flowchart TD\n"), "{flow}");
        assert!(dot.starts_with("digraph "), "{flow}");
        let start = doc["start"].as_str().unwrap();
        assert!(
            mermaid.contains(&format!("start --> n_{start}\n")),
            "{flow}"
        );
        for (id, node) in nodes {
            let node = node.as_table().unwrap();
            let kind = node["type"].as_str().unwrap();
            assert!(
                mermaid.contains(&format!("n_{id}"))
                    && mermaid.contains(&format!("\"{id}<br/>{kind}")),
                "{flow}: node {id} ({kind}) missing:\n{mermaid}"
            );
            assert!(dot.contains(&format!("\"{id}\" [shape=")), "{flow}: {id}");
            for target in declared_exits(node) {
                let edge = format!("| n_{target}\n");
                assert!(
                    mermaid
                        .lines()
                        .any(|l| l.trim_start().starts_with(&format!("n_{id} -->|"))
                            && format!("{l}\n").ends_with(&edge)),
                    "{flow}: exit {id} -> {target} missing:\n{mermaid}"
                );
                assert!(
                    dot.contains(&format!("\"{id}\" -> \"{target}\" [label=")),
                    "{flow}: exit {id} -> {target} missing in DOT"
                );
            }
            if kind == "transfer" {
                assert!(mermaid.contains(&format!("n_{id} -->|\"transferred\"| n_transferred\n")));
            }
        }
    }
}

/// The ```mermaid block under the README's "reference flow" marker.
const MARKER: &str = "<!-- diagram: config/flows/vip.toml -->";

#[test]
fn the_readme_shows_the_reference_flow_as_the_command_draws_it() {
    let readme_path = repo_root().join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let drawn = diagram("config/flows/vip.toml", "mermaid");
    let start = readme
        .find(MARKER)
        .unwrap_or_else(|| panic!("README.md has no {MARKER}"))
        + MARKER.len();
    let open = "\n```mermaid\n";
    assert!(
        readme[start..].starts_with(open),
        "a mermaid block follows the marker"
    );
    let body_start = start + open.len();
    let body_end = body_start + readme[body_start..].find("```\n").expect("block closes");
    if std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{drawn}{}", &readme[..body_start], &readme[body_end..]);
        std::fs::write(&readme_path, updated).unwrap();
        return;
    }
    assert_eq!(
        &readme[body_start..body_end],
        drawn,
        "README's diagram is stale: UPDATE_README=1 cargo test -p concierge --test diagram"
    );
}
