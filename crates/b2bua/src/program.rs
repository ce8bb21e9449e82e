//! What the switch runs: flows by called number, the prompts they play, and the trunks
//! it registers with.

use std::collections::HashMap;
use std::sync::Arc;

use concierge_flow::{Environment, Flow};
use concierge_prompts::Catalogue;

/// The loaded, validated configuration of calls. Built once at start-up (and, later, on
/// reload) and shared read-only by every shard.
#[derive(Debug, Default, Clone)]
pub struct Program {
    /// Flow for calls whose Request-URI user has no route of its own.
    pub default_flow: Option<Arc<Flow>>,
    /// Flows by Request-URI user (`echo-digits`, `vip-desk`, …).
    pub routes: HashMap<String, Arc<Flow>>,
    /// Every prompt the flows may play, decoded once.
    pub prompts: Catalogue,
    /// What `${NAME}` in the flows resolves to, handed to every call's flow when it starts.
    /// The binary passes its process environment; the default has no variable set (this
    /// crate reads no environment of its own).
    pub env: Environment,
    /// The SIP trunks to register with (`[[trunks]]`); installing a program registers new
    /// and changed ones and un-registers those it no longer names.
    pub trunks: Vec<crate::Trunk>,
}

impl Program {
    /// The flow for a call to `called` (the Request-URI user): its own route, else the
    /// default flow, else none (the call is then answered without a flow).
    pub fn flow_for(&self, called: &str) -> Option<Arc<Flow>> {
        self.routes
            .get(called)
            .or(self.default_flow.as_ref())
            .cloned()
    }
}
