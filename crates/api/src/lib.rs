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
pub mod metrics;
mod status;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::{Error, Result};
pub use status::{Audits, ClosedRound, Excluded, HISTORY_LIMIT, Point, ROUNDS_LIMIT, Status};

/// Where the HTTP API listens unless told otherwise: loopback only, port 8000.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8000));

/// The dashboard page: HTML, CSS and JavaScript in one file, no external requests.
const DASHBOARD: &str = include_str!("dashboard.html");

/// Binds `addr` and serves the routes from the latest value in `status`.
///
/// Returns the bound address (so a caller that asked for port 0 learns the port) and the server
/// task; abort the task to stop the server. The task ends with an error only if the listener fails.
pub async fn serve(
    addr: SocketAddr,
    status: watch::Receiver<Status>,
) -> Result<(SocketAddr, JoinHandle<Result<()>>)> {
    let bind_err = |source| Error::Bind { addr, source };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    let app = router(status);
    let task = tokio::spawn(async move { axum::serve(listener, app).await.map_err(Error::Serve) });
    Ok((local, task))
}

fn router(status: watch::Receiver<Status>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/api/status", get(status_json))
        .route("/metrics", get(metrics_text))
        .with_state(status)
}

async fn dashboard() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(DASHBOARD))
}

async fn status_json(State(status): State<watch::Receiver<Status>>) -> impl IntoResponse {
    let snapshot = status.borrow().clone();
    ([(header::CACHE_CONTROL, "no-store")], Json(snapshot))
}

async fn metrics_text(State(status): State<watch::Receiver<Status>>) -> impl IntoResponse {
    let body = metrics::render(&status.borrow());
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body)
}
