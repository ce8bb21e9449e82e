//! Concurrent callers: each a SIP UA over one shared UDP socket, with its own RTP stream.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use concierge_sip::wire::{parse_datagram, response_to, Message, Request, Response, StatusCode};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::engine::Engine;
use crate::media::StreamStats;
use crate::summary::{progress, Failures, Jitter};

pub(crate) struct Plan {
    pub(crate) server: SocketAddr,
    pub(crate) calls: usize,
    pub(crate) ramp: Duration,
    pub(crate) hold: Duration,
    pub(crate) digits: String,
    pub(crate) expect_refer: String,
}

type Routes = Rc<RefCell<HashMap<String, mpsc::UnboundedSender<Message>>>>;

struct Outcome {
    result: Result<(), &'static str>,
    stream: Option<StreamStats>,
}

pub(crate) async fn run(plan: Plan) -> serde_json::Value {
    let sip = Rc::new(UdpSocket::bind("127.0.0.1:0").await.expect("SIP socket"));
    let routes: Routes = Rc::default();
    let local = tokio::task::LocalSet::new();
    let plan = Rc::new(plan);
    let engine = Engine::spawn().expect("the media engine's thread");
    local
        .run_until(async move {
            tokio::task::spawn_local(dispatch(sip.clone(), routes.clone()));
            let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Outcome>();
            let (up_tx, mut up_rx) = mpsc::unbounded_channel::<()>();
            let started = Instant::now();
            for i in 0..plan.calls {
                let at = started + plan.ramp.mul_f64(i as f64 / plan.calls.max(1) as f64);
                let (sip, routes, plan) = (sip.clone(), routes.clone(), plan.clone());
                let (done_tx, up_tx) = (done_tx.clone(), up_tx.clone());
                let engine = engine.clone();
                tokio::task::spawn_local(async move {
                    sleep_until(at).await;
                    let outcome = call(i, &sip, &routes, &plan, &engine, up_tx).await;
                    let _ = done_tx.send(outcome);
                });
            }
            drop((done_tx, up_tx));
            let mut up = 0;
            let mut all_up_reported = false;
            let mut finished = 0;
            let mut failures = Failures::default();
            let mut jitter = Jitter::default();
            let (mut sent, mut received) = (0u64, 0u64);
            while finished < plan.calls {
                tokio::select! {
                    Some(()) = up_rx.recv() => {
                        up += 1;
                        if up == plan.calls && !all_up_reported {
                            all_up_reported = true;
                            progress("ALL_UP");
                        }
                    }
                    Some(o) = done_rx.recv() => {
                        if finished == 0 {
                            progress("FIRST_END");
                        }
                        finished += 1;
                        if let Err(why) = o.result {
                            failures.add(why);
                        }
                        if let Some(s) = o.stream {
                            sent += s.sent;
                            received += s.received;
                            jitter.merge(s.jitter);
                        }
                    }
                    else => break,
                }
            }
            serde_json::json!({
                "calls": plan.calls,
                "failed": failures.total(),
                "failures": failures.to_json(),
                "peak_concurrent_up": up,
                "rtp_sent": sent,
                "rtp_received": received,
                "jitter": jitter.summarize(),
                "seconds": started.elapsed().as_secs_f64(),
            })
        })
        .await
}

/// Routes each datagram on the SIP socket to its call by Call-ID.
async fn dispatch(sip: Rc<UdpSocket>, routes: Routes) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, _)) = sip.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(Some(msg)) = parse_datagram(&buf[..n]) else {
            continue;
        };
        let call_id = match &msg {
            Message::Request(r) => r.call_id.clone(),
            Message::Response(r) => r.call_id.clone(),
        };
        if let Some(tx) = routes.borrow().get(call_id.as_str()) {
            let _ = tx.send(msg);
        }
    }
}

/// The dialog as this caller sees it.
struct Leg {
    call_id: String,
    from: String,
    to: String,
    remote_target: String,
    cseq: u32,
    branch_n: u32,
}

impl Leg {
    fn request(&mut self, method: &str, local: SocketAddr, extra: &str, body: &str) -> String {
        self.cseq += 1;
        self.branch_n += 1;
        format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{}-{}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            self.remote_target,
            self.call_id,
            self.branch_n,
            self.from,
            self.to,
            self.call_id,
            self.cseq,
            body.len()
        )
    }
}

