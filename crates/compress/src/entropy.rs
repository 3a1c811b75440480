//! `hent`: rotated chunks on a uniform grid scaled to each chunk, entropy-coded, with the step
//! chosen so that the codes fill a bit budget.
//!
//! `hint2` writes every rotated chunk with four levels in two bits: about 0.12 of a Gaussian
//! chunk's energy is left as error. A uniform grid with a zero level whose symbols are
//! entropy-coded does better at the same rate: about 0.09 at 2.05 bits per value (a step of
//! 0.95 σ), within a quarter of a bit of the rate–distortion bound. Every chunk's step is the
//! same multiple of its own RMS, so every chunk, and so every tensor, keeps the same share of
//! its energy as error: `hint2`'s balance across tensors, at a lower level. (Spending bits by
//! energy, as `hbits` does, starved the layers and the embedding; see
//! `docs/experiments/2026-11-30-hbits.md`.)
//!
//! # Steps, for a vector of `n` values in `N = ceil(n / C)` chunks, with a budget of `R` bits per
//! value (the header carries `1000 · R`, rounded)
//!
//! 1. The code budget is `T = floor(n · 1000R / 8000)` bytes, as for `hbits`.
//! 2. Rotate each chunk as `hint2` does ([`crate::rotate`]), and take its RMS
//!    `σ_c = sqrt(Σ x² / m)` (in `f64`, in order).
//! 3. For a multiplier `α = j / 64`, `j` in `1..=1024`, chunk `c`'s step is `Δ_c = f32(α · σ_c)`,
//!    or 0 when that is not a normal `f32` (the chunk is then not sent and stays whole in the
//!    residual); each rotated value's symbol is `q = round_half_even(clamp(x / Δ_c, −31, 31))`,
//!    a mid-tread grid: zero is a level, so a quiet value costs little.
//! 4. The model: the counts of `q + 31` over every sent chunk, normalised as in
//!    [`crate::rans`]; one frequency table serves all chunks, whose symbols share a
//!    distribution by step 3. Each sent chunk is one rANS stream of its symbols.
//! 5. Rate control: `j` is found by bisection over `1..=1024`, keeping the interval's upper end
//!    a multiplier whose streams fit in `T` bytes (`j = 1024` first; if even that does not fit,
//!    no chunk is sent). The streams' total shrinks as `α` grows, nearly always monotonically, and
//!    the result always fits; every node and auditor repeats the same ten or eleven trials.
//! 6. The payload: the 63 frequencies as `u16`; for each chunk its scale `s_c` (step 7) as `f32`
//!    and its stream's length in bytes as `u32` (0 for a chunk not sent); the streams back to
//!    back; zero bytes to its fixed length, `126 + 8N + T` (nothing for an empty vector), so the
//!    packet's length follows from its header.
//! 7. The reconstruction is `x̂ = q · s_c`, un-rotated; error feedback keeps `x − x̂`. The scale
//!    is the least-squares fit of the chunk's levels to its values, `s_c = Σ x q / Σ q²`, capped
//!    at `Δ_c` (see [`fit`]); the decoder needs only `s_c`, not `Δ_c`. At the steps rate control
//!    picks (about σ), a Gaussian's mass in each bin leans towards zero, and the bin centres
//!    `q · Δ` overshoot it; the fit pulls every level towards zero in proportion to `q`, which on
//!    a Gaussian is within 10⁻⁴ of the energy of putting each level at its bin's own conditional
//!    mean, at no cost in bytes (the symbols, so the rate, do not change): at 2.1 bits per value
//!    0.079 of the energy is left instead of 0.086. A fixed shrink would be right at one rate
//!    only: the best is 2 % of the step at 0.5 σ, 7 % at 0.95 σ, 12 % at 1.3 σ
//!    (`docs/experiments/2026-11-30-hent-centroid.md`). The decision thresholds stay at the bin
//!    edges `(q ± ½) Δ_c`: with the levels at one fitted scale, that is already the
//!    entropy-constrained optimum for a Gaussian (free levels and thresholds under a rate
//!    penalty gain 0.05 % of the error at most; a wider zero bin loses), so moving them buys
//!    nothing (`docs/experiments/2026-12-01-hent-ecsq.md`). The fit lowers each node's error,
//!    not necessarily the error of the mean of several nodes' Δs: its shrink along the Δ is the
//!    same on every node and does not average out, and for three nodes whose Δs are as alike as
//!    `nano`'s the bins' centres leave the mean 1–4 % less error (same note). Measured, the
//!    unbiased scale `Σ x² / Σ x q` (capped at `Δ_c`) in its place ended 0.015 and 0.019 nats
//!    behind this fit at H = 500 on two seeds (`docs/experiments/2026-12-02-hent-unbiased.md`).
//!
//! # `htcq`: the same steps on a trellis
//!
//! `htcq` changes three steps and keeps the others. Step 3: chunk `c`'s step is
//! `Δ_c = f32(α · σ_c / 2)`, and its levels `q` (in `−62..=62`) are the Viterbi path of
//! [`crate::trellis`] over its rotated values, so the levels of one union lie `α σ_c` apart as
//! `hent`'s do. Step 4: two tables, one per union (the even levels, then the odd), each symbol
//! counted and coded under the union of the state it was written in (its index within the
//! union, [`crate::trellis::symbol`]); the payload opens with both tables, `252 + 8N + T`
//! bytes. Step 7: the scale is the same fit of the levels `q`, capped at `Δ_c`. On Gaussian
//! chunks of 4 096 values at 2 bits per value this leaves 0.070 of the energy as error against
//! `hent`'s 0.091 (`round_trip`'s `htcq_leaves_a_sixth_less_error_than_hent_on_every_chunk`).
//! The search costs the encoder 8 states × 2 branches per value and trial; the decoder only
//! walks the trellis.
//!
//! The decoder rejects frequencies that do not sum to `2^14`, a negative or non-finite scale, a
//! scale of 0 with a stream or a stream without a scale, streams whose lengths exceed `T` (every
//! sum checked before a slice is cut), a malformed stream ([`crate::rans`]), and non-zero
//! padding.

