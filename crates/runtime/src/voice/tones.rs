//! Tone detection with Goertzel filters: DTMF digits (ITU-T Q.23/Q.24) and the Contact ID
//! (SIA DC-05) receiver tones in call audio, for modems that cannot report them.
//!
//! Contact ID, DC-05 §3: the receiver's handshake is 1400 Hz for 100 ms, 100 ms of silence,
//! 2300 Hz for 100 ms; after a message it sends the kissoff, 1400 Hz for 750–1000 ms,
//! timed: a shorter or longer 1400 Hz tone is none. Senders keep tones within ±1 %; we accept ±1.5 %.
//!
//! Both detectors are streaming and allocation-free after construction: feed them whatever
//! block sizes the audio path delivers.

/// One Goertzel filter: the power of one frequency over a block of samples.
#[derive(Clone, Copy, Debug)]
pub struct Goertzel {
    coeff: f32,
}

impl Goertzel {
    /// A filter for `freq` Hz at `rate` Hz.
    pub fn new(freq: f32, rate: u32) -> Goertzel {
        let w = std::f32::consts::TAU * freq / rate.max(1) as f32;
        Goertzel {
            coeff: 2.0 * w.cos(),
        }
    }

    /// The share of `block`'s energy at this frequency, 0..≈1: a pure tone at the frequency
    /// gives 1, white noise about 2/len. `energy` is the block's sum of squares.
    pub fn share(&self, block: &[f32], energy: f32) -> f32 {
        if energy <= f32::EPSILON || block.is_empty() {
            return 0.0;
        }
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &x in block {
            let s0 = x + self.coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - self.coeff * s1 * s2;
        (2.0 * power / (block.len() as f32 * energy)).clamp(0.0, 4.0)
    }
}

fn energy(block: &[f32]) -> f32 {
    block.iter().map(|x| x * x).sum()
}

/// DTMF row (low group) frequencies, Hz.
pub const DTMF_ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// DTMF column (high group) frequencies, Hz.
pub const DTMF_COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// Keys by row and column.
pub const DTMF_KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// `hz` for `ms` at `rate`, at `amplitude` (peak, full scale 1.0).
pub fn sine(hz: f32, rate: u32, ms: u32, amplitude: f32) -> Vec<f32> {
    let n = (rate as usize) * (ms as usize) / 1000;
    let w = 2.0 * std::f32::consts::PI * hz / rate as f32;
    (0..n).map(|i| amplitude * (w * i as f32).sin()).collect()
}

/// `keys` as DTMF at `rate`: each key's two tones for `on_ms`, then `off_ms` of silence
/// (Contact ID, DC-05: 50–60 ms each). Each tone at −9 dBFS peak, the column's level equal to
/// the row's (Q.23). None if a key is not a DTMF key.
pub fn dtmf_samples(keys: &str, rate: u32, on_ms: u32, off_ms: u32) -> Option<Vec<f32>> {
    const LEVEL: f32 = 0.35;
    let gap = (rate as usize) * (off_ms as usize) / 1000;
    let mut out = Vec::new();
    for key in keys.chars() {
        let (r, c) = DTMF_KEYS
            .iter()
            .enumerate()
            .find_map(|(r, row)| row.iter().position(|&k| k == key).map(|c| (r, c)))?;
        let low = sine(DTMF_ROWS[r], rate, on_ms, LEVEL);
        let high = sine(DTMF_COLS[c], rate, on_ms, LEVEL);
        out.extend(low.iter().zip(&high).map(|(a, b)| a + b));
        out.extend(std::iter::repeat_n(0.0, gap));
    }
    Some(out)
}

/// A digit detected in a stream, with the sample index (since the detector started) at which
/// it was confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digit {
    /// `0`–`9`, `*`, `#`, `A`–`D`.
    pub key: char,
    /// Sample index of detection.
    pub at: u64,
}

/// A streaming DTMF decoder. Blocks of 20 ms (160 samples at 8 kHz, 50 Hz wide filters: wide
/// enough for the ±1.5 % frequency error Q.24 asks receivers to accept, narrow enough to keep
/// neighbouring rows apart) hop every 8 ms, so a 40 ms digit (the shortest Q.24 asks receivers
/// to take) fills at least two of them; a key is reported when two blocks in a row agree, and
/// again only after a pause.
#[derive(Clone, Debug)]
pub struct DtmfDetector {
    rows: [Goertzel; 4],
    cols: [Goertzel; 4],
    block: Vec<f32>,
    block_len: usize,
    hop: usize,
    filled: usize,
    samples_seen: u64,
    candidate: Option<char>,
    candidate_count: u32,
    reported: Option<char>,
    min_level: f32,
}

