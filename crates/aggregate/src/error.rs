//! Errors from configuring a rule and from aggregating a set of vectors.

use crate::rule::RuleKind;

/// Errors from configuring an aggregation rule or aggregating vectors.
///
/// Bad input (a peer's NaN, a vector of the wrong length, more attackers than a rule tolerates)
/// is always one of these values, never a panic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// No vectors were given.
    #[error("no vectors to aggregate; pass at least one")]
    NoVectors,
    /// A vector's length differs from the first vector's.
    #[error("vector {index} holds {len} values but vector 0 holds {expected}; all must match")]
    LengthMismatch {
        /// Position of the offending vector in the input.
        index: usize,
        /// Its length.
        len: usize,
        /// The length of vector 0.
        expected: usize,
    },
    /// A vector holds a NaN or an infinity (a Byzantine peer may send one).
    #[error(
        "vector {index} holds a non-finite value at coordinate {coordinate}; drop that peer's update"
    )]
    NonFinite {
        /// Position of the offending vector in the input.
        index: usize,
        /// First coordinate that is not finite.
        coordinate: usize,
    },
    /// The rule cannot tolerate this many attackers among this many vectors.
    #[error(
        "{rule} cannot tolerate f = {f} attackers among n = {n} vectors (needs {requires}); lower f or add vectors"
    )]
    TooManyAttackers {
        /// The rule.
        rule: RuleKind,
        /// Number of vectors.
        n: usize,
        /// Number of attackers (or values trimmed from each end, for the trimmed mean).
        f: usize,
        /// The condition the rule needs, e.g. `n > 2f + 2`.
        requires: &'static str,
    },
    /// A rule parameter is out of its range.
    #[error("{rule} parameter {name} = {value} is out of range: it must be {requires}")]
    InvalidParameter {
        /// The rule.
        rule: RuleKind,
        /// The parameter's name.
        name: &'static str,
        /// The value given, as text.
        value: String,
        /// What the value must be.
        requires: &'static str,
    },
    /// The starting point given to centred clipping has the wrong length.
    #[error(
        "centred-clipping start holds {len} values but the vectors hold {expected}; pass the previous aggregate"
    )]
    StartLength {
        /// Length of the starting point.
        len: usize,
        /// Length of the vectors.
        expected: usize,
    },
    /// The starting point given to centred clipping holds a NaN or an infinity.
    #[error(
        "centred-clipping start holds a non-finite value at coordinate {coordinate}; pass a finite start"
    )]
    NonFiniteStart {
        /// First coordinate that is not finite.
        coordinate: usize,
    },
    /// An aggregation rule name did not parse.
    #[error(
        "unknown aggregation rule {0:?}; use one of mean, trimmed-mean, median, krum, multi-krum, geomed, centered-clip, bulyan"
    )]
    UnknownRule(String),
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
