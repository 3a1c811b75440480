//! `neuroshard wallet`: this node's NEURO account, through the local node's HTTP API.
//!
//! Reading (`balance`, `history`) needs only the API. Spending (`send`, `stake`, `unstake`,
//! `withdraw`) also needs the node's key file from `--data-dir`: the wallet signs a
//! [`WalletRequest`] with it and the node, which checks the signature is its own, puts the action
//! on the ledger through its outbox. Whoever reaches the HTTP port without the key cannot spend.

use std::path::PathBuf;

use anyhow::{Context, bail};
use neuroshard_api::{AccountView, BlockView, HistoryEntry, HistoryKind, SubmitReply};
use neuroshard_daemon::{NodeConfig, keyfile};
use neuroshard_ledger::{AccountProof, Action, Amount, MetaProof, NEURO, WalletRequest};
use neuroshard_primitives::{Hash, Keypair, NodeId};

use crate::http;

/// Arguments of `neuroshard wallet`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
    /// The local node's HTTP API.
    #[arg(
        long,
        env = "NEUROSHARD_NODE",
        default_value = "http://127.0.0.1:8000",
        global = true
    )]
    node: String,
    /// The node's data directory, which holds its key (node.key); the same default as
    /// `neuroshard node`.
    #[arg(long, env = "NEUROSHARD_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print this node's account id (read from its key file; no node needed).
    Address,
    /// Balance, stake, unbonding and nonce of an account (default: this node's).
    Balance {
        /// The account id, 64 hex digits.
        id: Option<String>,
        /// Check the answer instead of trusting the node: the account's Merkle proof against the
        /// state root of the finalized block it was read at, and that block's certificate against
        /// the committee of this genesis file (no replay of the ledger).
        #[arg(long, value_name = "GENESIS_TOML")]
        verify: Option<PathBuf>,
    },
    /// Send NEURO from this node's balance to another account.
    Send {
        /// The recipient's account id, 64 hex digits.
        to: String,
        /// How much, in NEURO ("1.5"; at most 6 decimals).
        #[arg(value_parser = parse_neuro)]
        amount: Amount,
    },
    /// Bond NEURO from the balance as stake.
    Stake {
        /// How much, in NEURO.
        #[arg(value_parser = parse_neuro)]
        amount: Amount,
    },
    /// Start unbonding NEURO of the stake (withdrawable once released).
    Unstake {
        /// How much, in NEURO.
        #[arg(value_parser = parse_neuro)]
        amount: Amount,
    },
    /// Move every released unbonding entry back to the balance.
    Withdraw,
    /// The changes to an account, newest last (default: this node's).
    History {
        /// The account id, 64 hex digits.
        id: Option<String>,
    },
}

/// Runs `neuroshard wallet`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(wallet(args))
}

async fn wallet(args: Args) -> anyhow::Result<()> {
    let node = args.node.as_str();
    match args.command {
        Command::Address => println!("{}", load_key(args.data_dir)?.node_id().to_hex()),
        Command::Balance { id, verify } => {
            let view = account(node, id.as_deref()).await?;
            print_account(&view);
            if let Some(genesis) = verify {
                let block: BlockView =
                    http::get(node, &format!("/api/ledger/block/{}", view.height)).await?;
                check_account(node, &view, &block, &genesis).await?;
                println!("verified   against block {}'s certificate", view.height);
            }
        }
        Command::History { id } => print_history(history(node, id.as_deref()).await?),
        Command::Send { to, amount } => {
            let to = account_id(&to)?;
            submit(node, args.data_dir, Action::Transfer { to, amount }).await?;
        }
        Command::Stake { amount } => submit(node, args.data_dir, Action::Stake { amount }).await?,
        Command::Unstake { amount } => {
            submit(node, args.data_dir, Action::Unstake { amount }).await?;
        }
        Command::Withdraw => submit(node, args.data_dir, Action::Withdraw).await?,
    }
    Ok(())
}

