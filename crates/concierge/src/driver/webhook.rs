//! Call records POSTed as JSON to a webhook (`[records] webhook_url`), besides the file.
//!
//! The shard only ever `try_send`s a serialised record into a bounded queue: a slow or
//! dead receiver can never block or slow a call. One task delivers the queue in order,
//! retrying each record with exponential backoff; a record that finds the queue full, or
//! that used up its attempts, is dropped, counted (`concierge_record_webhook_dropped_total`)
//! and logged — at most one line per [`DROP_LOG_EVERY`], with the count since the last.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::config::RecordsConfig;
use crate::metrics::Metrics;

/// The longest wait between two tries of one record.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// At most one warning about dropped records this often.
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

pub(crate) struct Webhook {
    tx: mpsc::Sender<Vec<u8>>,
    metrics: Arc<Metrics>,
    drops: DropLog,
}

impl Webhook {
    /// Starts the delivery task when `[records] webhook_url` is set.
    pub(crate) fn start(cfg: &RecordsConfig, metrics: Arc<Metrics>) -> Option<Self> {
        let url = cfg.webhook_url.clone()?;
        let (tx, rx) = mpsc::channel(cfg.webhook_queue);
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.webhook_timeout_ms))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot make the webhook's HTTP client: records go to the file only");
                return None;
            }
        };
        let delivery = Delivery {
            client,
            url,
            attempts: cfg.webhook_attempts,
            backoff: Duration::from_millis(cfg.webhook_backoff_ms),
            metrics: metrics.clone(),
            drops: DropLog::default(),
        };
        tokio::spawn(delivery.run(rx, tx.clone()));
        Some(Self {
            tx,
            metrics,
            drops: DropLog::default(),
        })
    }

    /// Queues one record (its JSON); never waits.
    pub(crate) fn offer(&mut self, json: Vec<u8>) {
        match self.tx.try_send(json) {
            Ok(()) => {}
            Err(_) => {
                self.metrics.webhook_dropped("queue_full");
                self.drops
                    .dropped("webhook queue full: call record dropped");
            }
        }
        self.metrics
            .set_webhook_queued(self.tx.max_capacity() - self.tx.capacity());
    }
}

struct Delivery {
    client: reqwest::Client,
    url: String,
    attempts: u32,
    backoff: Duration,
    metrics: Arc<Metrics>,
    drops: DropLog,
}

impl Delivery {
    /// `tx` is only read for the queue's length (the gauge).
    async fn run(mut self, mut rx: mpsc::Receiver<Vec<u8>>, tx: mpsc::Sender<Vec<u8>>) {
        let tx = tx.downgrade();
        while let Some(body) = rx.recv().await {
            let mut wait = self.backoff;
            let mut delivered = false;
            for attempt in 1..=self.attempts {
                if attempt > 1 {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_BACKOFF);
                    self.metrics.webhook_retried();
                }
                match self.post(&body).await {
                    Ok(()) => {
                        delivered = true;
                        break;
                    }
                    // The URL may carry a token: the error is shown without it.
                    Err(why) => debug!(attempt, %why, "webhook POST failed"),
                }
            }
            if delivered {
                self.metrics.webhook_delivered();
            } else {
                self.metrics.webhook_dropped("attempts");
                self.drops
                    .dropped("webhook unreachable: call record dropped after its last attempt");
            }
            if let Some(tx) = tx.upgrade() {
                self.metrics
                    .set_webhook_queued(tx.max_capacity() - tx.capacity());
            }
        }
    }

    async fn post(&self, body: &[u8]) -> Result<(), String> {
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("status {}", response.status()))
        }
    }
}

/// Rate-limited warnings: the first drop, then one line per [`DROP_LOG_EVERY`].
#[derive(Default)]
struct DropLog {
    last: Option<Instant>,
    since: u64,
}

impl DropLog {
    fn dropped(&mut self, what: &'static str) {
        self.since += 1;
        let now = Instant::now();
        if self
            .last
            .is_none_or(|t| now.duration_since(t) >= DROP_LOG_EVERY)
        {
            warn!(dropped = self.since, "{what}");
            self.last = Some(now);
            self.since = 0;
        }
    }
}
