//! Codec names and parameters: what the simulation and the genesis file choose by name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The largest chunk: top-k offsets inside a chunk are stored as `u16`.
pub const MAX_CHUNK_SIZE: usize = 1 << 16;

/// A pseudo-gradient codec, named as on the command line and in genesis files.
///
/// Each codec is a *selection* (all values, or the top k per chunk) followed by a *value format*
/// (f32, int8, int4, int2, ternary or sign). See the crate docs for the maths of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Codec {
    /// Every value as a little-endian `f32`: 4 bytes per parameter, lossless.
    None,
    /// Every value as `i8` with one `f32` scale per chunk.
    Int8,
    /// Every value as a 4-bit integer with one `f32` scale per chunk.
    Int4,
    /// Every value's sign (1 bit) with one `f32` scale per chunk, the chunk's mean |x|.
    Sign,
    /// The k largest-magnitude values per chunk, as `u16` offsets and `f32` values.
    #[serde(rename = "topk")]
    TopK,
    /// Top-k per chunk, the selected values as `i8` with one scale per chunk.
    #[serde(rename = "topk-int8")]
    TopKInt8,
    /// Top-k per chunk, the selected values as 4-bit integers with one scale per chunk.
    #[serde(rename = "topk-int4")]
    TopKInt4,
    /// Top-k per chunk, the selected values' signs with one scale per chunk.
    #[serde(rename = "topk-sign")]
    TopKSign,
    /// Top-k per chunk with offsets packed in `ceil(log2 C)` bits, the selected values as 2-bit
    /// codes (four levels, no zero) with one scale per chunk: the SparseLoCo recipe.
    #[serde(rename = "topk-int2")]
    TopKInt2,
    /// Every value as a 2-bit code (four levels, no zero) with one scale per chunk: half of
    /// int4's bytes, for long rounds whose Δ is dense.
    Int2,
    /// Every value as `−s`, 0 or `s` with one scale `s` per chunk, five values to a byte.
    Ternary,
    /// int2 after a random rotation of each chunk (random signs, then a Walsh–Hadamard
    /// transform; see [`crate::rotate`]): int2's bytes, with every chunk made bell-shaped first.
    #[serde(rename = "hint2")]
    HInt2,
    /// Every chunk rotated as in `hint2`, then written with its own width of 0 to 8 bits per
    /// value, more bits to the chunks with more energy, under a fixed budget of bits per value
    /// for the whole vector (see [`crate::budget`]).
    #[serde(rename = "hbits")]
    HBits,
    /// Every chunk rotated as in `hint2`, then written on a uniform grid with a zero level whose
    /// step is one multiple of each chunk's RMS for the whole vector, the symbols entropy-coded
    /// (rANS) and the multiple chosen so that the codes fill a fixed budget of bits per value
    /// (see [`crate::entropy`]).
    #[serde(rename = "hent")]
    HEnt,
    /// `hent` with each chunk's levels chosen on an eight-state trellis (trellis-coded
    /// quantisation: a Viterbi search per chunk, two frequency tables) instead of one by one:
    /// about a fifth less error at the same budget (see [`crate::trellis`]).
    #[serde(rename = "htcq")]
    HTcq,
}

/// How the values a codec keeps are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueFormat {
    /// Little-endian `f32`.
    F32,
    /// Symmetric integers in `[-127, 127]` times a per-chunk step.
    Int8,
    /// Symmetric integers in `[-7, 7]` times a per-chunk step, two per byte.
    Int4,
    /// Odd integers in `{-3, -1, 1, 3}` times a per-chunk step, four per byte.
    Int2,
    /// int2's codes, with the scale chosen among wider clipping candidates: for rotated chunks,
    /// whose values are bell-shaped.
    Int2Wide,
    /// `{-1, 0, 1}` times a per-chunk scale, five per byte in base 3.
    Ternary,
    /// One bit per value (1 = negative) times a per-chunk scale.
    Sign,
    /// `b` bits per value (`b` in `0..=8`): the odd integers in `[-(2^b − 1), 2^b − 1]` times
    /// a per-chunk step, with the wider clipping candidates; no bytes at all for `b = 0`.
    Uniform(u8),
}

