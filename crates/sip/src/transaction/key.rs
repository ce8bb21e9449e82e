use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::ids::Branch;
use crate::wire::{Method, Request, Response, MAGIC_COOKIE};

/// What identifies a transaction.
///
/// RFC 3261 §17.2.3: with a magic-cookie branch, the branch, the sent-by of the top Via and
/// the method (ACK counted as INVITE) identify a server transaction; CANCEL is a
/// transaction of its own with the same branch. Requests from RFC 2543 elements lack the
/// cookie and are matched on Call-ID, From tag, CSeq number and the top Via instead.
/// §17.1.3: a response matches a client transaction by branch and CSeq method.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TsxKey {
    /// The top Via's branch: for a client transaction one we generated, for a server
    /// transaction the peer's (empty when it sent none).
    branch: Branch,
    /// What else tells server transactions apart: the top Via's sent-by, or for an RFC 2543
    /// request the headers that stand in for a cookie branch. None for a client key.
    scope: Scope,
    method: Method,
    server: bool,
    /// The other fields hashed once, when the key is made (see the `Hash` impl). Last, so
    /// the derived order is the fields' order as before.
    fingerprint: u64,
}

/// A key is looked up several times per message (its transaction, the timer heap, the
/// switch's index): it is hashed once, with keys random per process (std's SipHash, so a
/// peer choosing branches cannot aim at one bucket), and each table hashes that number.
impl std::hash::Hash for TsxKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.fingerprint);
    }
}

/// What tells server transactions with one branch apart (see [`TsxKey`]). Kept as parts,
/// not as the text `host:port`: the Via's host is shared, so a key costs no copy of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    /// A client transaction's key.
    None,
    /// The top Via's sent-by, host and port (§17.2.3).
    SentBy(Arc<str>, Option<u16>),
    /// An RFC 2543 request's Call-ID, From tag, CSeq number and top Via, as one text.
    Rfc2543(Arc<str>),
}

/// The parts of a key hashed in one write (see [`crate::hash_parts`]); equal keys have
/// equal parts.
fn fingerprint(branch: &Branch, scope: &Scope, method: &Method, server: bool) -> u64 {
    use std::hash::BuildHasher;
    static KEYS: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    let (kind, text, port): (u8, &str, Option<u16>) = match scope {
        Scope::None => (0, "", None),
        Scope::SentBy(host, port) => (1, host, *port),
        Scope::Rfc2543(text) => (2, text, None),
    };
    let port = port.map_or([0; 3], |p| {
        let [high, low] = p.to_be_bytes();
        [1, high, low]
    });
    let mut state = KEYS.get_or_init(std::hash::RandomState::new).build_hasher();
    crate::hash_parts::write_parts(
        &mut state,
        &[
            branch.as_str().as_bytes(),
            &[kind, u8::from(server)],
            text.as_bytes(),
            &port,
            method.as_str().as_bytes(),
        ],
    );
    state.finish()
}

impl TsxKey {
    /// The key of the server transaction `request` belongs to. An ACK maps to its INVITE.
    pub fn server(request: &Request) -> Self {
        let method = match request.method {
            Method::Ack => Method::Invite,
            ref m => m.clone(),
        };
        let via = request.top_via();
        let branch = via.and_then(|v| v.branch()).unwrap_or_default();
        let scope = match via {
            Some(v) if branch.starts_with(MAGIC_COOKIE) => Scope::SentBy(v.host.clone(), v.port),
            _ => Scope::Rfc2543(
                format!(
                    "2543|{}|{}|{}|{}",
                    request.call_id,
                    request.from.tag().unwrap_or_default(),
                    request.cseq.seq,
                    via.map(|v| v.sent_by()).unwrap_or_default(),
                )
                .into(),
            ),
        };
        let branch = Branch::from(branch);
        Self {
            fingerprint: fingerprint(&branch, &scope, &method, true),
            branch,
            scope,
            method,
            server: true,
        }
    }

    /// The INVITE server transaction a CANCEL refers to (§9.2).
    pub fn cancelled_invite(cancel: &Request) -> Self {
        let mut key = Self::server(cancel);
        key.method = Method::Invite;
        key.fingerprint = fingerprint(&key.branch, &key.scope, &key.method, key.server);
        key
    }

    /// The key of a client transaction for a request we send with `branch`.
    pub fn client(branch: Branch, method: &Method) -> Self {
        let method = match method {
            Method::Ack => Method::Invite,
            m => m.clone(),
        };
        Self {
            fingerprint: fingerprint(&branch, &Scope::None, &method, false),
            branch,
            scope: Scope::None,
            method,
            server: false,
        }
    }

    /// The client transaction a response belongs to.
    pub fn for_response(response: &Response) -> Option<Self> {
        let branch = Branch::from(response.top_via()?.branch()?);
        Some(Self::client(branch, &response.cseq.method))
    }

    /// The branch of the top Via: for one of our client transactions the one we generated
    /// (the CANCEL of an INVITE shares the INVITE's, §9.1).
    pub fn branch(&self) -> &Branch {
        &self.branch
    }

    /// The method of the transaction (ACK never has one; CANCEL has its own).
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Whether this is a server transaction's key.
    pub fn is_server(&self) -> bool {
        self.server
    }
}

/// A map keyed by [`TsxKey`] that takes the key's fingerprint as the table's hash. The
/// fingerprint already is a keyed SipHash (random per process) of the key's parts, so a
/// peer choosing branches cannot aim at one bucket; hashing it a second time with SipHash,
/// as a std map would, costs about a hundred instructions a look-up and adds nothing.
pub type TsxMap<V> = HashMap<TsxKey, V, BuildHasherDefault<FingerprintHasher>>;

/// The hasher of a [`TsxMap`]: the fingerprint [`TsxKey`]'s `Hash` writes is the hash.
#[derive(Debug, Default, Clone, Copy)]
pub struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    /// Only a `TsxKey` is hashed here, and it writes one `u64`; anything else is mixed in
    /// (FNV-1a) rather than lost.
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
