//! The activation and gradient frame: what one stage sends its neighbour for one micro-batch.
//!
//! Layout, little-endian:
//!
//! 1. the magic `NSPF` and the format version (1 byte);
//! 2. the kind (0 activation, 1 gradient) and the precision (0 f32, 1 bf16, 2 f16), 1 byte each,
//!    and a zero byte;
//! 3. the step (u64), the micro-batch (u32) and the receiving stage (u32);
//! 4. the shape (batch, time, width), three u32;
//! 5. the payload: batch · time · width values at the precision;
//! 6. the BLAKE3 hash of everything before it (32 bytes).
//!
//! [`decode`] treats the bytes as hostile: the shape is checked against a [`FrameLimit`] derived
//! from the model config before the payload is read, the length must match the shape exactly,
//! the checksum must hold and every value must be finite; anything else is an error, never a
//! panic, and nothing is allocated past the limit.

use std::str::FromStr;

use half::{bf16, f16};
use neuroshard_model::Config;
use neuroshard_primitives::Hash;

use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"NSPF";
const VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER: usize = 4 + 1 + 3 + 8 + 4 + 4 + 12;
/// Bytes after the payload (the checksum).
pub const TRAILER: usize = 32;

/// Which way a frame travels.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum FrameKind {
    /// A stage's output hidden states, sent forward to the next stage.
    Activation,
    /// The loss's gradient with respect to a stage's input, sent back to the previous stage.
    Gradient,
}

/// How the payload's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// 32-bit floats, exact.
    F32,
    /// bfloat16: f32's range, 8 bits of mantissa.
    Bf16,
    /// IEEE half: 11 bits of mantissa, range up to 65 504 (larger values are refused).
    F16,
}

impl Precision {
    /// Bytes per value.
    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::Bf16 | Precision::F16 => 2,
        }
    }

    fn tag(self) -> u8 {
        match self {
            Precision::F32 => 0,
            Precision::Bf16 => 1,
            Precision::F16 => 2,
        }
    }

    fn from_tag(tag: u8) -> Result<Self> {
        match tag {
            0 => Ok(Precision::F32),
            1 => Ok(Precision::Bf16),
            2 => Ok(Precision::F16),
            _ => Err(Error::BadFrame(format!("unknown precision tag {tag}"))),
        }
    }

    /// `value` as it arrives after a trip at this precision.
    pub fn round(self, value: f32) -> f32 {
        match self {
            Precision::F32 => value,
            Precision::Bf16 => bf16::from_f32(value).to_f32(),
            Precision::F16 => f16::from_f32(value).to_f32(),
        }
    }

    fn write(self, values: &[f32], out: &mut Vec<u8>) {
        match self {
            Precision::F32 => values
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Precision::Bf16 => values
                .iter()
                .for_each(|v| out.extend_from_slice(&bf16::from_f32(*v).to_le_bytes())),
            Precision::F16 => values
                .iter()
                .for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
        }
    }

    fn read(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            Precision::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Precision::Bf16 => bytes
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Precision::F16 => bytes
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        }
    }
}

impl FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            "f16" => Ok(Precision::F16),
            _ => Err(Error::UnknownPrecision(s.to_owned())),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        })
    }
}

/// The largest frame a stage accepts: hidden states of at most `max_batch` sequences of at most
/// the model's `seq_len` tokens, `d_model` wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimit {
    /// Most sequences per micro-batch.
    pub max_batch: usize,
    /// Most tokens per sequence (the model's training length).
    pub max_time: usize,
    /// The width every frame must have (`d_model`).
    pub width: usize,
}

impl FrameLimit {
    /// The limit for micro-batches of at most `max_batch` sequences of `cfg`'s model.
    pub fn for_model(cfg: &Config, max_batch: usize) -> Self {
        Self {
            max_batch,
            max_time: cfg.seq_len,
            width: cfg.d_model,
        }
    }

    /// The most bytes a frame under this limit takes at 32-bit precision.
    pub fn max_bytes(&self) -> usize {
        let values = self
            .max_batch
            .saturating_mul(self.max_time)
            .saturating_mul(self.width);
        HEADER + values.saturating_mul(4) + TRAILER
    }
}

