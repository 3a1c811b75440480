//! Value formats: how the values a codec keeps are written, and what each loses.
//!
//! Every encoder takes the values of one chunk (all of it, or its top-k selection), writes them,
//! and overwrites each value with what was lost (`value − reconstruction`), which is exactly what
//! error feedback carries to the next round. The decoder computes the reconstruction with the
//! same floating-point operations as the encoder, so the two agree bit for bit.
//!
//! # `f32`
//!
//! 1. Write each value as 4 little-endian bytes. Nothing is lost.
//!
//! # `int8` and `int4` (symmetric integers, `L` = 127 or 7)
//!
//! 1. Let `a = max |x_i|` over the chunk. If `a = 0`, the scale is 0 and every `q_i = 0`.
//! 2. Choose the clipping scale `s` from the candidates `a · c`, `c ∈ {1, 0.9, 0.8, 0.7, 0.6,
//!    0.5}`: the one whose reconstruction has the least squared error over the chunk (the first
//!    on ties). Plain absmax is the candidate `c = 1`; clipping the few largest values buys a
//!    finer step for all the others, and error feedback carries the clipped part forward.
//! 3. Let the step be `Δ = s / L` (one `f32` division, repeated by the decoder).
//! 4. `q_i = round_half_even(clamp(x_i · L / s, −L, L))`, an integer in `[−L, L]`.
//!    Rounding is to nearest, ties to even (unbiased), via the `1.5 · 2^23` addition trick.
//! 5. Write `s` as `f32`, then each `q_i` as an `i8` (int8) or a 4-bit two's-complement nibble
//!    (int4: value `2j` in the low nibble of byte `j`, value `2j + 1` in the high nibble; an odd
//!    chunk pads the last high nibble with 0).
//! 6. The reconstruction is `x̂_i = q_i · Δ`. The decoder rejects `q = −128` (int8), `q = −8`
//!    (int4), a non-zero pad nibble, and a scale that is negative or not finite.
//!
//! # `int2` (2 bits per value: every value of a chunk, or the values top-k kept)
//!
//! No code is spent on 0: the four levels are the odd multiples of the step,
//! `{−3, −1, 1, 3} · Δ`. For top-k the kept values are the chunk's largest, so none is near zero;
//! for a dense chunk of bell-shaped values these levels are close to the four that minimise the
//! squared error (Lloyd–Max for a Gaussian puts them at `±0.45 σ` and `±1.51 σ`, a ratio of 3.3
//! against our 3), which a ternary `{−1, 0, 1}` grid, also two bits on the wire, is not.
//!
//! 1. Choose the clipping scale `s` as in step 1–2 of int8/int4, with `L = 3`.
//! 2. Let the step be `Δ = s / 3`.
//! 3. `q_i = clamp(2 · floor(x_i · 3 / (2s)) + 1, −3, 3)`: the nearest odd integer to
//!    `x_i / Δ` (ties upward).
//! 4. Write `s` as `f32`, then each code `(q_i + 3) / 2 ∈ 0..=3` in two bits, value `4j + t` in
//!    bits `2t..2t + 2` of byte `j`; the pad bits of the last byte are 0 (the decoder checks).
//! 5. The reconstruction is `x̂_i = q_i · Δ`.
//!
//! `hint2` writes the same codes for a rotated chunk ([`crate::rotate`]), and in step 1
//! chooses `s` among ternary's wider candidates (down to `0.2 · a`): a rotated chunk is close
//! to Gaussian, whose four-level optimum sits near `0.4 · a` for 4 096 values.
//!
//! # `b`-bit uniform (`hbits`, a width `b` in `0..=8` per chunk)
//!
//! int2's odd grid with `2^b` levels: `L = 2^b − 1`, levels `{−L, …, −1, 1, …, L} · Δ`, so
//! `b = 2` is int2's grid and `b = 1` sends each value's sign times `Δ = s`.
//!
//! 1. If `b = 0`, write nothing: the reconstruction is 0 and the chunk stays in the residual.
//! 2. Otherwise choose `s` as in step 1–2 of int8/int4 among the wider candidates (`a · c`,
//!    `c ∈ {1, 0.9, …, 0.2}`: a bell-shaped chunk's best scale falls from about `0.7 · a` at 4
//!    bits to `0.2 · a` at 1 bit), let `Δ = s / L`, and round each value to the nearest odd
//!    integer as in int2's step 3.
//! 3. Write `s` as `f32`, then each code `(q_i + L) / 2 ∈ 0..2^b` in `b` bits, least significant
//!    bit first (the layout of top-k offsets; for `b = 2` the same bits as int2's step 4); the
//!    pad bits of the last byte are 0 (the decoder checks).
//! 4. The reconstruction is `x̂_i = q_i · Δ`.
//!
//! # `ternary` (log2 3 ≈ 1.58 bits of information, 1.6 on the wire)
//!
//! Three levels `{−1, 0, 1} · s`: unlike int2, a value near zero is sent as zero, which matters
//! for a dense Δ whose chunks mix rows that moved with rows that barely did (an input
//! embedding's rare tokens); int2's levels would move the latter by `± s/3` every round.
//!
//! 1. Choose the clipping scale `s` as in step 1–2 of int8/int4, with `L = 1`, from the wider
//!    candidates `a · c`, `c ∈ {1, 0.9, …, 0.3, 0.2}`: three levels fit a bell-shaped chunk best
//!    near `c = 0.3`, below int8/int4's smallest candidate.
//! 2. `q_i = round_half_even(clamp(x_i / s, −1, 1))`, in `{−1, 0, 1}`.
//! 3. Write `s` as `f32`, then the digits `q_i + 1` five to a byte in base 3: byte `j` is
//!    `Σ_t (q_{5j+t} + 1) · 3^t` over `t ∈ 0..5`, at most 242; a shorter last group's pad
//!    digits are 0, so its byte is below `3^len` (the decoder checks both).
//! 4. The reconstruction is `x̂_i = q_i · s`.
//!
//! # `sign` (1 bit per value)
//!
//! 1. Let `s = mean |x_i|` over the chunk (summed in `f64`): for fixed signs it is the scale that
//!    minimises `Σ (x_i − s · sign(x_i))²`.
//! 2. Write `s` as `f32`, then one bit per value, 1 for `x_i < 0`, least significant bit first;
//!    the pad bits of the last byte are 0 (the decoder checks).
//! 3. The reconstruction is `x̂_i = −s` for a set bit and `+s` otherwise.

