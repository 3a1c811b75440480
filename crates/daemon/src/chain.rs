//! The node's ledger: the consensus engine when the node validates, a follower when it does not;
//! the view the node reads its rounds' lists from; the outbox its claims, verdicts, convictions
//! and wallet requests leave through.
//!
//! ```text
//!  validator: engine ──Finalized──▶ Chain::applied ──▶ Input::Decided, outbox, status
//!                          └─▶ gossip Block{block, certificate} on the ledger topic
//!  follower:  gossip Block ──▶ Follower::accept (certificate, parent, re-execution, root)
//!                          └─▶ Chain::applied (the same path)
//!  every node: outbox ──▶ gossip Tx on the ledger topic ──▶ each validator's mempool
//! ```
//!
//! The role follows the committee: a node given a consensus address (`--consensus-listen`)
//! registers it on the ledger once it holds the validator bond (`Action::Register`), so the
//! election can pick it. When the committee of the next block's epoch holds it, its follower
//! hands the store to the engine; when the engine reports it left the committee, the engine
//! hands the store back to a follower. Either way the store is the one source, so nothing is
//! applied twice or lost at the switch.
//!
//! Every block is applied once more here with the same state transition (`Ledger::execute`) on
//! the node's own copy of the state, for the receipt (a closed round's list, payouts, slashes);
//! the root must equal the one the block carries.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use neuroshard_consensus::node::{NodeConfig as EngineConfig, NodeHandle};
use neuroshard_consensus::{Block, Finalized, Follower, Header, Machine, Timing};
use neuroshard_ledger::{
    Action, BlockInfo, Body, Claim, Ledger, LedgerGenesis, Outbox, PlanRecord, PoolEntry, Receipt,
    Rules, SignedTx, State, WalletRequest, Work,
};
use neuroshard_node::WorkChecks;
use neuroshard_pool::Plan;
use neuroshard_primitives::{Hash, Keypair, NodeId};
use neuroshard_verify::AuditConfig;
use serde::{Deserialize, Serialize};

use crate::atomic::{Durability, write_atomic};
use crate::book::Book;
use crate::role::Planner;
use crate::{Error, Result};

/// Gossip topic of ledger messages.
pub(crate) const LEDGER_TOPIC: &str = "ledger";
/// Namespace of an announcement whose payload is a [`LedgerWire`].
pub(crate) const LEDGER_NS: &str = "neuroshard/ledger/1";
/// Blocks a node sends per catch-up request.
const SYNC_BATCH: u64 = 32;
/// A peer is sent a catch-up batch at most this often (a `Need` costs its sender one message
/// and the server up to a batch).
const SERVE_EVERY_MS: u64 = 1_000;
/// The directory, in the ledger's, of the boundary blocks' committee proofs.
const HANDOVERS: &str = "handovers";
/// Wallet requests remembered, so each is taken once.
const REQUESTS_KEPT: usize = 4096;

/// What nodes say to each other about the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum LedgerWire {
    /// A signed transaction for the validators' mempools.
    Tx(Vec<u8>),
    /// A finalized block, with its certificate when it has its own.
    Block {
        /// The block's canonical bytes.
        block: Vec<u8>,
        /// Its finalization certificate.
        certificate: Option<Vec<u8>>,
    },
    /// "Send me the blocks from this height on" (to one peer's inbox).
    Need {
        /// The first height wanted.
        from: u64,
    },
}

// The engine sizes its network for committees of at most `MAX_COMMITTEE`.
const _: () = assert!(Rules::DEFAULT.committee_size <= neuroshard_consensus::MAX_COMMITTEE);

/// The ledger's state machine for the consensus engine: the pure ledger and its genesis.
#[derive(Debug, Clone)]
pub(crate) struct LedgerMachine {
    ledger: Ledger<NodeWork>,
    genesis: State,
}

