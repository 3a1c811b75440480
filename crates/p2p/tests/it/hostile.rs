//! Garbage on the listening port and forged announcements: the node stays up, the forger is banned.

use std::time::Duration;

use neuroshard_p2p::{Announcement, NetEvent, Offence};
use neuroshard_primitives::Keypair;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TOPIC, net_id, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_garbage_on_the_port_does_not_hurt_the_node() {
    let (a, _) = start(41, net_id(), vec![]).await;
    let tcp = a.net.handle.listen_addrs().await.unwrap().remove(0);
    let port = tcp.iter().find_map(|p| match p {
        neuroshard_p2p::multiaddr::Protocol::Tcp(port) => Some(port),
        _ => None,
    });
    let socket = format!("127.0.0.1:{}", port.unwrap());
    for round in 0..3u8 {
        let mut stream = tokio::net::TcpStream::connect(&socket).await.unwrap();
        let garbage: Vec<u8> = (0..64 * 1024u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 ^ round)
            .collect();
        let _ = stream.write_all(&garbage).await; // the node may hang up mid-write
        let mut sink = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut sink)).await;
        assert!(closed.is_ok(), "the node hangs up on garbage");
    }
    // Still serving honest peers.
    let (b, _) = start(42, net_id(), vec![a.addr().await]).await;
    a.wait_peers(&[b.net.handle.peer_id()], 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_forging_announcements_is_banned() {
    let (mut a, _) = start(51, net_id(), vec![]).await;
    let (mut forger, _) = start(52, net_id(), vec![a.addr().await]).await;
    let id_f = forger.net.handle.peer_id();
    forger.wait_subscribed(&[a.net.handle.peer_id()]).await;

    let victim = Keypair::from_seed([99; 32]);
    for i in 0..6u8 {
        // Signed by someone else, published by the forger: signer ≠ gossip author.
        let forged = Announcement::sign(&victim, "test/delta/1", &[i]);
        if forger.net.handle.publish(TOPIC, &forged).await.is_err() {
            break; // already disconnected
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let banned = a
        .wait_for(20, |event| match event {
            NetEvent::Announcement { .. } => panic!("a forged announcement was delivered"),
            NetEvent::PeerBanned { peer, offence } => Some((*peer, *offence)),
            _ => None,
        })
        .await;
    assert_eq!(banned, (id_f, Offence::BadSignature));
    a.wait_peers(&[], 10).await;

    // The forger comes back: it is refused.
    forger.net.handle.dial(a.addr().await).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(a.net.handle.peers().await.unwrap().is_empty());
}
