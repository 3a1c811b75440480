//! The ledger routes over a real socket, against a small in-test [`LedgerApi`]: each route's
//! JSON, the 404/400/503 mapping with `{"error": ...}` bodies, and the ledger metrics.

use std::sync::{Arc, Mutex};

use neuroshard_api::{
    AccountView, ApiError, BlockView, ErrorBody, HistoryEntry, HistoryKind, LedgerApi,
    RoundLedgerView, Status, SubmitReply, TxView, UnbondView,
};

use crate::routes::parse_metrics;
use crate::support::{Response, get, post, sample_ledger, sample_status, start, start_with};

/// One account (`me`, also reachable by its id), blocks 1 and 2, round 7; remembers submissions.
#[derive(Default)]
struct FakeLedger {
    submitted: Mutex<Vec<Vec<u8>>>,
}

fn me() -> String {
    "ab".repeat(32)
}

impl LedgerApi for FakeLedger {
    fn account(&self, id: &str) -> Result<AccountView, ApiError> {
        if id != "me" && id != me() {
            return Err(ApiError::NotFound(format!("no account {id}")));
        }
        Ok(AccountView {
            id: me(),
            balance: 1_500_000,
            stake: 3_000_000,
            unbonding: vec![UnbondView {
                amount: 250_000,
                release_height: 90,
            }],
            nonce: 4,
            height: 2,
            state_root: "5e".repeat(32),
            proof: "0a0b".to_owned(),
        })
    }

    fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, ApiError> {
        self.account(id)?;
        Ok(vec![HistoryEntry {
            height: 2,
            time_ms: 1_800_000_000_000,
            kind: HistoryKind::TransferIn,
            amount: 1_500_000,
            counterparty: Some("cd".repeat(32)),
            tx: Some("77".repeat(32)),
        }])
    }

    fn block(&self, height: u64) -> Result<BlockView, ApiError> {
        if !(1..=2).contains(&height) {
            return Err(ApiError::NotFound(format!("no finalized block {height}")));
        }
        Ok(BlockView {
            height,
            txs: vec![TxView {
                id: "77".repeat(32),
                signer: "cd".repeat(32),
                nonce: 0,
                action: "transfer 1.500000 NEURO to abababab".to_owned(),
            }],
            ..BlockView::default()
        })
    }

    fn round(&self, round: u64) -> Result<RoundLedgerView, ApiError> {
        match round {
            7 => Ok(RoundLedgerView {
                round,
                settled: true,
                ..RoundLedgerView::default()
            }),
            _ => Err(ApiError::NotFound(format!(
                "round {round} is not on the ledger"
            ))),
        }
    }

    fn submit(&self, request: &[u8]) -> Result<SubmitReply, ApiError> {
        if request.is_empty() {
            return Err(ApiError::BadRequest(
                "malformed: an empty request".to_owned(),
            ));
        }
        self.submitted.lock().unwrap().push(request.to_vec());
        Ok(SubmitReply {
            request: "99".repeat(32),
            message: format!("queued {} bytes", request.len()),
        })
    }
}

async fn start_fake() -> (std::net::SocketAddr, Arc<FakeLedger>) {
    let ledger = Arc::new(FakeLedger::default());
    let (addr, _tx) = start_with(sample_status(1), ledger.clone()).await;
    (addr, ledger)
}

fn ok<T: serde::de::DeserializeOwned>(response: Response) -> T {
    assert_eq!(response.code, 200, "{}", response.body);
    assert!(response.headers.contains("content-type: application/json"));
    serde_json::from_str(&response.body).unwrap()
}

/// The status code and the `error` of a JSON error answer.
fn error(response: Response) -> (u16, String) {
    assert!(response.headers.contains("content-type: application/json"));
    let body: ErrorBody = serde_json::from_str(&response.body).unwrap();
    (response.code, body.error)
}