/// One micro-batch's hidden states or their gradient, in flight between two stages.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Activation (forward) or gradient (backward).
    pub kind: FrameKind,
    /// The optimizer step it belongs to.
    pub step: u64,
    /// Which micro-batch of the step.
    pub micro_batch: u32,
    /// The stage it is addressed to.
    pub stage: u32,
    /// (batch, time, width).
    pub shape: [usize; 3],
    /// The values, row-major, as f32 (already rounded to the precision when decoded).
    pub values: Vec<f32>,
}

impl Frame {
    /// The frame's bytes, with its values written at `precision`. Fails on a value `precision`
    /// cannot carry (a NaN, an infinity, or past f16's range), and on a shape that does not
    /// match the values.
    pub fn encode(&self, precision: Precision) -> Result<Vec<u8>> {
        let n = self
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if n != Some(self.values.len()) || self.shape.iter().any(|&d| u32::try_from(d).is_err()) {
            return Err(Error::BadFrame(format!(
                "shape {:?} does not hold {} values",
                self.shape,
                self.values.len()
            )));
        }
        check_finite(&self.values, precision)?;
        let mut out = Vec::with_capacity(HEADER + self.values.len() * precision.bytes() + TRAILER);
        out.extend_from_slice(MAGIC);
        let kind = match self.kind {
            FrameKind::Activation => 0,
            FrameKind::Gradient => 1,
        };
        out.extend_from_slice(&[VERSION, kind, precision.tag(), 0]);
        out.extend_from_slice(&self.step.to_le_bytes());
        out.extend_from_slice(&self.micro_batch.to_le_bytes());
        out.extend_from_slice(&self.stage.to_le_bytes());
        for d in self.shape {
            out.extend_from_slice(&(d as u32).to_le_bytes());
        }
        precision.write(&self.values, &mut out);
        let checksum = Hash::of(&out);
        out.extend_from_slice(&checksum.0);
        Ok(out)
    }
}

/// The step a frame's header names, to file it until its step runs; `None` for bytes too short
/// or not a version-1 frame. Routing only: nothing else of the frame is checked ([`decode`] does).
pub fn peek_step(bytes: &[u8]) -> Option<u64> {
    let header = bytes.get(..16)?;
    (&header[..4] == MAGIC && header[4] == VERSION)
        .then(|| u64::from_le_bytes(header[8..16].try_into().expect("8 bytes")))
}

/// Reads a peer's frame under `limit`; returns it with the precision it was written at.
pub fn decode(bytes: &[u8], limit: &FrameLimit) -> Result<(Frame, Precision)> {
    let bad = |reason: String| Err(Error::BadFrame(reason));
    if bytes.len() < HEADER + TRAILER || bytes.len() > limit.max_bytes() {
        return bad(format!(
            "{} bytes is outside {}..={}",
            bytes.len(),
            HEADER + TRAILER,
            limit.max_bytes()
        ));
    }
    let (body, checksum) = bytes.split_at(bytes.len() - TRAILER);
    if &bytes[..4] != MAGIC || bytes[4] != VERSION || bytes[7] != 0 {
        return bad("not a version-1 pipeline frame".into());
    }
    if Hash::of(body).0 != checksum {
        return bad("the checksum does not match".into());
    }
    let kind = match bytes[5] {
        0 => FrameKind::Activation,
        1 => FrameKind::Gradient,
        tag => return bad(format!("unknown kind tag {tag}")),
    };
    let precision = Precision::from_tag(bytes[6])?;
    let u32_at =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let step = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let (micro_batch, stage) = (u32_at(16), u32_at(20));
    let shape = [
        u32_at(24) as usize,
        u32_at(28) as usize,
        u32_at(32) as usize,
    ];
    let [b, t, w] = shape;
    if b == 0 || b > limit.max_batch || t == 0 || t > limit.max_time || w != limit.width {
        return bad(format!("shape {shape:?} is outside the limit {limit:?}"));
    }
    // Each factor is within the limit; the product is checked all the same.
    let payload = &body[HEADER..];
    let want = [t, w, precision.bytes()]
        .iter()
        .try_fold(b, |acc, &x| acc.checked_mul(x));
    if want != Some(payload.len()) {
        return bad(format!(
            "{} payload bytes for shape {shape:?} at {precision}",
            payload.len()
        ));
    }
    let values = precision.read(payload);
    if values.iter().any(|v| !v.is_finite()) {
        return bad("a value is not finite".into());
    }
    let frame = Frame {
        kind,
        step,
        micro_batch,
        stage,
        shape,
        values,
    };
    Ok((frame, precision))
}

