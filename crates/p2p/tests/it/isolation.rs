//! A node of another network is refused at connection time.

use std::time::Duration;

use neuroshard_p2p::{NetEvent, Offence};
use neuroshard_primitives::Hash;

use crate::support::{net_id, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_network_id_is_refused() {
    let (mut a, _) = start(31, net_id(), vec![]).await;
    let (b, _) = start(32, net_id(), vec![a.addr().await]).await;
    let (mut stranger, _) = start(33, Hash::of(b"another genesis"), vec![a.addr().await]).await;
    let (id_b, id_x) = (b.net.handle.peer_id(), stranger.net.handle.peer_id());

    let refused = a
        .wait_for(20, |event| match event {
            NetEvent::PeerBanned { peer, offence } => Some((*peer, *offence)),
            NetEvent::PeerConnected { peer, .. } => {
                assert_ne!(*peer, id_x, "the stranger is never admitted");
                None
            }
            _ => None,
        })
        .await;
    assert_eq!(refused, (id_x, Offence::WrongNetwork));
    let seen_by_stranger = stranger
        .wait_for(20, |event| match event {
            NetEvent::PeerBanned { offence, .. } => Some(*offence),
            _ => None,
        })
        .await;
    assert_eq!(seen_by_stranger, Offence::WrongNetwork, "refusal is mutual");

    // The stranger retries; it is still refused, while the honest peer stays.
    stranger.net.handle.dial(a.addr().await).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.wait_peers(&[id_b], 10).await;
    assert!(stranger.net.handle.peers().await.unwrap().is_empty());
}
