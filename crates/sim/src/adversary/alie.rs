//! "A little is enough" (ALIE), Baruch, Baruch & Goldberg, NeurIPS 2019
//! (<https://arxiv.org/abs/1902.06156>).
//!
//! The attackers estimate the per-coordinate mean μ and standard deviation σ of honest updates
//! (here: from the colluding group's own honest Δs) and all send μ − zσ. The shift is small
//! enough to hide inside the honest spread, so distance- and rank-based rules keep it, yet it
//! biases every coordinate the same way. z is the largest value for which the attackers still
//! look closer to the mean than enough honest nodes do: with s = ⌊n/2 + 1⌋ − f "supporters"
//! needed, z = Φ⁻¹((n − s)/n).

use super::GroupStats;

/// μ − zσ per coordinate.
pub fn alie(stats: &GroupStats, z: f32) -> Vec<f32> {
    stats
        .mean
        .iter()
        .zip(&stats.std)
        .map(|(m, s)| m - z * s)
        .collect()
}

/// The paper's z_max for `n` nodes of which `f` attack, clamped to a finite value when the
/// attackers are so many that they need no supporters.
pub fn alie_z(n: usize, f: usize) -> f32 {
    let supporters = (n / 2 + 1).saturating_sub(f);
    let p = (n - supporters.min(n)) as f64 / n.max(1) as f64;
    inverse_normal_cdf(p.clamp(0.5, 0.999)) as f32
}

/// Φ⁻¹(p) by Acklam's rational approximation (relative error below 1.2e-9 on (0, 1)).
fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_cdf_known_values() {
        assert!(inverse_normal_cdf(0.5).abs() < 1e-9);
        assert!((inverse_normal_cdf(0.975) - 1.959_963_985).abs() < 1e-6);
        assert!((inverse_normal_cdf(0.01) + 2.326_347_874).abs() < 1e-6);
    }

    #[test]
    fn z_from_the_paper() {
        // n = 50, f = 12 in the paper: s = 14, z = Φ⁻¹(36/50) ≈ 0.58.
        assert!((alie_z(50, 12) - 0.583).abs() < 0.01);
        // n = 8, f = 2: s = 3, z = Φ⁻¹(5/8) ≈ 0.32.
        assert!((alie_z(8, 2) - 0.319).abs() < 0.01);
        assert!(alie_z(4, 4).is_finite());
    }

    #[test]
    fn shifts_by_z_standard_deviations() {
        let stats = GroupStats {
            mean: vec![1.0, 0.0],
            std: vec![2.0, 1.0],
        };
        assert_eq!(alie(&stats, 0.5), vec![0.0, -0.5]);
    }
}
