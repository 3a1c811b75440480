//! `neuroshard bench pipeline-worker` (hidden): one pipeline stage in its own process. It joins
//! its neighbours over libp2p on loopback, runs its 1F1B plan for every step (frames in and out
//! through the frame protocol), and writes what it measured and its first step's gradient.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use neuroshard_model::{Config, Stage};
use neuroshard_p2p::{MemoryStore, NetEvent, Network, NetworkConfig, PeerId, identity};
use neuroshard_pipeline::{Direction, Op, Plan, StageStep, split};
use neuroshard_primitives::{Hash, Keypair};
use serde::Serialize;
use tokio::task::JoinSet;

use super::{Shape, read_batches};

/// How long a stage waits for a frame before it gives up on the step.
const FRAME_WAIT: Duration = Duration::from_secs(120);

/// One stage of a benchmark pipeline (started by `neuroshard bench pipeline`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WorkerArgs {
    /// This stage, from 0.
    #[arg(long)]
    stage: usize,
    /// The next stage's address (`/ip4/127.0.0.1/tcp/…/p2p/…`); none for the last stage.
    #[arg(long)]
    next: Option<String>,
    #[command(flatten)]
    shape: Shape,
}

/// What a worker measured, written to `stage-<s>.json`.
#[derive(Debug, Serialize, serde::Deserialize)]
pub(super) struct WorkerReport {
    pub(super) stage: usize,
    pub(super) params: usize,
    /// Seconds computing (forwards and backwards), per step.
    pub(super) busy_s: Vec<f64>,
    /// Of which in forwards, per step.
    pub(super) forward_s: Vec<f64>,
    /// Seconds from the step's start to its last operation, per step.
    pub(super) wall_s: Vec<f64>,
    /// Frame bytes sent forward and backward, over all steps.
    pub(super) bytes_sent: [u64; 2],
    /// Mean loss per step (last stage only).
    pub(super) loss: Vec<f32>,
}

/// The key of stage `s`: fixed, so every stage knows its neighbours' peer ids.
fn stage_key(s: usize) -> Keypair {
    let mut seed = [0x5a; 32];
    seed[..8].copy_from_slice(&(s as u64).to_le_bytes());
    Keypair::from_seed(seed)
}

/// The libp2p id of stage `s`.
pub(super) fn stage_peer(s: usize) -> Result<PeerId> {
    Ok(identity::peer_id(&stage_key(s).node_id())?)
}

/// The network id of benchmark pipelines.
pub(super) fn network_id() -> Hash {
    Hash::of(b"neuroshard bench pipeline")
}

