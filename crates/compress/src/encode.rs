//! Encoding with error feedback, and decoding: the crate's two entry points.
//!
//! Chunks are independent, so both directions run in parallel over chunks with `rayon` and give
//! the same bytes for any number of threads.

use rayon::prelude::*;

use crate::topk::{Scratch, decode_chunk, encode_chunk};
use crate::wire::{self, CHECKSUM_LEN, HEADER_LEN, Header, Packet};
use crate::{Codec, CompressConfig, Error, Result};
use crate::{budget, entropy};

/// Error-feedback state: what earlier rounds' encodings lost, carried into the next encoding.
///
/// Keep one per vector that is encoded round after round (per stage, per replica). A new
/// residual is empty and takes its length from the first vector encoded with it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Residual(Vec<f32>);

impl Residual {
    /// An empty residual: the first [`encode`] treats it as zeros of the vector's length.
    pub fn new() -> Self {
        Self::default()
    }

    /// A residual carrying `values` (empty for none), as saved or as a contributor disclosed it
    /// for a verifier to repeat its encoding.
    pub fn from_values(values: Vec<f32>) -> Self {
        Self(values)
    }

    /// The carried values (empty before the first encoding).
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// The carried values, by value.
    pub fn into_inner(self) -> Vec<f32> {
        self.0
    }

    /// Euclidean norm of what is carried.
    pub fn norm(&self) -> f64 {
        self.0
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt()
    }

