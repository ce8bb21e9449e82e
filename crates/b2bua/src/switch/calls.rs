//! The calls of one shard in a slab: a [`CallRef`] names its call's slot, so the switch
//! finds a call — for every RTP packet in and out — by an index and one comparison, never
//! by hashing. The ref's sequence number is the switch's alone: a ref kept after its call
//! ended finds nothing, even once another call took the slot.

use slab::Slab;

use crate::call::Call;
use crate::output::CallRef;

pub(super) struct Calls {
    slab: Slab<(CallRef, Call)>,
    /// The sequence number of the next ref handed out.
    next_seq: u64,
}

impl Calls {
    pub(super) fn new() -> Self {
        Self {
            slab: Slab::new(),
            next_seq: 1,
        }
    }

    /// The ref of the next call: the slot [`Calls::insert`] will put it in, and a sequence
    /// number used once (a call that is refused before it is inserted leaves a gap).
    pub(super) fn new_ref(&mut self) -> CallRef {
        let seq = self.next_seq;
        self.next_seq += 1;
        let slot = u32::try_from(self.slab.vacant_key()).expect("fewer than 2^32 calls");
        CallRef { seq, slot }
    }

    /// Keeps `call` under `id`, the last ref [`Calls::new_ref`] handed out (no call was
    /// inserted or removed since).
    pub(super) fn insert(&mut self, id: CallRef, call: Call) {
        let slot = self.slab.insert((id, call));
        assert_eq!(
            slot, id.slot as usize,
            "a call goes in the slot its ref names"
        );
    }

    pub(super) fn get(&self, id: CallRef) -> Option<&Call> {
        match self.slab.get(id.slot as usize) {
            Some((r, call)) if *r == id => Some(call),
            _ => None,
        }
    }

    pub(super) fn get_mut(&mut self, id: CallRef) -> Option<&mut Call> {
        match self.slab.get_mut(id.slot as usize) {
            Some((r, call)) if *r == id => Some(call),
            _ => None,
        }
    }

    pub(super) fn remove(&mut self, id: CallRef) -> Option<Call> {
        self.get(id)?;
        Some(self.slab.remove(id.slot as usize).1)
    }

    pub(super) fn len(&self) -> usize {
        self.slab.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Every call's ref, for commands that reach them all.
    pub(super) fn refs(&self) -> Vec<CallRef> {
        self.slab.iter().map(|(_, (r, _))| *r).collect()
    }
}