impl Codec {
    /// Every codec, in wire-id order.
    pub const ALL: [Codec; 15] = [
        Codec::None,
        Codec::Int8,
        Codec::Int4,
        Codec::Sign,
        Codec::TopK,
        Codec::TopKInt8,
        Codec::TopKInt4,
        Codec::TopKSign,
        Codec::TopKInt2,
        Codec::Int2,
        Codec::Ternary,
        Codec::HInt2,
        Codec::HBits,
        Codec::HEnt,
        Codec::HTcq,
    ];

    /// The codec's name, as parsed by [`Codec::from_str`].
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Int8 => "int8",
            Codec::Int4 => "int4",
            Codec::Sign => "sign",
            Codec::TopK => "topk",
            Codec::TopKInt8 => "topk-int8",
            Codec::TopKInt4 => "topk-int4",
            Codec::TopKSign => "topk-sign",
            Codec::TopKInt2 => "topk-int2",
            Codec::Int2 => "int2",
            Codec::Ternary => "ternary",
            Codec::HInt2 => "hint2",
            Codec::HBits => "hbits",
            Codec::HEnt => "hent",
            Codec::HTcq => "htcq",
        }
    }

    /// Whether the codec sends only the top k values of each chunk.
    pub fn is_topk(self) -> bool {
        matches!(
            self,
            Codec::TopK | Codec::TopKInt8 | Codec::TopKInt4 | Codec::TopKSign | Codec::TopKInt2
        )
    }

    /// Whether each chunk is rotated before its values are written ([`crate::rotate`]).
    pub fn is_rotated(self) -> bool {
        matches!(
            self,
            Codec::HInt2 | Codec::HBits | Codec::HEnt | Codec::HTcq
        )
    }

    /// Whether each chunk's width is chosen by the encoder under a bit budget
    /// ([`crate::budget`]): the payload is then laid out by the chunks' widths, not the header.
    pub fn allocates_bits(self) -> bool {
        matches!(self, Codec::HBits)
    }

    /// Whether the header carries a budget of bits per value (`hbits`, `hent`, `htcq`): the
    /// payload then has a fixed length set by the budget, and the codec's own layout within it.
    pub fn has_bit_budget(self) -> bool {
        matches!(self, Codec::HBits | Codec::HEnt | Codec::HTcq)
    }

    /// The codec's id on the wire (its index in [`Codec::ALL`]).
    pub(crate) fn id(self) -> u8 {
        Codec::ALL
            .iter()
            .position(|&c| c == self)
            .expect("every codec is in Codec::ALL") as u8
    }

    /// Bits each top-k offset takes within a chunk of `chunk` values: a whole `u16` for the
    /// first top-k codecs, `ceil(log2 chunk)` (at least 1) for `topk-int2`.
    pub(crate) fn offset_bits(self, chunk: usize) -> usize {
        match self {
            Codec::TopKInt2 => {
                (usize::BITS - chunk.saturating_sub(1).leading_zeros()).max(1) as usize
            }
            _ => 16,
        }
    }

    /// The codec with wire id `id`, if any.
    pub(crate) fn from_id(id: u8) -> Option<Codec> {
        Codec::ALL.get(usize::from(id)).copied()
    }

    /// How the kept values are written.
    pub(crate) fn value_format(self) -> ValueFormat {
        match self {
            Codec::None | Codec::TopK => ValueFormat::F32,
            Codec::Int8 | Codec::TopKInt8 => ValueFormat::Int8,
            Codec::Int4 | Codec::TopKInt4 => ValueFormat::Int4,
            Codec::Sign | Codec::TopKSign => ValueFormat::Sign,
            Codec::Int2 | Codec::TopKInt2 => ValueFormat::Int2,
            Codec::Ternary => ValueFormat::Ternary,
            Codec::HInt2 => ValueFormat::Int2Wide,
            // Each hbits chunk carries its own width, hent's and htcq's symbols have none; they
            // lay out their payloads themselves, and 2 bits is the budget's nominal width.
            Codec::HBits | Codec::HEnt | Codec::HTcq => ValueFormat::Uniform(2),
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Codec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Codec::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| Error::UnknownCodec(s.to_owned()))
    }
}

