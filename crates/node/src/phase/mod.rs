//! The phases of a round, one module each; `crate::round` strings them together.

pub(crate) mod aggregate;
pub(crate) mod audit;
pub(crate) mod exchange;
pub(crate) mod grow;
pub(crate) mod sync;
pub(crate) mod train;
