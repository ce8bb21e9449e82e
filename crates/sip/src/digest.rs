//! HTTP Digest authentication for our outbound requests (RFC 3261 §22.4 with RFC 2617's
//! `qop=auth`, and RFC 8760's SHA-256): reading a `WWW-Authenticate`/`Proxy-Authenticate`
//! challenge and computing the `Authorization`/`Proxy-Authorization` answer.
// Peer bytes reach every function here: a slice at a byte offset inside a multi-byte
// character, or an index past the end, would be a remote panic. Use `get(..)` instead.
#![deny(clippy::string_slice, clippy::indexing_slicing)]

use md5::Md5;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// A Digest algorithm (RFC 8760).
pub enum Algorithm {
    /// `MD5`.
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
}

impl Algorithm {
    fn parse(token: &str) -> Option<Self> {
        match token.to_ascii_uppercase().as_str() {
            "MD5" => Some(Self::Md5),
            "MD5-SESS" => Some(Self::Md5Sess),
            "SHA-256" => Some(Self::Sha256),
            "SHA-256-SESS" => Some(Self::Sha256Sess),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            Self::Md5 | Self::Md5Sess => hex(&Md5::digest(data.as_bytes())),
            Self::Sha256 | Self::Sha256Sess => hex(&Sha256::digest(data.as_bytes())),
        }
    }

