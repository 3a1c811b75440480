//! Hostile Proof-of-Neural-Work input sent to a node: forged fraud proofs, unsolicited or
//! mismatched openings, challenges with bad tickets, truncated and oversized frames. None
//! panics; a forged accusation costs the accuser; nothing else changes the node's standing view.
//! And the honest side of a challenge: a restarted node given its chains back still answers one.

use std::collections::BTreeSet;
use std::time::Duration;

use neuroshard_aggregate::{Rule, RuleKind};
use neuroshard_compress::{Codec, CompressConfig};
use neuroshard_node::{
    Announcement, DeadlineAgreement, Input, Message, Node, NodeConfig, Output, Timestamp,
    TrainingResult,
};
use neuroshard_primitives::{Hash, Keypair, MerkleProof, NodeId};
use neuroshard_verify::audit::{Draw, TICKET_NAMESPACE, ticket_payload};
use neuroshard_verify::{AuditConfig, Chain, Commitment, Leaf, Opening, Segments};

const PARAMS: usize = 8;

fn keys() -> Vec<Keypair> {
    (1..=4).map(|i| Keypair::from_seed([i; 32])).collect()
}

/// Node 0 of four, auditing, at round 0.
fn node() -> Node {
    let keys = keys();
    let members: BTreeSet<NodeId> = keys.iter().map(Keypair::node_id).collect();
    let key = Keypair::from_seed([1; 32]);
    Node::new(
        key,
        node_config(),
        members,
        vec![0.5; PARAMS],
        Box::new(DeadlineAgreement),
    )
    .unwrap()
}

/// The settings: H = 4 in 2 segments, audits on.
fn node_config() -> NodeConfig {
    NodeConfig {
        inner_steps: 4,
        round_timeout: Duration::from_secs(10),
        compress: CompressConfig::new(Codec::None),
        aggregator: Rule::for_attackers(RuleKind::Mean, 4, 0).unwrap(),
        outer: neuroshard_train::OuterConfig::DILOCO,
        max_frame: 1 << 20,
        audit: Some(AuditConfig {
            segments: 2,
            ..AuditConfig::DEFAULT
        }),
    }
}

fn feed(node: &mut Node, from: &Keypair, message: &Message) -> Vec<Output> {
    node.handle(
        Timestamp::ZERO,
        Input::Message(from.node_id(), message.seal(from)),
    )
}

fn announcement(node: &Node) -> Announcement {
    Announcement {
        round: 0,
        base: node.model_hash(),
        delta: Hash::of(b"delta"),
        delta_len: 10,
        tokens: 4,
        loss_start: 2.0,
        loss_end: 1.0,
        commitment: Some(Commitment {
            segments: Segments::new(4, 2).unwrap(),
            root: Hash::of(b"root"),
            residual_before: Hash::default(),
            residual_after: Hash::default(),
        }),
        memory_budget: u64::MAX,
    }
}

fn opening() -> Opening {
    let leaf = Leaf {
        checkpoint: Hash::of(b"c"),
        losses: vec![1.0, 1.0],
        work: Hash::default(),
    };
    let proof = MerkleProof {
        index: 0,
        n_leaves: 3,
        siblings: vec![Hash::default(); 2],
    };
    Opening {
        segment: 0,
        start: vec![0; 7],
        end: vec![1; 9],
        start_leaf: (leaf.clone(), proof.clone()),
        end_leaf: (leaf, proof),
        tail: None,
        work: Vec::new(),
    }
}

fn excluded(outputs: &[Output]) -> Vec<NodeId> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Excluded { node, .. } => Some(*node),
            _ => None,
        })
        .collect()
}