impl DtmfDetector {
    /// A decoder for audio at `rate` Hz.
    pub fn new(rate: u32) -> DtmfDetector {
        let block_len = ((rate as usize) / 50).max(32);
        let hop = ((rate as usize) * 8 / 1000).max(8);
        DtmfDetector {
            rows: DTMF_ROWS.map(|f| Goertzel::new(f, rate)),
            cols: DTMF_COLS.map(|f| Goertzel::new(f, rate)),
            block: vec![0.0; block_len],
            block_len,
            hop,
            filled: 0,
            samples_seen: 0,
            candidate: None,
            candidate_count: 0,
            reported: None,
            // −40 dBFS mean power per sample.
            min_level: 1e-4,
        }
    }

    /// Feeds samples; calls `on_digit` for each key confirmed.
    pub fn push(&mut self, samples: &[f32], mut on_digit: impl FnMut(Digit)) {
        for &s in samples {
            self.samples_seen += 1;
            if let Some(slot) = self.block.get_mut(self.filled) {
                *slot = if s.is_finite() { s } else { 0.0 };
            }
            self.filled += 1;
            if self.filled == self.block_len {
                let key = self.classify();
                self.update(key, &mut on_digit);
                // Keep the overlap for the next block.
                self.block.copy_within(self.hop.., 0);
                self.filled = self.block_len - self.hop;
            }
        }
    }

    /// Decodes a whole clip into its keys.
    pub fn decode(rate: u32, samples: &[f32]) -> String {
        let mut d = DtmfDetector::new(rate);
        let mut keys = String::new();
        d.push(samples, |digit| keys.push(digit.key));
        keys
    }

    fn classify(&self) -> Option<char> {
        let block = &self.block[..self.block_len];
        let e = energy(block);
        if e / (self.block_len as f32) < self.min_level {
            return None;
        }
        let best = |filters: &[Goertzel; 4]| {
            let shares = filters.map(|g| g.share(block, e));
            let (i, &max) = shares
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))?;
            // The strongest tone of a group must stand well clear of the others in it.
            let second = shares
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, &v)| v)
                .fold(0.0f32, f32::max);
            (max > 4.0 * second).then_some((i, max))
        };
        let (r, row) = best(&self.rows)?;
        let (c, col) = best(&self.cols)?;
        // Both tones together carry a large part of the energy (not speech or music; a tone
        // 1.5 % off loses part of its share to the filter's slope), and the twist (column
        // level over row level) stays within −8..+4 dB (Q.24 allows about this).
        let twist_db = 10.0 * (col / row.max(1e-9)).log10();
        if row + col < 0.4 || !(-8.0..=4.0).contains(&twist_db) {
            return None;
        }
        DTMF_KEYS.get(r).and_then(|keys| keys.get(c)).copied()
    }

    fn update(&mut self, key: Option<char>, on_digit: &mut impl FnMut(Digit)) {
        if key == self.candidate {
            self.candidate_count = self.candidate_count.saturating_add(1);
        } else {
            self.candidate = key;
            self.candidate_count = 1;
        }
        match self.candidate {
            None if self.candidate_count >= 2 => self.reported = None,
            Some(k) if self.candidate_count >= 2 && self.reported != Some(k) => {
                self.reported = Some(k);
                on_digit(Digit {
                    key: k,
                    at: self.samples_seen,
                });
            }
            _ => {}
        }
    }
}

/// The tones a Contact ID receiver sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactIdTone {
    /// 1400 Hz then 2300 Hz: the receiver is ready for a message.
    Handshake,
    /// 1400 Hz for 750–1000 ms: the message was received. Reported when the tone ends.
    Kissoff,
}

/// A Contact ID tone event at a sample index (since the detector started).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToneEvent {
    /// Which tone.
    pub tone: ContactIdTone,
    /// Sample index at which it was recognised.
    pub at: u64,
}

/// Which of the two frequencies a 10 ms frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Band {
    Low,
    High,
    Neither,
}

/// A streaming detector of the Contact ID handshake and kissoff. Frames of 20 ms hop every
/// 10 ms; a tone counts when its filter holds most of the frame's energy.
#[derive(Clone, Debug)]
pub struct ContactIdDetector {
    low: Goertzel,
    high: Goertzel,
    frame: Vec<f32>,
    frame_len: usize,
    hop: usize,
    filled: usize,
    samples_seen: u64,
    hop_ms: u32,
    run: Band,
    run_ms: u32,
    last_low_ms: Option<u32>,
    since_low_ms: u32,
}

