//! Pipeline frames go to a named peer and arrive whole; a frame over the limit is refused.

use neuroshard_p2p::NetEvent;

use crate::support::{net_id, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_reach_the_named_peer_both_ways() {
    let (mut a, _) = start(11, net_id(), vec![]).await;
    let (mut b, _) = start(12, net_id(), vec![a.addr().await]).await;
    let (id_a, id_b) = (a.net.handle.peer_id(), b.net.handle.peer_id());
    a.wait_peers(&[id_b], 20).await;
    b.wait_peers(&[id_a], 20).await;

    let forward: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    a.net
        .handle
        .send_frame(id_b, forward.clone())
        .await
        .unwrap();
    let (from, got) = b
        .wait_for(20, |event| match event {
            NetEvent::Frame { peer, bytes } => Some((*peer, bytes.clone())),
            _ => None,
        })
        .await;
    assert_eq!((from, got), (id_a, forward));

    b.net.handle.send_frame(id_a, vec![1, 2, 3]).await.unwrap();
    let got = a
        .wait_for(20, |event| match event {
            NetEvent::Frame { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .await;
    assert_eq!(got, vec![1, 2, 3]);

    let over = vec![0u8; (64 << 20) + 1];
    assert!(a.net.handle.send_frame(id_b, over).await.is_err());
}
