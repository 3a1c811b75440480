//! Deterministic simulations: 4 to 7 validators on the simulated network, with crashes,
//! partitions, lossy links, an equivocator and a validator that mints money. After every
//! finalized block on every node the checker asserts no fork, one state root, and the supply.

use crate::machine::{Bank, Ledger, SUPPLY, bond, transfer};
use commonware_consensus::simplex::{elector::RoundRobin, mocks};
use commonware_cryptography::{Sha256, Signer as _, ed25519::PrivateKey};
use commonware_p2p::{
    simulated::{self, Link, Network, Oracle},
    utils::mux::Muxer,
};
use commonware_runtime::{
    Clock as _, Handle, Quota, Runner as _, Spawner as _, Supervisor as _, deterministic,
};
use commonware_utils::{NZU32, NZUsize, Probability};
use futures::{StreamExt as _, channel::oneshot};
use neuroshard_consensus::{
    Channels, Finalized, Follower, Machine as _, NAMESPACE, Scheme, Timing, Validator,
    ValidatorConfig, channel, committee_set, max_message_size, start_validator,
};
use rand::{Rng as _, SeedableRng as _};
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

type PublicKey = commonware_cryptography::ed25519::PublicKey;
type Ctx = deterministic::Context;

const QUOTA: Quota = Quota::per_second(NZU32!(100_000));

/// Checks every finalized block every node reports.
#[derive(Clone)]
struct Checker {
    inner: Arc<Mutex<CheckerInner>>,
}

struct CheckerInner {
    seed: u64,
    bank: Bank,
    /// The first report of each height: digest and state root.
    canonical: BTreeMap<u64, ([u8; 32], [u8; 32])>,
    /// The reference state after the highest canonical block.
    reference: Ledger,
    /// The last height each node reported.
    last: BTreeMap<usize, u64>,
    /// Blocks with a certificate of their own, and without.
    certified: u64,
    uncertified: u64,
}

impl Checker {
    fn new(seed: u64, bank: Bank) -> Self {
        let reference = bank.genesis();
        let mut canonical = BTreeMap::new();
        let genesis = neuroshard_consensus::Block::genesis(bank.root(&reference));
        canonical.insert(0, (genesis.id(), genesis.header.state_root));
        Self {
            inner: Arc::new(Mutex::new(CheckerInner {
                seed,
                bank,
                canonical,
                reference,
                last: BTreeMap::new(),
                certified: 0,
                uncertified: 0,
            })),
        }
    }

    /// A node (re)started from its store at `height`: it must not have lost a block it reported.
    fn started(&self, node: usize, height: u64) {
        let mut c = self.inner.lock().unwrap();
        let seed = c.seed;
        if let Some(before) = c.last.insert(node, height) {
            assert!(
                height >= before,
                "seed {seed}: node {node} reported height {before} but restarted at {height}"
            );
        }
    }

    fn record(&self, node: usize, block: &Finalized) {
        let mut c = self.inner.lock().unwrap();
        let seed = c.seed;
        let height = block.header.height;
        let last = c.last.get(&node).copied().unwrap_or(0);
        assert_eq!(
            height,
            last + 1,
            "seed {seed}: node {node} skipped from {last} to {height}"
        );
        c.last.insert(node, height);
        if block.certificate.is_some() {
            c.certified += 1;
        } else {
            c.uncertified += 1;
        }
        if let Some((digest, root)) = c.canonical.get(&height) {
            assert_eq!(
                *digest, block.digest,
                "seed {seed}: fork at height {height} on node {node}"
            );
            assert_eq!(
                *root, block.header.state_root,
                "seed {seed}: root differs at {height}"
            );
            return;
        }
        let top = *c.canonical.keys().next_back().unwrap();
        assert_eq!(
            height,
            top + 1,
            "seed {seed}: canonical chain gap at {height}"
        );
        let (parent, _) = c.canonical[&top];
        assert_eq!(
            block.header.parent, parent,
            "seed {seed}: parent link broken at {height}"
        );
        let bank = c.bank.clone();
        let mut state = c.reference.clone();
        bank.execute(&mut state, &block.header, &block.body)
            .unwrap_or_else(|e| panic!("seed {seed}: finalized block {height} is invalid: {e}"));
        assert_eq!(
            bank.root(&state),
            block.header.state_root,
            "seed {seed}: bad root at {height}"
        );
        assert_eq!(
            state.supply(),
            SUPPLY,
            "seed {seed}: supply changed at height {height}"
        );
        c.reference = state;
        c.canonical
            .insert(height, (block.digest, block.header.state_root));
    }

