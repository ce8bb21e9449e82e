use super::*;

fn local() -> SocketAddr {
    "127.0.0.1:10000".parse().unwrap()
}

const SIPP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
const BARESIP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 10002 RTP/AVP 96 9 0 8 101\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=rtcp-mux\r\na=sendrecv\r\n";

#[test]
fn a_second_leg_is_offered_only_the_callers_codec() {
    let offer = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 8 96\r\na=rtpmap:96 telephone-event/8000\r\n";
    let (caller, _) = answer(offer, local(), 1).unwrap();
    let leg = offer_for("127.0.0.1:10002".parse().unwrap(), 1, &caller);
    assert!(leg.contains("m=audio 10002 RTP/AVP 8 96\r\n"), "{leg}");
    assert!(
        leg.contains("a=rtpmap:8 PCMA/8000\r\n")
            && leg.contains("a=rtpmap:96 telephone-event/8000")
    );
    let back = accept(&leg).unwrap();
    assert_eq!((back.payload_type, back.telephone_event), (8, Some(96)));
}

#[test]
fn sipp_offer_gets_pcmu_and_our_port() {
    let (s, sdp) = answer(SIPP, local(), 1).unwrap();
    assert_eq!(
        (s.payload_type, s.codec, s.telephone_event),
        (0, "PCMU", None)
    );
    assert_eq!(s.remote, Some("127.0.0.1:6000".parse().unwrap()));
    assert!(sdp.contains("m=audio 10000 RTP/AVP 0\r\n"), "{sdp}");
    assert!(sdp.contains("c=IN IP4 127.0.0.1\r\n"));
}

#[test]
fn baresip_offer_keeps_its_telephone_event_payload_type() {
    let (s, sdp) = answer(BARESIP, local(), 1).unwrap();
    assert_eq!((s.payload_type, s.telephone_event), (0, Some(101)));
    assert!(
        sdp.contains("m=audio 10000 RTP/AVP 0 101\r\n") && sdp.contains("a=fmtp:101 0-16"),
        "{sdp}"
    );
}

#[test]
fn pcma_only_and_dynamic_telephone_event_96() {
    let offer = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 8 96\r\na=rtpmap:96 telephone-event/8000\r\na=ptime:30\r\n";
    let (s, _) = answer(offer, local(), 1).unwrap();
    assert_eq!(
        (s.payload_type, s.codec, s.telephone_event, s.ptime_ms),
        (8, "PCMA", Some(96), 30)
    );
}

#[test]
fn no_common_codec_is_not_acceptable() {
    let offer = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    assert!(matches!(
        answer(offer, local(), 1),
        Err(OfferError::NotAcceptable(_))
    ));
    assert!(matches!(
        answer("garbage", local(), 1),
        Err(OfferError::NotAcceptable(_))
    ));
}

#[test]
fn hold_offers_are_answered_without_sending() {
    let sendonly = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";
    let (s, sdp) = answer(sendonly, local(), 2).unwrap();
    assert!(sdp.contains("a=recvonly") && !s.send);
    let old_style = "v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let (s, sdp) = answer(old_style, local(), 2).unwrap();
    assert!(sdp.contains("a=inactive") && s.remote.is_none());
}

#[test]
fn late_offer_round_trip() {
    let ours = offer(local(), 1);
    assert!(ours.contains("m=audio 10000 RTP/AVP 0 8 101"));
    let their_answer = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 7000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    let s = accept(their_answer).unwrap();
    assert_eq!((s.payload_type, s.telephone_event), (8, Some(101)));
    assert_eq!(s.remote, Some("127.0.0.1:7000".parse().unwrap()));
}

#[test]
fn video_stream_is_refused_with_port_zero() {
    let offer = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\nm=video 4002 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n";
    let (_, sdp) = answer(offer, local(), 1).unwrap();
    assert!(sdp.contains("m=video 0 RTP/AVP 97"), "{sdp}");
}

const PJSIP_SAVP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=pjmedia\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:HRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEA\r\na=sendrecv\r\n";

fn our_key() -> MasterKey {
    MasterKey::from_bytes(&[0x42; 30])
}

#[test]
fn a_savp_offer_is_answered_with_srtp_and_our_own_key() {
    for policy in [SrtpPolicy::Optional, SrtpPolicy::Mandatory] {
        let (s, sdp) = answer_with(PJSIP_SAVP, local(), 1, policy, Some(&our_key())).unwrap();
        assert!(sdp.contains("m=audio 10000 RTP/SAVP 0 101\r\n"), "{sdp}");
        let ours = CryptoAttribute {
            tag: 1,
            profile: SrtpProfile::AesCm128HmacSha1_80,
            key: our_key(),
        };
        assert!(sdp.contains(&format!("{}\r\n", ours.line())), "{sdp}");
        assert_eq!(sdp.matches("a=crypto:").count(), 1);
        let k = s.srtp.expect("keyed");
        assert_eq!(k.profile, SrtpProfile::AesCm128HmacSha1_80);
        let theirs: Vec<u8> = (0..30).collect();
        assert_eq!(k.theirs.to_bytes().to_vec(), theirs);
        assert_eq!(k.ours, our_key());
    }
}

