//! Carrier signalling through a [`Switch`] in virtual time: reliable 18x and PRACK
//! (RFC 3262), session timers (RFC 4028), UPDATE (RFC 3311) and early media. A scripted
//! carrier gateway on one side, the switch's outputs on the other; no sockets, no sleeps.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use concierge_b2bua::SwitchConfig;
use concierge_sip::dialog::session_timer::SessionTimerConfig;
use concierge_sip::wire::{HeaderName, Message, Request, Response};

mod testkit;

use testkit::Kit;

/// The testkit with one scripted carrier gateway: what the switch sends it comes back from
/// `send`, `drain` and `advance`; everything else is the kit's (through `Deref`).
struct Rig {
    kit: Kit,
    phone: SocketAddr,
}

testkit::rig_derefs_to_kit!(Rig);

impl Rig {
    fn with(cfg: SwitchConfig, program: concierge_b2bua::Program) -> Self {
        Self {
            kit: Kit::with(SwitchConfig { seed: 9, ..cfg }, program),
            phone: "127.0.0.1:5061".parse().unwrap(),
        }
    }

    fn new() -> Self {
        Self::with(SwitchConfig::default(), Default::default())
    }

    fn send(&mut self, text: &str) -> Vec<Message> {
        let phone = self.phone;
        self.kit.sip_from(phone, text);
        self.drain()
    }

    /// What the switch sent the gateway since it last looked.
    fn drain(&mut self) -> Vec<Message> {
        let phone = self.phone;
        self.kit.inbox(phone)
    }

    /// Advances virtual time by `by`, firing every deadline on the way; each message
    /// comes with the time (since `from`) it left.
    fn advance_timed(&mut self, by: Duration, from: Instant) -> Vec<(Duration, Message)> {
        self.kit.advance(by);
        let phone = self.phone;
        self.kit
            .take_sent_full(|s| s.to == phone)
            .into_iter()
            .map(|s| (s.at.saturating_duration_since(from), s.message))
            .collect()
    }

    fn advance(&mut self, by: Duration) -> Vec<Message> {
        let from = self.now;
        self.advance_timed(by, from)
            .into_iter()
            .map(|(_, m)| m)
            .collect()
    }

    /// When each RTP packet the switch sent left.
    fn rtp_out(&self) -> Vec<Instant> {
        self.kit.rtp.iter().map(|p| p.at).collect()
    }

    /// Takes the SIP the switch sent to anyone but the gateway (the bridge target).
    fn take_others(&mut self) -> Vec<Message> {
        let phone = self.phone;
        self.kit.take_sent(|s| s.to != phone)
    }
}

