//! Shard layout: the validation split, the token stream, fixed-size cuts and the on-disk bytes.
//!
//! A shard file is its tokens as little-endian integers of one [`TokenWidth`], nothing else, so
//! its BLAKE3 hash is the hash of its tokens. Training shards are `shard-NNNNN.bin`, validation
//! shards `val-NNNNN.bin`.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How many bytes each token takes on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenWidth {
    /// Little-endian `u16`: vocabularies of at most 65 536 ids.
    U16,
    /// Little-endian `u32`: larger vocabularies.
    U32,
}

impl TokenWidth {
    /// The narrowest width that holds every id of a `vocab_size` vocabulary.
    pub fn for_vocab(vocab_size: usize) -> Self {
        if vocab_size <= 1 << 16 {
            Self::U16
        } else {
            Self::U32
        }
    }

    /// Bytes per token.
    pub fn bytes(self) -> usize {
        match self {
            Self::U16 => 2,
            Self::U32 => 4,
        }
    }

    /// `tokens` as little-endian bytes of this width (each id must fit, see [`Self::for_vocab`]).
    pub fn encode(self, tokens: &[u32]) -> Vec<u8> {
        match self {
            Self::U16 => tokens
                .iter()
                .flat_map(|&t| {
                    assert!(t <= u32::from(u16::MAX), "token {t} does not fit in u16");
                    (t as u16).to_le_bytes()
                })
                .collect(),
            Self::U32 => tokens.iter().flat_map(|t| t.to_le_bytes()).collect(),
        }
    }

    /// The token at position `at` of a shard's bytes (the caller checks the bounds).
    pub fn read(self, bytes: &[u8], at: usize) -> u32 {
        match self {
            Self::U16 => u32::from(u16::from_le_bytes([bytes[2 * at], bytes[2 * at + 1]])),
            Self::U32 => {
                let b = &bytes[4 * at..4 * at + 4];
                u32::from_le_bytes([b[0], b[1], b[2], b[3]])
            }
        }
    }

    /// Number of tokens in `bytes`, or an error when the length is not a whole number of tokens.
    pub fn count(self, name: &str, bytes: &[u8]) -> Result<usize> {
        if !bytes.len().is_multiple_of(self.bytes()) {
            return Err(Error::Verify {
                failures: vec![format!(
                    "{name}: {} bytes is not a whole number of {}-byte tokens",
                    bytes.len(),
                    self.bytes()
                )],
            });
        }
        Ok(bytes.len() / self.bytes())
    }
}

/// The file name of training shard `index`.
pub fn train_name(index: usize) -> String {
    format!("shard-{index:05}.bin")
}

/// The file name of validation shard `index`.
pub fn validation_name(index: usize) -> String {
    format!("val-{index:05}.bin")
}

/// Tokens in one validation chunk: the validation split is drawn chunk by chunk from across the
/// whole corpus, so it samples every source and many documents rather than a few whole ones.
pub const VALIDATION_CHUNK_TOKENS: usize = 256;

/// Whether a chunk of tokens belongs to the validation split: the first 8 bytes of the BLAKE3
/// hash of its tokens (little-endian `u32`s), as a little-endian `u64`, fall below `fraction` of
/// the `u64` range. This depends on the chunk alone.
pub fn is_validation(chunk: &[u32], fraction: f64) -> bool {
    validation_key(chunk) < threshold(fraction)
}

fn validation_key(chunk: &[u32]) -> u64 {
    let bytes: Vec<u8> = chunk.iter().flat_map(|t| t.to_le_bytes()).collect();
    hash_key(&bytes)
}