impl LedgerMachine {
    /// The machine for a network's genesis (its state and rules), checking Proof of Neural Work
    /// under `audit` and planning the pipeline with `planner` (none: no plans).
    pub(crate) fn new(
        genesis: &LedgerGenesis,
        audit: AuditConfig,
        planner: Option<Planner>,
    ) -> Result<Self> {
        let work = NodeWork {
            checks: WorkChecks::new(audit),
            planner,
        };
        Ok(Self {
            genesis: genesis.state().map_err(Error::Ledger)?,
            ledger: Ledger::new(genesis.rules, work).map_err(Error::Ledger)?,
        })
    }
}

/// What the ledger checks Proof of Neural Work with (the node core's checks) and plans the
/// pipeline by.
#[derive(Debug, Clone)]
struct NodeWork {
    checks: WorkChecks,
    planner: Option<Planner>,
}

impl Work for NodeWork {
    fn ticket_selects(
        &self,
        round: u64,
        claim: &Claim,
        auditor: &NodeId,
        ticket: &[u8],
        contributors: usize,
    ) -> bool {
        (self.checks).ticket_selects(round, claim, auditor, ticket, contributors)
    }

    fn evidence_holds(&self, round: u64, claim: &Claim, evidence: &[u8]) -> Result<(), String> {
        self.checks.evidence_holds(round, claim, evidence)
    }

    fn plan(
        &self,
        latest: Option<&Plan>,
        roll: &BTreeMap<NodeId, PoolEntry>,
        left: &[NodeId],
        sizes: &[u64],
    ) -> Option<Plan> {
        let planner = self.planner.as_ref()?;
        Some(planner.plan(latest, roll, left, sizes))
    }
}

fn info(header: &Header) -> BlockInfo {
    BlockInfo {
        height: header.height,
        time_ms: header.timestamp_ms,
        proposer: NodeId(header.proposer),
    }
}

impl Machine for LedgerMachine {
    type State = State;

    fn genesis(&self) -> State {
        self.genesis.clone()
    }

    fn committee(&self, state: &State) -> Vec<[u8; 32]> {
        state.meta.committee.iter().map(|id| id.0).collect()
    }

    fn format(&self) -> u64 {
        neuroshard_ledger::STATE_FORMAT
    }

    fn build(&self, state: &State, header: &Header, pending: &[Vec<u8>]) -> Vec<u8> {
        self.ledger.build(state, &info(header), pending)
    }

    fn transactions(&self, body: &[u8]) -> Vec<Vec<u8>> {
        Body::decode(body, self.ledger.rules()).map_or_else(|_| Vec::new(), |b| b.txs)
    }

    fn execute(&self, state: &mut State, header: &Header, body: &[u8]) -> Result<(), String> {
        let info = info(header);
        self.ledger
            .execute(state, &info, body)
            .map(|_| ())
            .map_err(|err| err.to_string())
    }

    fn root(&self, state: &State) -> [u8; 32] {
        state.root().0
    }

    fn epoch_length(&self) -> u64 {
        self.ledger.rules().epoch_blocks
    }

    fn address(&self, state: &State, key: &[u8; 32]) -> Option<SocketAddr> {
        state.meta.addresses.get(&NodeId(*key)).copied()
    }

    fn changes(&self, before: &State, after: &State) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        after.changes(before)
    }

    fn load(&self, rows: Vec<(Vec<u8>, Vec<u8>)>) -> Result<State, String> {
        if rows.is_empty() {
            return Ok(State::default());
        }
        State::from_rows(rows).map_err(|err| err.to_string())
    }
}

/// How this node takes part.
enum Role {
    /// It is in the committee: it runs the engine, and hears of each block it finalizes.
    Validator(
        Box<NodeHandle<LedgerMachine>>,
        futures::channel::mpsc::UnboundedReceiver<Finalized>,
    ),
    /// It follows the validators' blocks.
    Follower(Box<Follower<LedgerMachine>>),
    /// Between the two, while one role has closed the store and the other not yet opened it.
    Switching,
}

