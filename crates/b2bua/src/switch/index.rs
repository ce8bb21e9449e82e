//! How the switch finds what an input is for: by dialog, by the caller's INVITE
//! transaction, by a client transaction of ours, by RTP port, by Call-ID, by name lookup.
//! A call changes its own entries only through its [`crate::call::Cx`] (collected as
//! [`Change`]s, applied under its id once it returns); when it leaves, every key it could
//! hold is removed — those that still lead to it — so no entry outlives its call.

use std::collections::HashMap;

use concierge_sip::dialog::{AsDialogKey, DialogId, DialogKey};
use concierge_sip::ids::CallId;
use concierge_sip::transaction::{TsxKey, TsxMap};

use crate::output::{CallRef, ResolveId};

/// One way to find a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    /// A dialog of one of the call's legs (early or confirmed).
    Dialog(DialogId),
    /// The caller's INVITE server transaction (CANCEL, Timer H).
    Invite(TsxKey),
    /// A client transaction of ours (REFER, BYE, a refresh, a bridge leg's INVITE).
    Request(TsxKey),
    /// An RTP port of one of the call's legs.
    Port(u16),
    /// A Call-ID of one of the call's legs: an INVITE with it is not a new call.
    CallId(CallId),
    /// A name lookup the call waits for.
    Resolve(ResolveId),
}

/// What a call did to its own index entries while it ran.
#[derive(Debug)]
pub(crate) enum Change {
    Add(Key),
    Remove(Key),
}

/// Who a client transaction or a name lookup belongs to: a call, or the trunks'
/// registrations (`crate::trunks`, which know which trunk and request a key is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    Call(CallRef),
    Trunk,
}

/// The switch's lookup tables.
#[derive(Debug, Default)]
pub(crate) struct Index {
    dialogs: HashMap<DialogId, CallRef>,
    invites: TsxMap<CallRef>,
    requests: TsxMap<Owner>,
    /// Indexed by port number (grown to the highest port used): the RTP path finds the
    /// port's call with no hashing. Ports are ours, never a peer's choice.
    ports: Vec<Option<CallRef>>,
    call_ids: HashMap<CallId, CallRef>,
    resolves: HashMap<ResolveId, Owner>,
}

impl Index {
    pub(crate) fn dialog(&self, key: DialogKey<'_>) -> Option<CallRef> {
        self.dialogs.get(&key as &dyn AsDialogKey).copied()
    }

    pub(crate) fn invite(&self, key: &TsxKey) -> Option<CallRef> {
        self.invites.get(key).copied()
    }

    pub(crate) fn request(&self, key: &TsxKey) -> Option<Owner> {
        self.requests.get(key).copied()
    }

    pub(crate) fn port(&self, port: u16) -> Option<CallRef> {
        self.ports.get(usize::from(port)).copied().flatten()
    }

    pub(crate) fn call_id(&self, call_id: &[u8]) -> Option<CallRef> {
        // Every Call-ID indexed is text: bytes that are not match none.
        let call_id = std::str::from_utf8(call_id).ok()?;
        self.call_ids.get(call_id).copied()
    }

    pub(crate) fn resolve(&self, id: ResolveId) -> Option<Owner> {
        self.resolves.get(&id).copied()
    }

    /// Applies what call `id` changed, in order.
    pub(crate) fn apply(&mut self, id: CallRef, changes: impl Iterator<Item = Change>) {
        for change in changes {
            match change {
                Change::Add(key) => self.add(id, key),
                Change::Remove(key) => self.remove(id, key),
            }
        }
    }

    /// A trunk's client transaction or name lookup (the only keys a trunk has) leads to
    /// the trunks from now on; any other key is not a trunk's and is ignored.
    pub(crate) fn add_trunk(&mut self, key: Key) {
        match key {
            Key::Request(k) => _ = self.requests.insert(k, Owner::Trunk),
            Key::Resolve(r) => _ = self.resolves.insert(r, Owner::Trunk),
            _ => debug_assert!(false, "a trunk has only requests and lookups"),
        }
    }

