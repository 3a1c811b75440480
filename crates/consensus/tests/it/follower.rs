//! The follower: certificates checked against the committee, blocks applied in order to its
//! own store, and hostile inputs refused with clear errors.

use crate::{
    machine::Bank,
    sim::{cluster, committee as test_committee},
};
use neuroshard_consensus::{Error, Follower, Machine as _, Store, verify_finalized};

#[test]
fn follower_reaches_the_validators_state_and_refuses_forgeries() {
    let dir = tempfile::tempdir().unwrap();
    cluster(11, 4, 12, dir.path().to_path_buf());

    // What a validator would publish: (block, certificate) by height.
    let store = Store::open(&dir.path().join("node0.redb")).unwrap();
    let top = store.applied_height().unwrap().unwrap();
    assert!(top >= 12);
    let published: Vec<(Vec<u8>, Option<Vec<u8>>)> = (1..=top)
        .map(|h| {
            let block = store.block(h).unwrap().unwrap();
            (block.to_bytes(), store.certificate(h).unwrap())
        })
        .collect();
    let committee = test_committee(4);
    let bank = Bank::new(committee.clone());

    // Out of order (newest first): nothing applies until the chain reaches the head.
    let mut follower = Follower::open(&dir.path().join("follower.redb"), bank.clone()).unwrap();
    let mut applied = 0;
    for (block, certificate) in published.iter().rev() {
        applied += follower.accept(block, certificate.as_deref()).unwrap();
    }
    assert_eq!(applied as u64, top);
    assert_eq!(follower.height(), top);
    let head = store.block(top).unwrap().unwrap();
    assert_eq!(follower.root(), head.header.state_root);
    assert_eq!(follower.head().id(), head.id());
    drop(follower);
    // It resumes from its store.
    let follower = Follower::open(&dir.path().join("follower.redb"), bank.clone()).unwrap();
    assert_eq!(follower.height(), top);
    assert_eq!(
        follower.root(),
        bank.root(&store.resume(&bank).unwrap().state)
    );

    // Blocks finalized only through a descendant come without a certificate: they wait for it.
    let mut sparse = Follower::open(&dir.path().join("sparse.redb"), bank.clone()).unwrap();
    let mut applied = 0;
    for (i, (block, certificate)) in published.iter().enumerate() {
        let last = i + 1 == published.len();
        let keep = last || i % 3 == 2;
        let waited = sparse
            .accept(block, certificate.as_deref().filter(|_| keep))
            .unwrap();
        if !keep {
            assert_eq!(
                waited, 0,
                "an uncertified block applied before its certified descendant"
            );
        }
        applied += waited;
    }
    assert_eq!(applied as u64, top);
    assert_eq!(sparse.root(), head.header.state_root);
    drop(sparse);

    // A certified block and its certificate.
    let (h, (block, certificate)) = published
        .iter()
        .enumerate()
        .find_map(|(i, (b, c))| c.as_ref().map(|c| (i as u64 + 1, (b.clone(), c.clone()))))
        .expect("some block has its own certificate");
    let ok = verify_finalized(&committee, 0, &block, &certificate).unwrap();
    assert_eq!(ok.header.height, h);

    // A forged certificate: one signature byte flipped.
    let mut forged = certificate.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let err = verify_finalized(&committee, 0, &block, &forged).unwrap_err();
    assert!(
        matches!(err, Error::BadCertificate { .. } | Error::Decode { .. }),
        "{err}"
    );
    println!("forged certificate: {err}");

    // A wrong committee (other keys, same size).
    let strangers: Vec<[u8; 32]> = test_committee(8)[4..].to_vec();
    let err = verify_finalized(&strangers, 0, &block, &certificate).unwrap_err();
    assert!(matches!(err, Error::BadCertificate { .. }), "{err}");
    println!("wrong committee: {err}");

    // Another block under this certificate.
    let other = published
        .iter()
        .map(|(b, _)| b)
        .find(|b| **b != block)
        .unwrap();
    let err = verify_finalized(&committee, 0, other, &certificate).unwrap_err();
    assert!(matches!(err, Error::PayloadMismatch { .. }), "{err}");
    println!("block not matching the certificate: {err}");

    // The wrong epoch, and garbage.
    let err = verify_finalized(&committee, 1, &block, &certificate).unwrap_err();
    assert!(matches!(err, Error::WrongEpoch { .. }), "{err}");
    let err = verify_finalized(&committee, 0, &block, &[1, 2, 3]).unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");

    // A follower refuses a forged block without applying anything.
    let mut fresh = Follower::open(&dir.path().join("fresh.redb"), bank).unwrap();
    assert!(fresh.accept(&block, Some(&forged)).is_err());
    assert_eq!(fresh.height(), 0);
}

/// A store written in another state format (by another version of the machine's encoding) is
/// refused with an error that says so, rather than read as something else; the store is left
/// as it was.
#[test]
fn a_store_of_another_state_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("follower.redb");
    let bank = Bank::new(test_committee(4));
    drop(Follower::open(&path, bank.clone()).unwrap());
    let renumbered = Bank {
        format: 2,
        ..bank.clone()
    };
    let err = Follower::open(&path, renumbered).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Format {
                found: 0,
                expected: 2
            }
        ),
        "{err}"
    );
    println!("a store of another format: {err}");
    assert_eq!(Follower::open(&path, bank).unwrap().height(), 0);
}
