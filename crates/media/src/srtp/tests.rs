use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test hex"))
        .collect()
}

fn master(key: &str, salt: &str) -> MasterKey {
    let mut b = [0u8; MasterKey::LEN];
    b[..16].copy_from_slice(&hex(key));
    b[16..].copy_from_slice(&hex(salt));
    MasterKey::from_bytes(&b)
}

/// RFC 3711 Appendix B.3 (and libsrtp's test key).
fn rfc_master() -> MasterKey {
    master(
        "E1F97A0D3E018BE0D64FA32C06DE4139",
        "0EC675AD498AFEEBB6960B3AABE6",
    )
}

fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let key: [u8; 16] = hex("2B7E151628AED2A6ABF7158809CF4F3C").try_into().unwrap();
    let iv: [u8; 16] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000").try_into().unwrap();
    let mut ks = vec![0u8; 16 * 0xff02];
    aes_cm(&key, &iv, &mut ks);
    let block = |n: usize| ks[n * 16..n * 16 + 16].to_vec();
    assert_eq!(block(0), hex("E03EAD0935C95E80E166B16DD92B4EB4"));
    assert_eq!(block(1), hex("D23513162B02D0F72A43A2FE4A5F97AB"));
    assert_eq!(block(2), hex("41E95B3BB0A2E8DD477901E4FCA894C0"));
    assert_eq!(block(0xfeff), hex("EC8CDF7398607CB0F2D21675EA9EA1E4"));
    assert_eq!(block(0xff00), hex("362B7C3C6773516318A077D7FC5073AE"));
    assert_eq!(block(0xff01), hex("6A2CC3787889374FBEB4C81B17BA6C44"));
}

#[test]
fn rfc3711_b3_key_derivation() {
    let (cipher, auth, salt) = session_key_bytes(&rfc_master());
    assert_eq!(cipher.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    assert_eq!(salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    assert_eq!(
        auth.to_vec(),
        hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
    );
}

/// libsrtp's `srtp_driver` reference packet (AES_CM_128_HMAC_SHA1_80, SSRC 0xcafebabe,
/// sequence 0x1234) under the RFC 3711 test key.
#[test]
fn libsrtp_reference_packet_80() {
    let plain = hex("800f1234decafbadcafebabe abababababababababababababababab");
    let expected =
        hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb");
    let mut tx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &rfc_master());
    let mut out = Vec::new();
    tx.protect(&plain, &mut out).unwrap();
    assert_eq!(out, expected);
    let mut rx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &rfc_master());
    let mut back = Vec::new();
    rx.unprotect(&expected, &mut back).unwrap();
    assert_eq!(back, plain);
    // Every truncation of it is refused.
    for len in 0..expected.len() {
        let mut rx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &rfc_master());
        assert!(rx.unprotect(&expected[..len], &mut back).is_err(), "{len}");
    }
}

#[test]
fn round_trip_with_both_tag_lengths() {
    for profile in [
        SrtpProfile::AesCm128HmacSha1_80,
        SrtpProfile::AesCm128HmacSha1_32,
    ] {
        let key = master(
            "00112233445566778899aabbccddeeff",
            "0102030405060708090a0b0c0d0e",
        );
        let mut tx = SrtpContext::new(profile, &key);
        let mut rx = SrtpContext::new(profile, &key);
        let (mut wire, mut back) = (Vec::new(), Vec::new());
        for seq in [65_530u16, 65_531, 65_535, 0, 1, 2] {
            let plain = rtp(seq, 0x1234_5678, &[0xff; 160]);
            tx.protect(&plain, &mut wire).unwrap();
            assert_eq!(wire.len(), plain.len() + profile.tag_len());
            assert_eq!(wire[..12], plain[..12], "the header stays in the clear");
            assert_ne!(wire[12..172], plain[12..], "the payload does not");
            rx.unprotect(&wire, &mut back).unwrap();
            assert_eq!(back, plain, "{profile:?} seq {seq}");
        }
        // After the wrap both sides count ROC 1.
        assert_eq!(rx.stream(0x1234_5678).unwrap().roc, 1);
        assert_eq!(tx.stream(0x1234_5678).unwrap().roc, 1);
    }
}

#[test]
fn a_replayed_packet_is_rejected_and_a_late_one_accepted() {
    let key = rfc_master();
    let mut tx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &key);
    let mut rx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &key);
    let mut back = Vec::new();
    let packets: Vec<Vec<u8>> = (100u16..110)
        .map(|seq| {
            let mut w = Vec::new();
            tx.protect(&rtp(seq, 7, b"voice"), &mut w).unwrap();
            w
        })
        .collect();
    rx.unprotect(&packets[0], &mut back).unwrap();
    rx.unprotect(&packets[5], &mut back).unwrap();
    assert_eq!(
        rx.unprotect(&packets[5], &mut back),
        Err(SrtpError::Replayed)
    );
    // Reordered but inside the window: accepted once.
    rx.unprotect(&packets[3], &mut back).unwrap();
    assert_eq!(
        rx.unprotect(&packets[3], &mut back),
        Err(SrtpError::Replayed)
    );
    assert_eq!(
        rx.unprotect(&packets[0], &mut back),
        Err(SrtpError::Replayed)
    );
}

