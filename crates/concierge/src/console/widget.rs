//! `GET /widget`: the call widget a desk agent keeps open.
//!
//! - `?desk=vip-desk` (or an agent's extension): the card of the desk's current or last
//!   call, replaced live when the next call reaches the desk; without `desk`, whichever
//!   desk's card was set last.
//! - `?token=<X-Concierge-Token>&X-Concierge-Call-Id=…&X-Concierge-Caller=…&…`: a deep
//!   link from a desk phone or CRM — the token and the headers it signs, as the transfer
//!   carried them (a REFER's `Refer-To` URI headers can be appended as they are). The token
//!   is verified with this server's transfer key; the card is that call's, from its
//!   record when the console has it, else what the token signs. An expired, altered or
//!   forged token gets a page that says so.
//!
//! The query is decoded by hand: `+` stays a plus (an E.164 number), as in SIP URI
//! headers, where a form decoder would make it a space and break the signature.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use concierge_b2bua::{TokenError, CALL_ID_HEADER, TOKEN_HEADER};

use super::card::Card;
use super::{pages, App};

/// At most this many query parameters, each at most this long, are read.
const MAX_PARAMS: usize = 32;
const MAX_PARAM_CHARS: usize = 4096;

/// A desk name as `?desk=` takes it: what [`concierge_b2bua::desk_of`] can return.
pub(crate) fn valid_desk(desk: &str) -> bool {
    !desk.is_empty()
        && desk.len() <= 64
        && desk.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+' | b'*' | b'#')
        })
}

pub(crate) async fn widget(State(app): State<App>, RawQuery(query): RawQuery) -> Response {
    let params = parse_query(query.as_deref().unwrap_or_default());
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let desk = get("desk").filter(|d| !d.is_empty());
    if desk.is_some_and(|d| !valid_desk(d)) {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "Not a desk",
            "A desk is the user part of a transfer target: letters, digits and - _ . + * #.",
        );
    }
    let token = get("token").or_else(|| get(TOKEN_HEADER));
    let Some(token) = token else {
        let card = app.hub.card(desk).map(|(c, _)| c);
        return Html(pages::widget_page(card.as_deref(), desk, true).into_string()).into_response();
    };
    let Some(signer) = &app.signer else {
        return pages::error_page(
            StatusCode::FORBIDDEN,
            "This link cannot be checked",
            "This server signs no transfer tokens ([transfer] token_key_env is not set in its \
             environment), so it cannot tell a real link from a forged one.",
        );
    };
    let headers: Vec<(String, String)> = params
        .iter()
        .filter(|(n, _)| {
            !["desk", "token", "access_token"].contains(&n.to_ascii_lowercase().as_str())
                && !n.eq_ignore_ascii_case(TOKEN_HEADER)
        })
        .cloned()
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match signer.verify(token, &headers, now) {
        Ok(context) => {
            let call_id = context.get(CALL_ID_HEADER).unwrap_or_default();
            let card = app
                .hub
                .card_of_call(call_id)
                .map(|c| (*c).clone())
                .unwrap_or_else(|| Card::from_token(&context, desk));
            Html(pages::widget_page(Some(&card), desk, false).into_string()).into_response()
        }
        Err(e) => {
            let (status, message) = match &e {
                TokenError::Malformed => (
                    StatusCode::BAD_REQUEST,
                    "The token is not a Concierge transfer token (v1;exp=…;h=…;sig=…).".to_owned(),
                ),
                TokenError::Expired { .. } => (
                    StatusCode::FORBIDDEN,
                    "The transfer token has expired: tokens are valid for [transfer] token_ttl_s \
                     seconds after the transfer. Open the desk's widget instead (/widget?desk=…)."
                        .to_owned(),
                ),
                TokenError::MissingHeader(h) => (
                    StatusCode::FORBIDDEN,
                    format!("The link lacks the header {h} that the token signs: pass every X-Concierge-* header of the transfer."),
                ),
                TokenError::BadSignature => (
                    StatusCode::FORBIDDEN,
                    "The transfer token does not match: the link was altered or forged, or \
                     signed by another server's key."
                        .to_owned(),
                ),
            };
            pages::error_page(status, "This link is not valid", &message)
        }
    }
}

/// `name=value` pairs of a query, percent-decoded (`+` kept as a plus), bounded.
fn parse_query(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .chars()
            .take(MAX_PARAM_CHARS)
            .collect::<String>()
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .take(MAX_PARAMS)
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(n), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_keeps_its_plus_signs_and_is_bounded() {
        let q = parse_query("desk=vip-desk&X-Concierge-Caller=+46706170786&t=%2B1%20x");
        assert_eq!(q[1], ("X-Concierge-Caller".into(), "+46706170786".into()));
        assert_eq!(q[2].1, "+1 x");
        let many = vec!["a=b"; 100].join("&");
        assert_eq!(parse_query(&many).len(), MAX_PARAMS);
        assert!(valid_desk("vip-desk") && valid_desk("1001"));
        assert!(!valid_desk("<script>") && !valid_desk(""));
    }
}