impl std::fmt::Debug for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Validator(..) => "Validator",
            Role::Follower(_) => "Follower",
            Role::Switching => "Switching",
        })
    }
}

/// Where a validator listens for the committee, and where the others listen.
#[derive(Debug, Clone)]
pub(crate) struct Committee {
    /// This node's consensus address.
    pub(crate) listen: SocketAddr,
    /// The other validators' keys and consensus addresses.
    pub(crate) peers: Vec<(NodeId, SocketAddr)>,
}

/// What the driver must do after the ledger moved.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Ledger messages to gossip (topic, payload, direct).
    pub(crate) gossip: Vec<(String, LedgerWire, bool)>,
    /// Rounds the ledger closed, with their claims in ledger order: the node core takes its
    /// part's as the round's list.
    pub(crate) decided: Vec<(u64, Vec<Claim>)>,
    /// Receipts of the blocks applied, for the status.
    pub(crate) receipts: Vec<(Header, Receipt)>,
    /// The pool's plan boundaries among the blocks applied, each with the roll after it
    /// (`docs/replan.md`).
    pub(crate) boundaries: Vec<PoolBoundary>,
}

/// A plan boundary of the pipeline's layer pool: its height, the ledger's latest plan and the
/// pool sizes noted at the boundaries up to it, as the state after its block holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolBoundary {
    /// The boundary's height.
    pub(crate) height: u64,
    /// The ledger's latest plan, made at this boundary or an earlier one; none before the
    /// first.
    pub(crate) plan: Option<PlanRecord>,
    /// The pool sizes at the last boundaries, this one's last.
    pub(crate) sizes: Vec<u64>,
}

/// The node's ledger.
#[derive(Debug)]
pub(crate) struct Chain {
    machine: LedgerMachine,
    role: Role,
    /// The ledger's directory (the store and the engine's runtime storage).
    dir: PathBuf,
    /// This node's key, for the engine when it joins the committee.
    secret: [u8; 32],
    /// Where this node's engine listens and where the genesis committee does; `None`: the node
    /// only ever follows.
    committee: Option<Committee>,
    /// The state after the last block this node applied.
    view: State,
    /// The last applied block's header.
    head: Header,
    outbox: Outbox,
    owner: NodeId,
    network: Hash,
    requests: VecDeque<Hash>,
    book: Book,
    /// When each peer was last sent a catch-up batch.
    served: BTreeMap<NodeId, u64>,
}

/// The ledger store in `dir` did not open: a store of another version's format says what to do.
fn opening_failed(dir: &Path, err: &neuroshard_consensus::Error) -> Error {
    let advice = match (err, dir.parent()) {
        (neuroshard_consensus::Error::Format { .. }, Some(data_dir)) => format!(
            " ({}). Start this node afresh: remove everything in {} but node.key; it catches up on \
             the ledger and resyncs the model from its peers",
            dir.display(),
            data_dir.display()
        ),
        _ => String::new(),
    };
    Error::Ledger(format!("{err}{advice}"))
}

