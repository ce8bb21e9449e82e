//! The flow file's schema (what a person writes) and the compiled flow (templates parsed,
//! regexes and JSON paths compiled) the interpreter runs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;
use serde_json_path::JsonPath;

use crate::condition::Operator;
use crate::template::Template;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlowFile {
    pub(crate) name: Option<String>,
    pub(crate) start: String,
    /// Answer with 183 Session Progress + SDP and play prompts before the 200.
    #[serde(default)]
    pub(crate) early_media: bool,
    pub(crate) nodes: BTreeMap<String, NodeFile>,
    /// `[auth.<name>]`: credentials `http` nodes name with `auth = "<name>"`.
    #[serde(default)]
    pub(crate) auth: BTreeMap<String, crate::auth::AuthFile>,
    /// `[schedules.<name>]`: opening hours for `WithinSchedule`.
    #[serde(default)]
    pub(crate) schedules: BTreeMap<String, crate::schedule::ScheduleFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum NodeFile {
    Http(HttpFile),
    Condition(ConditionFile),
    Keypad(KeypadFile),
    Play(PlayFile),
    Set(SetFile),
    Transfer(TransferFile),
    Hangup(HangupFile),
}

fn default_method() -> String {
    "GET".into()
}
fn default_timeout() -> u64 {
    3000
}
fn default_backoff() -> u64 {
    200
}
fn default_terminator() -> Option<String> {
    Some("#".into())
}
fn default_first_digit() -> u64 {
    5000
}
fn default_inter_digit() -> u64 {
    3000
}
fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpFile {
    pub(crate) url: String,
    #[serde(default = "default_method")]
    pub(crate) method: String,
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) json_path: Option<String>,
    pub(crate) save_as: Option<String>,
    /// More values from the same JSON answer: variable name → JSON path.
    #[serde(default)]
    pub(crate) save: BTreeMap<String, String>,
    #[serde(default = "default_timeout")]
    pub(crate) timeout_ms: u64,
    #[serde(default)]
    pub(crate) retries: u32,
    #[serde(default = "default_backoff")]
    pub(crate) retry_backoff_ms: u64,
    /// Answers kept and reused (see `cache.rs`).
    pub(crate) cache: Option<crate::cache::CacheFile>,
    /// Audio while the request is in flight.
    pub(crate) comfort: Option<ComfortFile>,
    /// An `[auth.<name>]` block: the request carries its bearer token.
    pub(crate) auth: Option<String>,
    pub(crate) success: String,
    pub(crate) failure: String,
}

/// `comfort = { after_ms, prompt, hold }` on an `http` node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ComfortFile {
    #[serde(default = "default_comfort_after")]
    pub(crate) after_ms: u64,
    pub(crate) prompt: Option<String>,
    pub(crate) hold: Option<String>,
}

fn default_comfort_after() -> u64 {
    1000
}

