//! RFC 3261 §12 dialogs: identity, sequence numbers, route set and remote target, and the
//! requests built inside a dialog. Plus [`AnswerRetransmit`], the UAS side of §13.3.1.4
//! (the 2xx to an INVITE is retransmitted by the dialog layer until the ACK arrives), the
//! RFC 3262 reliable provisional responses ([`prack`]) and RFC 4028 session timers
//! ([`session_timer`]).

mod answer;
pub mod prack;
mod route;
pub mod session_timer;

pub use answer::{AnswerEvent, AnswerRetransmit};
pub use route::{local_contact, peer_for_uri, sips_contact, DialogRole};

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use bytes::Bytes;

use crate::ids::{CallId, Tag};
use crate::wire::{
    CSeq, HeaderName, Headers, Method, NameAddr, Request, Response, SipUri, StatusCode, Via,
};

/// §12: Call-ID plus the local and remote tags. The call logic keys its dialogs by it and
/// looks up each in-dialog request by its [`DialogKey`] (a map of ids is searched with a
/// key borrowed from the request, no id made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogId {
    /// The Call-ID shared by both sides.
    pub call_id: CallId,
    /// Our tag: the To tag of the peer's requests, the From tag of ours.
    pub local_tag: Tag,
    /// The peer's tag; empty when the peer sent none (an RFC 2543 element).
    pub remote_tag: Tag,
}

impl DialogId {
    /// The dialog an incoming request claims to belong to (its To tag is ours). `None` for
    /// a dialog-creating request, which has no To tag.
    pub fn of_incoming(request: &Request) -> Option<Self> {
        DialogKey::of_incoming(request).map(DialogKey::to_id)
    }

    /// The same three strings, borrowed.
    pub fn key(&self) -> DialogKey<'_> {
        DialogKey {
            call_id: self.call_id.as_str(),
            local_tag: self.local_tag.as_str(),
            remote_tag: self.remote_tag.as_str(),
        }
    }
}

/// A [`DialogId`]'s three strings borrowed from a message: what an incoming request or
/// response is looked up by, without copying them. Hashes and compares as the id with
/// the same strings does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialogKey<'a> {
    /// The Call-ID.
    pub call_id: &'a str,
    /// Our tag.
    pub local_tag: &'a str,
    /// The peer's tag (empty when it sent none).
    pub remote_tag: &'a str,
}

impl<'a> DialogKey<'a> {
    /// The dialog an incoming request claims to belong to (its To tag is ours). `None` for
    /// a dialog-creating request, which has no To tag.
    pub fn of_incoming(request: &'a Request) -> Option<Self> {
        Some(Self {
            call_id: request.call_id.as_str(),
            local_tag: request.to.tag()?,
            remote_tag: request.from.tag().unwrap_or_default(),
        })
    }

    /// The dialog of a response to a request of ours: our tag is its From tag.
    pub fn of_response(response: &'a Response) -> Self {
        Self {
            call_id: response.call_id.as_str(),
            local_tag: response.from.tag().unwrap_or_default(),
            remote_tag: response.to.tag().unwrap_or_default(),
        }
    }

    /// The owned id.
    pub fn to_id(self) -> DialogId {
        DialogId {
            call_id: CallId::from(self.call_id),
            local_tag: Tag::from(self.local_tag),
            remote_tag: Tag::from(self.remote_tag),
        }
    }
}

/// What a map keyed by [`DialogId`] is searched with (`map.get(&key as &dyn AsDialogKey)`):
/// an id, or a [`DialogKey`] borrowed from a message.
pub trait AsDialogKey {
    /// The three strings.
    fn dialog_key(&self) -> DialogKey<'_>;
}

/// The three strings in one write (see [`crate::hash_parts`]): a dialog is hashed for
/// every in-dialog message.
impl Hash for DialogKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        crate::hash_parts::write_parts(
            state,
            &[
                self.call_id.as_bytes(),
                self.local_tag.as_bytes(),
                self.remote_tag.as_bytes(),
            ],
        );
    }
}

impl AsDialogKey for DialogId {
    fn dialog_key(&self) -> DialogKey<'_> {
        self.key()
    }
}

impl AsDialogKey for DialogKey<'_> {
    fn dialog_key(&self) -> DialogKey<'_> {
        *self
    }
}

impl PartialEq for dyn AsDialogKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.dialog_key() == other.dialog_key()
    }
}

impl Eq for dyn AsDialogKey + '_ {}

impl Hash for dyn AsDialogKey + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.dialog_key().hash(state);
    }
}

/// Hashed as its key, so that `Borrow` below keeps the contract (equal values, equal
/// hashes).
impl Hash for DialogId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl<'a> Borrow<dyn AsDialogKey + 'a> for DialogId {
    fn borrow(&self) -> &(dyn AsDialogKey + 'a) {
        self
    }
}

