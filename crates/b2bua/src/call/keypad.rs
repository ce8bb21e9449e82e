//! Digits and the flow's keypads: a keypad starts (unless its lockout group is locked for
//! this caller, or the shared store's answer about it is still to come), takes the digits
//! typed ahead, stops a playing prompt at the first key, and ends with digits or a timeout.

use concierge_flow::{CollectOutcome, CollectSpec, Collector, Event};

use super::{Call, Cx, Waiting};

impl Call {
    /// Starts a keypad: its prompt plays (a key stops it), then its timers run.
    pub(super) fn collect(&mut self, cx: &mut Cx<'_>, spec: CollectSpec) -> Option<Event> {
        if let Some(group) = &spec.lockout {
            if self.lockout_applies(cx, group) {
                return Some(Event::Locked);
            }
            if self.waits_for_store() {
                // Silence for at most the rest of the store's time; then this again.
                self.flow.as_mut()?.waiting = Waiting::Lockout(spec);
                return None;
            }
        }
        let found = self.prompts(cx, &spec.prompts);
        let mut collector = Collector::new(spec);
        if found.is_empty() {
            collector.prompt_finished(cx.now);
        } else {
            self.media.play(found);
        }
        self.flow.as_mut()?.waiting = Waiting::Collect(collector);
        self.take_digits(cx)
    }

    /// A digit arrived by RTP or INFO.
    pub(super) fn digit_arrived(&mut self, cx: &mut Cx<'_>) {
        if let Some(event) = self.take_digits(cx) {
            self.feed(cx, event);
        }
    }

    /// Feeds buffered digits to a collector, if one is waiting; barge-in stops the prompt.
    fn take_digits(&mut self, cx: &mut Cx<'_>) -> Option<Event> {
        let media = &mut self.media;
        let Some(flow) = self.flow.as_mut() else {
            media.pending.clear();
            return None;
        };
        if matches!(flow.waiting, Waiting::BargeIn) && !media.pending.is_empty() {
            // Barge-in: the key stops the prompt and stays pending for the next keypad.
            media.stop_playing();
            flow.waiting = Waiting::Nothing;
            return Some(Event::PromptFinished);
        }
        let Waiting::Collect(collector) = &mut flow.waiting else {
            return None;
        };
        while let Some((d, index)) = media.pending.pop_front() {
            media.stop_playing();
            if !collector.spec().secret {
                if let Some(shown) = media.shown.get_mut(index) {
                    *shown = true;
                }
            }
            if let Some(outcome) = collector.handle_digit(cx.now, d) {
                let group = collector.spec().lockout.clone();
                flow.waiting = Waiting::Nothing;
                return Some(self.keypad_done(cx, group, outcome));
            }
        }
        None
    }

    /// The keypad's timer fired.
    pub(crate) fn collect_timeout(&mut self, cx: &mut Cx<'_>) {
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        let Waiting::Collect(c) = &mut flow.waiting else {
            return;
        };
        let Some(outcome) = c.handle_timeout(cx.now) else {
            return;
        };
        let group = c.spec().lockout.clone();
        flow.waiting = Waiting::Nothing;
        let event = self.keypad_done(cx, group, outcome);
        self.feed(cx, event);
    }

    /// A keypad ended with `outcome`. A lock of its group that came into force while the
    /// caller typed (another call's failure) still stops the code.
    fn keypad_done(
        &mut self,
        cx: &mut Cx<'_>,
        group: Option<String>,
        outcome: CollectOutcome,
    ) -> Event {
        match (group, outcome) {
            (Some(group), CollectOutcome::Digits(_)) if self.lockout_applies(cx, &group) => {
                Event::Locked
            }
            (_, CollectOutcome::Digits(d)) => Event::Digits(d),
            (_, CollectOutcome::NoInput) => Event::InputTimeout,
        }
    }
}
