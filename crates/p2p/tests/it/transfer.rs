//! Three nodes find each other from one bootstrap address, gossip, and fetch by hash.

use std::sync::Arc;

use neuroshard_p2p::{Announcement, ContentProvider, Error, MemoryStore, NetEvent, Offence};
use neuroshard_primitives::Hash;

use crate::support::{Node, TOPIC, net_id, start, start_with};

/// A payload of `len` bytes that does not compress or repeat.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

async fn three_nodes() -> (Node, Node, Node, MemoryStore) {
    let (a, _) = start(1, net_id(), vec![]).await;
    let (b, _) = start(2, net_id(), vec![a.addr().await]).await;
    // C only knows B: it must find A through Kademlia.
    let (c, store_c) = start(3, net_id(), vec![b.addr().await]).await;
    let ids = [
        a.net.handle.peer_id(),
        b.net.handle.peer_id(),
        c.net.handle.peer_id(),
    ];
    a.wait_peers(&[ids[1], ids[2]], 20).await;
    b.wait_peers(&[ids[0], ids[2]], 20).await;
    c.wait_peers(&[ids[0], ids[1]], 20).await;
    (a, b, c, store_c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_gossip_and_fetch_a_multi_chunk_payload() {
    let (mut a, mut b, mut c, store_c) = three_nodes().await;
    let (id_a, id_b, id_c) = (
        a.net.handle.peer_id(),
        b.net.handle.peer_id(),
        c.net.handle.peer_id(),
    );
    c.wait_subscribed(&[id_a, id_b]).await;

    let bytes = payload(10 << 20, 7); // three 4 MiB chunks, the last one short
    let key = store_c.insert(bytes.clone());
    let note = Announcement::sign(&c.key, "test/delta/1", &key.0);
    c.net.handle.publish(TOPIC, &note).await.unwrap();

    for node in [&mut a, &mut b] {
        let (peer, got) = node
            .wait_for(20, |event| match event {
                NetEvent::Announcement {
                    peer,
                    node,
                    topic,
                    announcement,
                } if topic == TOPIC => {
                    assert_eq!(*node, announcement.signer());
                    Some((*peer, announcement.clone()))
                }
                _ => None,
            })
            .await;
        assert_eq!(peer, id_c);
        assert_eq!(got, note);
    }

    let before = a.net.handle.traffic();
    let fetched = a.net.handle.fetch(id_c, key).await.unwrap();
    let after = a.net.handle.traffic();
    assert!(fetched == bytes, "fetched payload equals the original");
    let wire = (after.wire_received + after.wire_sent) - (before.wire_received + before.wire_sent);
    let ratio = wire as f64 / bytes.len() as f64;
    println!(
        "wire overhead for a {} MiB fetch: {ratio:.4}x ({wire} wire bytes)",
        bytes.len() >> 20
    );
    assert!(ratio < 1.1, "wire overhead {ratio}");
    assert_eq!(
        after.payload_received - before.payload_received,
        bytes.len() as u64
    );

    let missing = a.net.handle.fetch(id_c, Hash::of(b"nobody has this")).await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );
}

/// Serves whatever it holds under a key that is not its hash: a lying peer.
struct Liar(Hash, Arc<Vec<u8>>);

impl ContentProvider for Liar {
    fn get(&self, key: &Hash) -> Option<Arc<Vec<u8>>> {
        (*key == self.0).then(|| self.1.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_does_not_match_its_hash_is_rejected() {
    let announced = payload(300 << 10, 1);
    let key = Hash::of(&announced);
    let liar = Liar(key, Arc::new(payload(300 << 10, 2)));
    let (mut a, _) = start(11, net_id(), vec![]).await;
    let b = start_with(
        12,
        net_id(),
        "/ip4/127.0.0.1/tcp/0",
        vec![a.addr().await],
        Arc::new(liar),
        64 << 10,
    )
    .await;
    let id_b = b.net.handle.peer_id();
    a.wait_peers(&[id_b], 20).await;

    let result = a.net.handle.fetch(id_b, key).await;
    assert!(
        matches!(result, Err(Error::HashMismatch { .. })),
        "{result:?}"
    );
    // Two bad payloads cross the ban threshold (50 points each).
    let _ = a.net.handle.fetch(id_b, key).await;
    let banned = a
        .wait_for(10, |event| match event {
            NetEvent::PeerBanned { peer, offence } => Some((*peer, *offence)),
            _ => None,
        })
        .await;
    assert_eq!(banned, (id_b, Offence::BadPayload));
    a.wait_peers(&[], 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_nodes_connect_and_fetch() {
    let quic = "/ip4/127.0.0.1/udp/0/quic-v1";
    let store_a = MemoryStore::new();
    let a = start_with(
        21,
        net_id(),
        quic,
        vec![],
        Arc::new(store_a.clone()),
        64 << 10,
    )
    .await;
    let b = start_with(
        22,
        net_id(),
        quic,
        vec![a.addr().await],
        Arc::new(MemoryStore::new()),
        64 << 10,
    )
    .await;
    b.wait_peers(&[a.net.handle.peer_id()], 20).await;
    let bytes = payload(200 << 10, 3);
    let key = store_a.insert(bytes.clone());
    assert!(
        b.net
            .handle
            .fetch(a.net.handle.peer_id(), key)
            .await
            .unwrap()
            == bytes
    );
    assert!(
        b.net.handle.traffic().wire_received >= bytes.len() as u64,
        "QUIC bytes are counted"
    );
}
