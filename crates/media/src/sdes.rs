//! SDES key exchange for SRTP (RFC 4568): the `a=crypto` attribute that carries each
//! side's master key in the SDP, the policy that decides whether a call must, may or must
//! not be encrypted, and the pair of SRTP contexts a call keeps once keys are agreed.
//!
//! Keys travel in the SDP, so an SDP body with `a=crypto` is as secret as the media: it is
//! never logged, and [`SrtpKeying`]'s `Debug` shows no key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::srtp::{MasterKey, SrtpContext, SrtpError, SrtpProfile};

/// Whether calls are encrypted (`[rtp] srtp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpPolicy {
    /// Plain RTP only: an `RTP/SAVP` offer is refused with 488.
    Off,
    /// SRTP when the offer asks for it (`RTP/SAVP`, or `a=crypto` on `RTP/AVP`), plain RTP
    /// otherwise.
    #[default]
    Optional,
    /// SRTP only: a plain offer is refused with 488, and our own offers are `RTP/SAVP`.
    Mandatory,
}

/// One `a=crypto` line we can use: its tag, suite and the sender's master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    /// The line's tag, echoed in the answer (RFC 4568 §6.1).
    pub tag: u32,
    /// The crypto suite.
    pub profile: SrtpProfile,
    /// The sender's master key and salt.
    pub key: MasterKey,
}

impl CryptoAttribute {
    /// Reads the value of an `a=crypto:` attribute (what follows the colon). `None` for a
    /// line we cannot use: another suite, a malformed or wrong-length key, several keys or an
    /// MKI (we key once per call), or session parameters (they would change the transform).
    pub fn parse(value: &str) -> Option<Self> {
        let mut f = value.split_whitespace();
        let tag = f.next()?;
        if tag.is_empty() || tag.len() > 9 || !tag.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let profile = SrtpProfile::from_name(f.next()?)?;
        let key_params = f.next()?;
        if f.next().is_some() || key_params.contains(';') {
            return None;
        }
        let mut parts = key_params.strip_prefix("inline:")?.split('|');
        let material = STANDARD.decode(parts.next()?).ok()?;
        let material: [u8; MasterKey::LEN] = material.try_into().ok()?;
        for p in parts {
            // A lifetime (`2^31` or a number) is fine: no call of ours lasts that many
            // packets. An MKI (`1:4`) is not supported.
            if p.contains(':') {
                return None;
            }
        }
        Some(Self {
            tag: tag.parse().ok()?,
            profile,
            key: MasterKey::from_bytes(&material),
        })
    }

    /// The attribute line, `a=crypto:TAG SUITE inline:KEY`, without line end.
    pub fn line(&self) -> String {
        format!(
            "a=crypto:{} {} inline:{}",
            self.tag,
            self.profile.name(),
            STANDARD.encode(self.key.to_bytes())
        )
    }
}

/// The keys a call agreed: the suite, our master key (what we send) and the peer's (what
/// we receive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeying {
    /// The crypto suite both sides use.
    pub profile: SrtpProfile,
    /// Our master key: what we send is protected with it.
    pub ours: MasterKey,
    /// The peer's master key: what we receive is checked with it.
    pub theirs: MasterKey,
}

/// A call leg's SRTP: one context for what we send, one for what we receive.
#[derive(Debug)]
pub struct SrtpSession {
    keying: SrtpKeying,
    tx: SrtpContext,
    rx: SrtpContext,
    /// Packets refused (forged, replayed, too old, malformed), for the logs' counts.
    pub rejected: u64,
}

impl SrtpSession {
    /// Contexts for both directions of a call leg from the agreed keys.
    pub fn new(keying: &SrtpKeying) -> Self {
        Self {
            keying: keying.clone(),
            tx: SrtpContext::new(keying.profile, &keying.ours),
            rx: SrtpContext::new(keying.profile, &keying.theirs),
            rejected: 0,
        }
    }

    /// New keys from a renegotiation (re-INVITE): a direction whose key and suite did not
    /// change keeps its context — its packet index goes on, so no keystream is reused.
    pub fn rekey(&mut self, keying: &SrtpKeying) {
        if keying.profile != self.keying.profile || keying.ours != self.keying.ours {
            self.tx = SrtpContext::new(keying.profile, &keying.ours);
        }
        if keying.profile != self.keying.profile || keying.theirs != self.keying.theirs {
            self.rx = SrtpContext::new(keying.profile, &keying.theirs);
        }
        self.keying = keying.clone();
    }

    /// RTP we send → SRTP.
    pub fn protect(&mut self, rtp: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        self.tx.protect(rtp, out)
    }

    /// RTP we send → SRTP, in place: the packet in `packet[..len]`, its tag written after
    /// it (see [`SrtpContext::protect_in_place`]). Returns the SRTP packet's length.
    pub fn protect_in_place(&mut self, packet: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        self.tx.protect_in_place(packet, len)
    }

    /// SRTP we received → RTP; a refused packet is counted.
    pub fn unprotect(&mut self, srtp: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let r = self.rx.unprotect(srtp, out);
        if r.is_err() {
            self.rejected += 1;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pjsip_crypto_line_is_read_and_written_back() {
        let value = "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
        let c = CryptoAttribute::parse(value).unwrap();
        assert_eq!((c.tag, c.profile), (1, SrtpProfile::AesCm128HmacSha1_80));
        assert_eq!(c.line(), format!("a=crypto:{value}"));
        let c = CryptoAttribute::parse(
            "2 AES_CM_128_HMAC_SHA1_32 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31",
        )
        .unwrap();
        assert_eq!((c.tag, c.profile), (2, SrtpProfile::AesCm128HmacSha1_32));
    }

    #[test]
    fn lines_we_cannot_use_are_skipped() {
        let key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
        for value in [
            format!("1 AEAD_AES_256_GCM inline:{key}"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:4"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key} UNENCRYPTED_SRTP"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key};inline:{key}"),
            "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=".into(),
            "1 AES_CM_128_HMAC_SHA1_80 inline:!!!notbase64!!!".into(),
            format!("x AES_CM_128_HMAC_SHA1_80 inline:{key}"),
            "1 AES_CM_128_HMAC_SHA1_80".into(),
            String::new(),
        ] {
            assert!(CryptoAttribute::parse(&value).is_none(), "{value}");
        }
    }

    #[test]
    fn the_two_sides_of_a_session_talk() {
        let a = MasterKey::from_bytes(&[1; 30]);
        let b = MasterKey::from_bytes(&[2; 30]);
        let profile = SrtpProfile::AesCm128HmacSha1_32;
        let mut us = SrtpSession::new(&SrtpKeying {
            profile,
            ours: a.clone(),
            theirs: b.clone(),
        });
        let mut them = SrtpSession::new(&SrtpKeying {
            profile,
            ours: b,
            theirs: a,
        });
        let rtp = [0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9, 0xff, 0xff];
        let (mut wire, mut back) = (Vec::new(), Vec::new());
        us.protect(&rtp, &mut wire).unwrap();
        them.unprotect(&wire, &mut back).unwrap();
        assert_eq!(back, rtp);
        // Our own packet fed back to us does not pass: the directions have their own keys.
        assert!(us.unprotect(&wire, &mut back).is_err());
        assert_eq!(us.rejected, 1);
    }
}
