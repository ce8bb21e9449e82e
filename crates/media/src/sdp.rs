//! The SDP the switch puts in its answers (RFC 3264), for the telephony subset: one audio
//! stream, G.711 (PCMU, PCMA) in our preference order, and `telephone-event` at whatever
//! payload type the offer used. The SIP codec treats SDP as an opaque body; this module
//! reads just enough of the offer to answer it.
// Peer bytes reach every function here: a slice at a byte offset inside a multi-byte
// character, or an index past the end, would be a remote panic. Use `get(..)` instead.
#![deny(clippy::string_slice, clippy::indexing_slicing)]

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::sdes::{CryptoAttribute, SrtpKeying, SrtpPolicy};
use crate::srtp::{MasterKey, SrtpProfile};

/// What was agreed for the call's audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSession {
    /// Payload type and name of the chosen codec (0 PCMU or 8 PCMA).
    pub payload_type: u8,
    /// Encoding name of the chosen codec (`PCMU` or `PCMA`).
    pub codec: &'static str,
    /// Payload type of RFC 4733 telephone-event, when both sides have it.
    pub telephone_event: Option<u8>,
    /// Where the offer said to send RTP (latching may later replace it).
    pub remote: Option<SocketAddr>,
    /// Packetisation time in milliseconds.
    pub ptime_ms: u32,
    /// Whether we may send (the offer was not `sendonly`/`inactive` to us).
    pub send: bool,
    /// SRTP keys when the call is encrypted (RFC 4568 SDES); `None`: plain RTP.
    pub srtp: Option<SrtpKeying>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// Why an SDP offer cannot be answered; the caller turns it into 488 or 400.
pub enum OfferError {
    /// No `m=audio` line, or no codec we speak: 488 Not Acceptable Here.
    NotAcceptable(String),
}

/// Answers `offer` from our `local` address, plain RTP only (an `RTP/SAVP` offer is not
/// acceptable).
pub fn answer(
    offer: &str,
    local: SocketAddr,
    session_version: u64,
) -> Result<(AudioSession, String), OfferError> {
    answer_with(offer, local, session_version, SrtpPolicy::Off, None)
}

