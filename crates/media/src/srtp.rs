//! SRTP (RFC 3711) for RTP packets, sans-IO: AES-128 in counter mode for the payload and
//! HMAC-SHA1 (80- or 32-bit tags) over header, payload and rollover counter. The cipher and
//! the MAC are RustCrypto's `aes`/`ctr` and `hmac`/`sha1`; this module is the protocol
//! around them — key derivation (§4.3), the packet index (§3.3.1, Appendix A), the IV
//! (§4.1.1) and the replay list (§3.3.2).
//!
//! One [`SrtpContext`] protects one direction: the switch keeps one for what it sends
//! (our key) and one for what it receives (the peer's key). A context follows any number
//! of SSRCs (a relayed leg passes the far end's SSRC through), each with its own rollover
//! counter and replay window; a stream's state is only created once a packet of it
//! authenticated, so forged packets cannot fill the table.
//!
//! SRTCP is not done: Concierge does not bind RTCP ports.

use std::fmt;

use aes::cipher::{InnerIvInit, KeyIvInit, StreamCipher};
use aes::Aes128;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

type Aes128Ctr = ctr::Ctr128BE<Aes128>;

/// The SDES crypto suites we speak (RFC 4568 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpProfile {
    /// AES_CM_128_HMAC_SHA1_80: 80-bit authentication tag.
    AesCm128HmacSha1_80,
    /// AES_CM_128_HMAC_SHA1_32: 32-bit authentication tag.
    AesCm128HmacSha1_32,
}

impl SrtpProfile {
    /// The suite's name in `a=crypto`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite named `name` in an `a=crypto` line, when we speak it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(Self::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(Self::AesCm128HmacSha1_32),
            _ => None,
        }
    }

    /// Bytes of authentication tag after each packet.
    pub fn tag_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => 10,
            Self::AesCm128HmacSha1_32 => 4,
        }
    }
}

/// Master key and salt of one direction (RFC 3711 §8.2), 30 bytes in `a=crypto`.
/// Its `Debug` shows no key material, so it can sit in structs that are logged.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    /// The 128-bit master key.
    pub key: [u8; 16],
    /// The 112-bit master salt.
    pub salt: [u8; 14],
}

impl MasterKey {
    /// Bytes of key plus salt.
    pub const LEN: usize = 30;

    /// Key then salt, as SDES carries them.
    pub fn from_bytes(b: &[u8; Self::LEN]) -> Self {
        let mut key = [0; 16];
        let mut salt = [0; 14];
        key.copy_from_slice(&b[..16]);
        salt.copy_from_slice(&b[16..]);
        Self { key, salt }
    }

    /// Key then salt, as SDES carries them.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0; Self::LEN];
        b[..16].copy_from_slice(&self.key);
        b[16..].copy_from_slice(&self.salt);
        b
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Why a packet was not protected or not accepted. No variant carries packet bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// Not an RTP packet.
    #[error("not an RTP packet (short, wrong version or bad header length)")]
    Malformed,
    /// The authentication tag does not match: forged or corrupted.
    #[error("authentication tag does not match")]
    AuthFailed,
    /// The packet index was seen already.
    #[error("packet index already received (replay)")]
    Replayed,
    /// The packet index is older than the replay window.
    #[error("packet index older than the replay window")]
    TooOld,
    /// The buffer to protect in place has no room for the authentication tag.
    #[error("no room for the authentication tag")]
    NoRoom,
}

/// The session keys derived from a master key (§4.3.1), key derivation rate 0, kept in the
/// form each packet uses them: the cipher's key schedule run once, and the MAC with its
/// inner and outer pads hashed once (each packet clones it), so a packet pays only for
/// its own bytes.
#[derive(Clone)]
struct SessionKeys {
    cipher: Aes128,
    mac: Hmac<Sha1>,
    salt: [u8; 14],
}

/// SRTP labels for the RTP session keys (§4.3.1).
const LABEL_CIPHER: u8 = 0x00;
const LABEL_AUTH: u8 = 0x01;
const LABEL_SALT: u8 = 0x02;

/// Packets remembered behind the highest index (§3.3.2: at least 64).
const REPLAY_WINDOW: u64 = 64;
/// SSRCs one context follows; beyond this the least recently used is forgotten.
const MAX_STREAMS: usize = 8;

/// One SSRC's place in its packet sequence.
#[derive(Debug, Clone, Copy)]
struct Stream {
    ssrc: u32,
    /// Rollover counter and highest sequence number seen (`s_l`).
    roc: u32,
    s_l: u16,
    /// Highest authenticated index, and which of the 64 below it were received
    /// (bit 0 is `max_index` itself).
    max_index: u64,
    window: u64,
    last_use: u64,
}

/// One direction's SRTP state: keys and the streams seen. See the module docs.
pub struct SrtpContext {
    profile: SrtpProfile,
    keys: SessionKeys,
    streams: Vec<Stream>,
    uses: u64,
}

impl fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("streams", &self.streams.len())
            .finish_non_exhaustive()
    }
}

