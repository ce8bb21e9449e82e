//! The reference VIP flow (`config/flows/vip.toml`, read from the repository) with tiny
//! prompts, and the steps its scenarios share: a caller answered and at the keypad, a
//! REFER accepted, the customer API's answers.

use std::time::Duration;

use concierge_b2bua::Program;
use concierge_media::Law;
use concierge_prompts::{Catalogue, Prompt};
use concierge_sip::wire::{Message, Request};

use super::{find_request, Caller, Kit, HOST, SIP_PORT};

/// The flow file, as shipped.
pub(crate) const FLOW: &str = include_str!("../../../../config/flows/vip.toml");

/// A VIP customer's number (the flow file's example).
pub(crate) const VIP_NUMBER: &str = "+46706170786";
/// A number the CRM does not know.
pub(crate) const UNKNOWN_NUMBER: &str = "+46700000099";

/// The prompts the flow plays, with their length in 20 ms frames. Each is one level of
/// its own, so the kit can tell from a packet which one is playing ([`Kit::heard`]).
pub(crate) const PROMPTS: &[(&str, usize)] = &[
    ("one_moment", 3),
    ("hold_music", 2),
    ("vip_greeting", 5),
    ("welcome", 4),
    ("enter_code", 3),
    ("invalid_code", 3),
    ("transfer_vip", 3),
    ("transfer_service", 3),
    ("code_locked", 3),
    ("goodbye", 3),
];

/// The length of prompt `name`.
pub(crate) fn prompt_len(name: &str) -> Duration {
    let frames = PROMPTS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no prompt {name}"))
        .1;
    Duration::from_millis(20 * frames as u64)
}

/// Tiny prompts of one level each, every level encoding to bytes (in both laws) that no
/// other prompt and no silence uses.
pub(crate) fn prompts() -> Catalogue {
    let mut taken = vec![
        concierge_prompts::Prompt::from_pcm("silence", vec![0; 160])
            .frame(Law::Alaw, 0, 160)
            .expect("a frame")[0],
        concierge_prompts::Prompt::from_pcm("silence", vec![0; 160])
            .frame(Law::Ulaw, 0, 160)
            .expect("a frame")[0],
    ];
    let mut catalogue = Catalogue::default();
    let mut level: i16 = 500;
    for (name, frames) in PROMPTS {
        loop {
            level += 700;
            let p = Prompt::from_pcm(*name, vec![level; frames * 160]);
            let a = p.frame(Law::Alaw, 0, 160).expect("a frame")[0];
            let u = p.frame(Law::Ulaw, 0, 160).expect("a frame")[0];
            if a != u && !taken.contains(&a) && !taken.contains(&u) {
                taken.extend([a, u]);
                catalogue.insert(p);
                break;
            }
        }
    }
    catalogue
}

/// The reference flow as the default flow, with [`prompts`]; every prompt it names must
/// be in the catalogue.
pub(crate) fn program() -> Program {
    let prompts = prompts();
    let loaded = concierge_flow::parse_flow(
        std::path::Path::new("config/flows/vip.toml"),
        FLOW,
        &|name| prompts.contains(name),
    )
    .unwrap_or_else(|e| panic!("the shipped VIP flow does not load: {e:?}"));
    Program {
        default_flow: Some(loaded.flow),
        prompts,
        ..Default::default()
    }
}

/// Where the flow sends VIPs and everyone else.
pub(crate) fn vip_desk() -> String {
    format!("sip:vip-desk@{HOST}:{SIP_PORT}")
}

pub(crate) fn service_desk() -> String {
    format!("sip:service-desk@{HOST}:{SIP_PORT}")
}

/// The CRM's answer for a customer.
pub(crate) fn customer(number: &str, vip: bool, tier: &str) -> String {
    format!(
        r#"{{"customer": {{"number": "{number}", "hasVIPMembership": {vip}, "tier": "{tier}"}}}}"#
    )
}

/// A VIP through the trusted carrier: asserted, found by the CRM, at the greeting.
/// Returns the caller, answered and ACKed, with the greeting playing.
pub(crate) fn vip_at_greeting(kit: &mut Kit, call_id: &str) -> Caller {
    let mut c = Caller::carrier(call_id, VIP_NUMBER);
    c.invite(kit);
    kit.http_reply(200, &customer(VIP_NUMBER, true, "gold"));
    c.inbox(kit);
    c.ack(kit);
    c
}

/// An unknown caller on the phone, the CRM's 404 taken (or, within a minute of the last,
/// the cached one): answered, ACKed, the welcome playing.
pub(crate) fn unknown_at_welcome(kit: &mut Kit, call_id: &str) -> Caller {
    unknown_numbered_at_welcome(kit, call_id, UNKNOWN_NUMBER)
}

pub(crate) fn unknown_numbered_at_welcome(kit: &mut Kit, call_id: &str, number: &str) -> Caller {
    let mut c = Caller::phone(call_id, number);
    c.invite(kit);
    if !kit.http.is_empty() {
        kit.http_reply(404, "");
    }
    c.inbox(kit);
    c.ack(kit);
    c
}

/// An unknown caller past the welcome and the code prompt: the keypad's first-digit
/// timer runs.
pub(crate) fn unknown_at_keypad(kit: &mut Kit, call_id: &str) -> Caller {
    let mut c = unknown_at_welcome(kit, call_id);
    kit.advance(prompt_len("welcome") + prompt_len("enter_code") + Duration::from_millis(60));
    c.inbox(kit);
    c
}

/// Waits out the prompt before a transfer and returns the REFER that follows it.
pub(crate) fn refer_after_prompt(kit: &mut Kit, caller: &mut Caller) -> Request {
    kit.advance_ms(300);
    let out = caller.inbox(kit);
    find_request(&out, "REFER")
}

/// The REFER's `Refer-To`.
pub(crate) fn refer_to(refer: &Request) -> String {
    refer
        .header(&concierge_sip::wire::HeaderName::REFER_TO)
        .expect("a Refer-To")
        .to_owned()
}

/// The caller's side of a transfer that works: 202 to the REFER, NOTIFY 100, NOTIFY 200;
/// returns what the switch sent after the last NOTIFY (its 200 and our BYE).
pub(crate) fn accept_transfer(kit: &mut Kit, caller: &mut Caller, refer: &Request) -> Vec<Message> {
    caller.reply(kit, refer, 202);
    caller.notify(kit, "SIP/2.0 100 Trying", "active;expires=60");
    caller.notify(kit, "SIP/2.0 200 OK", "terminated;reason=noresource")
}
