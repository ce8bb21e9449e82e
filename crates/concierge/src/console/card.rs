//! The call widget's card: what a desk agent sees about the call that reached the desk —
//! who (number, name, tier, customer ID), whether a VIP and how recognised, the flow's
//! widget variables, how long the caller waited, the path through the flow.
//!
//! A card is built from whatever tells first: the switch's `Transferred` event (the
//! pop-up, as the REFER or the bridge leg goes out, later completed by the transfer's
//! result), a transferred call's record, or a signed transfer token a desk phone or CRM
//! links with. Values are the caller's or the CRM's text: they are
//! bounded here and escaped where a page renders them, never trusted.

use std::collections::BTreeMap;

use concierge_b2bua::{desk_of, CallRecord, SignedContext, CALLER_HEADER, CALL_ID_HEADER};
use concierge_flow::{Flow, Node, Recognition};

/// The longest value a card shows, in characters (a CRM field can be anything).
const MAX_VALUE_CHARS: usize = 200;

/// The widget variables the card's headline reads, by name (all are listed too).
const NAME: &str = "customer.name";
const CUSTOMER_ID: &str = "customer.id";
const TIERS: [&str; 2] = ["customer.tier", "tier"];

/// Where a card's facts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The call's record: our part of the call has ended (for a REFER, the caller is now
    /// talking to the desk).
    Record,
    /// The switch's transfer event: the call is being transferred now.
    Event,
    /// A signed transfer token, verified; only what the token signs.
    Token,
}

/// One call as the desk's widget shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Card {
    pub(crate) call_id: String,
    /// The desk the call was transferred to (`vip-desk`, an extension).
    pub(crate) desk: String,
    /// The caller's number; `None` when withheld (private or anonymous).
    pub(crate) caller: Option<String>,
    /// A trusted peer asserted the number.
    pub(crate) verified: bool,
    pub(crate) name: Option<String>,
    pub(crate) tier: Option<String>,
    pub(crate) customer_id: Option<String>,
    /// How the caller was recognised as a VIP; `None`: not a VIP.
    pub(crate) recognised: Option<Recognition>,
    /// The transfer node's widget variables, `(name, value)`, in its order.
    pub(crate) widget: Vec<(String, String)>,
    /// From the call's arrival to the transfer.
    pub(crate) waited_ms: Option<u64>,
    /// The nodes the call went through, `node (exit)`.
    pub(crate) path: Vec<String>,
    /// When the transfer started (ms since the Unix epoch).
    pub(crate) transferred_ms: Option<u64>,
    /// `refer`, `bridge`, `redirect`.
    pub(crate) mode: Option<String>,
    /// How the transfer ended, in the record's words (`succeeded`, `answered`, `failed:
    /// REFER rejected with 603`, …); `None` while it is under way (or, from a token,
    /// unknown).
    pub(crate) result: Option<String>,
    pub(crate) source: Source,
}

impl Card {
    /// The card of a record that ended in a successful transfer to a desk; `None` for any
    /// other record. `flow` is the flow (that version) the call ran, when still known: it
    /// says which variables the transfer node shows and how it recognised the caller.
    pub(crate) fn from_record(record: &CallRecord, flow: Option<&Flow>) -> Option<Self> {
        if record.outcome != concierge_b2bua::Outcome::Transferred {
            return None;
        }
        let transfer = record.transfer.as_ref()?;
        let desk = desk_of(&transfer.target)?;
        let vars: BTreeMap<String, String> = record.variables.iter().cloned().collect();
        // The node the call was transferred from: the last transfer node on its path.
        let context = flow.and_then(|flow| {
            let node = record
                .path
                .iter()
                .rev()
                .find(|s| matches!(flow.nodes.get(&s.node), Some(Node::Transfer { .. })))?;
            flow.transfer_context(&node.node, &vars)
        });
        let (widget, recognised) = context
            .map(|c| (c.widget, c.recognised))
            .unwrap_or_default();
        let withheld = record.private || record.caller.is_empty();
        Some(Self::assemble(Parts {
            call_id: &record.call_id,
            desk,
            caller: (!withheld).then(|| record.caller.clone()),
            verified: record.verified,
            widget,
            recognised,
            waited_ms: transfer
                .started_ms
                .map(|t| t.saturating_sub(record.arrived_ms)),
            path: record
                .path
                .iter()
                .map(|s| step(&s.node, s.exit.as_deref()))
                .collect(),
            transferred_ms: transfer.started_ms.or(Some(record.ended_ms)),
            mode: Some(transfer.mode.as_str().to_owned()),
            result: Some(transfer.result.to_string()),
            source: Source::Record,
        }))
    }

