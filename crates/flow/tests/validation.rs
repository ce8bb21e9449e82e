//! One broken flow per kind of mistake; each message must name the file, node and field.

use std::path::{Path, PathBuf};

use concierge_flow::{check_dir, load_flow, Diagnostic, FlowFiles, Severity};

mod common;
use common::Disk;

fn known(p: &str) -> bool {
    [
        "welcome",
        "enter_code",
        "invalid_code",
        "goodbye",
        "transfer_vip",
    ]
    .contains(&p)
}

fn write(name: &str, text: &str) -> PathBuf {
    // Under target/, not the system temp directory: nothing is left behind in /tmp.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("concierge-flow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn errors(name: &str, text: &str) -> Vec<Diagnostic> {
    match load_flow(&Disk, &write(name, text), &known) {
        Ok(l) => panic!("{name} passed validation; warnings {:?}", l.warnings),
        Err(e) => e,
    }
}

fn warnings(name: &str, text: &str) -> Vec<Diagnostic> {
    load_flow(&Disk, &write(name, text), &known)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .warnings
}

fn assert_names(d: &Diagnostic, node: &str, field: &str, needle: &str) {
    let text = d.to_string();
    assert_eq!(d.node.as_deref(), Some(node), "{text}");
    assert_eq!(d.field.as_deref(), Some(field), "{text}");
    assert!(text.contains(needle), "{text:?} lacks {needle:?}");
    assert!(d.line.is_some(), "{text}");
}

const GOOD_TAIL: &str = "\n[nodes.bye]\ntype = \"hangup\"\n";

#[test]
fn unknown_exit_target() {
    let e = errors("exit.toml", &format!("start = \"a\"\n[nodes.a]\ntype = \"play\"\nprompts = [\"welcome\"]\nnext = \"nowhere\"\n{GOOD_TAIL}"));
    assert_names(&e[0], "a", "next", "unknown node \"nowhere\"");
    assert!(e[0].to_string().contains("exit.toml:5"), "{}", e[0]);
}

#[test]
fn missing_start_node() {
    let e = errors("start.toml", &format!("start = \"nope\"{GOOD_TAIL}"));
    assert_eq!(e[0].field.as_deref(), Some("start"));
    assert!(e[0]
        .to_string()
        .contains("start node \"nope\" does not exist"));
}

#[test]
fn exit_the_node_type_does_not_have() {
    let e = errors("field.toml", "start = \"a\"\n[nodes.a]\ntype = \"play\"\nprompts = [\"welcome\"]\nnext = \"a2\"\nsuccess = \"a2\"\n[nodes.a2]\ntype = \"hangup\"\n");
    assert_eq!(e[0].node.as_deref(), Some("a"), "{}", e[0]);
    assert_eq!(e[0].field.as_deref(), Some("success"), "{}", e[0]);
    assert!(e[0].to_string().contains("unknown field"), "{}", e[0]);
}

#[test]
fn unknown_prompt() {
    let e = errors("prompt.toml", &format!("start = \"a\"\n[nodes.a]\ntype = \"play\"\nprompts = [\"welcom\"]\nnext = \"bye\"\n{GOOD_TAIL}"));
    assert_names(&e[0], "a", "prompts", "unknown prompt \"welcom\"");
}

#[test]
fn bad_url_template_and_not_http() {
    let head = "start = \"h\"\n[nodes.h]\ntype = \"http\"\nsave_as = \"x\"\nsuccess = \"bye\"\nfailure = \"bye\"\n";
    let e = errors(
        "url1.toml",
        &format!("{head}url = \"http://crm/{{system.caller\"\n{GOOD_TAIL}"),
    );
    assert_names(&e[0], "h", "url", "unclosed");
    let e = errors(
        "url2.toml",
        &format!("{head}url = \"ftp://crm/{{system.caller}}\"\n{GOOD_TAIL}"),
    );
    assert_names(&e[0], "h", "url", "not an http");
}