#[test]
fn a_packet_behind_the_window_is_too_old() {
    let key = rfc_master();
    let mut tx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_32, &key);
    let mut rx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_32, &key);
    let (mut w, mut back) = (Vec::new(), Vec::new());
    tx.protect(&rtp(1000, 9, b"a"), &mut w).unwrap();
    let old = w.clone();
    rx.unprotect(&old, &mut back).unwrap();
    tx.protect(&rtp(1100, 9, b"b"), &mut w).unwrap();
    rx.unprotect(&w, &mut back).unwrap();
    // The sender refuses to go that far back itself; a second sender context forges it.
    assert_eq!(
        tx.protect(&rtp(1001, 9, b"c"), &mut w),
        Err(SrtpError::TooOld)
    );
    let mut late = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_32, &key);
    late.protect(&rtp(1001, 9, b"c"), &mut w).unwrap();
    assert_eq!(rx.unprotect(&w, &mut back), Err(SrtpError::TooOld));
}

#[test]
fn tampering_anywhere_is_rejected() {
    let key = rfc_master();
    for profile in [
        SrtpProfile::AesCm128HmacSha1_80,
        SrtpProfile::AesCm128HmacSha1_32,
    ] {
        let mut tx = SrtpContext::new(profile, &key);
        let mut wire = Vec::new();
        tx.protect(&rtp(5, 42, &[0x7f; 20]), &mut wire).unwrap();
        for i in 0..wire.len() {
            let mut bad = wire.clone();
            bad[i] ^= 0x01;
            let mut rx = SrtpContext::new(profile, &key);
            let mut back = Vec::new();
            assert!(
                rx.unprotect(&bad, &mut back).is_err(),
                "{profile:?} byte {i}"
            );
            // A forged packet leaves no state behind.
            assert!(rx.streams.is_empty());
        }
        // The wrong key fails authentication.
        let other = master(
            "ffeeddccbbaa99887766554433221100",
            "0e0d0c0b0a090807060504030201",
        );
        let mut rx = SrtpContext::new(profile, &other);
        assert_eq!(
            rx.unprotect(&wire, &mut Vec::new()),
            Err(SrtpError::AuthFailed)
        );
    }
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    let mut rx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &rfc_master());
    let mut out = Vec::new();
    for data in [
        &[][..],
        &[0x80; 11],
        &[0x00; 40],
        // CSRC count 15 but no CSRCs.
        &[
            0x8f, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        // Extension bit with a length running past the end.
        &[
            0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0,
        ],
    ] {
        assert_eq!(
            rx.unprotect(data, &mut out),
            Err(SrtpError::Malformed),
            "{data:?}"
        );
    }
}

#[test]
fn keys_never_show_in_debug() {
    let k = rfc_master();
    let shown = format!(
        "{k:?} {:?}",
        SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &k)
    );
    assert!(
        !shown.to_lowercase().contains("e1f9") && !shown.contains("225"),
        "{shown}"
    );
}

#[test]
fn an_index_is_never_encrypted_twice() {
    let mut tx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &rfc_master());
    let mut out = Vec::new();
    tx.protect(&rtp(10, 1, b"first"), &mut out).unwrap();
    tx.protect(&rtp(12, 1, b"third"), &mut out).unwrap();
    // A late packet that was never sent is fine; the same index again is not.
    tx.protect(&rtp(11, 1, b"second"), &mut out).unwrap();
    assert_eq!(
        tx.protect(&rtp(11, 1, b"other words"), &mut out),
        Err(SrtpError::Replayed)
    );
    // Another SSRC has indexes of its own.
    tx.protect(&rtp(11, 2, b"other stream"), &mut out).unwrap();
}

/// The packet written once where it is sent from: the same bytes as `protect`'s (libsrtp's
/// reference packet), and a buffer without room for the tag, or a packet that is not RTP,
/// is refused untouched.
#[test]
fn protecting_in_place_gives_the_reference_packet_and_needs_room_for_the_tag() {
    let plain = hex("800f1234decafbadcafebabe abababababababababababababababab");
    let expected =
        hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb");
    let mut tx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &rfc_master());
    let mut buf = [0u8; 64];
    buf[..plain.len()].copy_from_slice(&plain);
    let n = tx.protect_in_place(&mut buf, plain.len()).unwrap();
    assert_eq!(&buf[..n], &expected[..]);

    let mut tx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &rfc_master());
    let mut short = plain.clone();
    short.extend_from_slice(&[0; 9]);
    assert_eq!(
        tx.protect_in_place(&mut short, plain.len()),
        Err(SrtpError::NoRoom)
    );
    assert_eq!(&short[..plain.len()], &plain[..], "left as it was");
    let mut not_rtp = [0u8; 40];
    assert_eq!(
        tx.protect_in_place(&mut not_rtp, 20),
        Err(SrtpError::Malformed)
    );
    assert_eq!(
        tx.protect_in_place(&mut not_rtp, 41),
        Err(SrtpError::Malformed)
    );
    // Nothing was counted as sent: the reference packet still comes out the same.
    let mut buf = [0u8; 64];
    buf[..plain.len()].copy_from_slice(&plain);
    let n = tx.protect_in_place(&mut buf, plain.len()).unwrap();
    assert_eq!(&buf[..n], &expected[..]);
}
