//! The ledger of a local network: its first nodes are the genesis committee. Before the nodes
//! start, `up` makes their keys, writes the committee (and each validator's starting balance)
//! into `genesis.toml`, and gives each validator a consensus port on 127.0.0.1 (held open by
//! `up` until that node starts) and the others' keys and ports. A validator keeps its port from
//! one run to the next (`node-N/consensus.addr`): once it has registered the address on the
//! ledger, the other validators dial it there, so a new port would leave a restarted committee
//! unable to reach itself (`a_pipeline_stopped_and_run_again_on_its_directory_trains_on`).
//!
//! Writing the committee changes the network id, so the nodes' state from an earlier network
//! (checkpoints, ledger, chains) cannot be resumed: when `<dir>/network` names another network,
//! each node directory is emptied except for its key.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use neuroshard_daemon::{Durability, keyfile, write_atomic};
use neuroshard_data::{Genesis, LedgerSpec};
use neuroshard_primitives::NodeId;

/// The most validators `up` makes: four tolerate one failed validator (n = 3f + 1).
pub(super) const MAX_VALIDATORS: usize = 4;

/// NEURO (in micro-units) each validator holds at genesis, besides its bond: enough to try the
/// wallet.
const STARTING_BALANCE: u64 = 1_000 * neuroshard_ledger::NEURO;

/// The validators: node index, key and consensus address.
#[derive(Debug)]
pub(super) struct Committee {
    members: Vec<(NodeId, SocketAddr)>,
    /// Each validator's consensus port, held open from when it is picked until its node first
    /// starts ([`Committee::release`]), so that no other process is given it in between (the
    /// ports are picked before the first node starts, and the nodes start one by one).
    reserved: Mutex<Vec<Option<TcpListener>>>,
}

impl Committee {
    /// Frees node `index`'s consensus port for the node about to start (once; a restart finds
    /// it free already).
    pub(super) fn release(&self, index: usize) {
        let mut reserved = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = reserved.get_mut(index) {
            slot.take();
        }
    }

    /// `--consensus-listen` and `--validator` flags for node `index` (none for a follower).
    pub(super) fn flags(&self, index: usize) -> Vec<String> {
        let Some((_, listen)) = self.members.get(index) else {
            return Vec::new();
        };
        let mut flags = vec!["--consensus-listen".to_owned(), listen.to_string()];
        for (i, (id, addr)) in self.members.iter().enumerate() {
            if i != index {
                flags.push("--validator".to_owned());
                flags.push(format!("{}@{addr}", id.to_hex()));
            }
        }
        flags
    }
}

