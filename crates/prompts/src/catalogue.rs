//! Prompts by name ([`Catalogue`]), each encoded once per G.711 law ([`Prompt`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use concierge_media::Law;

use crate::wav::{decode_wav, load_wav, PromptError};

/// One prompt: its 8 kHz audio and both G.711 encodings, made once when it is loaded.
/// Shared by every call that plays it (`Arc<Prompt>` from [`Catalogue::get`]); a call's
/// media reads it frame by frame with [`Self::frame_into`].
#[derive(Debug)]
pub struct Prompt {
    name: String,
    pcm: Arc<[i16]>,
    ulaw: Arc<[u8]>,
    alaw: Arc<[u8]>,
}

impl Prompt {
    /// Encodes 8 kHz mono `pcm` in both laws, under `name`. Called by the catalogue for each
    /// WAV file it loads, and by tests that build prompts from synthetic audio. Encoding
    /// happens here, once, so playing costs only copies.
    pub fn from_pcm(name: impl Into<String>, pcm: Vec<i16>) -> Self {
        let mut ulaw = Vec::with_capacity(pcm.len());
        Law::Ulaw.encode_into(&pcm, &mut ulaw);
        let mut alaw = Vec::with_capacity(pcm.len());
        Law::Alaw.encode_into(&pcm, &mut alaw);
        Self {
            name: name.into(),
            pcm: pcm.into(),
            ulaw: ulaw.into(),
            alaw: alaw.into(),
        }
    }

    /// The prompt's name (its WAV file's stem), as flows name it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many 8 kHz samples it holds (for tests and tools; calls count frames).
    pub fn samples(&self) -> usize {
        self.pcm.len()
    }

    /// Its 8 kHz linear audio, as decoded and resampled (for tests and tools; calls play
    /// the encoded frames).
    pub fn pcm(&self) -> &[i16] {
        &self.pcm
    }

    /// How long it plays: one sample is 125 µs at 8 kHz.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.pcm.len() as u64 * 125)
    }

    /// How many frames of `samples_per_frame` it makes, the last one possibly short. A
    /// call's media asks after each frame it sends, to know when the prompt is done;
    /// `samples_per_frame` of 0 counts as 1.
    pub fn frame_count(&self, samples_per_frame: usize) -> usize {
        self.pcm.len().div_ceil(samples_per_frame.max(1))
    }

    /// Frame `index` of `samples_per_frame` samples (160 for 20 ms) in `law`, borrowed from
    /// the encoded prompt; `None` past the end. The last frame may be short;
    /// [`Self::frame_into`] pads it with silence.
    pub fn frame(&self, law: Law, index: usize, samples_per_frame: usize) -> Option<&[u8]> {
        let bytes = match law {
            Law::Ulaw => &self.ulaw,
            Law::Alaw => &self.alaw,
        };
        let start = index.checked_mul(samples_per_frame)?;
        (start < bytes.len()).then(|| &bytes[start..(start + samples_per_frame).min(bytes.len())])
    }

    /// Copies frame `index` in `law` into `out` (exactly `out.len()` samples), padding a short
    /// last frame with encoded silence. Called by a call's media for each RTP packet while a
    /// prompt plays; returns false (and leaves `out` alone) past the end, when the caller
    /// moves on to the next prompt.
    pub fn frame_into(&self, law: Law, index: usize, out: &mut [u8]) -> bool {
        let Some(f) = self.frame(law, index, out.len()) else {
            return false;
        };
        out[..f.len()].copy_from_slice(f);
        out[f.len()..].fill(law.silence());
        true
    }
}

/// Every prompt the server may play, loaded once: at start-up and on reload by the binary's
/// program builder, which also checks each flow's prompt names against it. Cloning is cheap
/// (the prompts are `Arc`s).
#[derive(Debug, Default, Clone)]
pub struct Catalogue {
    prompts: BTreeMap<String, Arc<Prompt>>,
    dir: PathBuf,
}

