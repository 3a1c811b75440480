//! The aggregation rules as data: names, parameters, defaults from the number of attackers, and
//! the parameter checks each rule's tolerance needs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which aggregation rule, without its parameters. Parses from and prints as its CLI name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleKind {
    /// `mean`: the plain average; tolerates no attacker.
    Mean,
    /// `trimmed-mean`: coordinate-wise mean after dropping the extremes.
    TrimmedMean,
    /// `median`: coordinate-wise median.
    Median,
    /// `krum`: the vector closest to its neighbours.
    Krum,
    /// `multi-krum`: the mean of the m best Krum scores.
    MultiKrum,
    /// `geomed`: the geometric median (smoothed Weiszfeld).
    #[serde(rename = "geomed")]
    GeoMed,
    /// `centered-clip`: centred clipping around a robust start.
    CenteredClip,
    /// `bulyan`: iterated Krum selection, then a coordinate-wise trimmed mean.
    Bulyan,
}

impl RuleKind {
    /// Every rule, in the order the docs list them.
    pub const ALL: [RuleKind; 8] = [
        Self::Mean,
        Self::TrimmedMean,
        Self::Median,
        Self::Krum,
        Self::MultiKrum,
        Self::GeoMed,
        Self::CenteredClip,
        Self::Bulyan,
    ];

    /// The CLI name (`trimmed-mean`, `geomed`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::TrimmedMean => "trimmed-mean",
            Self::Median => "median",
            Self::Krum => "krum",
            Self::MultiKrum => "multi-krum",
            Self::GeoMed => "geomed",
            Self::CenteredClip => "centered-clip",
            Self::Bulyan => "bulyan",
        }
    }

    /// The condition on n and f under which the rule keeps its guarantee.
    pub fn requirement(self) -> &'static str {
        match self {
            Self::Mean => "f = 0",
            Self::TrimmedMean | Self::Median | Self::GeoMed | Self::CenteredClip => "2f < n",
            Self::Krum | Self::MultiKrum => "n > 2f + 2",
            Self::Bulyan => "n ≥ 4f + 3",
        }
    }

    /// Whether the rule tolerates f attackers among n vectors (see each rule's module docs).
    pub fn tolerates(self, n: usize, f: usize) -> bool {
        match self {
            Self::Mean => f == 0 && n >= 1,
            Self::TrimmedMean | Self::Median | Self::GeoMed | Self::CenteredClip => 2 * f < n,
            Self::Krum | Self::MultiKrum => n > 2 * f + 2,
            Self::Bulyan => n >= 4 * f + 3,
        }
    }

    /// The most attackers the rule tolerates among n vectors; `None` if n is too small even
    /// with no attacker (Krum needs n ≥ 3, Bulyan n ≥ 3).
    pub fn max_attackers(self, n: usize) -> Option<usize> {
        (0..n).rev().find(|&f| self.tolerates(n, f))
    }
}

impl fmt::Display for RuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RuleKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        // The British spelling is accepted too; the canonical name is the issue's.
        let s = if s.eq_ignore_ascii_case("centred-clip") {
            "centered-clip"
        } else {
            s
        };
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::UnknownRule(s.to_owned()))
    }
}

/// How many values the trimmed mean drops from each end of every coordinate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trim {
    /// Exactly this many from each end.
    Count(usize),
    /// `⌊β·n⌋` from each end, with `0 ≤ β < 0.5` (Yin et al.'s β).
    Fraction(f64),
}

impl Trim {
    /// The number of values dropped from each end among n, checked to leave at least one.
    pub fn count(self, n: usize) -> Result<usize> {
        let t = match self {
            Self::Count(t) => t,
            Self::Fraction(beta) if (0.0..0.5).contains(&beta) => {
                // The nudge keeps β·n from landing just below an integer (0.2·5 must be 1).
                (beta * n as f64 + 1e-9).floor() as usize
            }
            Self::Fraction(beta) => {
                return Err(invalid(RuleKind::TrimmedMean, "beta", beta, "in [0, 0.5)"));
            }
        };
        if 2 * t >= n {
            return Err(Error::TooManyAttackers {
                rule: RuleKind::TrimmedMean,
                n,
                f: t,
                requires: "2·trim < n",
            });
        }
        Ok(t)
    }
}

