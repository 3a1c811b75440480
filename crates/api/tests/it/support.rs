//! Test helpers: a sample status, a running server, a minimal HTTP/1.1 client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use neuroshard_api::{
    Backends, ClosedRound, LedgerApi, LedgerStatus, PendingTx, Point, RewardPoint, Status,
    UnbondView, serve, serve_with,
};
use neuroshard_primitives::Hash;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// The training loss the sample history has at `step`: falls from 6 towards 2.
pub(crate) fn loss_at(step: u64) -> f64 {
    2.0 + 4.0 / (1.0 + step as f64 / 10.0)
}

/// A status with `points` history points, one every 10 steps, validation every 40.
pub(crate) fn sample_status(points: u64) -> Status {
    let mut status = Status {
        node_id: "ab".repeat(32),
        network_id: Hash::of(b"test network"),
        listen_addrs: vec!["/ip4/127.0.0.1/tcp/4001".to_owned()],
        peers: vec!["12D3KooWPeerA".to_owned(), "12D3KooWPeerB".to_owned()],
        round: 3,
        inner_step: 7,
        tokens_per_sec: 1234.5,
        model_hash: Some(Hash::of(b"model")),
        bytes_sent: 1 << 20,
        bytes_received: 3 << 20,
        payload_bytes_sent: 1000 << 10,
        payload_bytes_received: 3000 << 10,
        contributors: 3,
        capacity: Some(neuroshard_api::CapacityStatus {
            memory_budget: Some(4_000_000),
            work_per_sec: 3_300_000_000,
            measured: true,
        }),
        ..Status::default()
    };
    for i in 0..points {
        let step = i * 10;
        status.push_point(Point {
            round: step / 20,
            step,
            loss: Some(loss_at(step)),
            val_loss: (step % 40 == 0).then(|| loss_at(step) + 0.25),
            elapsed_s: i as f64 * 1.5,
        });
    }
    status.push_round(ClosedRound {
        round: 1,
        included: 3,
        missed: Vec::new(),
        closed_at_s: 1_800_000_000.0,
        duration_s: None,
        model_hash: Hash::of(b"model 1"),
        installed: false,
        grew_to: None,
    });
    status.push_round(ClosedRound {
        round: 2,
        included: 2,
        missed: vec!["cd".repeat(32)],
        closed_at_s: 1_800_000_030.0,
        duration_s: Some(30.0),
        model_hash: Hash::of(b"model 2, split"),
        installed: false,
        grew_to: None,
    });
    status.push_round(ClosedRound {
        round: 2,
        closed_at_s: 1_800_000_030.5,
        model_hash: Hash::of(b"model"),
        installed: true,
        grew_to: None,
        ..ClosedRound::default()
    });
    if let Some(last) = status.history.last() {
        status.loss = last.loss;
        status.val_loss = Some(loss_at(0) + 0.25);
    }
    status
}

/// Starts a server on an ephemeral loopback port.
pub(crate) async fn start(status: Status) -> (SocketAddr, watch::Sender<Status>) {
    let (tx, rx) = watch::channel(status);
    let (addr, _task) = serve("127.0.0.1:0".parse().unwrap(), rx).await.unwrap();
    (addr, tx)
}

/// Starts a server on an ephemeral loopback port whose ledger routes ask `ledger`.
pub(crate) async fn start_with(
    status: Status,
    ledger: Arc<dyn LedgerApi>,
) -> (SocketAddr, watch::Sender<Status>) {
    let (tx, rx) = watch::channel(status);
    let addr = "127.0.0.1:0".parse().unwrap();
    let backends = Backends {
        ledger: Some(ledger),
        completions: None,
    };
    let (addr, _task) = serve_with(addr, rx, backends).await.unwrap();
    (addr, tx)
}

/// A response: status code, header block (lowercased), body.
pub(crate) struct Response {
    pub(crate) code: u16,
    pub(crate) headers: String,
    pub(crate) body: String,
}

/// `GET path` over a fresh connection, within five seconds.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> Response {
    exchange(addr, format!("GET {path} HTTP/1.1\r\n").as_bytes(), b"").await
}

/// `POST path` with `body` over a fresh connection, within five seconds.
pub(crate) async fn post(addr: SocketAddr, path: &str, body: &[u8]) -> Response {
    let line = format!(
        "POST {path} HTTP/1.1\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n",
        body.len()
    );
    exchange(addr, line.as_bytes(), body).await
}

/// Sends `head` (request line and headers but the last ones) and `body`, reads to the end.
async fn exchange(addr: SocketAddr, head: &[u8], body: &[u8]) -> Response {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let end = format!("Host: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(&[head, end.as_bytes(), body].concat())
            .await
            .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .expect("server answers within 5 s");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    Response {
        code,
        headers: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// A ledger status: 12.5 NEURO spendable, 100 staked, 3 of 4 committee members, rewards growing
/// by 0.25 NEURO a block over `points` blocks.
pub(crate) fn sample_ledger(points: u64) -> LedgerStatus {
    let mut ledger = LedgerStatus {
        height: 40,
        state_root: "5e".repeat(32),
        finality_ms: Some(850),
        finality_p50_ms: Some(700),
        finality_p99_ms: Some(1900),
        committee: ["ab", "cd", "ef"].map(|b| b.repeat(32)).to_vec(),
        validator: true,
        balance: 12_500_000,
        stake: 100_000_000,
        unbonding: vec![UnbondView {
            amount: 2_000_000,
            release_height: 60,
        }],
        pending: vec![PendingTx {
            action: "stake 1.000000 NEURO".to_owned(),
            tx: None,
        }],
        ..LedgerStatus::default()
    };
    for height in 1..=points {
        ledger.push_reward(RewardPoint {
            height,
            time_ms: 1_800_000_000_000 + height * 1000,
            total: height * 250_000,
        });
    }
    ledger
}