fn response(m: &Message) -> &Response {
    match m {
        Message::Response(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn request(m: &Message) -> &Request {
    match m {
        Message::Request(r) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn codes(out: &[Message]) -> Vec<u16> {
    out.iter()
        .filter_map(|m| match m {
            Message::Response(r) => Some(r.status.0),
            _ => None,
        })
        .collect()
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\n";
const SDP_MOVED: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4100 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";

/// An INVITE from a carrier gateway with `extra` header lines and an SDP offer.
fn invite(extra: &str) -> String {
    format!(
        "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKinv;rport\r\nFrom: <sip:+46706170786@127.0.0.1>;tag=gw\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: carrier1\r\nCSeq: 1 INVITE\r\nContact: <sip:gw@127.0.0.1:5061>\r\nMax-Forwards: 70\r\n{extra}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

fn in_dialog(method: &str, seq: u32, tag: &str, extra: &str, body: &str) -> String {
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    format!(
        "{method} sip:concierge@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK{method}{seq};rport\r\nFrom: <sip:+46706170786@127.0.0.1>;tag=gw\r\nTo: <sip:ivr@127.0.0.1>;tag={tag}\r\nCall-ID: carrier1\r\nCSeq: {seq} {method}\r\nContact: <sip:gw@127.0.0.1:5061>\r\n{extra}{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn ack(tag: &str) -> String {
    in_dialog("ACK", 1, tag, "", "")
}

/// Our answer to a request of the switch, with `extra` header lines.
fn reply(req: &Request, code: u16, extra: &str) -> String {
    let mut r = concierge_sip::wire::response_to(req, concierge_sip::wire::StatusCode(code), None);
    r.reason = String::new();
    let text = String::from_utf8(r.to_bytes().to_vec()).unwrap();
    text.replacen("Content-Length", &format!("{extra}Content-Length"), 1)
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers.get(&HeaderName::new(name))
}

fn find_response(out: &[Message], code: u16, method: &str) -> Response {
    out.iter()
        .filter_map(|m| match m {
            Message::Response(r) if r.status.0 == code && r.cseq.method.as_str() == method => {
                Some(r.clone())
            }
            _ => None,
        })
        .next()
        .unwrap_or_else(|| panic!("no {code} to {method} in {out:?}"))
}

/// Session intervals of seconds (min 2), and no media-inactivity timeout: the scripted
/// gateway sends no RTP, and these tests are about signalling alone.
fn short_timers() -> SwitchConfig {
    SwitchConfig {
        session_timer: SessionTimerConfig {
            min_se: 2,
            ..SessionTimerConfig::default()
        },
        media_timeout: Duration::ZERO,
        ..SwitchConfig::default()
    }
}

// ---- RFC 3262 ---------------------------------------------------------------------

#[test]
fn require_100rel_gets_a_reliable_180_and_the_200_waits_for_the_prack() {
    let mut rig = Rig::new();
    let out = rig.send(&invite("Require: 100rel\r\nSupported: 100rel\r\n"));
    assert_eq!(codes(&out), vec![180], "the 200 waits for the PRACK");
    let ringing = response(&out[0]).clone();
    assert_eq!(header(&ringing, "Require"), Some("100rel"));
    let rseq: u32 = header(&ringing, "RSeq").unwrap().parse().unwrap();
    assert!((1..1 << 31).contains(&rseq));
    let tag = ringing.to.tag().unwrap().to_owned();

    let again = rig.advance(Duration::from_millis(500));
    assert_eq!(codes(&again), vec![180], "retransmitted at T1");
    assert_eq!(
        header(response(&again[0]), "RSeq"),
        Some(rseq.to_string().as_str())
    );

    let out = rig.send(&in_dialog(
        "PRACK",
        2,
        &tag,
        &format!("RAck: {rseq} 1 INVITE\r\n"),
        "",
    ));
    find_response(&out, 200, "PRACK");
    let ok = find_response(&out, 200, "INVITE");
    assert!(!ok.body.is_empty(), "the 200 carries the SDP answer");
    rig.send(&ack(&tag));
    assert!(
        codes(&rig.advance(Duration::from_secs(10))).is_empty(),
        "no 180 after its PRACK, no 200 after the ACK"
    );
}

#[test]
fn without_a_prack_the_180_is_retransmitted_then_the_invite_fails_with_504() {
    let mut rig = Rig::new();
    let t0 = rig.now;
    rig.send(&invite("Require: 100rel\r\n"));
    let out = rig.advance_timed(Duration::from_secs(40), t0);
    let resent: Vec<u128> = out
        .iter()
        .filter(|(_, m)| response(m).status.0 == 180)
        .map(|(t, _)| t.as_millis())
        .collect();
    assert_eq!(resent, vec![500, 1500, 3500, 7500, 15_500, 31_500]);
    let (at, failed) = out
        .iter()
        .find(|(_, m)| response(m).status.0 == 504)
        .expect("504 after 64·T1");
    assert_eq!(at.as_millis(), 32_000);
    assert_eq!(response(failed).cseq.method.as_str(), "INVITE");
    assert!(!out.iter().any(|(_, m)| response(m).status.0 == 200));
    let rec = &rig.records[0];
    assert_eq!(
        (rec.ended_by.as_str(), rec.reason.as_str()),
        ("network", "no PRACK for a reliable provisional response")
    );
}

#[test]
fn a_prack_that_matches_nothing_gets_481() {
    let mut rig = Rig::new();
    let out = rig.send(&invite("Require: 100rel\r\n"));
    let ringing = response(&out[0]).clone();
    let tag = ringing.to.tag().unwrap().to_owned();
    let rseq: u32 = header(&ringing, "RSeq").unwrap().parse().unwrap();
    let out = rig.send(&in_dialog(
        "PRACK",
        2,
        &tag,
        &format!("RAck: {} 1 INVITE\r\n", rseq + 5),
        "",
    ));
    assert_eq!(codes(&out), vec![481]);
    let out = rig.send(&in_dialog("PRACK", 3, &tag, "RAck: banana\r\n", ""));
    assert_eq!(codes(&out), vec![400]);
}

#[test]
fn a_caller_that_only_supports_100rel_gets_it_when_the_config_prefers_it() {
    let mut rig = Rig::new();
    let out = rig.send(&invite("Supported: 100rel\r\n"));
    assert_eq!(codes(&out), vec![180, 200], "not preferred by default");
    assert_eq!(header(response(&out[0]), "RSeq"), None);

    let mut rig = Rig::with(
        SwitchConfig {
            prefer_100rel: true,
            ..SwitchConfig::default()
        },
        Default::default(),
    );
    let out = rig.send(&invite("Supported: 100rel\r\n"));
    assert_eq!(codes(&out), vec![180]);
    assert!(header(response(&out[0]), "RSeq").is_some());
}

// ---- RFC 4028 ---------------------------------------------------------------------

#[test]
fn require_timer_90_is_answered_with_session_expires_and_require_timer() {
    let mut rig = Rig::new();
    let out = rig.send(&invite(
        "Supported: timer\r\nRequire: timer\r\nSession-Expires: 90\r\n",
    ));
    let ok = find_response(&out, 200, "INVITE");
    assert_eq!(header(&ok, "Session-Expires"), Some("90;refresher=uac"));
    assert_eq!(header(&ok, "Require"), Some("timer"));
    let supported = header(&ok, "Supported").unwrap();
    assert!(supported.contains("timer") && supported.contains("100rel"));
    let allow = header(&ok, "Allow").unwrap();
    assert!(allow.contains("UPDATE") && allow.contains("PRACK"));
}

#[test]
fn session_expires_below_our_minimum_is_422_with_min_se() {
    let mut rig = Rig::new();
    let out = rig.send(&invite("Supported: timer\r\nSession-Expires: 30\r\n"));
    assert_eq!(codes(&out), vec![422]);
    assert_eq!(header(response(&out[0]), "Min-SE"), Some("90"));
    assert!(rig.records.is_empty(), "refused before a call existed");
}

#[test]
fn a_caller_refresher_that_stops_refreshing_gets_our_bye() {
    let mut rig = Rig::with(short_timers(), Default::default());
    let out = rig.send(&invite(
        "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n",
    ));
    let tag = find_response(&out, 200, "INVITE")
        .to
        .tag()
        .unwrap()
        .to_owned();
    rig.send(&ack(&tag));
    // A refresh at 40 s restarts the interval.
    rig.advance(Duration::from_secs(40));
    let out = rig.send(&in_dialog(
        "UPDATE",
        2,
        &tag,
        "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n",
        "",
    ));
    let ok = find_response(&out, 200, "UPDATE");
    assert_eq!(header(&ok, "Session-Expires"), Some("90;refresher=uac"));
    let t_refresh = rig.now;
    let out = rig.advance_timed(Duration::from_secs(59), t_refresh);
    assert!(out.is_empty(), "nothing before 90 − 30 s: {out:?}");
    let out = rig.advance_timed(Duration::from_secs(2), t_refresh);
    let (at, bye) = &out[0];
    assert_eq!(request(bye).method.as_str(), "BYE");
    assert_eq!(at.as_secs(), 60, "interval − min(32, interval/3)");
    rig.send(&reply(request(bye), 200, ""));
    let rec = &rig.records[0];
    assert_eq!(
        (rec.ended_by.as_str(), rec.reason.as_str()),
        ("network", "session expired: no refresh (RFC 4028)")
    );
}

#[test]
fn as_refresher_we_send_update_at_half_the_interval() {
    let mut rig = Rig::with(short_timers(), Default::default());
    let out = rig.send(&invite(
        "Allow: INVITE, ACK, BYE, CANCEL, UPDATE, PRACK\r\nSupported: timer\r\nSession-Expires: 4;refresher=uas\r\n",
    ));
    let ok = find_response(&out, 200, "INVITE");
    assert_eq!(header(&ok, "Session-Expires"), Some("4;refresher=uas"));
    let tag = ok.to.tag().unwrap().to_owned();
    rig.send(&ack(&tag));
    let t0 = rig.now;
    let out = rig.advance_timed(Duration::from_millis(2500), t0);
    assert!(
        out.iter()
            .all(|(_, m)| request(m).method.as_str() == "UPDATE"),
        "only the refresh (and its retransmission at T1)"
    );
    let (at, update) = &out[0];
    let update = request(update).clone();
    assert_eq!(update.method.as_str(), "UPDATE");
    assert_eq!(at.as_millis(), 2000, "half of 4 s");
    assert!(update.body.is_empty(), "a refresh without an offer");
    assert_eq!(
        update.headers.get(&HeaderName::SESSION_EXPIRES),
        Some("4;refresher=uac")
    );
    rig.send(&reply(&update, 200, "Session-Expires: 4;refresher=uac\r\n"));
    // The next one comes two seconds after the answer, and the call goes on.
    let t1 = rig.now;
    let out = rig.advance_timed(Duration::from_millis(2500), t1);
    assert_eq!(request(&out[0].1).method.as_str(), "UPDATE");
    assert_eq!(out[0].0.as_millis(), 2000);
    assert!(rig.records.is_empty());
}

#[test]
fn without_update_in_allow_we_refresh_by_reinvite_and_ack_its_200() {
    let mut rig = Rig::with(short_timers(), Default::default());
    let out = rig.send(&invite(
        "Supported: timer\r\nSession-Expires: 4;refresher=uas\r\n",
    ));
    let tag = find_response(&out, 200, "INVITE")
        .to
        .tag()
        .unwrap()
        .to_owned();
    rig.send(&ack(&tag));
    let out = rig.advance(Duration::from_secs(2));
    let reinvite = request(&out[0]).clone();
    assert_eq!(reinvite.method.as_str(), "INVITE");
    assert!(
        !reinvite.body.is_empty(),
        "a re-INVITE offers our SDP unchanged"
    );
    // Glare: the caller's offer crossing ours gets 491.
    let crossing = rig.send(&in_dialog("UPDATE", 2, &tag, "", SDP_MOVED));
    assert_eq!(codes(&crossing), vec![491]);
    let out = rig.send(&reply(
        &reinvite,
        200,
        "Session-Expires: 4;refresher=uac\r\n",
    ));
    let ack = request(&out[0]).clone();
    assert_eq!(ack.method.as_str(), "ACK");
    assert_eq!(ack.cseq.seq, reinvite.cseq.seq);
    // The ACK was lost: the retransmitted 200 gets it again.
    let out = rig.send(&reply(
        &reinvite,
        200,
        "Session-Expires: 4;refresher=uac\r\n",
    ));
    assert_eq!(request(&out[0]).method.as_str(), "ACK");
    assert_eq!(request(&out[0]).cseq.seq, reinvite.cseq.seq);
}

#[test]
fn a_refresh_nobody_answers_ends_the_call() {
    let mut rig = Rig::with(short_timers(), Default::default());
    let out = rig.send(&invite(
        "Allow: UPDATE\r\nSupported: timer\r\nSession-Expires: 4;refresher=uas\r\n",
    ));
    let tag = find_response(&out, 200, "INVITE")
        .to
        .tag()
        .unwrap()
        .to_owned();
    rig.send(&ack(&tag));
    let out = rig.advance(Duration::from_secs(40));
    assert!(out
        .iter()
        .any(|m| matches!(m, Message::Request(r) if r.method.as_str() == "BYE")));
    let bye = out
        .iter()
        .rev()
        .find_map(|m| match m {
            Message::Request(r) if r.method.as_str() == "BYE" => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    rig.send(&reply(&bye, 200, ""));
    assert_eq!(rig.records.len(), 1);
    assert_eq!(rig.records[0].ended_by.as_str(), "network");
}

// ---- RFC 3311 ---------------------------------------------------------------------

#[test]
fn update_with_an_offer_mid_call_gets_an_sdp_answer() {
    let mut rig = Rig::new();
    let out = rig.send(&invite(""));
    let ok = find_response(&out, 200, "INVITE");
    let tag = ok.to.tag().unwrap().to_owned();
    rig.send(&ack(&tag));
    let out = rig.send(&in_dialog("UPDATE", 2, &tag, "", SDP_MOVED));
    let answer = find_response(&out, 200, "UPDATE");
    let body = String::from_utf8_lossy(&answer.body);
    assert!(
        !body.contains("m=audio 4100") && body.contains("m=audio"),
        "our answer: {body}"
    );
    assert_eq!(header(&answer, "Content-Type"), Some("application/sdp"));
    // Without SDP: a plain 200 (a refresh), no body.
    let out = rig.send(&in_dialog("UPDATE", 3, &tag, "", ""));
    let plain = find_response(&out, 200, "UPDATE");
    assert!(plain.body.is_empty());
    // Stale CSeq is refused as any in-dialog request.
    let stale = in_dialog("UPDATE", 3, &tag, "", "").replace("z9hG4bKUPDATE3", "z9hG4bKstale");
    assert_eq!(codes(&rig.send(&stale)), vec![500]);
}

#[test]
fn update_in_the_early_dialog() {
    let mut rig = Rig::with(
        SwitchConfig {
            answer_after: Duration::from_secs(10),
            ..SwitchConfig::default()
        },
        Default::default(),
    );
    let out = rig.send(&invite(""));
    assert_eq!(codes(&out), vec![180]);
    let tag = response(&out[0]).to.tag().unwrap().to_owned();
    let out = rig.send(&in_dialog("UPDATE", 2, &tag, "", ""));
    assert_eq!(
        codes(&out),
        vec![200],
        "an UPDATE without offer in the early dialog"
    );
    // The INVITE's offer has no reliable answer yet (an unreliable 180): §5.2 says 500.
    let out = rig.send(&in_dialog("UPDATE", 3, &tag, "", SDP_MOVED));
    assert_eq!(codes(&out), vec![500]);
    assert!(header(response(&out[0]), "Retry-After").is_some());
    // RFC 3261 §14.2: no re-INVITE before the first INVITE is answered.
    let out = rig.send(&in_dialog("INVITE", 4, &tag, "", SDP_MOVED));
    assert_eq!(codes(&out), vec![500]);
    let out = rig.advance(Duration::from_secs(11));
    let ok = find_response(&out, 200, "INVITE");
    assert_eq!(ok.cseq.seq, 1, "the call is answered as configured");
}

#[test]
fn a_bye_in_the_early_dialog_ends_the_call_with_487() {
    let mut rig = Rig::with(
        SwitchConfig {
            answer_after: Duration::from_secs(10),
            ..SwitchConfig::default()
        },
        Default::default(),
    );
    let out = rig.send(&invite(""));
    let tag = response(&out[0]).to.tag().unwrap().to_owned();
    let out = rig.send(&in_dialog("BYE", 2, &tag, "", ""));
    assert_eq!(codes(&out), vec![200, 487]);
    assert_eq!(rig.records.len(), 1);
}

// ---- Early media ------------------------------------------------------------------

const EARLY_FLOW: &str = r#"
name = "announce"
start = "welcome"
early_media = true

[nodes.welcome]
type = "play"
prompts = ["welcome"]
next = "menu"

[nodes.menu]
type = "keypad"
prompt = "welcome"
save_as = "choice"
max_digits = 1
done = "bye"
no_input = "bye"
invalid = "bye"

[nodes.bye]
type = "hangup"
"#;

fn early_program(flow: &str) -> concierge_b2bua::Program {
    let loaded = concierge_flow::parse_flow(std::path::Path::new("t.toml"), flow, &|_| true)
        .expect("a valid flow");
    let mut prompts = concierge_prompts::Catalogue::default();
    prompts.insert(concierge_prompts::Prompt::from_pcm(
        "welcome",
        vec![0i16; 8000],
    ));
    concierge_b2bua::Program {
        default_flow: Some(loaded.flow),
        prompts,
        ..Default::default()
    }
}

#[test]
fn early_media_plays_the_prompt_in_a_reliable_183_and_answers_for_the_keypad() {
    let mut rig = Rig::with(SwitchConfig::default(), early_program(EARLY_FLOW));
    let out = rig.send(&invite("Require: 100rel\r\n"));
    assert_eq!(codes(&out), vec![183]);
    let progress = response(&out[0]).clone();
    assert_eq!(header(&progress, "Require"), Some("100rel"));
    assert!(String::from_utf8_lossy(&progress.body).contains("m=audio"));
    let tag = progress.to.tag().unwrap().to_owned();
    let rseq = header(&progress, "RSeq").unwrap().to_owned();
    // The PRACK carries a new offer (RFC 3262 §5): its 200 answers it.
    let out = rig.send(&in_dialog(
        "PRACK",
        2,
        &tag,
        &format!("RAck: {rseq} 1 INVITE\r\n"),
        SDP_MOVED,
    ));
    assert_eq!(codes(&out), vec![200]);
    assert!(String::from_utf8_lossy(&response(&out[0]).body).contains("m=audio"));

    // The one-second prompt plays before any 200.
    let out = rig.advance(Duration::from_millis(900));
    assert!(
        codes(&out).is_empty(),
        "no 200 while the prompt plays: {out:?}"
    );
    assert!(
        rig.rtp_out().len() >= 40,
        "RTP before the answer: {}",
        rig.rtp_out().len()
    );
    // An UPDATE with an offer is answered in the early dialog (the 183 was reliable).
    let out = rig.send(&in_dialog("UPDATE", 3, &tag, "", SDP_MOVED));
    let answer = find_response(&out, 200, "UPDATE");
    assert!(String::from_utf8_lossy(&answer.body).contains("m=audio"));
    // The keypad needs the call answered.
    let out = rig.advance(Duration::from_millis(300));
    let ok = find_response(&out, 200, "INVITE");
    assert_eq!(ok.to.tag(), Some(tag.as_str()));
    let answered_at = rig.now;
    rig.send(&ack(&tag));
    rig.advance(Duration::from_millis(200));
    assert!(
        rig.rtp_out().iter().any(|t| *t >= answered_at),
        "the keypad prompt plays after the ACK"
    );
}

#[test]
fn early_media_announcement_then_hangup_never_answers() {
    let flow = r#"
name = "closed"
start = "closed"
early_media = true

[nodes.closed]
type = "hangup"
prompt = "welcome"
"#;
    let mut rig = Rig::with(SwitchConfig::default(), early_program(flow));
    let out = rig.send(&invite(""));
    assert_eq!(codes(&out), vec![183], "unreliable 183 without 100rel");
    assert_eq!(header(response(&out[0]), "RSeq"), None);
    let out = rig.advance(Duration::from_secs(2));
    let codes = codes(&out);
    assert_eq!(codes[0], 480, "the announcement, then a rejection");
    assert!(codes.iter().all(|c| *c == 480), "never a 200: {codes:?}");
    assert!(rig.rtp_out().len() >= 45);
    assert!(rig.records[0].answered_ms.is_none());
}

// ---- RFC 4028 on the bridge leg ----------------------------------------------------

const BRIDGE_FLOW: &str = r#"
name = "bridge"
start = "xfer"

[nodes.xfer]
type = "transfer"
target = "sip:queue@127.0.0.2:5070"
mode = "bridge"
failed = "bye"

[nodes.bye]
type = "hangup"
"#;

const QUEUE_SDP: &str = "v=0\r\no=- 2 2 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 7000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";

/// The target's answer to `req`: its tag, Contact, `extra` headers and `sdp`.
fn queue_reply(req: &Request, code: u16, extra: &str, sdp: &str) -> String {
    let mut r =
        concierge_sip::wire::response_to(req, concierge_sip::wire::StatusCode(code), Some("q1"));
    r.reason = String::new();
    let mut text = String::from_utf8(r.to_bytes().to_vec()).unwrap();
    let body_at = text.find("Content-Length").unwrap();
    text.truncate(body_at);
    let ct = if sdp.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{text}{extra}Contact: <sip:agent@127.0.0.2:5070>\r\n{ct}Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// What the switch sent to the target since the last call.
fn to_queue(rig: &mut Rig) -> Vec<Request> {
    rig.take_others()
        .into_iter()
        .map(|m| request(&m).clone())
        .collect()
}

/// A caller answered and bridged: returns the leg's INVITE (not yet answered).
fn bridging(rig: &mut Rig) -> Request {
    let out = rig.send(&invite(""));
    let tag = find_response(&out, 200, "INVITE")
        .to
        .tag()
        .unwrap()
        .to_owned();
    rig.send(&ack(&tag));
    let sent = to_queue(rig);
    assert_eq!(sent.len(), 1, "{sent:?}");
    sent[0].clone()
}

#[test]
fn the_bridge_leg_offers_a_session_timer_and_refreshes_when_the_target_makes_us_refresher() {
    let mut rig = Rig::with(short_timers(), early_program(BRIDGE_FLOW));
    let leg_invite = bridging(&mut rig);
    assert_eq!(leg_invite.method.as_str(), "INVITE");
    assert_eq!(
        leg_invite.headers.get(&HeaderName::SESSION_EXPIRES),
        Some("1800")
    );
    assert_eq!(leg_invite.headers.get(&HeaderName::MIN_SE), Some("2"));
    assert_eq!(
        leg_invite.headers.get(&HeaderName::SUPPORTED),
        Some("timer")
    );
    rig.send(&queue_reply(
        &leg_invite,
        200,
        "Session-Expires: 4;refresher=uac\r\nRequire: timer\r\nAllow: INVITE, ACK, BYE, UPDATE\r\n",
        QUEUE_SDP,
    ));
    let acked = to_queue(&mut rig);
    assert_eq!(acked[0].method.as_str(), "ACK");
    let t0 = rig.now;
    rig.advance_timed(Duration::from_millis(2500), t0);
    let sent = to_queue(&mut rig);
    let update = &sent[0];
    assert_eq!(update.method.as_str(), "UPDATE", "refresh at half of 4 s");
    assert_eq!(
        update.headers.get(&HeaderName::SESSION_EXPIRES),
        Some("4;refresher=uac")
    );
    rig.send(&queue_reply(
        update,
        200,
        "Session-Expires: 4;refresher=uac\r\n",
        "",
    ));
    assert!(rig.records.is_empty(), "the bridged call goes on");
    // From now on the target stays silent: the next refresh gets no answer and the leg's
    // session expires (4 s less 4/3 s after the last refresh); both legs end.
    let out = rig.advance(Duration::from_secs(3));
    let bye = out
        .iter()
        .find_map(|m| match m {
            Message::Request(r) if r.method.as_str() == "BYE" => Some(r.clone()),
            _ => None,
        })
        .expect("the caller gets a BYE");
    assert!(to_queue(&mut rig)
        .iter()
        .any(|r| r.method.as_str() == "BYE"));
    rig.send(&reply(&bye, 200, ""));
    assert_eq!(
        rig.records[0].reason,
        "bridge leg session expired: no refresh (RFC 4028)"
    );
}

#[test]
fn the_bridge_leg_answers_422_with_the_targets_min_se() {
    let mut rig = Rig::with(SwitchConfig::default(), early_program(BRIDGE_FLOW));
    let leg_invite = bridging(&mut rig);
    rig.send(&queue_reply(&leg_invite, 422, "Min-SE: 3600\r\n", ""));
    let sent = to_queue(&mut rig);
    let again = sent
        .iter()
        .find(|r| r.method.as_str() == "INVITE")
        .expect("INVITE again");
    assert_eq!(
        again.headers.get(&HeaderName::SESSION_EXPIRES),
        Some("3600")
    );
    assert_eq!(again.cseq.seq, leg_invite.cseq.seq + 1);
    // A second 422 is not chased: the transfer fails.
    rig.send(&queue_reply(again, 422, "Min-SE: 7200\r\n", ""));
    assert!(to_queue(&mut rig)
        .iter()
        .all(|r| r.method.as_str() == "ACK"));
}

#[test]
fn the_targets_refresh_on_the_bridge_leg_is_answered_with_session_expires() {
    let mut rig = Rig::with(short_timers(), early_program(BRIDGE_FLOW));
    let leg_invite = bridging(&mut rig);
    rig.send(&queue_reply(
        &leg_invite,
        200,
        "Session-Expires: 4;refresher=uas\r\nRequire: timer\r\n",
        QUEUE_SDP,
    ));
    to_queue(&mut rig);
    let from_q = leg_invite.from.tag().unwrap().to_owned();
    let update = format!(
        "UPDATE sip:concierge@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKqupd\r\nFrom: <sip:queue@127.0.0.2:5070>;tag=q1\r\nTo: {};tag={from_q}\r\nCall-ID: {}\r\nCSeq: 10 UPDATE\r\nSupported: timer\r\nSession-Expires: 4;refresher=uac\r\nContent-Length: 0\r\n\r\n",
        leg_invite.from.to_string().split(";tag=").next().unwrap(),
        leg_invite.call_id,
    );
    rig.sip_from("127.0.0.2:5070".parse().unwrap(), &update);
    rig.drain();
    let answer = rig
        .take_others()
        .into_iter()
        .find_map(|m| match m {
            Message::Response(r) => Some(r),
            _ => None,
        })
        .expect("the UPDATE is answered");
    assert_eq!(answer.status.0, 200);
    assert_eq!(header(&answer, "Session-Expires"), Some("4;refresher=uac"));
    assert!(answer.body.is_empty(), "no offer, no answer");
}

/// A bridged call whose target made us the refresher without allowing UPDATE: 2.5 s on,
/// our refresh re-INVITE is out on the leg. Returns the rig, the leg's INVITE and that
/// re-INVITE.
fn bridge_refreshing_by_reinvite() -> (Rig, Request, Request) {
    let mut rig = Rig::with(short_timers(), early_program(BRIDGE_FLOW));
    let leg_invite = bridging(&mut rig);
    rig.send(&queue_reply(
        &leg_invite,
        200,
        "Session-Expires: 4;refresher=uac\r\nRequire: timer\r\nAllow: INVITE, ACK, BYE\r\n",
        QUEUE_SDP,
    ));
    to_queue(&mut rig);
    rig.advance(Duration::from_millis(2500));
    let reinvite = to_queue(&mut rig)
        .into_iter()
        .find(|r| r.method.as_str() == "INVITE")
        .expect("our refresh re-INVITE on the leg");
    assert_eq!(reinvite.cseq.seq, leg_invite.cseq.seq + 1);
    (rig, leg_invite, reinvite)
}

/// A request of the target in the bridge leg's dialog.
fn from_queue(leg_invite: &Request, method: &str, seq: u32, body: &str) -> String {
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} sip:concierge@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKq{method}{seq}\r\nFrom: <sip:queue@127.0.0.2:5070>;tag=q1\r\nTo: {};tag={}\r\nCall-ID: {}\r\nCSeq: {seq} {method}\r\nContact: <sip:agent@127.0.0.2:5070>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        leg_invite.from.to_string().split(";tag=").next().unwrap(),
        leg_invite.from.tag().unwrap(),
        leg_invite.call_id,
        body.len()
    )
}

#[test]
fn a_targets_reinvite_crossing_our_refresh_reinvite_on_the_bridge_leg_gets_491() {
    // RFC 3261 §14.2 (RFC 3311 §5.2): an offer that crosses ours is refused with 491, on
    // the bridge leg as on the caller's.
    let (mut rig, leg_invite, _ours) = bridge_refreshing_by_reinvite();
    rig.sip_from(
        "127.0.0.2:5070".parse().unwrap(),
        &from_queue(&leg_invite, "INVITE", 20, QUEUE_SDP),
    );
    let answers: Vec<u16> = rig
        .take_others()
        .iter()
        .filter_map(|m| match m {
            Message::Response(r) => Some(r.status.0),
            _ => None,
        })
        .collect();
    assert_eq!(answers, [491]);
}

#[test]
fn a_retransmitted_200_to_our_bridge_leg_refresh_is_acked_with_the_refreshs_cseq() {
    // §13.2.2.4: each 2xx retransmission of our re-INVITE is ACKed again — with the
    // re-INVITE's CSeq, not the leg's first INVITE's.
    let (mut rig, _leg_invite, reinvite) = bridge_refreshing_by_reinvite();
    let ok = queue_reply(
        &reinvite,
        200,
        "Session-Expires: 4;refresher=uac\r\n",
        QUEUE_SDP,
    );
    // The 200, then its retransmission: each time one ACK, with the re-INVITE's CSeq.
    for _ in 0..2 {
        rig.sip_from("127.0.0.2:5070".parse().unwrap(), &ok);
        let acks: Vec<u32> = to_queue(&mut rig)
            .iter()
            .filter(|r| r.method.as_str() == "ACK")
            .map(|r| r.cseq.seq)
            .collect();
        assert_eq!(acks, [reinvite.cseq.seq]);
    }
}