use rayon::prelude::*;

use crate::budget::code_budget;
use crate::quant::{read_scale, round_half_even};
use crate::rans::{self, Model};
use crate::rotate::{self, Work};
use crate::trellis;
use crate::{Codec, Header};

/// The largest `|q|` of the scalar grid: its levels are `−31..=31` steps.
const MAX_LEVEL: i8 = 31;
/// Symbols of a frequency table: the scalar levels `−31..=31` as `q + 31`, or the trellis's
/// indices within a union ([`trellis::symbol`]).
const SYMBOLS: usize = 2 * MAX_LEVEL as usize + 1;
/// Bytes of one frequency table.
const TABLE_BYTES: usize = 2 * SYMBOLS;
/// Bytes of each chunk's entry: its step (`f32`) and its stream's length (`u32`).
const ENTRY_BYTES: usize = 8;
/// The candidate multipliers are `j / LADDER_DENOMINATOR` for `j` in `1..=LADDER`.
const LADDER: usize = 1024;
/// See [`LADDER`]: steps from `σ / 64` to `16 σ`.
const LADDER_DENOMINATOR: f64 = 64.0;

/// How a chunk's rotated values become levels: `hent`'s scalar grid or `htcq`'s trellis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grid {
    Scalar,
    Trellis,
}

impl Grid {
    /// The grid of `codec` (`hent` or `htcq`).
    fn of(codec: Codec) -> Self {
        if codec == Codec::HTcq {
            Grid::Trellis
        } else {
            Grid::Scalar
        }
    }

    /// How many frequency tables open the payload: one, or one per union.
    fn tables(self) -> usize {
        match self {
            Grid::Scalar => 1,
            Grid::Trellis => 2,
        }
    }