/// What a caller hears while an `http` node waits: after `after`, `prompt` once, then
/// `hold` looped until the result arrives (the call is answered first if it still rings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComfortSpec {
    /// How long the request may run before the caller hears anything.
    pub after: Duration,
    /// Played once, first (`one_moment`).
    pub prompt: Option<String>,
    /// Looped after the prompt until the result arrives (`hold_music`).
    pub hold: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaseFile {
    pub(crate) operator: Operator,
    pub(crate) value: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) exit: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConditionFile {
    pub(crate) variable: String,
    pub(crate) cases: Vec<CaseFile>,
    pub(crate) default: String,
    #[serde(default)]
    pub(crate) case_sensitive: bool,
    /// A lockout group (see [`KeypadFile::lockout`]): taking `default` counts a failed
    /// attempt for the caller's number and source address.
    pub(crate) lockout: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeypadFile {
    pub(crate) prompt: String,
    pub(crate) save_as: String,
    #[serde(default = "one")]
    pub(crate) min_digits: u32,
    pub(crate) max_digits: u32,
    #[serde(default = "default_first_digit")]
    pub(crate) first_digit_timeout_ms: u64,
    #[serde(default = "default_inter_digit")]
    pub(crate) inter_digit_timeout_ms: u64,
    #[serde(default = "default_terminator")]
    pub(crate) terminator: Option<String>,
    #[serde(default)]
    pub(crate) retries: u32,
    pub(crate) retry_prompt: Option<String>,
    #[serde(default)]
    pub(crate) secret: bool,
    /// A lockout group (`codes`): while the caller's number or source address has used up
    /// its failed attempts in this group, no digits are collected and the node takes
    /// `locked` instead.
    pub(crate) lockout: Option<String>,
    pub(crate) locked: Option<String>,
    pub(crate) done: String,
    pub(crate) no_input: String,
    pub(crate) invalid: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlayFile {
    pub(crate) prompts: Vec<String>,
    /// A key stops the prompts (barge-in) and waits for the next keypad node.
    #[serde(default)]
    pub(crate) interruptible: bool,
    pub(crate) next: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetFile {
    pub(crate) values: BTreeMap<String, String>,
    pub(crate) next: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransferFile {
    pub(crate) target: String,
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) mode: TransferMode,
    pub(crate) prompt: Option<String>,
    /// RFC 3261 §20.26 `Priority` for the queue side: `non-urgent`, `normal`, `urgent`,
    /// `emergency`.
    pub(crate) priority: Option<String>,
    /// Another header that carries the same priority value (`X-Queue-Priority`), for
    /// queues that read their own.
    pub(crate) priority_header: Option<String>,
    /// Variables shown on the desk's call widget, in this order.
    #[serde(default)]
    pub(crate) widget: Vec<String>,
    /// How the caller was recognised as a VIP (unset: not a VIP), for the widget.
    pub(crate) recognised: Option<Recognition>,
    /// A registered trunk the transfer goes through (`[[trunks]]` in the server config).
    pub(crate) trunk: Option<String>,
    pub(crate) failed: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HangupFile {
    pub(crate) prompt: Option<String>,
}

/// How a transfer node's caller was recognised as a VIP (`recognised = "…"` on the node):
/// what the desk's call widget says under "VIP". A transfer without it is not a VIP's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recognition {
    /// The caller's number, looked up (`recognised = "number"`).
    Number,
    /// A security code typed on the keypad (`"code"`).
    Code,
    /// A customer ID typed on the keypad and looked up (`"customer_id"`).
    CustomerId,
}

impl Recognition {
    /// In words, as the widget shows it: `number lookup`, `code`, `customer ID`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Number => "number lookup",
            Self::Code => "code",
            Self::CustomerId => "customer ID",
        }
    }
}

/// How a transfer node moves the call (the transfer itself is the call layer's job).
/// The one type for this across the workspace: flows name it, the call layer carries it
/// out, and call records say which one a transfer used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    /// REFER in the caller's dialog (RFC 3515); the caller's phone places the new call.
    Refer,
    /// 302 Moved Temporarily before answering: no media at all.
    Redirect,
    /// A second call leg from us to the target, media relayed between the two.
    Bridge,
    /// REFER; when it fails, a bridge.
    #[default]
    ReferOrBridge,
}

impl TransferMode {
    /// The name flows and records use (`refer`, `redirect`, `bridge`, `refer_or_bridge`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refer => "refer",
            Self::Redirect => "redirect",
            Self::Bridge => "bridge",
            Self::ReferOrBridge => "refer_or_bridge",
        }
    }
}

/// A flow ready to run: every template parsed, every regex and JSON path compiled.
///
/// Built only by validation ([`crate::parse_flow`], [`crate::load_flow`]), so every exit
/// names a node and every template parses; shared read-only (`Arc`) by all the calls
/// that run it, each through its own [`crate::Run`].
#[derive(Debug)]
pub struct Flow {
    /// The file's `name`, else its file stem: in logs, metrics and call records.
    pub name: String,
    /// The node a run enters first.
    pub start: String,
    /// Early media: the call layer sends 183 Session Progress with SDP and plays prompts
    /// before answering; it answers (200) when the flow first needs more than a prompt
    /// (keypad input, a REFER or bridge transfer).
    pub early_media: bool,
    /// Every node by id.
    pub nodes: BTreeMap<String, Node>,
    /// Variables whose values are redacted in logs and records.
    pub secrets: Vec<String>,
    /// The flow file's content hash (first 12 hex digits of its SHA-256): which version
    /// of the flow a call ran, in its record, across reloads.
    pub version: String,
    /// Opening hours by name (`[schedules.<name>]`).
    pub schedules: BTreeMap<String, crate::Schedule>,
}

