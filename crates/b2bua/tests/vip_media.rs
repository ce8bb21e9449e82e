//! The media side of the reference VIP flow in virtual time: a caller putting us on hold
//! and back by re-INVITE, offers in the ACK, and the code keyed by RFC 4733 events or by
//! SIP INFO.

mod testkit;

use std::time::Duration;

use concierge_b2bua::SwitchConfig;
use testkit::rtp::payload_type;
use testkit::vip::*;
use testkit::*;

#[test]
fn a_hold_reinvite_is_answered_recvonly_from_the_same_port_with_the_next_sdp_version() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "hold");
    let port = c.port.expect("a port");
    let out = c.reinvite(&mut kit, "sendonly");
    let ok = find_response(&out, 200);
    assert_eq!(sdp_direction(&ok.body), "recvonly");
    assert_eq!(sdp_port(&ok.body), Some(port));
    let sdp = String::from_utf8_lossy(&ok.body).into_owned();
    let origin = sdp.lines().find(|l| l.starts_with("o=")).expect("o=");
    assert_eq!(origin.split(' ').nth(2), Some("2"), "{origin}");
}

#[test]
fn no_audio_goes_to_a_held_caller() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_welcome(&mut kit, "held");
    c.reinvite(&mut kit, "sendonly");
    c.ack(&mut kit);
    let held = kit.now;
    kit.advance(Duration::from_secs(6));
    assert!(
        kit.rtp_to(c.media, held + Duration::from_millis(1))
            .is_empty(),
        "no RTP while held"
    );
}

#[test]
fn a_resume_reinvite_brings_the_prompts_back() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_welcome(&mut kit, "resume");
    c.reinvite(&mut kit, "sendonly");
    c.ack(&mut kit);
    kit.advance(Duration::from_secs(5));
    let out = c.reinvite(&mut kit, "sendrecv");
    assert_eq!(sdp_direction(&find_response(&out, 200).body), "sendrecv");
    c.ack(&mut kit);
    let resumed = kit.now;
    kit.advance(Duration::from_secs(1));
    assert_eq!(
        c.heard(&kit, resumed),
        vec!["invalid_code", "enter_code"],
        "the keypad's retry, heard once the caller is back"
    );
}

#[test]
fn a_held_caller_can_still_key_the_code() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "heldkeys");
    c.reinvite(&mut kit, "sendonly");
    c.ack(&mut kit);
    c.keys(&mut kit, "202020");
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert!(refer_to(&refer).ends_with("?X-Concierge-Tier=silver>"));
}

#[test]
fn a_silent_caller_is_hung_up_at_the_media_timeout() {
    let cfg = SwitchConfig {
        media_timeout: Duration::from_secs(3),
        ..config()
    };
    let mut kit = Kit::vip_with(cfg);
    let mut c = vip_at_greeting(&mut kit, "silent");
    let refer = refer_after_prompt(&mut kit, &mut c);
    c.reply(&mut kit, &refer, 202);
    kit.advance(Duration::from_secs(3));
    let bye = find_request(&c.inbox(&mut kit), "BYE");
    c.reply(&mut kit, &bye, 200);
    let rec = kit.record("silent");
    assert_eq!(
        (rec.ended_by.as_str(), rec.reason.as_str()),
        ("network", "no RTP from the caller for 3 s")
    );
}

#[test]
fn a_held_caller_is_not_hung_up_for_sending_no_audio() {
    let cfg = SwitchConfig {
        media_timeout: Duration::from_secs(3),
        ..config()
    };
    let mut kit = Kit::vip_with(cfg);
    let mut c = vip_at_greeting(&mut kit, "holdon");
    let refer = refer_after_prompt(&mut kit, &mut c);
    c.reply(&mut kit, &refer, 202);
    c.reinvite(&mut kit, "inactive");
    c.ack(&mut kit);
    kit.advance(Duration::from_secs(10));
    assert!(
        !methods(&c.inbox(&mut kit)).contains(&"BYE".to_owned()),
        "a held call is exempt"
    );
    assert!(!kit.ended("holdon"));
}