impl ContactIdDetector {
    /// The handshake's first tone and the kissoff, Hz.
    pub const LOW_HZ: f32 = 1400.0;
    /// The handshake's second tone, Hz.
    pub const HIGH_HZ: f32 = 2300.0;

    /// A detector for audio at `rate` Hz.
    pub fn new(rate: u32) -> ContactIdDetector {
        let frame_len = ((rate as usize) / 50).max(16);
        let hop = frame_len / 2;
        ContactIdDetector {
            low: Goertzel::new(Self::LOW_HZ, rate),
            high: Goertzel::new(Self::HIGH_HZ, rate),
            frame: vec![0.0; frame_len],
            frame_len,
            hop,
            filled: 0,
            samples_seen: 0,
            hop_ms: 10,
            run: Band::Neither,
            run_ms: 0,
            last_low_ms: None,
            since_low_ms: u32::MAX / 2,
        }
    }

    /// Feeds samples; calls `on_tone` for each handshake or kissoff recognised.
    pub fn push(&mut self, samples: &[f32], mut on_tone: impl FnMut(ToneEvent)) {
        for &s in samples {
            self.samples_seen += 1;
            if let Some(slot) = self.frame.get_mut(self.filled) {
                *slot = if s.is_finite() { s } else { 0.0 };
            }
            self.filled += 1;
            if self.filled == self.frame_len {
                let band = self.classify();
                self.update(band, &mut on_tone);
                self.frame.copy_within(self.hop.., 0);
                self.filled = self.frame_len - self.hop;
            }
        }
    }

    /// Ends the tone being heard (the call ended): a kissoff still sounding is reported.
    pub fn finish(&mut self, mut on_tone: impl FnMut(ToneEvent)) {
        self.update(Band::Neither, &mut on_tone);
    }

    /// Every tone event in a whole clip.
    pub fn detect(rate: u32, samples: &[f32]) -> Vec<ContactIdTone> {
        let mut d = ContactIdDetector::new(rate);
        let mut tones = Vec::new();
        d.push(samples, |e| tones.push(e.tone));
        d.finish(|e| tones.push(e.tone));
        tones
    }

    fn classify(&self) -> Band {
        let e = energy(&self.frame);
        // −45 dBFS mean power.
        if e / (self.frame_len as f32) < 3e-5 {
            return Band::Neither;
        }
        if self.low.share(&self.frame, e) > 0.5 {
            Band::Low
        } else if self.high.share(&self.frame, e) > 0.5 {
            Band::High
        } else {
            Band::Neither
        }
    }

