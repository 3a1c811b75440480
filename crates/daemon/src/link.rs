//! How a lane's stage reaches its neighbours from the training thread: the inbox the driver
//! files their frames in (by step and sender), the lanes a stage serves with the cuts the driver
//! sets on them, and the sends, each frame sealed by this node for its receiver
//! (`docs/pipeline.md`, "Lanes" and "Failover").

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use neuroshard_p2p::{NetworkHandle, PeerId, identity};
use neuroshard_pipeline::frame::peek_step;
use neuroshard_pipeline::{Direction, Outgoing, Seal};
use neuroshard_primitives::{Keypair, NodeId};

use crate::lane::{LaneRounds, VALIDATION};
use crate::{Error, Result};

/// Frames a lane's inbox holds at most; past it a frame is refused (the neighbour is far ahead
/// or misbehaving).
const MAX_QUEUED: usize = 4096;

/// How often a waiting step checks whether its round was overtaken.
const WAIT_SLICE: Duration = Duration::from_millis(250);

/// Times a frame is offered again when the neighbour refuses it (its queue is full, or it is
/// not connected yet), [`RESEND_WAIT`] apart.
const RESENDS: u32 = 200;
const RESEND_WAIT: Duration = Duration::from_millis(50);

/// A frame and the peer that sent it.
pub(crate) type Filed = (PeerId, Vec<u8>);

/// The lane neighbours' frames, filed by step, with their senders, until that step runs: the
/// sender says which lane a frame is for (frames name no lane).
#[derive(Debug, Default)]
pub(crate) struct LaneInbox {
    frames: Mutex<BTreeMap<u64, Vec<Filed>>>,
    arrived: Condvar,
}

impl LaneInbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Vec<Filed>>> {
        self.frames.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Files `from`'s frame under the step its header names; `false` (and dropped) when it
    /// names none or the inbox is full.
    pub(crate) fn push(&self, from: PeerId, bytes: Vec<u8>) -> bool {
        let Some(step) = peek_step(&bytes) else {
            return false;
        };
        let mut frames = self.lock();
        if frames.values().map(Vec::len).sum::<usize>() >= MAX_QUEUED {
            return false;
        }
        frames.entry(step).or_default().push((from, bytes));
        self.arrived.notify_all();
        true
    }

    /// The frames filed for `step`, waiting up to `patience` for at least one.
    pub(crate) fn take(&self, step: u64, patience: Duration) -> Option<Vec<Filed>> {
        let frames = self.lock();
        let (mut frames, _) = self
            .arrived
            .wait_timeout_while(frames, patience, |f| !f.contains_key(&step))
            .unwrap_or_else(|p| p.into_inner());
        frames.remove(&step)
    }

    /// Drops frames of rounds before `round` (steps of a job that stopped, say).
    pub(crate) fn forget_before(&self, round: u64, steps: u64) {
        self.lock().retain(|&s, _| match s & VALIDATION {
            0 => s >= round.saturating_mul(steps),
            _ => (s & !VALIDATION) >> 20 >= round,
        });
    }
}

/// How a lane's stage reaches its neighbours: the network, from the training thread.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) net: NetworkHandle,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) inbox: Arc<LaneInbox>,
    /// How long a step waits for a neighbour's frame (the round deadline).
    pub(crate) patience: Duration,
    /// The round the driver wants trained: a job for an earlier one stops waiting at once.
    pub(crate) wanted: Arc<AtomicU64>,
    /// The lanes this node serves now (the driver says so); a job takes them when it starts.
    pub(crate) routes: Arc<Routes>,
    /// The node's key, which seals every frame it sends.
    pub(crate) key: Keypair,
    /// Test builds only: how the stage cheats its inputs (`Cheat::ForgeInputs`,
    /// `Cheat::OtherBatch`).
    #[cfg(feature = "cheat")]
    pub(crate) cheat: Option<crate::Cheat>,
}

/// One lane a stage serves, as its training thread sees it: the neighbours' peers, whose data
/// it reads, and where its jobs stop (the driver sets the cuts).
#[derive(Debug, Clone)]
pub(crate) struct LaneLink {
    /// The lane.
    pub(crate) lane: usize,
    /// The previous and the next stage's holders on this lane.
    pub(crate) prev: Option<PeerId>,
    /// See `prev`.
    pub(crate) next: Option<PeerId>,
    /// Whose assigned batches the lane reads.
    pub(crate) data_node: NodeId,
    /// Which of this lane's jobs stop waiting and sending.
    pub(crate) cut: Arc<Cuts>,
}

