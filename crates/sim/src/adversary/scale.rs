//! Scaling: send the honest Δ blown up by a large factor.

/// Δ × `factor` (100 by default): one such vector dominates a plain mean.
pub fn scale(own: &[f32], factor: f32) -> Vec<f32> {
    own.iter().map(|v| v * factor).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplies_every_coordinate() {
        assert_eq!(scale(&[1.0, -0.5], 100.0), vec![100.0, -50.0]);
    }
}
