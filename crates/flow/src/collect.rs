//! Digit collection for [`crate::Action::CollectDigits`], as a state machine in explicit
//! time: the media layer feeds key presses and the clock, and asks when to wake.

// Caller input (digits, values) reaches this module: no slice or index that can panic.
#![deny(clippy::string_slice, clippy::indexing_slicing)]
use std::time::Instant;

use crate::run::CollectSpec;

/// How a digit collection ended, returned by [`Collector::handle_digit`] and
/// [`Collector::handle_timeout`]; the media layer reports it to the run as
/// [`crate::Event::Digits`] or [`crate::Event::InputTimeout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollectOutcome {
    /// What was typed (terminator removed; may be outside min/max — the flow judges).
    Digits(String),
    /// No key before the first-digit timeout.
    NoInput,
}

/// Collects one keypad entry for [`crate::Action::CollectDigits`], sans-IO.
///
/// The media layer creates one per action, calls [`Self::prompt_finished`] when the
/// prompts end, feeds every key with [`Self::handle_digit`], sleeps until
/// [`Self::poll_timeout`] and then calls [`Self::handle_timeout`]; the first `Some` outcome
/// ends the entry.
#[derive(Debug, Clone)]
pub struct Collector {
    spec: CollectSpec,
    digits: String,
    /// `None` while the prompt plays: the first-digit timer starts when it ends.
    deadline: Option<Instant>,
}

impl Collector {
    /// A collector for `spec` with no key yet and no timer running (the prompts play first).
    pub fn new(spec: CollectSpec) -> Self {
        Self {
            spec,
            digits: String::new(),
            deadline: None,
        }
    }

    /// The prompt finished (or there was none): the caller now has the first-digit timeout.
    pub fn prompt_finished(&mut self, now: Instant) {
        if self.deadline.is_none() {
            self.deadline = Some(
                now + if self.digits.is_empty() {
                    self.spec.first_digit_timeout
                } else {
                    self.spec.inter_digit_timeout
                },
            );
        }
    }

    /// One key pressed at `now` (RFC 4733 or in-band). Returns the entry when the key is
    /// the terminator or the `max`-th digit; otherwise restarts the inter-digit timer.
    /// Anything but `0-9 * # A-D` is ignored. A key during the prompts counts (barge-in).
    pub fn handle_digit(&mut self, now: Instant, key: char) -> Option<CollectOutcome> {
        if !matches!(key, '0'..='9' | '*' | '#' | 'A'..='D') {
            return None;
        }
        if Some(key) == self.spec.terminator {
            return Some(CollectOutcome::Digits(std::mem::take(&mut self.digits)));
        }
        self.digits.push(key);
        if self.digits.chars().count() as u32 >= self.spec.max {
            return Some(CollectOutcome::Digits(std::mem::take(&mut self.digits)));
        }
        self.deadline = Some(now + self.spec.inter_digit_timeout);
        None
    }

    /// When [`Self::handle_timeout`] must be called next; `None` while the prompts play.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// The timer check at `now`: before the deadline it returns `None`; at or after it,
    /// the digits so far, or [`CollectOutcome::NoInput`] when there are none.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<CollectOutcome> {
        if self.deadline.is_none_or(|d| now < d) {
            return None;
        }
        self.deadline = None;
        Some(if self.digits.is_empty() {
            CollectOutcome::NoInput
        } else {
            CollectOutcome::Digits(std::mem::take(&mut self.digits))
        })
    }

    /// What this collector was asked to collect (whether the keys are secret, the
    /// lockout group).
    pub fn spec(&self) -> &CollectSpec {
        &self.spec
    }

    /// Whether a key was pressed (a prompt playing should stop: barge-in).
    pub fn has_input(&self) -> bool {
        !self.digits.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test's base instant")]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spec() -> CollectSpec {
        CollectSpec {
            prompts: vec!["enter_code".into()],
            min: 6,
            max: 6,
            first_digit_timeout: Duration::from_secs(5),
            inter_digit_timeout: Duration::from_secs(3),
            terminator: Some('#'),
            secret: true,
            lockout: None,
        }
    }

    #[test]
    fn max_digits_ends_collection_without_the_terminator() {
        let t = Instant::now();
        let mut c = Collector::new(spec());
        c.prompt_finished(t);
        let out: Vec<_> = "101010"
            .chars()
            .filter_map(|d| c.handle_digit(t, d))
            .collect();
        assert_eq!(out, vec![CollectOutcome::Digits("101010".into())]);
    }

    #[test]
    fn terminator_ends_and_is_stripped() {
        let t = Instant::now();
        let mut c = Collector::new(spec());
        assert_eq!(c.handle_digit(t, '4'), None);
        assert_eq!(
            c.handle_digit(t, '#'),
            Some(CollectOutcome::Digits("4".into()))
        );
    }

    #[test]
    fn first_digit_timer_starts_after_the_prompt_and_inter_digit_after_a_key() {
        let t = Instant::now();
        let mut c = Collector::new(spec());
        assert_eq!(c.poll_timeout(), None, "no timer while the prompt plays");
        c.prompt_finished(t);
        assert_eq!(c.poll_timeout(), Some(t + Duration::from_secs(5)));
        assert_eq!(
            c.handle_timeout(t + Duration::from_secs(5)),
            Some(CollectOutcome::NoInput)
        );
        let mut c = Collector::new(spec());
        c.prompt_finished(t);
        c.handle_digit(t + Duration::from_secs(1), '1');
        assert_eq!(c.poll_timeout(), Some(t + Duration::from_secs(4)));
        assert_eq!(
            c.handle_timeout(t + Duration::from_secs(4)),
            Some(CollectOutcome::Digits("1".into()))
        );
    }

    #[test]
    fn garbage_keys_are_ignored() {
        let t = Instant::now();
        let mut c = Collector::new(spec());
        assert_eq!(c.handle_digit(t, 'x'), None);
        assert!(!c.has_input());
    }
}