fn check_finite(values: &[f32], precision: Precision) -> Result<()> {
    match values.iter().position(|v| !precision.round(*v).is_finite()) {
        Some(i) => Err(Error::BadFrame(format!(
            "value {} at index {i} does not fit {precision}",
            values[i]
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn limit() -> FrameLimit {
        FrameLimit {
            max_batch: 4,
            max_time: 8,
            width: 6,
        }
    }

    fn frame(b: usize, t: usize) -> Frame {
        let values = (0..b * t * 6)
            .map(|i| (i as f32 * 0.37).sin() * 3.0)
            .collect();
        Frame {
            kind: FrameKind::Gradient,
            step: 9,
            micro_batch: 3,
            stage: 1,
            shape: [b, t, 6],
            values,
        }
    }

    #[test]
    fn frames_round_trip_at_every_precision_within_its_rounding() {
        let sent = frame(2, 5);
        for (precision, tolerance) in [
            (Precision::F32, 0.0),
            (Precision::Bf16, 1.0 / 128.0),
            (Precision::F16, 1.0 / 1024.0),
        ] {
            let bytes = sent.encode(precision).unwrap();
            assert_eq!(bytes.len(), HEADER + 60 * precision.bytes() + TRAILER);
            let (got, p) = decode(&bytes, &limit()).unwrap();
            assert_eq!(p, precision);
            assert_eq!(
                (got.kind, got.step, got.micro_batch, got.stage, got.shape),
                (sent.kind, 9, 3, 1, [2, 5, 6])
            );
            for (a, b) in got.values.iter().zip(&sent.values) {
                assert!(
                    (a - b).abs() <= tolerance * b.abs(),
                    "{precision}: {a} vs {b}"
                );
                assert_eq!(*a, precision.round(*b));
            }
        }
    }

    #[test]
    fn the_step_is_peeked_from_the_header_and_nothing_else_is() {
        let bytes = frame(2, 5).encode(Precision::Bf16).unwrap();
        assert_eq!(peek_step(&bytes), Some(9));
        assert_eq!(peek_step(&bytes[..15]), None);
        assert_eq!(peek_step(b"NOPE-and-more-bytes"), None);
    }

    #[test]
    fn frames_past_the_limit_or_tampered_with_are_refused() {
        assert!(decode(&frame(5, 2).encode(Precision::F32).unwrap(), &limit()).is_err());
        assert!(decode(&frame(1, 9).encode(Precision::Bf16).unwrap(), &limit()).is_err());
        let mut bytes = frame(2, 2).encode(Precision::F32).unwrap();
        bytes[HEADER] ^= 1;
        assert!(decode(&bytes, &limit()).is_err());
        let mut bad = frame(1, 1);
        bad.values[0] = f32::NAN;
        assert!(bad.encode(Precision::F32).is_err());
        bad.values[0] = 1e6;
        assert!(bad.encode(Precision::F16).is_err());
        assert!(bad.encode(Precision::Bf16).is_ok());
        bad.shape = [2, 1, 6];
        assert!(bad.encode(Precision::F32).is_err());
    }

    proptest! {
        #[test]
        fn hostile_bytes_are_an_error_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = decode(&bytes, &limit());
        }

        #[test]
        fn a_reframed_header_with_a_valid_checksum_is_still_checked(
            dims in proptest::array::uniform3(any::<u32>()), tag in 0u8..4, len in 0usize..800,
        ) {
            let mut body = frame(1, 1).encode(Precision::F32).unwrap();
            body.truncate(HEADER);
            body[6] = tag;
            for (i, d) in dims.iter().enumerate() {
                body[24 + 4 * i..28 + 4 * i].copy_from_slice(&d.to_le_bytes());
            }
            body.extend(std::iter::repeat_n(0x3f, len));
            let checksum = Hash::of(&body);
            body.extend_from_slice(&checksum.0);
            if let Ok((got, p)) = decode(&body, &limit()) {
                prop_assert!(got.values.len() <= 4 * 8 * 6);
                prop_assert_eq!(got.values.len() * p.bytes(), len);
            }
        }
    }
}
