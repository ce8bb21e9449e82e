//! The desks' cards: the last call each desk got, kept until the next one reaches it, so
//! an agent reads it while talking and after. A card is set by whatever tells first — the
//! transfer event (the pop-up), then its result, then the call's record — and a page shows
//! it again each time it is set.

use std::sync::Arc;

use super::{Hub, State, MAX_DESKS, MAX_RECORDS};
use crate::console::card::{bounded, Card};

impl Hub {
    /// The card of `desk`'s current or last call (any desk's, without one), and when it
    /// was set (a page shows it again only when that changes).
    pub(crate) fn card(&self, desk: Option<&str>) -> Option<(Arc<Card>, u64)> {
        let state = self.lock();
        match desk {
            Some(d) => state.desks.get(d).cloned(),
            None => state.latest.clone(),
        }
    }

    /// The card of a recent transferred call, by its Call-ID (a token link names it).
    pub(crate) fn card_of_call(&self, call_id: &str) -> Option<Arc<Card>> {
        let state = self.lock();
        state
            .cards
            .iter()
            .rev()
            .find(|c| c.call_id == call_id)
            .cloned()
    }
}

impl State {
    /// `card` becomes its desk's, unless the desk already shows a later transfer of
    /// another call (a record can arrive after the next call's transfer event). A card of
    /// the same call replaces the one there: it knows more (the result, the whole path).
    pub(super) fn set_card(&mut self, card: Card) {
        if let Some((current, _)) = self.desks.get(&card.desk) {
            let later =
                current.call_id != card.call_id && current.transferred_ms > card.transferred_ms;
            if later {
                return;
            }
        }
        if !self.desks.contains_key(&card.desk) && self.desks.len() >= MAX_DESKS {
            if let Some(oldest) = self
                .desks
                .iter()
                .min_by_key(|(_, (_, set))| *set)
                .map(|(d, _)| d.clone())
            {
                self.desks.remove(&oldest);
            }
        }
        let card = Arc::new(card);
        let set = self.generation + 1;
        self.desks.insert(card.desk.clone(), (card.clone(), set));
        self.latest = Some((card.clone(), set));
        self.cards.retain(|c| c.call_id != card.call_id);
        if self.cards.len() >= MAX_RECORDS {
            self.cards.pop_front();
        }
        self.cards.push_back(card);
    }

    /// The transfer of call `call_id` to `desk` settled (`result` in the record's
    /// words): its card says so, if the desk still shows it and nothing said it first.
    pub(super) fn settle_card(&mut self, desk: &str, call_id: &str, result: &str) {
        let Some((card, _)) = self.desks.get(desk) else {
            return;
        };
        if card.call_id != call_id || card.result.is_some() {
            return;
        }
        let mut settled = (**card).clone();
        settled.result = Some(bounded(result));
        self.set_card(settled);
    }
}
