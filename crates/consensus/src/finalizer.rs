//! Applies finalized blocks from marshal to the store, one write transaction each, then reports
//! them to subscribers and acknowledges them to marshal.

use crate::{
    Error, Machine,
    block::{Block, Digest, hex32},
    certificate::Scheme,
    epoch::{Schemes, handover},
    state::{Entry, Finalized, Shared, body_txs, execute},
    store::Store,
};
use commonware_actor::Feedback;
use commonware_codec::Encode as _;
use commonware_consensus::{
    Heightable as _, Reporter,
    marshal::{Update, core::Mailbox, standard::Standard},
};
use commonware_cryptography::{Digested, Digestible as _};
use commonware_utils::{Acknowledgement as _, acknowledgement::Exact};
use futures::{StreamExt as _, channel::mpsc};
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};
use tracing::{error, info};

/// Marshal's reporter: hands finalized blocks to the finalizer task.
#[derive(Clone)]
pub(crate) struct Updates {
    pub(crate) sender: mpsc::UnboundedSender<(Digested<Block>, Exact)>,
    /// The highest finalized height marshal has heard of (for status; not a durability signal).
    pub(crate) tip: Arc<AtomicU64>,
}

impl Reporter for Updates {
    type Activity = Update<Block>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        match activity {
            Update::Block(block, ack) => {
                // If the finalizer has stopped (a fatal error), the ack is dropped and marshal
                // stops delivering, which is what we want.
                let _ = self.sender.unbounded_send((block, ack));
            }
            Update::Tip(_, height, _) => {
                self.tip.fetch_max(height.get(), Ordering::Relaxed);
            }
        }
        Feedback::Ok
    }
}

/// The last block of an epoch was applied: the committee of the next one.
#[derive(Clone, Debug)]
pub(crate) struct Boundary {
    /// The epoch that starts.
    pub(crate) epoch: u64,
    /// The boundary block's digest: the new epoch's simplex starts from it.
    pub(crate) floor: Digest,
    /// The new committee, with each member's address if the state records one.
    pub(crate) members: Vec<([u8; 32], Option<std::net::SocketAddr>)>,
}

/// Where the finalizer reports boundary blocks: marshal's provider learns the next committee
/// before the block is acknowledged, and the orchestrator hears of it.
pub(crate) struct Handover {
    pub(crate) schemes: Schemes,
    pub(crate) boundaries: mpsc::UnboundedSender<Boundary>,
}

/// Applies blocks as marshal delivers them, until marshal stops or a block cannot be applied.
pub(crate) async fn run<M: Machine>(
    shared: Arc<Shared<M>>,
    store: Arc<Store>,
    marshal: Mailbox<Scheme, Standard<Block>>,
    mut blocks: mpsc::UnboundedReceiver<(Digested<Block>, Exact)>,
    applied: Arc<AtomicU64>,
    handover: Handover,
) {
    while let Some((block, ack)) = blocks.next().await {
        match apply(&shared, &store, &marshal, &block, &handover).await {
            Ok(()) => {
                applied.store(shared.finalized().1.height, Ordering::Relaxed);
                ack.acknowledge();
            }
            Err(e) => {
                error!(error = %e, height = block.height().get(), "cannot apply a finalized block; stopping");
                shared.fail(e.to_string());
                return;
            }
        }
    }
}

async fn apply<M: Machine>(
    shared: &Shared<M>,
    store: &Store,
    marshal: &Mailbox<Scheme, Standard<Block>>,
    block: &Digested<Block>,
    epochs: &Handover,
) -> Result<(), Error> {
    let (base_digest, base) = shared.finalized();
    let height = block.height().get();
    if height <= base.height {
        // Marshal delivers at least once: a restart can repeat blocks we already applied.
        return Ok(());
    }
    if height != base.height + 1 || block.inner().header.parent != base_digest.0 {
        return Err(Error::NotNext {
            height,
            reason: format!(
                "applied height {} digest {}, block's parent {}",
                base.height,
                hex32(&base_digest.0),
                hex32(&block.inner().header.parent)
            ),
        });
    }
    let digest = block.digest();
    let before = shared.finalized_state();
    let entry = match shared.entry(&digest) {
        Some(entry) => entry,
        None => Entry {
            state: Arc::new(execute(&shared.machine, &before, block.inner())?),
            header: block.inner().header.clone(),
            txs: body_txs(&shared.machine, &block.inner().body),
        },
    };
    let certificate = marshal
        .get_finalization(block.height())
        .await
        .filter(|f| f.proposal.payload == digest)
        .map(|f| f.encode().to_vec());
    let changes = shared.machine.changes(&before, &entry.state);
    let next = handover(&shared.machine, height, &entry.state);
    store.commit(
        block.inner(),
        certificate.as_deref(),
        &changes,
        next.as_ref(),
    )?;
    if let Some((epoch, keys)) = &next {
        epochs.schemes.insert(*epoch, keys)?;
        let members = keys
            .iter()
            .map(|k| (*k, shared.machine.address(&entry.state, k)))
            .collect();
        info!(
            height,
            epoch,
            validators = keys.len(),
            "epoch boundary applied"
        );
        let _ = epochs.boundaries.unbounded_send(Boundary {
            epoch: *epoch,
            floor: digest,
            members,
        });
    }
    info!(height, digest = %hex32(&digest.0), certified = certificate.is_some(), "applied finalized block");
    let out = Finalized {
        header: block.inner().header.clone(),
        body: block.inner().body.clone(),
        digest: digest.0,
        certificate,
    };
    shared.finalize(digest, entry, out);
    Ok(())
}