    /// The card a verified transfer token vouches for: its caller and the variables it
    /// carries (`X-Concierge-Tier` → `tier`). `desk` is the one the link names, if any.
    pub(crate) fn from_token(context: &SignedContext, desk: Option<&str>) -> Self {
        let call_id = context.get(CALL_ID_HEADER).unwrap_or_default();
        let caller = context
            .get(CALLER_HEADER)
            .filter(|c| !c.is_empty() && *c != "anonymous")
            .map(str::to_owned);
        // Only the context's own `X-Concierge-*` variables: any other header a flow signs
        // (a `Priority`, a header of its own) is the queue's business, not the card's.
        let widget = context
            .headers
            .iter()
            .filter(|(n, _)| {
                n.starts_with("x-concierge-")
                    && !n.eq_ignore_ascii_case(CALL_ID_HEADER)
                    && !n.eq_ignore_ascii_case(CALLER_HEADER)
            })
            .map(|(n, v)| {
                let name = n.strip_prefix("x-concierge-").unwrap_or(n);
                (name.to_owned(), v.clone())
            })
            .collect();
        Self::assemble(Parts {
            call_id,
            desk: desk.unwrap_or_default().to_owned(),
            caller,
            verified: false,
            widget,
            recognised: None,
            waited_ms: None,
            path: Vec::new(),
            transferred_ms: None,
            mode: None,
            result: None,
            source: Source::Token,
        })
    }

    /// The card the switch's transfer event makes while the call is in progress: the
    /// instant pop-up at the desk.
    pub(crate) fn from_event(
        call: &super::hub::LiveCall,
        desk: String,
        transfer: &concierge_b2bua::Transfer,
        waited: std::time::Duration,
        transferred_ms: u64,
    ) -> Self {
        Self::assemble(Parts {
            call_id: &call.call_id,
            desk,
            caller: call.caller.clone(),
            verified: call.verified,
            widget: transfer.widget.clone(),
            recognised: transfer.recognised,
            waited_ms: Some(waited.as_millis() as u64),
            path: call.path().to_vec(),
            transferred_ms: Some(transferred_ms),
            mode: Some(transfer.mode.as_str().to_owned()),
            result: None,
            source: Source::Event,
        })
    }

    /// Whether the card says the caller is a VIP.
    pub(crate) fn is_vip(&self) -> bool {
        self.recognised.is_some()
    }

