//! One module per subcommand, each with `Args` and `run`.

pub(crate) mod bench;
pub(crate) mod genesis;
pub(crate) mod generate;
pub(crate) mod train;
pub(crate) mod node;
pub(crate) mod up;
pub(crate) mod sim;