/// Answers `offer` under the SRTP `policy`. `key` is our master key for this call, used
/// when the answer is SRTP (the caller draws it from the switch's seeded generator).
pub fn answer_with(
    offer: &str,
    local: SocketAddr,
    session_version: u64,
    policy: SrtpPolicy,
    key: Option<&MasterKey>,
) -> Result<(AudioSession, String), OfferError> {
    let mut session_ip: Option<IpAddr> = None;
    let mut media: Option<(u16, Vec<u8>)> = None;
    let mut media_ip: Option<IpAddr> = None;
    // Encoding names as offered: compared case aside, never copied.
    let mut rtpmap: Vec<(u8, &str)> = Vec::new();
    let mut ptime = None;
    let mut direction = "sendrecv";
    let mut in_audio = false;
    let mut other_media = Vec::new();
    let mut proto_offered = "RTP/AVP";
    // The usable `a=crypto` lines of the audio stream, and whether there were any at all.
    let mut crypto: Vec<CryptoAttribute> = Vec::new();
    let mut crypto_lines = 0usize;
    for (kind, value) in fields::fields(offer) {
        match kind {
            "c" => {
                let ip = value
                    .split_whitespace()
                    .nth(2)
                    .and_then(|a| a.split('/').next()?.parse().ok());
                if media.is_some() && in_audio {
                    media_ip = ip
                } else if media.is_none() {
                    session_ip = ip
                }
            }
            "m" => {
                let mut f = value.split_whitespace();
                let (m, port, proto) = (
                    f.next().unwrap_or(""),
                    f.next().unwrap_or(""),
                    f.next().unwrap_or(""),
                );
                let known = proto.starts_with("RTP/AVP") || proto.starts_with("RTP/SAVP");
                if m == "audio" && media.is_none() && known {
                    proto_offered = if proto.starts_with("RTP/SAVP") {
                        "RTP/SAVP"
                    } else {
                        "RTP/AVP"
                    };
                    let port = port
                        .split('/')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(0);
                    media = Some((port, f.filter_map(|p| p.parse().ok()).collect()));
                    in_audio = true;
                } else {
                    in_audio = false;
                    other_media.push(format!(
                        "m={} 0 {} {}",
                        m,
                        proto,
                        f.collect::<Vec<_>>().join(" ")
                    ));
                }
            }
            "a" if in_audio || media.is_none() => {
                if let Some(c) = value.strip_prefix("crypto:") {
                    // RFC 4568 §5.1.2: a media-level attribute only.
                    if in_audio && crypto_lines < 16 {
                        crypto_lines += 1;
                        crypto.extend(CryptoAttribute::parse(c));
                    }
                } else if let Some(map) = value.strip_prefix("rtpmap:") {
                    if let Some((pt, name)) = map.split_once(' ') {
                        if let Ok(pt) = pt.trim().parse() {
                            rtpmap.push((pt, name.trim()));
                        }
                    }
                } else if let Some(p) = value.strip_prefix("ptime:") {
                    ptime = p.trim().parse::<u32>().ok();
                } else if matches!(value, "sendrecv" | "sendonly" | "recvonly" | "inactive") {
                    direction = match value {
                        "sendonly" => "sendonly",
                        "recvonly" => "recvonly",
                        "inactive" => "inactive",
                        _ => "sendrecv",
                    };
                }
            }
            _ => {}
        }
    }
    let (port, payloads) =
        media.ok_or_else(|| OfferError::NotAcceptable("no audio stream offered".into()))?;
    let named = |pt: u8| rtpmap.iter().find(|(p, _)| *p == pt).map(|(_, n)| *n);
    let starts_with = |name: &str, want: &str| {
        name.get(..want.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(want))
    };
    let is = |pt: u8, want: &str, static_pt: u8| match named(pt) {
        Some(n) => starts_with(n, want),
        None => pt == static_pt,
    };
    let (payload_type, codec) = [("pcmu/8000", 0u8, "PCMU"), ("pcma/8000", 8u8, "PCMA")]
        .iter()
        .find_map(|(want, static_pt, name)| {
            payloads
                .iter()
                .find(|pt| is(**pt, want, *static_pt))
                .map(|pt| (*pt, *name))
        })
        .ok_or_else(|| {
            OfferError::NotAcceptable("no common codec (we speak PCMU and PCMA)".into())
        })?;
    let telephone_event = payloads
        .iter()
        .copied()
        .find(|pt| named(*pt).is_some_and(|n| starts_with(n, "telephone-event/8000")));
    // RFC 4568 §7.1.1: the answer takes the first offered line we can use.
    let chosen = crypto.into_iter().next();
    let secure = proto_offered == "RTP/SAVP";
    let srtp = match (policy, secure, chosen) {
        (SrtpPolicy::Off, true, _) => {
            return Err(OfferError::NotAcceptable(
                "SRTP offered; srtp is off here".into(),
            ))
        }
        (SrtpPolicy::Off, false, _) => None,
        (_, true, None) => {
            let why = if crypto_lines == 0 {
                "RTP/SAVP offered without a=crypto (only SDES keying is supported)"
            } else {
                "no a=crypto line we can use (AES_CM_128_HMAC_SHA1_80 or _32, no MKI)"
            };
            return Err(OfferError::NotAcceptable(why.into()));
        }
        (SrtpPolicy::Mandatory, false, None) => {
            return Err(OfferError::NotAcceptable(
                "plain RTP offered; SRTP is mandatory here".into(),
            ))
        }
        (SrtpPolicy::Optional, false, None) => None,
        (_, _, Some(theirs)) => {
            let ours =
                key.ok_or_else(|| OfferError::NotAcceptable("no key to answer SRTP with".into()))?;
            Some((theirs, ours.clone()))
        }
    };
    let ip = media_ip.or(session_ip);
    // RFC 3264 §8.4: c=0.0.0.0 is the old way to put a call on hold.
    let hold = ip.is_some_and(|ip| ip.is_unspecified());
    let answer_direction = match (direction, hold) {
        (_, true) | ("inactive", _) => "inactive",
        ("sendonly", _) => "recvonly",
        ("recvonly", _) => "sendonly",
        _ => "sendrecv",
    };
    let ptime_ms = ptime.filter(|p| [10, 20, 30, 40].contains(p)).unwrap_or(20);
    let remote = ip
        .filter(|ip| !ip.is_unspecified() && port != 0)
        .map(|ip| SocketAddr::new(ip, port));
    let family = if local.is_ipv4() { "IP4" } else { "IP6" };
    // Written piece by piece into one buffer (this runs for every call answered); each
    // number that appears twice has its own formatting buffer, so nothing is copied out.
    let mut sdp = String::with_capacity(320);
    let mut number = itoa::Buffer::new();
    let (mut version, mut pt, mut te) = (
        itoa::Buffer::new(),
        itoa::Buffer::new(),
        itoa::Buffer::new(),
    );
    let version = version.format(session_version);
    for piece in [
        "v=0\r\no=concierge ",
        version,
        " ",
        version,
        " IN ",
        family,
        " ",
    ] {
        sdp.push_str(piece);
    }
    push_ip(&mut sdp, local.ip());
    for piece in ["\r\ns=concierge\r\nc=IN ", family, " "] {
        sdp.push_str(piece);
    }
    push_ip(&mut sdp, local.ip());
    sdp.push_str("\r\nt=0 0\r\nm=audio ");
    sdp.push_str(number.format(local.port()));
    sdp.push(' ');
    sdp.push_str(proto_offered);
    sdp.push(' ');
    let pt = pt.format(payload_type);
    sdp.push_str(pt);
    let te = telephone_event.map(|t| te.format(t));
    if let Some(te) = te {
        sdp.push(' ');
        sdp.push_str(te);
    }
    for piece in ["\r\na=rtpmap:", pt, " ", codec, "/8000\r\n"] {
        sdp.push_str(piece);
    }
    if let Some(te) = te {
        for piece in [
            "a=rtpmap:",
            te,
            " telephone-event/8000\r\na=fmtp:",
            te,
            " 0-16\r\n",
        ] {
            sdp.push_str(piece);
        }
    }
    for piece in [
        "a=ptime:",
        number.format(ptime_ms),
        "\r\na=",
        answer_direction,
        "\r\n",
    ] {
        sdp.push_str(piece);
    }
    if let Some((theirs, ours)) = &srtp {
        // Same tag and suite as the line we took, our own key (RFC 4568 §7.1.2).
        let line = CryptoAttribute {
            tag: theirs.tag,
            profile: theirs.profile,
            key: ours.clone(),
        }
        .line();
        sdp.push_str(&line);
        sdp.push_str("\r\n");
    }
    // RFC 3264 §6: every offered stream gets a line in the answer; ones we refuse, port 0.
    for m in other_media {
        sdp.push_str(m.trim_end());
        sdp.push_str("\r\n");
    }
    let session = AudioSession {
        payload_type,
        codec,
        telephone_event,
        remote,
        ptime_ms,
        send: matches!(answer_direction, "sendrecv" | "sendonly"),
        srtp: srtp.map(|(theirs, ours)| SrtpKeying {
            profile: theirs.profile,
            ours,
            theirs: theirs.key,
        }),
    };
    Ok((session, sdp))
}