impl SrtpContext {
    /// A context for one direction, keyed from `master` (RFC 3711 §4.3).
    pub fn new(profile: SrtpProfile, master: &MasterKey) -> Self {
        Self {
            profile,
            keys: derive_session_keys(master),
            streams: Vec::new(),
            uses: 0,
        }
    }

    /// The crypto suite of this context.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// Encrypts and authenticates the RTP packet `rtp` into `out` (cleared first; empty
    /// when the packet is refused).
    pub fn protect(&mut self, rtp: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        out.clear();
        out.extend_from_slice(rtp);
        out.resize(rtp.len() + self.profile.tag_len(), 0);
        match self.protect_in_place(out, rtp.len()) {
            Ok(_) => Ok(()),
            Err(e) => {
                out.clear();
                Err(e)
            }
        }
    }

    /// Encrypts and authenticates, in place, the RTP packet in the first `len` bytes of
    /// `packet`, and writes the authentication tag after it: the packet is written once,
    /// where it will be sent from. Returns the SRTP packet's length (`len` plus the tag).
    /// `packet` must have room for the tag ([`SrtpProfile::tag_len`]); a refused packet
    /// (not RTP, no room, or an index already used) is left as it was.
    pub fn protect_in_place(&mut self, packet: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.profile.tag_len();
        let (rtp, rest) = packet
            .split_at_mut_checked(len)
            .ok_or(SrtpError::Malformed)?;
        let tag_room = rest.get_mut(..tag_len).ok_or(SrtpError::NoRoom)?;
        let header_len = rtp_header_len(rtp)?;
        let (ssrc, seq) = ssrc_seq(rtp);
        let (v, known) = match self.stream(ssrc) {
            Some(s) => (estimate_roc(s.roc, s.s_l, seq), true),
            None => (0, false),
        };
        // Our own sequence only moves forward; a guess below zero cannot happen for it.
        let roc = u32::try_from(v.max(0)).unwrap_or(u32::MAX);
        let index = (u64::from(roc) << 16) | u64::from(seq);
        // §9.2: an index must never be encrypted twice under one key (the keystream would
        // repeat). Our own sender never does; a relayed stream that repeats or jumps far
        // back is refused rather than sent.
        if let Some(s) = self.stream(ssrc) {
            if index <= s.max_index {
                let behind = s.max_index - index;
                if behind >= REPLAY_WINDOW {
                    return Err(SrtpError::TooOld);
                }
                if s.window & (1 << behind) != 0 {
                    return Err(SrtpError::Replayed);
                }
            }
        }
        self.apply_keystream(ssrc, index, &mut rtp[header_len..]);
        let tag = self.tag(rtp, roc);
        tag_room.copy_from_slice(&tag[..tag_len]);
        self.update(ssrc, seq, roc, index, known);
        Ok(len + tag_len)
    }

    /// Checks and decrypts the SRTP packet `srtp` into `out` (cleared first): the RTP packet
    /// it carried. A forged, replayed or too old packet changes nothing.
    pub fn unprotect(&mut self, srtp: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let tag_len = self.profile.tag_len();
        let Some(body_len) = srtp.len().checked_sub(tag_len) else {
            return Err(SrtpError::Malformed);
        };
        let (body, tag) = srtp.split_at(body_len);
        let header_len = rtp_header_len(body)?;
        let (ssrc, seq) = ssrc_seq(body);
        let stream = self.stream(ssrc).copied();
        let (roc, index) = match &stream {
            Some(s) => {
                let v = estimate_roc(s.roc, s.s_l, seq);
                let roc = u32::try_from(v).map_err(|_| SrtpError::TooOld)?;
                let index = (u64::from(roc) << 16) | u64::from(seq);
                // §3.3.2: the replay list is checked before the (costlier) tag.
                if index <= s.max_index {
                    let behind = s.max_index - index;
                    if behind >= REPLAY_WINDOW {
                        return Err(SrtpError::TooOld);
                    }
                    if s.window & (1 << behind) != 0 {
                        return Err(SrtpError::Replayed);
                    }
                }
                (roc, index)
            }
            // §3.3.1: a new stream starts with ROC 0 at its first packet.
            None => (0, u64::from(seq)),
        };
        let mut mac = self.mac();
        mac.update(body);
        mac.update(&roc.to_be_bytes());
        mac.verify_truncated_left(tag)
            .map_err(|_| SrtpError::AuthFailed)?;
        out.clear();
        out.extend_from_slice(body);
        self.apply_keystream(ssrc, index, &mut out[header_len..]);
        self.update(ssrc, seq, roc, index, stream.is_some());
        Ok(())
    }

    fn stream(&self, ssrc: u32) -> Option<&Stream> {
        self.streams.iter().find(|s| s.ssrc == ssrc)
    }