impl Catalogue {
    /// Loads every `*.wav` in `dir`; the file stem is the prompt's name. Called by the
    /// binary when prompts come from disk. Any unreadable or unusable file is an error
    /// naming it; other files are ignored.
    pub fn load_dir(dir: &Path) -> Result<Self, PromptError> {
        let entries = std::fs::read_dir(dir).map_err(|source| PromptError::Io {
            path: dir.into(),
            source,
        })?;
        let mut prompts = BTreeMap::new();
        for entry in entries {
            let path = entry
                .map_err(|source| PromptError::Io {
                    path: dir.into(),
                    source,
                })?
                .path();
            if path.extension().and_then(|e| e.to_str()) != Some("wav") {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let pcm = load_wav(&path)?;
            prompts.insert(name.to_owned(), Arc::new(Prompt::from_pcm(name, pcm)));
        }
        Ok(Self {
            prompts,
            dir: dir.into(),
        })
    }

    /// Decodes WAV files held in memory, `(name, bytes)` each; `dir` names where they came
    /// from in errors. Called by the binary for the prompts compiled into it (the built-in
    /// demo); the first bad file is the error.
    pub fn from_wavs<'a>(
        dir: &Path,
        files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Self, PromptError> {
        let mut prompts = BTreeMap::new();
        for (name, bytes) in files {
            let pcm = decode_wav(&dir.join(format!("{name}.wav")), bytes)?;
            prompts.insert(name.to_owned(), Arc::new(Prompt::from_pcm(name, pcm)));
        }
        Ok(Self {
            prompts,
            dir: dir.into(),
        })
    }

    /// The prompt called `name`, shared; `None` when there is none. Called by the switch
    /// when a flow says to play it (an unknown name is skipped with a warning there).
    pub fn get(&self, name: &str) -> Option<Arc<Prompt>> {
        self.prompts.get(name).cloned()
    }

    /// Like [`Self::get`], but a missing prompt is a [`PromptError::Missing`] naming the
    /// directory, for callers that cannot go on without it.
    pub fn require(&self, name: &str) -> Result<Arc<Prompt>, PromptError> {
        self.get(name).ok_or_else(|| PromptError::Missing {
            dir: self.dir.clone(),
            name: name.into(),
        })
    }

    /// Whether a prompt called `name` exists; the flow validator's prompt check, called
    /// when a flow is loaded.
    pub fn contains(&self, name: &str) -> bool {
        self.prompts.contains_key(name)
    }

    /// Every prompt's name, in order; `concierge check` counts them.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.prompts.keys().map(String::as_str)
    }

    /// Adds `prompt` (replacing one of the same name). For tests and embedders that build
    /// a catalogue from generated audio rather than files.
    pub fn insert(&mut self, prompt: Prompt) {
        self.prompts
            .insert(prompt.name().to_owned(), Arc::new(prompt));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prompts the reference flows and the diagnostic routes play.
    pub(crate) const SHIPPED: &[&str] = &[
        "welcome",
        "enter_code",
        "invalid_code",
        "transfer_vip",
        "transfer_service",
        "goodbye",
        "echo_intro",
        "you_entered",
        "vip_desk",
        "service_desk",
        "please_hold",
        "digit_0",
        "digit_1",
        "digit_2",
        "digit_3",
        "digit_4",
        "digit_5",
        "digit_6",
        "digit_7",
        "digit_8",
        "digit_9",
        "digit_star",
        "digit_pound",
    ];

    #[test]
    fn every_shipped_prompt_loads() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../prompts"));
        let c = Catalogue::load_dir(dir).unwrap();
        for name in SHIPPED {
            let p = c.require(name).unwrap();
            assert!(
                p.duration() > Duration::from_millis(200),
                "{name} is too short"
            );
        }
    }

    #[test]
    fn frames_slice_and_pad_the_last_one_with_silence() {
        let p = Prompt::from_pcm("t", (0..400).map(|i| (i * 50) as i16).collect());
        assert_eq!(p.frame_count(160), 3);
        assert_eq!(p.frame(Law::Ulaw, 2, 160).unwrap().len(), 80);
        assert_eq!(p.frame(Law::Ulaw, 3, 160), None);
        let mut buf = [0u8; 160];
        assert!(p.frame_into(Law::Alaw, 2, &mut buf));
        assert!(buf[80..].iter().all(|b| *b == Law::Alaw.encode(0)));
        assert_eq!(p.frame_count(240), 2);
        assert_eq!(p.frame_count(80), 5);
    }

    #[test]
    fn encoding_matches_the_reference_for_every_sample() {
        let all: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        let p = Prompt::from_pcm("all", all.clone());
        let mut buf = vec![0u8; 160];
        for (i, chunk) in all.chunks(160).enumerate() {
            assert!(p.frame_into(Law::Ulaw, i, &mut buf));
            for (j, s) in chunk.iter().enumerate() {
                assert_eq!(buf[j], Law::Ulaw.encode(*s));
            }
            assert!(p.frame_into(Law::Alaw, i, &mut buf));
            for (j, s) in chunk.iter().enumerate() {
                assert_eq!(buf[j], Law::Alaw.encode(*s));
            }
        }
    }
}
