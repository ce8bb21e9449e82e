//! Prompts for Concierge: loaded once at start-up, resampled to 8 kHz, encoded once to
//! G.711 µ-law and A-law, and shared by every call through `Arc`, so playing a prompt costs
//! a call nothing but copying bytes into RTP packets.
#![forbid(unsafe_code)]

mod catalogue;
mod resample;
mod wav;

pub use catalogue::{Catalogue, Law, Prompt};
pub use resample::to_8khz;
pub use wav::{decode_wav, load_wav, PromptError};