/// Checks `view` without trusting the node: `block` carries a certificate of the committee of
/// its epoch, its state root is the one `view` was read at, and the account's proof leads there.
/// The committee of each epoch is learned from the genesis one, epoch by epoch: the last block of
/// epoch `e` must carry a certificate of epoch `e`'s committee and a proof, against its state
/// root, of the committee it hands over to.
async fn check_account(
    node: &str,
    view: &AccountView,
    block: &BlockView,
    genesis: &std::path::Path,
) -> anyhow::Result<()> {
    let genesis = neuroshard_data::Genesis::load(genesis)?;
    let spec = genesis
        .ledger
        .context("this genesis file has no ledger section")?;
    let mut committee: Vec<[u8; 32]> = spec
        .committee_ids()
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .map(|id| id.0)
        .collect();
    let rules = spec.rules().map_err(anyhow::Error::msg)?;
    let length = rules.epoch_blocks;
    let epoch = rules.epoch_of(view.height);
    for earlier in 0..epoch {
        let height = neuroshard_consensus::epoch::last_height(length, earlier);
        let boundary: BlockView = http::get(node, &format!("/api/ledger/block/{height}")).await?;
        let certified = certified(&committee, earlier, &boundary)?;
        let proof: MetaProof = postcard::from_bytes(
            &hex::decode(&boundary.committee_proof).context("the committee proof is not hex")?,
        )
        .with_context(|| format!("block {height} carries no committee proof"))?;
        let meta = proof
            .verify(&Hash(certified.header.state_root))
            .with_context(|| {
                format!(
                    "block {height}'s committee proof does not lead to its certified state root"
                )
            })?;
        committee = meta.committee.iter().map(|id| id.0).collect();
        // At most `MAX_COMMITTEE` distinct keys, refused here rather than at the next certificate.
        neuroshard_consensus::committee_set(&committee).with_context(|| {
            format!("block {height}'s committee proof names no valid committee")
        })?;
    }
    let certified = certified(&committee, epoch, block)?;
    let root = Hash(certified.header.state_root);
    if certified.header.height != view.height || root.to_hex() != view.state_root {
        bail!("the certified block is not the one the account was read at");
    }
    let proof: AccountProof =
        postcard::from_bytes(&hex::decode(&view.proof).context("the account proof is not hex")?)
            .context("the account proof does not decode")?;
    let id = account_id(&view.id)?;
    let account = &proof.account;
    let same =
        (account.balance, account.stake, account.nonce) == (view.balance, view.stake, view.nonce);
    if !same || !proof.verify(&id, &root) {
        bail!("the account's proof does not lead to the certified state root");
    }
    Ok(())
}

/// `block` checked against `committee`, the committee of `epoch`: the block it certifies.
fn certified(
    committee: &[[u8; 32]],
    epoch: u64,
    block: &BlockView,
) -> anyhow::Result<neuroshard_consensus::Block> {
    if block.certificate.is_empty() {
        bail!(
            "block {} was finalized through a later block and has no certificate of its own; \
             ask again in a moment",
            block.height
        );
    }
    let bytes = hex::decode(&block.block).context("the block's bytes are not hex")?;
    let certificate = hex::decode(&block.certificate).context("the certificate is not hex")?;
    neuroshard_consensus::verify_finalized(committee, epoch, &bytes, &certificate).with_context(
        || {
            format!(
                "block {}'s certificate does not verify against the committee of epoch {epoch}",
                block.height
            )
        },
    )
}

/// The node's key from `data_dir` (default: `neuroshard node`'s), which must exist.
fn load_key(data_dir: Option<PathBuf>) -> anyhow::Result<Keypair> {
    let dir = data_dir.unwrap_or_else(|| NodeConfig::default().data_dir);
    Ok(keyfile::load(&dir.join(keyfile::KEY_FILE))?)
}

/// The path segment for an account: its id checked, or `me` for the node's own.
fn account_path(id: Option<&str>) -> anyhow::Result<String> {
    Ok(id
        .map(account_id)
        .transpose()?
        .map_or_else(|| "me".to_owned(), |id| id.to_hex()))
}

async fn account(node: &str, id: Option<&str>) -> anyhow::Result<AccountView> {
    http::get(node, &format!("/api/ledger/account/{}", account_path(id)?)).await
}

async fn history(node: &str, id: Option<&str>) -> anyhow::Result<Vec<HistoryEntry>> {
    let path = format!("/api/ledger/account/{}/history", account_path(id)?);
    http::get(node, &path).await
}

