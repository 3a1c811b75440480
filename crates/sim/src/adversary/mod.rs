//! Byzantine attackers: pure functions that forge a pseudo-gradient from what an attacker knows.
//!
//! An attacking node trains honestly like everyone else, then replaces its honest Δ with a
//! forged one before compression. Each attack is one module with one pure function over
//! slices; [`forge`] picks the function for an [`Attack`]. What an attacker knows is spelled out
//! in [`Knowledge`]: its own honest Δ, the honest Δs of its colluding group (colluders share
//! statistics), its own Δ from an earlier round, and a Δ another node announced.

mod alie;
mod collude;
mod free_ride;
mod ipm;
mod noise;
mod replay;
mod scale;
mod sign_flip;
mod silent;

use std::fmt;
use std::str::FromStr;

use rand_chacha::ChaCha8Rng;

pub use alie::{alie, alie_z};
pub use collude::{GroupStats, group_stats};
pub use free_ride::free_ride;
pub use ipm::ipm;
pub use noise::noise;
pub use replay::replay;
pub use scale::scale;
pub use sign_flip::sign_flip;
pub use silent::silent;

use crate::{Error, Result};

/// The kinds of attack the simulator can run, with their names on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttackKind {
    /// Every node is honest.
    None,
    /// Send −Δ (times the strength, 1 by default).
    SignFlip,
    /// Send Gaussian noise.
    Noise,
    /// Send Δ × 100.
    Scale,
    /// "A little is enough": the group mean shifted by z standard deviations per coordinate.
    Alie,
    /// Inner-product manipulation: −ε × the group mean.
    Ipm,
    /// Free rider: the attacker's own stale Δ from an earlier round, or zeros in the first.
    FreeRide,
    /// Replay another node's announced Δ as one's own.
    Replay,
    /// Take part in every round (votes included) but never announce a Δ.
    Silent,
}

impl AttackKind {
    /// Every kind, in command-line order.
    pub const ALL: [AttackKind; 9] = [
        AttackKind::SignFlip,
        AttackKind::Noise,
        AttackKind::Scale,
        AttackKind::Alie,
        AttackKind::Ipm,
        AttackKind::FreeRide,
        AttackKind::Replay,
        AttackKind::Silent,
        AttackKind::None,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            AttackKind::None => "none",
            AttackKind::SignFlip => "sign-flip",
            AttackKind::Noise => "noise",
            AttackKind::Scale => "scale",
            AttackKind::Alie => "alie",
            AttackKind::Ipm => "ipm",
            AttackKind::FreeRide => "free-ride",
            AttackKind::Replay => "replay",
            AttackKind::Silent => "silent",
        }
    }
}

impl fmt::Display for AttackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AttackKind {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        AttackKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| Error::UnknownAttack(name.to_owned()))
    }
}

/// An attack with its strength resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attack {
    /// Which attack.
    pub kind: AttackKind,
    /// Its strength: the noise standard deviation in units of the honest Δ's RMS, the scale
    /// factor, ALIE's z, IPM's ε; unused by the others.
    pub strength: f32,
}

impl Attack {
    /// `kind` at its default strength for `n` nodes of which `f` attack.
    pub fn with_defaults(kind: AttackKind, n: usize, f: usize) -> Self {
        let strength = match kind {
            AttackKind::Noise => 10.0,
            AttackKind::Scale => 100.0,
            AttackKind::Alie => alie_z(n, f),
            AttackKind::Ipm => 0.5,
            _ => 1.0,
        };
        Self { kind, strength }
    }
}

/// What an attacker knows when it forges its Δ for a round.
#[derive(Debug, Clone, Copy)]
pub struct Knowledge<'a> {
    /// The Δ the attacker computed honestly on its own shards.
    pub own: &'a [f32],
    /// Honest Δs of its colluding group this round (its own included).
    pub group: &'a [&'a [f32]],
    /// The attacker's own honest Δ from an earlier round, if any.
    pub stale: Option<&'a [f32]>,
    /// The latest Δ another (honest) node announced, if any.
    pub victim: Option<&'a [f32]>,
}

/// The Δ an attacker sends instead of its honest one (a silent attacker's is one no codec sends).
pub fn forge(attack: Attack, knows: &Knowledge<'_>, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let own = knows.own;
    match attack.kind {
        AttackKind::None => own.to_vec(),
        AttackKind::SignFlip => sign_flip(own, attack.strength),
        AttackKind::Noise => noise(own, attack.strength, rng),
        AttackKind::Scale => scale(own, attack.strength),
        AttackKind::Alie => alie(&group_stats(knows.group), attack.strength),
        AttackKind::Ipm => ipm(&group_stats(knows.group), attack.strength),
        AttackKind::FreeRide => free_ride(own.len(), knows.stale),
        AttackKind::Replay => replay(own.len(), knows.victim),
        AttackKind::Silent => silent(own.len()),
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in AttackKind::ALL {
            assert_eq!(kind.name().parse::<AttackKind>().unwrap(), kind);
        }
        assert!("gentle".parse::<AttackKind>().is_err());
    }

    #[test]
    fn forge_dispatches_and_keeps_length() {
        let own = [1.0f32, -2.0, 3.0];
        let other = [0.5f32, 0.5, 0.5];
        let group: [&[f32]; 2] = [&own, &other];
        let knows = Knowledge {
            own: &own,
            group: &group,
            stale: None,
            victim: Some(&other),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for kind in AttackKind::ALL {
            let forged = forge(Attack::with_defaults(kind, 8, 2), &knows, &mut rng);
            assert_eq!(forged.len(), own.len(), "{kind}");
        }
        let none = forge(
            Attack::with_defaults(AttackKind::None, 8, 2),
            &knows,
            &mut rng,
        );
        assert_eq!(none, own);
        let replayed = forge(
            Attack::with_defaults(AttackKind::Replay, 8, 2),
            &knows,
            &mut rng,
        );
        assert_eq!(replayed, other);
    }
}
