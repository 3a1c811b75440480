//! The operator's settings for one node: `config/node.toml`, every field overridable by a flag
//! of `neuroshard node`.
//!
//! What honest replicas must share (model, inner steps H, the inner loop's batch size and
//! learning-rate schedule, deadline, codec, aggregation rule, outer optimiser, differential
//! privacy) comes from the genesis file, not from here; these settings only shape this node's
//! own work and where it runs.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Settings a node's file once held that the genesis file holds now (its `[inner]` section):
/// auditors replay a node's steps with them, and a pipeline's stages split the same batch.
pub const MOVED_TO_GENESIS: [&str; 4] = ["batch_size", "lr", "warmup_steps", "schedule_rounds"];

/// What to tell an operator who set `field` of [`MOVED_TO_GENESIS`] for a node.
pub fn moved_to_genesis(field: &str) -> String {
    format!(
        "`{field}` is the network's now, not a node's: it is `inner.{field}` in the genesis file \
         (`neuroshard genesis init --{}`)",
        field.replace('_', "-")
    )
}

/// One node's settings, as read from TOML (missing fields take their defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// The genesis file (`--genesis`). When its directory holds the built dataset the node
    /// serves it; otherwise the node fetches what it needs from peers.
    pub genesis: PathBuf,
    /// Where the key, checkpoint and fetched data live (`--data-dir`).
    pub data_dir: PathBuf,
    /// libp2p listen addresses (`--listen`, repeatable).
    pub listen: Vec<String>,
    /// Peers to dial at start, with their `/p2p/…` suffix (`--bootstrap`, repeatable).
    pub bootstrap: Vec<String>,
    /// Discover peers on the local network with mDNS (`--mdns`).
    pub mdns: bool,
    /// Address of the HTTP API and dashboard (`--http`); loopback unless told otherwise.
    pub http: SocketAddr,
    /// Wait for this many peers before the first round (`--min-peers`)…
    pub min_peers: usize,
    /// …but at most this many seconds (`--start-grace-secs`).
    pub start_grace_secs: f64,
    /// Training shards assigned to the node per round (`--shards-per-node`).
    pub shards_per_node: usize,
    /// Held-out batches the validation loss is measured on after each round (`--val-batches`).
    pub val_batches: usize,
    /// Bytes this node gives to training (`--memory-budget`); `None`: unbounded. Below the
    /// model's training footprint the node trains one stage of a pipeline (`docs/pipeline.md`).
    pub memory_budget: Option<u64>,
    /// The speed this node announces, in parameter-tokens per second (`--work-per-sec`);
    /// `None`: measured at start-up (`docs/pool.md`, "Measured speed"). Pin it to make a
    /// pipeline's plan repeatable.
    pub work_per_sec: Option<u64>,
    /// Where this node listens for the other validators when it is in the ledger's committee
    /// (`--consensus-listen`).
    pub consensus_listen: Option<SocketAddr>,
    /// The other validators, `HEXKEY@HOST:PORT` (`--validator`, repeatable).
    pub validators: Vec<String>,
    /// Stop when standard input closes (`--exit-on-stdin-close`): how `neuroshard up` makes sure
    /// its children never outlive it.
    pub exit_on_stdin_close: bool,
    /// Test builds only (feature `cheat`): cheat the work proof. `lazy` skips every segment of
    /// its training and fakes the chain; `withhold` serves no challenged checkpoint;
    /// `forge-inputs` (a pipeline stage) trains on its neighbours' frames made a tenth smaller;
    /// `other-batch` (a pipeline stage) trains each step on the round's next step's batch.
    #[cfg(feature = "cheat")]
    #[serde(skip)]
    pub cheat: Option<crate::Cheat>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            genesis: PathBuf::from(".neuroshard/genesis/genesis.toml"),
            data_dir: PathBuf::from(".neuroshard/node"),
            listen: vec!["/ip4/0.0.0.0/tcp/0".to_owned()],
            bootstrap: Vec::new(),
            mdns: false,
            http: neuroshard_api::DEFAULT_ADDR,
            min_peers: 0,
            start_grace_secs: 10.0,
            shards_per_node: 1,
            val_batches: 32,
            memory_budget: None,
            work_per_sec: None,
            consensus_listen: None,
            validators: Vec::new(),
            exit_on_stdin_close: false,
            #[cfg(feature = "cheat")]
            cheat: None,
        }
    }
}

impl NodeConfig {
    /// Parses TOML text; missing fields take their defaults, unknown ones are refused (one the
    /// genesis file now holds with a message that says so).
    pub fn from_toml(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|err| {
            let moved = MOVED_TO_GENESIS
                .iter()
                .find(|f| err.message().contains(&format!("`{f}`")));
            Error::Config(match moved {
                Some(field) => format!("{}; remove it here", moved_to_genesis(field)),
                None => err.to_string(),
            })
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and checks a TOML file.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
        Self::from_toml(&text).map_err(|err| Error::Config(format!("{}: {err}", path.display())))
    }

    /// Checks ranges and that every address parses; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let fail = |field: &str, why: String| Err(Error::Config(format!("`{field}` {why}")));
        for (field, addrs) in [("listen", &self.listen), ("bootstrap", &self.bootstrap)] {
            for addr in addrs {
                if let Err(err) = addr.parse::<neuroshard_p2p::Multiaddr>() {
                    return fail(field, format!("has an invalid multiaddr {addr:?}: {err}"));
                }
            }
        }
        if self.listen.is_empty() {
            return fail("listen", "needs at least one address".into());
        }
        if self.shards_per_node == 0 {
            return fail("shards_per_node", "must be at least 1".into());
        }
        if self.work_per_sec == Some(0) {
            return fail("work_per_sec", "must be at least 1".into());
        }
        if !(self.start_grace_secs.is_finite() && self.start_grace_secs >= 0.0) {
            return fail("start_grace_secs", "must be a non-negative number".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_parses_to_the_defaults() {
        let example = include_str!("../../../config/node.toml");
        assert_eq!(
            NodeConfig::from_toml(example).unwrap(),
            NodeConfig::default()
        );
    }

    #[test]
    fn partial_files_take_defaults_and_bad_values_name_the_field() {
        let config = NodeConfig::from_toml("min_peers = 2\n").unwrap();
        assert_eq!(config.min_peers, 2);
        assert_eq!(config.val_batches, NodeConfig::default().val_batches);
        let err = NodeConfig::from_toml("bootstrap = [\"nonsense\"]\n").unwrap_err();
        assert!(err.to_string().contains("bootstrap"), "{err}");
        assert!(NodeConfig::from_toml("typo = 1\n").is_err());
        let err = NodeConfig::from_toml("lr = 0.01\n").unwrap_err();
        assert!(err.to_string().contains("inner.lr"), "{err}");
        assert!(NodeConfig::from_toml("shards_per_node = 0\n").is_err());
        let err = NodeConfig::from_toml("work_per_sec = 0\n").unwrap_err();
        assert!(err.to_string().contains("work_per_sec"), "{err}");
        let pinned = NodeConfig::from_toml("work_per_sec = 5000\n").unwrap();
        assert_eq!(pinned.work_per_sec, Some(5000));
    }
}