/// A codec and its parameters.
///
/// Text form (for flags and genesis files): the codec name, optionally followed by
/// `:chunk=N,k=F,decay=B,bits=R`, for example `topk-int8` or `topk-int2:chunk=4096,k=0.02,decay=0.9`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompressConfig {
    /// Which codec to use.
    pub codec: Codec,
    /// Values per chunk: each chunk has its own scale and its own top-k, in `1..=65536`.
    pub chunk_size: usize,
    /// Fraction of each chunk kept by the top-k codecs, in `(0, 1]`; ignored by the others.
    pub topk_fraction: f32,
    /// Error-feedback decay `β` in `[0, 1]`: the share of the residual carried into the next
    /// encoding (see [`crate::encode()`]). 1 keeps everything; it is the sender's choice and not
    /// on the wire.
    #[serde(skip_serializing_if = "is_one")]
    pub ef_decay: f32,
    /// The bit budget of `hbits`, `hent` and `htcq`, in bits per value, in `[0.001, 8]` (on the wire in
    /// thousandths of a bit); ignored by the other codecs.
    #[serde(skip_serializing_if = "is_default_bits")]
    pub bits: f32,
}

/// Whether `x` is exactly 1 (the default decay, left out of the serialised form).
fn is_one(x: &f32) -> bool {
    *x == 1.0
}

/// Whether `x` is the default bit budget (left out of the serialised form).
fn is_default_bits(x: &f32) -> bool {
    *x == CompressConfig::DEFAULT_BITS
}

impl CompressConfig {
    /// The default chunk size: scales cost 4 bytes per 4096 values (0.001 byte per parameter).
    pub const DEFAULT_CHUNK_SIZE: usize = 4096;
    /// The default top-k fraction: 1 % of each chunk.
    pub const DEFAULT_TOPK_FRACTION: f32 = 0.01;
    /// The default error-feedback decay: nothing is forgotten.
    pub const DEFAULT_EF_DECAY: f32 = 1.0;
    /// The default bit budget of `hbits`, `hent` and `htcq`: int2's two bits per value.
    pub const DEFAULT_BITS: f32 = 2.0;
    /// The most bits per value `hbits` gives one chunk.
    pub const MAX_BITS: u8 = 8;

    /// `codec` with the default chunk size and top-k fraction.
    pub fn new(codec: Codec) -> Self {
        Self {
            codec,
            chunk_size: Self::DEFAULT_CHUNK_SIZE,
            topk_fraction: Self::DEFAULT_TOPK_FRACTION,
            ef_decay: Self::DEFAULT_EF_DECAY,
            bits: Self::DEFAULT_BITS,
        }
    }

    /// Checks that every parameter is in range.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return Err(Error::BadParameter {
                name: "chunk",
                value: self.chunk_size.to_string(),
                expected: "an integer in 1..=65536",
            });
        }
        let f = self.topk_fraction;
        if !(f.is_finite() && f > 0.0 && f <= 1.0) {
            return Err(Error::BadParameter {
                name: "k",
                value: f.to_string(),
                expected: "a fraction in (0, 1]",
            });
        }
        if !(0.0..=1.0).contains(&self.ef_decay) {
            return Err(Error::BadParameter {
                name: "decay",
                value: self.ef_decay.to_string(),
                expected: "a number in [0, 1]",
            });
        }
        if !(0.001..=f32::from(Self::MAX_BITS)).contains(&self.bits) {
            return Err(Error::BadParameter {
                name: "bits",
                value: self.bits.to_string(),
                expected: "a number of bits per value in [0.001, 8]",
            });
        }
        Ok(())
    }

    /// The `hbits`, `hent` or `htcq` budget in thousandths of a bit per value, as the header carries it.
    pub fn budget_millibits(&self) -> usize {
        (f64::from(self.bits) * 1000.0).round() as usize
    }

    /// Values kept per full chunk by the top-k codecs: `ceil(fraction · chunk)`, at least 1.
    ///
    /// A shorter last chunk keeps `min(k, its length)`.
    pub fn topk_per_chunk(&self) -> usize {
        let k = (f64::from(self.topk_fraction) * self.chunk_size as f64).ceil() as usize;
        k.clamp(1, self.chunk_size.max(1))
    }

    /// Applies one `key=value` parameter from the text form.
    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let bad = |name, expected| Error::BadParameter {
            name,
            value: value.to_owned(),
            expected,
        };
        match key {
            "chunk" => {
                self.chunk_size = value
                    .parse()
                    .map_err(|_| bad("chunk", "an integer in 1..=65536"))?
            }
            "k" => {
                self.topk_fraction = value
                    .parse()
                    .map_err(|_| bad("k", "a fraction in (0, 1]"))?
            }
            "decay" => {
                self.ef_decay = value
                    .parse()
                    .map_err(|_| bad("decay", "a number in [0, 1]"))?
            }
            "bits" => {
                self.bits = value
                    .parse()
                    .map_err(|_| bad("bits", "a number of bits per value in [0.001, 8]"))?
            }
            _ => {
                return Err(Error::BadParameter {
                    name: "key",
                    value: key.to_owned(),
                    expected: "chunk, k, decay or bits",
                });
            }
        }
        Ok(())
    }
}

