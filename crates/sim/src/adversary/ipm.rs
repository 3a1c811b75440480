//! Inner-product manipulation (IPM), Xie, Koyejo & Gupta, "Fall of Empires", UAI 2019
//! (<https://arxiv.org/abs/1903.03936>).

use super::GroupStats;

/// −ε × the group's mean Δ: a vector whose inner product with the true update is negative, so
/// a rule that lets it through turns the aggregate away from descent.
pub fn ipm(stats: &GroupStats, epsilon: f32) -> Vec<f32> {
    stats.mean.iter().map(|m| -epsilon * m).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_against_the_mean() {
        let stats = GroupStats {
            mean: vec![2.0, -4.0],
            std: vec![1.0, 1.0],
        };
        let forged = ipm(&stats, 0.5);
        assert_eq!(forged, vec![-1.0, 2.0]);
        let dot: f32 = forged.iter().zip(&stats.mean).map(|(a, b)| a * b).sum();
        assert!(dot < 0.0);
    }
}