#[tokio::test]
async fn each_route_answers_the_ledger_s_view() {
    let (addr, ledger) = start_fake().await;
    let fake = FakeLedger::default();
    let mine: AccountView = ok(get(addr, "/api/ledger/account/me").await);
    assert_eq!(mine, fake.account("me").unwrap());
    let upper = format!("/api/ledger/account/{}", me().to_uppercase());
    assert_eq!(
        ok::<AccountView>(get(addr, &upper).await),
        mine,
        "ids are case-blind"
    );
    let history: Vec<HistoryEntry> = ok(get(addr, "/api/ledger/account/me/history").await);
    assert_eq!(history, fake.history("me").unwrap());
    let block: BlockView = ok(get(addr, "/api/ledger/block/2").await);
    assert_eq!(block, fake.block(2).unwrap());
    let round: RoundLedgerView = ok(get(addr, "/api/ledger/round/7").await);
    assert!(round.settled);
    let reply: SubmitReply = ok(post(addr, "/api/ledger/submit", b"sealed").await);
    assert_eq!(reply.message, "queued 6 bytes");
    assert_eq!(*ledger.submitted.lock().unwrap(), vec![b"sealed".to_vec()]);
}

#[tokio::test]
async fn history_kinds_are_snake_case() {
    let (addr, _) = start_fake().await;
    let body = get(addr, "/api/ledger/account/me/history").await.body;
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(value[0]["kind"], "transfer_in");
}

#[tokio::test]
async fn errors_map_to_404_400_and_503_with_a_json_message() {
    let (addr, _) = start_fake().await;
    let other = format!("/api/ledger/account/{}", "cd".repeat(32));
    assert_eq!(error(get(addr, &other).await).0, 404);
    assert_eq!(error(get(addr, "/api/ledger/block/3").await).0, 404);
    assert_eq!(error(get(addr, "/api/ledger/round/8").await).0, 404);
    let (code, message) = error(get(addr, "/api/ledger/account/nobody").await);
    assert_eq!(code, 400);
    assert!(message.contains("64 hex digits"), "{message}");
    assert_eq!(error(get(addr, "/api/ledger/block/tip").await).0, 400);
    let (code, message) = error(post(addr, "/api/ledger/submit", b"").await);
    assert_eq!(
        (code, message.as_str()),
        (400, "malformed: an empty request")
    );
    let (plain, _tx) = start(sample_status(1)).await;
    for path in ["/api/ledger/account/me", "/api/ledger/block/1"] {
        let (code, message) = error(get(plain, path).await);
        assert_eq!(
            (code, message.as_str()),
            (503, "this network has no ledger")
        );
    }
    let (code, _) = error(post(plain, "/api/ledger/submit", b"x").await);
    assert_eq!(code, 503);
}

#[tokio::test]
async fn metrics_carry_the_ledger_gauges_only_with_a_ledger() {
    let (plain, _tx) = start(sample_status(1)).await;
    let samples = parse_metrics(&get(plain, "/metrics").await.body);
    assert!(!samples.keys().any(|k| k.starts_with("neuroshard_ledger")));
    let status = Status {
        ledger: Some(sample_ledger(5)),
        ..sample_status(1)
    };
    let (addr, _tx) = start(status).await;
    let samples = parse_metrics(&get(addr, "/metrics").await.body);
    assert_eq!(samples["neuroshard_ledger_height"], 40.0);
    assert_eq!(samples["neuroshard_ledger_finality_seconds"], 0.85);
    assert_eq!(samples["neuroshard_ledger_validators"], 3.0);
    assert_eq!(samples["neuroshard_ledger_balance_neuro"], 12.5);
    assert_eq!(samples["neuroshard_ledger_stake_neuro"], 100.0);
}

#[tokio::test]
async fn status_carries_the_ledger_and_older_json_without_it_still_reads() {
    let status = Status {
        ledger: Some(sample_ledger(3)),
        ..sample_status(1)
    };
    let (addr, _tx) = start(status.clone()).await;
    let served: Status = serde_json::from_str(&get(addr, "/api/status").await.body).unwrap();
    assert_eq!(served, status);
    let mut old: serde_json::Value = serde_json::to_value(sample_status(1)).unwrap();
    old.as_object_mut().unwrap().remove("ledger");
    let read: Status = serde_json::from_value(old).unwrap();
    assert_eq!(read.ledger, None);
}
