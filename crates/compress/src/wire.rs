//! The versioned, checksummed wire format and its header.
//!
//! A packet is, in order (all integers little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `b"NSPG"` (NeuroShard pseudo-gradient) |
//! | 1 | format version, 1 |
//! | 1 | codec id: index in [`Codec::ALL`] (`none` 0, `int8` 1, `int4` 2, `sign` 3, `topk` 4, `topk-int8` 5, `topk-int4` 6, `topk-sign` 7, `topk-int2` 8, `int2` 9, `ternary` 10, `hint2` 11, `hbits` 12, `hent` 13, `htcq` 14) |
//! | 2 | reserved, 0 |
//! | 4 | chunk size `C`, in `1..=65536` |
//! | 4 | values kept per full chunk `k`: `1..=C` for top-k codecs; for `hbits`, `hent` and `htcq` its budget in thousandths of a bit per value, `1..=8000`; 0 for the other dense codecs |
//! | 8 | number of parameters `n` |
//! | … | payload: `ceil(n / C)` chunks back to back |
//! | 32 | BLAKE3 of everything before it |
//!
//! A chunk of `m` values (`m = C` except perhaps the last) keeps `m' = min(k, m)` values under a
//! top-k codec (`m' = m` otherwise) and is laid out as: for top-k codecs, `m'` offsets within
//! the chunk, strictly increasing, each in `b` bits packed least significant bit first into
//! `ceil(m' · b / 8)` bytes whose pad bits are 0 (`b = 16`, so plain little-endian `u16`s, for
//! `topk`, `topk-int8`, `topk-int4` and `topk-sign`; `b = ceil(log2 C)`, at least 1, for
//! `topk-int2`, 12 bits at `C = 4096`); then the value format's bytes for `m'` values (see
//! [`crate::quant`]; `hint2` writes int2's bytes of the chunk rotated as in [`crate::rotate`],
//! which needs nothing on the wire but the chunk's number). `hbits` lays out its payload by
//! each chunk's width instead: a table of one width byte per chunk, then each chunk's bytes at
//! its width, then zero padding to a length that follows from the header (see
//! [`crate::budget`]). `hent` lays out its payload as a frequency table, a scale and a stream
//! length per chunk, the chunks' entropy-coded streams, then zero padding to a length that
//! follows from the header (see [`crate::entropy`]); `htcq` the same with two frequency tables,
//! the even levels' then the odd levels'. Codec ids 8 (`topk-int2`), 9 (`int2`), 10
//! (`ternary`), 11 (`hint2`), 12 (`hbits`), 13 (`hent`) and 14 (`htcq`) were added to version
//! 1: a build that predates one refuses its packets as an unknown codec. Every chunk's size follows
//! from the header, so the total length is checked against the byte count before anything is
//! allocated, and chunks decode independently.

use std::fmt;

use neuroshard_primitives::Hash;

use crate::config::MAX_CHUNK_SIZE;
use crate::{Codec, CompressConfig, Error, Result};
use crate::{budget, entropy};

/// The first four bytes of every packet.
pub const MAGIC: [u8; 4] = *b"NSPG";
/// The format version this build writes and reads.
pub const VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 24;
/// Bytes of the trailing BLAKE3 checksum.
pub const CHECKSUM_LEN: usize = 32;

/// What a packet's header declares: enough to size and parse its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The codec the payload is written in.
    pub codec: Codec,
    /// Values per chunk.
    pub chunk_size: usize,
    /// Values kept per full chunk by a top-k codec; 0 for the dense codecs.
    pub topk_per_chunk: usize,
    /// The bit budget of `hbits` and `hent`, in thousandths of a bit per value; 0 for the other
    /// codecs.
    pub millibits: usize,
    /// Number of parameters in the vector.
    pub len: usize,
}

