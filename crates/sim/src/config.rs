//! A scenario's settings: how many nodes, who attacks and how, the network, compute speeds.

use neuroshard_node::NodeConfig;

use crate::adversary::Attack;
use crate::byzantine::Byzantine;
use crate::cheat::Cheat;
use crate::churn::{self, ChurnEvent};
use crate::network::Link;
use crate::{Error, Result};

/// One link that differs from the default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkOverride {
    /// Sender's index.
    pub from: usize,
    /// Receiver's index.
    pub to: usize,
    /// The link.
    pub link: Link,
}

/// Everything a simulated run depends on besides the workload.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The run's seed: node keys, roles, link jitter and loss, attack noise derive from it.
    pub seed: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// How many of them are Byzantine.
    pub byzantine: usize,
    /// What the Byzantine nodes do.
    pub attack: Attack,
    /// How many colluding groups the attackers form (they share statistics within a group).
    pub groups: usize,
    /// Rounds to run.
    pub rounds: u64,
    /// The protocol settings every node shares.
    pub node: NodeConfig,
    /// The link between any two nodes.
    pub link: Link,
    /// Links that differ from [`SimConfig::link`].
    pub link_overrides: Vec<LinkOverride>,
    /// Each node's training speed in tokens per simulated second.
    pub tokens_per_sec: Vec<f64>,
    /// Joins, leaves, crashes, restarts and partitions, each keyed to a round; a node with a
    /// join starts offline.
    pub churn: Vec<ChurnEvent>,
    /// How the cheaters cheat the work proof (needs audits on: `node.audit`).
    pub cheat: Option<Cheat>,
    /// How many nodes cheat: the highest-numbered nodes that do not attack.
    pub cheaters: usize,
    /// Whether rounds close through the NEURO ledger (`LedgerAgreement`, every node in the
    /// genesis committee) instead of by deadline.
    pub ledger: bool,
}

impl SimConfig {
    /// Refuses contradictory settings with a message that says what to change.
    pub fn validate(&self) -> Result<()> {
        let fail = |msg: String| Err(Error::InvalidConfig(msg));
        if self.nodes == 0 || self.rounds == 0 {
            return fail("need at least one node and one round".into());
        }
        if self.byzantine >= self.nodes {
            return fail(format!(
                "{} attackers among {} nodes leaves no honest node; use fewer --byzantine",
                self.byzantine, self.nodes
            ));
        }
        if self.cheaters > 0 && (self.cheat.is_none() || self.node.audit.is_none()) {
            return fail(format!(
                "{} cheaters need a --cheat and audits on (the work proof is what they cheat)",
                self.cheaters
            ));
        }
        if self.byzantine + self.cheaters >= self.nodes {
            return fail(format!(
                "{} attackers and {} cheaters among {} nodes leave no honest node",
                self.byzantine, self.cheaters, self.nodes
            ));
        }
        if self.byzantine > 0 && (self.groups == 0 || self.groups > self.byzantine) {
            return fail(format!(
                "{} colluding groups for {} attackers; use between 1 and the number of attackers",
                self.groups, self.byzantine
            ));
        }
        if self.tokens_per_sec.len() != self.nodes
            || self
                .tokens_per_sec
                .iter()
                .any(|t| !(t.is_finite() && *t > 0.0))
        {
            return fail("give every node a positive, finite training speed".into());
        }
        let link_ok = |l: &Link| {
            l.latency_s >= 0.0
                && l.jitter_s >= 0.0
                && l.bandwidth_bps > 0.0
                && (0.0..1.0).contains(&l.loss)
        };
        let overrides_ok = self
            .link_overrides
            .iter()
            .all(|o| o.from < self.nodes && o.to < self.nodes && link_ok(&o.link));
        if !link_ok(&self.link) || !overrides_ok {
            return fail(
                "links need latency >= 0, bandwidth > 0, loss in [0, 1), nodes in range".into(),
            );
        }
        churn::validate(&self.churn, self.nodes)
    }

    /// The nodes the seed makes attackers, ascending (a scenario can give them a schedule).
    pub fn attackers(&self) -> Vec<usize> {
        Byzantine::for_config(self).attackers()
    }

    /// The cheating nodes, ascending: the highest-numbered nodes that do not attack.
    pub fn cheaters(&self) -> Vec<usize> {
        let attackers = self.attackers();
        let mut cheaters: Vec<usize> = (0..self.nodes)
            .rev()
            .filter(|n| !attackers.contains(n))
            .take(self.cheaters)
            .collect();
        cheaters.reverse();
        cheaters
    }
}