/// Why a request inside a dialog is refused (§12.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogRejection {
    /// CSeq lower than the last one seen: 500 (§12.2.2).
    OutOfOrder,
}

impl DialogRejection {
    /// The status a request refused for this reason gets.
    pub fn status(self) -> StatusCode {
        match self {
            Self::OutOfOrder => StatusCode::SERVER_INTERNAL_ERROR,
        }
    }
}

/// The state of one dialog (§12), owned by the call logic: made by [`Dialog::uas`] or
/// [`Dialog::uac`], fed each in-dialog request of the peer through
/// [`Dialog::handle_remote_request`], and asked for each request we send in it.
#[derive(Debug, Clone)]
pub struct Dialog {
    /// Call-ID and tags that identify the dialog.
    pub id: DialogId,
    /// Our URI with our tag: the From of requests we send.
    pub local: NameAddr,
    /// The peer's URI with its tag: the To of requests we send.
    pub remote: NameAddr,
    /// CSeq of the last request we sent in the dialog.
    pub local_seq: u32,
    /// CSeq of the last request the peer sent; `None` before its first in-dialog request.
    pub remote_seq: Option<u32>,
    /// In the order our requests must visit them.
    pub route_set: Vec<NameAddr>,
    /// Where in-dialog requests go: the peer's Contact.
    pub remote_target: SipUri,
    /// Our Contact in this dialog.
    pub local_contact: SipUri,
    /// Whether we answered or placed the call; decides where requests go when the
    /// route set is empty ([`Dialog::next_hop`]).
    pub role: DialogRole,
}

impl Dialog {
    /// §12.1.1: the UAS side, created when we answer `invite` with a 2xx (or 1xx with tag).
    pub fn uas(invite: &Request, local_tag: &Tag, local_contact: SipUri, local_seq: u32) -> Self {
        let remote_target = invite
            .contact()
            .map(|c| c.uri)
            .unwrap_or_else(|| invite.from.uri.clone());
        Self {
            id: DialogId {
                call_id: invite.call_id.clone(),
                local_tag: local_tag.clone(),
                remote_tag: Tag::from(invite.from.tag().unwrap_or_default()),
            },
            local: invite.to.clone().with_tag(local_tag.as_str()),
            remote: invite.from.clone(),
            local_seq,
            remote_seq: Some(invite.cseq.seq),
            // §12.1.1: the Record-Route values in order.
            route_set: invite.routes(&HeaderName::RECORD_ROUTE),
            remote_target,
            local_contact,
            role: DialogRole::Uas,
        }
    }

    /// §12.1.2: the UAC side, from our INVITE and the 2xx (or tagged 1xx) that answered it.
    pub fn uac(invite: &Request, response: &Response, local_contact: SipUri) -> Option<Self> {
        let remote_tag = Tag::from(response.to.tag()?);
        let mut route_set = response.routes(&HeaderName::RECORD_ROUTE);
        route_set.reverse();
        Some(Self {
            id: DialogId {
                call_id: invite.call_id.clone(),
                local_tag: Tag::from(invite.from.tag().unwrap_or_default()),
                remote_tag,
            },
            local: invite.from.clone(),
            remote: response.to.clone(),
            local_seq: invite.cseq.seq,
            remote_seq: None,
            route_set,
            remote_target: response
                .contact()
                .map(|c| c.uri)
                .unwrap_or_else(|| invite.uri.clone()),
            local_contact,
            role: DialogRole::Uac,
        })
    }

    /// §12.2.2: checks the CSeq of a request from the peer and applies a target refresh.
    pub fn handle_remote_request(&mut self, request: &Request) -> Result<(), DialogRejection> {
        // ACK and CANCEL reuse the CSeq number of the request they belong to.
        if !matches!(request.method, Method::Ack | Method::Cancel) {
            if self.remote_seq.is_some_and(|seq| request.cseq.seq <= seq) {
                return Err(DialogRejection::OutOfOrder);
            }
            self.remote_seq = Some(request.cseq.seq);
        }
        if matches!(request.method, Method::Invite | Method::Update) {
            if let Some(contact) = request.contact() {
                self.remote_target = contact.uri;
            }
        }
        Ok(())
    }

    /// §12.2.1.1: a new request inside the dialog with the next local CSeq. It has no Via
    /// yet: the endpoint adds one with a fresh branch when it starts the transaction.
    pub fn new_request(&mut self, method: Method) -> Request {
        self.local_seq += 1;
        let seq = self.local_seq;
        self.build(method, seq, Vec::new())
    }

    /// §13.2.2.4: the ACK for a 2xx carries the CSeq number of the INVITE and is sent
    /// outside any transaction, so it gets its own `via`.
    pub fn ack(&self, invite_seq: u32, via: Via) -> Request {
        self.build(Method::Ack, invite_seq, vec![via])
    }

