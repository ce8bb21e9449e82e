//! Any sample rate to 8 kHz with `rubato`'s FFT resampler: a band-limited conversion, so
//! content above 4 kHz is removed rather than folded back into the telephone band.

use rubato::{FftFixedIn, Resampler};

const CHUNK: usize = 1024;

/// Resamples mono 16-bit audio at `rate` to 8 kHz and returns the new samples. Called by
/// [`decode_wav`](crate::decode_wav) for every prompt file that is not 8 kHz already; 8 kHz
/// input passes through untouched, and so does audio at a rate the resampler refuses.
pub fn to_8khz(samples: &[i16], rate: u32) -> Vec<i16> {
    if rate == 8000 || samples.is_empty() {
        return samples.to_vec();
    }
    let Ok(mut r) = FftFixedIn::<f32>::new(rate as usize, 8000, CHUNK, 2, 1) else {
        return samples.to_vec();
    };
    let input: Vec<f32> = samples.iter().map(|s| *s as f32 / 32768.0).collect();
    let mut out: Vec<f32> = Vec::with_capacity(samples.len() * 8000 / rate as usize + CHUNK);
    let mut pos = 0;
    while input.len() - pos >= r.input_frames_next() {
        let n = r.input_frames_next();
        match r.process(&[&input[pos..pos + n]], None) {
            Ok(chunk) => out.extend_from_slice(&chunk[0]),
            Err(_) => break,
        }
        pos += n;
    }
    // The tail, then enough silence to push the filter's delay out.
    if let Ok(chunk) = r.process_partial(Some(&[&input[pos..]]), None) {
        out.extend_from_slice(&chunk[0]);
    }
    if let Ok(chunk) = r.process_partial::<&[f32]>(None, None) {
        out.extend_from_slice(&chunk[0]);
    }
    let delay = r.output_delay();
    let wanted = (samples.len() as u64 * 8000 / rate as u64) as usize;
    out.into_iter()
        .skip(delay)
        .take(wanted)
        .map(|x| (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, rate: u32, secs: f32, amp: f32) -> Vec<i16> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| {
                (amp * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin()) as i16
            })
            .collect()
    }

    /// Power at `freq` in 8 kHz audio (Goertzel over the middle second).
    fn power_at(x: &[i16], freq: f32) -> f32 {
        let c = 2.0 * (2.0 * std::f32::consts::PI * freq / 8000.0).cos();
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for v in &x[2000..10_000] {
            let s0 = *v as f32 + c * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - c * s1 * s2
    }

    #[test]
    fn a_1khz_tone_at_48khz_stays_at_1khz() {
        let out = to_8khz(&tone(1000.0, 48_000, 2.0, 10_000.0), 48_000);
        assert_eq!(out.len(), 16_000);
        let at = power_at(&out, 1000.0);
        for other in [500.0, 1500.0, 2000.0, 3000.0] {
            assert!(
                at > 1000.0 * power_at(&out, other),
                "1 kHz not dominant over {other} Hz"
            );
        }
    }

    #[test]
    fn energy_above_4khz_is_removed_not_aliased() {
        // Without a low-pass, 6 kHz at 48 kHz decimated to 8 kHz would fold to 2 kHz.
        let input = tone(6000.0, 48_000, 2.0, 10_000.0);
        let out = to_8khz(&input, 48_000);
        let reference = to_8khz(&tone(1000.0, 48_000, 2.0, 10_000.0), 48_000);
        let ratio = power_at(&out, 2000.0) / power_at(&reference, 1000.0);
        assert!(
            ratio < 1e-4,
            "alias at 2 kHz only {:.1} dB down",
            10.0 * ratio.log10()
        );
    }

    #[test]
    fn common_rates_give_the_right_length() {
        for rate in [16_000, 44_100, 48_000] {
            assert_eq!(
                to_8khz(&tone(440.0, rate, 1.0, 5000.0), rate).len(),
                8000,
                "{rate}"
            );
        }
    }
}