use crate::bits::{pack, pad_is_zero, unpack};
use crate::config::ValueFormat;

/// Clipping candidates, as fractions of the chunk's absolute maximum (step 2 of int8/int4).
const CLIP_FRACTIONS: [f32; 6] = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5];

/// The wider clipping candidates of ternary and of int2 on rotated chunks: on a bell-shaped
/// chunk three levels fit best at 0.2–0.4 of its maximum, int2's four at about 0.4.
const WIDE_CLIP_FRACTIONS: [f32; 9] = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2];

/// Values per ternary byte: `3^5 = 243 ≤ 256`.
const TRITS_PER_BYTE: usize = 5;

/// Bytes of the per-chunk scale.
const SCALE_BYTES: usize = 4;

impl ValueFormat {
    /// Bytes needed to write `m` values.
    pub(crate) fn bytes(self, m: usize) -> usize {
        match self {
            ValueFormat::F32 => 4 * m,
            ValueFormat::Int8 => SCALE_BYTES + m,
            ValueFormat::Int4 => SCALE_BYTES + m.div_ceil(2),
            ValueFormat::Int2 | ValueFormat::Int2Wide => SCALE_BYTES + m.div_ceil(4),
            ValueFormat::Ternary => SCALE_BYTES + m.div_ceil(TRITS_PER_BYTE),
            ValueFormat::Sign => SCALE_BYTES + m.div_ceil(8),
            ValueFormat::Uniform(0) => 0,
            ValueFormat::Uniform(b) => SCALE_BYTES + (m * usize::from(b)).div_ceil(8),
        }
    }