    fn root_at(&self, height: u64) -> Option<[u8; 32]> {
        self.inner
            .lock()
            .unwrap()
            .canonical
            .get(&height)
            .map(|(_, r)| *r)
    }

    /// One line about the run: heights, certificates, transfers.
    fn summary(&self, name: &str) -> String {
        let c = self.inner.lock().unwrap();
        format!(
            "{name} seed {}: height {}, reports with own certificate {}, through a descendant {}, transfers {}",
            c.seed,
            c.canonical.keys().next_back().unwrap(),
            c.certified,
            c.uncertified,
            c.reference.applied.len()
        )
    }

    fn transfers(&self) -> usize {
        self.inner.lock().unwrap().reference.applied.len()
    }
}

struct Node {
    validator: Validator<Bank>,
    task: Handle<()>,
}

struct Sim {
    context: Ctx,
    oracle: Oracle<PublicKey, Ctx>,
    keys: Vec<PrivateKey>,
    bank: Bank,
    dir: PathBuf,
    checker: Checker,
    nodes: Vec<Option<Node>>,
    link: Link,
}

fn timing() -> Timing {
    Timing {
        leader_timeout: Duration::from_millis(500),
        certification_timeout: Duration::from_secs(1),
        timeout_retry: Duration::from_secs(2),
        fetch_timeout: Duration::from_millis(500),
    }
}

impl Sim {
    async fn new(
        context: Ctx,
        n: usize,
        link: Link,
        checker: Checker,
        bank: Bank,
        dir: PathBuf,
    ) -> Self {
        let keys: Vec<_> = (0..n as u64).map(PrivateKey::from_seed).collect();
        let (network, oracle) = Network::new_with_peers(
            context.child("network"),
            simulated::Config {
                max_size: max_message_size(),
                max_peers_per_set: NZUsize!(n),
                disconnect_on_block: true,
                tracked_peer_sets: NZUsize!(1),
            },
            keys.iter().map(|k| k.public_key()),
        )
        .await;
        network.start();
        let mut sim = Self {
            context,
            oracle,
            keys,
            bank,
            dir,
            checker,
            nodes: (0..n).map(|_| None).collect(),
            link,
        };
        sim.link_all().await;
        sim
    }

