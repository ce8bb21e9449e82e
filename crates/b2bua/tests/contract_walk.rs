//! One INVITE walked through the switch's contract, input by input: what the driver hands
//! to `handle_input`, and everything `poll_output` answers until its `Timeout`. A known VIP
//! calls through a trusted carrier and is REFERred to the VIP desk; the whole call is
//! printed in `docs/ARCHITECTURE.md` ("One INVITE through the contract") from this test,
//! which fails when the switch's behaviour drifts from what that page shows.
mod testkit;

use std::time::Duration;

use concierge_b2bua::{CallRef, Input, Output};
use concierge_flow::HttpResponse;
use concierge_sip::wire::{parse_datagram, Message, Request};

use testkit::vip::VIP_NUMBER;
use testkit::{Kit, CARRIER, HOST, SIP_PORT};

/// The driver's side of the walk: the kit's switch in virtual time, each turn of the
/// contract (`Kit::turn`) printed a line per output.
struct Driver {
    kit: Kit,
    /// The SIP messages the switch sent, parsed.
    last_sip: Vec<Message>,
    port: Option<u16>,
    http: Option<CallRef>,
}

impl Driver {
    /// `handle_input`, then `poll_output` until `Timeout`: one line per output.
    fn input(&mut self, input: Input<'_>) -> Vec<String> {
        let (outputs, at) = self.kit.turn(input);
        self.lines(outputs, at)
    }

    /// Moves virtual time to the switch's deadline and hands in `Input::Timeout`.
    fn wake(&mut self) -> Vec<String> {
        let (outputs, at) = self.kit.wake();
        self.lines(outputs, at)
    }

    fn lines(&mut self, outputs: Vec<Output>, at: Option<std::time::Instant>) -> Vec<String> {
        let mut lines = Vec::new();
        let mut rtp = 0;
        for output in outputs {
            let line = match output {
                Output::Timeout(_) => unreachable!("a turn ends at its Timeout"),
                Output::Sip(t) => {
                    let m = parse_datagram(&t.bytes).unwrap().unwrap();
                    let first = match &m {
                        Message::Request(r) => format!("{} {}", r.method, r.uri),
                        Message::Response(r) => format!("{} {}", r.status.0, r.reason),
                    };
                    self.last_sip.push(m);
                    format!("Sip({first}) → {}", t.peer.addr)
                }
                Output::MediaOpen { port } => {
                    self.port = Some(port);
                    "MediaOpen { port }".to_owned()
                }
                Output::MediaClose { .. } => "MediaClose { port }".to_owned(),
                Output::Rtp(batch) => {
                    rtp += batch.len();
                    continue;
                }
                Output::Http { call, request } => {
                    self.http = Some(call);
                    format!("Http({} {})", request.method, request.url)
                }
                Output::Resolve(r) => format!("Resolve({})", r.uri),
                Output::Event(e) => format!("Event({:?})", e.kind),
                Output::Trunks(t) => format!("Trunks(×{})", t.len()),
                Output::LockoutCheck { groups, .. } => format!("LockoutCheck({groups:?})"),
                Output::LockoutFailure { group, .. } => format!("LockoutFailure({group})"),
                Output::Record(r) => format!(
                    "Record(outcome {}, ended_by {}, path {})",
                    r.outcome.as_str(),
                    r.ended_by,
                    testkit::path(&r)
                ),
            };
            lines.push(line);
        }
        if rtp > 0 {
            lines.push(format!("Rtp ×{rtp}"));
        }
        let wake = at.map_or("none".to_owned(), |t| {
            format!("+{} ms", (t - self.kit.now).as_millis())
        });
        lines.push(format!("Timeout({wake})"));
        lines
    }

    fn sip(&mut self, text: &str) -> Vec<String> {
        let peer = testkit::peer(CARRIER);
        self.input(Input::Datagram {
            peer,
            data: text.as_bytes(),
        })
    }

