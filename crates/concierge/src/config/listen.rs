//! The addresses we are reached on: `[sip] listen` ([`Listen`], one address or several)
//! and the hosts and media addresses derived from it and `advertised_host`.

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use super::Config;

/// `[sip] listen`: one address, or several (IPv4 and IPv6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listen(Vec<SocketAddr>);

impl Listen {
    /// A single listen address: the default, and what `--listen` makes.
    pub(crate) fn one(addr: SocketAddr) -> Self {
        Self(vec![addr])
    }

    /// Every address, the first being the primary one (its port goes into Via).
    pub(crate) fn all(&self) -> &[SocketAddr] {
        &self.0
    }

    /// The primary address.
    pub(crate) fn first(&self) -> SocketAddr {
        self.0
            .first()
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 5060)))
    }

    /// The primary address's port: the one our Via and Contact name.
    pub(crate) fn port(&self) -> u16 {
        self.first().port()
    }

    /// The primary address's IP (unspecified when listening on every interface).
    pub(crate) fn ip(&self) -> IpAddr {
        self.first().ip()
    }

    /// The first IPv6 address, when one is listened on beside an IPv4 one.
    pub(crate) fn v6(&self) -> Option<SocketAddr> {
        self.0.iter().copied().find(SocketAddr::is_ipv6)
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            One(SocketAddr),
            Many(Vec<SocketAddr>),
        }
        match Form::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected \"ADDR:PORT\" or a list of them, e.g. [\"0.0.0.0:5060\", \"[::]:5060\"]",
            )
        })? {
            Form::One(a) => Ok(Self(vec![a])),
            Form::Many(v) if v.is_empty() => Err(serde::de::Error::custom(
                "the list of listen addresses is empty",
            )),
            Form::Many(v) => Ok(Self(v)),
        }
    }
}

impl Config {
    /// The host callers reach us on, for Contact, Via and SDP (bracketed when IPv6):
    /// `advertised_host` when set, else the listen address, else 127.0.0.1 when listening
    /// on every interface. Read by the driver, TLS set-up and `simulate`.
    pub(crate) fn advertised_host(&self) -> String {
        match &self.sip.advertised_host {
            Some(h) => h.clone(),
            None if self.sip.listen.ip().is_unspecified() => "127.0.0.1".into(),
            None => match self.sip.listen.ip() {
                IpAddr::V6(v6) => format!("[{v6}]"),
                ip => ip.to_string(),
            },
        }
    }

    /// The IP for SDP and RTP sockets: the advertised host when it is an address, else the
    /// listen address, else loopback.
    pub(crate) fn media_ip(&self) -> IpAddr {
        self.media_ip_v4_or_only()
    }

    /// Our host for IPv6 peers when we listen on IPv6 beside IPv4 (bracketed): the IPv6
    /// listen address, `[::1]` when that is unspecified. `None` with an IPv6
    /// `advertised_host` (it is used for everyone) or without an IPv6 listener.
    pub(crate) fn advertised_host_v6(&self) -> Option<String> {
        let ip = self.media_ip_v6()?;
        Some(format!("[{ip}]"))
    }

    /// The media address for IPv6 peers (see [`Self::advertised_host_v6`]).
    pub(crate) fn media_ip_v6(&self) -> Option<IpAddr> {
        if self.media_ip().is_ipv6() {
            return None;
        }
        let v6 = self.sip.listen.v6()?.ip();
        Some(if v6.is_unspecified() {
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        } else {
            v6
        })
    }

    fn media_ip_v4_or_only(&self) -> IpAddr {
        let host = self.advertised_host();
        host.trim_matches(|c| c == '[' || c == ']')
            .parse()
            .ok()
            .or_else(|| (!self.sip.listen.ip().is_unspecified()).then(|| self.sip.listen.ip()))
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    #[test]
    fn listen_takes_one_address_or_a_list_and_ipv6_gets_its_own_host_and_media_address() {
        let one =
            Config::parse(Path::new("c.toml"), "[sip]\nlisten = \"127.0.0.1:5070\"\n").unwrap();
        assert_eq!(one.sip.listen.all(), ["127.0.0.1:5070".parse().unwrap()]);
        assert_eq!(one.advertised_host_v6(), None);
        let both = Config::parse(
            Path::new("c.toml"),
            "[sip]\nlisten = [\"127.0.0.1:5070\", \"[::1]:5070\"]\n",
        )
        .unwrap();
        assert_eq!(both.sip.listen.port(), 5070);
        assert_eq!(both.advertised_host(), "127.0.0.1");
        assert_eq!(both.advertised_host_v6().as_deref(), Some("[::1]"));
        assert_eq!(both.media_ip_v6(), Some("::1".parse().unwrap()));
        // IPv6 only: the one host is IPv6 and there is no second one.
        let v6 = Config::parse(Path::new("c.toml"), "[sip]\nlisten = \"[::1]:5070\"\n").unwrap();
        assert_eq!(v6.advertised_host(), "[::1]");
        assert_eq!(v6.media_ip_v6(), None);
        for bad in ["listen = []", "listen = [\"nope\"]", "listen = 5"] {
            let e = Config::parse(Path::new("c.toml"), &format!("[sip]\n{bad}\n")).unwrap_err();
            let e = e.to_string();
            assert!(e.contains("ADDR:PORT") || e.contains("empty"), "{bad}: {e}");
        }
    }
}
