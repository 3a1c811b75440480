//! One module per subcommand, each with `Args` and `run`.

pub(crate) mod bench;
pub(crate) mod generate;
pub(crate) mod genesis;
pub(crate) mod node;
pub(crate) mod sim;
pub(crate) mod train;
pub(crate) mod up;
