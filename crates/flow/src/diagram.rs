//! Drawings of a flow for the people who own its business rules: Mermaid (rendered by
//! GitHub and most wikis) or Graphviz DOT.
//!
//! Each node shows its id, its type and the one thing that matters about it (the prompt
//! it plays, the URL it calls, the variable it tests or saves, the transfer target); each
//! exit is an edge labelled with the name call records and metrics use for it (`next`,
//! `success`, `case 1`, `no_input`, `transferred` …). Nodes are listed from `start`, in
//! the order a caller can reach them, then any unreachable ones.

use std::collections::{BTreeMap, HashSet, VecDeque};

use crate::model::{Flow, Node, TransferMode};

/// The terminal every successful transfer leads to.
const TRANSFERRED: &str = "transferred";

/// One drawn node: its id, the lines of its label, and whether it ends the call.
struct Box_ {
    id: String,
    lines: Vec<String>,
    shape: Shape,
}

enum Shape {
    Step,
    Decision,
    End,
}

/// One drawn edge.
struct Edge {
    from: String,
    label: String,
    to: String,
}

/// The flow as Mermaid `flowchart` source, for `concierge diagram` and the README: one box
/// per node (its kind and what it does), one arrow per exit, labelled with the exit.
pub fn mermaid(flow: &Flow) -> String {
    mermaid_annotated(flow, &|_| None)
}

/// As [`mermaid`], with one more line in a node's box where `note` gives one (by node id):
/// the live console's counts of calls at each node. The note is escaped like every label.
pub fn mermaid_annotated(flow: &Flow, note: &dyn Fn(&str) -> Option<String>) -> String {
    let (mut boxes, edges) = layout(flow);
    for b in &mut boxes {
        b.lines.extend(note(&b.id));
    }
    let ids = mermaid_ids(&boxes);
    let id = |node: &str| ids.get(node).cloned().unwrap_or_else(|| "missing".into());
    let mut out = format!("flowchart TD\n    start((\"{}\"))\n", mm(&flow.name));
    for b in &boxes {
        let text = b
            .lines
            .iter()
            .map(|l| mm(l))
            .collect::<Vec<_>>()
            .join("<br/>");
        let (open, close) = match b.shape {
            Shape::Step => ("[\"", "\"]"),
            Shape::Decision => ("{\"", "\"}"),
            Shape::End => ("([\"", "\"])"),
        };
        out.push_str(&format!("    {}{open}{text}{close}\n", id(&b.id)));
    }
    out.push_str(&format!("    start --> {}\n", id(&flow.start)));
    for e in &edges {
        out.push_str(&format!(
            "    {} -->|\"{}\"| {}\n",
            id(&e.from),
            mm(&e.label),
            id(&e.to)
        ));
    }
    out
}

/// The flow as Graphviz DOT source (`dot -Tsvg`), for `concierge diagram --format dot`:
/// the same nodes and labelled exits as [`mermaid`].
pub fn dot(flow: &Flow) -> String {
    let (boxes, edges) = layout(flow);
    let mut out = format!(
        "digraph \"{}\" {{\n    rankdir=TB;\n    node [shape=box, fontname=\"Helvetica\"];\n    edge [fontname=\"Helvetica\", fontsize=10];\n    \"(start)\" [shape=circle, label=\"{}\"];\n",
        dq(&flow.name),
        dq(&flow.name)
    );
    for b in &boxes {
        let shape = match b.shape {
            Shape::Step => "box",
            Shape::Decision => "diamond",
            Shape::End => "oval",
        };
        let text = b
            .lines
            .iter()
            .map(|l| dq(l))
            .collect::<Vec<_>>()
            .join("\\n");
        out.push_str(&format!(
            "    \"{}\" [shape={shape}, label=\"{text}\"];\n",
            dq(&b.id)
        ));
    }
    out.push_str(&format!("    \"(start)\" -> \"{}\";\n", dq(&flow.start)));
    for e in &edges {
        out.push_str(&format!(
            "    \"{}\" -> \"{}\" [label=\"{}\"];\n",
            dq(&e.from),
            dq(&e.to),
            dq(&e.label)
        ));
    }
    out.push_str("}\n");
    out
}