    async fn link_all(&mut self) {
        let n = self.keys.len();
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    let _ = self
                        .oracle
                        .add_link(
                            self.keys[a].public_key(),
                            self.keys[b].public_key(),
                            self.link.clone(),
                        )
                        .await;
                }
            }
        }
    }

    async fn cut(&mut self, group: &[usize]) {
        let n = self.keys.len();
        for &a in group {
            for b in (0..n).filter(|b| !group.contains(b)) {
                let (pa, pb) = (self.keys[a].public_key(), self.keys[b].public_key());
                let _ = self.oracle.remove_link(pa.clone(), pb.clone()).await;
                let _ = self.oracle.remove_link(pb, pa).await;
            }
        }
    }

    async fn channels(
        &self,
        i: usize,
    ) -> Channels<simulated::Sender<PublicKey, Ctx>, simulated::Receiver<PublicKey>> {
        let control = self.oracle.control(self.keys[i].public_key());
        Channels {
            votes: control.register(channel::VOTES, QUOTA).await.unwrap(),
            certificates: control
                .register(channel::CERTIFICATES, QUOTA)
                .await
                .unwrap(),
            resolver: control.register(channel::RESOLVER, QUOTA).await.unwrap(),
            broadcast: control.register(channel::BROADCAST, QUOTA).await.unwrap(),
            backfill: control.register(channel::BACKFILL, QUOTA).await.unwrap(),
        }
    }

    /// Starts every validator with the honest machine.
    async fn start_all(&mut self) {
        for i in 0..self.keys.len() {
            self.start(i, self.bank.clone()).await;
        }
    }

    async fn start(&mut self, i: usize, bank: Bank) {
        let channels = self.channels(i).await;
        let config = ValidatorConfig {
            key: self.keys[i].clone(),
            machine: bank,
            store: self.dir.join(format!("node{i}.redb")),
            partition: format!("node{i}"),
            timing: timing(),
        };
        let peers = self.oracle.manager();
        let blocker = self.oracle.control(self.keys[i].public_key());
        let checker = self.checker.clone();
        let (ready, started) = oneshot::channel();
        let task = self
            .context
            .child("validator")
            .with_attribute("index", i)
            .spawn(move |context| async move {
                let validator = start_validator(
                    context.child("engine"),
                    config,
                    channels,
                    peers,
                    blocker,
                    |_, _: &[neuroshard_consensus::Member]| {},
                )
                .await
                .expect("validator starts");
                // Subscribe before yielding, so no finalized block is missed.
                let mut finalized = validator.subscribe();
                checker.started(i, validator.finalized_height());
                let _ = ready.send(validator.clone());
                while let Some(block) = finalized.next().await {
                    checker.record(i, &block);
                }
                futures::future::pending::<()>().await;
            });
        let validator = started.await.expect("validator task reports");
        self.nodes[i] = Some(Node { validator, task });
    }

    /// Starts a Byzantine validator that sends conflicting notarize votes when it leads.
    async fn start_equivocator(&mut self, i: usize) {
        let channels = self.channels(i).await;
        let scheme = Scheme::signer(
            NAMESPACE,
            committee_set(&self.bank.committee).unwrap(),
            self.keys[i].clone(),
        )
        .unwrap();
        let equivocator = mocks::equivocator::Equivocator::<_, _, _, Sha256>::new(
            self.context.child("equivocator"),
            mocks::equivocator::Config {
                scheme,
                elector: RoundRobin::<Sha256>::default(),
                epoch: commonware_consensus::types::Epoch::zero(),
                relay: Arc::new(mocks::relay::Relay::new()),
            },
        );
        // Epoch 0's sub-channel, as the engine muxes simplex's channels by epoch.
        let (votes_mux, mut votes) = Muxer::new(
            self.context.child("mux"),
            channels.votes.0,
            channels.votes.1,
        );
        let (certificates_mux, mut certificates) = Muxer::new(
            self.context.child("mux"),
            channels.certificates.0,
            channels.certificates.1,
        );
        votes_mux.start();
        certificates_mux.start();
        equivocator.start(
            votes.register(0).await.unwrap(),
            certificates.register(0).await.unwrap(),
        );
    }

    async fn crash(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.task.abort();
            drop(node.validator);
        }
        // Let the runtime drop the aborted tasks (and with them the store's file lock).
        self.context.sleep(Duration::from_millis(10)).await;
    }

    /// The started validators that vote in their current epoch.
    fn running(&self) -> impl Iterator<Item = &Validator<Bank>> {
        self.nodes
            .iter()
            .flatten()
            .map(|n| &n.validator)
            .filter(|v| v.validating())
    }

    fn min_height(&self) -> u64 {
        self.running()
            .map(|v| v.finalized_height())
            .min()
            .unwrap_or(0)
    }

    fn max_height(&self) -> u64 {
        self.running()
            .map(|v| v.finalized_height())
            .max()
            .unwrap_or(0)
    }

    /// Waits until every running validator has applied `height`, submitting transfers meanwhile.
    async fn wait_for(&mut self, height: u64, rng: &mut rand::rngs::StdRng, next_id: &mut u64) {
        while self.min_height() < height {
            for v in self.running() {
                if let Some(reason) = v.failure() {
                    panic!(
                        "seed {}: a validator failed: {reason}",
                        self.checker.inner.lock().unwrap().seed
                    );
                }
            }
            let live: Vec<_> = self.running().cloned().collect();
            if !live.is_empty() {
                let v = &live[rng.random_range(0..live.len())];
                let from = rng.random_range(0..crate::machine::ACCOUNTS);
                let to = (from + 1 + rng.random_range(0..crate::machine::ACCOUNTS - 1))
                    % crate::machine::ACCOUNTS;
                *next_id += 1;
                let _ = v.submit(transfer(from, to, rng.random_range(1..50), *next_id));
            }
            self.context.sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every running validator's state is the canonical state at its height.
    fn check_states(&self) {
        let seed = self.checker.inner.lock().unwrap().seed;
        for v in self.running() {
            let h = v.finalized_height();
            let root = self.bank.root(&v.state());
            assert_eq!(
                Some(root),
                self.checker.root_at(h),
                "seed {seed}: state root differs at {h}"
            );
            assert_eq!(v.state().supply(), SUPPLY, "seed {seed}: supply");
        }
    }
}

pub(crate) fn committee(n: usize) -> Vec<[u8; 32]> {
    (0..n as u64)
        .map(|s| {
            let mut k = [0u8; 32];
            k.copy_from_slice(PrivateKey::from_seed(s).public_key().as_ref());
            k
        })
        .collect()
}

fn link(success_rate: f64) -> Link {
    Link {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(5),
        success_rate: Probability::from_f64(success_rate).expect("a probability"),
    }
}

/// Runs `scenario` for `seed`; a failure names the seed so it replays.
fn run_seed(name: &str, seed: u64, scenario: impl FnOnce(u64) + std::panic::UnwindSafe) {
    if let Err(panic) = std::panic::catch_unwind(|| scenario(seed)) {
        eprintln!(
            "scenario {name} failed with SIM_SEED={seed}; replay it with SIM_SEED={seed} cargo test -p neuroshard-consensus {name}"
        );
        std::panic::resume_unwind(panic);
    }
}

fn runner(seed: u64) -> deterministic::Runner {
    deterministic::Runner::new(
        deterministic::Config::new()
            .with_seed(seed)
            .with_timeout(Some(Duration::from_secs(600))),
    )
}

/// A scenario's common part: a temporary directory, a checker over `bank`, and a `Sim` of `n`
/// validators (none started) over links that deliver with probability `success`, on the
/// deterministic runtime for `seed`. `body` drives it with the scenario's randomness (seeded by
/// `seed`) and message ids from 0. Prints the checker's summary under `name` and returns it.
fn simulate<F, Fut>(name: &str, seed: u64, n: usize, success: f64, bank: Bank, body: F) -> Checker
where
    F: FnOnce(Sim, rand::rngs::StdRng, u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let checker = Checker::new(seed, bank.clone());
    let report = checker.clone();
    runner(seed).start(|context| async move {
        let rng = rand::rngs::StdRng::seed_from_u64(seed);
        let sim = Sim::new(context, n, link(success), checker, bank, path).await;
        body(sim, rng, 0).await;
    });
    println!("{}", report.summary(name));
    report
}

/// Honest validators over lossy links: blocks finalize, with transfers in them.
fn lossy(seed: u64) {
    let n = 4 + (seed % 4) as usize;
    let checker = simulate(
        "lossy",
        seed,
        n,
        0.9,
        Bank::new(committee(n)),
        move |mut sim, mut rng, mut id| async move {
            sim.start_all().await;
            sim.wait_for(20, &mut rng, &mut id).await;
            sim.check_states();
        },
    );
    assert!(
        checker.transfers() > 0,
        "seed {seed}: no transfer was finalized"
    );
}

/// One validator crashes and restarts from its store; it catches up by backfill.
fn crash_restart(seed: u64) {
    let n = 4 + (seed % 2) as usize;
    simulate(
        "crash_restart",
        seed,
        n,
        0.98,
        Bank::new(committee(n)),
        move |mut sim, mut rng, mut id| async move {
            sim.start_all().await;
            sim.wait_for(5, &mut rng, &mut id).await;
            let victim = (seed as usize) % n;
            sim.crash(victim).await;
            let target = sim.max_height() + 10;
            sim.wait_for(target, &mut rng, &mut id).await;
            sim.start(victim, sim.bank.clone()).await;
            let target = sim.max_height() + 5;
            sim.wait_for(target, &mut rng, &mut id).await;
            sim.check_states();
        },
    );
}

/// The network splits 2 | 2 (no quorum on either side), then heals; finality resumes.
fn partition_heal(seed: u64) {
    let n = 4;
    simulate(
        "partition_heal",
        seed,
        n,
        1.0,
        Bank::new(committee(n)),
        move |mut sim, mut rng, mut id| async move {
            sim.start_all().await;
            sim.wait_for(5, &mut rng, &mut id).await;
            sim.cut(&[0, 1]).await;
            // Blocks already voted may still finalize; then nothing can.
            sim.context.sleep(Duration::from_secs(3)).await;
            let stalled = sim.max_height();
            sim.context.sleep(Duration::from_secs(10)).await;
            assert_eq!(
                sim.max_height(),
                stalled,
                "seed {seed}: finality without a quorum"
            );
            sim.link_all().await;
            sim.wait_for(stalled + 10, &mut rng, &mut id).await;
            sim.check_states();
        },
    );
}

/// One validator equivocates (conflicting notarize votes when it leads); the rest go on.
fn equivocator(seed: u64) {
    let n = 4 + (seed % 2) as usize;
    simulate(
        "equivocator",
        seed,
        n,
        1.0,
        Bank::new(committee(n)),
        move |mut sim, mut rng, mut id| async move {
            sim.start_equivocator(0).await;
            for i in 1..n {
                sim.start(i, sim.bank.clone()).await;
            }
            sim.wait_for(15, &mut rng, &mut id).await;
            sim.check_states();
        },
    );
}

/// One validator runs a machine that mints money; honest validators refuse its blocks.
fn minter(seed: u64) {
    let n = 4;
    simulate(
        "minter",
        seed,
        n,
        1.0,
        Bank::new(committee(n)),
        move |mut sim, mut rng, mut id| async move {
            let mut evil = sim.bank.clone();
            evil.mint = true;
            let cheat = (seed as usize) % n;
            for i in 0..n {
                sim.start(
                    i,
                    if i == cheat {
                        evil.clone()
                    } else {
                        sim.bank.clone()
                    },
                )
                .await;
            }
            sim.wait_for(15, &mut rng, &mut id).await;
            sim.check_states();
        },
    );
}

/// The whole cluster loses power at once (unsynced runtime storage is resolved as a crash
/// would), restarts from storage and goes on.
fn power_loss(seed: u64) {
    let n = 4;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let bank = Bank::new(committee(n));
    let checker = Checker::new(seed, bank.clone());
    let report = checker.clone();
    let first = {
        let (path, bank, checker) = (path.clone(), bank.clone(), checker.clone());
        move |context: Ctx| async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut id = 0;
            let mut sim = Sim::new(context, n, link(1.0), checker, bank.clone(), path).await;
            sim.start_all().await;
            sim.wait_for(8, &mut rng, &mut id).await;
            sim.max_height()
        }
    };
    let (reached, checkpoint) = runner(seed).start_and_recover(first);
    deterministic::Runner::from(checkpoint).start(|context| async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 1000);
        let mut id = 1_000_000;
        let mut sim = Sim::new(context, n, link(1.0), checker.clone(), bank.clone(), path).await;
        sim.start_all().await;
        sim.wait_for(reached + 8, &mut rng, &mut id).await;
        sim.check_states();
    });
    println!("{}", report.summary("power_loss"));
}

