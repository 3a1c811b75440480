//! Colluding groups: attackers pool their honest Δs into per-coordinate statistics.

/// Per-coordinate mean and standard deviation of a colluding group's honest Δs.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStats {
    /// Mean per coordinate.
    pub mean: Vec<f32>,
    /// Population standard deviation per coordinate (0 for a group of one).
    pub std: Vec<f32>,
}

/// Mean and standard deviation over `group`, coordinate by coordinate, accumulated in f64.
pub fn group_stats(group: &[&[f32]]) -> GroupStats {
    assert!(
        !group.is_empty(),
        "a colluding group has at least one member"
    );
    let len = group[0].len();
    assert!(
        group.iter().all(|delta| delta.len() == len),
        "colluders' Δs have the same length"
    );
    let count = group.len() as f64;
    let mut mean = Vec::with_capacity(len);
    let mut std = Vec::with_capacity(len);
    for i in 0..len {
        let mu = group.iter().map(|d| f64::from(d[i])).sum::<f64>() / count;
        let var = group
            .iter()
            .map(|d| (f64::from(d[i]) - mu).powi(2))
            .sum::<f64>()
            / count;
        mean.push(mu as f32);
        std.push(var.sqrt() as f32);
    }
    GroupStats { mean, std }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_std_per_coordinate() {
        let stats = group_stats(&[&[1.0, 0.0], &[3.0, 0.0]]);
        assert_eq!(stats.mean, vec![2.0, 0.0]);
        assert_eq!(stats.std, vec![1.0, 0.0]);
    }
}
