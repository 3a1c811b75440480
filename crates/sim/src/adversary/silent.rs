//! Silence: take part in every round (train, close, vote the model hash) but never contribute.

/// A Δ no codec accepts (every value NaN), so the node announces nothing: the node core drops a
/// Δ that does not encode and still takes part in the rest of the round, as it does when a
/// replica diverges.
pub fn silent(len: usize) -> Vec<f32> {
    vec![f32::NAN; len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_encodes() {
        assert!(silent(3).iter().all(|v| v.is_nan()));
        assert_eq!(silent(3).len(), 3);
    }
}
