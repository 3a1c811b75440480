//! Free riding: contribute nothing new, but still claim a share of the round.

/// The attacker's stale Δ from an earlier round, or zeros when it has none yet.
pub fn free_ride(len: usize, stale: Option<&[f32]>) -> Vec<f32> {
    match stale {
        Some(old) if old.len() == len => old.to_vec(),
        _ => vec![0.0; len],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_first_then_stale() {
        assert_eq!(free_ride(2, None), vec![0.0, 0.0]);
        assert_eq!(free_ride(2, Some(&[1.0, 2.0])), vec![1.0, 2.0]);
        assert_eq!(free_ride(2, Some(&[1.0])), vec![0.0, 0.0]);
    }
}