pub(crate) fn run(args: &WorkerArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: &WorkerArgs) -> Result<()> {
    let shape = &args.shape;
    let (s, n) = (args.stage, shape.stages);
    let cfg = Config::preset(&shape.preset, shape.vocab)?;
    let stage = shape.build_stages(&cfg)?.swap_remove(s);
    let mut config = NetworkConfig::loopback(network_id());
    if let Some(next) = &args.next {
        config.bootstrap = vec![next.parse().context("parsing --next")?];
    }
    let mut net = Network::start(
        &stage_key(s),
        config,
        std::sync::Arc::new(MemoryStore::new()),
    )
    .await?;
    let addr = net.handle.bootstrap_addrs().await?.remove(0);
    println!("listening {addr}");
    let prev = s.checked_sub(1).map(stage_peer).transpose()?;
    let next = (s + 1 < n).then(|| stage_peer(s + 1)).transpose()?;
    wait_for_peers(&net, prev.iter().chain(&next).copied().collect()).await?;

    let batches = read_batches(&shape.dir, shape)?;
    let plan = Plan::one_f_one_b(n, shape.micro_batches)?;
    let limit = neuroshard_pipeline::FrameLimit::for_model(
        &cfg,
        shape.batch / shape.micro_batches as usize,
    );
    let mut report = WorkerReport {
        stage: s,
        params: stage.n_params(),
        busy_s: vec![],
        forward_s: vec![],
        wall_s: vec![],
        bytes_sent: [0; 2],
        loss: vec![],
    };
    for (step, batch) in batches.iter().enumerate() {
        let micro = split(batch, shape.micro_batches as usize)?;
        let ops = plan.ops(s).context("no plan for this stage")?;
        let work = StageStep::new(
            &stage,
            (s, n),
            step as u64,
            ops,
            micro,
            shape.precision,
            limit,
        )?;
        let outcome = run_step(work, &stage, &mut net, (prev, next), &mut report).await?;
        if step == 0 {
            let bytes: Vec<u8> = outcome.grads.iter().flat_map(|g| g.to_le_bytes()).collect();
            std::fs::write(shape.dir.join(format!("stage-{s}.grads")), bytes)
                .context("writing the gradient")?;
        }
        report.loss.extend(outcome.loss);
    }
    let path = shape.dir.join(format!("stage-{s}.json"));
    // Every frame this stage sent was acknowledged, so leaving now takes nothing from the others.
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Runs one step's plan: operations when their input is here, frames as they arrive.
async fn run_step(
    mut work: StageStep,
    stage: &Stage,
    net: &mut Network,
    (prev, next): (Option<PeerId>, Option<PeerId>),
    report: &mut WorkerReport,
) -> Result<neuroshard_pipeline::StageOutcome> {
    #[allow(clippy::disallowed_methods)] // a benchmark measures time
    let start = Instant::now();
    let (mut busy, mut forward) = (Duration::ZERO, Duration::ZERO);
    let mut sends = JoinSet::new();
    while !work.is_done() {
        while work.is_ready() {
            #[allow(clippy::disallowed_methods)] // a benchmark measures time
            let t0 = Instant::now();
            let is_forward = matches!(work.next_op(), Some(Op::Forward(_)));
            let out = tokio::task::block_in_place(|| work.run_next(stage))?;
            busy += t0.elapsed();
            if is_forward {
                forward += t0.elapsed();
            }
            let Some(out) = out else { continue };
            let (peer, lane) = match out.to {
                Direction::Next => (next, 0),
                Direction::Prev => (prev, 1),
            };
            let peer = peer.context("a frame for a neighbour this stage does not have")?;
            report.bytes_sent[lane] += out.bytes.len() as u64;
            let handle = net.handle.clone();
            sends.spawn(async move { send_with_retry(&handle, peer, out.bytes).await });
        }
        if work.is_done() {
            break;
        }
        let event = tokio::time::timeout(FRAME_WAIT, net.events.recv())
            .await
            .context("no frame came in time")?;
        match event {
            Some(NetEvent::Frame { peer, bytes }) if Some(peer) == prev || Some(peer) == next => {
                work.deliver(&bytes)?
            }
            Some(NetEvent::Frame { peer, .. }) => {
                tracing::warn!(%peer, "ignored a frame from a peer that is not a neighbour");
            }
            Some(NetEvent::PeerDisconnected { peer })
                if Some(peer) == prev || Some(peer) == next =>
            {
                bail!("neighbour {peer} left mid-step")
            }
            Some(_) => {}
            None => bail!("the network stopped"),
        }
    }
    while let Some(sent) = sends.join_next().await {
        sent??;
    }
    report.busy_s.push(busy.as_secs_f64());
    report.forward_s.push(forward.as_secs_f64());
    report.wall_s.push(start.elapsed().as_secs_f64());
    Ok(work.finish()?)
}

/// Sends a frame; a peer that has not admitted us yet refuses it, so retry for a while.
async fn send_with_retry(
    handle: &neuroshard_p2p::NetworkHandle,
    peer: PeerId,
    bytes: Vec<u8>,
) -> Result<()> {
    let mut tries = 0;
    loop {
        match handle.send_frame(peer, bytes.clone()).await {
            Ok(()) => return Ok(()),
            Err(err) if tries >= 100 => return Err(err).context("sending a frame"),
            Err(_) => tries += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every peer in `want` is admitted.
async fn wait_for_peers(net: &Network, want: Vec<PeerId>) -> Result<()> {
    let poll = async {
        loop {
            let have = net.handle.peers().await?;
            if want.iter().all(|p| have.contains(p)) {
                return anyhow::Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), poll)
        .await
        .context("the neighbours did not connect in time")?
}