/// Parameters of the smoothed Weiszfeld iteration for the geometric median.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoMedParams {
    /// Smoothing ν > 0: distances below ν count as ν, so a point on an input stays finite.
    pub nu: f64,
    /// Most Weiszfeld iterations (≥ 1); each is one pass over the input.
    pub max_iter: usize,
    /// Stop when the objective improves by less than `tol` times itself (≥ 0).
    pub tol: f64,
}

impl Default for GeoMedParams {
    fn default() -> Self {
        Self {
            nu: 1e-6,
            max_iter: 64,
            tol: 1e-6,
        }
    }
}

/// The clipping radius τ of centred clipping.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Radius {
    /// A fixed τ > 0, in the units of the vectors.
    Fixed(f64),
    /// At each iteration, the median distance from the current centre to the inputs: adapts to
    /// the scale of the update, and clips at least the farther half.
    MedianDistance,
}

/// Where centred clipping starts. To start from the previous round's aggregate (as in the
/// paper), call [`crate::centered_clip_from`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Start {
    /// The zero vector (a pseudo-gradient with no history).
    Zero,
    /// The coordinate-wise median: robust, at the cost of one median computation.
    Median,
}

/// Parameters of centred clipping.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClipParams {
    /// The clipping radius τ.
    pub tau: Radius,
    /// Clipping iterations L (≥ 1); each is one pass over the input.
    pub iterations: usize,
    /// The starting centre.
    pub start: Start,
}

impl Default for ClipParams {
    fn default() -> Self {
        Self {
            tau: Radius::MedianDistance,
            iterations: 3,
            start: Start::Median,
        }
    }
}

/// An aggregation rule with its parameters. Serialises as `{"rule": "krum", "f": 2}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum Rule {
    /// The plain mean.
    Mean,
    /// The coordinate-wise trimmed mean.
    TrimmedMean {
        /// Values dropped from each end.
        trim: Trim,
    },
    /// The coordinate-wise median (the mean of the two middle values for even n).
    Median,
    /// Krum with f attackers.
    Krum {
        /// Attackers tolerated.
        f: usize,
    },
    /// Multi-Krum: the mean of the m vectors with the best Krum scores.
    MultiKrum {
        /// Attackers tolerated.
        f: usize,
        /// Vectors averaged, `1 ≤ m ≤ n − f`.
        m: usize,
    },
    /// The geometric median.
    #[serde(rename = "geomed")]
    GeoMed(GeoMedParams),
    /// Centred clipping.
    CenteredClip(ClipParams),
    /// Bulyan with f attackers.
    Bulyan {
        /// Attackers tolerated.
        f: usize,
    },
}

/// Overrides of the defaults [`Rule::configure`] derives from f; a field that does not apply to
/// the chosen rule is ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Overrides {
    /// Trimmed mean: values dropped from each end (default `Count(f)`).
    pub trim: Option<Trim>,
    /// Krum, Multi-Krum, Bulyan: the f the rule is built for (default: the declared f).
    pub f: Option<usize>,
    /// Multi-Krum: vectors averaged (default n − f).
    pub m: Option<usize>,
    /// Geometric median: iteration parameters (default [`GeoMedParams::default`]).
    pub geomed: Option<GeoMedParams>,
    /// Centred clipping: parameters (default [`ClipParams::default`]).
    pub clip: Option<ClipParams>,
}

impl Rule {
    /// The rule `kind` with its parameters defaulted for f declared attackers among n vectors.
    ///
    /// Refuses an f that the rule cannot tolerate ([`RuleKind::tolerates`]), except for
    /// [`Rule::Mean`], which has no parameter to set: it is the non-robust baseline and callers
    /// that want to refuse it use `RuleKind::Mean.tolerates(n, f)`.
    pub fn for_attackers(kind: RuleKind, n: usize, f: usize) -> Result<Self> {
        Self::configure(kind, n, f, &Overrides::default())
    }

