//! A static rANS entropy coder over a small alphabet, in integer arithmetic only.
//!
//! Range asymmetric numeral systems (Duda 2013) with byte-wise renormalisation (the layout of
//! Giesen's `ryg_rans`): one `u32` state, a frequency table whose entries sum to
//! `2^PROB_BITS`, bytes emitted while encoding backwards so that decoding reads forwards. Only
//! integer operations touch the state, so every machine writes and reads the same bytes.
//!
//! # Steps
//!
//! 1. The model: symbol counts are normalised to frequencies `f_s` summing to `M = 2^14`
//!    (`Model::from_counts`): `f_s = max(1, floor(c_s · M / Σc))` for every symbol that
//!    occurs, 0 for the others, then the difference to `M` is added to the largest frequency
//!    (the lowest symbol on ties). `F_s = Σ_{t<s} f_t` is symbol `s`'s start.
//! 2. Encoding, symbols last to first, from the state `x = 2^23`: while
//!    `x ≥ 2^17 · f_s`, emit `x mod 256` and set `x ← floor(x / 256)`; then
//!    `x ← floor(x / f_s) · M + (x mod f_s) + F_s`. At the end emit `x`'s four bytes.
//! 3. The stream is the emitted bytes in reverse: the final state as a big-endian `u32`, then
//!    the renormalisation bytes in the order the decoder reads them.
//! 4. Decoding: read the state, then for each symbol take the slot `x mod M`, the symbol `s`
//!    with `F_s ≤ slot < F_s + f_s`, set `x ← f_s · floor(x / M) + slot − F_s`, and while
//!    `x < 2^23` read a byte: `x ← 256 · x + byte`.
//!
//! A stream may change tables from one symbol to the next (`htcq` codes each symbol under the
//! table of its trellis state's union): the encoder is told each symbol's table, the decoder
//! the next symbol's once it has read the one before, and steps 2 and 4 use that table's `f_s`
//! and `F_s`.
//!
//! The decoder rejects a frequency table that does not sum to `M`, a start state outside
//! `[2^23, 2^31)`, a stream that runs out of bytes, and one that ends with bytes left or a
//! state other than `2^23` (what the encoder started from): a well-formed stream of the
//! declared number of symbols is the only thing that decodes. Each symbol reads at most three
//! bytes, so decoding stops after at most `symbols + bytes` steps.

/// Bits of the frequency total `M`.
const PROB_BITS: u32 = 14;
/// The frequency total `M`.
const TOTAL: u32 = 1 << PROB_BITS;
/// The lower bound of a normalised state, and the encoder's start state.
const LOW: u32 = 1 << 23;
/// Bytes of the state that opens every stream.
pub(crate) const STATE_BYTES: usize = 4;

/// A frequency table: each symbol's frequency and start, summing to `2^14`, and the symbol of
/// each slot.
#[derive(Debug)]
pub(crate) struct Model {
    freqs: Vec<u32>,
    starts: Vec<u32>,
    slots: Vec<u8>,
}

impl Model {
    /// The most symbols a model holds: enough slack for step 1's correction to stay positive.
    pub(crate) const MAX_SYMBOLS: usize = 64;

    /// Step 1: the model of `counts` (at most [`Model::MAX_SYMBOLS`] symbols).
    pub(crate) fn from_counts(counts: &[u64]) -> Self {
        assert!(counts.len() <= Self::MAX_SYMBOLS, "a small alphabet");
        let total: u128 = counts.iter().map(|&c| u128::from(c)).sum();
        let mut freqs: Vec<u32> = counts
            .iter()
            .map(|&c| match c {
                0 => 0,
                c => (u128::from(c) * u128::from(TOTAL) / total).max(1) as u32,
            })
            .collect();
        let sum: u32 = freqs.iter().sum();
        // The first largest frequency takes the difference: at least M / 64 = 256 against a
        // difference of at most 64 either way (or the whole of M for no counts at all).
        let top = (0..freqs.len())
            .max_by_key(|&s| (freqs[s], std::cmp::Reverse(s)))
            .expect("a non-empty alphabet");
        freqs[top] = freqs[top] + TOTAL - sum;
        Self::from_freqs(freqs).expect("normalised counts sum to the total")
    }

    /// A model from frequencies read from a peer, or what is wrong with them.
    pub(crate) fn from_freqs(freqs: Vec<u32>) -> Result<Self, &'static str> {
        let mut starts = Vec::with_capacity(freqs.len());
        let mut sum = 0u32;
        for &f in &freqs {
            starts.push(sum);
            sum = sum
                .checked_add(f)
                .filter(|&s| s <= TOTAL)
                .ok_or("entropy-code frequencies exceed the total")?;
        }
        if sum != TOTAL || freqs.len() > Self::MAX_SYMBOLS {
            return Err("entropy-code frequencies do not sum to the total");
        }
        let mut slots = Vec::with_capacity(TOTAL as usize);
        for (s, &f) in freqs.iter().enumerate() {
            slots.extend(std::iter::repeat_n(s as u8, f as usize));
        }
        Ok(Self {
            freqs,
            starts,
            slots,
        })
    }

    /// Each symbol's frequency, summing to `2^14`.
    pub(crate) fn freqs(&self) -> &[u32] {
        &self.freqs
    }
}