    /// Writes `values` into `out` (exactly `self.bytes(values.len())` bytes) and replaces each
    /// value with what the encoding lost.
    pub(crate) fn encode(self, values: &mut [f32], out: &mut [u8]) {
        debug_assert_eq!(
            out.len(),
            self.bytes(values.len()),
            "output sized by the layout"
        );
        match self {
            ValueFormat::F32 => encode_f32(values, out),
            ValueFormat::Int8 => encode_int8(values, out),
            ValueFormat::Int4 => encode_int4(values, out),
            ValueFormat::Int2 => encode_int2(values, &CLIP_FRACTIONS, out),
            ValueFormat::Int2Wide => encode_int2(values, &WIDE_CLIP_FRACTIONS, out),
            ValueFormat::Ternary => encode_ternary(values, out),
            ValueFormat::Sign => encode_sign(values, out),
            ValueFormat::Uniform(b) => encode_uniform(values, b, out),
        }
    }

    /// Reads `out.len()` values from `bytes` (exactly `self.bytes(out.len())` bytes), or says
    /// what is wrong with them.
    pub(crate) fn decode(self, bytes: &[u8], out: &mut [f32]) -> Result<(), &'static str> {
        debug_assert_eq!(
            bytes.len(),
            self.bytes(out.len()),
            "input sized by the layout"
        );
        match self {
            ValueFormat::F32 => decode_f32(bytes, out),
            ValueFormat::Int8 => decode_int8(bytes, out),
            ValueFormat::Int4 => decode_int4(bytes, out),
            ValueFormat::Int2 | ValueFormat::Int2Wide => decode_int2(bytes, out),
            ValueFormat::Ternary => decode_ternary(bytes, out),
            ValueFormat::Sign => decode_sign(bytes, out),
            ValueFormat::Uniform(b) => decode_uniform(bytes, b, out),
        }
    }
}

fn encode_f32(values: &mut [f32], out: &mut [u8]) {
    for (v, dst) in values.iter_mut().zip(out.chunks_exact_mut(4)) {
        dst.copy_from_slice(&v.to_le_bytes());
        *v = 0.0;
    }
}

fn decode_f32(bytes: &[u8], out: &mut [f32]) -> Result<(), &'static str> {
    for (v, src) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *v = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
        if !v.is_finite() {
            return Err("value is not finite");
        }
    }
    Ok(())
}

/// Rounds to the nearest integer, ties to even, for `|x| ≤ 2^22` (our inputs are at most 127).
///
/// Adding and subtracting `1.5 · 2^23` leaves no fraction bits, so the FPU's default rounding
/// does the work; unlike `f32::round_ties_even` this vectorises on baseline x86-64.
pub(crate) fn round_half_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (x + MAGIC) - MAGIC
}

/// Which integers a quantiser rounds to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Grid {
    /// Every integer in `[-L, L]` (int8, int4).
    All,
    /// The odd integers in `[-L, L]` (int2).
    Odd,
}

/// One symmetric integer quantiser: `L` levels each side, its grid and its scale.
#[derive(Clone, Copy)]
struct IntQuantizer {
    levels: f32,
    grid: Grid,
    inv: f32,
    step: f32,
}

impl IntQuantizer {
    fn new(scale: f32, levels: f32, grid: Grid) -> Self {
        let inv = levels / scale;
        let (inv, step) = if scale > 0.0 && inv.is_finite() {
            (inv, step(scale, levels))
        } else {
            // A zero (or vanishingly small) chunk is sent as zeros; the residual keeps it all.
            (0.0, 0.0)
        };
        Self {
            levels,
            grid,
            inv,
            step,
        }
    }

    fn quantize(self, x: f32) -> f32 {
        let (t, l) = (x * self.inv, self.levels);
        match self.grid {
            Grid::All => round_half_even(t.clamp(-l, l)),
            Grid::Odd => (2.0 * (0.5 * t).floor() + 1.0).clamp(-l, l),
        }
    }

    fn error(self, x: f32) -> f32 {
        let e = x - self.quantize(x) * self.step;
        e * e
    }

    fn squared_error(self, values: &[f32]) -> f32 {
        // Eight independent sums, so the loop vectorises instead of waiting on one adder.
        let mut lanes = [0.0f32; 8];
        let groups = values.chunks_exact(8);
        let tail: f32 = groups.remainder().iter().map(|&x| self.error(x)).sum();
        for group in groups {
            for (lane, &x) in lanes.iter_mut().zip(group) {
                *lane += self.error(x);
            }
        }
        lanes.iter().sum::<f32>() + tail
    }
}