    /// The step as a share of `α σ`: a union's levels lie two trellis steps apart.
    fn share(self) -> f64 {
        match self {
            Grid::Scalar => 1.0,
            Grid::Trellis => 0.5,
        }
    }

    /// Step 3: the levels of a chunk's rotated values on the grid of `step` (non-zero);
    /// `back` is the trellis search's scratch space.
    fn quantise(self, x: &[f32], step: f32, levels: &mut [i8], back: &mut trellis::Scratch) {
        match self {
            Grid::Scalar => {
                let max = f32::from(MAX_LEVEL);
                levels.iter_mut().zip(x).for_each(|(q, &x)| {
                    *q = round_half_even((x / step).clamp(-max, max)) as i8;
                });
            }
            Grid::Trellis => trellis::quantise(x, step, levels, back),
        }
    }

    /// Step 4: calls `f` with each level's frequency table and symbol, in order.
    fn contexts(self, levels: &[i8], mut f: impl FnMut(usize, u8)) {
        match self {
            Grid::Scalar => levels.iter().for_each(|&q| f(0, (q + MAX_LEVEL) as u8)),
            Grid::Trellis => {
                let mut state = trellis::START;
                for &j in levels {
                    f(trellis::union(state), trellis::symbol(j));
                    state = trellis::next(state, j);
                }
            }
        }
    }

    /// Step 4 for one chunk: its stream under `models`.
    fn stream(self, models: &[Model], levels: &[i8]) -> Vec<u8> {
        let (mut tables, mut symbols) = (Vec::new(), Vec::new());
        self.contexts(levels, |t, s| {
            tables.push(t as u8);
            symbols.push(s);
        });
        let mut stream = Vec::new();
        rans::encode(&symbols, |i| &models[usize::from(tables[i])], &mut stream);
        stream
    }

    /// The decoder's steps 4–5: the levels of one chunk's stream, or what is wrong with it.
    fn read(
        self,
        models: &[Model],
        stream: &[u8],
        symbols: &mut [u8],
        levels: &mut [i8],
    ) -> Result<(), &'static str> {
        match self {
            Grid::Scalar => {
                rans::decode(stream, symbols, &models[0], |_| &models[0])?;
                for (q, &s) in levels.iter_mut().zip(symbols.iter()) {
                    *q = s as i8 - MAX_LEVEL;
                }
            }
            Grid::Trellis => {
                let (mut state, mut out) = (trellis::START, levels.iter_mut());
                let first = &models[trellis::union(state)];
                rans::decode(stream, symbols, first, |s| {
                    let j = trellis::level(state, s);
                    if let Some(level) = out.next() {
                        *level = j;
                    }
                    state = trellis::next(state, j);
                    &models[trellis::union(state)]
                })?;
            }
        }
        Ok(())
    }
}

/// The payload's fixed length: the tables, an entry per chunk, and the code budget; nothing
/// for an empty vector.
pub(crate) fn payload_len(header: &Header) -> u128 {
    let chunks = header.len.div_ceil(header.chunk_size) as u128;
    if chunks == 0 {
        return 0;
    }
    let tables = Grid::of(header.codec).tables() * TABLE_BYTES;
    tables as u128 + chunks * ENTRY_BYTES as u128 + code_budget(header.len, header.millibits)
}

/// The levels, steps, models and streams of one multiplier (steps 3–4); the encoder replaces
/// each chunk's step by its scale (step 7, [`fit`]) before it writes them.
struct Coded {
    steps: Vec<f32>,
    levels: Vec<i8>,
    models: Vec<Model>,
    streams: Vec<Vec<u8>>,
}

impl Coded {
    /// The streams' total bytes.
    fn bytes(&self) -> u128 {
        self.streams.iter().map(|s| s.len() as u128).sum()
    }