    fn build(&self, method: Method, seq: u32, vias: Vec<Via>) -> Request {
        let mut headers = Headers::new();
        let (uri, routes) = self.request_uri_and_routes();
        for route in routes {
            headers.push(HeaderName::ROUTE, route.to_string());
        }
        if matches!(
            method,
            Method::Invite | Method::Update | Method::Subscribe | Method::Refer | Method::Notify
        ) {
            headers.push_joined(
                HeaderName::CONTACT,
                &["<", self.local_contact.as_str(), ">"],
            );
        }
        Request {
            method: method.clone(),
            uri,
            vias,
            from: self.local.clone(),
            to: self.remote.clone(),
            call_id: self.id.call_id.clone(),
            cseq: CSeq { seq, method },
            max_forwards: Some(70),
            headers,
            body: Bytes::new(),
        }
    }

    /// §12.2.1.1: loose routing uses the remote target as Request-URI and the route set as
    /// Route; a strict router (first route without `lr`) gets the Request-URI itself, and
    /// the remote target goes to the end of the Route list.
    fn request_uri_and_routes(&self) -> (SipUri, Vec<NameAddr>) {
        match self.route_set.first() {
            Some(first) if first.uri.param("lr").is_none() => {
                let mut routes: Vec<NameAddr> = self.route_set[1..].to_vec();
                routes.push(NameAddr::new(self.remote_target.clone()));
                (first.uri.clone(), routes)
            }
            _ => (self.remote_target.clone(), self.route_set.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{parse_datagram, Message};

    fn invite() -> Request {
        let text = concat!(
            "INVITE sip:ivr@192.0.2.10 SIP/2.0\r\n",
            "Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKp1\r\n",
            "Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKc1\r\n",
            "Record-Route: <sip:p2.example;lr>, <sip:p1.example;lr>\r\n",
            "From: <sip:+46706170786@carrier.example>;tag=caller\r\n",
            "To: <sip:ivr@192.0.2.10>\r\n",
            "Call-ID: d1\r\n",
            "CSeq: 10 INVITE\r\n",
            "Contact: <sip:+46706170786@203.0.113.5:5060>\r\n",
            "\r\n"
        );
        match parse_datagram(text.as_bytes()).unwrap().unwrap() {
            Message::Request(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn uas_bye_goes_to_the_remote_target_through_the_record_routes() {
        let contact = SipUri::parse("sip:ivr@192.0.2.10:5060").unwrap();
        let mut d = Dialog::uas(&invite(), &Tag::from("ours"), contact, 1);
        let bye = d.new_request(Method::Bye);
        assert_eq!(bye.uri.as_str(), "sip:+46706170786@203.0.113.5:5060");
        let routes: Vec<&str> = bye.headers.get_all(&HeaderName::ROUTE).collect();
        assert_eq!(routes, vec!["<sip:p2.example;lr>", "<sip:p1.example;lr>"]);
        assert_eq!(bye.from.tag(), Some("ours"));
        assert_eq!(bye.to.tag(), Some("caller"));
        assert_eq!(
            bye.cseq,
            CSeq {
                seq: 2,
                method: Method::Bye
            }
        );
        let refer = d.new_request(Method::Refer);
        assert_eq!(refer.cseq.seq, 3);
    }

    #[test]
    fn remote_cseq_must_grow_and_reinvite_refreshes_the_target() {
        let contact = SipUri::parse("sip:ivr@192.0.2.10").unwrap();
        let mut d = Dialog::uas(&invite(), &Tag::from("ours"), contact, 1);
        let mut reinvite = invite();
        reinvite.cseq.seq = 11;
        reinvite
            .headers
            .set(HeaderName::CONTACT, "<sip:moved@203.0.113.9>");
        d.handle_remote_request(&reinvite).unwrap();
        assert_eq!(d.remote_target.as_str(), "sip:moved@203.0.113.9");
        let mut old = invite();
        old.method = Method::Info;
        old.cseq = CSeq {
            seq: 5,
            method: Method::Info,
        };
        assert_eq!(
            d.handle_remote_request(&old),
            Err(DialogRejection::OutOfOrder)
        );
    }

    #[test]
    fn strict_router_becomes_the_request_uri() {
        let contact = SipUri::parse("sip:ivr@192.0.2.10").unwrap();
        let mut inv = invite();
        inv.headers
            .set(HeaderName::RECORD_ROUTE, "<sip:strict.example>");
        let mut d = Dialog::uas(&inv, &Tag::from("ours"), contact, 1);
        let bye = d.new_request(Method::Bye);
        assert_eq!(bye.uri.as_str(), "sip:strict.example");
        let routes: Vec<&str> = bye.headers.get_all(&HeaderName::ROUTE).collect();
        assert_eq!(routes, vec!["<sip:+46706170786@203.0.113.5:5060>"]);
    }
}