/// The step the decoder multiplies by; one function so encoder and decoder agree bit for bit.
fn step(scale: f32, levels: f32) -> f32 {
    scale / levels
}

/// Step 1–2 of int8/int4: the clipping scale with the least squared error among `fractions`
/// of the chunk's absolute maximum.
fn best_scale(values: &[f32], levels: f32, grid: Grid, fractions: &[f32]) -> f32 {
    let absmax = values.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if absmax == 0.0 {
        return 0.0;
    }
    fractions
        .iter()
        .map(|c| absmax * c)
        .map(|s| (s, IntQuantizer::new(s, levels, grid).squared_error(values)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(absmax, |(s, _)| s)
}

/// Chooses the scale, writes it, and returns the quantiser for the chunk's values.
fn write_scale(
    values: &[f32],
    levels: f32,
    grid: Grid,
    fractions: &[f32],
    out: &mut [u8],
) -> IntQuantizer {
    let scale = best_scale(values, levels, grid, fractions);
    let quantizer = IntQuantizer::new(scale, levels, grid);
    let written = if quantizer.step == 0.0 { 0.0 } else { scale };
    out[..SCALE_BYTES].copy_from_slice(&written.to_le_bytes());
    quantizer
}

/// Quantises one value, leaves its residual in place, and returns the integer.
fn take(quantizer: IntQuantizer, x: &mut f32) -> i8 {
    let q = quantizer.quantize(*x);
    *x -= q * quantizer.step;
    q as i8
}

fn encode_int8(values: &mut [f32], out: &mut [u8]) {
    let quantizer = write_scale(values, 127.0, Grid::All, &CLIP_FRACTIONS, out);
    for (x, dst) in values.iter_mut().zip(&mut out[SCALE_BYTES..]) {
        *dst = take(quantizer, x) as u8;
    }
}

fn encode_int4(values: &mut [f32], out: &mut [u8]) {
    let quantizer = write_scale(values, 7.0, Grid::All, &CLIP_FRACTIONS, out);
    for (pair, dst) in values.chunks_mut(2).zip(&mut out[SCALE_BYTES..]) {
        let lo = take(quantizer, &mut pair[0]) as u8 & 0x0f;
        let hi = pair
            .get_mut(1)
            .map_or(0, |x| take(quantizer, x) as u8 & 0x0f);
        *dst = lo | (hi << 4);
    }
}

/// Reads and checks the per-chunk scale.
pub(crate) fn read_scale(bytes: &[u8]) -> Result<f32, &'static str> {
    let scale = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if scale.is_finite() && scale >= 0.0 {
        Ok(scale)
    } else {
        Err("scale is negative or not finite")
    }
}

fn decode_int8(bytes: &[u8], out: &mut [f32]) -> Result<(), &'static str> {
    let step = step(read_scale(bytes)?, 127.0);
    for (v, &b) in out.iter_mut().zip(&bytes[SCALE_BYTES..]) {
        let q = b as i8;
        if q == i8::MIN {
            return Err("int8 value -128 is outside [-127, 127]");
        }
        *v = f32::from(q) * step;
    }
    Ok(())
}

/// Sign-extends the low nibble of `b`; `None` for -8, which the encoder never writes.
fn nibble(b: u8) -> Option<i8> {
    let q = ((b << 4) as i8) >> 4;
    (q != -8).then_some(q)
}

fn decode_int4(bytes: &[u8], out: &mut [f32]) -> Result<(), &'static str> {
    const OUT_OF_RANGE: &str = "int4 value -8 is outside [-7, 7]";
    let step = step(read_scale(bytes)?, 7.0);
    for (pair, &b) in out.chunks_mut(2).zip(&bytes[SCALE_BYTES..]) {
        pair[0] = f32::from(nibble(b).ok_or(OUT_OF_RANGE)?) * step;
        match pair.get_mut(1) {
            Some(v) => *v = f32::from(nibble(b >> 4).ok_or(OUT_OF_RANGE)?) * step,
            None if b >> 4 != 0 => return Err("int4 pad nibble is not zero"),
            None => {}
        }
    }
    Ok(())
}