    /// Nothing sent: every step 0 (when even the coarsest grid does not fit).
    fn silent(grid: Grid, len: usize, chunks: usize) -> Self {
        Self {
            steps: vec![0.0; chunks],
            levels: vec![0; len],
            models: (0..grid.tables())
                .map(|_| Model::from_counts(&[0; SYMBOLS]))
                .collect(),
            streams: vec![Vec::new(); chunks],
        }
    }
}

/// Step 3's step for multiplier number `j` and a chunk of RMS `rms`, 0 if not a normal `f32`.
fn step(grid: Grid, j: usize, rms: f64) -> f32 {
    let step = (j as f64 / LADDER_DENOMINATOR * grid.share() * rms) as f32;
    if step.is_normal() { step } else { 0.0 }
}

/// Steps 3–4 for multiplier number `j`, over the rotated chunks and their RMS.
fn code(grid: Grid, rotated: &[f32], rms: &[f64], chunk: usize, j: usize) -> Coded {
    let steps: Vec<f32> = rms.iter().map(|&r| step(grid, j, r)).collect();
    let mut levels = vec![0i8; rotated.len()];
    levels
        .par_chunks_mut(chunk)
        .zip(rotated.par_chunks(chunk))
        .zip(steps.par_iter())
        .filter(|(_, s)| **s > 0.0)
        .for_each_init(Vec::new, |back, ((out, x), &s)| {
            grid.quantise(x, s, out, back)
        });
    let sent = || {
        levels
            .par_chunks(chunk)
            .zip(steps.par_iter())
            .filter(|(_, s)| **s > 0.0)
    };
    let counts = sent()
        .fold(
            || vec![[0u64; SYMBOLS]; grid.tables()],
            |mut counts, (qs, _)| {
                grid.contexts(qs, |t, s| counts[t][usize::from(s)] += 1);
                counts
            },
        )
        .reduce(
            || vec![[0u64; SYMBOLS]; grid.tables()],
            |a, b| {
                a.iter()
                    .zip(&b)
                    .map(|(a, b)| std::array::from_fn(|s| a[s] + b[s]))
                    .collect()
            },
        );
    let models: Vec<Model> = counts.iter().map(|c| Model::from_counts(c)).collect();
    let streams = levels
        .par_chunks(chunk)
        .zip(steps.par_iter())
        .map(|(qs, &s)| {
            if s > 0.0 {
                grid.stream(&models, qs)
            } else {
                Vec::new()
            }
        })
        .collect();
    Coded {
        steps,
        levels,
        models,
        streams,
    }
}

/// Step 5: the finest multiplier whose streams fit in `budget` bytes, coded.
fn rate_control(
    grid: Grid,
    rotated: &[f32],
    rms: &[f64],
    chunk: usize,
    budget: u128,
) -> Option<Coded> {
    let mut best = code(grid, rotated, rms, chunk, LADDER);
    if best.bytes() > budget {
        return None;
    }
    let (mut lo, mut hi) = (0, LADDER);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        let coded = code(grid, rotated, rms, chunk, mid);
        if coded.bytes() <= budget {
            (hi, best) = (mid, coded);
        } else {
            lo = mid;
        }
    }
    Some(best)
}