    /// Like [`Rule::for_attackers`], with some defaults overridden.
    pub fn configure(kind: RuleKind, n: usize, f: usize, overrides: &Overrides) -> Result<Self> {
        if kind != RuleKind::Mean && !kind.tolerates(n, f) {
            return Err(Error::TooManyAttackers {
                rule: kind,
                n,
                f,
                requires: kind.requirement(),
            });
        }
        let own_f = overrides.f.unwrap_or(f);
        let rule = match kind {
            RuleKind::Mean => Self::Mean,
            RuleKind::TrimmedMean => Self::TrimmedMean {
                trim: overrides.trim.unwrap_or(Trim::Count(f)),
            },
            RuleKind::Median => Self::Median,
            RuleKind::Krum => Self::Krum { f: own_f },
            RuleKind::MultiKrum => Self::MultiKrum {
                f: own_f,
                m: overrides.m.unwrap_or(n.saturating_sub(own_f)),
            },
            RuleKind::GeoMed => Self::GeoMed(overrides.geomed.unwrap_or_default()),
            RuleKind::CenteredClip => Self::CenteredClip(overrides.clip.unwrap_or_default()),
            RuleKind::Bulyan => Self::Bulyan { f: own_f },
        };
        rule.validate(n)?;
        Ok(rule)
    }

    /// Which rule this is.
    pub fn kind(&self) -> RuleKind {
        match self {
            Self::Mean => RuleKind::Mean,
            Self::TrimmedMean { .. } => RuleKind::TrimmedMean,
            Self::Median => RuleKind::Median,
            Self::Krum { .. } => RuleKind::Krum,
            Self::MultiKrum { .. } => RuleKind::MultiKrum,
            Self::GeoMed(_) => RuleKind::GeoMed,
            Self::CenteredClip(_) => RuleKind::CenteredClip,
            Self::Bulyan { .. } => RuleKind::Bulyan,
        }
    }

    /// Checks the parameters against n vectors: the rule's tolerance condition and each
    /// parameter's range. [`crate::aggregate`] calls this with the actual count.
    pub fn validate(&self, n: usize) -> Result<()> {
        let kind = self.kind();
        let too_many = |f| Error::TooManyAttackers {
            rule: kind,
            n,
            f,
            requires: kind.requirement(),
        };
        match *self {
            Self::Mean | Self::Median => Ok(()),
            Self::TrimmedMean { trim } => trim.count(n).map(drop),
            Self::Krum { f } | Self::Bulyan { f } if !kind.tolerates(n, f) => Err(too_many(f)),
            Self::Krum { .. } | Self::Bulyan { .. } => Ok(()),
            Self::MultiKrum { f, .. } if !kind.tolerates(n, f) => Err(too_many(f)),
            Self::MultiKrum { f, m } if m == 0 || m > n - f => {
                Err(invalid(kind, "m", m, "in 1..=n − f"))
            }
            Self::MultiKrum { .. } => Ok(()),
            Self::GeoMed(p) => p.validate(),
            Self::CenteredClip(p) => p.validate(),
        }
    }
}

impl GeoMedParams {
    fn validate(&self) -> Result<()> {
        let kind = RuleKind::GeoMed;
        if !(self.nu.is_finite() && self.nu > 0.0) {
            return Err(invalid(kind, "nu", self.nu, "finite and > 0"));
        }
        if self.max_iter == 0 {
            return Err(invalid(kind, "max_iter", 0, "≥ 1"));
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return Err(invalid(kind, "tol", self.tol, "finite and ≥ 0"));
        }
        Ok(())
    }
}

impl ClipParams {
    fn validate(&self) -> Result<()> {
        let kind = RuleKind::CenteredClip;
        if let Radius::Fixed(tau) = self.tau
            && !(tau.is_finite() && tau > 0.0)
        {
            return Err(invalid(kind, "tau", tau, "finite and > 0"));
        }
        if self.iterations == 0 {
            return Err(invalid(kind, "iterations", 0, "≥ 1"));
        }
        Ok(())
    }
}