/// Signs `action` with the node's key for the node's network and hands it to the node.
async fn submit(node: &str, data_dir: Option<PathBuf>, action: Action) -> anyhow::Result<()> {
    let key = load_key(data_dir)?;
    let network = network_of(node).await?;
    let summary = describe(&action);
    let sealed = seal(&key, network, action, now_ms());
    let reply: SubmitReply = http::post(node, "/api/ledger/submit", &sealed).await?;
    println!("{summary}: {} (request {})", reply.message, reply.request);
    Ok(())
}

/// The sealed request: what the node opens with `WalletRequest::open`.
fn seal(key: &Keypair, network: Hash, action: Action, issued_ms: u64) -> Vec<u8> {
    WalletRequest {
        network,
        action,
        issued_ms,
    }
    .seal(key)
}

/// The network id the node reports in `GET /api/status`.
async fn network_of(node: &str) -> anyhow::Result<Hash> {
    #[derive(serde::Deserialize)]
    struct Network {
        network_id: Hash,
    }
    let status: Network = http::get(node, "/api/status").await?;
    Ok(status.network_id)
}

/// Milliseconds since the Unix epoch: the request's issue time, which the node checks against
/// its own clock.
fn now_ms() -> u64 {
    #[allow(clippy::disallowed_methods)] // The wallet is the CLI's edge: it reads the clock.
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An account id: 64 hex digits.
fn account_id(text: &str) -> anyhow::Result<NodeId> {
    let hash: Hash = text
        .parse()
        .map_err(|_| anyhow::anyhow!("account id {text:?}: expected 64 hex digits"))?;
    Ok(NodeId(hash.0))
}

/// Parses decimal NEURO text ("1.5", "20", "0.000001") into micro-NEURO, exactly.
fn parse_neuro(text: &str) -> anyhow::Result<Amount> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if text.starts_with('-') {
        bail!("{text:?}: an amount cannot be negative");
    }
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !(fraction.is_empty() || digits(fraction)) || text.ends_with('.') {
        bail!("{text:?}: expected an amount of NEURO like 1.5");
    }
    if fraction.len() > 6 {
        bail!("{text:?}: NEURO has at most 6 decimals");
    }
    let overflow = || anyhow::anyhow!("{text:?}: too large an amount");
    let micro = format!("{fraction:0<6}").parse::<Amount>()?;
    let amount = whole
        .parse::<Amount>()
        .map_err(|_| overflow())?
        .checked_mul(NEURO)
        .and_then(|units| units.checked_add(micro))
        .ok_or_else(overflow)?;
    if amount == 0 {
        bail!("{text:?}: the amount must be more than zero");
    }
    Ok(amount)
}

/// Micro-NEURO as NEURO with 6 decimals.
fn neuro(amount: Amount) -> String {
    format!("{}.{:06}", amount / NEURO, amount % NEURO)
}

/// One line for a person: what the action does.
fn describe(action: &Action) -> String {
    match action {
        Action::Transfer { to, amount } => {
            format!("send {} NEURO to {}", neuro(*amount), to.to_hex())
        }
        Action::Stake { amount } => format!("stake {} NEURO", neuro(*amount)),
        Action::Unstake { amount } => format!("unstake {} NEURO", neuro(*amount)),
        Action::Withdraw => "withdraw released stake".to_owned(),
        other => format!("{other:?}"),
    }
}

fn print_account(account: &AccountView) {
    println!("account    {}", account.id);
    println!("balance    {} NEURO", neuro(account.balance));
    println!("stake      {} NEURO", neuro(account.stake));
    for unbond in &account.unbonding {
        let (amount, at) = (neuro(unbond.amount), unbond.release_height);
        println!("unbonding  {amount} NEURO, withdrawable from height {at}");
    }
    println!("nonce      {}", account.nonce);
    println!(
        "as of      height {}, state root {}",
        account.height, account.state_root
    );
}

fn print_history(mut entries: Vec<HistoryEntry>) {
    if entries.is_empty() {
        println!("no history");
    }
    entries.sort_by_key(|entry| entry.height);
    for entry in entries {
        let (sign, kind) = kind(entry.kind);
        let other = entry
            .counterparty
            .map(|id| format!(" {id}"))
            .unwrap_or_default();
        let tx = entry.tx.map(|id| format!(" tx {id}")).unwrap_or_default();
        let amount = neuro(entry.amount);
        println!(
            "height {:>8}  {kind:<15} {sign}{amount:>18} NEURO{other}{tx}",
            entry.height
        );
    }
}

