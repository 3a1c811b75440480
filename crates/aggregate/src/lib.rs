//! Byzantine-robust aggregation rules over n vectors.
//!
//! # Bird's Eye View
//!
//! Each round every replica sends a pseudo-gradient; some senders may be Byzantine. A rule
//! turns the n received vectors (all of one length) into one vector that f attackers cannot
//! drag arbitrarily far. The rules, with the attackers each tolerates (details and papers in
//! each module):
//!
//! | rule | name | tolerates | maths and paper |
//! |---|---|---|---|
//! | mean | `mean` | none (the baseline) | [`coordinate`] |
//! | coordinate-wise trimmed mean (t per end) | `trimmed-mean` | f ≤ t, 2t < n | [`coordinate`] |
//! | coordinate-wise median | `median` | 2f < n | [`coordinate`] |
//! | Krum | `krum` | n > 2f + 2 | [`mod@krum`] |
//! | Multi-Krum (m kept) | `multi-krum` | n > 2f + 2, 1 ≤ m ≤ n − f | [`mod@krum`] |
//! | geometric median (smoothed Weiszfeld) | `geomed` | 2f < n | [`geomed`] |
//! | centred clipping | `centered-clip` | 2f < n, small f/n in theory | [`clip`] |
//! | Bulyan | `bulyan` | n ≥ 4f + 3 | [`mod@bulyan`] |
//!
//! A [`Rule`] carries a rule's parameters; [`Rule::for_attackers`] fills them in from the
//! declared number of attackers f (trim f per end, Krum's f, Multi-Krum's m = n − f, …) and
//! [`Rule::configure`] takes [`Overrides`]. [`aggregate`] runs a rule; each rule also has its
//! own function ([`trimmed_mean`], [`krum()`], …).
//!
//! Inputs are any `&[V]` with `V: AsRef<[f32]>`, so both `&[Vec<f32>]` and `&[&[f32]]` work.
//! Every call checks its input first: no vectors, vectors of different lengths, or a NaN or
//! infinity anywhere (a Byzantine peer may send one) is an [`Error`] naming the offending
//! vector, never a panic. A parameter outside a rule's tolerance is an error too.
//!
//! Everything is a pure function: no I/O, no clock, no randomness. The output is bit-for-bit
//! deterministic:
//!
//! - for any number of threads: work runs in parallel with `rayon` over fixed-size chunks of
//!   coordinates whose partial sums are combined in a fixed order;
//! - for any order of the input vectors: they are first sorted by value, so replicas that
//!   received the same updates in different orders apply the same aggregate. Ties (Krum scores)
//!   therefore go to the lexicographically smaller vector, not to an input position;
//! - on any machine: the code uses only IEEE-exact operations (add, multiply, divide, `sqrt`)
//!   in a fixed order, with no fused multiply-add and no platform maths functions, so a node
//!   with AVX-512 and one with plain SSE2 compute the same bits.
//!
//! The coordinate-wise rules sort each coordinate with a sorting network applied to cache-sized
//! blocks (see [`coordinate`]), so they run near memory bandwidth.
//!
//! ```
//! use neuroshard_aggregate::{aggregate, Rule, RuleKind, Trim};
//!
//! let updates = vec![vec![1.0f32, -1.0], vec![2.0, -2.0], vec![3.0, -3.0], vec![4.0, -4.0], vec![100.0, 9.0]];
//! let rule = Rule::for_attackers("trimmed-mean".parse::<RuleKind>()?, updates.len(), 1)?;
//! assert_eq!(rule, Rule::TrimmedMean { trim: Trim::Count(1) });
//! assert_eq!(aggregate(&rule, &updates)?, vec![3.0, -2.0]);
//! assert!(Rule::for_attackers(RuleKind::Krum, 5, 2).is_err()); // Krum needs n > 2f + 2
//! # Ok::<(), neuroshard_aggregate::Error>(())
//! ```
//!
//! # Feature Flags
//!
//! None.

pub mod bulyan;
pub mod clip;
pub mod coordinate;
mod dist;
mod error;
pub mod geomed;
mod input;
pub mod krum;
mod network;
mod rule;

pub use error::{Error, Result};
pub use rule::{ClipParams, GeoMedParams, Overrides, Radius, Rule, RuleKind, Start, Trim};

/// Aggregates `vectors` with `rule`, after checking the input and the rule's parameters
/// against the number of vectors.
pub fn aggregate<V: AsRef<[f32]> + Sync>(rule: &Rule, vectors: &[V]) -> Result<Vec<f32>> {
    let x = input::check(vectors)?.vectors;
    rule.validate(x.len())?;
    Ok(match *rule {
        Rule::Mean => coordinate::mean(&x),
        Rule::TrimmedMean { trim } => coordinate::trimmed_mean(&x, trim.count(x.len())?),
        Rule::Median => coordinate::median(&x),
        Rule::Krum { f } => krum::krum(&x, f),
        Rule::MultiKrum { f, m } => krum::multi_krum(&x, f, m),
        Rule::GeoMed(p) => geomed::geometric_median(&x, &p),
        Rule::CenteredClip(p) => clip::centered_clip(&x, &p, start(&x, p.start)),
        Rule::Bulyan { f } => bulyan::bulyan(&x, f),
    })
}