impl Header {
    /// The header for encoding `len` values under `cfg` (which must be valid).
    pub(crate) fn for_config(cfg: &CompressConfig, len: usize) -> Self {
        let k = if cfg.codec.is_topk() {
            cfg.topk_per_chunk()
        } else {
            0
        };
        let millibits = if cfg.codec.has_bit_budget() {
            cfg.budget_millibits()
        } else {
            0
        };
        Self {
            codec: cfg.codec,
            chunk_size: cfg.chunk_size,
            topk_per_chunk: k,
            millibits,
            len,
        }
    }

    /// Values kept from a chunk of `m` values.
    pub(crate) fn kept(&self, m: usize) -> usize {
        if self.codec.is_topk() {
            self.topk_per_chunk.min(m)
        } else {
            m
        }
    }

    /// Payload bytes of a chunk of `m` values.
    pub(crate) fn chunk_bytes(&self, m: usize) -> usize {
        let kept = self.kept(m);
        self.offset_bytes(kept) + self.codec.value_format().bytes(kept)
    }

    /// Bits per top-k offset in this packet's chunks.
    pub(crate) fn offset_bits(&self) -> usize {
        self.codec.offset_bits(self.chunk_size)
    }

    /// Bytes of the packed offsets of `kept` values (0 for a dense codec).
    pub(crate) fn offset_bytes(&self, kept: usize) -> usize {
        if self.codec.is_topk() {
            (kept * self.offset_bits()).div_ceil(8)
        } else {
            0
        }
    }

    /// The whole packet's length in bytes, computed without overflow.
    fn packet_len_u128(&self) -> u128 {
        let fixed = (HEADER_LEN + CHECKSUM_LEN) as u128;
        match self.codec {
            Codec::HBits => return fixed + budget::payload_len(self),
            Codec::HEnt | Codec::HTcq => return fixed + entropy::payload_len(self),
            _ => {}
        }
        let full = (self.len / self.chunk_size) as u128;
        let last = self.len % self.chunk_size;
        let last_bytes = if last == 0 {
            0
        } else {
            self.chunk_bytes(last) as u128
        };
        let payload = full * self.chunk_bytes(self.chunk_size) as u128 + last_bytes;
        fixed + payload
    }

    /// The whole packet's length in bytes: header, payload and checksum.
    ///
    /// Panics if the packet could not be held in memory, which a vector that is held cannot
    /// cause (every codec takes at most 4 bytes per value plus small per-chunk overheads).
    pub fn packet_len(&self) -> usize {
        usize::try_from(self.packet_len_u128()).expect("packet of an in-memory vector fits usize")
    }

    /// Writes the header's bytes.
    pub(crate) fn write(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..4].copy_from_slice(&MAGIC);
        out[4] = VERSION;
        out[5] = self.codec.id();
        out[6..8].copy_from_slice(&[0, 0]);
        out[8..12].copy_from_slice(&(self.chunk_size as u32).to_le_bytes());
        let slot = if self.codec.has_bit_budget() {
            self.millibits
        } else {
            self.topk_per_chunk
        };
        out[12..16].copy_from_slice(&(slot as u32).to_le_bytes());
        out[16..24].copy_from_slice(&(self.len as u64).to_le_bytes());
    }

    /// Parses and range-checks a header (not yet the length or checksum).
    fn parse(bytes: &[u8; HEADER_LEN], max_len: usize) -> Result<Self> {
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        if bytes[0..4] != MAGIC {
            return Err(Error::BadMagic);
        }
        if bytes[4] != VERSION {
            return Err(Error::UnsupportedVersion(bytes[4]));
        }
        let codec = Codec::from_id(bytes[5]).ok_or(Error::UnknownCodecId(bytes[5]))?;
        let reserved = u16::from_le_bytes([bytes[6], bytes[7]]);
        check(reserved == 0, "reserved", reserved.into(), "0")?;
        let chunk = u32_at(8);
        let chunk_ok = (1..=MAX_CHUNK_SIZE as u64).contains(&u64::from(chunk));
        check(chunk_ok, "chunk_size", chunk.into(), "in 1..=65536")?;
        let k = u32_at(12);
        let mut millibits = 0;
        if codec.has_bit_budget() {
            let max = u32::from(CompressConfig::MAX_BITS) * 1000;
            check((1..=max).contains(&k), "millibits", k.into(), "in 1..=8000")?;
            millibits = k as usize;
        } else if codec.is_topk() {
            check(
                (1..=chunk).contains(&k),
                "topk_per_chunk",
                k.into(),
                "in 1..=chunk_size",
            )?;
        } else {
            check(k == 0, "topk_per_chunk", k.into(), "0 for a dense codec")?;
        }
        let declared = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
        let len = usize::try_from(declared)
            .ok()
            .filter(|&n| n <= max_len)
            .ok_or(Error::TooManyParameters {
                declared,
                max: max_len,
            })?;
        Ok(Self {
            codec,
            chunk_size: chunk as usize,
            topk_per_chunk: if codec.is_topk() { k as usize } else { 0 },
            millibits,
            len,
        })
    }
}