impl Chain {
    /// Opens the ledger in `dir`: the engine when `owner` is in the committee of the epoch the
    /// store is in (then `committee` must say where the validators listen), else a follower.
    /// It checks work under `audit` and plans the pipeline with `planner`.
    pub(crate) fn open(
        dir: &Path,
        key: &Keypair,
        genesis: &LedgerGenesis,
        (audit, planner): (AuditConfig, Planner),
        committee: Option<Committee>,
    ) -> Result<Self> {
        let machine = LedgerMachine::new(genesis, audit, Some(planner))?;
        let owner = key.node_id();
        warn_if_unregistrable(committee.as_ref());
        if genesis.committee.contains(&owner) && committee.is_none() {
            return Err(Error::Config(
                "this node is in the genesis committee: give --consensus-listen and \
                 --validator KEY@ADDR for every other validator"
                    .into(),
            ));
        }
        let handovers = dir.join(HANDOVERS);
        std::fs::create_dir_all(&handovers).map_err(Error::io("creating", &handovers))?;
        let follower = Follower::open(&dir.join("ledger.redb"), machine.clone())
            .map_err(|err| opening_failed(dir, &err))?;
        let view = machine.genesis();
        let mut chain = Self {
            head: Block::genesis(view.root().0).header,
            view,
            machine,
            role: Role::Follower(Box::new(follower)),
            dir: dir.to_owned(),
            secret: key.secret_bytes(),
            committee,
            outbox: Outbox::new(Keypair::from_seed(key.secret_bytes()), genesis.network),
            owner,
            network: genesis.network,
            requests: VecDeque::new(),
            book: Book::default(),
            served: BTreeMap::new(),
        };
        // A restart: the blocks already in the store, onto the view; then the role the
        // committee gives.
        let mut effects = Effects::default();
        chain.catch_up(&mut effects, None)?;
        chain.settle_role(&mut effects)?;
        Ok(chain)
    }

    /// Switches between engine and follower when the committee of the next block's epoch
    /// gained or lost this node (see the module docs).
    fn settle_role(&mut self, effects: &mut Effects) -> Result<()> {
        let member = self.view.meta.committee.contains(&self.owner);
        let join = member && self.committee.is_some() && matches!(self.role, Role::Follower(_));
        let leave =
            matches!(&self.role, Role::Validator(engine, _) if !engine.validator().validating());
        if !join && !leave {
            return Ok(());
        }
        // The store has one opener at a time: close it before the other role opens it.
        if let Role::Validator(engine, _) = std::mem::replace(&mut self.role, Role::Switching) {
            engine.shutdown();
        }
        let engine = match (join, &self.committee) {
            (true, Some(committee)) => {
                start_engine(&self.dir, &self.secret, &self.machine, committee.clone()).map(Some)
            }
            _ => Ok(None),
        };
        match engine {
            Ok(Some(engine)) => {
                tracing::info!(height = self.head.height, "joined the validator committee");
                let finalized = engine.subscribe();
                self.role = Role::Validator(Box::new(engine), finalized);
                Ok(())
            }
            Ok(None) => {
                tracing::info!(height = self.head.height, "left the validator committee");
                self.role = Role::Follower(Box::new(self.open_follower()?));
                // The engine may have applied blocks the view has not seen yet.
                self.catch_up(effects, None)
            }
            Err(err) => {
                self.role = Role::Follower(Box::new(self.open_follower()?));
                Err(err)
            }
        }
    }

    fn open_follower(&self) -> Result<Follower<LedgerMachine>> {
        Follower::open(&self.dir.join("ledger.redb"), self.machine.clone())
            .map_err(|err| Error::Ledger(err.to_string()))
    }

    /// Applies to the view every block the store holds beyond it; a validator gossips each to
    /// the followers. `now_ms`: the driver's clock when these blocks were finalized just now
    /// (`None` when they are read back at a restart), so their finality can be measured.
    fn catch_up(&mut self, effects: &mut Effects, now_ms: Option<u64>) -> Result<()> {
        for height in self.head.height + 1..=self.store_height() {
            let block = self.stored(height)?;
            let rounds = self.view.meta.rounds.clone();
            let receipt = self.apply(&block.header, &block.body)?;
            self.book
                .record(&block.header, &receipt, &rounds, &self.owner, now_ms);
            if self.validates() {
                let certificate = self.certificate(height);
                let wire = LedgerWire::Block {
                    block: block.to_bytes(),
                    certificate,
                };
                effects.gossip.push((LEDGER_TOPIC.to_owned(), wire, false));
            }
            self.record(&block.header, receipt, effects);
        }
        Ok(())
    }

    fn store(&self) -> Option<&neuroshard_consensus::Store> {
        match &self.role {
            Role::Validator(engine, _) => Some(engine.validator().store()),
            Role::Follower(follower) => Some(follower.store()),
            Role::Switching => None,
        }
    }