    /// The trunks' transaction or lookup `key` is over.
    pub(crate) fn remove_trunk(&mut self, key: Key) {
        match key {
            Key::Request(k) => remove_if(&mut self.requests, &k, &Owner::Trunk),
            Key::Resolve(r) => remove_if(&mut self.resolves, &r, &Owner::Trunk),
            _ => {}
        }
    }

    /// Call `id` left: `key` goes if it still leads to it.
    pub(crate) fn forget(&mut self, id: CallRef, key: Key) {
        self.remove(id, key);
    }

    fn add(&mut self, id: CallRef, key: Key) {
        let owner = Owner::Call(id);
        match key {
            Key::Dialog(d) => _ = self.dialogs.insert(d, id),
            Key::Invite(k) => _ = self.invites.insert(k, id),
            Key::Request(k) => _ = self.requests.insert(k, owner),
            Key::Port(p) => {
                let i = usize::from(p);
                if self.ports.len() <= i {
                    self.ports.resize(i + 1, None);
                }
                self.ports[i] = Some(id);
            }
            Key::CallId(c) => _ = self.call_ids.insert(c, id),
            Key::Resolve(r) => _ = self.resolves.insert(r, owner),
        }
    }

    /// Removes `key` if it leads to call `id` (a port or a Call-ID may have passed to
    /// another call since).
    fn remove(&mut self, id: CallRef, key: Key) {
        let owner = Owner::Call(id);
        match key {
            Key::Dialog(d) => remove_if(&mut self.dialogs, &d, &id),
            Key::Invite(k) => remove_if(&mut self.invites, &k, &id),
            Key::Request(k) => remove_if(&mut self.requests, &k, &owner),
            Key::Port(p) => {
                if let Some(entry) = self.ports.get_mut(usize::from(p)) {
                    entry.take_if(|owner| *owner == id);
                }
            }
            Key::CallId(c) => remove_if(&mut self.call_ids, &c, &id),
            Key::Resolve(r) => remove_if(&mut self.resolves, &r, &owner),
        }
    }
}

/// One lookup when the key leads to `value` (nearly always); put back when it led elsewhere.
fn remove_if<K: std::hash::Hash + Eq, V: PartialEq, S: std::hash::BuildHasher>(
    map: &mut HashMap<K, V, S>,
    key: &K,
    value: &V,
) {
    if let Some((k, v)) = map.remove_entry(key) {
        if v != *value {
            map.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_removes_only_the_keys_that_still_lead_to_it() {
        let (a, b) = (CallRef { seq: 1, slot: 0 }, CallRef { seq: 2, slot: 0 });
        let mut index = Index::default();
        index.apply(a, [Change::Add(Key::Port(10_000))].into_iter());
        // The port went back to the pool and on to call b; a's leaving must not take it.
        index.apply(b, [Change::Add(Key::Port(10_000))].into_iter());
        index.forget(a, Key::Port(10_000));
        assert_eq!(index.port(10_000), Some(b));
        index.apply(b, [Change::Remove(Key::Port(10_000))].into_iter());
        assert_eq!(index.port(10_000), None);
    }

    #[test]
    fn a_trunk_s_keys_lead_to_the_trunks_and_a_call_cannot_remove_them() {
        let mut index = Index::default();
        index.add_trunk(Key::Resolve(ResolveId(9)));
        let call = CallRef { seq: 1, slot: 0 };
        index.forget(call, Key::Resolve(ResolveId(9)));
        assert_eq!(index.resolve(ResolveId(9)), Some(Owner::Trunk));
        index.remove_trunk(Key::Resolve(ResolveId(9)));
        assert_eq!(index.resolve(ResolveId(9)), None);
    }

    #[test]
    fn changes_apply_in_the_order_the_call_made_them() {
        let id = CallRef { seq: 7, slot: 3 };
        let mut index = Index::default();
        let call_id = CallId::from("c1");
        index.apply(
            id,
            [
                Change::Add(Key::CallId(call_id.clone())),
                Change::Remove(Key::CallId(call_id.clone())),
                Change::Add(Key::CallId(call_id)),
                Change::Add(Key::Resolve(ResolveId(3))),
            ]
            .into_iter(),
        );
        assert_eq!(index.call_id(b"c1"), Some(id));
        assert_eq!(index.resolve(ResolveId(3)), Some(Owner::Call(id)));
    }
}
