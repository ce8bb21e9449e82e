//! What the caller reports back to the interpreter, and what a run keeps for the call
//! record.

// HTTP bodies and caller values reach this module: no slice or index that can panic.
#![deny(clippy::string_slice, clippy::indexing_slicing)]
use std::time::Duration;

/// A response the server gave to an [`HttpRequest`](crate::HttpRequest), reported in
/// [`Event::HttpResult`]. A 2xx takes the node's `success` exit (its body, or the JSON path's
/// match, saved); anything else is a failure, retried when it is a 5xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The body as received (the caller bounds its size).
    pub body: Vec<u8>,
    /// From sending the request to the end of the body, for the call record.
    pub latency: Duration,
    /// Set when a cache shared by several instances gave this answer instead of the
    /// server (made by [`crate::SharedValue::answer`]): `body` is then empty and the value
    /// to save is here. `None` for a response from the server.
    pub shared: Option<crate::SharedAnswer>,
}

/// An [`HttpRequest`](crate::HttpRequest) that got no response, reported in [`Event::HttpResult`].
/// Every kind is transient: the node retries it while it has retries left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpFailure {
    /// No connection (refused, unreachable, TLS failed); the text says why, for the record.
    Connect(String),
    /// No complete response within the request's `timeout`.
    Timeout,
    /// Anything else (a broken response, a body over the limit); the text says what.
    Other(String),
}

/// How an [`Action::Transfer`](crate::Action::Transfer) ended, reported in
/// [`Event::TransferResult`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferOutcome {
    /// The call is with the target: the run ends.
    Succeeded,
    /// The call is still here; the node takes its `failed` exit, or hangs up with the
    /// text as the reason when it has none.
    Failed(String),
}

/// What happened since the last action. `Debug` shows how many digits, never which.
#[derive(Clone, PartialEq, Eq)]
pub enum Event {
    /// The prompts of [`Action::Play`](crate::Action::Play) (or a hangup's prompt) have played, or
    /// a key stopped interruptible ones.
    PromptFinished,
    /// Digits collected for [`Action::CollectDigits`](crate::Action::CollectDigits), terminator
    /// removed.
    Digits(String),
    /// No key came for [`Action::CollectDigits`](crate::Action::CollectDigits): the node retries or
    /// takes `no_input`.
    InputTimeout,
    /// The keypad's lockout group is locked for this caller: no digits were collected.
    Locked,
    /// The outcome of [`Action::Http`](crate::Action::Http) (from the server or the caller's lookup
    /// cache).
    HttpResult(Result<HttpResponse, HttpFailure>),
    /// The outcome of [`Action::Transfer`](crate::Action::Transfer).
    TransferResult(TransferOutcome),
    /// The caller hung up, at any point: the run ends and returns
    /// [`Action::Done`](crate::Action::Done).
    HungUp,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PromptFinished => f.write_str("PromptFinished"),
            Self::Digits(d) => write!(f, "Digits({} keys)", d.chars().count()),
            Self::InputTimeout => f.write_str("InputTimeout"),
            Self::Locked => f.write_str("Locked"),
            Self::HttpResult(r) => f.debug_tuple("HttpResult").field(r).finish(),
            Self::TransferResult(t) => f.debug_tuple("TransferResult").field(t).finish(),
            Self::HungUp => f.write_str("HungUp"),
        }
    }
}

/// One node visited, with the exit it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The node's id.
    pub node: String,
    /// The exit taken (`next`, `case 2`, `default`, `transferred`, …); `None` when the call
    /// ended in the node (a hangup, the caller hanging up).
    pub exit: Option<String>,
}

/// One HTTP exchange, for the call record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpStep {
    /// The `http` node.
    pub node: String,
    /// The response's status; `None` when there was no response.
    pub status: Option<u16>,
    /// The value it gave, or why it failed.
    pub outcome: HttpStepOutcome,
    /// As in [`HttpResponse::latency`]; zero without a response.
    pub latency: Duration,
    /// How the lookup cache took part, when the node caches.
    pub cache: Option<crate::CacheUse>,
}

/// How one HTTP exchange ended. Kept as what happened, so that a reader (the call record,
/// a metric) decides without reading text back; [`std::fmt::Display`] gives the words the
/// call record has always shown (`ok: true`, `ok: ***`, `HTTP 503`, `timeout`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpStepOutcome {
    /// A 2xx whose value was saved: `ok: <value>`.
    Value(String),
    /// A 2xx whose value was saved to a secret variable: `ok: ***`.
    SecretValue,
    /// A 2xx whose values went only to the node's `save` variables (no `save_as`): `ok:
    /// saved <names>`; the values are in the record's variables, redacted there as ever.
    Saved(Vec<String>),
    /// A 2xx whose body did not give the value (not JSON, nothing at the path): what was
    /// wrong.
    BadBody(String),
    /// A response other than 2xx: `HTTP <status>`.
    Status(u16),
    /// No connection: `connect: <why>`.
    Connect(String),
    /// No response in time: `timeout`.
    Timeout,
    /// Anything else that kept a response from arriving: what it was.
    Other(String),
}

impl HttpStepOutcome {
    /// Whether the node took its `success` exit.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Value(_) | Self::SecretValue | Self::Saved(_))
    }
}

impl std::fmt::Display for HttpStepOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(v) => write!(f, "ok: {v}"),
            Self::SecretValue => f.write_str("ok: ***"),
            Self::Saved(names) => write!(f, "ok: saved {}", names.join(", ")),
            Self::BadBody(why) | Self::Other(why) => f.write_str(why),
            Self::Status(s) => write!(f, "HTTP {s}"),
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::Timeout => f.write_str("timeout"),
        }
    }
}