impl Flow {
    /// The lockout groups its keypads obey (`lockout = "codes"`), each once: what a call
    /// layer that shares lockouts with other instances asks about before a keypad starts.
    pub fn lockout_groups(&self) -> BTreeSet<&str> {
        self.nodes
            .values()
            .filter_map(|n| match n {
                Node::Keypad { lockout, .. } => lockout.as_deref(),
                _ => None,
            })
            .collect()
    }
}

/// One step of a flow, compiled. Exits name other nodes by id. The interpreter runs
/// `condition` and `set` nodes at once; every other kind produces an [`crate::Action`] and
/// waits for its outcome ([`Node::waits`]).
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "nodes are built once per flow file and shared by Arc, never moved per call"
)]
pub enum Node {
    /// Asks a server for a value and saves it.
    Http {
        /// Rendered with [`crate::Escape::Url`].
        url: Template,
        /// `GET`, `POST` or `PUT`, upper case.
        method: String,
        /// Request headers, values rendered as they are.
        headers: Vec<(String, Template)>,
        /// The request body, escaped for its content type.
        body: Option<Template>,
        /// The body's type; `application/json` when unset.
        content_type: Option<String>,
        /// Where the value is in a JSON answer; `None` saves the whole body, trimmed.
        json_path: Option<JsonPath>,
        /// The variable the value is saved to; `None` when the node only has `save`.
        save_as: Option<String>,
        /// Further values from the same JSON answer, `(variable, path)` in name order. A
        /// path that matches nothing (or `null`) saves an empty value; only `json_path`
        /// decides success.
        save: Vec<(String, JsonPath)>,
        /// How long one attempt may take.
        timeout: Duration,
        /// Further attempts after a transient failure (no answer, 5xx).
        retries: u32,
        /// The wait before retry `n` is `n` × this.
        backoff: Duration,
        /// Answers kept and reused across calls.
        cache: Option<crate::CacheSpec>,
        /// What the caller hears while the request runs.
        comfort: Option<ComfortSpec>,
        /// The `[auth.<name>]` block whose bearer token the request carries.
        auth: Option<std::sync::Arc<crate::AuthSpec>>,
        /// The exit after a 2xx whose value was found.
        success: String,
        /// The exit after every other outcome, retries used up.
        failure: String,
    },
    /// Compares a variable with each case in order; the first that holds is taken.
    Condition {
        /// The variable compared (unset reads as empty).
        variable: String,
        /// Tested in order (all of them, in constant time, for a secret variable).
        cases: Vec<Case>,
        /// The exit when no case holds.
        default: String,
        /// Compare as written instead of in lower case.
        case_sensitive: bool,
        /// Taking `default` is a failed attempt in this lockout group.
        lockout: Option<String>,
    },
    /// Plays a prompt and collects digits into a variable.
    Keypad {
        /// Played before collecting; a key stops it.
        prompt: String,
        /// The variable the digits are saved to.
        save_as: String,
        /// Fewest digits that make a valid entry.
        min: u32,
        /// Most digits; the entry ends at this many.
        max: u32,
        /// No key within this after the prompt is no input.
        first_digit_timeout: Duration,
        /// No further key within this ends the entry.
        inter_digit_timeout: Duration,
        /// The key that ends an entry early.
        terminator: Option<char>,
        /// Further attempts after no input or an invalid entry.
        retries: u32,
        /// Played before the prompt on a retry.
        retry_prompt: Option<String>,
        /// The digits are a secret: `*` in logs and records, compared in constant time.
        secret: bool,
        /// The lockout group this keypad obeys, and the exit it takes while locked.
        lockout: Option<String>,
        /// The exit while the lockout group is locked for this caller.
        locked: Option<String>,
        /// The exit after a valid entry.
        done: String,
        /// The exit after no input, retries used up.
        no_input: String,
        /// The exit after an entry outside `min..=max` digits, retries used up.
        invalid: String,
    },
    /// Plays prompts, then moves on.
    Play {
        /// Prompt names; `spell:{var}` reads a variable back key by key.
        prompts: Vec<String>,
        /// A key stops the prompts and is kept for the next keypad.
        interruptible: bool,
        /// The exit once the prompts have played.
        next: String,
    },
    /// Sets variables from templates, in name order, then moves on.
    Set {
        /// `(variable, value)` pairs.
        values: Vec<(String, Template)>,
        /// The exit.
        next: String,
    },
    /// Hands the call to someone else.
    Transfer {
        /// A `sip:`, `sips:` or `tel:` URI once rendered.
        target: Template,
        /// Headers for the new call, `Priority` (and its copy) included.
        headers: Vec<(String, Template)>,
        /// How the call is moved.
        mode: TransferMode,
        /// Played before the transfer.
        prompt: Option<String>,
        /// Variables the desk's call widget shows (never a secret one), in order.
        widget: Vec<String>,
        /// How the caller was recognised as a VIP; `None`: not a VIP.
        recognised: Option<Recognition>,
        /// The registered trunk the call goes through (from `trunk`, or a target written
        /// `sip:USER@trunk:NAME`); the server's configuration must define it.
        trunk: Option<String>,
        /// The exit when the transfer fails; without one the call hangs up.
        failed: Option<String>,
    },
    /// Ends the call.
    Hangup {
        /// Played before hanging up.
        prompt: Option<String>,
    },
}

