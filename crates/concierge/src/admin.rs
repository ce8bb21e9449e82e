//! The operator's HTTP listener (`[metrics] listen`): `GET /metrics` (Prometheus),
//! `GET /healthz` (200 while accepting calls, 503 while draining), `POST /-/reload`
//! (the same reload as SIGHUP, answering with its result) and `GET /-/status` (each
//! trunk's registration, as `concierge status` prints it) — and [`ask`], the client side
//! of `concierge reload` and `concierge status`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, oneshot, watch};

use crate::driver::Shutdown;
use crate::metrics::Metrics;
use crate::reload::ReloadRequest;

#[derive(Clone)]
struct Admin {
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<Shutdown>,
    reload: mpsc::Sender<ReloadRequest>,
}

/// Binds `addr` and serves until the process ends; returns the bound address.
pub(crate) async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<Shutdown>,
    reload: mpsc::Sender<ReloadRequest>,
) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .route("/-/reload", post(reload_now))
        .route("/-/status", get(status))
        .with_state(Admin {
            metrics,
            shutdown,
            reload,
        });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    });
    Ok(bound)
}

async fn metrics_page(State(admin): State<Admin>, headers: HeaderMap) -> impl IntoResponse {
    // Prometheus asks for OpenMetrics first; anything else gets the classic text format.
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    (
        [(header::CONTENT_TYPE, content_type)],
        admin.metrics.render(openmetrics),
    )
}

async fn healthz(State(admin): State<Admin>) -> impl IntoResponse {
    if *admin.shutdown.borrow() == Shutdown::Running {
        (StatusCode::OK, "accepting calls\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    }
}

/// Each trunk's registration now (`concierge status`).
async fn status(State(admin): State<Admin>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        admin.metrics.trunk_report(),
    )
}

/// `concierge reload` / `concierge status`: sends `method path` to the running server's
/// `[metrics] listen` (read from `config`, by default `config/concierge.toml`), prints
/// the answer, and fails when the server cannot be asked or answers an error. `what`
/// names the endpoint in the message when `[metrics] listen` is off.
pub(crate) fn ask(
    config: Option<&std::path::Path>,
    method: reqwest::Method,
    path: &str,
    what: &str,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let file = config.unwrap_or(std::path::Path::new(crate::demo::embedded::CONFIG));
    let cfg = match crate::config::Config::load(Some(file)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("concierge: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(mut addr) = cfg.metrics.listen else {
        eprintln!(
            "concierge: {}: [metrics] listen is not set, so the server has no {what}{}",
            file.display(),
            if path == "/-/reload" {
                "; send it SIGHUP instead"
            } else {
                ""
            }
        );
        return ExitCode::from(2);
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let Some(runtime) = crate::runtime() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async move {
        let url = format!("http://{addr}{path}");
        match reqwest::Client::new().request(method, &url).send().await {
            Ok(r) => {
                let ok = r.status().is_success();
                print!("{}", r.text().await.unwrap_or_default());
                if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("concierge: {url}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// How long `POST /-/reload` waits for the reload to finish.
const RELOAD_WAIT: Duration = Duration::from_secs(60);

async fn reload_now(State(admin): State<Admin>) -> impl IntoResponse {
    let (tx, rx) = oneshot::channel();
    if admin
        .reload
        .try_send(ReloadRequest { reply: Some(tx) })
        .is_err()
    {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "reloads are already waiting\n".to_owned(),
        );
    }
    match tokio::time::timeout(RELOAD_WAIT, rx).await {
        Ok(Ok(Ok(summary))) => (StatusCode::OK, format!("reload applied: {summary}\n")),
        Ok(Ok(Err(problems))) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "reload refused; the running version keeps serving:\n{}\n",
                problems.join("\n")
            ),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no answer from the reload\n".to_owned(),
        ),
    }
}
