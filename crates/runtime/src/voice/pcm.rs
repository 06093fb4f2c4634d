//! Mono PCM audio as `f32` samples in −1.0..=1.0: reading and writing WAV files, levels,
//! volume and sample-rate conversion.
//!
//! The WAV reader is our own small RIFF parser (16-bit integer and 32-bit float PCM only)
//! because prompt files and captured fixtures come from outside the program and must never
//! make it panic or allocate without bound.

use std::path::Path;

use super::VoiceError;

/// The longest audio file we accept, in seconds: prompts are a few seconds long.
pub const MAX_WAV_SECONDS: u32 = 120;

/// A piece of mono audio at a known sample rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    /// Samples per second.
    pub rate: u32,
    /// Samples in −1.0..=1.0.
    pub samples: Vec<f32>,
}

impl Clip {
    /// A clip of `samples` at `rate`.
    pub fn new(rate: u32, samples: Vec<f32>) -> Clip {
        Clip { rate, samples }
    }

    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        if self.rate == 0 {
            return 0.0;
        }
        self.samples.len() as f64 / f64::from(self.rate)
    }

    /// The same audio at another sample rate.
    pub fn resampled(&self, rate: u32) -> Clip {
        Clip::new(rate, resample(&self.samples, self.rate, rate))
    }
}

/// Parses a WAV file held in memory: 16-bit integer or 32-bit float PCM, any channel count
/// (channels are averaged to mono), at most [`MAX_WAV_SECONDS`] long.
pub fn parse_wav(bytes: &[u8]) -> Result<Clip, VoiceError> {
    parse_wav_with_format(bytes).map(|(_, clip)| clip)
}

/// Like [`parse_wav`], also returning the file's own format.
pub fn parse_wav_with_format(bytes: &[u8]) -> Result<(WavFormat, Clip), VoiceError> {
    let bad = |why: &str| VoiceError::Wav(why.to_string());
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("no RIFF/WAVE header"));
    }
    let mut fmt: Option<WavFormat> = None;
    let mut at = 12usize;
    while let Some(header) = bytes.get(at..at + 8) {
        let id = &header[0..4];
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let body_start = at + 8;
        let body_end = body_start.saturating_add(len);
        if id == b"fmt " {
            let body = bytes
                .get(body_start..body_end)
                .ok_or_else(|| bad("fmt chunk runs past the end of the file"))?;
            fmt = Some(WavFormat::parse(body)?);
        } else if id == b"data" {
            let fmt = fmt.ok_or_else(|| bad("data chunk before fmt chunk"))?;
            // Writers that stream sometimes leave the length unset: take what is there.
            let body = bytes
                .get(body_start..body_end.min(bytes.len()))
                .unwrap_or(&[]);
            return fmt.decode(body).map(|clip| (fmt, clip));
        }
        // Chunks are padded to an even length.
        at = body_end.saturating_add(len & 1);
    }
    Err(bad("no data chunk"))
}

