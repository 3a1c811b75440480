//! Loads the dashboard in headless Chromium and checks that the plot shows the served loss.
//!
//! Skipped, with a printed reason, when no `chromium` binary is found (set `CHROMIUM` to point
//! at one). Set `NS_DASHBOARD_SCREENSHOT=/path/shot.png` to also save a screenshot.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use neuroshard_api::Point;

use crate::support::{loss_at, sample_status, start};

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Runs Chromium headless on `url` with `extra` flags and returns its stdout.
async fn run_chromium(binary: &Path, url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(binary);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("chromium finishes within 60 s")
        .expect("chromium starts");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The value of attribute `name` on the element with id `id` in serialised HTML.
fn attr<'a>(dom: &'a str, id: &str, name: &str) -> &'a str {
    let at = dom.find(&format!("id=\"{id}\"")).expect("element present");
    let start = dom[..at].rfind('<').unwrap();
    let tag = &dom[start..start + dom[start..].find('>').unwrap()];
    let key = format!(" {name}=\"");
    let from = tag
        .find(&key)
        .unwrap_or_else(|| panic!("{id} has {name}: {tag}"))
        + key.len();
    &tag[from..from + tag[from..].find('"').unwrap()]
}

/// The text inside the element with id `id`.
fn text<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom.find(&format!("id=\"{id}\"")).expect("element present");
    let from = at + dom[at..].find('>').unwrap() + 1;
    &dom[from..from + dom[from..].find('<').unwrap()]
}

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
    let dom = run_chromium(&binary, &url, &["--dump-dom".to_owned()]).await;
    assert!(dom.contains("id=\"plot\""), "page rendered: {dom}");
    check_plot(&dom, initial);
    if let Some(path) = std::env::var_os("NS_DASHBOARD_SCREENSHOT") {
        screenshot(&binary, addr, Path::new(&path)).await;
    }
}

fn check_plot(dom: &str, initial: u64) {
    let updates = body_updates(dom);
    assert!(updates >= 2, "the page polled more than once: {updates}");
    let values: Vec<f64> = attr(dom, "loss-line", "data-values")
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
    let flags = [
        format!("--screenshot={}", path.display()),
        "--window-size=1280,900".to_owned(),
    ];
    run_chromium(binary, &format!("http://{addr}/"), &flags).await;
    println!("screenshot written to {}", path.display());
}