/// Steps 2–3: the stream of `symbols` (each with a non-zero frequency), symbol `i` under
/// `model(i)`, into `out` (cleared first).
pub(crate) fn encode<'m>(symbols: &[u8], model: impl Fn(usize) -> &'m Model, out: &mut Vec<u8>) {
    out.clear();
    let mut x = LOW;
    for (i, &s) in symbols.iter().enumerate().rev() {
        let model = model(i);
        let (f, start) = (model.freqs[usize::from(s)], model.starts[usize::from(s)]);
        debug_assert!(f > 0, "every encoded symbol was counted");
        let limit = ((LOW >> PROB_BITS) << 8) * f;
        while x >= limit {
            out.push(x as u8);
            x >>= 8;
        }
        x = ((x / f) << PROB_BITS) + (x % f) + start;
    }
    out.extend_from_slice(&x.to_le_bytes());
    out.reverse();
}

/// Step 4: reads `symbols.len()` symbols from `bytes`, the first under `first` and each later
/// one under the model `after` gives for the symbol before it, or says what is wrong.
pub(crate) fn decode<'m>(
    bytes: &[u8],
    symbols: &mut [u8],
    first: &'m Model,
    mut after: impl FnMut(u8) -> &'m Model,
) -> Result<(), &'static str> {
    let (state, mut rest) = bytes
        .split_first_chunk::<STATE_BYTES>()
        .ok_or("entropy-code stream is shorter than its state")?;
    let mut x = u32::from_be_bytes(*state);
    if !(LOW..LOW << 8).contains(&x) {
        return Err("entropy-code start state is out of range");
    }
    let mut model = first;
    for sym in symbols.iter_mut() {
        let slot = x & (TOTAL - 1);
        let s = model.slots[slot as usize];
        let (f, start) = (model.freqs[usize::from(s)], model.starts[usize::from(s)]);
        // x < 2^31, so f · (x / M) ≤ 2^31 and the sum stays below 2^32.
        x = f * (x >> PROB_BITS) + slot - start;
        while x < LOW {
            let (&byte, tail) = rest.split_first().ok_or("entropy-code stream ends early")?;
            x = (x << 8) | u32::from(byte);
            rest = tail;
        }
        *sym = s;
        model = after(s);
    }
    if !rest.is_empty() || x != LOW {
        return Err("entropy-code stream does not end where its symbols do");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(counts: &[u64], symbols: &[u8]) -> Vec<u8> {
        let model = Model::from_counts(counts);
        let mut stream = Vec::new();
        encode(symbols, |_| &model, &mut stream);
        let mut back = vec![0u8; symbols.len()];
        decode(&stream, &mut back, &model, |_| &model).unwrap();
        assert_eq!(back, symbols);
        stream
    }

    #[test]
    fn counts_normalise_to_the_total() {
        let model = Model::from_counts(&[1, 0, 1_000_000, 3]);
        assert_eq!(model.freqs(), [1, 0, 16_382, 1]);
        assert_eq!(Model::from_counts(&[0, 0]).freqs(), [TOTAL, 0]);
        assert_eq!(Model::from_counts(&[5, 5, 5, 5]).freqs(), [4096; 4]);
    }

    #[test]
    fn streams_round_trip_near_their_entropy() {
        // A skewed source: 3 of 4 symbols are 1; entropy ≈ 1.06 bits per symbol.
        let symbols: Vec<u8> = (0..4000u32)
            .map(|i| match i.wrapping_mul(2_654_435_761) >> 28 {
                0..=11 => 1,
                12 | 13 => 0,
                _ => 2,
            })
            .collect();
        let mut counts = [0u64; 3];
        symbols.iter().for_each(|&s| counts[usize::from(s)] += 1);
        let stream = round_trip(&counts, &symbols);
        let bits = 8.0 * stream.len() as f64 / symbols.len() as f64;
        assert!((1.0..1.12).contains(&bits), "{bits} bits per symbol");
        // One symbol holding the whole total costs nothing but the state.
        assert_eq!(round_trip(&[0, 9], &[1; 9]).len(), STATE_BYTES);
        assert_eq!(round_trip(&[1], &[]).len(), STATE_BYTES);
    }

    #[test]
    fn malformed_streams_are_rejected() {
        let model = Model::from_counts(&[1, 1]);
        let mut stream = Vec::new();
        encode(
            &[0, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1],
            |_| &model,
            &mut stream,
        );
        let mut out = [0u8; 12];
        assert!(decode(&stream, &mut out, &model, |_| &model).is_ok());
        let mut longer = stream.clone();
        longer.push(0);
        for (bad, why) in [
            (&stream[..3], "shorter than its state"),
            (&longer[..], "does not end"),
            (&[0, 0, 0, 0][..], "out of range"),
        ] {
            assert!(
                decode(bad, &mut out, &model, |_| &model)
                    .unwrap_err()
                    .contains(why)
            );
        }
        // More symbols than were written run out of bytes or end in the wrong state.
        let mut more = [0u8; 40];
        assert!(decode(&stream, &mut more, &model, |_| &model).is_err());
        assert!(Model::from_freqs(vec![TOTAL, 1]).is_err());
        assert!(Model::from_freqs(vec![TOTAL - 1]).is_err());
        assert!(Model::from_freqs(vec![u32::MAX, 2]).is_err());
    }
}
