//! Checks on the compiled graph: exits lead to nodes, every node is reachable, no loop
//! spins without waiting, no variable is read before a node can set it.

use std::collections::{BTreeSet, VecDeque};

use super::validator::Validator;
use super::{Diagnostic, Severity};
use crate::model::{Flow, Node};
use crate::template::{Template, SYSTEM_VARIABLES};

impl Validator<'_> {
    pub(super) fn graph_checks(&mut self, flow: &Flow) {
        if !flow.nodes.contains_key(&flow.start) {
            self.diags.push(Diagnostic {
                severity: Severity::Error,
                file: self.path.into(),
                node: None,
                field: Some("start".into()),
                line: self
                    .text
                    .lines()
                    .position(|l| l.trim_start().starts_with("start"))
                    .map(|i| i + 1),
                column: None,
                message: format!("start node {:?} does not exist", flow.start),
            });
            return;
        }
        for (id, node) in &flow.nodes {
            for (field, target) in node.exits() {
                if !flow.nodes.contains_key(target) {
                    self.error(id, field, format!("exit to unknown node {target:?}"));
                }
            }
        }
        // A condition counting failures for a group no keypad obeys locks nothing.
        let obeyed = flow.lockout_groups();
        for (id, node) in &flow.nodes {
            if let Node::Condition {
                lockout: Some(g), ..
            } = node
            {
                if !obeyed.contains(g.as_str()) {
                    self.error(
                        id,
                        "lockout",
                        format!("no keypad has `lockout = {g:?}`: the failures would lock nothing"),
                    );
                }
            }
        }
        // Reachability from the start.
        let reach = reachable(flow, &flow.start);
        for id in flow.nodes.keys() {
            if !reach.contains(id.as_str()) {
                self.push(
                    Severity::Warning,
                    Some(id),
                    None,
                    "unreachable from the start node".into(),
                );
            }
        }
        // A loop that never waits for a key or a server spins forever.
        if let Some(id) = busy_cycle(flow) {
            self.push(
                Severity::Error,
                Some(&id),
                None,
                "is on a cycle with no keypad or http node: the call would loop forever".into(),
            );
        }
        // Variables read where no earlier node can have set them.
        for (id, node) in &flow.nodes {
            for (field, var) in reads(node) {
                if var.starts_with("system.") {
                    if !SYSTEM_VARIABLES.contains(&var.as_str()) {
                        self.push(
                            Severity::Error,
                            Some(id),
                            Some(field),
                            format!(
                                "unknown variable {var:?}: the server sets {}",
                                SYSTEM_VARIABLES.join(", ")
                            ),
                        );
                    }
                    continue;
                }
                let setters: Vec<&str> = flow
                    .nodes
                    .iter()
                    .filter(|(_, n)| sets(n).contains(&var))
                    .map(|(k, _)| k.as_str())
                    .collect();
                if !setters
                    .iter()
                    .any(|s| reachable(flow, s).contains(id.as_str()))
                {
                    self.push(
                        Severity::Warning,
                        Some(id),
                        Some(field),
                        format!("reads {var:?} before any node can set it"),
                    );
                }
            }
        }
        self.widget_checks(flow);
    }

    /// The call widget shows values the flow saved: a name no node sets would always be
    /// empty, and a secret never leaves the call.
    fn widget_checks(&mut self, flow: &Flow) {
        for (id, node) in &flow.nodes {
            let Node::Transfer { widget, .. } = node else {
                continue;
            };
            for var in widget {
                let problem = if flow.secrets.contains(var) {
                    Some(format!(
                        "{var:?} is a secret (a `secret = true` keypad saves it): the widget never shows it"
                    ))
                } else if var.starts_with("system.") {
                    (!SYSTEM_VARIABLES.contains(&var.as_str())).then(|| {
                        format!(
                            "unknown variable {var:?}: the server sets {}",
                            SYSTEM_VARIABLES.join(", ")
                        )
                    })
                } else if !flow.nodes.values().any(|n| sets(n).contains(var)) {
                    Some(format!(
                        "no node sets {var:?}: the widget would never show it"
                    ))
                } else {
                    None
                };
                if let Some(message) = problem {
                    self.error(id, "widget", message);
                }
            }
        }
    }
}

fn reachable<'a>(flow: &'a Flow, from: &'a str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::from([from]);
    let mut queue = VecDeque::from([from]);
    while let Some(id) = queue.pop_front() {
        if let Some(node) = flow.nodes.get(id) {
            for (_, t) in node.exits() {
                if seen.insert(t) {
                    queue.push_back(t);
                }
            }
        }
    }
    seen
}

/// A node on a cycle made only of nodes that do not wait for the caller or a server.
fn busy_cycle(flow: &Flow) -> Option<String> {
    let instant = |id: &str| {
        flow.nodes
            .get(id)
            .is_some_and(|n| !matches!(n, Node::Keypad { .. } | Node::Http { .. }))
    };
    for id in flow.nodes.keys().filter(|id| instant(id)) {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([id.as_str()]);
        while let Some(cur) = queue.pop_front() {
            for (_, t) in flow.nodes[cur].exits() {
                if t == id {
                    return Some(id.clone());
                }
                if instant(t) && seen.insert(t) {
                    queue.push_back(t);
                }
            }
        }
    }
    None
}

fn reads(node: &Node) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = Vec::new();
    let mut add =
        |field: &'static str, t: &Template| v.extend(t.variables().map(|x| (field, x.to_owned())));
    match node {
        Node::Http {
            url, headers, body, ..
        } => {
            add("url", url);
            headers.iter().for_each(|(_, t)| add("headers", t));
            if let Some(b) = body {
                add("body", b);
            }
        }
        Node::Condition {
            variable, cases, ..
        } => {
            v.push(("variable", variable.clone()));
            for c in cases {
                v.extend(c.value.variables().map(|x| ("cases.value", x.to_owned())));
            }
        }
        Node::Set { values, .. } => values.iter().for_each(|(_, t)| add("values", t)),
        Node::Transfer {
            target, headers, ..
        } => {
            add("target", target);
            headers.iter().for_each(|(_, t)| add("headers", t));
        }
        _ => {}
    }
    v
}

fn sets(node: &Node) -> Vec<String> {
    match node {
        Node::Http { save_as, save, .. } => save_as
            .iter()
            .cloned()
            .chain(save.iter().map(|(k, _)| k.clone()))
            .collect(),
        Node::Keypad { save_as, .. } => vec![save_as.clone()],
        Node::Set { values, .. } => values.iter().map(|(k, _)| k.clone()).collect(),
        _ => Vec::new(),
    }
}
