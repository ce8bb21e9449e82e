//! Who may use the console: [`Access`] and its guard, in front of every page but the
//! static assets.
//!
//! Without `[console] token_env` the console is open to whoever reaches it, which the
//! config allows only on a loopback address; a web page the operator visits could still
//! reach 127.0.0.1 through a name of its own (DNS rebinding), so such requests must name
//! a loopback host. With a token, a request carries it as `Authorization: Bearer …`, or a
//! browser presents it once as `?access_token=…` (RFC 6750 §2.3) and gets an HttpOnly,
//! SameSite=Strict cookie holding a value derived from it, and the address without the
//! token. The reload button's POST also needs the page's CSRF token in a header a cross-site
//! form cannot set. Tokens are compared in constant time and never logged.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::App;

/// The cookie a browser keeps after presenting the token.
const COOKIE: &str = "concierge_console";
/// The query parameter that presents the token once.
const TOKEN_PARAM: &str = "access_token";
/// The header the reload button sends its CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-concierge-csrf";

/// The console's access rules, made once at start-up.
pub(crate) struct Access {
    /// The access token; `None`: open (loopback only).
    token: Option<String>,
    /// The cookie value a presented token earns: HMAC(token, a fixed label), so the cookie
    /// is not the token itself.
    session: Option<String>,
    /// This process's CSRF token for the reload button (random at start).
    csrf: String,
}

/// What the guard decided about one request.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Allow,
    /// The token was presented in the address: keep it as a cookie, go to `location`.
    SignIn {
        location: String,
    },
    /// No (or a wrong) token.
    Unauthorized,
    /// An open console reached by a name that is not a loopback host.
    WrongHost,
}

impl Access {
    pub(crate) fn new(token: Option<String>) -> Self {
        let session = token.as_deref().map(|t| {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(t.as_bytes())
                .expect("HMAC takes a key of any length");
            mac.update(b"concierge console session v1");
            hex(&mac.finalize().into_bytes())
        });
        Self {
            token,
            session,
            csrf: hex(&rand::random::<[u8; 32]>()),
        }
    }

    /// The CSRF token the console page embeds and its reload button sends back.
    pub(crate) fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether a POST carries this process's CSRF token.
    pub(crate) fn csrf_ok(&self, headers: &HeaderMap) -> bool {
        headers
            .get(CSRF_HEADER)
            .is_some_and(|v| equal(v.as_bytes(), self.csrf.as_bytes()))
    }

    fn judge(&self, method: &Method, uri: &axum::http::Uri, headers: &HeaderMap) -> Verdict {
        let (Some(token), Some(session)) = (&self.token, &self.session) else {
            return if loopback_host(headers) {
                Verdict::Allow
            } else {
                Verdict::WrongHost
            };
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|b| equal(b.trim().as_bytes(), token.as_bytes())) {
            return Verdict::Allow;
        }
        if cookie(headers, COOKIE).is_some_and(|c| equal(c.as_bytes(), session.as_bytes())) {
            return Verdict::Allow;
        }
        let query = uri.query().unwrap_or_default();
        let presented = query
            .split('&')
            .filter_map(|p| p.strip_prefix(&format!("{TOKEN_PARAM}=")))
            .next()
            .map(|v| percent_encoding::percent_decode_str(v).decode_utf8_lossy());
        match presented {
            Some(t) if *method == Method::GET && equal(t.as_bytes(), token.as_bytes()) => {
                let rest: Vec<&str> = query
                    .split('&')
                    .filter(|p| !p.is_empty() && !p.starts_with(&format!("{TOKEN_PARAM}=")))
                    .collect();
                let mut location = uri.path().to_owned();
                if !rest.is_empty() {
                    location.push('?');
                    location.push_str(&rest.join("&"));
                }
                Verdict::SignIn { location }
            }
            _ => Verdict::Unauthorized,
        }
    }
}