#[test]
fn invalid_regex_and_between_without_to() {
    let head = "start = \"c\"\n[nodes.c]\ntype = \"condition\"\nvariable = \"system.caller\"\ndefault = \"bye\"\n";
    let e = errors("re.toml", &format!("{head}cases = [{{ operator = \"Matches\", value = \"([0-9\", exit = \"bye\" }}]\n{GOOD_TAIL}"));
    assert_names(&e[0], "c", "cases[0].value", "invalid regex");
    let e = errors("between.toml", &format!("{head}cases = [{{ operator = \"Between\", value = \"1\", exit = \"bye\" }}]\n{GOOD_TAIL}"));
    assert_names(&e[0], "c", "cases[0].to", "Between needs `to`");
}

#[test]
fn unknown_operator_names_the_node() {
    let e = errors("op.toml", &format!("start = \"c\"\n[nodes.c]\ntype = \"condition\"\nvariable = \"x\"\ndefault = \"bye\"\ncases = [{{ operator = \"Equals\", value = \"1\", exit = \"bye\" }}]\n{GOOD_TAIL}"));
    assert_eq!(e[0].node.as_deref(), Some("c"), "{}", e[0]);
    assert!(e[0].to_string().contains("Equals"), "{}", e[0]);
}

#[test]
fn min_above_max_digits() {
    let e = errors("digits.toml", &format!("start = \"k\"\n[nodes.k]\ntype = \"keypad\"\nprompt = \"enter_code\"\nsave_as = \"c\"\nmin_digits = 8\nmax_digits = 6\ndone = \"bye\"\nno_input = \"bye\"\ninvalid = \"bye\"\n{GOOD_TAIL}"));
    assert_names(&e[0], "k", "min_digits", "above max_digits");
}

#[test]
fn loop_without_a_wait_is_an_error() {
    let e = errors("loop.toml", "start = \"a\"\n[nodes.a]\ntype = \"set\"\nvalues = { x = \"1\" }\nnext = \"b\"\n[nodes.b]\ntype = \"condition\"\nvariable = \"x\"\ncases = [{ operator = \"EqualTo\", value = \"1\", exit = \"a\" }]\ndefault = \"a\"\n");
    assert!(
        e.iter().any(|d| d.to_string().contains("loop forever")),
        "{e:?}"
    );
}

#[test]
fn unreachable_node_and_early_read_are_warnings() {
    let w = warnings("warn.toml", "start = \"c\"\n[nodes.c]\ntype = \"condition\"\nvariable = \"tier\"\ncases = [{ operator = \"EqualTo\", value = \"gold\", exit = \"bye\" }]\ndefault = \"bye\"\n[nodes.bye]\ntype = \"hangup\"\n[nodes.orphan]\ntype = \"hangup\"\n");
    assert!(w.iter().all(|d| d.severity == Severity::Warning));
    assert!(
        w.iter()
            .any(|d| d.node.as_deref() == Some("orphan") && d.to_string().contains("unreachable")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|d| d.node.as_deref() == Some("c") && d.field.as_deref() == Some("variable")),
        "{w:?}"
    );
}

#[test]
fn toml_syntax_error_has_a_line() {
    let e = errors(
        "syntax.toml",
        "start = \"a\"\n[nodes.a\ntype = \"hangup\"\n",
    );
    assert_eq!(e[0].line, Some(2), "{}", e[0]);
}

#[test]
fn every_shipped_flow_validates_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let prompts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts");
    #[allow(clippy::disallowed_methods, reason = "the repository's prompt files")]
    let names: Vec<String> = std::fs::read_dir(prompts)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .collect();
    let diags = check_dir(&Disk, &dir, &|p| names.iter().any(|n| n == p));
    assert!(diags.is_empty(), "{diags:#?}");
}