fn encode_int2(values: &mut [f32], fractions: &[f32], out: &mut [u8]) {
    let quantizer = write_scale(values, 3.0, Grid::Odd, fractions, out);
    for (group, dst) in values.chunks_mut(4).zip(&mut out[SCALE_BYTES..]) {
        let mut bits = 0u8;
        for (t, x) in group.iter_mut().enumerate() {
            // q ∈ {−3, −1, 1, 3} (a zero step sends q = 1 times 0), so (q + 3) / 2 ∈ 0..=3.
            let code = (i16::from(take(quantizer, x)) + 3) / 2;
            bits |= (code as u8) << (2 * t);
        }
        *dst = bits;
    }
}

fn decode_int2(bytes: &[u8], out: &mut [f32]) -> Result<(), &'static str> {
    let step = step(read_scale(bytes)?, 3.0);
    for (group, &bits) in out.chunks_mut(4).zip(&bytes[SCALE_BYTES..]) {
        if group.len() < 4 && bits >> (2 * group.len()) != 0 {
            return Err("int2 pad bits are not zero");
        }
        for (t, v) in group.iter_mut().enumerate() {
            let code = (bits >> (2 * t)) & 0b11;
            *v = f32::from(2 * i16::from(code) - 3) * step;
        }
    }
    Ok(())
}

/// `L = 2^b − 1`, the largest odd level of a `b`-bit uniform code.
fn uniform_levels(bits: u8) -> f32 {
    f32::from((1u16 << bits) - 1)
}

fn encode_uniform(values: &mut [f32], bits: u8, out: &mut [u8]) {
    if bits == 0 {
        return;
    }
    let levels = uniform_levels(bits);
    let quantizer = write_scale(values, levels, Grid::Odd, &WIDE_CLIP_FRACTIONS, out);
    let codes = values.iter_mut().map(|x| {
        let q = quantizer.quantize(*x);
        *x -= q * quantizer.step;
        // q is odd and in [−L, L], so (q + L) / 2 is an integer in 0..2^b.
        ((q + levels) * 0.5) as u16
    });
    pack(codes, usize::from(bits), &mut out[SCALE_BYTES..]);
}

fn decode_uniform(bytes: &[u8], bits: u8, out: &mut [f32]) -> Result<(), &'static str> {
    if bits == 0 {
        out.fill(0.0);
        return Ok(());
    }
    let levels = uniform_levels(bits);
    let step = step(read_scale(bytes)?, levels);
    let codes = &bytes[SCALE_BYTES..];
    let width = usize::from(bits);
    if !pad_is_zero(codes, out.len() * width) {
        return Err("uniform code pad bits are not zero");
    }
    for (j, v) in out.iter_mut().enumerate() {
        let code = unpack(codes, width, j) as f32;
        *v = (2.0 * code - levels) * step;
    }
    Ok(())
}

fn encode_ternary(values: &mut [f32], out: &mut [u8]) {
    let quantizer = write_scale(values, 1.0, Grid::All, &WIDE_CLIP_FRACTIONS, out);
    for (group, dst) in values
        .chunks_mut(TRITS_PER_BYTE)
        .zip(&mut out[SCALE_BYTES..])
    {
        // Horner's rule from the last value, so value `t` is digit `t`; each digit is q + 1.
        *dst = group
            .iter_mut()
            .rev()
            .fold(0u8, |byte, x| 3 * byte + (take(quantizer, x) + 1) as u8);
    }
}

fn decode_ternary(bytes: &[u8], out: &mut [f32]) -> Result<(), &'static str> {
    let step = step(read_scale(bytes)?, 1.0);
    for (group, &byte) in out.chunks_mut(TRITS_PER_BYTE).zip(&bytes[SCALE_BYTES..]) {
        // 3^len: a full group's byte is below 243, a short last group's pad digits are 0.
        if u32::from(byte) >= 3u32.pow(group.len() as u32) {
            return Err("ternary byte is out of range or its pad digits are not zero");
        }
        let mut rest = byte;
        for v in group.iter_mut() {
            *v = f32::from(i8::try_from(rest % 3).expect("a digit") - 1) * step;
            rest /= 3;
        }
    }
    Ok(())
}

