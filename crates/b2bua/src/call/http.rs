//! A flow's HTTP requests as a call carries them out: the lookup cache first (a fresh
//! answer means no request at all), then the driver; the result settles the cache (a
//! failing server may be stood in for by a kept answer) before the flow sees it.
//!
//! Comfort audio while a request waits ("never silence"): after the node's
//! `comfort.after_ms` the call is answered if it still rings (in early media it plays
//! before the answer instead), `comfort.prompt` plays once and `comfort.hold` loops until
//! the result arrives, which stops it at once.

use std::time::Duration;

use concierge_flow::{CacheUse, ComfortSpec, Event, HttpFailure, HttpRequest, HttpResponse};
use tracing::{debug, info, warn};

use super::{Call, CallTimer, Cx, Waiting};
use crate::output::Output;

/// How long after an HTTP node's own timeout the call stops waiting for the driver.
const HTTP_GRACE: Duration = Duration::from_secs(2);

/// One request's comfort audio.
#[derive(Debug)]
pub(crate) struct Comfort {
    prompt: Option<String>,
    hold: Option<String>,
    /// Started: audio is (or, until the media is up, will be) playing.
    sounding: bool,
}

impl Call {
    /// Performs an [`concierge_flow::Action::Http`]: from the cache when it holds a fresh
    /// answer (the event is returned at once), else by the driver.
    pub(super) fn start_http(
        &mut self,
        cx: &mut Cx<'_>,
        request: Box<HttpRequest>,
    ) -> Option<Event> {
        let flow = self.flow.as_mut()?;
        if let Some(response) = cx.lookups.fresh(cx.now, &request) {
            debug!(node = %request.node, "HTTP answer from the cache");
            flow.run.note_cache(Some(CacheUse::Hit));
            return Some(Event::HttpResult(Ok(response)));
        }
        let start = cx.now + request.delay;
        flow.waiting = Waiting::Http;
        self.timers
            .set(CallTimer::HttpOverdue, start + request.timeout + HTTP_GRACE);
        flow.comfort = request.comfort.as_ref().map(|spec| {
            self.timers.set(CallTimer::Comfort, start + spec.after);
            comfort(spec)
        });
        flow.in_flight = request.cache.is_some().then(|| (*request).clone());
        debug!(node = %request.node, url = %request.url_for_log(), "HTTP request");
        cx.emit(Output::Http {
            call: cx.id,
            request,
        });
        None
    }

    /// The result of the call's [`Output::Http`] request.
    pub(crate) fn on_http(&mut self, cx: &mut Cx<'_>, result: Result<HttpResponse, HttpFailure>) {
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        if !matches!(flow.waiting, Waiting::Http) {
            // Late: the watchdog already gave up on it.
            return;
        }
        flow.waiting = Waiting::Nothing;
        self.http_done(cx, result);
    }

    /// The HTTP result is overdue: the request is taken as timed out.
    pub(crate) fn http_overdue(&mut self, cx: &mut Cx<'_>) {
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        if !matches!(flow.waiting, Waiting::Http) {
            return;
        }
        warn!("no HTTP result long after the node's timeout; taking it as one");
        flow.waiting = Waiting::Nothing;
        self.http_done(cx, Err(HttpFailure::Timeout));
    }

    /// The request's result (or the watchdog's timeout): settle the cache, silence the
    /// comfort audio and let the flow go on.
    fn http_done(&mut self, cx: &mut Cx<'_>, result: Result<HttpResponse, HttpFailure>) {
        self.timers.stop(CallTimer::HttpOverdue);
        self.stop_comfort();
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        let (result, used) = match flow.in_flight.take() {
            Some(request) => {
                let (result, used) = cx.lookups.settle(cx.now, &request, result);
                if used == Some(CacheUse::Stale) {
                    info!(node = %request.node, "HTTP server failed; the cached answer stands in (stale)");
                }
                (result, used)
            }
            None => (result, None),
        };
        flow.run.note_cache(used);
        self.feed(cx, Event::HttpResult(result));
    }

    /// The comfort deadline passed while the request is still out: answer (the audio
    /// starts when the ACK brings the media up) or play now.
    pub(crate) fn comfort_due(&mut self, cx: &mut Cx<'_>) {
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        let waiting = matches!(flow.waiting, Waiting::Http);
        let Some(comfort) = flow.comfort.as_mut().filter(|_| waiting) else {
            return;
        };
        comfort.sounding = true;
        debug!("HTTP slow: comfort audio");
        if self.media.is_started() {
            // Up, or in early media (a flow with `early_media`): play without answering.
            self.comfort_play(cx, true);
        } else if self.caller.state.is_early() {
            self.answer(cx);
        }
    }

    /// The media came up while comfort audio was due.
    pub(super) fn comfort_media_ready(&mut self, cx: &Cx<'_>) {
        if self.comfort_sounding() {
            self.comfort_play(cx, true);
        }
    }

    /// The comfort playlist ran out while the request is still out: loop the hold audio.
    pub(super) fn comfort_loop(&mut self, cx: &Cx<'_>) {
        if self.comfort_sounding() {
            self.comfort_play(cx, false);
        }
    }

    fn comfort_sounding(&self) -> bool {
        self.flow.as_ref().is_some_and(|f| {
            matches!(f.waiting, Waiting::Http) && f.comfort.as_ref().is_some_and(|c| c.sounding)
        })
    }

    /// Queues the prompt (the first time) and the hold audio.
    fn comfort_play(&mut self, cx: &Cx<'_>, first: bool) {
        let Some(comfort) = self.flow.as_ref().and_then(|f| f.comfort.as_ref()) else {
            return;
        };
        let mut names: Vec<String> = Vec::new();
        if first {
            names.extend(comfort.prompt.clone());
        }
        names.extend(comfort.hold.clone());
        let found = self.prompts(cx, &names);
        self.media.play(found);
    }

    /// The result came: whatever comfort audio plays stops now.
    fn stop_comfort(&mut self) {
        self.timers.stop(CallTimer::Comfort);
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        if flow.comfort.take().is_some_and(|c| c.sounding) {
            self.media.stop_playing();
        }
    }
}

fn comfort(spec: &ComfortSpec) -> Comfort {
    Comfort {
        prompt: spec.prompt.clone(),
        hold: spec.hold.clone(),
        sounding: false,
    }
}