#[test]
fn lockout_needs_a_locked_exit_and_a_keypad_that_obeys_it() {
    let keypad = "start = \"k\"\n[nodes.k]\ntype = \"keypad\"\nprompt = \"enter_code\"\nsave_as = \"c\"\nmax_digits = 6\nsecret = true\nlockout = \"codes\"\ndone = \"check\"\nno_input = \"bye\"\ninvalid = \"bye\"\n\n[nodes.check]\ntype = \"condition\"\nvariable = \"c\"\nlockout = \"codes\"\ncases = [{ operator = \"EqualTo\", value = \"1\", exit = \"bye\" }]\ndefault = \"bye\"\n";
    let e = errors("lockout_no_exit.toml", &format!("{keypad}{GOOD_TAIL}"));
    assert_names(&e[0], "k", "locked", "needs a `locked` exit");

    let ok = keypad.replace(
        "lockout = \"codes\"\ndone",
        "lockout = \"codes\"\nlocked = \"bye\"\ndone",
    );
    assert!(warnings("lockout_ok.toml", &format!("{ok}{GOOD_TAIL}")).is_empty());

    let orphan = ok.replace(
        "variable = \"c\"\nlockout = \"codes\"",
        "variable = \"c\"\nlockout = \"pins\"",
    );
    let e = errors("lockout_orphan.toml", &format!("{orphan}{GOOD_TAIL}"));
    assert_names(
        &e[0],
        "check",
        "lockout",
        "no keypad has `lockout = \"pins\"`",
    );

    let bad = ok.replace(
        "lockout = \"codes\"\nlocked",
        "lockout = \"co des\"\nlocked",
    );
    let e = errors("lockout_bad_name.toml", &format!("{bad}{GOOD_TAIL}"));
    assert!(
        e.iter().any(|d| d.field.as_deref() == Some("lockout")),
        "{e:?}"
    );
}

#[test]
fn early_media_is_a_top_level_switch_off_by_default() {
    let flow = |extra: &str| {
        load_flow(
            &Disk,
            &write(
                "early.toml",
                &format!("start = \"bye\"\n{extra}{GOOD_TAIL}"),
            ),
            &known,
        )
    };
    assert!(!flow("").unwrap().flow.early_media);
    assert!(flow("early_media = true\n").unwrap().flow.early_media);
    let e = flow("early_media = \"yes\"\n").unwrap_err();
    assert!(e[0].to_string().contains("early_media"), "{}", e[0]);
}

const LOOKUP_HEAD: &str = "start = \"lookup\"\n[nodes.lookup]\ntype = \"http\"\n";
const LOOKUP_TAIL: &str =
    "save_as = \"r\"\nsuccess = \"bye\"\nfailure = \"bye\"\n[nodes.bye]\ntype = \"hangup\"\n";

#[test]
fn a_misspelt_system_variable_is_an_error_listing_the_real_ones() {
    let e = errors(
        "callr.toml",
        &format!("{LOOKUP_HEAD}url = \"http://crm/customers/{{system.callr}}\"\n{LOOKUP_TAIL}"),
    );
    assert_names(&e[0], "lookup", "url", "unknown variable \"system.callr\"");
    for valid in concierge_flow::SYSTEM_VARIABLES {
        assert!(e[0].message.contains(valid), "{}", e[0]);
    }
    assert!(concierge_flow::SYSTEM_VARIABLES.contains(&"system.caller_verstat"));
}

#[test]
fn the_directory_url_variable_may_open_a_lookup_url() {
    let text = format!(
        "{LOOKUP_HEAD}url = \"{{system.directory_url}}/customers/{{system.caller}}\"\n{LOOKUP_TAIL}"
    );
    assert!(warnings("base.toml", &text).is_empty());
}

