//! The live console and call widget (`[console] listen`): a small web app served by this
//! process with axum — server-rendered HTML (maud, every value escaped), a little vanilla
//! JavaScript, and Server-Sent Events for what changes. No JS build step and no CDN:
//! the script, the stylesheet and Mermaid are compiled into the binary (`assets.rs`).
//!
//! - `/` the console: calls in progress, the flow diagram with live counts per node, today's
//!   outcomes, recent calls with filters, status sections, and a reload button.
//! - `/widget?desk=…` the call widget: the card of the desk's current or last call, popped
//!   up live; `/widget?token=…` opens one call's card from its signed transfer context.
//! - `/events/console`, `/events/widget`: their live updates (see `live.rs`).
//! - `/api/counts`: today's counts as JSON, for scripts.
//! - `POST /reload`: the reload of SIGHUP, answered with its result or the `check`
//!   problems (file:line) that refused it.
//!
//! The state is a [`Hub`] the shard feeds; who may look is [`access::Access`]'s call.

mod access;
mod assets;
pub(crate) mod card;
pub(crate) mod hub;
mod live;
mod pages;
mod widget;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use concierge_b2bua::TransferSigner;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

pub(crate) use access::Access;
pub(crate) use hub::Hub;

use crate::reload::ReloadRequest;

/// How many recent calls and calls in progress a page lists.
const ROWS_SHOWN: usize = 100;
const LIVE_SHOWN: usize = 200;
/// How long `POST /reload` waits for the reload to finish.
const RELOAD_WAIT: Duration = Duration::from_secs(60);
/// Every page's security headers: no inline script may run (escaping is the first line,
/// this the second), nothing loads from elsewhere, no other site may frame the pages, and
/// no address (which may hold a token) leaks as a Referer.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; object-src 'none'; base-uri 'none'; \
                   frame-ancestors 'none'; form-action 'self'";

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct App {
    hub: Arc<Hub>,
    access: Arc<Access>,
    reload: mpsc::Sender<ReloadRequest>,
    /// Verifies transfer tokens for `/widget?token=`; `None` when transfers go unsigned.
    signer: Option<TransferSigner>,
    /// Live (SSE) pages open now.
    streams: Arc<AtomicUsize>,
}

/// Binds `addr` and serves the console until the process ends; returns the bound address.
pub(crate) async fn serve(
    addr: SocketAddr,
    hub: Arc<Hub>,
    access: Access,
    reload: mpsc::Sender<ReloadRequest>,
    signer: Option<TransferSigner>,
) -> std::io::Result<SocketAddr> {
    let app = App {
        hub,
        access: Arc::new(access),
        reload,
        signer,
        streams: Arc::new(AtomicUsize::new(0)),
    };
    let router = Router::new()
        .route("/", get(console))
        .route("/widget", get(widget::widget))
        .route("/events/console", get(live::console_events))
        .route("/events/widget", get(live::widget_events))
        .route("/api/counts", get(counts))
        .route("/reload", post(reload_flows))
        .route("/assets/{file}", get(assets::asset))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            access::guard,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "console stopped");
        }
    });
    Ok(bound)
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The console's query: which flow to draw, and the recent calls' filter.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ConsoleQuery {
    flow: Option<String>,
    #[serde(flatten)]
    filter: hub::Filter,
}

impl ConsoleQuery {
    /// Each value at most 64 characters: they come from the address bar.
    fn bounded(mut self) -> Self {
        for v in [
            &mut self.flow,
            &mut self.filter.outcome,
            &mut self.filter.vip,
            &mut self.filter.to,
        ]
        .into_iter()
        .flatten()
        {
            *v = v.chars().take(64).collect();
        }
        self
    }
}

async fn console(State(app): State<App>, Query(q): Query<ConsoleQuery>) -> Html<String> {
    let q = q.bounded();
    let view = app.hub.console_view(&q.filter, ROWS_SHOWN, LIVE_SHOWN);
    Html(pages::console_page(&view, q.flow.as_deref(), &q.filter, app.access.csrf()).into_string())
}

/// `GET /api/counts?flow=…`: today's calls by outcome and, for the flow, by node (calls
/// that visited it today, and calls there now).
async fn counts(State(app): State<App>, Query(q): Query<ConsoleQuery>) -> Json<serde_json::Value> {
    let q = q.bounded();
    let view = app.hub.console_view(&hub::Filter::default(), 0, 0);
    let flow = pages::selected_flow(&view, q.flow.as_deref()).map(|f| f.name.clone());
    let by_node = |counts: &std::collections::HashMap<(String, String), u64>| {
        counts
            .iter()
            .filter(|((f, _), _)| Some(f) == flow.as_ref())
            .map(|((_, node), n)| (node.clone(), *n))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    Json(serde_json::json!({
        "flow": flow,
        "calls_today": view.today.calls,
        "outcomes_today": view.today.outcomes,
        "nodes_today": by_node(&view.today.nodes),
        "nodes_now": by_node(&view.here),
        "calls_in_progress": view.live_total,
    }))
}

/// `POST /reload` from the console's button: needs the page's CSRF token (a header, which
/// a cross-site form cannot send); answers JSON `{applied, message, problems}`.
async fn reload_flows(State(app): State<App>, headers: HeaderMap) -> Response {
    let answer = |status: StatusCode, applied: bool, message: String, problems: Vec<String>| {
        (
            status,
            Json(
                serde_json::json!({ "applied": applied, "message": message, "problems": problems }),
            ),
        )
            .into_response()
    };
    if !app.access.csrf_ok(&headers) {
        return answer(
            StatusCode::FORBIDDEN,
            false,
            "Refused: the request did not come from the console page (no CSRF token).".into(),
            Vec::new(),
        );
    }
    let (tx, rx) = oneshot::channel();
    if app
        .reload
        .try_send(ReloadRequest { reply: Some(tx) })
        .is_err()
    {
        return answer(
            StatusCode::TOO_MANY_REQUESTS,
            false,
            "Reloads are already waiting; try again in a moment.".into(),
            Vec::new(),
        );
    }
    match tokio::time::timeout(RELOAD_WAIT, rx).await {
        Ok(Ok(Ok(summary))) => answer(
            StatusCode::OK,
            true,
            format!("Reload applied: new calls run {summary}."),
            Vec::new(),
        ),
        Ok(Ok(Err(problems))) => answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            false,
            "Reload refused: the running flows keep serving. `concierge check` finds:".into(),
            problems,
        ),
        _ => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            false,
            "No answer from the reload.".into(),
            Vec::new(),
        ),
    }
}
