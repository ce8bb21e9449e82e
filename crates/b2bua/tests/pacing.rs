//! The pacing tick in virtual time: every call's packets leave on the shard's 2 ms grid,
//! each call on its own 20 ms ptime, and the switch is woken only for ticks a call is due
//! at. A late wake-up catches up by at most three frames; a call whose media restarts is
//! never sent a packet twice; an ended call's ticks end with it.

mod testkit;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use concierge_b2bua::{Input, Output};
use testkit::*;

/// A switch with no flow: an answered call hears silence until it ends.
fn kit() -> Kit {
    Kit::with(config(), Default::default())
}

/// A caller answered and ACKed, its media at `media`.
fn answered(kit: &mut Kit, call_id: &str, media: &str) -> Caller {
    let mut c = Caller::phone(call_id, "+46706170786");
    c.media = media.parse().unwrap();
    c.invite(kit);
    c.ack(kit);
    c
}

/// RTP packets among `outputs`: (to, sequence number).
fn packets(outputs: &[Output]) -> Vec<(SocketAddr, u16)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Rtp(batch) => Some(batch),
            _ => None,
        })
        .flat_map(|b| {
            b.iter()
                .map(|(d, p)| (d.peer, u16::from_be_bytes([p[2], p[3]])))
        })
        .collect()
}

/// Milliseconds from the kit's base: the grid is every 10 of them.
fn ms(kit: &Kit, at: Instant) -> u128 {
    (at - kit.base).as_millis()
}

#[test]
fn a_call_gets_a_packet_every_20_ms_on_the_grid_and_the_switch_wakes_only_for_it() {
    let mut kit = kit();
    let c = answered(&mut kit, "one", "127.0.0.1:4000");
    let mut sent_at = Vec::new();
    for _ in 0..50 {
        let (out, _) = kit.wake();
        assert_eq!(
            packets(&out).iter().map(|(to, _)| *to).collect::<Vec<_>>(),
            vec![c.media],
            "each wake-up at {} ms sends the call's packet and nothing else",
            ms(&kit, kit.now)
        );
        sent_at.push(ms(&kit, kit.now));
    }
    assert_eq!(sent_at[0] % 10, 0, "on the grid");
    for pair in sent_at.windows(2) {
        assert_eq!(pair[1] - pair[0], 20, "{sent_at:?}");
    }
}

#[test]
fn two_calls_a_tick_apart_each_keep_their_own_20_ms() {
    let mut kit = kit();
    let a = answered(&mut kit, "a", "127.0.0.1:4000");
    kit.advance(Duration::from_millis(10));
    let b = answered(&mut kit, "b", "127.0.0.1:4002");
    kit.advance(Duration::from_millis(800));
    let times = |media| -> Vec<u128> {
        kit.rtp_to(media, kit.base)
            .iter()
            .map(|p| ms(&kit, p.at))
            .collect()
    };
    let (a, b) = (times(a.media), times(b.media));
    for t in [&a, &b] {
        assert!(t.len() >= 39, "{t:?}");
        assert!(t.windows(2).all(|p| p[1] - p[0] == 20), "{t:?}");
    }
    assert_eq!(b[0] - a[0], 10, "b on the other ticks");
}

#[test]
fn a_late_wake_up_sends_at_most_three_frames_then_the_grid_goes_on() {
    let mut kit = kit();
    answered(&mut kit, "late", "127.0.0.1:4000");
    kit.wake();
    let (_, due) = kit.wake();
    let due = due.expect("the next tick");
    // The driver wakes 95 ms late: five packet times are owed.
    kit.now = due + Duration::from_millis(95);
    let (out, next) = kit.turn(Input::Timeout);
    let seqs: Vec<u16> = packets(&out).iter().map(|(_, s)| *s).collect();
    assert_eq!(seqs.len(), 3, "a burst of three, not five");
    assert!(seqs.windows(2).all(|p| p[1] == p[0].wrapping_add(1)));
    let next = next.expect("the call is still paced");
    assert_eq!(ms(&kit, next) % 2, 0, "back on the 2 ms tick grid");
    assert!(next > kit.now && next <= kit.now + Duration::from_millis(30));
    let (out, _) = kit.wake();
    assert_eq!(packets(&out).len(), 1);
    let (out, _) = kit.wake();
    assert_eq!(
        packets(&out)[0].1,
        seqs[2].wrapping_add(2),
        "sequence unbroken"
    );
}

#[test]
fn media_restarted_by_a_reinvite_never_sends_a_packet_twice() {
    let mut kit = kit();
    let mut c = answered(&mut kit, "again", "127.0.0.1:4000");
    kit.advance(Duration::from_millis(105));
    let restarted = kit.now;
    // The same media offered again: the call's media starts afresh on the next tick.
    c.reinvite(&mut kit, "sendrecv");
    c.ack(&mut kit);
    kit.advance(Duration::from_millis(200));
    let sent: Vec<(Instant, u16)> = kit
        .rtp_to(c.media, kit.base)
        .iter()
        .map(|p| (p.at, u16::from_be_bytes([p.packet[2], p.packet[3]])))
        .collect();
    assert!(sent.iter().any(|(at, _)| *at > restarted));
    assert!(
        sent.windows(2)
            .all(|p| p[1].0 > p[0].0 && p[1].1 == p[0].1.wrapping_add(1)),
        "one packet per send time, sequence unbroken: {:?}",
        sent.iter()
            .map(|(at, s)| (ms(&kit, *at), *s))
            .collect::<Vec<_>>()
    );
}

#[test]
fn an_ended_call_is_not_paced_any_more_and_the_ticks_stop() {
    let mut kit = kit();
    let mut c = answered(&mut kit, "gone", "127.0.0.1:4000");
    kit.advance(Duration::from_millis(100));
    c.bye(&mut kit);
    let ended = kit.now;
    kit.advance(Duration::from_millis(100));
    assert!(
        kit.rtp_to(c.media, ended + Duration::from_nanos(1))
            .is_empty(),
        "no packet after BYE"
    );
    // An early Timeout is harmless: it only tells the next wake-up.
    let (_, next) = kit.turn(Input::Timeout);
    let next = next.expect("the BYE's transaction lingers");
    assert!(
        next >= kit.now + Duration::from_secs(1),
        "no pacing tick is due: the next wake-up is at {} ms",
        ms(&kit, next)
    );
}
