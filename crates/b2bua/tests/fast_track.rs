//! The fast track in the switch, in virtual time: barge-in on an interruptible prompt,
//! comfort audio while a lookup is slow, the lookup cache across calls (stale when the
//! CRM fails), opening hours judged on the switch's wall clock, and a transfer's priority.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use concierge_b2bua::{Program, SwitchConfig};
use concierge_flow::{HttpFailure, HttpResponse};
use concierge_prompts::{Catalogue, Prompt};
use concierge_sip::wire::{Message, Request, Response};

const CALLER_MEDIA: &str = "127.0.0.1:4000";
/// PCMA's silence byte: anything else in a payload is sound.
const SILENCE: u8 = 0xd5;

mod testkit;

use testkit::Kit;

/// The testkit with one scripted phone: the SIP the switch sends (to the phone or a
/// bridge target) comes back from `send`, `drain` and `advance`; everything else is the
/// kit's (through `Deref`).
struct Rig {
    kit: Kit,
    phone: SocketAddr,
}

testkit::rig_derefs_to_kit!(Rig);

impl Rig {
    /// A switch whose wall clock reads `unix_s` now, running `flow` with `prompts`.
    fn new(flow: &str, prompts: Catalogue, unix_s: u64) -> Self {
        let loaded = concierge_flow::parse_flow(std::path::Path::new("t.toml"), flow, &|_| true)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let program = Program {
            default_flow: Some(loaded.flow),
            prompts,
            ..Default::default()
        };
        Self {
            kit: Kit::with_wall(
                SwitchConfig {
                    seed: 7,
                    ..Default::default()
                },
                program,
                unix_s,
            ),
            phone: "127.0.0.1:5061".parse().unwrap(),
        }
    }

    fn send(&mut self, text: &str) -> Vec<Message> {
        let phone = self.phone;
        self.kit.sip_from(phone, text);
        self.drain()
    }

    /// The SIP the switch sent since the last look, to anyone.
    fn drain(&mut self) -> Vec<Message> {
        self.kit.take_sent(|_| true)
    }

    fn advance(&mut self, by: Duration) -> Vec<Message> {
        self.kit.advance(by);
        self.drain()
    }

    /// Packets with sound in them sent at or after `since`.
    fn sound_since(&self, since: Instant) -> usize {
        self.kit
            .rtp
            .iter()
            .filter(|p| p.at >= since && p.packet[12..].iter().any(|b| *b != SILENCE))
            .count()
    }

    fn http_result(&mut self, status: u16, body: &str) -> Vec<Message> {
        self.kit.http_answer(Ok(HttpResponse {
            status,
            body: body.into(),
            latency: Duration::from_millis(3),
            shared: None,
        }));
        self.drain()
    }

    /// The phone answers our BYE, which ends the call (and writes its record).
    fn answer_bye(&mut self, out: &[Message]) {
        let bye = requests(out)
            .into_iter()
            .find(|r| r.method.as_str() == "BYE")
            .expect("a BYE")
            .clone();
        let r = concierge_sip::wire::response_to(&bye, concierge_sip::wire::StatusCode(200), None);
        self.send(std::str::from_utf8(&r.to_bytes()).unwrap());
    }

    fn http_failure(&mut self, failure: HttpFailure) -> Vec<Message> {
        self.kit.http_answer(Err(failure));
        self.drain()
    }

    /// A keypad key by RFC 4733 (payload type 96), one press per distinct `ts`.
    fn key(&mut self, event: u8, ts: u32) -> Vec<Message> {
        let port = self.kit.opened[0];
        let from: SocketAddr = CALLER_MEDIA.parse().unwrap();
        let t = ts.to_be_bytes();
        let packet = [
            0x80,
            0x80 | 96,
            0,
            (ts / 8000) as u8,
            t[0],
            t[1],
            t[2],
            t[3],
            1,
            2,
            3,
            4,
            event,
            0x8a,
            3,
            0x20,
        ];
        self.kit.rtp_in(port, from, &packet);
        self.drain()
    }
}

