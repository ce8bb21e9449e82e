//! The console's static files, compiled into the binary: its script and stylesheet, and
//! Mermaid (vendored from its npm package with its licence, `assets/mermaid/`) to draw the
//! flow diagram in the browser — the same `concierge diagram` graph the README shows,
//! with no CDN and no JS build step.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// Where the page loads Mermaid from; the version in the path lets browsers keep it.
pub(crate) const MERMAID_PATH: &str = "/assets/mermaid-11.17.2.min.js";

static MERMAID: &[u8] = include_bytes!("../../assets/mermaid/mermaid.min.js");
static SCRIPT: &[u8] = include_bytes!("../../assets/console.js");
static STYLE: &[u8] = include_bytes!("../../assets/console.css");

/// `GET /assets/{file}`.
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type, cache) = match file.as_str() {
        f if Some(f) == MERMAID_PATH.strip_prefix("/assets/") => (
            MERMAID,
            "text/javascript; charset=utf-8",
            "public, max-age=31536000, immutable",
        ),
        "console.js" => (SCRIPT, "text/javascript; charset=utf-8", "no-cache"),
        "console.css" => (STYLE, "text/css; charset=utf-8", "no-cache"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}
