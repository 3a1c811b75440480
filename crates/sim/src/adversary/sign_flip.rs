//! Sign flip: send the opposite of the honest Δ, optionally magnified.

/// −s·Δ: pushes the model uphill `strength` times as hard as an honest node pushes it downhill
/// (1 is the classic sign flip).
pub fn sign_flip(own: &[f32], strength: f32) -> Vec<f32> {
    own.iter().map(|v| -strength * v).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negates_every_coordinate() {
        assert_eq!(sign_flip(&[1.0, -2.0, 0.0], 1.0), vec![-1.0, 2.0, -0.0]);
        assert_eq!(sign_flip(&[1.0, -2.0], 3.0), vec![-3.0, 6.0]);
    }
}