    /// Records an accepted (or sent) packet: Appendix A's update of ROC and `s_l`, and
    /// the replay window.
    fn update(&mut self, ssrc: u32, seq: u16, roc: u32, index: u64, known: bool) {
        self.uses += 1;
        let uses = self.uses;
        if !known {
            if self.streams.len() >= MAX_STREAMS {
                if let Some(oldest) = self
                    .streams
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| s.last_use)
                    .map(|(i, _)| i)
                {
                    self.streams.swap_remove(oldest);
                }
            }
            self.streams.push(Stream {
                ssrc,
                roc,
                s_l: seq,
                max_index: index,
                window: 1,
                last_use: uses,
            });
            return;
        }
        let Some(s) = self.streams.iter_mut().find(|s| s.ssrc == ssrc) else {
            return;
        };
        s.last_use = uses;
        if roc > s.roc {
            (s.roc, s.s_l) = (roc, seq);
        } else if roc == s.roc && seq > s.s_l {
            s.s_l = seq;
        }
        if index > s.max_index {
            let ahead = index - s.max_index;
            s.window = if ahead >= REPLAY_WINDOW {
                1
            } else {
                (s.window << ahead) | 1
            };
            s.max_index = index;
        } else if s.max_index - index < REPLAY_WINDOW {
            s.window |= 1 << (s.max_index - index);
        }
    }

    fn mac(&self) -> Hmac<Sha1> {
        self.keys.mac.clone()
    }

    /// §4.2: HMAC-SHA1 over the authenticated portion and the ROC.
    fn tag(&self, authenticated: &[u8], roc: u32) -> [u8; 20] {
        let mut mac = self.mac();
        mac.update(authenticated);
        mac.update(&roc.to_be_bytes());
        mac.finalize().into_bytes().into()
    }

    /// §4.1.1: IV = (k_s · 2^16) XOR (SSRC · 2^64) XOR (i · 2^16).
    fn apply_keystream(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.keys.salt);
        for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        for (b, i) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *b ^= i;
        }
        let core = ctr::CtrCore::inner_iv_init(self.keys.cipher.clone(), (&iv).into());
        let mut cipher = Aes128Ctr::from_core(core);
        cipher.apply_keystream(data);
    }
}

/// AES-128 in counter mode (§4.1.1) applied to `data` in place.
fn aes_cm(key: &[u8; 16], iv: &[u8; 16], data: &mut [u8]) {
    let mut cipher = Aes128Ctr::new(key.into(), iv.into());
    cipher.apply_keystream(data);
}

/// §4.3.1 with key derivation rate 0 (r = 0): x = (label · 2^48) XOR master salt, and the
/// session key is the AES-CM keystream under the master key from IV x · 2^16.
fn derive(master: &MasterKey, label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(&master.salt);
    // key_id = label || r (48 bits of zero), right-aligned under the 112-bit salt.
    iv[7] ^= label;
    out.fill(0);
    aes_cm(&master.key, &iv, out);
}

fn derive_session_keys(master: &MasterKey) -> SessionKeys {
    let (cipher, auth, salt) = session_key_bytes(master);
    SessionKeys {
        cipher: <Aes128 as aes::cipher::KeyInit>::new(&cipher.into()),
        mac: <Hmac<Sha1> as KeyInit>::new_from_slice(&auth)
            .expect("HMAC takes a key of any length"),
        salt,
    }
}

/// The session cipher key, authentication key and salt (§4.3.1).
fn session_key_bytes(master: &MasterKey) -> ([u8; 16], [u8; 20], [u8; 14]) {
    let (mut cipher, mut auth, mut salt) = ([0; 16], [0; 20], [0; 14]);
    derive(master, LABEL_CIPHER, &mut cipher);
    derive(master, LABEL_AUTH, &mut auth);
    derive(master, LABEL_SALT, &mut salt);
    (cipher, auth, salt)
}

/// Appendix A: the rollover counter the packet with `seq` most likely belongs to, given
/// the stream's `roc` and highest sequence `s_l`. May be −1 (a packet from before the
/// stream's first one) or `roc + 1` (the sequence wrapped).
fn estimate_roc(roc: u32, s_l: u16, seq: u16) -> i64 {
    let roc = i64::from(roc);
    let (s_l, seq) = (i64::from(s_l), i64::from(seq));
    if s_l < 32_768 {
        if seq - s_l > 32_768 {
            roc - 1
        } else {
            roc
        }
    } else if s_l - 32_768 > seq {
        roc + 1
    } else {
        roc
    }
}

/// Length of the RTP header (fixed part, CSRCs, extension): what stays in the clear.
fn rtp_header_len(p: &[u8]) -> Result<usize, SrtpError> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    let mut len = 12 + 4 * usize::from(p[0] & 0x0f);
    if p[0] & 0x10 != 0 {
        let words = p
            .get(len + 2..len + 4)
            .ok_or(SrtpError::Malformed)
            .map(|w| usize::from(u16::from_be_bytes([w[0], w[1]])))?;
        len += 4 + 4 * words;
    }
    if len > p.len() {
        return Err(SrtpError::Malformed);
    }
    Ok(len)
}

fn ssrc_seq(p: &[u8]) -> (u32, u16) {
    (
        u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        u16::from_be_bytes([p[2], p[3]]),
    )
}

#[cfg(test)]
mod tests;
