//! WAV files to 8 kHz mono samples. 16-bit PCM goes through `hound`; G.711 µ-law and A-law
//! WAV (format tags 7 and 6), which hound refuses, through a small RIFF reader of ours.

use std::path::{Path, PathBuf};

use concierge_media::Law;
use thiserror::Error;

use crate::resample::to_8khz;

/// Why a prompt could not be had; returned by the loaders and
/// [`Catalogue::require`](crate::Catalogue::require). Its `Display` names the file or directory, and is what
/// `concierge check` and a refused reload print.
#[derive(Debug, Error)]
pub enum PromptError {
    /// A file or directory could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not a WAV file we can play (format, bit depth, channels, rate, or a
    /// malformed RIFF structure).
    #[error("{path}: not a usable WAV file: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, in a few words.
        why: String,
    },
    /// The file decodes to no samples at all.
    #[error("{path}: the prompt holds no audio")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// No prompt of that name (from [`Catalogue::require`](crate::Catalogue::require)).
    #[error("{dir}: no prompt named {name:?}")]
    Missing {
        /// Where the catalogue's prompts came from.
        dir: PathBuf,
        /// The name asked for.
        name: String,
    },
}

const WAVE_FORMAT_PCM: u16 = 1;
const WAVE_FORMAT_ALAW: u16 = 6;
const WAVE_FORMAT_MULAW: u16 = 7;
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xfffe;

/// Reads the WAV file `path` and returns its audio as 8 kHz mono 16-bit samples. Called by
/// [`Catalogue::load_dir`](crate::Catalogue::load_dir) for each file, and by tests that
/// compare what a phone heard with the prompt. Errors as [`decode_wav`], or
/// [`PromptError::Io`] when the file cannot be read.
pub fn load_wav(path: &Path) -> Result<Vec<i16>, PromptError> {
    let bytes = std::fs::read(path).map_err(|source| PromptError::Io {
        path: path.into(),
        source,
    })?;
    decode_wav(path, &bytes)
}

/// Decodes the WAV file `bytes` (named `path` in errors) to 8 kHz mono 16-bit samples:
/// 16-bit PCM or G.711 (decoded with media's [`Law`]), up to 8 channels (averaged), any
/// rate from 4 to 192 kHz (resampled). Untrusted bytes give a [`PromptError`], never a
/// panic. Called by [`load_wav`] and [`Catalogue::from_wavs`](crate::Catalogue::from_wavs).
pub fn decode_wav(path: &Path, bytes: &[u8]) -> Result<Vec<i16>, PromptError> {
    let bad = |why: &str| PromptError::Format {
        path: path.into(),
        why: why.into(),
    };
    let fmt = read_fmt(bytes).map_err(|w| bad(&w))?;
    let (mono, rate) = match fmt.tag {
        WAVE_FORMAT_ALAW | WAVE_FORMAT_MULAW => {
            let data = find_chunk(bytes, b"data").map_err(|w| bad(&w))?;
            let law = if fmt.tag == WAVE_FORMAT_ALAW {
                Law::Alaw
            } else {
                Law::Ulaw
            };
            let mut samples = Vec::with_capacity(data.len());
            law.decode_into(data, &mut samples);
            (downmix(&samples, fmt.channels), fmt.rate)
        }
        WAVE_FORMAT_PCM | WAVE_FORMAT_EXTENSIBLE => {
            if fmt.bits != 16 {
                return Err(bad(&format!(
                    "{}-bit PCM; use 16-bit PCM or G.711",
                    fmt.bits
                )));
            }
            let reader = hound::WavReader::new(std::io::Cursor::new(bytes))
                .map_err(|e| bad(&e.to_string()))?;
            let samples: Result<Vec<i16>, _> = reader.into_samples::<i16>().collect();
            let samples = samples.map_err(|e| bad(&e.to_string()))?;
            (downmix(&samples, fmt.channels), fmt.rate)
        }
        other => return Err(bad(&format!("format tag {other}; use 16-bit PCM or G.711"))),
    };
    if mono.is_empty() {
        return Err(PromptError::Empty { path: path.into() });
    }
    Ok(to_8khz(&mono, rate))
}

struct Fmt {
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
}

