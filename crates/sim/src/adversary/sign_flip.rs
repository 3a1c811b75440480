//! Sign flip: send the exact opposite of the honest Δ.

/// −Δ: pushes the model uphill as hard as an honest node pushes it downhill.
pub fn sign_flip(own: &[f32]) -> Vec<f32> {
    own.iter().map(|v| -v).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negates_every_coordinate() {
        assert_eq!(sign_flip(&[1.0, -2.0, 0.0]), vec![-1.0, 2.0, -0.0]);
    }
}
