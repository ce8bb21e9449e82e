//! The bodies of the fuzz targets in `fuzz/` (outside the workspace), here so the normal
//! test run replays every committed corpus file through exactly the code libFuzzer ran
//! (`tests/fuzz_corpus.rs`). Each function takes arbitrary bytes and must neither panic
//! nor hang; the checks inside are properties that hold for any input.
//!
//! Not part of the API: nothing outside the fuzz targets and their replay test calls it.

use std::net::SocketAddr;
use std::time::Instant;

use crate::digest::Challenge;
use crate::endpoint::{Endpoint, EndpointConfig, EndpointEvent, Peer};
use crate::wire::{
    check_request, frame_datagram, parse_datagram, parse_message, response_to, Message, ParseError,
    StatusCode, StreamFramer, StreamItem, Transport,
};

/// One UDP datagram through the parser and a whole [`Endpoint`], as the server receives
/// it. Every message the endpoint sends in answer must itself parse: an answer our own
/// parser rejects would be garbage on the wire.
pub fn datagram(now: Instant, data: &[u8]) {
    let parsed = parse_datagram(data);
    // Parsing a datagram reads Content-Length on its walk over the header lines; the
    // answer must be the one framing it first, then parsing the frame, gives.
    let framed_then_parsed = frame_datagram(data)
        .map_err(ParseError::from)
        .and_then(|f| f.map(|f| parse_message(f.head, f.body)).transpose());
    assert_eq!(parsed, framed_then_parsed, "one walk and two disagree");
    if let Ok(Some(message)) = parsed {
        // What we parsed we can write, and what we write we can read back.
        let bytes = message.to_bytes();
        if let Err(e) = parse_datagram(&bytes) {
            panic!("our own serialisation does not parse: {e}\n{bytes:?}");
        }
        if let Message::Request(request) = &message {
            let _ = check_request(request, &["replaces"]);
        }
    }
    let mut endpoint = Endpoint::new(EndpointConfig::default());
    let peer = Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([127, 0, 0, 1], 5070)),
    };
    endpoint.handle_datagram(now, peer, data);
    drive(now, &mut endpoint);
}

/// A TCP byte stream cut into reads at sizes taken from the first byte, through the
/// [`StreamFramer`] and the parser, until the framer gives up (the driver then closes the
/// connection). The framer must never hold more than one message's worth of bytes.
pub fn stream(now: Instant, data: &[u8]) {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let mut endpoint = Endpoint::new(EndpointConfig::default());
    let peer = Peer {
        transport: Transport::Tcp,
        addr: SocketAddr::from(([127, 0, 0, 1], 5070)),
    };
    let mut framer = StreamFramer::new();
    for chunk in data.chunks(usize::from(cut.max(1))) {
        framer.push(chunk);
        loop {
            match framer.next_item() {
                Ok(None) => break,
                Ok(Some(StreamItem::Ping)) => {}
                Ok(Some(StreamItem::Message { head, body })) => {
                    let _ = parse_message(&head, &body);
                    endpoint.handle_framed(now, peer, &head, &body);
                }
                Err(_) => return,
            }
        }
        assert!(
            framer.buffered() <= crate::wire::MAX_MESSAGE_SIZE + 255,
            "the framer holds {} bytes",
            framer.buffered()
        );
    }
    drive(now, &mut endpoint);
}

/// A `WWW-Authenticate` / `Proxy-Authenticate` value (lines are separate challenges),
/// parsed and, when it is one we take, answered.
pub fn digest_challenge(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        if let Ok(c) = Challenge::parse(line) {
            let _ = c.answer(
                "user",
                "secret",
                "INVITE",
                "sip:desk@127.0.0.1",
                "cn0nce",
                1,
            );
        }
    }
    if let Ok(c) = Challenge::best(text.lines()) {
        let _ = c.answer(
            "user",
            "secret",
            "INVITE",
            "sip:desk@127.0.0.1",
            "cn0nce",
            2,
        );
    }
}

/// Answers every request the endpoint reports and checks that all it sends is a framed
/// SIP response. (Not that it parses: a 400 to an unparsable request copies the broken
/// Via/From/To/Call-ID/CSeq lines as RFC 3261 §8.2.6 asks, so it is as broken as they.)
fn drive(now: Instant, endpoint: &mut Endpoint) {
    while let Some(event) = endpoint.poll_event() {
        if let EndpointEvent::Request { key, request, .. } = event {
            endpoint.respond(now, &key, response_to(&request, StatusCode(200), Some("t")));
        }
    }
    while let Some(t) = endpoint.poll_transmit() {
        let framed = frame_datagram(&t.bytes);
        assert!(
            matches!(framed, Ok(Some(_))) && t.bytes.starts_with(b"SIP/2.0 "),
            "we would send what is no SIP response: {framed:?}\n{:?}",
            t.bytes
        );
    }
}