#[test]
fn a_fraud_proof_that_quotes_no_signed_frames_convicts_the_accuser() {
    let mut node = node();
    let keys = keys();
    let (accuser, accused) = (&keys[1], &keys[2]);
    let forged = Message::FraudProof {
        round: 0,
        contributor: accused.node_id(),
        announcement: vec![0xff; 64],
        opening: Message::Opening {
            round: 0,
            opening: opening(),
        }
        .seal(accuser),
    };
    let outputs = feed(&mut node, accuser, &forged);
    assert_eq!(excluded(&outputs), vec![accuser.node_id()]);
    assert_eq!(node.audit_stats().false_accusations, 1);
    // Its later frames count for nothing; the accused stands.
    assert!(feed(&mut node, accuser, &forged).is_empty());
    assert!(!node.excluded().contains_key(&accused.node_id()));
    // A restart from the node's checkpoint keeps the exclusion.
    let snapshot = node.snapshot();
    let members = node.members().clone();
    let config = node_config();
    let resumed = Node::resume(
        Keypair::from_seed([1; 32]),
        config,
        members,
        snapshot,
        Box::new(DeadlineAgreement),
    )
    .unwrap();
    assert!(resumed.excluded().contains_key(&accuser.node_id()));
}

#[test]
fn a_contributor_that_signed_a_bad_opening_is_convicted_by_its_own_frames() {
    let mut node = node();
    let keys = keys();
    let (accuser, accused) = (&keys[1], &keys[2]);
    let claim = Message::Announce(announcement(&node)).seal(accused);
    let served = Message::Opening {
        round: 0,
        opening: opening(),
    }
    .seal(accused);
    let proof = Message::FraudProof {
        round: 0,
        contributor: accused.node_id(),
        announcement: claim,
        opening: served,
    };
    let outputs = feed(&mut node, accuser, &proof);
    assert_eq!(excluded(&outputs), vec![accused.node_id()]);
    assert_eq!(node.audit_stats().proofs_upheld, 1);
}

#[test]
fn a_junk_proof_does_not_shield_the_accused_from_a_real_one() {
    let mut node = node();
    let keys = keys();
    let (junk_sender, accused, honest) = (&keys[1], &keys[2], &keys[3]);
    let served = Message::Opening {
        round: 0,
        opening: opening(),
    }
    .seal(accused);
    let junk = Message::FraudProof {
        round: 0,
        contributor: accused.node_id(),
        announcement: vec![1, 2, 3],
        opening: served.clone(),
    };
    assert_eq!(
        excluded(&feed(&mut node, junk_sender, &junk)),
        vec![junk_sender.node_id()]
    );
    let real = Message::FraudProof {
        round: 0,
        contributor: accused.node_id(),
        announcement: Message::Announce(announcement(&node)).seal(accused),
        opening: served,
    };
    assert_eq!(
        excluded(&feed(&mut node, honest, &real)),
        vec![accused.node_id()]
    );
}

#[test]
fn unsolicited_openings_bad_tickets_and_garbage_change_nothing() {
    let mut node = node();
    let keys = keys();
    let peer = &keys[1];
    let unsolicited = Message::Opening {
        round: 0,
        opening: opening(),
    };
    assert!(feed(&mut node, peer, &unsolicited).is_empty());
    let challenge = Message::Challenge {
        round: u64::MAX,
        contributor: node.id(),
        segment: u64::MAX,
        ticket: vec![7; 64],
    };
    // No chain of its own for that round: nothing to serve, nothing to judge.
    assert!(feed(&mut node, peer, &challenge).is_empty());
    let frame = unsolicited.seal(peer);
    for cut in [0, 1, frame.len() / 2, frame.len() - 1] {
        let outputs = node.handle(
            Timestamp::ZERO,
            Input::Message(peer.node_id(), frame[..cut].to_vec()),
        );
        assert!(
            matches!(outputs.as_slice(), [Output::Penalize { .. }]),
            "cut at {cut}"
        );
    }
    let oversized = vec![0u8; (1 << 20) + 1];
    let outputs = node.handle(Timestamp::ZERO, Input::Message(peer.node_id(), oversized));
    assert!(matches!(outputs.as_slice(), [Output::Penalize { .. }]));
    assert!(node.excluded().is_empty());
}