    fn certificate(&self, height: u64) -> Option<Vec<u8>> {
        self.store()?.certificate(height).ok().flatten()
    }

    fn store_height(&self) -> u64 {
        self.store()
            .and_then(|store| store.applied_height().ok().flatten())
            .unwrap_or(0)
    }

    fn stored(&self, height: u64) -> Result<Block> {
        self.store()
            .ok_or_else(|| Error::Ledger("the ledger is switching roles".into()))?
            .block(height)
            .map_err(|err| Error::Ledger(err.to_string()))?
            .ok_or_else(|| Error::Ledger(format!("block {height} missing from the store")))
    }

    /// Applies one block to the view, for its receipt; the root must match.
    fn apply(&mut self, header: &Header, body: &[u8]) -> Result<Receipt> {
        let info = info(header);
        let receipt = self
            .machine
            .ledger
            .execute(&mut self.view, &info, body)
            .map_err(|err| Error::Ledger(format!("block {}: {err}", header.height)))?;
        if self.view.root().0 != header.state_root {
            return Err(Error::Ledger(format!(
                "block {}: the state root differs from the block's",
                header.height
            )));
        }
        self.outbox.applied(&receipt);
        self.head = header.clone();
        if self.machine.ledger.rules().ends_epoch(header.height) {
            let proof = postcard::to_allocvec(&self.view.prove_meta())
                .map_err(|err| Error::Ledger(err.to_string()))?;
            write_atomic(
                &self.handover_path(header.height),
                &proof,
                Durability::Volatile,
            )?;
        }
        Ok(receipt)
    }

    /// Where the committee proof of the boundary block at `height` is kept: the encoded
    /// `MetaProof` of the state after it, the wallet's chain of custody. One small file per
    /// epoch, so the node's memory does not grow with the chain; derived data, written again by
    /// the replay at every restart.
    fn handover_path(&self, height: u64) -> PathBuf {
        self.dir.join(HANDOVERS).join(height.to_string())
    }

    /// The committee proof of the block at `height`, if it ended an epoch this node applied.
    pub(crate) fn handover(&self, height: u64) -> Option<Vec<u8>> {
        let applied = height <= self.head.height;
        let boundary = self.machine.ledger.rules().ends_epoch(height);
        (applied && boundary)
            .then(|| std::fs::read(self.handover_path(height)).ok())
            .flatten()
    }

    /// Waits until the engine has finalized a block (validators; never resolves for a
    /// follower, or once the engine stopped).
    pub(crate) async fn finalized(&mut self) {
        use futures::StreamExt as _;
        match &mut self.role {
            Role::Validator(_, finalized) => {
                if finalized.next().await.is_none() {
                    std::future::pending::<()>().await;
                }
            }
            Role::Follower(_) | Role::Switching => std::future::pending().await,
        }
    }

    /// The engine finalized blocks: apply what the store holds beyond the view (the store,
    /// written before the notice, is the one source), and tell the followers.
    pub(crate) fn on_finalized(&mut self, now_ms: u64) -> Result<Effects> {
        let mut effects = Effects::default();
        self.catch_up(&mut effects, Some(now_ms))?;
        self.settle_role(&mut effects)?;
        Ok(effects)
    }

    fn record(&mut self, header: &Header, receipt: Receipt, effects: &mut Effects) {
        if let Some((round, claims)) = &receipt.closed {
            effects.decided.push((*round, claims.clone()));
        }
        effects.receipts.push((header.clone(), receipt));
        if self.machine.ledger.rules().is_pool_boundary(header.height) {
            effects.boundaries.push(PoolBoundary {
                height: header.height,
                plan: self.view.plan().cloned(),
                sizes: self.view.pool_sizes().to_vec(),
            });
        }
        self.resign(effects);
    }