/// The guard in front of every page: see the module doc.
pub(crate) async fn guard(State(app): State<App>, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/assets/") {
        return next.run(request).await;
    }
    match app
        .access
        .judge(request.method(), request.uri(), request.headers())
    {
        Verdict::Allow => next.run(request).await,
        Verdict::SignIn { location } => {
            let session = app.access.session.clone().unwrap_or_default();
            let cookie = format!("{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/");
            let mut response = StatusCode::SEE_OTHER.into_response();
            let headers = response.headers_mut();
            if let (Ok(location), Ok(cookie)) = (
                HeaderValue::from_str(&location),
                HeaderValue::from_str(&cookie),
            ) {
                headers.insert(header::LOCATION, location);
                headers.insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Verdict::Unauthorized => {
            let mut response = super::pages::error_page(
                StatusCode::UNAUTHORIZED,
                "Sign in",
                "This console needs its access token: open the page once with ?access_token=… \
                 (the token in the environment variable `[console] token_env` names), \
                 or send Authorization: Bearer ….",
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"concierge console\""),
            );
            response
        }
        Verdict::WrongHost => super::pages::error_page(
            StatusCode::MISDIRECTED_REQUEST,
            "Wrong address",
            "This console is open only on this machine: open it as http://127.0.0.1:PORT/ \
             or http://localhost:PORT/.",
        ),
    }
}

/// Whether the Host header names this machine (an IP literal on loopback, or `localhost`).
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The value of cookie `name` in the request's Cookie headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Constant-time equality (the lengths may differ; that much is not secret).
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(n.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn judge(access: &Access, method: Method, uri: &str, h: &HeaderMap) -> Verdict {
        access.judge(&method, &uri.parse().unwrap(), h)
    }

    #[test]
    fn an_open_console_answers_only_to_loopback_names() {
        let open = Access::new(None);
        for host in [
            "127.0.0.1:8088",
            "localhost:8088",
            "[::1]:8088",
            "127.0.0.2",
        ] {
            let h = headers(&[(header::HOST, host)]);
            assert_eq!(judge(&open, Method::GET, "/", &h), Verdict::Allow, "{host}");
        }
        for host in ["evil.example:8088", "10.0.0.1:8088"] {
            let h = headers(&[(header::HOST, host)]);
            assert_eq!(
                judge(&open, Method::GET, "/", &h),
                Verdict::WrongHost,
                "{host}"
            );
        }
        assert_eq!(
            judge(&open, Method::GET, "/", &HeaderMap::new()),
            Verdict::WrongHost
        );
    }

    #[test]
    fn with_a_token_a_request_needs_it_once_then_the_cookie() {
        let access = Access::new(Some("s3cret".into()));
        let none = HeaderMap::new();
        assert_eq!(
            judge(&access, Method::GET, "/", &none),
            Verdict::Unauthorized
        );
        let bearer = headers(&[(header::AUTHORIZATION, "Bearer s3cret")]);
        assert_eq!(
            judge(&access, Method::POST, "/reload", &bearer),
            Verdict::Allow
        );
        let wrong = headers(&[(header::AUTHORIZATION, "Bearer s3cre")]);
        assert_eq!(
            judge(&access, Method::GET, "/", &wrong),
            Verdict::Unauthorized
        );
        assert_eq!(
            judge(
                &access,
                Method::GET,
                "/widget?desk=vip-desk&access_token=s3cret",
                &none
            ),
            Verdict::SignIn {
                location: "/widget?desk=vip-desk".into()
            }
        );
        assert_eq!(
            judge(&access, Method::GET, "/?access_token=nope", &none),
            Verdict::Unauthorized
        );
        // Not through a POST's address.
        assert_eq!(
            judge(&access, Method::POST, "/reload?access_token=s3cret", &none),
            Verdict::Unauthorized
        );
        let session = access.session.clone().unwrap();
        assert!(!session.contains("s3cret"), "the cookie is not the token");
        let cookie = headers(&[(header::COOKIE, &format!("a=b; {COOKIE}={session}"))]);
        assert_eq!(judge(&access, Method::GET, "/", &cookie), Verdict::Allow);
    }

    #[test]
    fn the_reload_needs_this_process_s_csrf_token() {
        let access = Access::new(None);
        assert!(!access.csrf_ok(&HeaderMap::new()));
        let mut h = HeaderMap::new();
        h.insert(CSRF_HEADER, HeaderValue::from_str(access.csrf()).unwrap());
        assert!(access.csrf_ok(&h));
        assert_ne!(Access::new(None).csrf(), access.csrf());
    }
}