#[test]
fn an_offerless_reinvite_gets_our_offer_and_the_ack_answers_it() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "offerless");
    let port = c.port.expect("a port");
    let out = c.reinvite_without_offer(&mut kit);
    let ok = find_response(&out, 200);
    assert_eq!(sdp_port(&ok.body), Some(port));
    assert!(String::from_utf8_lossy(&ok.body).contains("telephone-event/8000"));
    c.offer = false;
    c.ack(&mut kit);
    c.offer = true;
    c.keys(&mut kit, "101010");
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert!(refer_to(&refer).ends_with("?X-Concierge-Tier=gold>"));
}

#[test]
fn a_late_offer_call_is_answered_with_our_offer_and_the_ack_brings_up_the_prompts() {
    let mut kit = Kit::vip();
    let mut c = Caller::phone("late", UNKNOWN_NUMBER).without_offer();
    c.invite(&mut kit);
    kit.http_reply(404, "");
    let ok = find_response(&c.inbox(&mut kit), 200);
    assert!(
        String::from_utf8_lossy(&ok.body).contains("m=audio "),
        "our offer in the 200"
    );
    let acked = kit.now;
    c.ack(&mut kit);
    kit.advance_ms(300);
    assert_eq!(c.heard(&kit, acked), vec!["welcome", "enter_code"]);
}

#[test]
fn prompts_are_sent_in_our_preferred_codec_pcmu_when_the_caller_offers_both_laws() {
    let mut kit = Kit::vip();
    let c = unknown_at_welcome(&mut kit, "codec");
    kit.advance_ms(100);
    let sent = kit.rtp_to(c.media, kit.base);
    assert!(!sent.is_empty());
    let types: Vec<u8> = sent.iter().map(|p| payload_type(&p.packet)).collect();
    assert!(types.iter().all(|t| *t == 0), "PCMU: {types:?}");
    assert!(sent.iter().all(|p| p.port == c.port.expect("a port")));
}

#[test]
fn keys_by_rfc_4733_are_recorded_as_rfc4733() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "events");
    c.keys(&mut kit, "101010");
    refer_after_prompt(&mut kit, &mut c);
    c.bye(&mut kit);
    assert_eq!(kit.record("events").digits, vec![('*', "rfc4733"); 6]);
}

#[test]
fn keys_by_sip_info_reach_the_keypad_and_are_recorded_as_info() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "info");
    for k in "101010".chars() {
        let out = c.info_key(&mut kit, k);
        assert_eq!(answers(&out)[0], "200 INFO");
    }
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert!(refer_to(&refer).ends_with("?X-Concierge-Tier=gold>"));
    c.bye(&mut kit);
    assert_eq!(kit.record("info").digits, vec![('*', "info"); 6]);
}

#[test]
fn keys_by_rfc_4733_and_info_mixed_make_one_code() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "mixed");
    c.keys(&mut kit, "202");
    for k in "020".chars() {
        c.info_key(&mut kit, k);
    }
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert!(refer_to(&refer).ends_with("?X-Concierge-Tier=silver>"));
}

#[test]
fn a_key_press_whose_end_packets_come_again_counts_once() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "twice");
    let port = c.port.expect("a port");
    for k in "10101".chars() {
        let press = c.rtp.press(testkit::sip::EVENT_PT, k);
        // The end packets again, late (a jittery path).
        for p in press.iter().chain(press[2..].iter()) {
            kit.rtp_in(port, c.media, p);
        }
        kit.advance_ms(100);
    }
    kit.advance_ms(200);
    assert!(
        methods(&c.inbox(&mut kit)).is_empty(),
        "five keys, no code yet"
    );
    c.key(&mut kit, '0');
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert!(refer_to(&refer).ends_with("?X-Concierge-Tier=gold>"));
}

#[test]
fn keys_from_a_stranger_address_are_dropped_and_counted() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "stranger");
    let port = c.port.expect("a port");
    let stranger = "198.51.100.7:4000".parse().expect("an address");
    for k in "101010".chars() {
        for p in c.rtp.press(testkit::sip::EVENT_PT, k) {
            kit.rtp_in(port, stranger, &p);
        }
    }
    kit.advance_ms(500);
    assert!(methods(&c.inbox(&mut kit)).is_empty(), "no transfer");
    c.bye(&mut kit);
    let rec = kit.record("stranger");
    assert!(rec.digits.is_empty());
    assert_eq!(rec.rtp_foreign_dropped, 30, "six presses of five packets");
}
