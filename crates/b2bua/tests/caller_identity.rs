//! Who is calling and what they typed, through a [`Switch`] in virtual time: trusted peers
//! and P-Asserted-Identity, the code lockout across calls, secrets kept out of records,
//! what a bridge leg says about the caller, and the signed transfer context.

use concierge_b2bua::{LockoutConfig, SwitchConfig, TransferSigner, TrustedPeers};
use concierge_sip::wire::{HeaderName, Message, Request, Response};
use std::net::SocketAddr;

mod testkit;

use testkit::Kit;

/// The testkit with one scripted phone: what the switch sends the phone comes back from
/// `send`; everything else is the kit's (through `Deref`).
struct Rig {
    kit: Kit,
    phone: SocketAddr,
}

testkit::rig_derefs_to_kit!(Rig);

impl Rig {
    fn new(cfg: SwitchConfig, flow: &str) -> Self {
        Self {
            kit: Kit::with(SwitchConfig { seed: 7, ..cfg }, testkit::program(flow)),
            phone: "127.0.0.1:5061".parse().unwrap(),
        }
    }

    fn send(&mut self, text: &str) -> Vec<Message> {
        let phone = self.phone;
        self.kit.sip_from(phone, text);
        self.kit.inbox(phone)
    }

    /// SIP the switch sent to anyone but the phone (a bridge target).
    fn sent_to_others(&self) -> Vec<Message> {
        let phone = self.phone;
        self.kit
            .sip
            .iter()
            .filter(|s| s.to != phone)
            .map(|s| s.message.clone())
            .collect()
    }
}

fn response(m: &Message) -> Option<&Response> {
    match m {
        Message::Response(r) => Some(r),
        _ => None,
    }
}