/// How a history entry reads: the sign it puts on the balance and its name.
fn kind(kind: HistoryKind) -> (char, &'static str) {
    match kind {
        HistoryKind::TransferIn => ('+', "received from"),
        HistoryKind::TransferOut => ('-', "sent to"),
        HistoryKind::Stake => (' ', "staked"),
        HistoryKind::Unstake => (' ', "unstaked"),
        HistoryKind::Withdraw => (' ', "withdrawn"),
        HistoryKind::Reward => ('+', "reward"),
        HistoryKind::ProposerReward => ('+', "proposer reward"),
        HistoryKind::Slash => ('-', "slashed"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use neuroshard_api::ApiError;

    use super::*;

    #[test]
    fn amounts_parse_exactly() {
        assert_eq!(parse_neuro("1.5").unwrap(), 1_500_000);
        assert_eq!(parse_neuro("20").unwrap(), 20 * NEURO);
        assert_eq!(parse_neuro("0.000001").unwrap(), 1);
        assert_eq!(parse_neuro("007.250000").unwrap(), 7_250_000);
        let max = u64::MAX;
        let text = format!("{}.{:06}", max / NEURO, max % NEURO);
        assert_eq!(parse_neuro(&text).unwrap(), max);
        assert_eq!(neuro(max), text, "formatting is the inverse");
    }

    #[test]
    fn bad_amounts_say_why() {
        let why = |text: &str| parse_neuro(text).unwrap_err().to_string();
        assert!(why("-1").contains("negative"));
        assert!(why("0.0000001").contains("6 decimals"));
        assert!(why("18446744073710").contains("too large"));
        assert!(why("99999999999999999999999").contains("too large"));
        assert!(why("0").contains("more than zero"));
        assert!(why("0.000000").contains("more than zero"));
        for bad in [
            "", ".5", "1.", "1.2.3", "1e6", "1,5", " 1", "+1", "1_000", "abc",
        ] {
            assert!(why(bad).contains("like 1.5"), "{bad:?}: {}", why(bad));
        }
    }

    #[test]
    fn amounts_print_with_six_decimals() {
        assert_eq!(neuro(1_500_000), "1.500000");
        assert_eq!(neuro(1), "0.000001");
        assert_eq!(neuro(0), "0.000000");
    }

    #[test]
    fn a_sealed_request_opens_for_its_owner_only() {
        let key = Keypair::from_seed([7; 32]);
        let network = Hash::of(b"a network");
        let to = Keypair::from_seed([8; 32]).node_id();
        let action = Action::Transfer {
            to,
            amount: 1_500_000,
        };
        let sealed = seal(&key, network, action.clone(), 1_000_000);
        let (opened, hash) =
            WalletRequest::open(&sealed, &key.node_id(), &network, 1_000_500).unwrap();
        assert_eq!(opened.action, action);
        assert_eq!((opened.network, opened.issued_ms), (network, 1_000_000));
        assert_eq!(hash, Hash::of(&sealed));
        assert!(
            WalletRequest::open(&sealed, &to, &network, 1_000_500).is_err(),
            "not another node's"
        );
    }

    #[test]
    fn account_ids_and_paths() {
        let id = "ab".repeat(32);
        assert_eq!(account_id(&id).unwrap(), NodeId([0xab; 32]));
        assert!(
            account_id("abc")
                .unwrap_err()
                .to_string()
                .contains("64 hex digits")
        );
        assert_eq!(account_path(None).unwrap(), "me");
        assert_eq!(account_path(Some(&id.to_uppercase())).unwrap(), id);
    }

    #[test]
    fn the_key_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_key(Some(dir.path().to_owned())).unwrap_err();
        assert!(format!("{err:#}").contains("neuroshard node"), "{err:#}");
    }

    #[derive(Debug, clap::Parser)]
    struct WalletCli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        use clap::Parser;
        WalletCli::try_parse_from([&["wallet"], argv].concat()).map(|cli| cli.args)
    }

    #[test]
    fn the_command_line_parses_amounts_and_flags_anywhere() {
        let args = parse(&["send", &"ab".repeat(32), "1.5", "--data-dir", "/k"]).unwrap();
        assert!(matches!(
            args.command,
            Command::Send {
                amount: 1_500_000,
                ..
            }
        ));
        assert_eq!(args.data_dir, Some(PathBuf::from("/k")));
        assert_eq!(parse(&["balance"]).unwrap().node, "http://127.0.0.1:8000");
        let err = parse(&["--node", "http://h:1", "stake", "1.0000001"]).unwrap_err();
        assert!(err.to_string().contains("6 decimals"), "{err}");
        assert!(parse(&["unstake", "-1"]).is_err());
    }

    /// Opens every submitted request as the node would, and keeps the actions.
    struct Node {
        owner: NodeId,
        network: Hash,
        taken: std::sync::Mutex<Vec<Action>>,
    }

    impl neuroshard_api::LedgerApi for Node {
        fn account(&self, id: &str) -> Result<AccountView, ApiError> {
            Ok(AccountView {
                id: id.to_owned(),
                balance: 1_500_000,
                ..AccountView::default()
            })
        }
        fn history(&self, _: &str) -> Result<Vec<HistoryEntry>, ApiError> {
            Ok(Vec::new())
        }
        fn block(&self, height: u64) -> Result<neuroshard_api::BlockView, ApiError> {
            Err(ApiError::NotFound(format!("no block {height}")))
        }
        fn round(&self, round: u64) -> Result<neuroshard_api::RoundLedgerView, ApiError> {
            Err(ApiError::NotFound(format!("no round {round}")))
        }
        fn submit(&self, bytes: &[u8]) -> Result<SubmitReply, ApiError> {
            let opened = WalletRequest::open(bytes, &self.owner, &self.network, now_ms());
            let (request, hash) = opened.map_err(|err| ApiError::BadRequest(err.to_string()))?;
            self.taken.lock().unwrap().push(request.action);
            Ok(SubmitReply {
                request: hash.to_hex(),
                message: "queued".to_owned(),
            })
        }
    }

    /// A node's API on an OS-chosen loopback port, with the ledger `ledger` (or none).
    async fn api(network: Hash, ledger: Option<Arc<Node>>) -> String {
        let status = neuroshard_api::Status {
            network_id: network,
            ..Default::default()
        };
        let (_tx, rx) = tokio::sync::watch::channel(status);
        let ledger = ledger.map(|node| node as Arc<dyn neuroshard_api::LedgerApi>);
        let addr = "127.0.0.1:0".parse().unwrap();
        let backends = neuroshard_api::Backends {
            ledger,
            completions: None,
        };
        let (addr, _task) = neuroshard_api::serve_with(addr, rx, backends)
            .await
            .unwrap();
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn the_node_takes_what_its_key_signed_and_says_why_not() {
        let (mine, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let key = keyfile::load_or_create(&mine.path().join(keyfile::KEY_FILE)).unwrap();
        keyfile::load_or_create(&other.path().join(keyfile::KEY_FILE)).unwrap();
        let network = Hash::of(b"wallet test");
        let node = Arc::new(Node {
            owner: key.node_id(),
            network,
            taken: Default::default(),
        });
        let url = api(network, Some(node.clone())).await;
        let stake = Action::Stake { amount: NEURO };
        submit(&url, Some(mine.path().to_owned()), stake.clone())
            .await
            .unwrap();
        assert_eq!(*node.taken.lock().unwrap(), vec![stake.clone()]);
        assert_eq!(account(&url, None).await.unwrap().id, "me");
        let stranger = submit(&url, Some(other.path().to_owned()), stake.clone()).await;
        let message = format!("{:#}", stranger.unwrap_err());
        assert!(message.contains("HTTP 400"), "{message}");
        let plain = api(network, None).await;
        let message = format!("{:#}", account(&plain, None).await.unwrap_err());
        assert!(
            message.contains("this network has no ledger (HTTP 503)"),
            "{message}"
        );
        let message = format!(
            "{:#}",
            account("http://127.0.0.1:1", None).await.unwrap_err()
        );
        assert!(message.contains("cannot reach the node"), "{message}");
    }
}