fn read_fmt(bytes: &[u8]) -> Result<Fmt, String> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("no RIFF/WAVE header".into());
    }
    let f = find_chunk(bytes, b"fmt ")?;
    if f.len() < 16 {
        return Err("fmt chunk too short".into());
    }
    let u16_at = |i: usize| u16::from_le_bytes([f[i], f[i + 1]]);
    let fmt = Fmt {
        tag: u16_at(0),
        channels: u16_at(2),
        rate: u32::from_le_bytes([f[4], f[5], f[6], f[7]]),
        bits: u16_at(14),
    };
    if fmt.channels == 0 || fmt.channels > 8 {
        return Err(format!("{} channels", fmt.channels));
    }
    if !(4000..=192_000).contains(&fmt.rate) {
        return Err(format!("sample rate {}", fmt.rate));
    }
    Ok(fmt)
}

/// The body of the first chunk with `id`; chunk sizes from the file are checked against
/// its length, and odd-sized chunks are padded to even (RIFF).
fn find_chunk<'a>(bytes: &'a [u8], id: &[u8; 4]) -> Result<&'a [u8], String> {
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let size = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        let body = pos + 8;
        let end = body
            .checked_add(size)
            .filter(|e| *e <= bytes.len())
            .ok_or("chunk runs past the end of the file")?;
        if &bytes[pos..pos + 4] == id {
            return Ok(&bytes[body..end]);
        }
        pos = end + size % 2;
    }
    Err(format!("no {:?} chunk", String::from_utf8_lossy(id)))
}

fn downmix(samples: &[i16], channels: u16) -> Vec<i16> {
    let n = channels as usize;
    if n == 1 {
        return samples.to_vec();
    }
    samples
        .chunks_exact(n)
        .map(|frame| (frame.iter().map(|s| *s as i32).sum::<i32>() / n as i32) as i16)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads `bytes` as a WAV file, through a temporary file removed afterwards.
    fn load_tmp(name: &str, bytes: &[u8]) -> Result<Vec<i16>, PromptError> {
        let p = std::env::temp_dir().join(format!("concierge-wav-{}-{name}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        let loaded = load_wav(&p);
        let _ = std::fs::remove_file(&p);
        loaded
    }

    fn riff(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8], data_len: u32) -> Vec<u8> {
        let mut v = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        v.extend(16u32.to_le_bytes());
        v.extend(tag.to_le_bytes());
        v.extend(channels.to_le_bytes());
        v.extend(rate.to_le_bytes());
        v.extend((rate * channels as u32 * bits as u32 / 8).to_le_bytes());
        v.extend((channels * bits / 8).to_le_bytes());
        v.extend(bits.to_le_bytes());
        v.extend(b"data");
        v.extend(data_len.to_le_bytes());
        v.extend(data);
        v
    }

    #[test]
    fn ulaw_and_alaw_wav_decode_to_the_same_audio() {
        let pcm: Vec<i16> = (0..800)
            .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
            .collect();
        let ulaw: Vec<u8> = pcm.iter().map(|s| Law::Ulaw.encode(*s)).collect();
        let alaw: Vec<u8> = pcm.iter().map(|s| Law::Alaw.encode(*s)).collect();
        let u = load_tmp("u.wav", &riff(7, 1, 8000, 8, &ulaw, 800)).unwrap();
        let a = load_tmp("a.wav", &riff(6, 1, 8000, 8, &alaw, 800)).unwrap();
        for ((x, y), z) in pcm.iter().zip(&u).zip(&a) {
            assert!((*x as i32 - *y as i32).abs() <= 300 && (*x as i32 - *z as i32).abs() <= 300);
        }
    }

    #[test]
    fn hostile_files_are_typed_errors() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("magic", b"RIFX\0\0\0\0WAVEjunk".to_vec()),
            (
                "truncated",
                riff(1, 1, 8000, 16, &[0; 10], 10)[..30].to_vec(),
            ),
            ("overlong data", riff(7, 1, 8000, 8, &[0; 10], 1_000_000)),
            ("8-bit pcm", riff(1, 1, 8000, 8, &[0; 10], 10)),
            ("zero channels", riff(1, 0, 8000, 16, &[0; 10], 10)),
            ("no audio", riff(7, 1, 8000, 8, &[], 0)),
        ];
        for (name, bytes) in cases {
            let e = load_tmp(name, &bytes);
            assert!(e.is_err(), "{name} accepted");
        }
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let e = load_wav(Path::new("/nonexistent/welcome.wav")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/welcome.wav: cannot read"),
            "{e}"
        );
    }
}
