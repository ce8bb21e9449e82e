//! Flows for Concierge: how a business wants its calls handled, as a small TOML graph of
//! nodes, and the interpreter that runs one per call.
//!
//! Calling contract: [`Run::start`] returns the first [`Action`]; the caller performs it
//! (plays prompts, collects digits, makes the HTTP request, transfers, hangs up) and
//! reports what happened with [`Run::handle`], which returns the next action, until
//! [`Action::Done`]. The interpreter performs no IO and reads no clock, no environment and
//! no file: the caller passes the wall time ([`Run::set_clock`]), the values of `${NAME}`
//! ([`Environment`]), the flow's text ([`parse_flow`]) or the files to read it from
//! ([`FlowFiles`]), and which prompts exist. So a whole flow is testable with scripted
//! events, and `concierge simulate` is this same interpreter driven by a real HTTP client
//! and no SIP at all. [`Collector`] is the digit-collection state machine a media layer
//! uses to carry out [`Action::CollectDigits`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
mod cache;
mod collect;
mod condition;
pub mod diagram;
mod env;
#[doc(hidden)]
pub mod fuzzing;
mod model;
mod run;
mod schedule;
mod shared;
mod template;
mod trunk;
mod validate;
mod widget;

pub use auth::{AuthSpec, ClientAuth};
pub use cache::{CacheSpec, CacheUse, LookupCache};
pub use collect::{CollectOutcome, Collector};
pub use condition::Operator;
pub use env::Environment;
pub use model::{ComfortSpec, Flow, Node, Recognition, TransferMode};
pub use run::{
    Action, CollectSpec, Event, HttpFailure, HttpRequest, HttpResponse, HttpStep, HttpStepOutcome,
    Run, Step, TransferOutcome, Vars,
};
pub use schedule::{Schedule, ScheduleError};
pub use shared::{ShareSpec, SharedAnswer, SharedValue};
pub use template::{
    normalize_e164, Escape, Template, TemplateError, SYSTEM_VARIABLES, URL_BASE_VARIABLE,
};
pub use trunk::{is_trunk_name, TrunkTarget, TRUNK_HOST};
pub use validate::{
    check_dir, load_flow, parse_flow, unset_env, Diagnostic, FlowFiles, LoadedFlow, Severity,
};
pub use widget::TransferContext;
