//! A flow's HTTP requests as the switch carries them out: the lookup cache first (a fresh
//! answer means no request at all), then the driver; the result settles the cache (a
//! failing server may be stood in for by a kept answer) before the flow sees it.

use std::time::{Duration, Instant};

use concierge_flow::{CacheUse, Event, HttpFailure, HttpRequest, HttpResponse};
use tracing::{debug, info};

use super::{Comfort, Switch};
use crate::call::Waiting;
use crate::output::{CallRef, Output};

/// How long after an HTTP node's own timeout the switch stops waiting for the driver.
const HTTP_GRACE: Duration = Duration::from_secs(2);

impl Switch {
    /// The wall time in Unix seconds, for `system.now` (opening hours).
    pub(super) fn unix_s(&self, now: Instant) -> i64 {
        (self.wall.unix_ms(now) / 1000) as i64
    }

    /// Performs an [`concierge_flow::Action::Http`]: from the cache when it holds a fresh
    /// answer (the event is returned at once), else by the driver.
    pub(super) fn start_http(
        &mut self,
        now: Instant,
        id: CallRef,
        request: Box<HttpRequest>,
    ) -> Option<Event> {
        let call = self.calls.get_mut(&id)?;
        let flow = call.flow.as_mut()?;
        if let Some(response) = self.lookups.fresh(now, &request) {
            debug!(node = %request.node, "HTTP answer from the cache");
            flow.run.note_cache(Some(CacheUse::Hit));
            return Some(Event::HttpResult(Ok(response)));
        }
        flow.waiting = Waiting::Http {
            overdue: now + request.delay + request.timeout + HTTP_GRACE,
        };
        flow.comfort = request
            .comfort
            .as_ref()
            .map(|spec| Comfort::new(now + request.delay + spec.after, spec));
        flow.in_flight = request.cache.is_some().then(|| (*request).clone());
        debug!(node = %request.node, url = %request.url_for_log(), "HTTP request");
        self.outputs.push_back(Output::Http { call: id, request });
        None
    }

    /// The request's result (or the watchdog's timeout): settle the cache, silence the
    /// comfort audio and let the flow go on.
    pub(super) fn http_done(
        &mut self,
        now: Instant,
        id: CallRef,
        result: Result<HttpResponse, HttpFailure>,
    ) {
        self.stop_comfort(id);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(flow) = call.flow.as_mut() else {
            return;
        };
        let (result, used) = match flow.in_flight.take() {
            Some(request) => {
                let (result, used) = self.lookups.settle(now, &request, result);
                if used == Some(CacheUse::Stale) {
                    call.span.in_scope(|| {
                        info!(node = %request.node, "HTTP server failed; the cached answer stands in (stale)")
                    });
                }
                (result, used)
            }
            None => (result, None),
        };
        flow.run.note_cache(used);
        self.feed(now, id, Event::HttpResult(result));
    }
}
