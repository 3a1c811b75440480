//! Compresses pseudo-gradients for the wire: top-k, int8/int4/int2/ternary/sign quantisation, a
//! random rotation, entropy coding, error feedback.
//!
//! # Bird's Eye View
//!
//! After its inner steps each replica sends its pseudo-gradient `Δ = θ_start − θ_end` to its
//! peers. A `Δ` holds as many values as the model has parameters, so it is compressed first:
//!
//! - a [`Codec`] picks which values to send (all of them, or the top k of each chunk) and how to
//!   write them (`f32`, int8, int4, 2-bit codes (`int2`) or `{−1, 0, 1}` five to a byte
//!   (`ternary`) with a per-chunk scale, 2-bit codes for the top k (`topk-int2`, whose offsets
//!   are also packed in `ceil(log2 C)` bits), 2-bit codes of each chunk after a random
//!   rotation (`hint2`), a width of 0 to 8 bits per rotated chunk chosen by its energy under one
//!   bit budget (`hbits`), a uniform grid on every rotated chunk whose symbols are
//!   entropy-coded, its step set so the codes fill a bit budget (`hent`), the same with the levels
//!   of each chunk chosen together on a trellis (`htcq`), or 1-bit sign with a per-chunk scale);
//!   [`CompressConfig`] adds the chunk size, the top-k fraction and the error-feedback decay;
//! - [`encode`] folds in a [`Residual`] (error feedback, optionally decayed) so that what one
//!   round drops is sent in a later one, and writes a [`Packet`] in a versioned, checksummed
//!   wire format;
//! - [`decode`] turns a peer's bytes back into a vector, and treats them as hostile: every length
//!   is checked against the byte count and a caller-supplied maximum before anything is
//!   allocated, and anything malformed is an [`Error`], never a panic.
//!
//! Everything here is a pure function over slices: no I/O, no clock, no randomness. Work is
//! split over chunks with `rayon`, and the output does not depend on the number of threads.
//!
//! The maths of each part is written as numbered steps:
//! the value formats (int8, int4, int2, ternary, sign) in [`quant`], the top-k selection in [`topk`], the
//! rotation of `hint2` in [`rotate`], the per-chunk widths of `hbits` in [`budget`], the
//! entropy-coded grid of `hent` in [`entropy`], `htcq`'s trellis in [`trellis`], their coder in
//! [`rans`], error feedback in [`encode()`], and the byte layout in [`wire`].
//! A codec is a selection followed by a value format, so `topk-int4` is [`topk`]'s steps, then
//! [`quant`]'s int4 steps on the kept values of each chunk; `hint2` is [`rotate`]'s steps
//! around [`quant`]'s int2 steps on every value; `hbits` is [`budget`]'s steps, which choose
//! each chunk's width and call `hint2`'s rotation around [`quant`]'s uniform steps; `hent` is
//! [`entropy`]'s steps, which call the same rotation around a grid and [`rans`]'s coder; `htcq`
//! is the same steps with [`trellis`]'s search in place of the grid's rounding.
//!
//! ```
//! use neuroshard_compress::{decode, encode, Codec, CompressConfig, Residual};
//!
//! let cfg: CompressConfig = "topk-int8:chunk=1024,k=0.05".parse()?;
//! assert_eq!(cfg.codec, Codec::TopKInt8);
//! let delta: Vec<f32> = (0..10_000).map(|i| ((i * 7919) % 201) as f32 / 100.0 - 1.0).collect();
//! let mut residual = Residual::new();
//! let packet = encode(&delta, &mut residual, &cfg)?;
//! assert!(packet.byte_len() < delta.len() / 5);
//! let decoded = decode(packet.as_bytes(), delta.len())?;
//! // Error feedback: nothing is lost, only carried to the next round.
//! for ((d, r), x) in decoded.iter().zip(residual.as_slice()).zip(&delta) {
//!     assert!((d + r - x).abs() <= 1e-6);
//! }
//! # Ok::<(), neuroshard_compress::Error>(())
//! ```
//!
//! # Feature Flags
//!
//! None.

mod bits;
pub mod budget;
mod config;
mod encode;
pub mod entropy;
mod error;
pub mod quant;
pub mod rans;
pub mod rotate;
pub mod topk;
pub mod trellis;
pub mod wire;

pub use config::{Codec, CompressConfig, MAX_CHUNK_SIZE};
pub use encode::{Residual, decode, encode, encoded_len};
pub use error::{Error, Result};
pub use wire::{Header, Packet, inspect};