/// Steps 2–7: writes `acc` (the values after error feedback) into `payload` and leaves what
/// was lost in `acc`.
pub(crate) fn encode(header: &Header, acc: &mut [f32], payload: &mut [u8]) {
    if acc.is_empty() {
        return;
    }
    let (grid, chunk) = (Grid::of(header.codec), header.chunk_size);
    let mut rotated = acc.to_vec();
    rotated.par_chunks_mut(chunk).enumerate().for_each_init(
        Work::default,
        |work, (index, values)| {
            rotate::rotate_chunk(index, values, work);
        },
    );
    let rms: Vec<f64> = rotated
        .par_chunks(chunk)
        .map(|c| (c.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .collect();
    let budget = code_budget(header.len, header.millibits);
    let mut coded = rate_control(grid, &rotated, &rms, chunk, budget)
        .unwrap_or_else(|| Coded::silent(grid, acc.len(), rms.len()));
    coded
        .steps
        .par_iter_mut()
        .zip(rotated.par_chunks(chunk))
        .zip(coded.levels.par_chunks(chunk))
        .for_each(|((step, x), qs)| *step = fit(x, qs, *step));
    write(&coded, payload);
    acc.par_chunks_mut(chunk)
        .zip(rotated.par_chunks_mut(chunk))
        .zip(coded.levels.par_chunks(chunk))
        .zip(coded.steps.par_iter())
        .enumerate()
        .for_each_init(Work::default, |work, (index, (((acc, sent), qs), &s))| {
            reconstruct(qs, s, sent);
            // Finite inputs give finite reconstructions (|q| ≤ 63 and s ≤ Δ); were one to
            // overflow, the residual would turn non-finite and the next encoding would say so.
            rotate::unrotate_chunk(index, sent, work);
            acc.iter_mut().zip(sent.iter()).for_each(|(a, x)| *a -= x);
        });
}

/// Step 7's scale of a chunk: `Σ x q / Σ q²` over its rotated values `x` and their levels `q`
/// (in `f64`, in order), the `s` that leaves the least error `Σ (x − q s)²` for these levels;
/// `step` itself when that is not a normal `f32` in `(0, step)` (no non-zero level, a chunk
/// not sent). On the scalar grid every `q` has the sign of its `x`, so the fit is at least
/// `Δ / 2`; it exceeds `Δ` only when most values sit in the outer halves of their bins or are
/// clamped, and the cap keeps `|q · s| ≤ |x| + Δ / 2` there.
fn fit(rotated: &[f32], levels: &[i8], step: f32) -> f32 {
    let (xq, qq) = rotated
        .iter()
        .zip(levels)
        .fold((0.0f64, 0.0f64), |(xq, qq), (&x, &q)| {
            let q = f64::from(q);
            (xq + f64::from(x) * q, qq + q * q)
        });
    let scale = (xq / qq) as f32;
    if scale.is_normal() && (0.0..step).contains(&scale) {
        scale
    } else {
        step
    }
}

/// Step 6: the tables, the entries and the streams (`payload` starts zeroed).
fn write(coded: &Coded, payload: &mut [u8]) {
    let (tables, rest) = payload.split_at_mut(coded.models.len() * TABLE_BYTES);
    let freqs = coded.models.iter().flat_map(|m| m.freqs());
    for (dst, &f) in tables.chunks_exact_mut(2).zip(freqs) {
        dst.copy_from_slice(&(f as u16).to_le_bytes());
    }
    let (entries, mut rest) = rest.split_at_mut(coded.steps.len() * ENTRY_BYTES);
    for ((entry, &s), stream) in entries
        .chunks_exact_mut(ENTRY_BYTES)
        .zip(&coded.steps)
        .zip(&coded.streams)
    {
        entry[..4].copy_from_slice(&s.to_le_bytes());
        entry[4..].copy_from_slice(&(stream.len() as u32).to_le_bytes());
        let (dst, tail) = rest.split_at_mut(stream.len());
        dst.copy_from_slice(stream);
        rest = tail;
    }
}

/// Step 7 in the rotated coordinates: `q · s` for each level, zeros for a chunk not sent.
fn reconstruct(levels: &[i8], scale: f32, out: &mut [f32]) {
    for (v, &q) in out.iter_mut().zip(levels) {
        *v = if scale > 0.0 {
            f32::from(q) * scale
        } else {
            0.0
        };
    }
}

/// A packet's models, its chunks' scales and its chunks' streams.
type Parts<'a> = (Vec<Model>, Vec<f32>, Vec<&'a [u8]>);

/// Checks the tables and the entries of `payload` and cuts out each chunk's stream, or names
/// the first bad chunk.
fn split<'a>(
    header: &Header,
    grid: Grid,
    payload: &'a [u8],
) -> Result<Parts<'a>, (usize, &'static str)> {
    let chunks = header.len.div_ceil(header.chunk_size);
    let (tables, rest) = payload
        .split_at_checked(grid.tables() * TABLE_BYTES)
        .ok_or((0, "hent frequency table is cut short"))?;
    let models = tables
        .chunks_exact(TABLE_BYTES)
        .map(|table| {
            let freqs = table
                .chunks_exact(2)
                .map(|f| u32::from(u16::from_le_bytes([f[0], f[1]])));
            Model::from_freqs(freqs.collect()).map_err(|reason| (0, reason))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (entries, mut rest) = rest
        .split_at_checked(chunks * ENTRY_BYTES)
        .ok_or((0, "hent chunk entries are cut short"))?;
    let budget = code_budget(header.len, header.millibits);
    let (mut used, mut scales, mut streams) = (0u128, Vec::with_capacity(chunks), Vec::new());
    for (index, entry) in entries.chunks_exact(ENTRY_BYTES).enumerate() {
        let scale = read_scale(entry).map_err(|reason| (index, reason))?;
        let len = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]);
        if (scale == 0.0) != (len == 0) {
            return Err((
                index,
                "hent scale and stream length disagree on sending the chunk",
            ));
        }
        used += u128::from(len);
        if used > budget {
            return Err((index, "hent streams exceed the packet's bit budget"));
        }
        let (stream, tail) = rest
            .split_at_checked(len as usize)
            .ok_or((index, "hent stream runs past the payload"))?;
        scales.push(scale);
        streams.push(stream);
        rest = tail;
    }
    if rest.iter().any(|&byte| byte != 0) {
        return Err((chunks, "hent padding is not zero"));
    }
    Ok((models, scales, streams))
}