    /// Signs the outbox again from the view and queues its transactions for gossip (and this
    /// validator's own mempool).
    fn resign(&mut self, effects: &mut Effects) {
        for tx in self.outbox.sign(&self.machine.ledger, &self.view) {
            if let Role::Validator(engine, _) = &self.role {
                let _ = engine.submit(tx.clone());
            }
            effects
                .gossip
                .push((LEDGER_TOPIC.to_owned(), LedgerWire::Tx(tx), false));
        }
    }

    /// `Register` of this node's consensus address, when it has one, holds the validator bond,
    /// and neither the ledger nor the outbox has it yet.
    fn registration(&self) -> Option<Action> {
        let listen = self.committee.as_ref()?.listen;
        if listen.ip().is_unspecified() {
            // The ledger refuses an address nobody can dial; the operator must name one.
            return None;
        }
        let bonded =
            self.view.account(&self.owner).stake >= self.machine.ledger.rules().validator_bond;
        let known = self.view.meta.addresses.get(&self.owner) == Some(&listen);
        let waiting = self
            .outbox
            .waiting()
            .any(|(_, action)| matches!(action, Action::Register { .. }));
        (bonded && !known && !waiting).then_some(Action::Register { consensus: listen })
    }

    /// The node core asked for `action` on the ledger.
    pub(crate) fn push(&mut self, action: Action) -> Effects {
        self.outbox.push(action);
        let mut effects = Effects::default();
        self.resign(&mut effects);
        effects
    }

    /// A wallet's sealed request at `now_ms`: taken once, into the outbox.
    pub(crate) fn request(&mut self, bytes: &[u8], now_ms: u64) -> Result<(Hash, Effects), String> {
        let (request, hash) = WalletRequest::open(bytes, &self.owner, &self.network, now_ms)
            .map_err(|err| err.to_string())?;
        if self.requests.contains(&hash) {
            return Err("this request was already taken".into());
        }
        if self.requests.len() >= REQUESTS_KEPT {
            self.requests.pop_front();
        }
        self.requests.push_back(hash);
        Ok((hash, self.push(request.action)))
    }

    /// Every second: register this node's consensus address when it is bonded and the ledger
    /// lacks it, sign the outbox again (a lost transaction goes out again), take the role the
    /// committee gives, and a follower behind the network asks a validator for the blocks it
    /// lacks.
    pub(crate) fn tick(&mut self, behind: bool, ask: Option<NodeId>) -> Effects {
        let mut effects = Effects::default();
        if let Some(action) = self.registration() {
            self.outbox.push(action);
        }
        if let Err(err) = self.settle_role(&mut effects) {
            tracing::error!(%err, "the ledger could not change roles");
        }
        if !self.outbox.is_empty() {
            self.resign(&mut effects);
        }
        if let (Role::Follower(_), true, Some(peer)) = (&self.role, behind, ask) {
            effects.gossip.push((
                crate::wire::inbox_topic(&peer),
                LedgerWire::Need {
                    from: self.head.height + 1,
                },
                true,
            ));
        }
        effects
    }

    /// A ledger message from `from`.
    pub(crate) fn on_wire(
        &mut self,
        from: NodeId,
        wire: LedgerWire,
        now_ms: u64,
    ) -> Result<Effects> {
        let mut effects = Effects::default();
        match wire {
            LedgerWire::Tx(tx) => {
                if let (Role::Validator(engine, _), true) = (&self.role, self.admits(&tx)) {
                    let _ = engine.submit(tx);
                }
            }
            LedgerWire::Block { block, certificate } => {
                self.follow(&block, certificate.as_deref(), now_ms, &mut effects)?;
            }
            LedgerWire::Need { from: height } => self.serve(from, height, now_ms, &mut effects),
        }
        Ok(effects)
    }