/// The first 8 bytes of the BLAKE3 hash of `bytes`, as a little-endian `u64`.
fn hash_key(bytes: &[u8]) -> u64 {
    let hash = blake3::hash(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

fn threshold(fraction: f64) -> u64 {
    // Exact at both ends; in between, f64 → u64 rounding moves the cut by at most 2^11 of 2^64.
    if fraction >= 1.0 {
        u64::MAX
    } else {
        (fraction.max(0.0) * u64::MAX as f64) as u64
    }
}

/// The documents in the order of the hash of their text, a deterministic shuffle: a corpus read
/// source by source would otherwise give shards of one source each, and replicas that train on
/// different shards would learn different languages (DiLoCo wants every shard a fair sample).
pub fn shuffled(texts: &[&str]) -> Vec<usize> {
    let keys: Vec<u64> = texts.iter().map(|t| hash_key(t.as_bytes())).collect();
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| (keys[i], i));
    order
}

/// The two splits of the joined corpus `stream`: cut into chunks of
/// [`VALIDATION_CHUNK_TOKENS`], each goes to validation by [`is_validation`] and otherwise to
/// training, both in stream order. When `fraction` is positive but no chunk falls under it, the
/// chunk with the smallest key goes to validation, so there is always something to validate on
/// (given two chunks or more). Returns (training, validation, validation chunks).
pub fn split(stream: &[u32], fraction: f64) -> (Vec<u32>, Vec<u32>, usize) {
    let chunks: Vec<&[u32]> = stream.chunks(VALIDATION_CHUNK_TOKENS).collect();
    let keys: Vec<u64> = chunks.iter().map(|c| validation_key(c)).collect();
    let cut = threshold(fraction);
    let mut held: Vec<bool> = keys.iter().map(|&k| k < cut).collect();
    if fraction > 0.0 && chunks.len() > 1 && !held.contains(&true) {
        let smallest = (0..chunks.len()).min_by_key(|&i| (keys[i], i));
        held[smallest.expect("at least two chunks")] = true;
    }
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for (chunk, &held) in chunks.iter().zip(&held) {
        if held {
            validation.extend_from_slice(chunk);
        } else {
            train.extend_from_slice(chunk);
        }
    }
    let count = held.iter().filter(|&&h| h).count();
    (train, validation, count)
}

/// `stream` cut into the fewest pieces of at most `max` tokens, of equal length to within one
/// token (the longer ones first): a remainder shard would be trained on for several epochs in a
/// round that draws it, while the others are not finished once.
pub fn balanced_chunks(stream: &[u32], max: usize) -> impl ExactSizeIterator<Item = &[u32]> {
    let pieces = stream.len().div_ceil(max.max(1));
    let (base, longer) = (stream.len() / pieces.max(1), stream.len() % pieces.max(1));
    let mut rest = stream;
    (0..pieces).map(move |i| {
        let (piece, tail) = rest.split_at(base + usize::from(i < longer));
        rest = tail;
        piece
    })
}

/// The documents' tokens in order, each followed by `eos`.
pub fn join(documents: &[Vec<u32>], order: &[usize], eos: u32) -> Vec<u32> {
    let total = order.iter().map(|&i| documents[i].len() + 1).sum();
    let mut stream = Vec::with_capacity(total);
    for &i in order {
        stream.extend_from_slice(&documents[i]);
        stream.push(eos);
    }
    stream
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_round_trip() {
        let tokens = [0, 1, 65_535, 300];
        let bytes = TokenWidth::U16.encode(&tokens);
        assert_eq!(bytes.len(), 8);
        let back: Vec<u32> = (0..4).map(|i| TokenWidth::U16.read(&bytes, i)).collect();
        assert_eq!(back, tokens);
        let wide = [70_000, 1];
        let bytes = TokenWidth::U32.encode(&wide);
        assert_eq!(TokenWidth::U32.read(&bytes, 0), 70_000);
        assert_eq!(TokenWidth::for_vocab(65_536), TokenWidth::U16);
        assert_eq!(TokenWidth::for_vocab(65_537), TokenWidth::U32);
        assert!(TokenWidth::U16.count("x", &[0, 1, 2]).is_err());
    }

    #[test]
    fn split_is_by_chunk_and_roughly_the_fraction() {
        let stream: Vec<u32> = (0..VALIDATION_CHUNK_TOKENS as u32 * 5000).collect();
        let (train, val, count) = split(&stream, 0.02);
        assert_eq!(train.len() + val.len(), stream.len());
        assert_eq!(val.len(), count * VALIDATION_CHUNK_TOKENS);
        assert!((60..=140).contains(&count), "{count} validation chunks");
        // Every held-out chunk is one is_validation picks, and none of it reaches training.
        for chunk in val.chunks(VALIDATION_CHUNK_TOKENS) {
            assert!(is_validation(chunk, 0.02));
            assert!(!train.contains(&chunk[0]));
        }
        // Chunks are drawn from across the stream, not from one end of it.
        let first_half = val
            .iter()
            .filter(|&&t| (t as usize) < stream.len() / 2)
            .count();
        let share = first_half as f64 / val.len() as f64;
        assert!(
            (0.3..=0.7).contains(&share),
            "{share} of the split from the first half"
        );
    }

    #[test]
    fn documents_are_shuffled_the_same_way_every_time() {
        // Two "sources" read one after the other, as the corpus reader does.
        let docs: Vec<String> = (0..400)
            .map(|i| format!("{} {i}", if i < 200 { "play" } else { "news" }))
            .collect();
        let texts: Vec<&str> = docs.iter().map(String::as_str).collect();
        let order = shuffled(&texts);
        assert_eq!(order, shuffled(&texts));
        let plays = order[..200].iter().filter(|&&i| i < 200).count();
        assert!((60..=140).contains(&plays), "{plays} of 200 are plays");
    }

    #[test]
    fn split_keeps_at_least_one_validation_chunk() {
        let stream: Vec<u32> = (0..3 * VALIDATION_CHUNK_TOKENS as u32).collect();
        let (train, val, count) = split(&stream, 1e-9);
        assert_eq!(
            (train.len(), val.len(), count),
            (
                stream.len() - VALIDATION_CHUNK_TOKENS,
                VALIDATION_CHUNK_TOKENS,
                1
            )
        );
        assert!(split(&stream, 0.0).1.is_empty());
    }

    #[test]
    fn balanced_chunks_are_few_equal_and_cover_the_stream() {
        let lengths = |len: u32, max| {
            let stream: Vec<u32> = (0..len).collect();
            let pieces: Vec<&[u32]> = balanced_chunks(&stream, max).collect();
            assert_eq!(pieces.concat(), stream);
            pieces.iter().map(|p| p.len()).collect::<Vec<_>>()
        };
        assert_eq!(lengths(10, 4), [4, 3, 3]);
        assert_eq!(balanced_chunks(&[0; 10], 4).len(), 3);
        assert_eq!(
            lengths(3_103_177, 1_000_000),
            [775_795, 775_794, 775_794, 775_794]
        );
        assert_eq!(lengths(8, 4), [4, 4]);
        assert_eq!(lengths(3, 10), [3]);
        assert!(lengths(0, 10).is_empty());
    }

    #[test]
    fn join_terminates_every_document() {
        let docs = vec![vec![5, 6], vec![], vec![7]];
        assert_eq!(join(&docs, &[2, 0], 1), vec![7, 1, 5, 6, 1]);
    }
}