/// `ip` as Display writes it; an IPv4 address (nearly every call) without the formatting
/// machinery.
fn push_ip(sdp: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut number = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    sdp.push('.');
                }
                sdp.push_str(number.format(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(sdp, "{v6}");
        }
    }
}

/// Our offer, for an INVITE that came without one (RFC 3261 §13.2.1 late offer): we offer
/// in the 200 OK and the ACK carries the answer.
pub fn offer(local: SocketAddr, session_version: u64) -> String {
    offer_with(local, session_version, None)
}

/// Our offer; with `srtp`, an `RTP/SAVP` offer keyed with it (AES_CM_128_HMAC_SHA1_80).
pub fn offer_with(local: SocketAddr, session_version: u64, srtp: Option<&MasterKey>) -> String {
    let family = if local.is_ipv4() { "IP4" } else { "IP6" };
    let ip = local.ip();
    let (proto, crypto) = offer_security(srtp);
    format!(
        "v=0\r\no=concierge {session_version} {session_version} IN {family} {ip}\r\ns=concierge\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {} {proto} 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n{crypto}",
        local.port()
    )
}

/// The transport and `a=crypto` line (with its line end) of an offer of ours.
fn offer_security(srtp: Option<&MasterKey>) -> (&'static str, String) {
    match srtp {
        Some(key) => (
            "RTP/SAVP",
            CryptoAttribute {
                tag: 1,
                profile: SrtpProfile::AesCm128HmacSha1_80,
                key: key.clone(),
            }
            .line()
                + "\r\n",
        ),
        None => ("RTP/AVP", String::new()),
    }
}