/// Runs `n` honest validators to `height` and leaves their stores in `dir` (`node{i}.redb`).
pub(crate) fn cluster(seed: u64, n: usize, height: u64, dir: PathBuf) {
    let bank = Bank::new(committee(n));
    let checker = Checker::new(seed, bank.clone());
    let report = checker.clone();
    runner(seed).start(|context| async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut id = 0;
        let mut sim = Sim::new(context, n, link(0.95), checker, bank.clone(), dir).await;
        sim.start_all().await;
        sim.wait_for(height, &mut rng, &mut id).await;
        sim.check_states();
    });
    println!("{}", report.summary("cluster"));
}

/// Blocks per epoch in the epoch scenarios: short, so a run crosses several boundaries.
const EPOCH: u64 = 10;

impl Sim {
    /// Submits `tx` to every running validator until a finalized state satisfies `done`.
    async fn until(
        &mut self,
        tx: Vec<u8>,
        done: impl Fn(&Ledger) -> bool,
        rng: &mut rand::rngs::StdRng,
        id: &mut u64,
    ) {
        while !self.running().any(|v| done(&v.state())) {
            for v in self.running() {
                let _ = v.submit(tx.clone());
            }
            let target = self.min_height() + 1;
            self.wait_for(target, rng, id).await;
        }
    }

