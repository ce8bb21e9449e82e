//! The demo customer directory: the HTTP API a customer would run, served by this process
//! on 127.0.0.1 from `config/customers.csv`, so the shipped VIP flow really calls an API.
//!
//! `GET /customers/{number}` and `GET /customers/by-id/{id}` answer
//! `{"customer": {"number", "name", "hasVIPMembership", "tier", "customerId"}}` or 404.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub(crate) enum DirectoryError {
    #[cfg(test)]
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: line {line}: {message}")]
    Line {
        file: PathBuf,
        line: usize,
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Customer {
    pub(crate) number: String,
    pub(crate) name: String,
    #[serde(rename = "hasVIPMembership")]
    pub(crate) has_vip_membership: bool,
    pub(crate) tier: Option<String>,
    pub(crate) customer_id: String,
}

#[derive(Debug, Default)]
pub(crate) struct Directory {
    by_number: HashMap<String, Customer>,
    by_id: HashMap<String, Customer>,
}

impl Directory {
    /// Reads `number,name,vip,tier,customer_id` rows; `#` lines and the header are skipped.
    /// (The server reads the file through [`crate::program::directory`].)
    #[cfg(test)]
    pub(crate) fn load(path: &Path) -> Result<Self, DirectoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| DirectoryError::Read {
            file: path.into(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Reads `number,name,vip,tier,customer_id` rows from the text of `path`; `#` lines
    /// and the header are skipped.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, DirectoryError> {
        let mut dir = Self::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("number,") {
                continue;
            }
            let bad = |message: String| DirectoryError::Line {
                file: path.into(),
                line: i + 1,
                message,
            };
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            let [number, name, vip, tier, id] = cols[..] else {
                return Err(bad(format!("expected 5 columns, found {}", cols.len())));
            };
            let has_vip_membership = match vip {
                "true" => true,
                "false" => false,
                other => return Err(bad(format!("vip must be true or false, not {other:?}"))),
            };
            let c = Customer {
                number: number.to_owned(),
                name: name.to_owned(),
                has_vip_membership,
                tier: (!tier.is_empty()).then(|| tier.to_owned()),
                customer_id: id.to_owned(),
            };
            dir.by_id.insert(c.customer_id.clone(), c.clone());
            dir.by_number.insert(c.number.clone(), c);
        }
        Ok(dir)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_number.len()
    }
}

#[derive(Serialize)]
struct Found<'a> {
    customer: &'a Customer,
}

/// Serves `directory` on `addr` until the process ends; returns the bound address.
pub(crate) async fn serve(directory: Directory, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let state = Arc::new(directory);
    let app = Router::new()
        .route("/customers/by-id/{id}", get(by_id))
        .route("/customers/{number}", get(by_number))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "demo directory stopped");
        }
    });
    Ok(bound)
}

type Reply = Result<Json<serde_json::Value>, (StatusCode, Json<serde_json::Value>)>;

async fn by_number(State(dir): State<Arc<Directory>>, UrlPath(number): UrlPath<String>) -> Reply {
    found(dir.by_number.get(&number))
}

async fn by_id(State(dir): State<Arc<Directory>>, UrlPath(id): UrlPath<String>) -> Reply {
    found(dir.by_id.get(&id))
}

fn found(customer: Option<&Customer>) -> Reply {
    match customer {
        Some(customer) => Ok(Json(
            serde_json::to_value(Found { customer }).unwrap_or_default(),
        )),
        None => Err((
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "no such customer" })),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Directory {
        Directory::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/customers.csv"
        )))
        .unwrap()
    }

    #[test]
    fn shipped_directory_has_vips_and_others() {
        let d = shipped();
        assert!(d.len() >= 4);
        assert!(d.by_number["+46706170786"].has_vip_membership);
        assert!(!d.by_number["+46700000003"].has_vip_membership);
        assert_eq!(d.by_id["202020"].tier.as_deref(), Some("silver"));
    }

    #[test]
    fn a_bad_row_names_file_and_line() {
        let dir = std::env::temp_dir().join(format!("concierge-dir-{}.csv", std::process::id()));
        std::fs::write(&dir, "number,name,vip,tier,customer_id\n+1,A,maybe,,1\n").unwrap();
        let e = Directory::load(&dir).unwrap_err().to_string();
        let _ = std::fs::remove_file(&dir);
        assert!(e.contains("line 2") && e.contains("maybe"), "{e}");
    }

    #[tokio::test]
    async fn serves_json_with_the_membership_flag_and_404s_unknown_numbers() {
        let addr = serve(shipped(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let client = reqwest::Client::new();
        let body: serde_json::Value = client
            .get(format!("http://{addr}/customers/%2B46706170786"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["customer"]["hasVIPMembership"], true);
        assert_eq!(body["customer"]["tier"], "gold");
        let missing = client
            .get(format!("http://{addr}/customers/+1999"))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
    }
}
