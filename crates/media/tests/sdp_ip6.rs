//! IPv6 in SDP (RFC 4566 §5.7 `IN IP6`): an IPv6 offer is answered with our IPv6 address
//! and its RTP goes to the offer's IPv6 address; our own offers say `IP6` when our media
//! address is IPv6.

use std::net::SocketAddr;

use concierge_media::sdp;

const OFFER_V6: &str = "v=0\r\no=- 1 1 IN IP6 2001:db8::5\r\ns=-\r\nc=IN IP6 2001:db8::5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

fn ours() -> SocketAddr {
    "[2001:db8::1]:10000".parse().unwrap()
}

#[test]
fn an_ip6_offer_is_answered_from_our_ipv6_address_and_rtp_goes_to_its_ipv6_address() {
    let (audio, answer) = sdp::answer(OFFER_V6, ours(), 1).expect("an answer");
    assert_eq!(audio.remote, Some("[2001:db8::5]:4000".parse().unwrap()));
    assert!(answer.contains("c=IN IP6 2001:db8::1\r\n"), "{answer}");
    assert!(
        answer.contains("o=concierge 1 1 IN IP6 2001:db8::1\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("m=audio 10000 RTP/AVP 0 101\r\n"),
        "{answer}"
    );
    assert!(!answer.contains("IP4"), "{answer}");
}

#[test]
fn a_media_level_ip6_connection_wins_over_the_session_level_one() {
    let offer = "v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\nc=IN IP6 ::1\r\n";
    let (audio, _) = sdp::answer(offer, ours(), 1).expect("an answer");
    assert_eq!(audio.remote, Some("[::1]:4000".parse().unwrap()));
}

#[test]
fn c_in_ip6_unspecified_is_a_hold_like_0_0_0_0() {
    let offer = "v=0\r\nc=IN IP6 ::\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let (audio, answer) = sdp::answer(offer, ours(), 1).expect("an answer");
    assert_eq!(audio.remote, None);
    assert!(answer.contains("a=inactive"), "{answer}");
}

#[test]
fn our_offers_and_an_answer_to_ours_speak_ip6() {
    let offer = sdp::offer(ours(), 3);
    assert!(offer.contains("c=IN IP6 2001:db8::1\r\n"), "{offer}");
    let (caller, _) = sdp::answer(OFFER_V6, ours(), 1).unwrap();
    let leg = sdp::offer_for(ours(), 1, &caller);
    assert!(leg.contains("c=IN IP6 2001:db8::1\r\n"), "{leg}");
    let their_answer = "v=0\r\nc=IN IP6 2001:db8::9\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n";
    let agreed = sdp::accept(their_answer).expect("accepted");
    assert_eq!(agreed.remote, Some("[2001:db8::9]:7000".parse().unwrap()));
}

#[test]
fn a_garbled_ip6_address_leaves_no_remote_rather_than_a_wrong_one() {
    let offer = "v=0\r\nc=IN IP6 2001:db8::zz\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let (audio, _) = sdp::answer(offer, ours(), 1).expect("an answer");
    assert_eq!(audio.remote, None);
}