    fn last_request(&self, method: &str) -> Request {
        self.last_sip
            .iter()
            .rev()
            .find_map(|m| match m {
                Message::Request(r) if r.method.as_str() == method => Some(r.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {method} sent"))
    }

    fn ok_tag(&self) -> String {
        self.last_sip
            .iter()
            .find_map(|m| match m {
                Message::Response(r) if r.status.0 == 200 => r.to.tag().map(str::to_owned),
                _ => None,
            })
            .expect("a 200 OK")
    }
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

fn from_carrier(
    method_line: &str,
    via_branch: &str,
    to_tag: &str,
    cseq: &str,
    extra: &str,
) -> String {
    format!(
        "{method_line} SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER};branch={via_branch}\r\nFrom: <sip:{VIP_NUMBER}@carrier.example>;tag=gw\r\nTo: <sip:vip@{HOST}:{SIP_PORT}>{to_tag}\r\nCall-ID: walk-1\r\nCSeq: {cseq}\r\nMax-Forwards: 70\r\n{extra}"
    )
}

fn reply_to(req: &Request, code: u16, reason: &str, extra: &str) -> String {
    let vias: String = req.vias.iter().map(|v| format!("Via: {v}\r\n")).collect();
    format!(
        "SIP/2.0 {code} {reason}\r\n{vias}From: {}\r\nTo: {};tag=gw\r\nCall-ID: {}\r\nCSeq: {} {}\r\n{extra}Content-Length: 0\r\n\r\n",
        req.from, req.to, req.call_id, req.cseq.seq, req.cseq.method
    )
}

#[test]
fn a_known_vip_through_a_trusted_carrier_walks_the_contract_to_the_vip_desk() {
    let mut d = Driver {
        kit: Kit::vip(),
        last_sip: Vec::new(),
        port: None,
        http: None,
    };
    let mut walk: Vec<(String, Vec<String>)> = Vec::new();

    // 1. The INVITE: a port to bind before any SDP names it, and 100 Trying owed in
    //    200 ms should nothing answer the INVITE before (§17.2.1).
    let invite = from_carrier(
        &format!("INVITE sip:vip@{HOST}:{SIP_PORT}"),
        "z9hG4bKw1",
        "",
        "1 INVITE",
        &format!(
            "Contact: <sip:gw@{CARRIER}>\r\nP-Asserted-Identity: <sip:{VIP_NUMBER}@carrier.example>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        ),
    );
    walk.push(("Datagram(INVITE)".into(), d.sip(&invite)));
    // 2. The driver bound it: ringing, and the flow's lookup goes out while it rings.
    let port = d.port.expect("a port to bind");
    walk.push(("PortBound".into(), d.input(Input::PortBound { port })));
    // 3. The CRM knows the number: answer, to play the greeting.
    let body = format!(
        r#"{{"customer": {{"number": "{VIP_NUMBER}", "hasVIPMembership": true, "tier": "gold"}}}}"#
    );
    let call = d.http.expect("an HTTP request");
    d.kit.now += Duration::from_millis(40);
    let http = Input::Http {
        call,
        result: Ok(HttpResponse {
            status: 200,
            body: body.into_bytes(),
            latency: Duration::from_millis(40),
            shared: None,
        }),
    };
    walk.push(("Http(200, VIP)".into(), d.input(http)));
    // 4. The ACK: media starts with the greeting on the pacing tick.
    let tag = d.ok_tag();
    let ack = from_carrier(
        &format!("ACK sip:vip@{HOST}:{SIP_PORT}"),
        "z9hG4bKw2",
        &format!(";tag={tag}"),
        "1 ACK",
        "Content-Length: 0\r\n\r\n",
    );
    d.kit.now += Duration::from_millis(10);
    walk.push(("Datagram(ACK)".into(), d.sip(&ack)));
    // 5. Deadlines: the pacing tick sends the greeting; when it ends, the REFER goes.
    let mut ticks = 0;
    let mut rtp = 0;
    loop {
        let out = d.wake();
        ticks += 1;
        if out.iter().any(|l| l.starts_with("Sip(REFER")) {
            walk.push((
                format!("Timeout ×{ticks} (the pacing tick; {rtp} RTP before)"),
                out,
            ));
            break;
        }
        rtp += out.iter().filter(|l| l.starts_with("Rtp")).count();
        assert!(ticks < 500, "no REFER after {ticks} wake-ups");
    }
    // 6. The desk's side answers through the carrier: 202, then NOTIFY 200.
    let refer = d.last_request("REFER");
    d.kit.now += Duration::from_millis(20);
    walk.push((
        "Datagram(202 to REFER)".into(),
        d.sip(&reply_to(&refer, 202, "Accepted", "")),
    ));
    let notify = from_carrier(
        &format!("NOTIFY sip:concierge@{HOST}:{SIP_PORT}"),
        "z9hG4bKw3",
        &format!(";tag={tag}"),
        "2 NOTIFY",
        "Event: refer\r\nSubscription-State: terminated;reason=noresource\r\nContent-Type: message/sipfrag\r\nContent-Length: 16\r\n\r\nSIP/2.0 200 OK\r\n",
    );
    d.kit.now += Duration::from_millis(200);
    walk.push(("Datagram(NOTIFY 200)".into(), d.sip(&notify)));
    // 7. Our BYE's 200: the call leaves the switch with its record.
    let bye = d.last_request("BYE");
    d.kit.now += Duration::from_millis(20);
    walk.push((
        "Datagram(200 to BYE)".into(),
        d.sip(&reply_to(&bye, 200, "OK", "")),
    ));

    let printed: String = walk
        .iter()
        .map(|(input, outs)| {
            format!(
                "{input}\n{}\n",
                outs.iter()
                    .map(|o| format!("    {o}\n"))
                    .collect::<String>()
            )
        })
        .collect();
    assert_eq!(
        printed.trim_end(),
        WALK.trim_end(),
        "the walk changed: update docs/ARCHITECTURE.md with it\n{printed}"
    );
}

/// The walk as `docs/ARCHITECTURE.md` shows it (the prompts here are a few frames long).
const WALK: &str = r#"Datagram(INVITE)
    MediaOpen { port }
    Timeout(+200 ms)

PortBound
    Http(GET http://crm.test/customers/%2B46706170786)
    Sip(180 Ringing) → 127.0.0.2:5060
    Timeout(+1000 ms)

Http(200, VIP)
    Sip(200 OK) → 127.0.0.2:5060
    Timeout(+500 ms)

Datagram(ACK)
    Timeout(+0 ms)

Timeout ×5 (the pacing tick; 4 RTP before)
    Sip(REFER sip:gw@127.0.0.2:5060) → 127.0.0.2:5060
    Rtp ×1
    Timeout(+20 ms)

Datagram(202 to REFER)
    Timeout(+0 ms)

Datagram(NOTIFY 200)
    MediaClose { port }
    Sip(200 OK) → 127.0.0.2:5060
    Sip(BYE sip:gw@127.0.0.2:5060) → 127.0.0.2:5060
    Timeout(+0 ms)

Datagram(200 to BYE)
    Record(outcome transferred, ended_by concierge, path lookup(success) > is_vip(case 1) > is_verified(case 1) > verstat_ok(case 1) > vip_by_number(next) > fast_track(transferred))
    Timeout(+0 ms)
"#;
