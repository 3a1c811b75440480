//! HTTP API: status, Prometheus metrics, the dashboard page.
//!
//! # Bird's Eye View
//!
//! The node keeps a [`Status`] snapshot up to date and publishes it through a
//! `tokio::sync::watch` channel; [`serve`] answers HTTP requests from the latest value. The crate
//! knows nothing of the node, the model or libp2p: the caller fills the struct.
//!
//! | route | body |
//! |---|---|
//! | `GET /api/status` | the [`Status`] as JSON |
//! | `GET /metrics` | the same figures in the Prometheus text format ([`metrics::render`]) |
//! | `GET /` | a self-contained dashboard page (no external assets) that polls `/api/status` |
//! | `GET /api/ledger/account/{id}` | an [`AccountView`] (`me`: this node's account) |
//! | `GET /api/ledger/account/{id}/history` | its [`HistoryEntry`] list, oldest first |
//! | `GET /api/ledger/block/{height}` | a [`BlockView`] |
//! | `GET /api/ledger/round/{round}` | a [`RoundLedgerView`] |
//! | `POST /api/ledger/submit` | body: a sealed wallet request; answers a [`SubmitReply`] |
//!
//! The ledger routes ask the [`LedgerApi`] given to [`serve_with`]; without one (and under
//! [`serve`]) they answer 503. Their errors are JSON, `{"error": "..."}` ([`ErrorBody`]), with
//! 404, 400 or 503 as [`ApiError`] says.
//!
//! ```no_run
//! # async fn run() -> neuroshard_api::Result<()> {
//! use neuroshard_api::{Point, Status, serve, DEFAULT_ADDR};
//! let (tx, rx) = tokio::sync::watch::channel(Status::default());
//! let (addr, task) = serve(DEFAULT_ADDR, rx).await?;
//! println!("dashboard at http://{addr}/");
//! tx.send_modify(|s| s.push_point(Point { step: 1, loss: Some(5.2), ..Point::default() }));
//! task.abort(); // stops the server
//! # Ok(()) }
//! ```
//!
//! **Invariant:** the server never binds anything but the address it is given; the default is
//! loopback ([`DEFAULT_ADDR`]).

mod error;
mod ledger;
mod ledger_routes;
pub mod metrics;
mod status;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::{Error, Result};
pub use ledger::{
    AccountView, ApiError, AuditView, BlockView, ClaimView, ConvictionView, ErrorBody,
    HistoryEntry, HistoryKind, LedgerApi, LedgerStatus, PendingTx, REWARDS_LIMIT, RewardPoint,
    RewardView, RoundLedgerView, SubmitReply, TxView, UnbondView,
};
pub use status::{
    Audits, ClosedRound, Excluded, HISTORY_LIMIT, ModelPoint, Point, PrivacyStatus, ROUNDS_LIMIT,
    Status,
};

/// Where the HTTP API listens unless told otherwise: loopback only, port 8000.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8000));

/// The dashboard page: HTML, CSS and JavaScript in one file, no external requests.
const DASHBOARD: &str = include_str!("dashboard.html");

/// Binds `addr` and serves the routes from the latest value in `status`, on a network without a
/// ledger: [`serve_with`] and no [`LedgerApi`].
pub async fn serve(
    addr: SocketAddr,
    status: watch::Receiver<Status>,
) -> Result<(SocketAddr, JoinHandle<Result<()>>)> {
    serve_with(addr, status, None).await
}

/// Binds `addr` and serves the routes from the latest value in `status`, the ledger routes from
/// `ledger` (503 without one).
///
/// Returns the bound address (so a caller that asked for port 0 learns the port) and the server
/// task; abort the task to stop the server. The task ends with an error only if the listener fails.
pub async fn serve_with(
    addr: SocketAddr,
    status: watch::Receiver<Status>,
    ledger: Option<Arc<dyn LedgerApi>>,
) -> Result<(SocketAddr, JoinHandle<Result<()>>)> {
    let bind_err = |source| Error::Bind { addr, source };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    let app = router(Shared { status, ledger });
    let task = tokio::spawn(async move { axum::serve(listener, app).await.map_err(Error::Serve) });
    Ok((local, task))
}

/// What every handler reads: the latest status and, on a network with one, the ledger.
#[derive(Clone)]
struct Shared {
    status: watch::Receiver<Status>,
    ledger: Option<Arc<dyn LedgerApi>>,
}

fn router(shared: Shared) -> Router {
    use ledger_routes as l;
    Router::new()
        .route("/", get(dashboard))
        .route("/api/status", get(status_json))
        .route("/metrics", get(metrics_text))
        .route("/api/ledger/account/{id}", get(l::account))
        .route("/api/ledger/account/{id}/history", get(l::history))
        .route("/api/ledger/block/{height}", get(l::block))
        .route("/api/ledger/round/{round}", get(l::round))
        .route("/api/ledger/submit", post(l::submit))
        .with_state(shared)
}

async fn dashboard() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(DASHBOARD))
}

async fn status_json(State(shared): State<Shared>) -> impl IntoResponse {
    let snapshot = shared.status.borrow().clone();
    ([(header::CACHE_CONTROL, "no-store")], Json(snapshot))
}

async fn metrics_text(State(shared): State<Shared>) -> impl IntoResponse {
    let body = metrics::render(&shared.status.borrow());
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body)
}