/// Makes the first nodes' keys, puts them in `genesis.toml` as the committee, starts the nodes'
/// state afresh if the network changed, and picks the consensus ports.
pub(super) fn prepare(genesis_dir: &Path, dir: &Path, nodes: usize) -> anyhow::Result<Committee> {
    let count = nodes.min(MAX_VALIDATORS);
    let mut ids = Vec::with_capacity(count);
    for index in 0..count {
        let node_dir = dir.join(format!("node-{index}"));
        std::fs::create_dir_all(&node_dir)
            .with_context(|| format!("creating {}", node_dir.display()))?;
        ids.push(keyfile::load_or_create(&node_dir.join(keyfile::KEY_FILE))?.node_id());
    }
    let network = write_committee(&genesis_dir.join("genesis.toml"), &ids)?;
    start_afresh_if_changed(dir, &network)?;
    let ports = (0..count)
        .map(|index| reserve_port(&dir.join(format!("node-{index}"))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let members = (ids.into_iter().zip(&ports))
        .map(|(id, port)| Ok((id, port.local_addr()?)))
        .collect::<anyhow::Result<_>>()?;
    println!("the ledger's genesis committee: nodes 0 to {}", count - 1);
    let reserved = Mutex::new(ports.into_iter().map(Some).collect());
    Ok(Committee { members, reserved })
}

/// The file in a validator's directory that keeps its consensus address across runs.
const CONSENSUS_FILE: &str = "consensus.addr";

/// Binds the consensus port of the validator in `node_dir`: the one it had in the last run, else
/// one the OS picks, which is kept for the next run.
fn reserve_port(node_dir: &Path) -> anyhow::Result<TcpListener> {
    let file = node_dir.join(CONSENSUS_FILE);
    let kept = std::fs::read_to_string(&file).ok();
    let listener = match kept.and_then(|s| s.trim().parse::<SocketAddr>().ok()) {
        Some(addr) => TcpListener::bind(addr).with_context(|| {
            format!(
                "binding {addr}, the consensus address this validator had in the last run (the \
                 ledger records it, and the other validators dial it there): another process \
                 holds it; stop that process, or start afresh with another --dir"
            )
        })?,
        None => TcpListener::bind("127.0.0.1:0").context("finding a free port")?,
    };
    let addr = listener.local_addr()?.to_string();
    write_atomic(&file, addr.as_bytes(), Durability::Durable)?;
    Ok(listener)
}

/// Sets the ledger section of the genesis file to `ids` (each with the starting balance), keeping
/// the rules it already sets (the defaults when it has none); returns the network id.
fn write_committee(path: &Path, ids: &[NodeId]) -> anyhow::Result<String> {
    let mut genesis = Genesis::load(path)?;
    let mut ledger = LedgerSpec::new(
        ids.iter().map(NodeId::to_hex).collect(),
        ids.iter()
            .map(|id| (id.to_hex(), STARTING_BALANCE))
            .collect(),
    );
    if let Some(old) = &genesis.ledger {
        (ledger.epoch_blocks, ledger.unbonding_blocks) = (old.epoch_blocks, old.unbonding_blocks);
        (ledger.pool_blocks, ledger.pool_ttl_blocks) = (old.pool_blocks, old.pool_ttl_blocks);
    }
    if genesis.ledger.as_ref() != Some(&ledger) {
        genesis.ledger = Some(ledger);
        write_atomic(path, genesis.to_toml().as_bytes(), Durability::Durable)?;
    }
    Ok(genesis.network_id().to_hex())
}

/// Empties every node directory but its key when `<dir>/network` names another network.
fn start_afresh_if_changed(dir: &Path, network: &str) -> anyhow::Result<()> {
    let marker = dir.join("network");
    let previous = std::fs::read_to_string(&marker).unwrap_or_default();
    if previous.trim() == network {
        return Ok(());
    }
    if !previous.is_empty() {
        println!("the genesis changed (network {network}): the nodes start afresh, keys kept");
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let is_node = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("node-"));
        if is_node && path.is_dir() {
            empty_but_key(&path)?;
        }
    }
    write_atomic(&marker, network.as_bytes(), Durability::Durable)?;
    Ok(())
}

fn empty_but_key(node_dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(node_dir)? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n == keyfile::KEY_FILE) {
            continue;
        }
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_validator_keeps_its_consensus_port_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        let first = reserve_port(dir.path()).unwrap();
        let addr = first.local_addr().unwrap();
        drop(first);
        let again = reserve_port(dir.path()).unwrap();
        assert_eq!(
            again.local_addr().unwrap(),
            addr,
            "the next run binds the same port"
        );
        let err = reserve_port(dir.path()).unwrap_err();
        assert!(
            format!("{err:#}").contains("another process holds it"),
            "{err:#}"
        );
    }

    #[test]
    fn a_new_committee_keeps_the_ledger_rules_the_file_sets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("genesis.toml");
        let mut genesis =
            Genesis::parse(include_str!("../../../../../config/genesis.toml")).unwrap();
        genesis.ledger = Some(LedgerSpec {
            epoch_blocks: 20,
            unbonding_blocks: 40,
            pool_blocks: 6,
            pool_ttl_blocks: 30,
            ..LedgerSpec::new(vec!["ab".repeat(32)], Default::default())
        });
        std::fs::write(&path, genesis.to_toml()).unwrap();
        let member = NodeId([1; 32]);
        write_committee(&path, &[member]).unwrap();
        let ledger = Genesis::load(&path).unwrap().ledger.unwrap();
        assert_eq!(ledger.committee, vec![member.to_hex()]);
        let rules = (
            ledger.epoch_blocks,
            ledger.unbonding_blocks,
            ledger.pool_blocks,
            ledger.pool_ttl_blocks,
        );
        assert_eq!(rules, (20, 40, 6, 30));
    }
}
