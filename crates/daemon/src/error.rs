//! Errors from starting and running a node.

use std::path::PathBuf;

/// Why a node could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{action} {path}: {source}; check the path and its permissions")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The ledger could not start, or a block did not apply as the network applied it.
    #[error("ledger: {0}")]
    Ledger(String),
    /// The node's configuration file or flags are invalid.
    #[error("invalid node configuration: {0}")]
    Config(String),
    /// The key file exists but does not hold a key.
    #[error(
        "key file {path} is damaged: {reason}; restore it from a backup or delete it to get a new node id"
    )]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The genesis file describes something this build cannot run.
    #[error("genesis {path}: {reason}")]
    Genesis {
        /// The genesis file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint could not be read back.
    #[error("checkpoint {path} is unusable: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The node's own checkpoint could not be read back when it started: the node's advice.
    #[error("{0}; delete it to start from the network's state")]
    Resume(Box<Error>),
    /// The genesis init file on disk is not the one `model.init` names.
    #[error(
        "genesis init file {path} is unusable: {reason}; delete it to fetch it from peers, or restore the file the genesis names"
    )]
    BadInit {
        /// The init file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A peer sent genesis data that does not match the genesis file.
    #[error("genesis data from a peer failed verification: {0}")]
    BadData(String),
    /// The genesis data could not be obtained from any peer in time.
    #[error("genesis data unavailable: {0}; start a node that holds the genesis directory")]
    DataUnavailable(String),
    /// The dataset crate failed.
    #[error(transparent)]
    Data(#[from] neuroshard_data::Error),
    /// The model crate failed.
    #[error(transparent)]
    Model(#[from] neuroshard_model::Error),
    /// The training crate failed.
    #[error(transparent)]
    Train(#[from] neuroshard_train::Error),
    /// The node core failed.
    #[error(transparent)]
    Node(#[from] neuroshard_node::Error),
    /// The network failed.
    #[error(transparent)]
    Net(#[from] neuroshard_p2p::Error),
    /// The HTTP API failed.
    #[error(transparent)]
    Api(#[from] neuroshard_api::Error),
    /// The pipeline crate failed (a plan, a frame, a stage step).
    #[error(transparent)]
    Pipeline(#[from] neuroshard_pipeline::Error),
    /// A lane's step could not go on: a neighbour's frame did not come, or could not be sent.
    #[error("the pipeline lane stalled: {0}")]
    Lane(String),
    /// A lane neighbour disconnected, or its training thread passed the job's round: the job
    /// stops with the steps it trained.
    #[error("a lane neighbour is gone from the job's round")]
    NeighbourGone,
    /// The model could not grow to a plan's depth.
    #[error("the model could not grow: {0}")]
    Grow(String),
    /// The training thread panicked or was cancelled.
    #[error("the training thread stopped unexpectedly: {0}")]
    Worker(String),
}

impl Error {
    /// A constructor for `map_err` that wraps an I/O error on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
