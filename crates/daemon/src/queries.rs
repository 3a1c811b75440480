//! The HTTP API's window on the node's ledger: each request becomes a job the driver runs on its
//! own loop (the one owner of the ledger), and the answer comes back on a oneshot channel.

use neuroshard_api::{
    AccountView, ApiError, BlockView, HistoryEntry, LedgerApi, RoundLedgerView, SubmitReply,
};
use tokio::sync::{mpsc, oneshot};

use crate::book::{account_view, block_view, parse_id};
use crate::driver::Driver;

/// A request for the driver to answer.
pub(crate) type Job = Box<dyn FnOnce(&mut Driver) + Send>;

/// Jobs waiting for the driver.
pub(crate) const JOBS_QUEUED: usize = 64;

/// The [`LedgerApi`] the daemon serves.
#[derive(Debug, Clone)]
pub(crate) struct Queries {
    jobs: mpsc::Sender<Job>,
}

impl Queries {
    /// Queries answered by whoever receives the other end of `jobs`.
    pub(crate) fn new(jobs: mpsc::Sender<Job>) -> Self {
        Self { jobs }
    }

    /// Runs `answer` on the driver's loop and waits for it (the API calls from a blocking thread).
    fn ask<T: Send + 'static>(
        &self,
        answer: impl FnOnce(&mut Driver) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let stopping = || ApiError::Unavailable("the node is stopping".into());
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |driver| {
            let _ = tx.send(answer(driver));
        });
        self.jobs.blocking_send(job).map_err(|_| stopping())?;
        rx.blocking_recv().map_err(|_| stopping())?
    }
}

fn no_ledger() -> ApiError {
    ApiError::Unavailable("this network has no ledger".into())
}

impl LedgerApi for Queries {
    fn account(&self, id: &str) -> Result<AccountView, ApiError> {
        let id = id.to_owned();
        self.ask(move |driver| {
            let chain = driver.chain.as_ref().ok_or_else(no_ledger)?;
            let who = parse_id(&id, &chain.owner()).ok_or_else(|| bad_id(&id))?;
            Ok(account_view(chain.view(), chain.head(), &who))
        })
    }

    fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, ApiError> {
        let id = id.to_owned();
        self.ask(move |driver| {
            let chain = driver.chain.as_ref().ok_or_else(no_ledger)?;
            let who = parse_id(&id, &chain.owner()).ok_or_else(|| bad_id(&id))?;
            Ok(chain.book().history(&who))
        })
    }

    fn block(&self, height: u64) -> Result<BlockView, ApiError> {
        self.ask(move |driver| {
            let chain = driver.chain.as_ref().ok_or_else(no_ledger)?;
            let (block, certificate) = chain
                .stored_with_certificate(height)
                .ok_or_else(|| ApiError::NotFound(format!("no finalized block {height} here")))?;
            Ok(block_view(
                &block,
                certificate,
                chain.handover(height).as_deref(),
            ))
        })
    }

    fn round(&self, round: u64) -> Result<RoundLedgerView, ApiError> {
        self.ask(move |driver| {
            let chain = driver.chain.as_ref().ok_or_else(no_ledger)?;
            chain.book().round(chain.view(), round).ok_or_else(|| {
                ApiError::NotFound(format!(
                    "round {round} is not on the ledger (or long settled)"
                ))
            })
        })
    }

    fn submit(&self, request: &[u8]) -> Result<SubmitReply, ApiError> {
        let request = request.to_vec();
        self.ask(move |driver| driver.wallet_request(&request))
    }
}

fn bad_id(id: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "{id:?} is not an account id (64 hex digits, or \"me\")"
    ))
}
