//! One module per subcommand, each with `Args` and `run`.

pub(crate) mod bench;
pub(crate) mod genesis;
