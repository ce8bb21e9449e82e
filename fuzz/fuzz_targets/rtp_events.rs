#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    concierge_media::fuzzing::rtp_and_telephone_events(std::time::Instant::now(), data);
});