/// Nodes in the order a caller reaches them, their edges, and the `transferred` terminal
/// when some node transfers.
fn layout(flow: &Flow) -> (Vec<Box_>, Vec<Edge>) {
    let mut order: Vec<&str> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut queue: VecDeque<&str> = VecDeque::from([flow.start.as_str()]);
    while let Some(id) = queue.pop_front() {
        if !seen.insert(id) {
            continue;
        }
        let Some(node) = flow.nodes.get(id) else {
            continue;
        };
        order.push(id);
        for (_, target) in exits(node) {
            queue.push_back(target);
        }
    }
    order.extend(
        flow.nodes
            .keys()
            .map(String::as_str)
            .filter(|id| !seen.contains(id)),
    );
    let mut boxes = Vec::new();
    let mut edges = Vec::new();
    let mut transfers = false;
    for id in order {
        let node = &flow.nodes[id];
        boxes.push(Box_ {
            id: id.to_owned(),
            lines: vec![id.to_owned(), describe(node)],
            shape: match node {
                Node::Condition { .. } => Shape::Decision,
                Node::Hangup { .. } => Shape::End,
                _ => Shape::Step,
            },
        });
        for (label, to) in exits(node) {
            edges.push(Edge {
                from: id.to_owned(),
                label,
                to: to.to_owned(),
            });
        }
        if let Node::Transfer { .. } = node {
            transfers = true;
            edges.push(Edge {
                from: id.to_owned(),
                label: TRANSFERRED.into(),
                to: TRANSFERRED.into(),
            });
        }
    }
    if transfers && !flow.nodes.contains_key(TRANSFERRED) {
        boxes.push(Box_ {
            id: TRANSFERRED.into(),
            lines: vec!["transferred".into()],
            shape: Shape::End,
        });
    }
    (boxes, edges)
}

/// A node's exits as `(label, target)`, labelled as call records name them.
fn exits(node: &Node) -> Vec<(String, &str)> {
    match node {
        Node::Condition { cases, default, .. } => {
            let mut v: Vec<(String, &str)> = cases
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let test = if c.operator.needs_value() {
                        format!("{:?} {}", c.operator, c.value.source())
                    } else {
                        format!("{:?}", c.operator)
                    };
                    (format!("case {}: {test}", i + 1), c.exit.as_str())
                })
                .collect();
            v.push(("default".into(), default));
            v
        }
        other => other
            .exits()
            .into_iter()
            .map(|(field, to)| (field.to_owned(), to))
            .collect(),
    }
}

