//! A node of another network is refused at connection time.

use std::time::Duration;

use neuroshard_p2p::{NetEvent, Offence, PeerId};
use neuroshard_primitives::Hash;

use crate::support::{net_id, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_network_id_is_refused() {
    let (mut a, _) = start(31, net_id(), vec![]).await;
    let (b, _) = start(32, net_id(), vec![a.addr().await]).await;
    let (mut stranger, _) = start(33, Hash::of(b"another genesis"), vec![a.addr().await]).await;
    let (id_a, id_b, id_x) = (
        a.net.handle.peer_id(),
        b.net.handle.peer_id(),
        stranger.net.handle.peer_id(),
    );

    // Whichever side reads the other's identify first bans it and hangs up, so the other side
    // may never see the mismatch: one refusal is enough, and neither side ever admits the other.
    let refusal = |other: PeerId| {
        move |event: &NetEvent| match event {
            NetEvent::PeerBanned { peer, offence } => Some((*peer, *offence)),
            NetEvent::PeerConnected { peer, .. } => {
                assert_ne!(*peer, other, "a peer of another network is never admitted");
                None
            }
            _ => None,
        }
    };
    let (banned, offence) = tokio::select! {
        seen = a.wait_for(20, refusal(id_x)) => seen,
        seen = stranger.wait_for(20, refusal(id_a)) => seen,
    };
    assert!(
        banned == id_x || banned == id_a,
        "the ban falls between the two networks"
    );
    assert_eq!(offence, Offence::WrongNetwork);

    // The stranger retries; it is still refused, while the honest peer stays.
    stranger.net.handle.dial(a.addr().await).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.wait_peers(&[id_b], 10).await;
    assert!(stranger.net.handle.peers().await.unwrap().is_empty());
}
