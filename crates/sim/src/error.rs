//! Errors from configuring and running a simulation.

/// Errors a simulation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An attack name is not one of the known ones.
    #[error(
        "unknown attack {0:?}; use one of sign-flip, noise, scale, alie, ipm, free-ride, replay, silent, none"
    )]
    UnknownAttack(String),
    /// The scenario's settings contradict each other.
    #[error("invalid simulation settings: {0}")]
    InvalidConfig(String),
    /// A node's worker failed to train.
    #[error("node {node} failed to train round {round}: {source}")]
    Worker {
        /// The node's index.
        node: usize,
        /// The round.
        round: u64,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The model failed (building, loading parameters, evaluating).
    #[error(transparent)]
    Model(#[from] neuroshard_model::Error),
    /// The ledger refused a block its own sequencer built, or its supply invariant broke.
    #[error("ledger: {0}")]
    Ledger(String),
    /// A node refused its settings, or its worker failed to start.
    #[error(transparent)]
    Node(#[from] neuroshard_node::Error),
    /// The training crate refused its settings.
    #[error(transparent)]
    Train(#[from] neuroshard_train::Error),
    /// A data source failed.
    #[error("data: {0}")]
    Data(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The run made no progress: every event was handled before all rounds closed.
    #[error(
        "simulation stalled at {time} with nodes in rounds {rounds:?} (0 while down) (SIM_SEED={seed})"
    )]
    Stalled {
        /// The run's seed, to replay it.
        seed: u64,
        /// The simulated time reached.
        time: neuroshard_node::Timestamp,
        /// The round each node was in (0 for a node that was down).
        rounds: Vec<u64>,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