async fn call(
    i: usize,
    sip: &UdpSocket,
    routes: &Routes,
    plan: &Plan,
    engine: &Engine,
    up: mpsc::UnboundedSender<()>,
) -> Outcome {
    let call_id = format!("lg{}-{i}", std::process::id());
    let (tx, mut rx) = mpsc::unbounded_channel();
    routes.borrow_mut().insert(call_id.clone(), tx);
    let outcome = match engine.add(i, rand::random()) {
        Ok(port) => {
            let result = talk(i, sip, plan, engine, port, &call_id, &mut rx, up).await;
            Outcome {
                result,
                stream: Some(engine.finish(i).await),
            }
        }
        Err(_) => Outcome {
            result: Err("RTP bind"),
            stream: None,
        },
    };
    routes.borrow_mut().remove(&call_id);
    outcome
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call's whole context, passed once"
)]
async fn talk(
    i: usize,
    sip: &UdpSocket,
    plan: &Plan,
    engine: &Engine,
    rtp_port: u16,
    call_id: &str,
    rx: &mut mpsc::UnboundedReceiver<Message>,
    up: mpsc::UnboundedSender<()>,
) -> Result<(), &'static str> {
    let local = sip.local_addr().map_err(|_| "SIP socket")?;
    let server = plan.server;
    // Numbers the demo directory does not know: the lookup fails and the keypad runs.
    let caller = format!("+46709{:06}", i);
    let sdp = format!(
        "v=0\r\no=lg 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n",
        rtp_port
    );
    let mut leg = Leg {
        call_id: call_id.to_owned(),
        from: format!("<sip:{caller}@{local}>;tag=lg{i}"),
        to: format!("<sip:ivr@{server}>"),
        remote_target: format!("sip:ivr@{server}"),
        cseq: 0,
        branch_n: 0,
    };
    let invite = leg.request(
        "INVITE",
        local,
        &format!("Contact: <sip:lg@{local}>\r\nContent-Type: application/sdp\r\n"),
        &sdp,
    );
    let invite_seq = leg.cseq;
    // INVITE, retransmitted on Timer A's schedule until a response arrives.
    let mut retransmit = Instant::now();
    let mut interval = Duration::from_millis(500);
    let mut provisional = false;
    let give_up = Instant::now() + Duration::from_secs(32);
    let ok: Response = loop {
        if !provisional && Instant::now() >= retransmit {
            let _ = sip.send_to(invite.as_bytes(), server).await;
            retransmit = Instant::now() + interval;
            interval = (interval * 2).min(Duration::from_secs(4));
        }
        tokio::select! {
            m = rx.recv() => match m {
                Some(Message::Response(r)) if r.cseq.method.as_str() == "INVITE" => {
                    if r.status.is_success() {
                        break r;
                    }
                    if r.status.is_final() {
                        return Err("INVITE refused");
                    }
                    provisional = true;
                }
                Some(_) => {}
                None => return Err("dispatcher gone"),
            },
            _ = sleep_until(retransmit), if !provisional => {}
            _ = sleep_until(give_up) => return Err("no answer"),
        }
    };
    leg.to = ok.to.to_string();
    if let Some(c) = ok.contact() {
        leg.remote_target = c.uri.to_string();
    }
    let body = String::from_utf8_lossy(&ok.body).into_owned();
    let port: Option<u16> = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next()?.parse().ok());
    let Some(port) = port else {
        return Err("no SDP answer");
    };
    let rtp_to = SocketAddr::new(server.ip(), port);
    let ack = format!(
        "ACK {} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}-ack\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: {invite_seq} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        leg.remote_target, leg.from, leg.to
    );
    let _ = sip.send_to(ack.as_bytes(), server).await;
    let _ = up.send(());

    let answered = Instant::now();
    // The code is keyed one second after the answer, during the welcome prompt.
    engine.start(i, Some(rtp_to), &plan.digits, Duration::from_secs(1));
    let hold_until = answered + plan.hold;
    let deadline = hold_until + Duration::from_secs(40);
    let mut referred = false;
    let mut notified = false;
    let transfer_expected = !plan.expect_refer.is_empty();
    let mut bye_seq = None;
    loop {
        if !transfer_expected && bye_seq.is_none() && Instant::now() >= hold_until {
            let bye = leg.request("BYE", local, "", "");
            let _ = sip.send_to(bye.as_bytes(), server).await;
            bye_seq = Some(leg.cseq);
        }
        if referred && !notified && Instant::now() >= hold_until {
            let notify = leg.request(
                "NOTIFY",
                local,
                "Event: refer\r\nSubscription-State: terminated;reason=noresource\r\nContent-Type: message/sipfrag\r\n",
                "SIP/2.0 200 OK\r\n",
            );
            let _ = sip.send_to(notify.as_bytes(), server).await;
            notified = true;
        }
        tokio::select! {
            _ = sleep_until(hold_until), if !notified && (referred || bye_seq.is_none() && !transfer_expected) => {}
            m = rx.recv() => match m {
                Some(Message::Request(r)) => {
                    match r.method.as_str() {
                        "REFER" => {
                            reply(sip, server, &r, 202).await;
                            let target = r.header(&concierge_sip::wire::HeaderName::REFER_TO).unwrap_or_default();
                            if !target.contains(&plan.expect_refer) {
                                return Err("REFER to the wrong target");
                            }
                            referred = true;
                        }
                        "BYE" => {
                            reply(sip, server, &r, 200).await;
                            return if notified { Ok(()) } else if referred { Err("BYE before the transfer finished") } else { Err("BYE without REFER") };
                        }
                        _ => reply(sip, server, &r, 200).await,
                    }
                }
                Some(Message::Response(r)) => {
                    if bye_seq == Some(r.cseq.seq) && r.status.is_final() {
                        return if r.status.is_success() { Ok(()) } else { Err("BYE refused") };
                    }
                }
                None => return Err("dispatcher gone"),
            },
            _ = sleep_until(deadline) => {
                if !transfer_expected {
                    return Err("no answer to BYE");
                }
                let bye = leg.request("BYE", local, "", "");
                let _ = sip.send_to(bye.as_bytes(), server).await;
                return Err(if referred { "no BYE after NOTIFY" } else { "no REFER" });
            }
        }
    }
}

async fn reply(sip: &UdpSocket, to: SocketAddr, request: &Request, code: u16) {
    let r = response_to(request, StatusCode(code), None);
    let _ = sip.send_to(&r.to_bytes(), to).await;
}