impl Default for CompressConfig {
    /// `topk-int8` with 4096-value chunks keeping 1 % each: about 0.03 bytes per parameter.
    fn default() -> Self {
        Self::new(Codec::TopKInt8)
    }
}

impl fmt::Display for CompressConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:chunk={}", self.codec, self.chunk_size)?;
        if self.codec.is_topk() {
            write!(f, ",k={}", self.topk_fraction)?;
        }
        if self.ef_decay != Self::DEFAULT_EF_DECAY {
            write!(f, ",decay={}", self.ef_decay)?;
        }
        if self.codec.has_bit_budget() {
            write!(f, ",bits={}", self.bits)?;
        }
        Ok(())
    }
}

impl FromStr for CompressConfig {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let (name, params) = s.split_once(':').unwrap_or((s, ""));
        let mut cfg = Self::new(name.trim().parse()?);
        for param in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = param.split_once('=').ok_or_else(|| Error::BadParameter {
                name: "key",
                value: param.to_owned(),
                expected: "key=value",
            })?;
            cfg.set(key.trim(), value.trim())?;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for codec in Codec::ALL {
            assert_eq!(codec.name().parse::<Codec>().unwrap(), codec);
            assert_eq!(Codec::from_id(codec.id()), Some(codec));
            let json = serde_json::to_string(&codec).unwrap();
            assert_eq!(json, format!("\"{}\"", codec.name()));
        }
        assert!("topk_int8".parse::<Codec>().is_err());
        assert_eq!(Codec::from_id(15), None);
    }

    #[test]
    fn config_text_form() {
        let cfg: CompressConfig = "topk-int4:chunk=1024,k=0.05".parse().unwrap();
        assert_eq!(cfg.codec, Codec::TopKInt4);
        assert_eq!(cfg.chunk_size, 1024);
        assert_eq!(cfg.topk_per_chunk(), 52);
        assert_eq!(cfg.to_string().parse::<CompressConfig>().unwrap(), cfg);
        let sparse: CompressConfig = "topk-int2:k=0.02,decay=0.9".parse().unwrap();
        assert_eq!((sparse.topk_per_chunk(), sparse.ef_decay), (82, 0.9));
        assert_eq!(sparse.to_string(), "topk-int2:chunk=4096,k=0.02,decay=0.9");
        let hbits: CompressConfig = "hbits:chunk=1024,bits=2.1".parse().unwrap();
        assert_eq!(hbits.budget_millibits(), 2100);
        assert_eq!(hbits.to_string(), "hbits:chunk=1024,bits=2.1");
        let hent: CompressConfig = "hent:bits=2.1,decay=0.9".parse().unwrap();
        assert_eq!((hent.codec, hent.budget_millibits()), (Codec::HEnt, 2100));
        assert_eq!(hent.to_string(), "hent:chunk=4096,decay=0.9,bits=2.1");
        assert_eq!(Codec::TopKInt2.offset_bits(4096), 12);
        assert_eq!(Codec::TopKInt2.offset_bits(4097), 13);
        assert_eq!(Codec::TopKInt2.offset_bits(1), 1);
        assert_eq!(Codec::TopKInt4.offset_bits(4096), 16);
        assert_eq!(
            "int8".parse::<CompressConfig>().unwrap(),
            CompressConfig::new(Codec::Int8)
        );
        for bad in [
            "int8:chunk=0",
            "int8:chunk=65537",
            "topk:k=0",
            "topk:k=1.5",
            "int8:x=1",
            "int8:chunk",
            "topk-int2:decay=1.5",
            "topk-int2:decay=-0.1",
            "hbits:bits=0",
            "hbits:bits=8.5",
        ] {
            assert!(
                bad.parse::<CompressConfig>().is_err(),
                "{bad} should not parse"
            );
        }
    }

    #[test]
    fn config_serde_defaults() {
        let cfg: CompressConfig = serde_json::from_str(r#"{"codec":"topk-sign"}"#).unwrap();
        assert_eq!(cfg, CompressConfig::new(Codec::TopKSign));
        assert_eq!(cfg.topk_per_chunk(), 41);
    }
}
