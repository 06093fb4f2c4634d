//! ITU-T G.711 companding of 8 kHz linear PCM: A-law (RTP payload type 8, PCMA) and µ-law
//! (payload type 0, PCMU), as the call's RTP carries it.
//!
//! The segment arithmetic follows the recommendation's tables: A-law keeps 13 bits of the
//! sample with even bits inverted on the line, µ-law keeps 14 bits with a bias of 0x84 and
//! all bits inverted.

/// µ-law bias added before the segment search.
const ULAW_BIAS: i32 = 0x84;
/// Largest µ-law magnitude before the bias (14-bit range).
const ULAW_CLIP: i32 = 32635;

/// The number of the segment (0..=7) whose upper end is at least `value`, over the 8 ends.
fn segment(value: i32, ends: &[i32; 8]) -> u8 {
    ends.iter()
        .position(|&end| value <= end)
        .map_or(8, |s| s as u8)
}

/// One linear sample to A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    const ENDS: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut pcm = i32::from(sample) >> 3;
    let mask: u8 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let seg = segment(pcm, &ENDS);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mut code = seg << 4;
    code |= if seg < 2 {
        ((pcm >> 1) & 0x0F) as u8
    } else {
        ((pcm >> seg) & 0x0F) as u8
    };
    code ^ mask
}

/// One A-law byte to linear.
pub fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = i32::from(a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// One linear sample to µ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const ENDS: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
    let mut pcm = i32::from(sample) >> 2;
    let mask: u8 = if pcm < 0 {
        pcm = -pcm;
        0x7F
    } else {
        0xFF
    };
    pcm = pcm.min(ULAW_CLIP >> 2) + (ULAW_BIAS >> 2);
    let seg = segment(pcm, &ENDS);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    ((seg << 4) | ((pcm >> (seg + 1)) & 0x0F) as u8) ^ mask
}

/// One µ-law byte to linear.
pub fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let mut t = (i32::from(u & 0x0F) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    (if u & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    }) as i16
}

/// The two G.711 laws, by their static RTP payload types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// µ-law, PCMU, payload type 0.
    Ulaw,
    /// A-law, PCMA, payload type 8.
    Alaw,
}

impl Law {
    /// The static RTP payload type of this law (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Ulaw => 0,
            Law::Alaw => 8,
        }
    }

    /// The law of a static payload type, if it is one of the two.
    pub fn from_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Ulaw),
            8 => Some(Law::Alaw),
            _ => None,
        }
    }

    /// Encodes linear samples into `out` (cleared first).
    pub fn encode(self, samples: &[i16], out: &mut Vec<u8>) {
        out.clear();
        out.extend(samples.iter().map(|&s| match self {
            Law::Ulaw => linear_to_ulaw(s),
            Law::Alaw => linear_to_alaw(s),
        }));
    }

    /// Decodes companded bytes into `out` (cleared first).
    pub fn decode(self, codes: &[u8], out: &mut Vec<i16>) {
        out.clear();
        out.extend(codes.iter().map(|&c| match self {
            Law::Ulaw => ulaw_to_linear(c),
            Law::Alaw => alaw_to_linear(c),
        }));
    }
}