    /// Whether a gossiped transaction may enter this validator's mempool: it decodes, its
    /// signature holds, it names this network and a nonce the account has not used. (Whether it
    /// applies is decided when a block is built; the mempool drops what waits too long.)
    fn admits(&self, bytes: &[u8]) -> bool {
        SignedTx::decode(bytes).is_ok_and(|tx| {
            tx.tx.network == self.network && tx.tx.nonce >= self.view.account(&tx.signer).nonce
        })
    }

    /// A follower takes a block: checked by the follower, then applied here.
    fn follow(
        &mut self,
        block: &[u8],
        certificate: Option<&[u8]>,
        now_ms: u64,
        effects: &mut Effects,
    ) -> Result<()> {
        let Role::Follower(follower) = &mut self.role else {
            return Ok(());
        };
        match follower.accept(block, certificate) {
            Ok(0) => Ok(()),
            Ok(_) => {
                self.catch_up(effects, Some(now_ms))?;
                self.settle_role(effects)
            }
            Err(err) => {
                tracing::debug!(%err, "a ledger block was refused");
                Ok(())
            }
        }
    }

    /// Sends `peer` the stored blocks from `from` on, a batch at a time, at most once per
    /// [`SERVE_EVERY_MS`].
    fn serve(&mut self, peer: NodeId, from: u64, now: u64, effects: &mut Effects) {
        if self
            .served
            .get(&peer)
            .is_some_and(|at| now.saturating_sub(*at) < SERVE_EVERY_MS)
        {
            return;
        }
        if self.served.len() >= REQUESTS_KEPT {
            self.served.clear();
        }
        self.served.insert(peer, now);
        let top = self.store_height();
        let last = top.min(from.saturating_add(SYNC_BATCH - 1));
        for height in from.max(1)..=last {
            let Ok(block) = self.stored(height) else {
                return;
            };
            let wire = LedgerWire::Block {
                block: block.to_bytes(),
                certificate: self.certificate(height),
            };
            effects
                .gossip
                .push((crate::wire::inbox_topic(&peer), wire, true));
        }
    }

    /// Whether this node validates.
    pub(crate) fn validates(&self) -> bool {
        matches!(self.role, Role::Validator(..))
    }

    /// The state after the last applied block.
    pub(crate) fn view(&self) -> &State {
        &self.view
    }

    /// The last applied block's header.
    pub(crate) fn head(&self) -> &Header {
        &self.head
    }

    /// The ledger's rules.
    pub(crate) fn rules(&self) -> &Rules {
        self.machine.ledger.rules()
    }

    /// The round a round core built from scratch (without a checkpoint to resume) starts at,
    /// at `now_ms`: the round open for claims, or the one after it once the open round's window
    /// has passed (its claims are from before a restart of the network, and the next block
    /// closes it). A core at a round the ledger has closed would wait for a list that never
    /// comes: the ledger takes claims for the open round only.
    pub(crate) fn fresh_round(&self, now_ms: u64) -> u64 {
        let meta = &self.view.meta;
        let window = self.rules().claim_window_ms;
        let book = meta.rounds.get(&meta.open_round);
        let stale = book.is_some_and(|b| now_ms >= b.opened_ms.saturating_add(window));
        meta.open_round.saturating_add(u64::from(stale))
    }

    /// This node's account.
    pub(crate) fn owner(&self) -> NodeId {
        self.owner
    }

    /// The record the API reads.
    pub(crate) fn book(&self) -> &Book {
        &self.book
    }

    /// The ledger part of the node's status.
    pub(crate) fn status(&self) -> neuroshard_api::LedgerStatus {
        self.book.status(
            &self.view,
            &self.head,
            &self.owner,
            self.validates(),
            &self.outbox,
        )
    }

    /// A stored block and its certificate, if this node has it.
    pub(crate) fn stored_with_certificate(&self, height: u64) -> Option<(Block, Option<Vec<u8>>)> {
        let block = self.store()?.block(height).ok().flatten()?;
        Some((block, self.certificate(height)))
    }
}