#[test]
fn the_first_usable_crypto_line_wins_and_32_bit_tags_work() {
    let offer = PJSIP_SAVP.replace(
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80",
        "a=crypto:1 F8_128_HMAC_SHA1_80",
    );
    let (s, sdp) = answer_with(&offer, local(), 1, SrtpPolicy::Optional, Some(&our_key())).unwrap();
    assert!(
        sdp.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"),
        "{sdp}"
    );
    assert_eq!(s.srtp.unwrap().profile, SrtpProfile::AesCm128HmacSha1_32);
}

#[test]
fn a_plain_offer_gets_plain_rtp_unless_srtp_is_mandatory() {
    let (s, sdp) = answer_with(SIPP, local(), 1, SrtpPolicy::Optional, Some(&our_key())).unwrap();
    assert!(s.srtp.is_none() && !sdp.contains("crypto") && sdp.contains("RTP/AVP 0"));
    let e = answer_with(SIPP, local(), 1, SrtpPolicy::Mandatory, Some(&our_key()));
    assert!(matches!(e, Err(OfferError::NotAcceptable(w)) if w.contains("mandatory")));
}

#[test]
fn srtp_off_refuses_savp_and_savp_without_usable_keys_is_refused() {
    let e = answer_with(PJSIP_SAVP, local(), 1, SrtpPolicy::Off, Some(&our_key()));
    assert!(matches!(e, Err(OfferError::NotAcceptable(_))));
    assert!(answer(PJSIP_SAVP, local(), 1).is_err());
    let no_keys = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\n";
    let e = answer_with(no_keys, local(), 1, SrtpPolicy::Optional, Some(&our_key()));
    assert!(matches!(e, Err(OfferError::NotAcceptable(w)) if w.contains("a=crypto")));
}

#[test]
fn best_effort_crypto_on_avp_is_taken() {
    let offer = PJSIP_SAVP.replace("RTP/SAVP", "RTP/AVP");
    let (s, sdp) = answer_with(&offer, local(), 1, SrtpPolicy::Optional, Some(&our_key())).unwrap();
    assert!(s.srtp.is_some() && sdp.contains("RTP/AVP 0 101") && sdp.contains("a=crypto:1"));
    // With srtp off the keys are ignored and the answer is plain.
    let (s, sdp) = answer_with(&offer, local(), 1, SrtpPolicy::Off, None).unwrap();
    assert!(s.srtp.is_none() && !sdp.contains("crypto"));
}

#[test]
fn our_srtp_offer_and_its_answer() {
    let mine = offer_with(local(), 1, Some(&our_key()));
    assert!(
        mine.contains("m=audio 10000 RTP/SAVP 0 8 101\r\n")
            && mine.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{mine}"
    );
    // The far end answers with its own key; reading it pairs the two.
    let their_key = MasterKey::from_bytes(&[7; 30]);
    let (_, their_answer) = answer_with(
        &mine,
        "127.0.0.1:7000".parse().unwrap(),
        1,
        SrtpPolicy::Mandatory,
        Some(&their_key),
    )
    .unwrap();
    let s = accept_with(&their_answer, Some(&our_key())).unwrap();
    let k = s.srtp.unwrap();
    assert_eq!((k.ours, k.theirs), (our_key(), their_key));
    // An answer that drops the keys to an SRTP offer is not acceptable.
    let plain = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 7000 RTP/AVP 0\r\n";
    assert!(accept_with(plain, Some(&our_key())).is_err());
    let (caller, _) = answer(SIPP, local(), 1).unwrap();
    let leg = offer_for_with(local(), 1, &caller, Some(&our_key()));
    assert!(
        leg.contains("RTP/SAVP 0 101") && leg.contains("a=crypto:1 "),
        "{leg}"
    );
}

#[test]
fn the_answer_names_our_address_as_std_writes_it() {
    for local in [
        "0.0.0.0:1",
        "10.20.30.40:4000",
        "255.255.255.255:2",
        "[2001:db8::7]:4000",
    ] {
        let local: SocketAddr = local.parse().unwrap();
        let (_, sdp) = answer(SIPP, local, 1).unwrap();
        let family = if local.is_ipv4() { "IP4" } else { "IP6" };
        let ip = local.ip();
        assert!(sdp.contains(&format!("IN {family} {ip}\r\ns=")), "{sdp}");
        assert!(sdp.contains(&format!("c=IN {family} {ip}\r\n")), "{sdp}");
    }
}
