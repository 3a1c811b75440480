//! The marshal `Application`: proposers build blocks from the mempool, validators re-execute
//! proposed blocks on their parent's post-state and check the state root before voting.

use crate::{
    Machine,
    block::{Block, Digest, MAX_BODY_BYTES},
    certificate::Scheme,
    machine::Header,
    state::{Entry, Shared, body_txs, execute},
};
use commonware_consensus::{
    Application, Epochable as _, Heightable as _, marshal::ancestry::Ancestry,
    simplex::types::Context,
};
use commonware_cryptography::{Digested, Digestible as _, ed25519::PublicKey};
use commonware_runtime::Clock;
use futures::StreamExt as _;
use std::{
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};
use tracing::{debug, warn};

/// How far ahead of a validator's clock a proposer's timestamp may be before the validator
/// waits for its clock to catch up (it never votes no for a timestamp alone).
const MAX_DRIFT_MS: u64 = 5_000;

/// With nothing in its mempool, a leader waits until this long after its parent before it
/// proposes (an empty block still moves block time, which the ledger's round windows read), so
/// an idle chain grows by a few blocks a second rather than as fast as the network allows. Well
/// under the leader timeout, so nobody votes to skip a waiting leader.
pub(crate) const IDLE_BLOCK_MS: u64 = 500;

/// The consensus context of a proposal (round, leader, parent).
pub(crate) type Ctx = Context<Digest, PublicKey>;

/// The application marshal's `Inline` wrapper drives.
pub(crate) struct App<M: Machine> {
    pub(crate) shared: Arc<Shared<M>>,
}

impl<M: Machine> Clone for App<M> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

fn now_ms(clock: &impl Clock) -> u64 {
    clock
        .current()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl<M: Machine> App<M> {
    /// The post-state of `first` (a block marshal handed us, at the head of `ancestry`).
    ///
    /// If this node has not executed `first` (it restarted, or missed the proposal), walks the
    /// ancestry down to a block it has, then re-executes upward. Returns `None` if the chain
    /// does not reach the last finalized block, or a block on it fails re-execution: a block on
    /// such a parent is permanently invalid.
    async fn state_of(
        &self,
        first: Digested<Block>,
        ancestry: &mut impl Ancestry<Block>,
    ) -> Option<Entry<M::State>> {
        let (_, finalized) = self.shared.finalized();
        let mut chain = Vec::new();
        let mut cursor = first;
        let base = loop {
            if let Some(entry) = self.shared.entry(&cursor.digest()) {
                break entry;
            }
            if cursor.height().get() <= finalized.height {
                debug!(
                    height = cursor.height().get(),
                    "ancestry leaves the finalized chain"
                );
                return None;
            }
            chain.push(cursor);
            cursor = ancestry.next().await?;
        };
        let mut entry = base;
        for block in chain.into_iter().rev() {
            let state = match execute(&self.shared.machine, &entry.state, block.inner()) {
                Ok(state) => state,
                Err(e) => {
                    warn!(error = %e, "a notarized ancestor does not re-execute");
                    return None;
                }
            };
            entry = Entry {
                state: Arc::new(state),
                header: block.inner().header.clone(),
                txs: body_txs(&self.shared.machine, &block.inner().body),
            };
            self.shared.insert(block.digest(), entry.clone());
        }
        Some(entry)
    }
}

impl<E, M> Application<E> for App<M>
where
    E: Clock + Send + 'static,
    M: Machine,
{
    type SigningScheme = Scheme;
    type Context = Ctx;
    type Block = Block;
    type Input = ();

    async fn propose(
        &mut self,
        (clock, context): (E, Ctx),
        mut ancestry: impl Ancestry<Block>,
        _input: (),
    ) -> Option<Digested<Block>> {
        let parent = ancestry.next().await?;
        let parent_digest = parent.digest();
        let base = self.state_of(parent, &mut ancestry).await?;
        if self.shared.pending(&parent_digest).is_empty() {
            let due = base.header.timestamp_ms.saturating_add(IDLE_BLOCK_MS);
            let wait = due.saturating_sub(now_ms(&clock));
            clock.sleep(Duration::from_millis(wait)).await;
        }
        let mut header = Header {
            height: base.header.height + 1,
            epoch: context.epoch().get(),
            parent: parent_digest.0,
            timestamp_ms: now_ms(&clock).max(base.header.timestamp_ms),
            proposer: leader_bytes(&context.leader),
            state_root: [0; 32],
        };
        let machine = &self.shared.machine;
        let pending = self.shared.pending(&parent_digest);
        let mut body = machine.build(&base.state, &header, &pending);
        let mut state = (*base.state).clone();
        if body.len() > MAX_BODY_BYTES || machine.execute(&mut state, &header, &body).is_err() {
            warn!(
                height = header.height,
                "the machine built a body it rejects; proposing an empty one"
            );
            body = machine.build(&base.state, &header, &[]);
            state = (*base.state).clone();
            if body.len() > MAX_BODY_BYTES || machine.execute(&mut state, &header, &body).is_err() {
                warn!(
                    height = header.height,
                    "even an empty body fails; skipping the proposal"
                );
                return None;
            }
        }
        header.state_root = machine.root(&state);
        let txs = body_txs(machine, &body);
        let block = Block { header, body };
        let digest = commonware_cryptography::Digestible::digest(&block);
        self.shared.insert(
            digest,
            Entry {
                state: Arc::new(state),
                header: block.header.clone(),
                txs,
            },
        );
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(
        &mut self,
        (clock, context): (E, Ctx),
        mut ancestry: impl Ancestry<Block>,
    ) -> bool {
        let Some(block) = ancestry.next().await else {
            return false;
        };
        let Some(parent) = ancestry.next().await else {
            return false;
        };
        let header = &block.inner().header;
        // Marshal's Inline wrapper has checked height = parent + 1 and the parent digest
        // against the consensus context; the rest of the header is ours to check.
        if header.epoch != context.epoch().get()
            || header.proposer != leader_bytes(&context.leader)
            || header.timestamp_ms < parent.inner().header.timestamp_ms
            || header.parent != parent.digest().0
        {
            debug!(height = header.height, "header does not match its context");
            return false;
        }
        let ahead = header.timestamp_ms.saturating_sub(now_ms(&clock));
        if ahead > MAX_DRIFT_MS {
            // Not invalid, only early: wait for our clock rather than vote no.
            clock
                .sleep(Duration::from_millis(ahead - MAX_DRIFT_MS))
                .await;
        }
        let digest = block.digest();
        if self.shared.entry(&digest).is_some() {
            return true;
        }
        let Some(base) = self.state_of(parent, &mut ancestry).await else {
            return false;
        };
        match execute(&self.shared.machine, &base.state, block.inner()) {
            Ok(state) => {
                self.shared.insert(
                    digest,
                    Entry {
                        state: Arc::new(state),
                        header: header.clone(),
                        txs: body_txs(&self.shared.machine, &block.inner().body),
                    },
                );
                true
            }
            Err(e) => {
                debug!(error = %e, "refusing a proposed block");
                false
            }
        }
    }
}

fn leader_bytes(key: &PublicKey) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(key.as_ref());
    out
}