/// Returns a header-field error unless `ok`.
fn check(ok: bool, field: &'static str, value: u64, expected: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::BadHeader {
            field,
            value,
            expected,
        })
    }
}

/// Checks a packet's header, length and checksum, and returns the header and the payload.
///
/// `max_len` is the most parameters the caller accepts; a packet declaring more is rejected
/// before anything is allocated.
pub(crate) fn open(bytes: &[u8], max_len: usize) -> Result<(Header, &[u8])> {
    let min = HEADER_LEN + CHECKSUM_LEN;
    let head: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .filter(|_| bytes.len() >= min)
        .and_then(|h| h.try_into().ok())
        .ok_or(Error::TooShort {
            got: bytes.len(),
            min,
        })?;
    let header = Header::parse(head, max_len)?;
    let expected = header.packet_len_u128();
    if expected != bytes.len() as u128 {
        let expected = u64::try_from(expected).unwrap_or(u64::MAX);
        return Err(Error::LengthMismatch {
            got: bytes.len(),
            expected,
        });
    }
    let (body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    if Hash::of(body).0 != checksum {
        return Err(Error::BadChecksum);
    }
    Ok((header, &body[HEADER_LEN..]))
}

/// Checks a packet's header, length and checksum without decoding its payload.
///
/// Cheap next to [`crate::decode`] (one hash pass, no allocation): use it to learn a packet's
/// codec and parameter count, or to reject it early.
pub fn inspect(bytes: &[u8], max_len: usize) -> Result<Header> {
    open(bytes, max_len).map(|(header, _)| header)
}

/// Writes the checksum over everything before the last [`CHECKSUM_LEN`] bytes into them.
pub(crate) fn seal(bytes: &mut [u8]) {
    let (body, checksum) = bytes.split_at_mut(bytes.len() - CHECKSUM_LEN);
    checksum.copy_from_slice(&Hash::of(body).0);
}

/// An encoded pseudo-gradient: the bytes to send, and the header they declare.
#[derive(Clone, PartialEq, Eq)]
pub struct Packet {
    header: Header,
    bytes: Vec<u8>,
}

impl Packet {
    /// Wraps bytes that [`crate::encode`] has laid out and sealed.
    pub(crate) fn new(header: Header, bytes: Vec<u8>) -> Self {
        debug_assert_eq!(
            bytes.len(),
            header.packet_len(),
            "packet sized by its header"
        );
        Self { header, bytes }
    }

    /// What the packet's header declares.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The bytes to send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes to send, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Size on the wire, in bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// The BLAKE3 hash of the whole packet: the name peers fetch it by.
    pub fn hash(&self) -> Hash {
        Hash::of(&self.bytes)
    }
}

impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packet")
            .field("header", &self.header)
            .field("bytes", &self.bytes.len())
            .field("hash", &self.hash())
            .finish()
    }
}

impl AsRef<[u8]> for Packet {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}
