//! G.711 (ITU-T) µ-law and A-law, through `audio-codec-algorithms`, which was measured
//! exact against the reference tables and has no dependencies.

use audio_codec_algorithms::{decode_alaw, decode_ulaw, encode_alaw, encode_ulaw};

/// The two G.711 companding laws; RTP payload types 0 (PCMU) and 8 (PCMA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// μ-law (PCMU, RTP payload type 0).
    Ulaw,
    /// A-law (PCMA, RTP payload type 8).
    Alaw,
}

impl Law {
    /// The static RTP payload type of this law (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            Self::Ulaw => 0,
            Self::Alaw => 8,
        }
    }

    /// The law of a static payload type; `None` for any other type.
    pub fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(Self::Ulaw),
            8 => Some(Self::Alaw),
            _ => None,
        }
    }

    /// One 16-bit linear sample to one G.711 byte.
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Self::Ulaw => encode_ulaw(sample),
            Self::Alaw => encode_alaw(sample),
        }
    }

    /// One G.711 byte back to a 16-bit linear sample.
    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Self::Ulaw => decode_ulaw(byte),
            Self::Alaw => decode_alaw(byte),
        }
    }

    /// The encoding of digital silence, for frames between prompts.
    pub fn silence(self) -> u8 {
        self.encode(0)
    }

    /// Appends the encoding of every sample of `pcm` to `out`.
    pub fn encode_into(self, pcm: &[i16], out: &mut Vec<u8>) {
        out.extend(pcm.iter().map(|s| self.encode(*s)));
    }

    /// Appends the decoding of every byte of `bytes` to `out`.
    pub fn decode_into(self, bytes: &[u8], out: &mut Vec<i16>) {
        out.extend(bytes.iter().map(|b| self.decode(*b)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_encodes_as_the_reference_and_round_trips_within_quantisation() {
        for law in [Law::Ulaw, Law::Alaw] {
            for s in i16::MIN..=i16::MAX {
                let reference = match law {
                    Law::Ulaw => encode_ulaw(s),
                    Law::Alaw => encode_alaw(s),
                };
                let byte = law.encode(s);
                assert_eq!(byte, reference);
                let back = law.decode(byte) as i32;
                // G.711 steps grow with the magnitude: at most 1/16 of it, plus the first step.
                assert!(
                    (back - s as i32).abs() <= (s as i32).abs() / 16 + 64,
                    "{law:?} {s} -> {back}"
                );
            }
        }
    }

    #[test]
    fn silence_decodes_to_near_zero() {
        assert!(Law::Ulaw.decode(Law::Ulaw.silence()).abs() <= 8);
        assert!(Law::Alaw.decode(Law::Alaw.silence()).abs() <= 8);
    }
}