/// One case of a [`Node::Condition`]: when `variable <operator> value` holds, take `exit`.
#[derive(Debug)]
pub struct Case {
    /// How the variable is compared.
    pub operator: Operator,
    /// The right-hand side, rendered per call (a schedule's name for `WithinSchedule`).
    pub value: Template,
    /// The upper bound for `Between`; empty otherwise.
    pub to: Template,
    /// The compiled pattern for `Matches`.
    pub regex: Option<regex::Regex>,
    /// The node taken when the case holds.
    pub exit: String,
}

impl Node {
    /// The node's `type` as written in a flow file (`http`, `keypad`, …), for diagrams,
    /// logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Http { .. } => "http",
            Self::Condition { .. } => "condition",
            Self::Keypad { .. } => "keypad",
            Self::Play { .. } => "play",
            Self::Set { .. } => "set",
            Self::Transfer { .. } => "transfer",
            Self::Hangup { .. } => "hangup",
        }
    }

    /// Each exit with the field that names it.
    pub fn exits(&self) -> Vec<(&'static str, &str)> {
        match self {
            Self::Http {
                success, failure, ..
            } => vec![("success", success), ("failure", failure)],
            Self::Condition { cases, default, .. } => {
                let mut v: Vec<(&'static str, &str)> = cases
                    .iter()
                    .map(|c| ("cases.exit", c.exit.as_str()))
                    .collect();
                v.push(("default", default));
                v
            }
            Self::Keypad {
                done,
                no_input,
                invalid,
                locked,
                ..
            } => {
                let mut v = vec![
                    ("done", done.as_str()),
                    ("no_input", no_input),
                    ("invalid", invalid),
                ];
                v.extend(locked.iter().map(|l| ("locked", l.as_str())));
                v
            }
            Self::Play { next, .. } | Self::Set { next, .. } => vec![("next", next)],
            Self::Transfer { failed, .. } => {
                failed.iter().map(|f| ("failed", f.as_str())).collect()
            }
            Self::Hangup { .. } => Vec::new(),
        }
    }

    /// Whether running this node waits for the outside world (a prompt, a key, a server).
    pub fn waits(&self) -> bool {
        !matches!(self, Self::Condition { .. } | Self::Set { .. })
    }
}
