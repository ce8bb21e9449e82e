//! A transfer through a registered trunk (issue 23): named in the target
//! (`sip:USER@trunk:NAME`) or by `trunk = "NAME"`; only a bridge or a redirect can use
//! one. The flow carries the name; the server checks it against its `[[trunks]]`.

use std::path::Path;

use concierge_flow::{parse_flow, Action, Environment, Node, Run, Vars};

fn flow(transfer: &str) -> String {
    format!(
        "start = \"out\"\n[nodes.out]\ntype = \"transfer\"\n{transfer}\n[nodes.sorry]\ntype = \"hangup\"\n"
    )
}

fn trunk_of(transfer: &str) -> Option<String> {
    let text = flow(transfer);
    let loaded =
        parse_flow(Path::new("t.toml"), &text, &|_| true).unwrap_or_else(|e| panic!("{e:?}"));
    match &loaded.flow.nodes["out"] {
        Node::Transfer { trunk, .. } => trunk.clone(),
        other => panic!("{other:?}"),
    }
}

fn error_of(transfer: &str) -> (String, String) {
    let text = flow(transfer);
    let diags = match parse_flow(Path::new("t.toml"), &text, &|_| true) {
        Ok(_) => panic!("accepted: {transfer}"),
        Err(d) => d,
    };
    let d = &diags[0];
    assert_eq!(d.node.as_deref(), Some("out"), "{d}");
    (d.field.clone().unwrap_or_default(), d.message.clone())
}

#[test]
fn a_target_at_trunk_name_goes_through_that_trunk() {
    assert_eq!(
        trunk_of(
            "target = \"sip:{system.caller}@trunk:carrier\"\nmode = \"bridge\"\nfailed = \"sorry\""
        ),
        Some("carrier".into())
    );
}

#[test]
fn the_trunk_field_names_the_trunk_for_any_sip_target() {
    assert_eq!(
        trunk_of("target = \"sip:+4612345@sbc.carrier.example\"\ntrunk = \"carrier\"\nmode = \"redirect\"\nfailed = \"sorry\""),
        Some("carrier".into())
    );
}

#[test]
fn a_transfer_without_a_trunk_has_none() {
    assert_eq!(
        trunk_of("target = \"sip:vip@queue.example\"\nfailed = \"sorry\""),
        None
    );
}

#[test]
fn a_refer_cannot_go_through_a_trunk() {
    let (field, message) = error_of("target = \"sip:+4612345@trunk:carrier\"\nfailed = \"sorry\"");
    assert_eq!(field, "mode", "the default mode refers first: {message}");
    assert!(message.contains("bridge"), "{message}");
}

#[test]
fn a_trunk_named_by_a_template_is_refused() {
    let (field, _) =
        error_of("target = \"sip:+4612345@trunk:{which}\"\nmode = \"bridge\"\nfailed = \"sorry\"");
    assert_eq!(field, "target");
}

#[test]
fn a_target_and_a_field_naming_different_trunks_are_refused() {
    let (field, message) = error_of(
        "target = \"sip:+4612345@trunk:a\"\ntrunk = \"b\"\nmode = \"bridge\"\nfailed = \"sorry\"",
    );
    assert_eq!(field, "trunk");
    assert!(message.contains("\"a\""), "{message}");
}

#[test]
fn the_transfer_action_names_the_trunk_for_the_call_layer() {
    let text = flow(
        "target = \"sip:{system.caller}@trunk:carrier\"\nmode = \"bridge\"\nfailed = \"sorry\"",
    );
    let loaded =
        parse_flow(Path::new("t.toml"), &text, &|_| true).unwrap_or_else(|e| panic!("{e:?}"));
    let mut vars = Vars::new();
    vars.insert("system.caller".into(), "+4699".into());
    match Run::start(loaded.flow, vars, Environment::default()).1 {
        Action::Transfer { target, trunk, .. } => {
            assert_eq!(target, "sip:+4699@trunk:carrier");
            assert_eq!(trunk.as_deref(), Some("carrier"));
        }
        other => panic!("{other:?}"),
    }
}