/// The line under a node's id: its type and what matters about it.
fn describe(node: &Node) -> String {
    match node {
        Node::Http {
            method,
            url,
            save_as,
            save,
            ..
        } => {
            let saved: Vec<&str> = save_as
                .iter()
                .map(String::as_str)
                .chain(save.iter().map(|(k, _)| k.as_str()))
                .collect();
            format!("http {method} {} → {}", url.source(), saved.join(", "))
        }
        Node::Condition { variable, .. } => format!("condition: {variable}"),
        Node::Keypad {
            prompt,
            save_as,
            min,
            max,
            secret,
            ..
        } => {
            let digits = if min == max {
                format!("{max}")
            } else {
                format!("{min}-{max}")
            };
            let secret = if *secret { ", secret" } else { "" };
            format!("keypad: {prompt} → {save_as} ({digits} digits{secret})")
        }
        Node::Play { prompts, .. } => format!("play: {}", prompts.join(", ")),
        Node::Set { values, .. } => format!(
            "set: {}",
            values
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Node::Transfer {
            target,
            mode,
            prompt,
            trunk,
            ..
        } => {
            let mode = match mode {
                TransferMode::Refer => "refer",
                TransferMode::Redirect => "redirect",
                TransferMode::Bridge => "bridge",
                TransferMode::ReferOrBridge => "refer_or_bridge",
            };
            let prompt = prompt
                .as_ref()
                .map(|p| format!(" after {p}"))
                .unwrap_or_default();
            let via = trunk
                .as_ref()
                .map(|t| format!(" via trunk {t}"))
                .unwrap_or_default();
            format!("transfer ({mode}){via} to {}{prompt}", target.source())
        }
        Node::Hangup { prompt } => match prompt {
            Some(p) => format!("hangup after {p}"),
            None => "hangup".into(),
        },
    }
}

/// Mermaid ids for node ids: letters, digits and `_` only, prefixed so that a node named
/// like a keyword (`end`) cannot break the chart, and made unique.
fn mermaid_ids(boxes: &[Box_]) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    let mut used = HashSet::new();
    for (i, b) in boxes.iter().enumerate() {
        let clean: String =
            b.id.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
        let mut id = format!("n_{clean}");
        if !used.insert(id.clone()) {
            id = format!("n{i}_{clean}");
            used.insert(id.clone());
        }
        ids.insert(b.id.clone(), id);
    }
    ids
}

/// Text inside a quoted Mermaid label: quotes and angle brackets as entities.
fn mm(s: &str) -> String {
    s.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
        .replace('|', "#124;")
}

/// Text inside a quoted DOT string.
fn dq(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn flow(text: &str) -> std::sync::Arc<Flow> {
        crate::parse_flow(Path::new("t.toml"), text, &|_| true)
            .expect("valid flow")
            .flow
    }

    const FLOW: &str = r#"
name = "demo"
start = "hello"
[nodes.hello]
type = "play"
prompts = ["welcome"]
next = "ask"
[nodes.ask]
type = "keypad"
prompt = "enter_code"
save_as = "code"
max_digits = 4
done = "check"
no_input = "end"
invalid = "end"
[nodes.check]
type = "condition"
variable = "code"
cases = [{ operator = "EqualTo", value = "1\"2", exit = "desk" }]
default = "end"
[nodes.desk]
type = "transfer"
target = "sip:desk@example.com"
failed = "end"
[nodes.end]
type = "hangup"
"#;

    #[test]
    fn mermaid_has_every_node_and_every_exit_as_an_edge() {
        let m = mermaid(&flow(FLOW));
        assert!(m.starts_with("flowchart TD\n"));
        assert!(m.contains("start --> n_hello\n"), "{m}");
        assert!(m.contains("n_hello[\"hello<br/>play: welcome\"]"), "{m}");
        assert!(m.contains("n_hello -->|\"next\"| n_ask\n"), "{m}");
        assert!(m.contains("n_ask -->|\"no_input\"| n_end\n"), "{m}");
        assert!(
            m.contains("n_check -->|\"case 1: EqualTo 1#quot;2\"| n_desk\n"),
            "{m}"
        );
        assert!(
            m.contains("n_desk -->|\"transferred\"| n_transferred\n"),
            "{m}"
        );
        assert!(m.contains("n_desk -->|\"failed\"| n_end\n"), "{m}");
        // `end` is a Mermaid keyword: the prefix keeps it a node.
        assert!(m.contains("n_end([\"end<br/>hangup\"])"), "{m}");
    }

    #[test]
    fn dot_quotes_labels_and_lists_every_edge() {
        let d = dot(&flow(FLOW));
        assert!(d.starts_with("digraph \"demo\" {"));
        assert!(
            d.contains("\"check\" -> \"desk\" [label=\"case 1: EqualTo 1\\\"2\"];"),
            "{d}"
        );
        assert!(d.contains("\"ask\" -> \"check\" [label=\"done\"];"), "{d}");
        assert!(d.trim_end().ends_with('}'));
    }
}