fn request(m: &Message) -> Option<&Request> {
    match m {
        Message::Request(r) => Some(r),
        _ => None,
    }
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// One caller on the phone's address: `from` is the From URI, `extra` more headers.
struct Call {
    id: String,
    from: String,
    tag: String,
    seq: u32,
    /// What the switch sent once the ACK brought the media up.
    after_ack: Vec<Message>,
}

impl Call {
    /// INVITE → 200 → ACK.
    fn answered(rig: &mut Rig, id: &str, from: &str, extra: &str) -> Self {
        let out = rig.send(&format!(
            "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK{id}i;rport\r\nFrom: <{from}>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\nContact: <sip:phone@127.0.0.1:5061>\r\nMax-Forwards: 70\r\n{extra}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        ));
        let ok = out
            .iter()
            .filter_map(response)
            .find(|r| r.status.0 == 200)
            .expect("the flow answers");
        let mut call = Self {
            id: id.into(),
            from: from.into(),
            tag: ok.to.tag().unwrap().into(),
            seq: 1,
            after_ack: Vec::new(),
        };
        call.after_ack = call.in_dialog(rig, "ACK", "", "");
        call
    }

    fn in_dialog(&mut self, rig: &mut Rig, method: &str, extra: &str, body: &str) -> Vec<Message> {
        if method != "ACK" {
            self.seq += 1;
        }
        rig.send(&format!(
            "{method} sip:concierge@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK{}{method}{};rport\r\nFrom: <{}>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>;tag={}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            self.id, self.seq, self.from, self.tag, self.id, self.seq, body.len()
        ))
    }

    /// Keys `digits` by SIP INFO; returns what the switch sent back after the last one.
    fn keys(&mut self, rig: &mut Rig, digits: &str) -> Vec<Message> {
        let mut out = Vec::new();
        for d in digits.chars() {
            out = self.in_dialog(
                rig,
                "INFO",
                "Content-Type: application/dtmf-relay\r\n",
                &format!("Signal={d}\r\nDuration=160\r\n"),
            );
        }
        out
    }

    fn bye(&mut self, rig: &mut Rig) {
        self.in_dialog(rig, "BYE", "", "");
    }
}

/// The Refer-To of the REFER among `out`.
fn refer_to(out: &[Message]) -> String {
    out.iter()
        .filter_map(request)
        .find(|r| r.method.as_str() == "REFER")
        .and_then(|r| r.header(&HeaderName::REFER_TO))
        .unwrap_or_else(|| panic!("no REFER in {out:?}"))
        .to_owned()
}

const CODE_FLOW: &str = r#"
name = "codes"
start = "ask"

[nodes.ask]
type = "keypad"
prompt = "enter_code"
save_as = "code"
min_digits = 6
max_digits = 6
secret = true
lockout = "codes"
locked = "locked"
done = "check"
no_input = "bye"
invalid = "bye"

[nodes.check]
type = "condition"
variable = "code"
lockout = "codes"
cases = [{ operator = "EqualTo", value = "101010", exit = "vip" }]
default = "normal"

[nodes.vip]
type = "transfer"
target = "sip:vip@127.0.0.2:5070"
headers = { X-Concierge-Tier = "gold" }
mode = "refer"

[nodes.normal]
type = "transfer"
target = "sip:normal@127.0.0.2:5070"
mode = "refer"

[nodes.locked]
type = "transfer"
target = "sip:normal@127.0.0.2:5070"
mode = "refer"

[nodes.bye]
type = "hangup"
"#;

/// A call from `number` that keys `code`: where the REFER sends it.
fn code_call(rig: &mut Rig, id: &str, number: &str, code: &str) -> String {
    let mut call = Call::answered(rig, id, &format!("sip:{number}@127.0.0.1"), "");
    let out = if code.is_empty() {
        std::mem::take(&mut call.after_ack)
    } else {
        call.keys(rig, code)
    };
    let target = refer_to(&out);
    call.bye(rig);
    target
}

#[test]
fn five_wrong_codes_lock_the_number_but_not_another_and_the_lock_ends_with_its_window() {
    let mut rig = Rig::new(SwitchConfig::default(), CODE_FLOW);
    for i in 0..5 {
        let to = code_call(&mut rig, &format!("a{i}"), "+46700000009", "999999");
        assert!(to.starts_with("<sip:normal@"), "{to}");
    }
    // The right code from the locked number is not even asked for.
    let to = code_call(&mut rig, "a5", "+46700000009", "");
    assert!(to.starts_with("<sip:normal@"), "{to}");
    let rec = rig.record("a5");
    assert_eq!(rec.lockout.as_deref(), Some("codes: number"));
    assert_eq!(rec.path[0].exit.as_deref(), Some("locked"));
    // Another number, from the same address, at the same time: its code works.
    let to = code_call(&mut rig, "b1", "+46700000003", "101010");
    assert!(to.starts_with("<sip:vip@"), "{to}");
    assert_eq!(rig.record("b1").lockout, None);
    // 15 minutes on, the first number's code works again.
    rig.now += LockoutConfig::default().window;
    let to = code_call(&mut rig, "a6", "+46700000009", "101010");
    assert!(to.starts_with("<sip:vip@"), "{to}");
}

#[test]
fn a_lock_that_comes_while_the_caller_types_still_refuses_the_code() {
    let mut rig = Rig::new(
        SwitchConfig {
            lockout: LockoutConfig {
                max_per_number: 1,
                ..LockoutConfig::default()
            },
            ..SwitchConfig::default()
        },
        CODE_FLOW,
    );
    // The right code is being typed when another call from the number fails.
    let mut slow = Call::answered(&mut rig, "slow", "sip:+46700000009@127.0.0.1", "");
    slow.keys(&mut rig, "10101");
    code_call(&mut rig, "fail", "+46700000009", "999999");
    let to = refer_to(&slow.keys(&mut rig, "0"));
    assert!(to.starts_with("<sip:normal@"), "{to}");
}

#[test]
fn an_untrusted_address_is_locked_after_twenty_failures_from_any_numbers() {
    let mut rig = Rig::new(SwitchConfig::default(), CODE_FLOW);
    for i in 0..20 {
        code_call(
            &mut rig,
            &format!("s{i}"),
            &format!("+467000{i:05}"),
            "999999",
        );
    }
    let to = code_call(&mut rig, "s20", "+46799999999", "");
    assert!(to.starts_with("<sip:normal@"), "{to}");
    assert_eq!(rig.record("s20").lockout.as_deref(), Some("codes: source"));
}

#[test]
fn secret_keys_are_stars_in_the_record() {
    let mut rig = Rig::new(SwitchConfig::default(), CODE_FLOW);
    code_call(&mut rig, "d1", "+46700000009", "101010");
    let rec = rig.record("d1");
    assert_eq!(rec.digits, vec![('*', "info"); 6]);
    assert!(rec.variables.contains(&("code".into(), "***".into())));
    let json = serde_json::to_string(rec).unwrap();
    assert!(!json.contains("101010"), "{json}");
}

#[test]
fn keys_of_a_keypad_that_is_not_secret_are_recorded() {
    let echo = CODE_FLOW.replace("secret = true\n", "");
    let mut rig = Rig::new(SwitchConfig::default(), &echo);
    code_call(&mut rig, "e1", "+46700000009", "999999");
    let digits: String = rig.record("e1").digits.iter().map(|d| d.0).collect();
    assert_eq!(digits, "999999");
}

const ANSWER_AND_HANG_UP: &str = r#"
name = "hold"
start = "ask"

[nodes.ask]
type = "keypad"
prompt = "x"
save_as = "x"
max_digits = 1
done = "bye"
no_input = "bye"
invalid = "bye"

[nodes.bye]
type = "hangup"
"#;

fn loopback_trusted() -> SwitchConfig {
    SwitchConfig {
        trusted_peers: TrustedPeers::parse(["127.0.0.0/8"]).unwrap(),
        ..SwitchConfig::default()
    }
}

#[test]
fn pai_from_an_untrusted_peer_is_ignored_and_from_is_only_claimed() {
    let mut rig = Rig::new(SwitchConfig::default(), ANSWER_AND_HANG_UP);
    let pai =
        "P-Asserted-Identity: <sip:+46700000002@evil.example;verstat=TN-Validation-Passed>\r\n";
    Call::answered(&mut rig, "u1", "sip:anonymous@anonymous.invalid", pai).bye(&mut rig);
    let rec = rig.record("u1");
    assert_eq!((rec.caller.as_str(), rec.verified), ("", false));
    assert_eq!(rec.verstat, None);
    Call::answered(&mut rig, "u2", "sip:0046-70-617-07-86@x", "").bye(&mut rig);
    let rec = rig.record("u2");
    assert_eq!((rec.caller.as_str(), rec.verified), ("+46706170786", false));
}

#[test]
fn pai_from_a_trusted_peer_is_the_verified_caller_with_its_verstat() {
    let mut rig = Rig::new(loopback_trusted(), ANSWER_AND_HANG_UP);
    let pai =
        "P-Asserted-Identity: <sip:+46706170786@trunk;user=phone;verstat=TN-Validation-Passed>\r\n";
    Call::answered(&mut rig, "t1", "sip:anonymous@anonymous.invalid", pai).bye(&mut rig);
    let rec = rig.record("t1");
    assert_eq!((rec.caller.as_str(), rec.verified), ("+46706170786", true));
    assert_eq!(rec.verstat.as_deref(), Some("TN-Validation-Passed"));
}

const BRIDGE_FLOW: &str = r#"
name = "bridge"
start = "go"

[nodes.go]
type = "transfer"
target = "sip:queue@127.0.0.2:5070"
mode = "bridge"
"#;

/// The INVITE the bridge sends the queue for a caller with `from` and `extra` headers.
fn leg_invite(cfg: SwitchConfig, from: &str, extra: &str) -> Request {
    let mut rig = Rig::new(cfg, BRIDGE_FLOW);
    Call::answered(&mut rig, "br", from, extra);
    rig.sent_to_others()
        .iter()
        .filter_map(request)
        .find(|r| r.method.as_str() == "INVITE")
        .expect("the leg's INVITE")
        .clone()
}

#[test]
fn a_bridge_leg_asserts_only_a_verified_number_and_respects_privacy() {
    let pai = "P-Asserted-Identity: <sip:+46706170786@trunk>\r\n";
    let pai_header = HeaderName::P_ASSERTED_IDENTITY;
    // Untrusted: the stranger's PAI is not forwarded; From carries the claimed number.
    let leg = leg_invite(SwitchConfig::default(), "sip:+46700000003@x", pai);
    assert_eq!(leg.header(&pai_header), None);
    assert_eq!(leg.from.uri.user(), Some("+46700000003"));
    // Trusted: the asserted number is From and PAI.
    let leg = leg_invite(loopback_trusted(), "sip:anonymous@anonymous.invalid", pai);
    assert_eq!(leg.from.uri.user(), Some("+46706170786"));
    assert_eq!(
        leg.header(&pai_header),
        Some("<sip:+46706170786@127.0.0.1>")
    );
    // Privacy: id: the number is used but not passed on.
    let private = format!("{pai}Privacy: id\r\n");
    let leg = leg_invite(
        loopback_trusted(),
        "sip:anonymous@anonymous.invalid",
        &private,
    );
    assert_eq!(leg.from.uri.user(), Some("anonymous"));
    assert_eq!(leg.header(&pai_header), None);
    assert_eq!(leg.header(&HeaderName::new("Privacy")), Some("id"));
    let text = String::from_utf8(leg.to_bytes().to_vec()).unwrap();
    assert!(!text.contains("46706170786"), "{text}");
}

#[test]
fn a_refer_carrying_flow_variables_is_signed() {
    let cfg = SwitchConfig {
        transfer_signer: Some(TransferSigner::new(b"test key".to_vec(), 120)),
        ..SwitchConfig::default()
    };
    let mut rig = Rig::new(cfg, CODE_FLOW);
    let to = code_call(&mut rig, "k1", "+46700000009", "101010");
    assert!(to.contains("X-Concierge-Tier=gold"), "{to}");
    assert!(to.contains("&X-Concierge-Call-Id=k1&X-Concierge-Caller=+46700000009&X-Concierge-Token=v1%3Bexp%3D1800000120%3Bh%3Dx-concierge-tier%2Cx-concierge-call-id%2Cx-concierge-caller%3Bsig%3D"), "{to}");
    // A transfer without variables carries nothing to sign.
    let to = code_call(&mut rig, "k2", "+46700000009", "999999");
    assert_eq!(to, "<sip:normal@127.0.0.2:5070>");
}