fn encode_sign(values: &mut [f32], out: &mut [u8]) {
    let mean_abs = values.iter().map(|x| f64::from(x.abs())).sum::<f64>() / values.len() as f64;
    let scale = mean_abs as f32;
    out[..SCALE_BYTES].copy_from_slice(&scale.to_le_bytes());
    for (group, dst) in values.chunks_mut(8).zip(&mut out[SCALE_BYTES..]) {
        let mut bits = 0u8;
        for (bit, x) in group.iter_mut().enumerate() {
            let negative = *x < 0.0;
            bits |= u8::from(negative) << bit;
            *x -= if negative { -scale } else { scale };
        }
        *dst = bits;
    }
}

fn decode_sign(bytes: &[u8], out: &mut [f32]) -> Result<(), &'static str> {
    let scale = read_scale(bytes)?;
    for (group, &bits) in out.chunks_mut(8).zip(&bytes[SCALE_BYTES..]) {
        if group.len() < 8 && bits >> group.len() != 0 {
            return Err("sign pad bits are not zero");
        }
        for (bit, v) in group.iter_mut().enumerate() {
            *v = if bits >> bit & 1 == 1 { -scale } else { scale };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes, decodes, and checks the decoder reproduces what the encoder reconstructed.
    fn round_trip(format: ValueFormat, values: &[f32]) -> Vec<f32> {
        let mut residual = values.to_vec();
        let mut bytes = vec![0u8; format.bytes(values.len())];
        format.encode(&mut residual, &mut bytes);
        let mut decoded = vec![0.0; values.len()];
        format.decode(&bytes, &mut decoded).unwrap();
        for ((x, r), d) in values.iter().zip(&residual).zip(&decoded) {
            assert_eq!(*r, x - d, "residual is exactly what was lost");
        }
        decoded
    }

    #[test]
    fn rounding_is_half_even() {
        let cases = [
            (0.5, 0.0),
            (1.5, 2.0),
            (2.5, 2.0),
            (-0.5, -0.0),
            (-1.5, -2.0),
            (0.49, 0.0),
            (126.6, 127.0),
        ];
        for (x, want) in cases {
            assert_eq!(round_half_even(x), want, "round({x})");
        }
    }

    #[test]
    fn int8_known_answer() {
        // absmax 127 → step 1; clipping would only add error, so c = 1 wins.
        let values = [127.0, -63.5, 0.4, -127.0, 2.5];
        assert_eq!(
            round_trip(ValueFormat::Int8, &values),
            [127.0, -64.0, 0.0, -127.0, 2.0]
        );
    }

    #[test]
    fn int4_clips_an_outlier() {
        // One outlier among small values: a clipped scale beats absmax.
        // Worked out by hand: c = 0.8 costs 63 · 0.058 + 2² ≈ 7.7, absmax costs ≈ 17.6.
        let mut values = vec![0.9f32; 63];
        values.push(10.0);
        let decoded = round_trip(ValueFormat::Int4, &values);
        assert_eq!(decoded[63], 8.0, "the outlier is clipped at 0.8 · absmax");
        assert_eq!(decoded[0], 8.0 / 7.0);
    }

    #[test]
    fn int4_odd_length_and_range() {
        let values = [7.0, -7.0, 3.0];
        assert_eq!(round_trip(ValueFormat::Int4, &values), [7.0, -7.0, 3.0]);
        let mut out = [0.0; 3];
        let bad_pad = [0, 0, 0xe0, 0x40, 0x00, 0x10];
        assert!(ValueFormat::Int4.decode(&bad_pad, &mut out).is_err());
        let minus_eight = [0, 0, 0xe0, 0x40, 0x08, 0x00];
        assert!(ValueFormat::Int4.decode(&minus_eight, &mut out).is_err());
    }

    #[test]
    fn int2_rounds_to_the_nearest_odd_level() {
        // Scale 3, step 1: levels ±1, ±3; ties (±2) go up, 0 goes to +1, beyond 3 clips.
        let q = IntQuantizer::new(3.0, 3.0, Grid::Odd);
        let rounded = [0.0, 0.4, -0.4, 2.0, -2.0, 2.9, 5.0, -5.0].map(|x| q.quantize(x));
        assert_eq!(rounded, [1.0, 1.0, -1.0, 3.0, -1.0, 3.0, 3.0, -3.0]);
        let values = [3.0, -3.0, 1.0, -1.0, 3.0];
        assert_eq!(round_trip(ValueFormat::Int2, &values), values);
        let mut bytes = vec![0u8; ValueFormat::Int2.bytes(5)];
        ValueFormat::Int2.encode(&mut values.clone(), &mut bytes);
        // Codes (q + 3) / 2: 3, 0, 2, 1 in byte 0, then 3 in byte 1 with zero pad bits.
        assert_eq!(bytes[4..], [0b01_10_00_11, 0b11]);
        let mut out = [0.0; 5];
        let mut bad_pad = bytes.clone();
        bad_pad[5] |= 0b0100;
        assert!(ValueFormat::Int2.decode(&bad_pad, &mut out).is_err());
    }

    #[test]
    fn ternary_sends_small_values_as_zero() {
        // absmax 4: the least-error scale among 0.2..=1 · 4 is 2 (c = 0.5, error 5.7 against
        // 6.5 at 0.6 and 8.1 at 0.4); values below 1 in magnitude are sent as 0.
        let mut values = [2.0f32, -2.0].repeat(5);
        values[0] = 4.0;
        values.extend([0.5, -0.9, 1.2]);
        let want = [2.0f32, -2.0].repeat(5).into_iter().chain([0.0, 0.0, 2.0]);
        assert!(
            round_trip(ValueFormat::Ternary, &values)
                .into_iter()
                .eq(want)
        );
        let mut bytes = vec![0u8; ValueFormat::Ternary.bytes(13)];
        ValueFormat::Ternary.encode(&mut values.clone(), &mut bytes);
        // Digits q + 1, least significant first: 2 0 2 0 2, 0 2 0 2 0, then 1 1 2 and two pad 0s.
        assert_eq!(
            bytes[4..],
            [2 + 2 * 9 + 2 * 81, 2 * 3 + 2 * 27, 1 + 3 + 2 * 9]
        );
        let mut out = [0.0; 13];
        for (at, bad) in [(4, 243), (6, 27)] {
            let mut edited = bytes.clone();
            edited[at] = bad;
            assert!(ValueFormat::Ternary.decode(&edited, &mut out).is_err());
        }
    }

    #[test]
    fn sign_uses_mean_abs() {
        let values = [1.0, -3.0, 2.0];
        assert_eq!(round_trip(ValueFormat::Sign, &values), [2.0, -2.0, 2.0]);
        let mut out = [0.0; 3];
        let bad_pad = [0, 0, 0, 0x40, 0b1000];
        assert!(ValueFormat::Sign.decode(&bad_pad, &mut out).is_err());
    }

    #[test]
    fn zero_chunk_is_zero() {
        for format in [
            ValueFormat::Int8,
            ValueFormat::Int4,
            ValueFormat::Int2,
            ValueFormat::Ternary,
            ValueFormat::Sign,
        ] {
            assert_eq!(round_trip(format, &[0.0; 5]), [0.0; 5]);
        }
        assert_eq!(round_trip(ValueFormat::Int8, &[1e-45, -1e-45]), [0.0, 0.0]);
    }

    #[test]
    fn bad_scales_are_rejected() {
        let mut out = [0.0; 1];
        for scale in [-1.0f32, f32::NAN, f32::INFINITY] {
            let mut bytes = scale.to_le_bytes().to_vec();
            bytes.push(1);
            assert!(
                ValueFormat::Int8.decode(&bytes, &mut out).is_err(),
                "scale {scale}"
            );
        }
        let mut out = [0.0; 1];
        assert!(
            ValueFormat::F32
                .decode(&f32::NAN.to_le_bytes(), &mut out)
                .is_err()
        );
    }
}