#[test]
fn an_announcement_without_the_networks_chain_plan_is_refused() {
    let mut node = node();
    let keys = keys();
    let mut bare = announcement(&node);
    bare.commitment = None;
    let outputs = feed(&mut node, &keys[1], &Message::Announce(bare));
    assert!(matches!(outputs.as_slice(), [Output::Penalize { .. }]));
    let mut other_plan = announcement(&node);
    other_plan.commitment.as_mut().unwrap().segments = Segments::new(4, 4).unwrap();
    let outputs = feed(&mut node, &keys[2], &Message::Announce(other_plan));
    assert!(matches!(outputs.as_slice(), [Output::Penalize { .. }]));
    // Longer than the job: refused too.
    let mut longer = announcement(&node);
    longer.commitment.as_mut().unwrap().segments = Segments { steps: 6, len: 2 };
    let outputs = feed(&mut node, &keys[3], &Message::Announce(longer));
    assert!(matches!(outputs.as_slice(), [Output::Penalize { .. }]));
}

#[test]
fn a_stage_job_cut_short_commits_to_the_steps_it_trained() {
    // A pipeline stage whose lane broke: the network's segment length over fewer steps, or
    // over none; both are taken.
    let mut node = node();
    let keys = keys();
    for (key, steps) in [(&keys[1], 3), (&keys[2], 0)] {
        let mut short = announcement(&node);
        short.commitment.as_mut().unwrap().segments = Segments { steps, len: 2 };
        let outputs = feed(&mut node, key, &Message::Announce(short));
        let penalised = outputs.iter().any(|o| matches!(o, Output::Penalize { .. }));
        assert!(!penalised, "{steps} steps: {outputs:?}");
    }
}

/// A node that restarts still serves the chains of its rounds before, once its driver hands
/// them back (a node restarted without them could not answer, and its auditors would exclude it
/// for withholding); a chain whose leaves are not what it committed to is not taken.
#[test]
fn a_restarted_node_given_its_chains_back_answers_challenges_of_them() {
    let mut node = node();
    let outputs = node.handle(Timestamp::ZERO, Input::Tick);
    let Some(Output::Train(job)) = outputs.iter().find(|o| matches!(o, Output::Train(_))) else {
        panic!("round 0 starts a job: {outputs:?}");
    };
    let leaf = |i: u8, losses: Vec<f32>| Leaf {
        checkpoint: Hash([i; 32]),
        losses,
        work: Hash::default(),
    };
    let chain = Chain::from_leaves(vec![
        leaf(1, Vec::new()),
        leaf(2, vec![2.0, 1.9]),
        leaf(3, vec![1.8, 1.7]),
    ]);
    let root = chain.root();
    let result = TrainingResult {
        round: 0,
        start: job.start,
        delta: vec![0.1; PARAMS],
        tokens: 4,
        loss_start: 2.0,
        loss_end: 1.7,
        chain,
    };
    node.handle(Timestamp::ZERO, Input::Trained(result));
    let kept = node.own_chain(0).cloned().expect("its chain of round 0");
    let auditor = &keys()[1];
    let ticket = auditor
        .sign(TICKET_NAMESPACE, &ticket_payload(0, &root, &node.id()))
        .signature;
    let challenge = Message::Challenge {
        round: 0,
        contributor: node.id(),
        segment: Draw::of(&ticket).segment(2),
        ticket,
    };
    let serves = |outputs: &[Output]| {
        outputs.iter().any(|o| {
            matches!(o, Output::Checkpoints { peer, round: 0, .. } if *peer == auditor.node_id())
        })
    };
    let mut restarted = self::node();
    assert!(!serves(&feed(&mut restarted, auditor, &challenge)));
    let mut damaged = kept.clone();
    damaged.chain = Chain::from_leaves(damaged.chain.leaves()[..2].to_vec());
    assert!(!restarted.restore_own(0, damaged));
    assert!(restarted.restore_own(0, kept));
    assert!(serves(&feed(&mut restarted, auditor, &challenge)));
}