    /// Drops everything carried, for example when the model is resynchronised from a peer.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

impl From<Vec<f32>> for Residual {
    /// A residual carrying `values`, for example one restored from a checkpoint.
    fn from(values: Vec<f32>) -> Self {
        Self(values)
    }
}

/// Size in bytes of the packet [`encode`] produces for `len` values under `cfg`.
pub fn encoded_len(len: usize, cfg: &CompressConfig) -> Result<usize> {
    cfg.validate()?;
    Ok(Header::for_config(cfg, len).packet_len())
}

/// Compresses `delta` with error feedback: encodes `delta + β · residual` under `cfg` and
/// leaves what the encoding lost in `residual`.
///
/// # Error feedback
///
/// 1. Add the decayed residual to the pseudo-gradient: `a = Δ + β · r`, with `β` the config's
///    `ef_decay` (an empty residual counts as zeros).
/// 2. Encode `a` chunk by chunk with the chosen codec; call its reconstruction `â`, which is
///    exactly what [`decode`] returns for the packet.
/// 3. Keep what was lost as the next residual: `r' = a − â`.
///
/// With `β = 1` (the default), `decode(packet) + r' = Δ + r` up to one `f32` rounding per value:
/// nothing is dropped, only delayed, which is why aggressive codecs still converge
/// ([Karimireddy et al. 2019](https://arxiv.org/abs/1901.09847)). With `β < 1` what stays unsent
/// fades, a share `1 − β` per round: the accumulator SparseLoCo uses for DiLoCo's
/// pseudo-gradients, where a value left behind for many rounds has gone stale
/// ([Sarfi et al. 2025](https://arxiv.org/abs/2508.15706)). `β = 1` multiplies by one, which is
/// exact, so it gives the same bits as plain addition.
///
/// # Errors
///
/// An invalid `cfg`, a residual of another length, or a non-finite `a`; the residual is then
/// left unchanged.
pub fn encode(delta: &[f32], residual: &mut Residual, cfg: &CompressConfig) -> Result<Packet> {
    cfg.validate()?;
    let r = &mut residual.0;
    if r.is_empty() {
        r.resize(delta.len(), 0.0);
    }
    if r.len() != delta.len() {
        return Err(Error::ResidualLength {
            residual: r.len(),
            delta: delta.len(),
        });
    }
    let header = Header::for_config(cfg, delta.len());
    let decay = cfg.ef_decay;
    if let Some(index) = first_non_finite(delta, r, decay, header.chunk_size) {
        return Err(Error::NonFiniteInput { index });
    }
    let mut bytes = vec![0u8; header.packet_len()];
    let (head, rest) = bytes.split_at_mut(HEADER_LEN);
    header.write(head.try_into().expect("HEADER_LEN bytes"));
    let payload_len = rest.len() - CHECKSUM_LEN;
    let chunk = header.chunk_size;
    if header.codec.has_bit_budget() {
        // The widths (hbits) or the step (hent) depend on every chunk, so the feedback comes
        // first.
        r.par_chunks_mut(chunk)
            .zip(delta.par_chunks(chunk))
            .for_each(|(acc, d)| fold_in(acc, d, decay));
        let payload = &mut rest[..payload_len];
        match header.codec {
            Codec::HEnt | Codec::HTcq => entropy::encode(&header, r, payload),
            _ => budget::encode(&header, r, payload),
        }
        wire::seal(&mut bytes);
        return Ok(Packet::new(header, bytes));
    }
    r.par_chunks_mut(chunk)
        .zip(delta.par_chunks(chunk))
        .zip(rest[..payload_len].par_chunks_mut(header.chunk_bytes(chunk)))
        .enumerate()
        .for_each_init(Scratch::default, |scratch, (index, ((acc, d), out))| {
            fold_in(acc, d, decay);
            encode_chunk(&header, index, acc, out, scratch);
        });
    wire::seal(&mut bytes);
    Ok(Packet::new(header, bytes))
}

/// Step 1 of error feedback for one chunk: `acc ← d + β · acc`.
fn fold_in(acc: &mut [f32], d: &[f32], decay: f32) {
    acc.iter_mut()
        .zip(d)
        .for_each(|(a, d)| *a = feedback(*a, *d, decay));
}

/// Step 1 of error feedback for one value: `Δ + β · r`.
fn feedback(residual: f32, delta: f32, decay: f32) -> f32 {
    delta + decay * residual
}

/// The first index where `delta + decay · residual` is not finite, checked before anything is
/// changed.
fn first_non_finite(delta: &[f32], residual: &[f32], decay: f32, chunk: usize) -> Option<usize> {
    // Whole chunks per task: a per-value parallel search costs more than the additions.
    delta
        .par_chunks(chunk)
        .zip(residual.par_chunks(chunk))
        .enumerate()
        .find_map_first(|(c, (d, r))| {
            d.iter()
                .zip(r)
                .position(|(d, r)| !feedback(*r, *d, decay).is_finite())
                .map(|i| c * chunk + i)
        })
}

/// Decodes a packet from a peer into the vector it carries.
///
/// `max_len` is the most parameters the caller accepts (the size of the stage being trained).
/// Malformed or hostile bytes return an error and never panic; the only allocation is the
/// output, made after the header, the total length and the checksum have been checked and the
/// declared length is at most `max_len`.
pub fn decode(bytes: &[u8], max_len: usize) -> Result<Vec<f32>> {
    let (header, payload) = wire::open(bytes, max_len)?;
    let mut out = vec![0.0f32; header.len];
    let chunk = header.chunk_size;
    if header.codec.has_bit_budget() {
        let decoded = match header.codec {
            Codec::HEnt | Codec::HTcq => entropy::decode(&header, payload, &mut out),
            _ => budget::decode(&header, payload, &mut out),
        };
        return match decoded {
            Ok(()) => Ok(out),
            Err((chunk, reason)) => Err(Error::BadPayload { chunk, reason }),
        };
    }
    // The first bad chunk in order, whatever the scheduling, so the error is deterministic too.
    let failure = out
        .par_chunks_mut(chunk)
        .zip(payload.par_chunks(header.chunk_bytes(chunk)))
        .enumerate()
        .find_map_first(|(index, (values, bytes))| {
            decode_chunk(&header, index, bytes, values)
                .err()
                .map(|reason| (index, reason))
        });
    match failure {
        Some((chunk, reason)) => Err(Error::BadPayload { chunk, reason }),
        None => Ok(out),
    }
}