impl LaneLink {
    /// Which neighbour `peer` is on this lane, if it is one.
    pub(crate) fn side(&self, peer: PeerId) -> Option<Direction> {
        match Some(peer) {
            p if p == self.prev => Some(Direction::Prev),
            p if p == self.next => Some(Direction::Next),
            _ => None,
        }
    }

    /// Whether `other` is the same lane through the same neighbours.
    pub(crate) fn same_path(&self, other: &LaneLink) -> bool {
        (self.lane, self.prev, self.next) == (other.lane, other.prev, other.next)
    }
}

/// The lanes a stage serves now, and those of the job the driver started last, shared by the
/// driver and the training thread.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    now: Mutex<Vec<LaneLink>>,
    job: Mutex<Vec<LaneLink>>,
}

fn lock(lanes: &Mutex<Vec<LaneLink>>) -> std::sync::MutexGuard<'_, Vec<LaneLink>> {
    lanes.lock().unwrap_or_else(|p| p.into_inner())
}

impl Routes {
    /// The lanes served from now on.
    pub(crate) fn set(&self, lanes: Vec<LaneLink>) {
        *lock(&self.now) = lanes;
    }

    /// A job starts: the lanes served now are its route for its whole run (its frames travel
    /// one path, and the driver fetches those lanes' data before it runs).
    pub(crate) fn start_job(&self) -> Vec<LaneLink> {
        let lanes = lock(&self.now).clone();
        lock(&self.job).clone_from(&lanes);
        lanes
    }

    /// The lanes of the job started last.
    pub(crate) fn job(&self) -> Vec<LaneLink> {
        lock(&self.job).clone()
    }

    /// Whether `lane` is still served through the same neighbours.
    pub(crate) fn holds(&self, lane: &LaneLink) -> bool {
        lock(&self.now).iter().any(|l| l.same_path(lane))
    }
}

/// The rounds before which a lane's jobs stop, as the driver last worked them out from
/// [`LaneRounds`].
#[derive(Debug, Default)]
pub(crate) struct Cuts {
    /// Jobs of earlier rounds cannot complete: they stop waiting ([`LaneRounds::cut`]).
    pub(crate) waits: AtomicU64,
    /// Frames of earlier rounds' jobs are not sent to the previous and the next neighbour
    /// ([`LaneRounds::cut_sends`]).
    pub(crate) sends: [AtomicU64; 2],
}

impl Cuts {
    /// Every job stops at its next wait or send (the node is stopping).
    pub(crate) fn all(&self) {
        self.store(u64::MAX, [u64::MAX; 2]);
    }

    /// Takes the cuts of `rounds`; whether the lane was broken (a neighbour lost) before.
    pub(crate) fn set(&self, rounds: &LaneRounds) -> bool {
        let sends = [Direction::Prev, Direction::Next].map(|d| rounds.cut_sends(d));
        self.store(rounds.cut(), sends) == u64::MAX
    }

    fn store(&self, waits: u64, sends: [u64; 2]) -> u64 {
        for (slot, round) in self.sends.iter().zip(sends) {
            slot.store(round, Ordering::Relaxed);
        }
        self.waits.swap(waits, Ordering::Relaxed)
    }
}

impl Link {
    /// Whether `round`'s job over `lanes` can no longer complete: one of its lanes is cut
    /// ([`LaneRounds::cut`]), or no longer served through the same neighbours (a member was
    /// lost and another replica stands in for it, or a lost member is back).
    pub(crate) fn is_cut(&self, round: u64, lanes: &[LaneLink]) -> bool {
        lanes.iter().any(|l| self.lane_cut(round, l))
    }

    /// Whether `round`'s job can no longer complete on `lane` (see [`Link::is_cut`]).
    pub(crate) fn lane_cut(&self, round: u64, lane: &LaneLink) -> bool {
        round < lane.cut.waits.load(Ordering::Relaxed) || !self.routes.holds(lane)
    }

