//! The `/api/ledger/*` handlers: check the path, ask the [`LedgerApi`] on a blocking thread,
//! answer JSON (an [`ApiError`] as `{"error": "..."}` with its status).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::{ApiError, LedgerApi, Shared};

type Answer = Result<Response, ApiError>;

pub(crate) async fn account(State(shared): State<Shared>, Path(id): Path<String>) -> Answer {
    let id = account_id(&id)?;
    ask(&shared, move |ledger| ledger.account(&id)).await
}

pub(crate) async fn history(State(shared): State<Shared>, Path(id): Path<String>) -> Answer {
    let id = account_id(&id)?;
    ask(&shared, move |ledger| ledger.history(&id)).await
}

pub(crate) async fn block(State(shared): State<Shared>, Path(height): Path<String>) -> Answer {
    let height = number("height", &height)?;
    ask(&shared, move |ledger| ledger.block(height)).await
}

pub(crate) async fn round(State(shared): State<Shared>, Path(round): Path<String>) -> Answer {
    let round = number("round", &round)?;
    ask(&shared, move |ledger| ledger.round(round)).await
}

pub(crate) async fn submit(State(shared): State<Shared>, body: Bytes) -> Answer {
    ask(&shared, move |ledger| ledger.submit(&body)).await
}

/// Runs `query` against the ledger off the async threads (an implementation may take a lock)
/// and answers its value as JSON; 503 when this network has no ledger.
async fn ask<T, F>(shared: &Shared, query: F) -> Answer
where
    T: Serialize + Send + 'static,
    F: FnOnce(&dyn LedgerApi) -> Result<T, ApiError> + Send + 'static,
{
    let ledger = shared
        .ledger
        .clone()
        .ok_or_else(|| ApiError::Unavailable("this network has no ledger".to_owned()))?;
    let value = tokio::task::spawn_blocking(move || query(Arc::as_ref(&ledger)))
        .await
        .map_err(|err| ApiError::Unavailable(format!("the ledger query failed: {err}")))??;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(value)).into_response())
}

/// An account id from the path: `me`, or 64 hex digits (lowercased).
fn account_id(text: &str) -> Result<String, ApiError> {
    let hex = text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit());
    if text == "me" || hex {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(ApiError::BadRequest(format!(
            "account id {text:?}: expected `me` or 64 hex digits"
        )))
    }
}

fn number(what: &str, text: &str) -> Result<u64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::BadRequest(format!("{what} {text:?}: expected a whole number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_numbers_from_the_path() {
        assert_eq!(account_id("me").unwrap(), "me");
        assert_eq!(account_id(&"AB".repeat(32)).unwrap(), "ab".repeat(32));
        assert!(account_id("ab").is_err());
        assert!(account_id(&"zz".repeat(32)).is_err());
        assert_eq!(number("height", "12").unwrap(), 12);
        assert!(number("height", "-1").is_err());
    }
}
