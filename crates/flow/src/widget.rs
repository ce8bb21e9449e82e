//! What a transfer tells the desk beyond its target and headers: the values of the
//! variables its node marks for the call widget (`widget = [...]`) and how the caller was
//! recognised as a VIP (`recognised = "..."`).
//!
//! `Action::Transfer` carries what the call layer needs to move the call; this context is
//! for the people at the desk, so it is read beside the action: [`crate::Run::transfer_context`]
//! while a run waits at its transfer node, or [`Flow::transfer_context`] from a call
//! record's last node and variables.

use crate::model::{Flow, Node, Recognition};
use crate::run::Vars;

/// A transfer's context for the desk's call widget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferContext {
    /// The transfer node.
    pub node: String,
    /// `(variable, value)` of every widget variable the call has set, in the node's order.
    /// Never a secret variable (validation refuses one, and it is skipped here too).
    pub widget: Vec<(String, String)>,
    /// How the caller was recognised as a VIP; `None`: the transfer is not a VIP's.
    pub recognised: Option<Recognition>,
}

impl Flow {
    /// The context of a transfer from `node` with the call's variables `vars` (which may be
    /// a record's redacted ones); `None` when `node` is not a transfer node of this flow.
    pub fn transfer_context(&self, node: &str, vars: &Vars) -> Option<TransferContext> {
        let Node::Transfer {
            widget, recognised, ..
        } = self.nodes.get(node)?
        else {
            return None;
        };
        Some(TransferContext {
            node: node.to_owned(),
            widget: widget
                .iter()
                .filter(|name| !self.secrets.contains(name))
                .filter_map(|name| Some((name.clone(), vars.get(name)?.clone())))
                .collect(),
            recognised: *recognised,
        })
    }
}