    /// The epoch every running validator is in (they must agree once they reached one height).
    fn epochs(&self) -> Vec<u64> {
        self.running().map(|v| v.epoch()).collect()
    }
}

/// Block-time gaps on `validator`'s chain: across epoch boundaries (last block of an epoch to the
/// first of the next, the hand-over) and elsewhere, mean in simulated ms (a figure, not asserted).
fn block_gaps(validator: &Validator<Bank>) -> String {
    let store = validator.store();
    let time = |h| store.block(h).unwrap().unwrap().header.timestamp_ms;
    let (mut handover, mut other) = (Vec::new(), Vec::new());
    for h in 2..=validator.finalized_height() {
        let gap = time(h) - time(h - 1);
        if (h % EPOCH) == 0 {
            handover.push(gap)
        } else {
            other.push(gap)
        }
    }
    let mean = |v: &[u64]| v.iter().sum::<u64>() / v.len().max(1) as u64;
    format!(
        "hand-over gap {} ms over {} boundaries, other gaps {} ms",
        mean(&handover),
        handover.len(),
        mean(&other)
    )
}

/// Feeds `follower` what validator `from` stored beyond the follower's head: each block with its
/// certificate, as a validator publishes them.
fn feed(follower: &mut Follower<Bank>, from: &Validator<Bank>) {
    let store = from.store();
    for height in follower.height() + 1..=from.finalized_height() {
        let block = store.block(height).unwrap().unwrap();
        let certificate = store.certificate(height).unwrap();
        follower
            .accept(&block.to_bytes(), certificate.as_deref())
            .unwrap_or_else(|e| panic!("the follower refused block {height}: {e}"));
    }
}