/// Warns the operator when this node's consensus address can never be registered.
fn warn_if_unregistrable(committee: Option<&Committee>) {
    if let Some(listen) = committee.map(|c| c.listen)
        && listen.ip().is_unspecified()
    {
        tracing::warn!(
            %listen,
            "--consensus-listen has no specific IP: the ledger refuses to register an address \
             nobody can dial, so the election never picks this node (a genesis validator leaves \
             the committee at the first election); give the address the other validators reach \
             it at"
        );
    }
}

/// How often, and how far apart, a validator tries whether its consensus address is free (a
/// restarted node's previous process may still be exiting): 10 s in all.
const LISTEN_TRIES: (u32, Duration) = (50, Duration::from_millis(200));

/// Waits (trying `tries.0` times, `tries.1` apart) until nothing listens on `addr`: the engine's
/// listener panics in a task of its own when it cannot bind, which would leave the node without
/// a ledger.
fn wait_until_free(addr: SocketAddr, (tries, apart): (u32, Duration)) -> Result<()> {
    let mut last = None;
    for _ in 0..tries {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        };
        let bound = socket.and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(addr)
        });
        match bound {
            Ok(()) => return Ok(()),
            Err(err) => last = Some(err),
        }
        std::thread::sleep(apart);
    }
    let why = last.map_or_else(String::new, |e| e.to_string());
    Err(Error::Ledger(format!(
        "cannot listen for the ledger's committee at {addr}: {why}"
    )))
}

/// Starts the consensus engine for this validator.
fn start_engine(
    dir: &Path,
    secret: &[u8; 32],
    machine: &LedgerMachine,
    committee: Committee,
) -> Result<NodeHandle<LedgerMachine>> {
    wait_until_free(committee.listen, LISTEN_TRIES)?;
    let config = EngineConfig {
        secret_key: *secret,
        listen: committee.listen,
        peers: committee.peers.iter().map(|(id, a)| (id.0, *a)).collect(),
        data_dir: dir.to_owned(),
        machine: machine.clone(),
        timing: Timing::default(),
    };
    neuroshard_consensus::node::start(config).map_err(|err| Error::Ledger(err.to_string()))
}

/// Parses `KEY@ADDR` (a validator's hex node id and consensus address).
pub(crate) fn parse_validator(text: &str) -> Result<(NodeId, SocketAddr)> {
    let bad = |why: &str| Error::Config(format!("--validator {text:?}: {why}"));
    let (key, addr) = text
        .split_once('@')
        .ok_or_else(|| bad("expected KEY@HOST:PORT"))?;
    let bytes = hex::decode(key).map_err(|_| bad("the key is not hex"))?;
    let id: [u8; 32] = bytes
        .try_into()
        .map_err(|_| bad("the key is not 32 bytes"))?;
    let addr = addr
        .parse()
        .map_err(|_| bad("the address is not HOST:PORT"))?;
    Ok((NodeId(id), addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_validator_waits_for_its_consensus_address_to_be_free() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let quick = (3, Duration::from_millis(10));
        let err = wait_until_free(addr, quick).unwrap_err().to_string();
        assert!(err.contains(&addr.to_string()), "{err}");
        drop(held);
        wait_until_free(addr, quick).unwrap();
    }

    #[test]
    fn the_ledger_limits_fit_the_engine() {
        assert_eq!(
            neuroshard_ledger::MAX_BODY_BYTES,
            neuroshard_consensus::MAX_BODY_BYTES
        );
        let machine = LedgerMachine::new(
            &LedgerGenesis {
                network: Hash([1; 32]),
                committee: vec![NodeId([2; 32])],
                allocations: Vec::new(),
                rules: Rules {
                    epoch_blocks: 20,
                    ..Rules::DEFAULT
                },
            },
            AuditConfig::DEFAULT,
            None,
        )
        .unwrap();
        assert_eq!(
            machine.epoch_length(),
            20,
            "the genesis file's epoch length"
        );
    }
}