fn invite(call_id: &str) -> String {
    let sdp = format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\n", &CALLER_MEDIA[10..]);
    format!(
        "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK{call_id};rport\r\nFrom: <sip:+46706170786@127.0.0.1>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:phone@127.0.0.1:5061>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn ack(call_id: &str, tag: &str) -> String {
    format!("ACK sip:concierge@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKack{call_id};rport\r\nFrom: <sip:+46706170786@127.0.0.1>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>;tag={tag}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
}

fn statuses(out: &[Message]) -> Vec<u16> {
    out.iter()
        .filter_map(|m| match m {
            Message::Response(r) => Some(r.status.0),
            _ => None,
        })
        .collect()
}

fn ok_response(out: &[Message]) -> Option<&Response> {
    out.iter().find_map(|m| match m {
        Message::Response(r) if r.status.0 == 200 => Some(r),
        _ => None,
    })
}

fn requests(out: &[Message]) -> Vec<&Request> {
    out.iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// A loud 440 Hz tone of `ms` milliseconds, standing in for speech.
fn tone(name: &str, ms: usize) -> Prompt {
    let pcm = (0..ms * 8)
        .map(|i| ((i as f64 * 440.0 * std::f64::consts::TAU / 8000.0).sin() * 8000.0) as i16)
        .collect();
    Prompt::from_pcm(name, pcm)
}

fn prompts(names: &[(&str, usize)]) -> Catalogue {
    let mut c = Catalogue::default();
    for (n, ms) in names {
        c.insert(tone(n, *ms));
    }
    c
}

const BARGE_IN: &str = r#"
start = "welcome"
[nodes.welcome]
type = "play"
prompts = ["welcome"]
interruptible = true
next = "ask"
[nodes.ask]
type = "keypad"
prompt = "enter_code"
save_as = "code"
max_digits = 4
done = "bye"
no_input = "bye"
invalid = "bye"
[nodes.bye]
type = "hangup"
"#;

#[test]
fn a_key_stops_an_interruptible_prompt_within_40_ms_and_reaches_the_keypad() {
    let mut rig = Rig::new(
        BARGE_IN,
        prompts(&[("welcome", 5000), ("enter_code", 3000)]),
        1_800_000_000,
    );
    let out = rig.send(&invite("b1"));
    let tag = ok_response(&out)
        .expect("answered to play")
        .to
        .tag()
        .unwrap()
        .to_owned();
    rig.send(&ack("b1", &tag));
    rig.advance(Duration::from_millis(1000));
    assert!(
        rig.sound_since(rig.now - Duration::from_millis(900)) > 40,
        "the welcome plays"
    );

    let pressed = rig.now;
    assert!(rig.key(1, 16_000).is_empty());
    rig.advance(Duration::from_millis(500));
    let after = rig.sound_since(pressed);
    assert!(
        after <= 2,
        "{after} packets of sound after the key: more than 40 ms of audio"
    );
    // Neither the welcome's rest nor the keypad's prompt: the key is the keypad's first.
    let mut out = Vec::new();
    for (i, ts) in [(2u8, 24_000u32), (3, 32_000), (11, 40_000)] {
        out.extend(rig.key(i, ts));
    }
    rig.answer_bye(&out);
    let rec = rig.records.last().expect("a record");
    let code = rec
        .variables
        .iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.as_str());
    assert_eq!(code, Some("123"), "the interrupting key reached the keypad");
    assert_eq!(rec.path[0].node, "welcome");
    assert_eq!(rec.path[1].exit.as_deref(), Some("done"));
}

#[test]
fn a_plain_play_is_not_interrupted() {
    let flow = BARGE_IN.replace("interruptible = true\n", "");
    let mut rig = Rig::new(
        &flow,
        prompts(&[("welcome", 2000), ("enter_code", 3000)]),
        0,
    );
    let out = rig.send(&invite("p1"));
    let tag = ok_response(&out).unwrap().to.tag().unwrap().to_owned();
    rig.send(&ack("p1", &tag));
    rig.advance(Duration::from_millis(500));
    let pressed = rig.now;
    assert!(rig.key(1, 16_000).is_empty());
    rig.advance(Duration::from_millis(500));
    assert!(rig.sound_since(pressed) > 20, "the welcome plays on");
}

const SLOW_LOOKUP: &str = r#"
start = "lookup"
[nodes.lookup]
type = "http"
url = "http://127.0.0.1:9/customers/{system.caller}"
save_as = "vip"
timeout_ms = 5000
comfort = { after_ms = 1000, prompt = "one_moment", hold = "hold_music" }
success = "bye"
failure = "bye"
[nodes.bye]
type = "hangup"
"#;

#[test]
fn a_slow_lookup_answers_and_plays_comfort_audio_until_the_result() {
    let mut rig = Rig::new(
        SLOW_LOOKUP,
        prompts(&[("one_moment", 600), ("hold_music", 400)]),
        0,
    );
    let out = rig.send(&invite("s1"));
    assert_eq!(statuses(&out), vec![180], "the lookup runs while it rings");
    assert_eq!(rig.http.len(), 1);
    assert!(rig.advance(Duration::from_millis(999)).is_empty());
    let out = rig.advance(Duration::from_millis(1));
    let tag = ok_response(&out)
        .expect("answered for comfort")
        .to
        .tag()
        .unwrap()
        .to_owned();
    rig.send(&ack("s1", &tag));
    let started = rig.now;
    rig.advance(Duration::from_millis(2500));
    // 2.5 s of prompt then hold, looped: sound all the way.
    let sound = rig.sound_since(started);
    assert!(sound >= 120, "{sound} packets of comfort audio in 2.5 s");
    let out = rig.http_result(200, "true");
    let ended = rig.now;
    rig.answer_bye(&out);
    rig.advance(Duration::from_millis(200));
    assert_eq!(
        rig.sound_since(ended + Duration::from_millis(1)),
        0,
        "silence after the result"
    );
    assert_eq!(rig.records[0].path[0].exit.as_deref(), Some("success"));
}

#[test]
fn a_fast_lookup_plays_no_comfort_and_stays_unanswered() {
    let mut rig = Rig::new(
        SLOW_LOOKUP,
        prompts(&[("one_moment", 600), ("hold_music", 400)]),
        0,
    );
    rig.send(&invite("f1"));
    rig.advance(Duration::from_millis(300));
    let out = rig.http_result(200, "true");
    assert_eq!(statuses(&out), vec![480], "the hangup, never answered");
    assert!(rig
        .advance(Duration::from_secs(2))
        .iter()
        .all(|m| ok_response(std::slice::from_ref(m)).is_none()));
}

const CACHED: &str = r#"
start = "lookup"
[nodes.lookup]
type = "http"
url = "http://127.0.0.1:9/customers/{system.caller}"
json_path = "vip"
save_as = "vip"
cache = { ttl_s = 60, negative_ttl_s = 10, stale_if_error_s = 3600 }
success = "is_vip"
failure = "bye"
[nodes.is_vip]
type = "condition"
variable = "vip"
cases = [{ operator = "EqualTo", value = "true", exit = "desk" }]
default = "bye"
[nodes.desk]
type = "transfer"
target = "sip:vip@127.0.0.1:5099"
mode = "redirect"
[nodes.bye]
type = "hangup"
"#;

#[test]
fn the_cache_answers_repeat_calls_and_stands_in_when_the_crm_fails() {
    let mut rig = Rig::new(CACHED, Catalogue::default(), 0);
    rig.send(&invite("k1"));
    let out = rig.http_result(200, r#"{"vip": true}"#);
    assert_eq!(statuses(&out), vec![302]);
    assert_eq!(
        rig.records[0].http[0].cache,
        Some(concierge_flow::CacheUse::Miss)
    );

    // Within the TTL: no request at all.
    rig.advance(Duration::from_secs(30));
    let out = rig.send(&invite("k2"));
    assert!(rig.http.is_empty(), "answered from the cache");
    assert!(statuses(&out).contains(&302));
    assert_eq!(
        rig.records[1].http[0].cache,
        Some(concierge_flow::CacheUse::Hit)
    );

    // Past the TTL the CRM is asked again; it is down, the kept answer stands in.
    rig.advance(Duration::from_secs(60));
    rig.send(&invite("k3"));
    let out = rig.http_failure(HttpFailure::Connect("connection refused".into()));
    assert_eq!(statuses(&out), vec![302], "still to the VIP desk");
    let rec = &rig.records[2];
    assert_eq!(rec.http[0].cache, Some(concierge_flow::CacheUse::Stale));
    assert_eq!(rec.path[0].exit.as_deref(), Some("success"));
    let json = serde_json::to_string(rec).unwrap();
    assert!(json.contains(r#""cache":"stale""#), "{json}");

    // And a 5xx counts as a failure too.
    rig.advance(Duration::from_secs(61));
    rig.send(&invite("k4"));
    let out = rig.http_result(503, "");
    assert_eq!(statuses(&out), vec![302]);
    assert_eq!(
        rig.records[3].http[0].cache,
        Some(concierge_flow::CacheUse::Stale)
    );
}

const HOURS: &str = r#"
start = "open"
[schedules.desk]
time_zone = "Europe/Stockholm"
hours = ["mon-fri 08:00-18:00"]
[nodes.open]
type = "condition"
variable = "system.now"
cases = [{ operator = "WithinSchedule", value = "desk", exit = "desk" }]
default = "closed"
[nodes.desk]
type = "transfer"
target = "sip:vip@127.0.0.1:5099"
mode = "redirect"
priority = "urgent"
[nodes.closed]
type = "hangup"
"#;

/// Monday 30 March 2026 05:59:30 UTC: 07:59:30 in Stockholm, the first day of summer time.
const MONDAY_BEFORE_EIGHT_CEST: u64 = 1_774_850_370;

#[test]
fn opening_hours_follow_the_switch_wall_clock_across_dst() {
    // Before eight local: closed (480). Had the switch used winter time (UTC+1) it would
    // still be 06:59 and closed too; one minute later it must be open.
    let mut rig = Rig::new(HOURS, Catalogue::default(), MONDAY_BEFORE_EIGHT_CEST);
    let out = rig.send(&invite("h1"));
    assert_eq!(statuses(&out), vec![180, 480]);
    rig.advance(Duration::from_secs(60));
    let out = rig.send(&invite("h2"));
    assert_eq!(statuses(&out), vec![180, 302], "08:00:30 CEST is open");
    let contact = match &out[1] {
        Message::Response(r) => r
            .header(&concierge_sip::wire::HeaderName::CONTACT)
            .unwrap()
            .to_owned(),
        _ => unreachable!(),
    };
    assert!(contact.contains("Priority=urgent"), "{contact}");
    // Ten hours later it is 18:00:30 local: closed again.
    rig.advance(Duration::from_secs(10 * 3600));
    let out = rig.send(&invite("h3"));
    assert_eq!(statuses(&out), vec![180, 480]);
}

const BRIDGE_PRIORITY: &str = r#"
start = "desk"
[nodes.desk]
type = "transfer"
target = "sip:queue@127.0.0.2:5070"
mode = "bridge"
priority = "urgent"
priority_header = "X-Queue-Priority"
"#;

#[test]
fn a_bridge_leg_carries_the_priority_as_real_headers() {
    let mut rig = Rig::new(BRIDGE_PRIORITY, Catalogue::default(), 0);
    let out = rig.send(&invite("q1"));
    let tag = ok_response(&out)
        .expect("answered")
        .to
        .tag()
        .unwrap()
        .to_owned();
    let out = rig.send(&ack("q1", &tag));
    let leg = requests(&out)
        .into_iter()
        .find(|r| r.method.as_str() == "INVITE")
        .expect("the bridge leg's INVITE")
        .clone();
    // RFC 3261 §20.26.
    assert_eq!(
        leg.header(&concierge_sip::wire::HeaderName::new("Priority")),
        Some("urgent")
    );
    assert_eq!(
        leg.header(&concierge_sip::wire::HeaderName::new("X-Queue-Priority")),
        Some("urgent")
    );
}

#[test]
fn in_early_media_comfort_audio_plays_before_any_answer() {
    let flow = format!("early_media = true\n{SLOW_LOOKUP}");
    let mut rig = Rig::new(
        &flow,
        prompts(&[("one_moment", 600), ("hold_music", 400)]),
        0,
    );
    let out = rig.send(&invite("e1"));
    assert!(statuses(&out).contains(&183), "{:?}", statuses(&out));
    let started = rig.now;
    let out = rig.advance(Duration::from_millis(2000));
    assert!(ok_response(&out).is_none(), "not answered for comfort");
    assert!(
        rig.sound_since(started + Duration::from_millis(1000)) > 40,
        "comfort audio in early media"
    );
}

/// A program running `flow`, whose `${NAME}`s resolve to `env`.
fn with_env<const N: usize>(flow: &str, env: [(&str, &str); N]) -> Program {
    Program {
        env: concierge_flow::Environment::from_pairs(env),
        ..testkit::program(flow)
    }
}

const TOKEN_LOOKUP: &str = r#"
start = "lookup"
[nodes.lookup]
type = "http"
url = "http://127.0.0.1:9/customers/{system.caller}?key=${CRM_KEY}"
headers = { Authorization = "Bearer ${CRM_TOKEN}" }
save_as = "vip"
success = "bye"
failure = "bye"
[nodes.bye]
type = "hangup"
"#;

#[test]
fn env_references_resolve_from_the_program_s_environment_and_stay_out_of_records() {
    // The switch reads no environment: `${NAME}` gets what the program carries (the
    // binary puts its process environment there).
    let program = with_env(TOKEN_LOOKUP, [("CRM_TOKEN", "t0ken"), ("CRM_KEY", "k3y")]);
    let mut rig = Rig {
        kit: Kit::with_wall(
            SwitchConfig {
                seed: 7,
                ..Default::default()
            },
            program,
            0,
        ),
        phone: "127.0.0.1:5061".parse().unwrap(),
    };
    rig.send(&invite("e1"));
    let req = rig.http_request();
    assert!(req.url.ends_with("?key=k3y"), "{}", req.url);
    assert!(req
        .headers
        .contains(&("Authorization".into(), "Bearer t0ken".into())));
    assert_eq!(req.url_for_log(), "<redacted>", "a URL built from ${{ENV}}");
    let out = rig.http_result(200, "yes");
    assert_eq!(statuses(&out), vec![480], "the hangup, never answered");
    let record = format!("{:?}", rig.record("e1"));
    assert!(
        !record.contains("t0ken") && !record.contains("k3y"),
        "{record}"
    );
}

const SECRET_BRIDGE: &str = r#"
start = "xfer"
[nodes.xfer]
type = "transfer"
target = "sip:${DESK}"
mode = "bridge"
failed = "bye"
[nodes.bye]
type = "hangup"
"#;

#[test]
fn a_bridge_target_from_a_secret_that_is_no_sip_uri_stays_out_of_the_record() {
    // The target came from `${DESK}` (and is no SIP URI: it has no host). The record
    // shows `<redacted>` for it, and the failure's words must not spell it out either.
    let program = with_env(SECRET_BRIDGE, [("DESK", "s3cret@")]);
    let mut kit = Kit::with(testkit::config(), program);
    let mut c = testkit::Caller::phone("s1", "+46700000001");
    c.invite(&mut kit);
    c.inbox(&mut kit);
    let out = c.ack(&mut kit);
    let bye = testkit::find_request(&out, "BYE");
    c.reply(&mut kit, &bye, 200);
    let rec = kit.record("s1");
    let t = rec.transfer.as_ref().expect("the transfer is recorded");
    assert_eq!(t.target, "<redacted>");
    assert!(t.result.to_string().starts_with("failed: "), "{t:?}");
    let json = serde_json::to_string(rec).expect("a record serializes");
    assert!(!json.contains("s3cret"), "{json}");
}