    /// The frames of `step` of `round`'s job over `lanes`, with their senders, waiting for them
    /// in slices up to the patience. An error when none comes, as soon as the driver wants a
    /// later round (this stage's round core moved on, so the lane's other members are on a
    /// later round too), or once the round's job cannot complete ([`Error::NeighbourGone`]).
    pub(crate) fn wait_for(&self, step: u64, round: u64, lanes: &[LaneLink]) -> Result<Vec<Filed>> {
        let mut waited = Duration::ZERO;
        while waited < self.patience {
            if let Some(frames) = self.inbox.take(step, WAIT_SLICE) {
                return Ok(frames);
            }
            if self.is_cut(round, lanes) {
                return Err(Error::NeighbourGone);
            }
            if self.wanted.load(Ordering::Relaxed) > round {
                return Err(Error::Lane(format!(
                    "round {round} was overtaken while its step {step} waited for frames"
                )));
            }
            waited += WAIT_SLICE;
        }
        Err(Error::Lane(format!(
            "no frame for step {step} within {:?}",
            self.patience
        )))
    }

    /// A frame `peer` sent as it travelled, split into the frame and the sender's seal; `None`
    /// when the seal is missing or does not hold for this node and the frame.
    pub(crate) fn unseal(&self, peer: PeerId, sealed: Vec<u8>) -> Option<(Vec<u8>, Seal)> {
        let from = identity::node_id(&peer).ok()?;
        let (frame, seal) = Seal::off(from, sealed)?;
        seal.holds(&self.key.node_id(), &frame)
            .then_some((frame, seal))
    }

    /// Sends `out`, a frame of `round`'s job on `lane`, to the neighbour it names, offering it
    /// again while the neighbour refuses, unless that neighbour is lost or past the round
    /// ([`LaneRounds::cut_sends`]) or the lane's route changed.
    pub(crate) fn send(&self, out: Outgoing, round: u64, lane: &LaneLink) -> Result<()> {
        let (peer, side) = match out.to {
            Direction::Next => (lane.next, 1),
            Direction::Prev => (lane.prev, 0),
        };
        let peer =
            peer.ok_or_else(|| Error::Lane(format!("no {:?} neighbour to send to", out.to)))?;
        let to = identity::node_id(&peer).map_err(|err| Error::Lane(err.to_string()))?;
        let sealed = Seal::sign(&self.key, &to, &out.bytes).onto(out.bytes);
        let mut tries = 0;
        loop {
            let cut = round < lane.cut.sends[side].load(Ordering::Relaxed);
            if cut || !self.routes.holds(lane) {
                return Err(Error::NeighbourGone);
            }
            let sent = self
                .runtime
                .block_on(self.net.send_frame(peer, sealed.clone()));
            match sent {
                Ok(()) => return Ok(()),
                Err(err) if tries >= RESENDS => {
                    return Err(Error::Lane(format!("sending a frame to {peer}: {err}")));
                }
                Err(err) => {
                    tracing::debug!(%peer, %err, tries, "a lane neighbour refused a frame; offering it again");
                    tries += 1;
                    std::thread::sleep(RESEND_WAIT);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lane::tests::frame;

    #[test]
    fn the_inbox_files_frames_by_step_and_forgets_old_rounds() {
        let inbox = LaneInbox::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        assert!(inbox.push(a, frame(7)));
        assert!(inbox.push(b, frame(7)));
        assert!(inbox.push(a, frame(12)));
        assert!(inbox.push(a, frame(VALIDATION | (1 << 20))));
        assert!(!inbox.push(a, b"not a frame".to_vec()));
        let senders = |frames: Option<Vec<Filed>>| -> Vec<PeerId> {
            frames
                .unwrap_or_default()
                .into_iter()
                .map(|(p, _)| p)
                .collect()
        };
        assert_eq!(
            senders(inbox.take(7, Duration::ZERO)),
            vec![a, b],
            "filed with their senders"
        );
        assert!(inbox.push(b, frame(7)));
        assert_eq!(inbox.take(7, Duration::ZERO).map(|f| f.len()), Some(1));
        assert_eq!(inbox.take(7, Duration::ZERO), None);
        // Round 2 of H = 5 starts at step 10: step 12 stays, round 1's validation goes.
        inbox.forget_before(2, 5);
        assert!(inbox.take(VALIDATION | (1 << 20), Duration::ZERO).is_none());
        assert_eq!(inbox.take(12, Duration::ZERO).map(|f| f.len()), Some(1));
    }
}