/// Reads a WAV file from disk; see [`parse_wav`].
pub fn read_wav(path: &Path) -> Result<Clip, VoiceError> {
    let bytes = std::fs::read(path).map_err(|source| VoiceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_wav(&bytes).map_err(|e| VoiceError::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes `clip` as 16-bit mono PCM, clipping samples outside −1.0..=1.0.
pub fn write_wav(path: &Path, clip: &Clip) -> Result<(), VoiceError> {
    let io = |e: hound::Error| VoiceError::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: clip.rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(io)?;
    for &s in &clip.samples {
        writer.write_sample(to_i16(s)).map_err(io)?;
    }
    writer.finalize().map_err(io)
}

/// A sample as 16-bit PCM, clipped.
pub fn to_i16(sample: f32) -> i16 {
    (sample.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

/// The sample format of a WAV file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WavFormat {
    /// Channels per frame.
    pub channels: u16,
    /// Frames per second.
    pub rate: u32,
    /// 32-bit float samples (otherwise 16-bit integer).
    pub float: bool,
}

impl WavFormat {
    fn parse(body: &[u8]) -> Result<WavFormat, VoiceError> {
        let bad = |why: String| VoiceError::Wav(why);
        let field = |at: usize| -> Result<u16, VoiceError> {
            body.get(at..at + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .ok_or_else(|| bad("fmt chunk too short".into()))
        };
        let mut tag = field(0)?;
        let channels = field(2)?;
        let rate = u32::from(field(4)?) | (u32::from(field(6)?) << 16);
        let bits = field(14)?;
        if tag == 0xFFFE {
            // WAVE_FORMAT_EXTENSIBLE: the real format tag opens the sub-format GUID.
            tag = field(24)?;
        }
        if channels == 0 || channels > 8 {
            return Err(bad(format!("{channels} channels")));
        }
        if !(4000..=192_000).contains(&rate) {
            return Err(bad(format!("sample rate {rate} Hz")));
        }
        match (tag, bits) {
            (1, 16) => Ok(WavFormat {
                channels,
                rate,
                float: false,
            }),
            (3, 32) => Ok(WavFormat {
                channels,
                rate,
                float: true,
            }),
            _ => Err(bad(format!(
                "format {tag} with {bits}-bit samples (16-bit integer or 32-bit float PCM only)"
            ))),
        }
    }

    fn decode(self, data: &[u8]) -> Result<Clip, VoiceError> {
        let width = if self.float { 4 } else { 2 };
        let frame = width * usize::from(self.channels);
        let frames = data.len() / frame;
        if frames as u64 > u64::from(MAX_WAV_SECONDS) * u64::from(self.rate) {
            return Err(VoiceError::Wav(format!("longer than {MAX_WAV_SECONDS} s")));
        }
        let mut samples = Vec::with_capacity(frames);
        for chunk in data.chunks_exact(frame) {
            let mut sum = 0.0f32;
            for s in chunk.chunks_exact(width) {
                sum += match *s {
                    [a, b] => f32::from(i16::from_le_bytes([a, b])) / 32768.0,
                    [a, b, c, d] => {
                        let v = f32::from_le_bytes([a, b, c, d]);
                        if v.is_finite() {
                            v.clamp(-1.0, 1.0)
                        } else {
                            0.0
                        }
                    }
                    _ => 0.0,
                };
            }
            samples.push(sum / f32::from(self.channels));
        }
        Ok(Clip::new(self.rate, samples))
    }
}

/// Root-mean-square level in dB relative to full scale (a full-scale sine is −3 dBFS);
/// −120 for silence or no samples.
pub fn rms_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return -120.0;
    }
    let energy: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    power_db(energy / samples.len() as f64)
}

/// Peak level in dBFS; −120 for silence.
pub fn peak_dbfs(samples: &[f32]) -> f32 {
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    power_db(f64::from(peak) * f64::from(peak))
}

/// A mean power as dB, floored at −120.
pub fn power_db(power: f64) -> f32 {
    if power <= 1e-12 {
        -120.0
    } else {
        (10.0 * power.log10()) as f32
    }
}

/// The linear gain for a volume setting of 0–100 %: 100 % is unity, each 10 % below is 4 dB
/// quieter (a step a listener hears as about the same everywhere), 0 % is silent.
pub fn volume_gain(percent: u8) -> f32 {
    if percent == 0 {
        return 0.0;
    }
    let db = (f32::from(percent.min(100)) - 100.0) * 0.4;
    10f32.powf(db / 20.0)
}

/// Number of input samples on either side of an output sample the filter reaches, at unity
/// ratio; wider when downsampling so the cut-off falls below the new Nyquist frequency.
const SINC_HALF_WIDTH: f64 = 16.0;

/// Where `recorded` best matches `reference`: the lag in samples (0 to `max_lag`) at which
/// `reference` appears in `recorded`, and the normalised correlation there (1.0: the same
/// waveform, at any level). Used to measure a call's round trip and to compare what one end
/// sent with what the other heard.
pub fn align(reference: &[i16], recorded: &[i16], max_lag: usize) -> (usize, f32) {
    let square = |v: i16| f64::from(v) * f64::from(v);
    let ref_energy: f64 = reference.iter().map(|&v| square(v)).sum();
    let mut best = (0, 0.0f32);
    if ref_energy == 0.0 {
        return best;
    }
    // The energy of each window of `recorded`, from running sums.
    let mut sums = Vec::with_capacity(recorded.len() + 1);
    sums.push(0.0f64);
    for &v in recorded {
        sums.push(sums.last().copied().unwrap_or(0.0) + square(v));
    }
    for lag in 0..=max_lag.min(recorded.len()) {
        let Some(window) = recorded.get(lag..lag + reference.len()) else {
            break;
        };
        let dot: f64 = reference
            .iter()
            .zip(window)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        let e = sums[lag + reference.len()] - sums[lag];
        if e <= 0.0 {
            continue;
        }
        let c = (dot / (ref_energy * e).sqrt()) as f32;
        if c > best.1 {
            best = (lag, c);
        }
    }
    best
}

/// Converts `input` from `from` Hz to `to` Hz with a Blackman-windowed sinc filter: band-limited
/// to 95 % of the lower Nyquist frequency, so downsampling does not alias and upsampling does
/// not image. Unity gain at DC. Meant for whole clips (prompts are converted once, on load).
///
/// For rates with a small common ratio (16 → 48 kHz is 3/1, 16 → 44.1 kHz is 441/160) the
/// filter is tabulated per output phase, so the work is one dot product per output sample.
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || from == 0 || to == 0 || input.is_empty() {
        return input.to_vec();
    }
    let ratio = f64::from(to) / f64::from(from);
    let scale = ratio.min(1.0);
    let cutoff = 0.5 * scale * 0.95; // cycles per input sample
    let half = (SINC_HALF_WIDTH / scale).ceil();
    let taps = 2 * half as usize;
    let out_len = (input.len() as f64 * ratio).round() as usize;
    let divisor = gcd(from, to);
    let (up, down) = (u64::from(to / divisor), u64::from(from / divisor));
    let weight = |x: f64| sinc(2.0 * cutoff * x) * blackman(x / half);
    if up > 4096 {
        return resample_direct(input, ratio, half, &weight, out_len);
    }
    // table[p][j]: weight of input sample (i0 - half + 1 + j) for output phase p/up.
    let table: Vec<Vec<f32>> = (0..up)
        .map(|p| {
            let frac = p as f64 / up as f64;
            let row: Vec<f64> = (0..taps)
                .map(|j| weight(half - 1.0 - j as f64 + frac))
                .collect();
            let sum: f64 = row.iter().sum();
            row.into_iter().map(|w| (w / sum) as f32).collect()
        })
        .collect();
    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len as u64 {
        let pos = n * down;
        let i0 = (pos / up) as i64;
        let Some(row) = table.get((pos % up) as usize) else {
            break;
        };
        let first = i0 - half as i64 + 1;
        let acc: f32 = if first >= 0 && (first as usize + taps) <= input.len() {
            let window = &input[first as usize..first as usize + taps];
            window.iter().zip(row).map(|(x, w)| x * w).sum()
        } else {
            // At the edges, samples outside the clip count as silence.
            row.iter()
                .enumerate()
                .filter_map(|(j, w)| {
                    let k = first + j as i64;
                    (k >= 0)
                        .then(|| input.get(k as usize).map(|x| x * w))
                        .flatten()
                })
                .sum()
        };
        out.push(acc);
    }
    out
}

fn resample_direct(
    input: &[f32],
    ratio: f64,
    half: f64,
    weight: &dyn Fn(f64) -> f64,
    out_len: usize,
) -> Vec<f32> {
    let last = input.len() as i64 - 1;
    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len {
        let t = n as f64 / ratio;
        let first = (t - half).ceil() as i64;
        let end = (t + half).floor() as i64;
        let (mut acc, mut weights) = (0.0f64, 0.0f64);
        for k in first.max(0)..=end.min(last) {
            let w = weight(t - k as f64);
            acc += f64::from(input.get(k as usize).copied().unwrap_or(0.0)) * w;
            weights += w;
        }
        out.push(if weights.abs() > 1e-9 {
            (acc / weights) as f32
        } else {
            0.0
        });
    }
    out
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// Blackman window over −1..=1.
fn blackman(x: f64) -> f64 {
    if x.abs() >= 1.0 {
        return 0.0;
    }
    let a = std::f64::consts::PI * (x + 1.0);
    0.42 - 0.5 * a.cos() + 0.08 * (2.0 * a).cos()
}

/// Adds `samples` to a queue between two streams and drops the oldest beyond `max`, so a
/// device whose clock runs a little fast or slow drops a few samples instead of building up
/// delay.
pub fn push_bounded<T>(
    queue: &mut std::collections::VecDeque<T>,
    samples: impl IntoIterator<Item = T>,
    max: usize,
) {
    queue.extend(samples);
    let excess = queue.len().saturating_sub(max);
    queue.drain(..excess);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: u32, seconds: f32, amp: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .map(|i| amp * (std::f32::consts::TAU * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    fn wav_bytes(clip: &Clip) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wav");
        write_wav(&path, clip).unwrap();
        std::fs::read(path).unwrap()
    }

    #[test]
    fn wav_round_trip_keeps_rate_and_samples() {
        let clip = Clip::new(16_000, sine(440.0, 16_000, 0.5, 0.5));
        let back = parse_wav(&wav_bytes(&clip)).unwrap();
        assert_eq!(back.rate, 16_000);
        assert_eq!(back.samples.len(), clip.samples.len());
        let worst = clip
            .samples
            .iter()
            .zip(&back.samples)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1.0 / 16_000.0, "worst error {worst}");
    }

    #[test]
    fn truncated_and_foreign_files_are_errors_not_panics() {
        let bytes = wav_bytes(&Clip::new(8000, sine(1000.0, 8000, 0.1, 0.5)));
        for cut in [0, 4, 11, 12, 20, 30, 43] {
            assert!(parse_wav(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // A cut inside the data keeps what is there.
        let partial = parse_wav(&bytes[..100]).unwrap();
        assert_eq!(partial.samples.len(), (100 - 44) / 2);
        let mut eight_bit = bytes.clone();
        eight_bit[34] = 8; // bits per sample
        assert!(matches!(parse_wav(&eight_bit), Err(VoiceError::Wav(m)) if m.contains("8-bit")));
        assert!(parse_wav(b"RIFF\0\0\0\0WAVEdata\xff\xff\xff\xff").is_err());
    }

    #[test]
    fn stereo_is_mixed_to_mono() {
        // Header for 2 channels, 8 kHz, 16-bit, with two frames: (1000, 3000), (-2000, 0).
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&44u32.to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        for v in [1u16, 2] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&8000u32.to_le_bytes());
        b.extend_from_slice(&32000u32.to_le_bytes());
        for v in [4u16, 16] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(b"data");
        b.extend_from_slice(&8u32.to_le_bytes());
        for v in [1000i16, 3000, -2000, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let clip = parse_wav(&b).unwrap();
        assert_eq!(clip.samples, vec![2000.0 / 32768.0, -1000.0 / 32768.0]);
    }

    #[test]
    fn levels_of_a_full_scale_sine() {
        let s = sine(1000.0, 16_000, 1.0, 1.0);
        assert!((rms_dbfs(&s) + 3.01).abs() < 0.05);
        assert!(peak_dbfs(&s).abs() < 0.05);
        assert_eq!(rms_dbfs(&[]), -120.0);
        assert_eq!(rms_dbfs(&[0.0; 100]), -120.0);
    }

    #[test]
    fn volume_is_monotonic_with_unity_at_full_and_silence_at_zero() {
        assert_eq!(volume_gain(0), 0.0);
        assert!((volume_gain(100) - 1.0).abs() < 1e-6);
        assert!((20.0 * volume_gain(50).log10() + 20.0).abs() < 0.01);
        for v in 1..100u8 {
            assert!(volume_gain(v) < volume_gain(v + 1));
        }
        assert_eq!(volume_gain(250), 1.0);
    }

    #[test]
    fn upsampling_keeps_frequency_and_level() {
        let input = sine(1000.0, 16_000, 0.5, 0.5);
        let out = resample(&input, 16_000, 48_000);
        assert_eq!(out.len(), input.len() * 3);
        // Compare with the ideal 48 kHz sine away from the edges.
        let ideal = sine(1000.0, 48_000, 0.5, 0.5);
        let worst = out[2000..22000]
            .iter()
            .zip(&ideal[2000..22000])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 0.01, "worst error {worst}");
    }

    #[test]
    fn downsampling_removes_what_the_new_rate_cannot_carry() {
        // 3 kHz fits under 8 kHz's Nyquist frequency; 6 kHz does not and must not alias to 2 kHz.
        let kept = resample(&sine(3000.0, 48_000, 0.5, 0.5), 48_000, 8000);
        let removed = resample(&sine(6000.0, 48_000, 0.5, 0.5), 48_000, 8000);
        assert_eq!(kept.len(), 4000);
        assert!(
            (rms_dbfs(&kept[200..3800]) - rms_dbfs(&sine(3000.0, 8000, 0.45, 0.5))).abs() < 0.5
        );
        assert!(
            rms_dbfs(&removed[200..3800]) < -50.0,
            "{}",
            rms_dbfs(&removed[200..3800])
        );
    }

    #[test]
    fn odd_rates_resample_to_the_expected_length() {
        let out = resample(&vec![0.25; 22_050], 22_050, 16_000);
        assert_eq!(out.len(), 16_000);
        assert!(out[100..15_900].iter().all(|s| (s - 0.25).abs() < 1e-3));
        // A ratio too awkward to tabulate takes the direct path.
        let odd = resample(&vec![0.25; 10_007], 10_007, 16_001);
        assert_eq!(odd.len(), 16_001);
        assert!(odd.iter().all(|s| (s - 0.25).abs() < 1e-3));
        assert_eq!(resample(&[0.5, 0.25], 16_000, 16_000), vec![0.5, 0.25]);
    }
}