#[test]
fn an_unclosed_brace_is_reported_at_its_character_and_nothing_else() {
    let e = errors(
        "brace.toml",
        &format!("{LOOKUP_HEAD}url = \"http://crm/customers/{{system.caller\"\n{LOOKUP_TAIL}"),
    );
    assert_eq!(e.len(), 1, "{e:?}");
    // `url = "` is 7 characters; the `{` is the 29th of the value.
    assert!(
        e[0].to_string()
            .contains("brace.toml:4:29: node \"lookup\", field \"url\""),
        "{}",
        e[0]
    );
    assert!(e[0].message.contains("unclosed"), "{}", e[0]);
}

#[test]
fn a_toml_syntax_error_names_line_and_column_and_no_made_up_field() {
    let e = errors(
        "syntax.toml",
        "start = \"a\"\n[nodes.a]\ntype = \"play\"\nprompts = [\"welcome\"\nnext = \"a\"\n",
    );
    let text = e[0].to_string();
    assert!(
        text.contains("syntax.toml:4:") || text.contains("syntax.toml:5:"),
        "{text}"
    );
    assert!(!text.contains("field \"]\""), "{text}");
    assert_eq!(e[0].field, None, "a syntax error is no field's: {text}");
    assert!(e[0].column.is_some(), "{text}");
}

#[test]
fn unset_environment_variables_are_warned_about() {
    let path = write(
        "env.toml",
        &format!("{LOOKUP_HEAD}url = \"http://crm/x\"\nheaders = {{ Authorization = \"Bearer ${{CRM_TOKEN_SURELY_UNSET}}\" }}\n{LOOKUP_TAIL}"),
    );
    #[allow(clippy::disallowed_methods, reason = "the test's own scratch file")]
    let text = std::fs::read_to_string(&path).unwrap();
    let flow = load_flow(&Disk, &path, &known).unwrap().flow;
    let w = concierge_flow::unset_env(&path, &text, &flow, &|_| false);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].severity, Severity::Warning);
    assert!(
        w[0].to_string().contains(
            "env.toml:5: node \"lookup\", field \"headers\": ${CRM_TOKEN_SURELY_UNSET} is not set"
        ),
        "{}",
        w[0]
    );
    assert!(concierge_flow::unset_env(&path, &text, &flow, &|_| true).is_empty());
}

/// Files that exist only in memory: what the caller's [`FlowFiles`] says is all the
/// validator sees.
struct InMemory(Vec<(PathBuf, String)>);

impl FlowFiles for InMemory {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.0
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))
    }

    fn list(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let found: Vec<PathBuf> = self
            .0
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, _)| p.clone())
            .collect();
        if found.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such dir",
            ));
        }
        Ok(found)
    }
}

#[test]
fn flows_are_listed_and_read_only_through_the_caller_s_files() {
    let good = format!("start = \"bye\"{GOOD_TAIL}");
    let files = InMemory(vec![
        (
            "/nowhere/server.toml".into(),
            "[sip]\nlisten = \"x\"\n".into(),
        ),
        ("/nowhere/flows/b.toml".into(), good.replace("bye", "end")),
        (
            "/nowhere/flows/a.toml".into(),
            "start = \"s\"\n[nodes.s]\ntype = \"play\"\nprompts = [\"nope\"]\nnext = \"s2\"\n"
                .into(),
        ),
    ]);
    let diags = check_dir(&files, Path::new("/nowhere"), &known);
    // The server config is no flow; b.toml is clean; a.toml's two mistakes are reported.
    assert_eq!(diags.len(), 2, "{diags:#?}");
    assert!(diags
        .iter()
        .all(|d| d.file == Path::new("/nowhere/flows/a.toml")));
    assert!(diags
        .iter()
        .any(|d| d.message.contains("unknown prompt \"nope\"")));

    let missing = load_flow(&files, Path::new("/nowhere/flows/c.toml"), &known).unwrap_err();
    assert_eq!(
        missing[0].to_string(),
        "error: /nowhere/flows/c.toml: cannot read: no such file"
    );
}
