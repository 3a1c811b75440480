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
//! | `GET /v1/models` | the served model, as OpenAI lists models |
//! | `POST /v1/completions` | an OpenAI completion (`stream: true`: server-sent events) |
//! | `POST /v1/chat/completions` | an OpenAI chat completion, the messages rendered with [`chat_prompt`] |
//!
//! The ledger routes ask the [`LedgerApi`] given to [`serve_with`] in its [`Backends`]; without
//! one (and under [`serve`]) they answer 503. Their errors are JSON, `{"error": "..."}`
//! ([`ErrorBody`]), with 404, 400 or 503 as [`ApiError`] says.
//!
//! The `/v1` routes are OpenAI-compatible (the official clients work unchanged) and ask the
//! [`Completions`] in the [`Backends`]: the routes check the request (model name, `n = 1`,
//! `max_tokens` within the context, sampling settings in range), run the generation on a
//! blocking thread, at most [`GENERATIONS_AT_ONCE`] at once (429 past that), and answer its
//! text whole or streamed. Their errors have OpenAI's shape,
//! `{"error": {"message", "type", "param", "code"}}`, with 400, 404, 413, 429, 500 or 503.
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
mod openai;
mod openai_routes;
mod openai_wire;
mod status;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::{any, get, post};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::{Error, Result};
pub use ledger::{
    AccountView, ApiError, AuditView, BlockView, ClaimView, ConvictionView, ErrorBody,
    HistoryEntry, HistoryKind, LedgerApi, LedgerStatus, PendingTx, REWARDS_LIMIT, RewardPoint,
    RewardView, RoundLedgerView, SubmitReply, TxView, UnbondView,
};
pub use openai::{
    CHAT_TURN_END, CompletionError, Completions, FinishReason, Finished, GENERATIONS_AT_ONCE,
    Generation, MAX_BODY_BYTES, MAX_STOPS, ModelInfo, chat_prompt,
};
pub use status::{
    Audits, CapacityStatus, ClosedRound, Excluded, GrowthPoint, HISTORY_LIMIT, ModelPoint, Point,
    PrivacyStatus, ROUNDS_LIMIT, RoleStatus, Status,
};

/// Where the HTTP API listens unless told otherwise: loopback only, port 8000.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8000));

/// The dashboard page: HTML, CSS and JavaScript in one file, no external requests.
const DASHBOARD: &str = include_str!("dashboard.html");

/// Binds `addr` and serves the routes from the latest value in `status`, with no ledger and no
/// model: [`serve_with`] and [`Backends::default`].
pub async fn serve(
    addr: SocketAddr,
    status: watch::Receiver<Status>,
) -> Result<(SocketAddr, JoinHandle<Result<()>>)> {
    serve_with(addr, status, Backends::default()).await
}

/// What answers the routes beyond the status: each route group answers 503 without its backend.
#[derive(Default)]
pub struct Backends {
    /// The `/api/ledger/*` routes.
    pub ledger: Option<Arc<dyn LedgerApi>>,
    /// The OpenAI-compatible `/v1/*` routes.
    pub completions: Option<Arc<dyn Completions>>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("ledger", &self.ledger.is_some())
            .field("completions", &self.completions.is_some())
            .finish()
    }
}

/// Binds `addr` and serves the routes from the latest value in `status`, the ledger and `/v1`
/// routes from `backends`.
///
/// Returns the bound address (so a caller that asked for port 0 learns the port) and the server
/// task; abort the task to stop the server. The task ends with an error only if the listener fails.
pub async fn serve_with(
    addr: SocketAddr,
    status: watch::Receiver<Status>,
    backends: Backends,
) -> Result<(SocketAddr, JoinHandle<Result<()>>)> {
    let bind_err = |source| Error::Bind { addr, source };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    let shared = Shared {
        status,
        ledger: backends.ledger,
        openai: backends.completions.map(openai_routes::OpenAi::new),
    };
    let app = router(shared);
    let task = tokio::spawn(async move { axum::serve(listener, app).await.map_err(Error::Serve) });
    Ok((local, task))
}

/// What every handler reads: the latest status and, where there are, the ledger and the model.
#[derive(Clone)]
struct Shared {
    status: watch::Receiver<Status>,
    ledger: Option<Arc<dyn LedgerApi>>,
    openai: Option<openai_routes::OpenAi>,
}

fn router(shared: Shared) -> Router {
    use ledger_routes as l;
    use openai_routes as o;
    let v1 = Router::new()
        .route("/v1/models", get(o::models))
        .route("/v1/completions", post(o::completions))
        .route("/v1/chat/completions", post(o::chat))
        .route("/v1/{*rest}", any(o::not_found))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    Router::new()
        .route("/", get(dashboard))
        .route("/api/status", get(status_json))
        .route("/metrics", get(metrics_text))
        .route("/api/ledger/account/{id}", get(l::account))
        .route("/api/ledger/account/{id}/history", get(l::history))
        .route("/api/ledger/block/{height}", get(l::block))
        .route("/api/ledger/round/{round}", get(l::round))
        .route("/api/ledger/submit", post(l::submit))
        .merge(v1)
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