    fn assemble(p: Parts<'_>) -> Self {
        let widget: Vec<(String, String)> = p
            .widget
            .into_iter()
            .take(64)
            .map(|(n, v)| (bounded(&n), bounded(&v)))
            .collect();
        let find = |name: &str| {
            widget
                .iter()
                .find(|(n, v)| n == name && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        Self {
            call_id: bounded(p.call_id),
            desk: bounded(&p.desk),
            caller: p.caller.as_deref().map(bounded),
            verified: p.verified,
            name: find(NAME),
            tier: TIERS.iter().find_map(|t| find(t)),
            customer_id: find(CUSTOMER_ID),
            recognised: p.recognised,
            widget,
            waited_ms: p.waited_ms,
            path: p.path.iter().take(64).map(|s| bounded(s)).collect(),
            transferred_ms: p.transferred_ms,
            mode: p.mode,
            result: p.result.as_deref().map(bounded),
            source: p.source,
        }
    }
}

/// What [`Card::assemble`] bounds and files into a card.
struct Parts<'a> {
    call_id: &'a str,
    desk: String,
    caller: Option<String>,
    verified: bool,
    widget: Vec<(String, String)>,
    recognised: Option<Recognition>,
    waited_ms: Option<u64>,
    path: Vec<String>,
    transferred_ms: Option<u64>,
    mode: Option<String>,
    result: Option<String>,
    source: Source,
}

/// A path step as the card and the console show it.
pub(crate) fn step(node: &str, exit: Option<&str>) -> String {
    match exit {
        Some(e) => format!("{node} ({e})"),
        None => node.to_owned(),
    }
}

/// At most [`MAX_VALUE_CHARS`] characters, control characters dropped, `…` where cut.
pub(crate) fn bounded(text: &str) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_VALUE_CHARS)
        .collect();
    if text
        .chars()
        .filter(|c| !c.is_control())
        .nth(MAX_VALUE_CHARS)
        .is_some()
    {
        out.push('…');
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use concierge_b2bua::{EndedBy, PathStep, TransferRecord};
    use concierge_flow::TransferMode;

    /// The shipped VIP flow, as the console knows it from the program.
    pub(crate) fn vip_flow() -> std::sync::Arc<Flow> {
        let text = include_str!("../../../../config/flows/vip.toml");
        concierge_flow::parse_flow(std::path::Path::new("vip.toml"), text, &|_| true)
            .expect("the shipped flow")
            .flow
    }

    /// A VIP by number, transferred by REFER to the VIP desk.
    pub(crate) fn vip_record(call_id: &str, name: &str) -> CallRecord {
        let flow = vip_flow();
        let steps = [
            ("lookup", "success"),
            ("is_vip", "case 1"),
            ("is_verified", "case 1"),
            ("verstat_ok", "case 1"),
            ("vip_by_number", "next"),
            ("fast_track", "transferred"),
        ];
        CallRecord {
            call_id: call_id.into(),
            flow: Some(flow.name.clone()),
            flow_version: Some(flow.version.clone()),
            outcome: concierge_b2bua::Outcome::Transferred,
            caller: "+46706170786".into(),
            verified: true,
            verstat: None,
            private: false,
            lockout: None,
            called: "ivr".into(),
            arrived_ms: 1_000_000,
            answered_ms: Some(1_000_100),
            ended_ms: 1_002_000,
            path: steps
                .iter()
                .map(|(n, e)| PathStep {
                    node: (*n).into(),
                    exit: Some((*e).into()),
                })
                .collect(),
            http: Vec::new(),
            variables: [
                ("customer.name", name),
                ("customer.tier", "gold"),
                ("customer.id", "101010"),
                ("isVIPCustomer", "true"),
                ("tier", "member"),
                ("securityCode", "***"),
            ]
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
            transfer: Some(TransferRecord {
                mode: TransferMode::Refer,
                target: "sip:vip-desk@127.0.0.1:5060".into(),
                result: concierge_b2bua::TransferResult::Succeeded,
                started_ms: Some(1_001_500),
                relayed: None,
            }),
            ended_by: EndedBy::Concierge,
            reason: "transferred".into(),
            digits: Vec::new(),
            instance: "test".into(),
            rtp_foreign_dropped: 0,
        }
    }

    #[test]
    fn a_transferred_vip_s_record_makes_the_desk_s_card() {
        let flow = vip_flow();
        let card =
            Card::from_record(&vip_record("c1", "Astrid Lindqvist"), Some(&flow)).expect("a card");
        assert_eq!(card.desk, "vip-desk");
        assert_eq!(card.caller.as_deref(), Some("+46706170786"));
        assert_eq!(card.name.as_deref(), Some("Astrid Lindqvist"));
        assert_eq!(card.tier.as_deref(), Some("gold"), "the CRM's tier first");
        assert_eq!(card.customer_id.as_deref(), Some("101010"));
        assert_eq!(card.recognised, Some(Recognition::Number));
        assert_eq!(card.waited_ms, Some(1_500));
        assert_eq!(
            card.path.last().map(String::as_str),
            Some("fast_track (transferred)")
        );
        assert_eq!(card.mode.as_deref(), Some("refer"));
        // Only the variables the node marks, never the secret code.
        let shown: Vec<&str> = card.widget.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            shown,
            ["customer.name", "customer.tier", "customer.id", "tier"]
        );
    }

    #[test]
    fn a_token_s_card_shows_its_caller_and_its_own_variables() {
        let context = SignedContext {
            expires_unix_s: 0,
            headers: [
                ("x-concierge-tier", "gold"),
                ("priority", "urgent"),
                ("x-concierge-call-id", "c9"),
                ("x-concierge-caller", "anonymous"),
            ]
            .iter()
            .map(|(n, v)| ((*n).into(), (*v).into()))
            .collect(),
        };
        let card = Card::from_token(&context, Some("vip-desk"));
        assert_eq!(
            (card.call_id.as_str(), card.desk.as_str()),
            ("c9", "vip-desk")
        );
        assert_eq!(card.caller, None, "anonymous is withheld");
        assert_eq!(card.widget, [("tier".to_owned(), "gold".to_owned())]);
        assert_eq!(card.tier.as_deref(), Some("gold"));
        assert_eq!(card.source, Source::Token);
    }

    #[test]
    fn no_card_for_a_call_that_did_not_reach_a_desk() {
        let mut r = vip_record("c2", "Astrid");
        r.outcome = concierge_b2bua::Outcome::HungUp;
        assert!(Card::from_record(&r, None).is_none());
        let mut r = vip_record("c3", "Astrid");
        r.transfer.as_mut().unwrap().target = "<redacted>".into();
        assert!(Card::from_record(&r, None).is_none());
    }

    #[test]
    fn a_private_caller_s_number_stays_off_the_card_and_long_values_are_cut() {
        let mut r = vip_record("c4", &"x".repeat(1000));
        r.private = true;
        let card = Card::from_record(&r, Some(&vip_flow())).unwrap();
        assert_eq!(card.caller, None);
        assert_eq!(card.name.as_deref().map(|n| n.chars().count()), Some(201));
        // Without its flow the card still says who and where, with no widget variables.
        let card = Card::from_record(&r, None).unwrap();
        assert!(card.widget.is_empty() && card.recognised.is_none());
    }
}