/// A fifth key bonds: it is elected at the end of epoch 0, takes its seat after the end of
/// epoch 1, and meanwhile follows the chain (checking every certificate against the committee of
/// its epoch, learned from the chain); then it starts validating from its follower's store.
fn join(seed: u64) {
    let n = 5;
    simulate(
        "join",
        seed,
        n,
        0.98,
        Bank::with_epochs(committee(n), 4, EPOCH),
        move |mut sim, mut rng, mut id| async move {
            for i in 0..4 {
                sim.start(i, sim.bank.clone()).await;
            }
            let mut follower =
                Follower::open(&sim.dir.join("node4.redb"), sim.bank.clone()).unwrap();
            id += 1;
            sim.until(
                bond(4, true, 1 << 40),
                |s| s.bonded.contains(&4),
                &mut rng,
                &mut id,
            )
            .await;
            let seat = sim.bank.candidates[4];
            while !sim.bank.committee(follower.state()).contains(&seat) {
                let target = sim.min_height() + 1;
                sim.wait_for(target, &mut rng, &mut id).await;
                feed(&mut follower, &sim.nodes[0].as_ref().unwrap().validator);
            }
            let joined_at = follower.height();
            assert_eq!(
                (joined_at + 1) % EPOCH,
                0,
                "seed {seed}: the seat starts at a boundary"
            );
            assert!(
                follower.committee(2).is_ok(),
                "seed {seed}: epoch 2's keys learned"
            );
            drop(follower);
            sim.start(4, sim.bank.clone()).await;
            let target = joined_at + 2 * EPOCH;
            sim.wait_for(target, &mut rng, &mut id).await;
            let joiner = &sim.nodes[4].as_ref().unwrap().validator;
            assert!(joiner.validating(), "seed {seed}: the new member votes");
            assert!(joiner.finalized_height() >= target);
            sim.check_states();
        },
    );
}

