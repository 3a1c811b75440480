//! `neuroshard up` as a child process for the binary's end-to-end tests: its output lines on a
//! channel, read by a thread that drains `up`'s standard output to the end (a test that stops
//! listening must never leave `up` writing into a closed pipe, which would kill it), and the
//! start lines of its nodes parsed. Killed (SIGKILL) when dropped, pass or fail; its children
//! then stop by themselves (their standard input closes).

// Real processes: the waits are bounded by wall time.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// A running `neuroshard up`.
#[derive(Debug)]
pub struct Up {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Up {
    /// Starts `exe up ARGS --genesis GENESIS --dir DIR` with one thread per node and info logs,
    /// echoing each output line as `up| …`.
    pub fn start(exe: &Path, args: &[&str], genesis: &Path, dir: &Path) -> Up {
        let mut child = Command::new(exe)
            .arg("up")
            .args(args)
            .arg("--genesis")
            .arg(genesis)
            .arg("--dir")
            .arg(dir)
            .env("RAYON_NUM_THREADS", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the neuroshard binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("up| {line}");
                // Read on after the test stops listening.
                let _ = tx.send(line);
            }
        });
        Up {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// `up`'s process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads lines until `pick` takes one, for at most `limit`; panics with every line so far.
    pub fn expect<T>(
        &mut self,
        what: &str,
        limit: Duration,
        pick: impl Fn(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let picked = pick(&line);
            self.seen.push(line);
            if let Some(picked) = picked {
                return picked;
            }
        }
        panic!(
            "no line for {what} within {limit:?}; up printed:\n{}",
            self.seen.join("\n")
        );
    }

    /// The pid and dashboard of each of the first `nodes` nodes, in node order, from their start
    /// lines, waiting up to `limit` for all of them.
    pub fn started(&mut self, nodes: usize, limit: Duration) -> Vec<(u32, String)> {
        let deadline = Instant::now() + limit;
        let mut found = vec![None; nodes];
        while found.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            let (index, node) = self.expect("every node's start line", left, |line| {
                (0..nodes).find_map(|i| started(line, i).map(|node| (i, node)))
            });
            found[index] = Some(node);
        }
        found.into_iter().flatten().collect()
    }

    /// Sends `up` SIGINT, as Ctrl-C does, and waits up to a minute for it to exit.
    pub fn interrupt(&mut self) -> std::process::ExitStatus {
        signal("INT", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("waiting for up") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("up did not stop within a minute of SIGINT");
    }
}

/// The pid and dashboard (`host:port`) in node `index`'s start line,
/// `node 1: pid 4242, dashboard http://127.0.0.1:39011/  (log …)`.
pub fn started(line: &str, index: usize) -> Option<(u32, String)> {
    let rest = line.strip_prefix(&format!("node {index}: pid "))?;
    let (pid, rest) = rest.split_once(", dashboard http://")?;
    let host = rest.split('/').next()?;
    Some((pid.parse().ok()?, host.to_owned()))
}

/// Sends signal `name` (`KILL`, `INT`) to process `pid`.
pub fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Whether process `pid` still exists (a zombie counts).
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_line_gives_the_pid_and_the_dashboard() {
        let line = "node 1: pid 4242, dashboard http://127.0.0.1:39011/  (log /tmp/x/node-1.log)";
        assert_eq!(started(line, 1), Some((4242, "127.0.0.1:39011".into())));
        assert_eq!(started(line, 0), None);
        assert_eq!(started("node 1: round 2", 1), None);
    }
}
