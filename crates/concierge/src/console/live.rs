//! The pages' live updates, as Server-Sent Events.
//!
//! No per-client queue: a stream waits for the hub's change signal (a `watch`, which never
//! blocks the shard), lets [`COALESCE`] pass so a burst of calls makes one update, and then
//! renders the state as it is. A client that reads slowly, or not at all, only holds its
//! own TCP buffer; when it reads again it gets the latest state, not a backlog. At most
//! [`MAX_STREAMS`] pages follow at once; more get 503 (their browser retries).

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::Deserialize;

use super::{pages, App, ConsoleQuery, LIVE_SHOWN, ROWS_SHOWN};

/// Live pages open at once, console and widgets together.
pub(crate) const MAX_STREAMS: usize = 64;
/// Changes within this are sent as one update.
const COALESCE: Duration = Duration::from_millis(250);
/// The console updates at least this often while calls are in progress (their time in
/// call moves on).
const REFRESH: Duration = Duration::from_secs(5);

/// One open live page; its count goes down when the stream is dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(streams: &Arc<AtomicUsize>) -> Option<Self> {
        let taken = streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_STREAMS).then_some(n + 1)
            })
            .is_ok();
        taken.then(|| Self(streams.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn busy() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("retry-after", "10")],
        "too many live pages are open\n",
    )
        .into_response()
}

/// `GET /events/console`: the console's live parts (the same query as the page), as one
/// JSON object of rendered fragments per update.
pub(crate) async fn console_events(
    State(app): State<App>,
    Query(q): Query<ConsoleQuery>,
) -> Response {
    let Some(slot) = Slot::take(&app.streams) else {
        return busy();
    };
    let q = q.bounded();
    let changes = app.hub.subscribe();
    let updates = stream::unfold((changes, slot, true), move |(mut changes, slot, first)| {
        let (app, q) = (app.clone(), q.clone());
        async move {
            if !first {
                tokio::select! {
                    changed = changes.changed() => changed.ok()?,
                    _ = tokio::time::sleep(REFRESH) => {}
                }
                tokio::time::sleep(COALESCE).await;
            }
            changes.borrow_and_update();
            let view = app.hub.console_view(&q.filter, ROWS_SHOWN, LIVE_SHOWN);
            let flow = pages::selected_flow(&view, q.flow.as_deref());
            let data = serde_json::json!({
                "live": pages::live_table(&view).into_string(),
                "counts": pages::counts_table(&view, flow).into_string(),
                "diagram": pages::diagram_source(&view, flow),
                "today": pages::today_table(&view).into_string(),
                "records": pages::records_table(&view).into_string(),
                "status": pages::status_sections(&view).into_string(),
            });
            let event = Event::default().event("update").data(data.to_string());
            Some((Ok::<_, Infallible>(event), (changes, slot, false)))
        }
    });
    Sse::new(updates)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The widget stream's query.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct WidgetQuery {
    desk: Option<String>,
}

/// `GET /events/widget?desk=…`: the desk's card (rendered), each time a new one is set —
/// the first at once, so a reconnecting page catches up.
pub(crate) async fn widget_events(
    State(app): State<App>,
    Query(q): Query<WidgetQuery>,
) -> Response {
    let desk = q.desk.filter(|d| !d.is_empty());
    if desk
        .as_deref()
        .is_some_and(|d| !super::widget::valid_desk(d))
    {
        return (StatusCode::BAD_REQUEST, "not a desk name\n").into_response();
    }
    let Some(slot) = Slot::take(&app.streams) else {
        return busy();
    };
    let changes = app.hub.subscribe();
    let updates = stream::unfold(
        (changes, slot, None::<u64>),
        move |(mut changes, slot, mut shown)| {
            let (app, desk) = (app.clone(), desk.clone());
            async move {
                loop {
                    changes.borrow_and_update();
                    let current = app.hub.card(desk.as_deref());
                    let set = current.as_ref().map(|(_, set)| *set);
                    if set.is_some() && set != shown {
                        shown = set;
                        let card = current.map(|(c, _)| c);
                        let html = pages::card_fragment(card.as_deref()).into_string();
                        let event = Event::default().event("update").data(html);
                        return Some((Ok::<_, Infallible>(event), (changes, slot, shown)));
                    }
                    changes.changed().await.ok()?;
                    tokio::time::sleep(COALESCE).await;
                }
            }
        },
    );
    Sse::new(updates)
        .keep_alive(KeepAlive::default())
        .into_response()
}