/// Our offer for a second call leg that relays `caller`'s audio untouched: only the
/// caller's codec (so packets pass through without transcoding) and telephone-event under
/// the caller's payload type (101 when the caller had none).
pub fn offer_for(local: SocketAddr, session_version: u64, caller: &AudioSession) -> String {
    offer_for_with(local, session_version, caller, None)
}

/// [`offer_for`], as `RTP/SAVP` keyed with `srtp` when given: the leg's own protection,
/// whatever the caller's.
pub fn offer_for_with(
    local: SocketAddr,
    session_version: u64,
    caller: &AudioSession,
    srtp: Option<&MasterKey>,
) -> String {
    let family = if local.is_ipv4() { "IP4" } else { "IP6" };
    let ip = local.ip();
    let pt = caller.payload_type;
    let ev = caller.telephone_event.unwrap_or(101);
    let (proto, crypto) = offer_security(srtp);
    format!(
        "v=0\r\no=concierge {session_version} {session_version} IN {family} {ip}\r\ns=concierge\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {} {proto} {pt} {ev}\r\na=rtpmap:{pt} {}/8000\r\n\
         a=rtpmap:{ev} telephone-event/8000\r\na=fmtp:{ev} 0-16\r\na=ptime:{}\r\na=sendrecv\r\n{crypto}",
        local.port(),
        caller.codec,
        caller.ptime_ms,
    )
}

/// Reads the answer to our offer: the codec it kept, where to send, and the direction.
pub fn accept(answer_sdp: &str) -> Result<AudioSession, OfferError> {
    accept_with(answer_sdp, None)
}

/// Reads the answer to an offer of ours that was keyed with `ours` (SRTP) or not: an
/// SRTP offer needs an answer with a usable `a=crypto` line.
pub fn accept_with(answer_sdp: &str, ours: Option<&MasterKey>) -> Result<AudioSession, OfferError> {
    // An answer has the same shape as an offer restricted to what was agreed; reading it
    // as one picks the same codec and direction (and the peer's key).
    let policy = match ours {
        Some(_) => SrtpPolicy::Mandatory,
        None => SrtpPolicy::Off,
    };
    let mut audio = answer_with(
        answer_sdp,
        SocketAddr::from(([0, 0, 0, 0], 0)),
        0,
        policy,
        ours,
    )
    .map(|(s, _)| s)?;
    if ours.is_none() {
        // A plain offer of ours cannot be answered with keys.
        audio.srtp = None;
    }
    Ok(audio)
}

mod fields;
#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests;