/// An [`Error::InvalidParameter`].
fn invalid(
    rule: RuleKind,
    name: &'static str,
    value: impl fmt::Display,
    requires: &'static str,
) -> Error {
    Error::InvalidParameter {
        rule,
        name,
        value: value.to_string(),
        requires,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_str_and_serde() {
        for kind in RuleKind::ALL {
            assert_eq!(kind.name().parse::<RuleKind>().unwrap(), kind);
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.name())
            );
        }
        assert_eq!(
            "centred-clip".parse::<RuleKind>().unwrap(),
            RuleKind::CenteredClip
        );
        assert!(matches!(
            "avg".parse::<RuleKind>(),
            Err(Error::UnknownRule(_))
        ));
        let rule = Rule::for_attackers(RuleKind::GeoMed, 8, 2).unwrap();
        let json = serde_json::to_string(&rule).unwrap();
        assert!(json.starts_with(r#"{"rule":"geomed","nu""#), "{json}");
        assert_eq!(serde_json::from_str::<Rule>(&json).unwrap(), rule);
        let json = r#"{"rule":"trimmed-mean","trim":{"fraction":0.2}}"#;
        assert_eq!(
            serde_json::from_str::<Rule>(json).unwrap(),
            Rule::TrimmedMean {
                trim: Trim::Fraction(0.2)
            }
        );
    }

    #[test]
    fn defaults_follow_f() {
        let cfg = |kind| Rule::for_attackers(kind, 11, 2).unwrap();
        assert_eq!(
            cfg(RuleKind::TrimmedMean),
            Rule::TrimmedMean {
                trim: Trim::Count(2)
            }
        );
        assert_eq!(cfg(RuleKind::Krum), Rule::Krum { f: 2 });
        assert_eq!(cfg(RuleKind::MultiKrum), Rule::MultiKrum { f: 2, m: 9 });
        assert_eq!(cfg(RuleKind::Bulyan), Rule::Bulyan { f: 2 });
        let over = Overrides {
            m: Some(3),
            trim: Some(Trim::Fraction(0.3)),
            ..Overrides::default()
        };
        assert_eq!(
            Rule::configure(RuleKind::MultiKrum, 11, 2, &over).unwrap(),
            Rule::MultiKrum { f: 2, m: 3 }
        );
        assert_eq!(
            Rule::configure(RuleKind::TrimmedMean, 11, 2, &over).unwrap(),
            Rule::TrimmedMean {
                trim: Trim::Fraction(0.3)
            }
        );
    }

    #[test]
    fn refuses_what_a_rule_cannot_tolerate() {
        let err = |kind, n, f| Rule::for_attackers(kind, n, f).unwrap_err();
        assert!(matches!(
            err(RuleKind::Krum, 6, 2),
            Error::TooManyAttackers {
                requires: "n > 2f + 2",
                ..
            }
        ));
        assert!(Rule::for_attackers(RuleKind::Krum, 7, 2).is_ok());
        assert!(matches!(
            err(RuleKind::Bulyan, 10, 2),
            Error::TooManyAttackers { .. }
        ));
        assert!(Rule::for_attackers(RuleKind::Bulyan, 11, 2).is_ok());
        assert!(matches!(
            err(RuleKind::Median, 4, 2),
            Error::TooManyAttackers { .. }
        ));
        assert!(matches!(
            err(RuleKind::TrimmedMean, 4, 2),
            Error::TooManyAttackers { .. }
        ));
        // The mean is the non-robust baseline: it can be configured, and says it tolerates none.
        assert_eq!(
            Rule::for_attackers(RuleKind::Mean, 4, 1).unwrap(),
            Rule::Mean
        );
        assert!(!RuleKind::Mean.tolerates(4, 1));
        let over = Overrides {
            m: Some(9),
            ..Overrides::default()
        };
        assert!(matches!(
            Rule::configure(RuleKind::MultiKrum, 11, 3, &over).unwrap_err(),
            Error::InvalidParameter { name: "m", .. }
        ));
        assert!(matches!(
            Trim::Fraction(0.5).count(10),
            Err(Error::InvalidParameter { .. })
        ));
        let bad_nu = Rule::GeoMed(GeoMedParams {
            nu: 0.0,
            ..GeoMedParams::default()
        });
        assert!(matches!(
            bad_nu.validate(5),
            Err(Error::InvalidParameter { name: "nu", .. })
        ));
    }

    #[test]
    fn max_attackers_matches_the_bounds() {
        assert_eq!(RuleKind::Krum.max_attackers(16), Some(6));
        assert_eq!(RuleKind::Bulyan.max_attackers(16), Some(3));
        assert_eq!(RuleKind::Median.max_attackers(16), Some(7));
        assert_eq!(RuleKind::Mean.max_attackers(16), Some(0));
        assert_eq!(RuleKind::Krum.max_attackers(2), None);
        assert_eq!(Trim::Fraction(0.2).count(5).unwrap(), 1);
    }
}
