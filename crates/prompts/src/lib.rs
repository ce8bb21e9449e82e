//! Prompts for Concierge: loaded once at start-up, resampled to 8 kHz, encoded once to
//! G.711 µ-law and A-law, and shared by every call through `Arc`, so playing a prompt costs
//! a call nothing but copying bytes into RTP packets.
//!
//! The G.711 law is the media crate's [`concierge_media::Law`]: the frames made here are
//! sent by media's RTP sender, so both speak of one law (the media crate knows nothing of
//! prompts). No IO but reading the WAV files handed to [`Catalogue::load_dir`] and
//! [`load_wav`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod catalogue;
mod resample;
mod wav;

pub use catalogue::{Catalogue, Prompt};
pub use resample::to_8khz;
pub use wav::{decode_wav, load_wav, PromptError};
