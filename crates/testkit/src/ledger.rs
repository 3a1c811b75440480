//! A NEURO ledger for processes on loopback: validator keys written where `neuroshard node`
//! looks for them, consensus ports chosen by the OS, the genesis flags that name the committee,
//! and the node flags that tell each validator where the others listen.

use std::net::TcpListener;
use std::path::Path;

use neuroshard_primitives::Keypair;
use serde_json::Value;

use crate::nodes::http_get_json;

/// The validators of a test network: name, hex id, consensus address.
#[derive(Debug, Clone)]
pub struct Committee {
    members: Vec<(String, String, String)>,
}

/// Writes the key of node `name` (seed `seed`) into `work/name/node.key`; returns its hex id.
pub fn write_key(work: &Path, name: &str, seed: u8) -> String {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir).expect("creating the node's data directory");
    let key = Keypair::from_seed([seed; 32]);
    std::fs::write(dir.join("node.key"), hex::encode(key.secret_bytes())).expect("writing the key");
    key.node_id().to_hex()
}

/// A free TCP port on 127.0.0.1, as `127.0.0.1:PORT`: a consensus address for a node.
pub fn free_port() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    port.to_string()
}

impl Committee {
    /// Keys for `names` (seeds 1, 2, …) and a free consensus port for each.
    pub fn new(work: &Path, names: &[&str]) -> Committee {
        let members = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let id = write_key(work, name, i as u8 + 1);
                ((*name).to_owned(), id, free_port())
            })
            .collect();
        Committee { members }
    }

    /// `genesis init` flags: every member a validator, each given `balance` micro-NEURO, and
    /// `others` (hex ids) given `balance` too.
    pub fn genesis_flags(&self, balance: u64, others: &[&str]) -> Vec<String> {
        let mut flags = Vec::new();
        for (_, id, _) in &self.members {
            flags.extend(["--validator".to_owned(), id.clone()]);
        }
        let ids = self.members.iter().map(|(_, id, _)| id.as_str());
        for id in ids.chain(others.iter().copied()) {
            flags.extend(["--allocate".to_owned(), format!("{id}={balance}")]);
        }
        flags
    }

    /// `neuroshard node` flags for member `name`.
    pub fn node_flags(&self, name: &str) -> Vec<String> {
        let mut flags = Vec::new();
        for (member, id, addr) in &self.members {
            if member == name {
                flags.extend(["--consensus-listen".to_owned(), addr.clone()]);
            } else {
                flags.extend(["--validator".to_owned(), format!("{id}@{addr}")]);
            }
        }
        flags
    }

    /// Member `name`'s hex id.
    pub fn id(&self, name: &str) -> &str {
        let member = self.members.iter().find(|(m, ..)| m == name);
        &member.expect("a member of the committee").1
    }
}

/// The ledger part of a node's status (`Value::Null` without a ledger).
pub fn ledger_of(status: &Value) -> &Value {
    &status["ledger"]
}

/// The committee a status reports, hex ids (empty when absent).
pub fn committee_of(status: &Value) -> Vec<&str> {
    ledger_of(status)["committee"]
        .as_array()
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether a status says the node validates.
pub fn validates(status: &Value) -> bool {
    ledger_of(status)["validator"] == true
}

/// The ledger height a status reports (0 when absent).
pub fn height_of(status: &Value) -> u64 {
    ledger_of(status)["height"].as_u64().unwrap_or(0)
}

/// `GET /api/ledger/…` from the node at `dashboard`.
pub fn ledger_get(dashboard: &str, path: &str) -> Option<Value> {
    http_get_json(dashboard, &format!("/api/ledger/{path}"))
}