/// A validator unbonds: it leaves the committee at the end of the epoch after next, stops
/// voting, and the four others go on.
fn leave(seed: u64) {
    let n = 5;
    simulate(
        "leave",
        seed,
        n,
        0.98,
        Bank::with_epochs(committee(n), n, EPOCH),
        move |mut sim, mut rng, mut id| async move {
            sim.start_all().await;
            let leaver = (seed as usize) % n;
            sim.until(
                bond(leaver as u32, false, 1 << 40),
                |s| !s.bonded.contains(&(leaver as u32)),
                &mut rng,
                &mut id,
            )
            .await;
            let seat = sim.bank.candidates[leaver];
            let gone = sim.nodes[leaver].as_ref().unwrap().validator.clone();
            while gone.validating() {
                let target = sim.min_height() + 1;
                sim.wait_for(target, &mut rng, &mut id).await;
            }
            let left_at = gone.finalized_height();
            assert_eq!(
                (left_at + 1) % EPOCH,
                0,
                "seed {seed}: it leaves at a boundary"
            );
            assert!(!sim.bank.committee(&gone.state()).contains(&seat));
            let target = sim.max_height() + 2 * EPOCH;
            sim.wait_for(target, &mut rng, &mut id).await;
            assert_eq!(sim.running().count(), n - 1);
            println!(
                "leave seed {seed}: {}",
                block_gaps(sim.running().next().unwrap())
            );
            // It no longer votes; what it still applies (marshal hears the committee's traffic on
            // the simulated network) is the canonical chain.
            assert!(!gone.validating(), "seed {seed}: it stopped voting");
            let height = gone.finalized_height();
            assert_eq!(
                sim.checker.root_at(height),
                Some(sim.bank.root(&gone.state())),
                "seed {seed}: the leaver's state at {height}"
            );
            sim.check_states();
        },
    );
}

/// A validator crashes in epoch 0 and restarts two epochs later: it resumes in epoch 0, hears
/// the others' later epoch, fetches each boundary and hands over until it is back in step.
fn crash_across_boundary(seed: u64) {
    let n = 4;
    simulate(
        "crash_across_boundary",
        seed,
        n,
        0.98,
        Bank::with_epochs(committee(n), n, EPOCH),
        move |mut sim, mut rng, mut id| async move {
            sim.start_all().await;
            sim.wait_for(EPOCH / 2, &mut rng, &mut id).await;
            let victim = (seed as usize) % n;
            sim.crash(victim).await;
            sim.wait_for(2 * EPOCH + EPOCH / 2, &mut rng, &mut id).await;
            sim.start(victim, sim.bank.clone()).await;
            let target = sim.max_height() + EPOCH;
            sim.wait_for(target, &mut rng, &mut id).await;
            let epochs = sim.epochs();
            assert!(
                epochs.iter().all(|e| *e == epochs[0]) && epochs[0] >= 2,
                "seed {seed}: epochs {epochs:?}"
            );
            sim.check_states();
        },
    );
}

/// The seeds each scenario runs: 0..10, or 0..`SIM_SEEDS` for a longer sweep, or only
/// `SIM_SEED` to replay one.
fn seeds() -> std::ops::Range<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    match (var("SIM_SEED"), var("SIM_SEEDS")) {
        (Some(seed), _) => seed..seed + 1,
        (None, Some(count)) => 0..count,
        (None, None) => 0..10,
    }
}

#[test]
fn sim_lossy_links() {
    for seed in seeds() {
        run_seed("lossy", seed, lossy);
    }
}

#[test]
fn sim_crash_restart() {
    for seed in seeds() {
        run_seed("crash_restart", seed, crash_restart);
    }
}

#[test]
fn sim_partition_heal() {
    for seed in seeds() {
        run_seed("partition_heal", seed, partition_heal);
    }
}

#[test]
fn sim_equivocator() {
    for seed in seeds() {
        run_seed("equivocator", seed, equivocator);
    }
}

#[test]
fn sim_minting_validator() {
    for seed in seeds() {
        run_seed("minter", seed, minter);
    }
}

#[test]
fn sim_power_loss() {
    for seed in seeds() {
        run_seed("power_loss", seed, power_loss);
    }
}

#[test]
fn sim_staker_joins_the_committee() {
    for seed in seeds() {
        run_seed("join", seed, join);
    }
}

#[test]
fn sim_validator_unbonds_and_leaves() {
    for seed in seeds() {
        run_seed("leave", seed, leave);
    }
}

#[test]
fn sim_crash_restart_across_a_boundary() {
    for seed in seeds() {
        run_seed("crash_across_boundary", seed, crash_across_boundary);
    }
}
