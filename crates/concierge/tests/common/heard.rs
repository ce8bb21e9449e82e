//! What a raw caller hears: the server's RTP, read as it comes. A prompt's audio reaching
//! the caller is the observable sign that the flow reached the node that plays it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{repo_root, RawCall, PATIENCE};

/// The first loud 20 ms frame of `prompts/NAME.wav`, µ-law encoded as the server sends it
/// (a loud frame, because the silence a prompt starts with is the same in every prompt).
pub fn loud_frame(prompt: &str) -> Vec<u8> {
    let samples = concierge_prompts::load_wav(&repo_root().join(format!("prompts/{prompt}.wav")))
        .unwrap_or_else(|e| panic!("prompts/{prompt}.wav: {e}"));
    let frame = samples
        .chunks_exact(160)
        .find(|f| f.iter().any(|s| s.abs() > 8000))
        .unwrap_or_else(|| panic!("prompts/{prompt}.wav has no loud frame"));
    frame
        .iter()
        .map(|s| audio_codec_algorithms::encode_ulaw(*s))
        .collect()
}

impl RawCall {
    /// Waits for the server's next RTP packet to this caller; returns where it came from
    /// and its length.
    #[track_caller]
    pub fn wait_rtp(&self) -> (SocketAddr, usize) {
        let mut buf = [0u8; 2048];
        self.rtp
            .set_read_timeout(Some(PATIENCE))
            .expect("read timeout");
        let (n, from) = self
            .rtp
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no RTP from the server within {PATIENCE:?}: {e}"));
        (from, n)
    }

    /// Waits until the server's RTP carries `prompt` (see [`loud_frame`]): the flow is at
    /// the node that plays it. Earlier audio is read and passed over.
    #[track_caller]
    pub fn wait_prompt(&self, prompt: &str) {
        self.wait_prompt_within(prompt, PATIENCE);
    }

    /// As [`Self::wait_prompt`], with a deadline of its own.
    #[track_caller]
    pub fn wait_prompt_within(&self, prompt: &str, within: Duration) {
        let frame = loud_frame(prompt);
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 2048];
        let mut packets = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{prompt:?} not heard within {within:?} ({packets} RTP packets of other audio)"
            );
            self.rtp.set_read_timeout(Some(left)).expect("read timeout");
            let Ok((n, _)) = self.rtp.recv_from(&mut buf) else {
                continue;
            };
            packets += 1;
            if buf.get(12..n) == Some(&frame[..]) {
                return;
            }
        }
    }
}
