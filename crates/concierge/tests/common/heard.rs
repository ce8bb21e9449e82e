//! What a raw caller hears: the server's RTP, read as it comes. A prompt's audio reaching
//! the caller is the observable sign that the flow reached the node that plays it.

use super::{recv_until, repo_root, RawCall, PATIENCE};

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
    /// Waits until the server's RTP carries `prompt` (see [`loud_frame`]): the flow is at
    /// the node that plays it. Earlier audio is read and passed over.
    #[track_caller]
    pub fn wait_prompt(&self, prompt: &str) {
        let frame = loud_frame(prompt);
        let mut other = 0;
        recv_until(&self.rtp, PATIENCE, |packet| {
            other += 1;
            (packet.get(12..) == Some(&frame[..])).then_some(())
        })
        .unwrap_or_else(|| {
            panic!("{prompt:?} not heard within {PATIENCE:?} ({other} RTP packets of other audio)")
        });
    }
}
