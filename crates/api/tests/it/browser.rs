//! Loads the dashboard in headless Chromium and checks that the plot shows the served loss, and
//! that the ledger card shows the served ledger (and stays hidden without one), and that the
//! privacy card shows the ε spent (and stays hidden without DP).
//!
//! Skipped, with a printed reason, when no `chromium` binary is found (set `CHROMIUM` to point
//! at one). Set `NS_DASHBOARD_SCREENSHOT=/path/shot.png` to also save a screenshot.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use neuroshard_api::Point;
use neuroshard_testkit::{attr, chromium, run_chromium, text};

use crate::support::{loss_at, sample_ledger, sample_status, start};

/// Keeps adding a point every 20 ms, as a training node would, up to 300 points.
fn keep_training(tx: tokio::sync::watch::Sender<neuroshard_api::Status>, from: u64) {
    tokio::spawn(async move {
        for i in from..300 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let step = i * 10;
            tx.send_modify(|status| {
                status.push_point(Point {
                    step,
                    loss: Some(loss_at(step)),
                    ..Point::default()
                });
                status.loss = Some(loss_at(step));
                status.round = step / 20;
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_plots_the_live_loss() {
    let Some(binary) = chromium() else {
        println!("skipped: no chromium on PATH (apt-get install chromium, or set CHROMIUM)");
        return;
    };
    let initial = 20;
    let (addr, tx) = start(sample_status(initial)).await;
    keep_training(tx, initial);
    let url = format!("http://{addr}/");
    let dom = headless(&binary, url, vec!["--dump-dom".to_owned()]).await;
    assert!(dom.contains("id=\"plot\""), "page rendered: {dom}");
    check_plot(&dom, initial);
    assert_eq!(
        attr(&dom, "ledger", "hidden"),
        Some(""),
        "no ledger, no card"
    );
    assert_eq!(attr(&dom, "privacy", "hidden"), Some(""), "no DP, no ε");
    if let Some(path) = std::env::var_os("NS_DASHBOARD_SCREENSHOT") {
        screenshot(&binary, addr, Path::new(&path)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_privacy_spent() {
    let Some(binary) = chromium() else {
        println!("skipped: no chromium on PATH (apt-get install chromium, or set CHROMIUM)");
        return;
    };
    let status = neuroshard_api::Status {
        privacy: Some(neuroshard_api::PrivacyStatus {
            clip: 1.0,
            noise: 1.0,
            delta: 1e-5,
            sampling_rate: Some(0.01),
            steps: 1000,
            epsilon: Some(2.101_366),
        }),
        ..sample_status(5)
    };
    let (addr, _tx) = start(status).await;
    let url = format!("http://{addr}/");
    let dom = headless(&binary, url, vec!["--dump-dom".to_owned()]).await;
    assert_eq!(attr(&dom, "privacy", "hidden"), None, "the card shows");
    assert_eq!(text(&dom, "privacy-label"), "Privacy ε (δ=0.00001)");
    assert_eq!(text(&dom, "privacy-epsilon"), "2.101");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_ledger_card() {
    let Some(binary) = chromium() else {
        println!("skipped: no chromium on PATH (apt-get install chromium, or set CHROMIUM)");
        return;
    };
    let status = neuroshard_api::Status {
        ledger: Some(sample_ledger(30)),
        ..sample_status(5)
    };
    let (addr, _tx) = start(status).await;
    let dom = headless(
        &binary,
        format!("http://{addr}/"),
        vec!["--dump-dom".to_owned()],
    )
    .await;
    assert_eq!(attr(&dom, "ledger", "hidden"), None, "the card shows");
    assert_eq!(text(&dom, "ledger-balance"), "12.500000");
    assert_eq!(text(&dom, "ledger-stake"), "100.000000");
    assert_eq!(text(&dom, "ledger-unbonding"), "2.000000");
    assert_eq!(text(&dom, "ledger-rewards"), "7.500000");
    assert_eq!(text(&dom, "ledger-height"), "40");
    assert_eq!(text(&dom, "ledger-finality"), "700 / 1900 ms");
    assert_eq!(text(&dom, "ledger-committee-size"), "3");
    let values: Vec<f64> = attr(&dom, "rewards-line", "data-values")
        .expect("the rewards chart has values")
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    let expected: Vec<f64> = (1..=30).map(|h| h as f64 * 0.25).collect();
    assert_eq!(values, expected, "cumulative rewards, in NEURO, by height");
}

fn check_plot(dom: &str, initial: u64) {
    let updates = body_updates(dom);
    assert!(updates >= 2, "the page polled more than once: {updates}");
    let values: Vec<f64> = attr(dom, "loss-line", "data-values")
        .expect("the plot has values")
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(
        values.len() as u64 > initial,
        "points served after the page loaded are plotted"
    );
    for (i, value) in values.iter().enumerate() {
        assert_eq!(
            *value,
            loss_at(i as u64 * 10),
            "point {i} is the served loss"
        );
    }
    let points: Vec<(f64, f64)> = attr(dom, "loss-line", "points")
        .expect("the plot has points")
        .split(' ')
        .map(|pair| {
            let (x, y) = pair.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect();
    assert_eq!(points.len(), values.len());
    for pair in points.windows(2) {
        assert!(pair[0].0 < pair[1].0, "x grows with the step");
        assert!(
            pair[0].1 <= pair[1].1,
            "falling loss is drawn lower (larger y)"
        );
    }
    let (first, last) = (points[0].1, points[points.len() - 1].1);
    assert!(
        last - first > 100.0,
        "the fall spans the plot: {first} → {last}"
    );
    let shown = text(dom, "loss");
    assert_eq!(
        shown,
        format!("{:.4}", values[values.len() - 1]),
        "latest loss shown"
    );
}

fn body_updates(dom: &str) -> u32 {
    let key = "data-updates=\"";
    let from = dom.find(key).expect("body carries the poll count") + key.len();
    dom[from..from + dom[from..].find('"').unwrap()]
        .parse()
        .unwrap()
}

async fn screenshot(binary: &Path, addr: SocketAddr, path: &Path) {
    let flags = vec![
        format!("--screenshot={}", path.display()),
        "--window-size=1280,900".to_owned(),
    ];
    headless(binary, format!("http://{addr}/"), flags).await;
    println!("screenshot written to {}", path.display());
}

/// [`run_chromium`] off the runtime's threads, which keep serving the page meanwhile.
async fn headless(binary: &Path, url: String, flags: Vec<String>) -> String {
    let binary: PathBuf = binary.to_owned();
    tokio::task::spawn_blocking(move || {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        run_chromium(&binary, &url, &flags)
    })
    .await
    .expect("chromium thread")
}
