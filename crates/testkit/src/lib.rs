//! Test support shared by the crates' integration tests: headless Chromium (Debian's `chromium`)
//! with the flags the dashboard tests need, reading elements out of the DOM it prints, and real
//! node processes on loopback for the binary's end-to-end tests ([`nodes`], and `neuroshard up`
//! as a child process: [`up`]), and the pipeline benchmark's output files ([`pipeline`]).
//!
//! A dev-dependency only: nothing here ships in the binary.

pub mod ledger;
pub mod nodes;
pub mod pipeline;
pub mod up;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The Chromium binary: `CHROMIUM` if set, else `chromium` or `chromium-browser` on `PATH`.
pub fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Runs `binary` headless on `url` with a fresh profile and `extra` flags (`--dump-dom`,
/// `--screenshot=…`), letting the page run 4 s of virtual time; returns its stdout. Blocks; gives
/// up (killing Chromium) after 60 s.
pub fn run_chromium(binary: &Path, url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("a temporary profile directory");
    let mut child = Command::new(binary)
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
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    // Read on another thread, so a page larger than the pipe cannot stall Chromium.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    // Polled rather than timed: 1 200 naps of 50 ms are the 60 s, without reading the clock.
    let mut naps = 0;
    while child.try_wait().expect("waiting for chromium").is_none() {
        if naps == 1_200 {
            let _ = child.kill();
            panic!("chromium did not finish within 60 s");
        }
        naps += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = reader
        .join()
        .expect("reader thread")
        .expect("chromium's output");
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of attribute `name` on the element with id `id` in serialised HTML, `None` when the
/// element has no such attribute. Panics when there is no element with that id.
pub fn attr<'a>(dom: &'a str, id: &str, name: &str) -> Option<&'a str> {
    let at = id_at(dom, id);
    let start = dom[..at].rfind('<').expect("an opening tag");
    let tag = &dom[start..start + dom[start..].find('>').expect("a closed tag")];
    let key = format!(" {name}=\"");
    let from = tag.find(&key)? + key.len();
    Some(&tag[from..from + tag[from..].find('"').expect("a closed attribute")])
}

/// The text inside the element with id `id`.
pub fn text<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = id_at(dom, id);
    let from = at + dom[at..].find('>').expect("a closed tag") + 1;
    &dom[from..from + dom[from..].find('<').expect("the element's end")]
}

/// Where the `id="…"` attribute of element `id` starts; panics when there is none.
fn id_at(dom: &str, id: &str) -> usize {
    dom.find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element with id {id} on the page"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_and_text_are_read_by_id() {
        let dom = r#"<p><line id="l" data-values="1,2" points="0,1"></line><b id="t">7.5</b></p>"#;
        assert_eq!(attr(dom, "l", "data-values"), Some("1,2"));
        assert_eq!(attr(dom, "l", "points"), Some("0,1"));
        assert_eq!(attr(dom, "l", "values"), None);
        assert_eq!(text(dom, "t"), "7.5");
    }
}