    /// Stronger algorithms win when a server offers several challenges (RFC 8760 §2.4).
    fn strength(self) -> u8 {
        match self {
            Self::Md5 | Self::Md5Sess => 0,
            Self::Sha256 | Self::Sha256Sess => 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
/// Why a challenge cannot be answered.
pub enum DigestError {
    #[error("not a Digest challenge")]
    /// The scheme is not Digest.
    NotDigest,
    #[error("the challenge has no {0}")]
    /// A parameter the answer needs is missing.
    Missing(&'static str),
    #[error("unsupported algorithm {0:?}")]
    /// An algorithm we do not implement.
    Algorithm(String),
    #[error("the challenge only offers qop {0:?} (we do \"auth\")")]
    /// No qop we can use.
    Qop(String),
    #[error("the challenge's {0} is too long or holds quotes, backslashes or control characters")]
    /// A value our answer echoes between quotes would break (or bloat) the header it
    /// goes in.
    Unechoable(&'static str),
}

/// Realm, nonce and opaque are echoed in our answer: longer than this is refused, so a
/// server cannot make our requests grow without bound.
const MAX_ECHOED_LEN: usize = 512;

/// Whether `value` may go back between quotes in our answer as it is.
fn echoable(value: &str) -> bool {
    value.len() <= MAX_ECHOED_LEN
        && !value
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
}

/// One challenge from a 401 or 407.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The protection space.
    pub realm: String,
    /// The server's nonce.
    pub nonce: String,
    /// Opaque value to echo.
    pub opaque: Option<String>,
    /// The hash algorithm.
    pub algorithm: Algorithm,
    /// The server offered `qop=auth`; without it the RFC 2069 form is used.
    pub qop_auth: bool,
    /// The nonce was stale: retry with the same credentials.
    pub stale: bool,
}

impl Challenge {
    /// Parses one `WWW-Authenticate` or `Proxy-Authenticate` value.
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let value = value.trim();
        let (scheme, params) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("digest") {
            return Err(DigestError::NotDigest);
        }
        let params = auth_params(params);
        let get = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let algorithm = match get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(&a).ok_or(DigestError::Algorithm(a))?,
        };
        let qop_auth = match get("qop") {
            None => false,
            Some(q) if q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")) => true,
            Some(q) => return Err(DigestError::Qop(q)),
        };
        // Every value the answer echoes between quotes is checked here, once for every user
        // of a challenge (bridge legs and registrations alike).
        let echoed = |name: &'static str, value: Option<String>| match value {
            Some(v) if !echoable(&v) => Err(DigestError::Unechoable(name)),
            v => Ok(v),
        };
        Ok(Self {
            realm: echoed("realm", get("realm"))?.ok_or(DigestError::Missing("realm"))?,
            nonce: echoed("nonce", get("nonce"))?.ok_or(DigestError::Missing("nonce"))?,
            opaque: echoed("opaque", get("opaque"))?,
            algorithm,
            qop_auth,
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The strongest challenge we can answer among `values`.
    pub fn best<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Self, DigestError> {
        let mut best: Option<Self> = None;
        let mut last_err = DigestError::NotDigest;
        for v in values {
            match Self::parse(v) {
                Ok(c)
                    if best
                        .as_ref()
                        .is_none_or(|b| c.algorithm.strength() > b.algorithm.strength()) =>
                {
                    best = Some(c)
                }
                Ok(_) => {}
                Err(e) => last_err = e,
            }
        }
        best.ok_or(last_err)
    }

    /// The credentials line answering this challenge for `method` on `uri`. `cnonce` is
    /// the client's random nonce and `nc` how many times this nonce was used (from 1).
    pub fn answer(
        &self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let alg = self.algorithm;
        let mut ha1 = alg.hash(&format!("{username}:{}:{password}", self.realm));
        if matches!(alg, Algorithm::Md5Sess | Algorithm::Sha256Sess) {
            ha1 = alg.hash(&format!("{ha1}:{}:{cnonce}", self.nonce));
        }
        let ha2 = alg.hash(&format!("{method}:{uri}"));
        let nc = format!("{nc:08x}");
        let response = if self.qop_auth {
            alg.hash(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            alg.hash(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let mut out = format!(
            "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
            self.realm,
            self.nonce,
            alg.as_str()
        );
        if self.qop_auth {
            out.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        }
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque=\"{o}\""));
        }
        out
    }
}

/// `name=value` pairs, values quoted (with `\` escapes) or tokens, separated by commas.
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let name: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_owned();
        if name.is_empty() {
            return out;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_owned();
        }
        out.push((name, value));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    fn response_of(line: &str) -> &str {
        line.split("response=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
    }

    #[test]
    fn a_challenge_whose_echoed_values_would_break_our_answer_is_refused() {
        // A quote in the realm would end the quoted-string early in our Authorization
        // line; a nonce of a megabyte would go into every request we send.
        let quoted = "Digest realm=\"a\\\"b\", nonce=\"n\"";
        assert_eq!(
            Challenge::parse(quoted),
            Err(DigestError::Unechoable("realm"))
        );
        let long = format!("Digest realm=\"r\", nonce=\"{}\"", "x".repeat(513));
        assert_eq!(
            Challenge::parse(&long),
            Err(DigestError::Unechoable("nonce"))
        );
        let control = "Digest realm=\"r\", nonce=\"n\", opaque=\"o\u{7}\"";
        assert_eq!(
            Challenge::parse(control),
            Err(DigestError::Unechoable("opaque"))
        );
        assert!(Challenge::parse("Digest realm=\"r\", nonce=\"n\", opaque=\"o\"").is_ok());
    }

    #[test]
    fn rfc_2617_section_3_5_md5_with_qop_auth() {
        let c = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        let line = c.answer(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "0a4f113b",
            1,
        );
        assert_eq!(response_of(&line), "6629fae49393a05397450978507c4ef1");
        assert!(
            line.contains("nc=00000001")
                && line.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"")
        );
    }

    const RFC7616: &str = "realm=\"http-auth@example.org\", qop=\"auth, auth-int\", nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";

    #[test]
    fn rfc_7616_section_3_9_1_sha256_and_md5() {
        let sha = Challenge::parse(&format!("Digest {RFC7616}, algorithm=SHA-256")).unwrap();
        let md5 = Challenge::parse(&format!("Digest {RFC7616}, algorithm=MD5")).unwrap();
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let ask = |c: &Challenge| {
            c.answer(
                "Mufasa",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                cnonce,
                1,
            )
        };
        assert_eq!(
            response_of(&ask(&sha)),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        assert_eq!(response_of(&ask(&md5)), "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn the_strongest_offered_challenge_is_answered() {
        let best = Challenge::best([
            format!("Digest {RFC7616}, algorithm=MD5").as_str(),
            format!("Digest {RFC7616}, algorithm=SHA-256").as_str(),
        ])
        .unwrap();
        assert_eq!(best.algorithm, Algorithm::Sha256);
    }

    #[test]
    fn what_we_cannot_answer_is_a_typed_error() {
        assert_eq!(
            Challenge::parse("Basic realm=\"x\""),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            Challenge::parse("Digest realm=\"x\", nonce=\"n\", algorithm=SHA-512-256"),
            Err(DigestError::Algorithm("SHA-512-256".into()))
        );
        assert_eq!(
            Challenge::parse("Digest realm=\"x\", nonce=\"n\", qop=\"auth-int\""),
            Err(DigestError::Qop("auth-int".into()))
        );
        assert_eq!(
            Challenge::parse("Digest nonce=\"n\""),
            Err(DigestError::Missing("realm"))
        );
    }
}