/// Decodes `payload` into `out` (zeroed, `header.len` values), or names the first bad chunk.
pub(crate) fn decode(
    header: &Header,
    payload: &[u8],
    out: &mut [f32],
) -> Result<(), (usize, &'static str)> {
    if out.is_empty() {
        return Ok(());
    }
    let grid = Grid::of(header.codec);
    let (models, scales, streams) = split(header, grid, payload)?;
    out.par_chunks_mut(header.chunk_size)
        .zip(scales.par_iter())
        .zip(streams.par_iter())
        .enumerate()
        .filter(|(_, ((_, s), _))| **s > 0.0)
        .map_init(
            || (Work::default(), Vec::new(), Vec::new()),
            |(work, symbols, levels), (index, ((values, &s), stream))| {
                symbols.resize(values.len(), 0);
                levels.resize(values.len(), 0);
                grid.read(&models, stream, symbols, levels)
                    .and_then(|()| {
                        reconstruct(levels, s, values);
                        rotate::unrotate_checked(index, values, work)
                    })
                    .map_err(|reason| (index, reason))
            },
        )
        .find_map_first(Result::err)
        .map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scalar grid's levels of `xs` at step 1.
    fn scalar(xs: &[f32]) -> Vec<i8> {
        let mut levels = vec![0; xs.len()];
        Grid::Scalar.quantise(xs, 1.0, &mut levels, &mut Vec::new());
        levels
    }

    #[test]
    fn the_grid_is_mid_tread_and_clamped() {
        let levels = scalar(&[0.0, 0.49, -0.5, 0.5, 1.5, -2.6, 100.0, -100.0]);
        assert_eq!(levels, [0, 0, 0, 0, 2, -3, 31, -31]);
        let mut symbols = Vec::new();
        Grid::Scalar.contexts(&levels, |t, s| symbols.push((t, s)));
        assert_eq!(symbols[4..], [(0, 33), (0, 28), (0, 62), (0, 0)]);
        let mut out = [9.0; 3];
        reconstruct(&[0, 2, -31], 0.5, &mut out);
        assert_eq!(out, [0.0, 1.0, -15.5]);
        reconstruct(&[9, 9, 9], 0.0, &mut out);
        assert_eq!(out, [0.0; 3]);
        assert_eq!(step(Grid::Scalar, 64, 2.0), 2.0);
        assert_eq!(
            step(Grid::Trellis, 64, 2.0),
            1.0,
            "a union's levels lie 2 steps apart"
        );
        assert_eq!(
            step(Grid::Scalar, 1, 1e-45),
            0.0,
            "a subnormal step is no step"
        );
        assert_eq!(
            step(Grid::Scalar, 1024, 1e38),
            0.0,
            "an overflowing step is no step"
        );
    }

    #[test]
    fn the_scale_is_the_least_squares_fit_within_the_step() {
        let x = [0.6, 0.8, -1.6, 0.1];
        // q = 1, 1, −2, 0: Σ x q = 0.6 + 0.8 + 3.2 = 4.6, Σ q² = 6.
        assert_eq!(fit(&x, &scalar(&x), 1.0), (4.6f64 / 6.0) as f32);
        let x = [1.4, 2.4, 0.2];
        assert_eq!(fit(&x, &scalar(&x), 1.0), 1.0, "capped at the step");
        let x = [0.3, -0.4];
        assert_eq!(fit(&x, &scalar(&x), 1.0), 1.0, "no non-zero level");
        assert_eq!(fit(&x, &[9, 9], 0.0), 0.0, "a chunk not sent");
    }

    #[test]
    fn a_trellis_chunk_reads_back_its_levels() {
        let x: Vec<f32> = (0..2000u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) >> 8) as f32 / 16_777_216.0 - 0.5) * 9.0)
            .collect();
        let mut levels = vec![0i8; x.len()];
        Grid::Trellis.quantise(&x, 0.4, &mut levels, &mut Vec::new());
        let mut counts = vec![[0u64; SYMBOLS]; 2];
        Grid::Trellis.contexts(&levels, |t, s| counts[t][usize::from(s)] += 1);
        assert!(
            counts.iter().all(|c| c.iter().sum::<u64>() > 500),
            "both unions are used"
        );
        let models: Vec<Model> = counts.iter().map(|c| Model::from_counts(c)).collect();
        let stream = Grid::Trellis.stream(&models, &levels);
        let (mut symbols, mut back) = (vec![0u8; x.len()], vec![0i8; x.len()]);
        Grid::Trellis
            .read(&models, &stream, &mut symbols, &mut back)
            .unwrap();
        assert_eq!(back, levels);
        // The same symbols read with the tables swapped are another path, or no path at all.
        let swapped = [models[1].freqs().to_vec(), models[0].freqs().to_vec()]
            .map(|f| Model::from_freqs(f).unwrap());
        let read = Grid::Trellis.read(&swapped, &stream, &mut symbols, &mut back);
        assert!(read.is_err() || back != levels);
    }

    #[test]
    fn rate_control_fills_the_budget_with_the_finest_step_that_fits() {
        let rotated: Vec<f32> = (0..4096u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) >> 8) as f32 / 16_777_216.0 - 0.5) * 4.0)
            .collect();
        let rms = vec![(4.0f64 / 3.0).sqrt(); 4];
        for grid in [Grid::Scalar, Grid::Trellis] {
            for budget in [300u128, 1000, 2000] {
                let coded = rate_control(grid, &rotated, &rms, 1024, budget).unwrap();
                assert!(coded.bytes() <= budget);
                let j = (1..=LADDER)
                    .find(|&j| coded.steps[0] == step(grid, j, rms[0]))
                    .unwrap();
                assert!(
                    code(grid, &rotated, &rms, 1024, j - 1).bytes() > budget,
                    "{grid:?} {budget}: {j}"
                );
            }
            assert!(
                rate_control(grid, &rotated, &rms, 1024, 15).is_none(),
                "4 chunks need 16 bytes"
            );
        }
    }
}
