#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    concierge_sip::fuzzing::datagram(std::time::Instant::now(), data);
});