    fn update(&mut self, band: Band, on_tone: &mut impl FnMut(ToneEvent)) {
        if band == self.run {
            self.run_ms = self.run_ms.saturating_add(self.hop_ms);
        } else {
            // A run just ended.
            if self.run == Band::Low {
                self.last_low_ms = Some(self.run_ms);
                self.since_low_ms = 0;
                // A kissoff is timed: known only once the tone ends.
                if vigil_wire::contact_id::is_kissoff(1400, Some(self.run_ms)) {
                    on_tone(ToneEvent {
                        tone: ContactIdTone::Kissoff,
                        at: self.samples_seen,
                    });
                }
            }
            self.run = band;
            self.run_ms = self.hop_ms;
        }
        if self.run != Band::Low {
            self.since_low_ms = self.since_low_ms.saturating_add(self.hop_ms);
        }
        let at = self.samples_seen;
        match self.run {
            // The 2300 Hz half of the handshake: 60 ms of it, after a short 1400 Hz burst
            // that ended at most 250 ms before it started.
            Band::High if self.run_ms == 60 => {
                let burst = self.last_low_ms.is_some_and(|ms| (50..=250).contains(&ms));
                if burst && self.since_low_ms <= 250 + self.run_ms {
                    self.last_low_ms = None;
                    on_tone(ToneEvent {
                        tone: ContactIdTone::Handshake,
                        at,
                    });
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_contact_id_digits_decode_back_at_dc05_timing() {
        let keys = "1234181131010158*#ABCD";
        let audio = dtmf_samples(keys, 8000, 55, 55).unwrap();
        assert_eq!(audio.len(), keys.len() * 880);
        assert_eq!(DtmfDetector::decode(8000, &audio), keys);
        assert!(dtmf_samples("12X", 8000, 55, 55).is_none());
    }

    const RATE: u32 = 8000;

    fn tone(freqs: &[(f32, f32)], ms: u32) -> Vec<f32> {
        let n = (RATE * ms / 1000) as usize;
        (0..n)
            .map(|i| {
                freqs
                    .iter()
                    .map(|&(f, a)| a * (std::f32::consts::TAU * f * i as f32 / RATE as f32).sin())
                    .sum()
            })
            .collect()
    }

    fn silence(ms: u32) -> Vec<f32> {
        vec![0.0; (RATE * ms / 1000) as usize]
    }

    fn dtmf(keys: &str, on_ms: u32, off_ms: u32) -> Vec<f32> {
        let mut out = silence(100);
        for k in keys.chars() {
            let (r, c) = DTMF_KEYS
                .iter()
                .enumerate()
                .find_map(|(r, row)| row.iter().position(|&x| x == k).map(|c| (r, c)))
                .unwrap();
            out.extend(tone(&[(DTMF_ROWS[r], 0.2), (DTMF_COLS[c], 0.25)], on_ms));
            out.extend(silence(off_ms));
        }
        out
    }

    #[test]
    fn goertzel_share_of_a_pure_tone_is_one_and_of_another_small() {
        let block = tone(&[(1000.0, 0.5)], 25);
        let e = energy(&block);
        assert!((Goertzel::new(1000.0, RATE).share(&block, e) - 1.0).abs() < 0.05);
        assert!(Goertzel::new(1400.0, RATE).share(&block, e) < 0.05);
        assert_eq!(Goertzel::new(1000.0, RATE).share(&[], 0.0), 0.0);
    }

    #[test]
    fn every_key_decodes_at_contact_id_speed() {
        let keys = "123A456B789C*0#D";
        assert_eq!(DtmfDetector::decode(RATE, &dtmf(keys, 50, 50)), keys);
    }

    #[test]
    fn repeated_keys_need_a_pause_between_them() {
        assert_eq!(DtmfDetector::decode(RATE, &dtmf("1111", 60, 60)), "1111");
        // One long press is one key.
        assert_eq!(DtmfDetector::decode(RATE, &dtmf("5", 600, 50)), "5");
    }

    #[test]
    fn single_tones_and_silence_are_not_keys() {
        let mut audio = tone(&[(697.0, 0.3)], 300);
        audio.extend(tone(&[(1400.0, 0.3)], 300));
        audio.extend(silence(300));
        assert_eq!(DtmfDetector::decode(RATE, &audio), "");
    }

    #[test]
    fn handshake_then_kissoff() {
        let mut audio = silence(200);
        audio.extend(tone(&[(1400.0, 0.3)], 100));
        audio.extend(silence(100));
        audio.extend(tone(&[(2300.0, 0.3)], 100));
        audio.extend(silence(2000));
        audio.extend(tone(&[(1400.0, 0.3)], 800));
        audio.extend(silence(200));
        assert_eq!(
            ContactIdDetector::detect(RATE, &audio),
            [ContactIdTone::Handshake, ContactIdTone::Kissoff]
        );
    }

    #[test]
    fn a_short_1400_hz_burst_is_no_kissoff() {
        let mut audio = tone(&[(1400.0, 0.3)], 250);
        audio.extend(silence(500));
        assert_eq!(ContactIdDetector::detect(RATE, &audio), []);
    }

    #[test]
    fn a_kissoff_is_timed_from_750_to_1000_ms() {
        for (ms, kissoff) in [(600, false), (750, true), (1000, true), (1300, false)] {
            let mut audio = tone(&[(1400.0, 0.3)], ms);
            audio.extend(silence(200));
            let heard = ContactIdDetector::detect(RATE, &audio);
            assert_eq!(
                heard == [ContactIdTone::Kissoff],
                kissoff,
                "{ms} ms: {heard:?}"
            );
        }
    }

    #[test]
    fn a_2300_hz_tone_alone_is_no_handshake() {
        let mut audio = tone(&[(2300.0, 0.3)], 300);
        audio.extend(silence(100));
        assert_eq!(ContactIdDetector::detect(RATE, &audio), []);
    }

    #[test]
    fn detectors_work_at_16_khz() {
        let rate = 16_000;
        let clip = |f: f32, ms: u32| -> Vec<f32> {
            (0..(rate * ms / 1000) as usize)
                .map(|i| 0.3 * (std::f32::consts::TAU * f * i as f32 / rate as f32).sin())
                .collect()
        };
        assert_eq!(
            ContactIdDetector::detect(rate, &clip(1400.0, 900)),
            [ContactIdTone::Kissoff]
        );
        let mut two: Vec<f32> = clip(941.0, 60)
            .iter()
            .zip(clip(1336.0, 60))
            .map(|(a, b)| a + b)
            .collect();
        two.extend(vec![0.0; 1600]);
        assert_eq!(DtmfDetector::decode(rate, &two), "0");
    }
}