/// The mean (tolerates no attacker; see [`coordinate`]).
pub fn mean<V: AsRef<[f32]> + Sync>(vectors: &[V]) -> Result<Vec<f32>> {
    aggregate(&Rule::Mean, vectors)
}

/// The coordinate-wise trimmed mean, dropping `trim` values from each end (see [`coordinate`]).
pub fn trimmed_mean<V: AsRef<[f32]> + Sync>(vectors: &[V], trim: Trim) -> Result<Vec<f32>> {
    aggregate(&Rule::TrimmedMean { trim }, vectors)
}

/// The coordinate-wise median (the mean of the two middle values for an even count; see
/// [`coordinate`]).
pub fn median<V: AsRef<[f32]> + Sync>(vectors: &[V]) -> Result<Vec<f32>> {
    aggregate(&Rule::Median, vectors)
}

/// Krum for f attackers: the input vector closest to its `n − f − 2` nearest others (see
/// [`mod@krum`]).
pub fn krum<V: AsRef<[f32]> + Sync>(vectors: &[V], f: usize) -> Result<Vec<f32>> {
    aggregate(&Rule::Krum { f }, vectors)
}

/// Multi-Krum for f attackers: the mean of the m vectors with the best Krum scores (see
/// [`mod@krum`]).
pub fn multi_krum<V: AsRef<[f32]> + Sync>(vectors: &[V], f: usize, m: usize) -> Result<Vec<f32>> {
    aggregate(&Rule::MultiKrum { f, m }, vectors)
}

/// The geometric median by the smoothed Weiszfeld iteration (see [`geomed`]).
pub fn geometric_median<V: AsRef<[f32]> + Sync>(
    vectors: &[V],
    params: &GeoMedParams,
) -> Result<Vec<f32>> {
    aggregate(&Rule::GeoMed(*params), vectors)
}

/// Centred clipping from the starting point named in `params` (see [`clip`]).
pub fn centered_clip<V: AsRef<[f32]> + Sync>(
    vectors: &[V],
    params: &ClipParams,
) -> Result<Vec<f32>> {
    aggregate(&Rule::CenteredClip(*params), vectors)
}

/// Centred clipping from an explicit starting point (the paper uses the previous round's
/// aggregate); `params.start` is ignored.
pub fn centered_clip_from<V: AsRef<[f32]> + Sync>(
    vectors: &[V],
    params: &ClipParams,
    start: &[f32],
) -> Result<Vec<f32>> {
    let x = input::check(vectors)?.vectors;
    Rule::CenteredClip(*params).validate(x.len())?;
    if start.len() != x[0].len() {
        return Err(Error::StartLength {
            len: start.len(),
            expected: x[0].len(),
        });
    }
    if let Some(coordinate) = start.iter().position(|s| !s.is_finite()) {
        return Err(Error::NonFiniteStart { coordinate });
    }
    Ok(clip::centered_clip(&x, params, start.to_vec()))
}

/// Bulyan for f attackers: iterated Krum selection of n − 2f vectors, then a trimmed mean (see
/// [`mod@bulyan`]).
pub fn bulyan<V: AsRef<[f32]> + Sync>(vectors: &[V], f: usize) -> Result<Vec<f32>> {
    aggregate(&Rule::Bulyan { f }, vectors)
}

/// Indices of the m vectors Multi-Krum keeps for f attackers, best score first (`m = 1`: the
/// vector Krum returns). Useful to see which senders a round accepted.
pub fn krum_select<V: AsRef<[f32]> + Sync>(
    vectors: &[V],
    f: usize,
    m: usize,
) -> Result<Vec<usize>> {
    let x = input::check(vectors)?;
    Rule::MultiKrum { f, m }.validate(x.vectors.len())?;
    Ok(krum::select(&x.vectors, f, m)
        .into_iter()
        .map(|k| x.original[k])
        .collect())
}

/// Indices of the n − 2f vectors Bulyan's iterated Krum selects, in selection order.
pub fn bulyan_select<V: AsRef<[f32]> + Sync>(vectors: &[V], f: usize) -> Result<Vec<usize>> {
    let x = input::check(vectors)?;
    Rule::Bulyan { f }.validate(x.vectors.len())?;
    Ok(bulyan::select(&x.vectors, f)
        .into_iter()
        .map(|k| x.original[k])
        .collect())
}

/// The starting centre for centred clipping.
fn start(vectors: &[&[f32]], start: Start) -> Vec<f32> {
    match start {
        Start::Zero => vec![0.0; vectors[0].len()],
        Start::Median => coordinate::median(vectors),
    }
}
