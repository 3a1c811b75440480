//! A node whose log goes to a file (as `neuroshard up` writes `node-N.log`) writes plain text:
//! no ANSI colour codes.

use std::path::Path;

use neuroshard_testkit::nodes::{NodeProcess, build_genesis};

const EXE: &str = env!("CARGO_BIN_EXE_neuroshard");

#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let genesis = build_genesis(Path::new(EXE), work, &["--inner-steps", "4"]);
    let mut node = NodeProcess::start(Path::new(EXE), "solo", work, &genesis, &[]);
    assert!(node.stop(), "the node stops when its stdin closes");
    let log = std::fs::read(&node.log).unwrap();
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.contains("standard input closed; stopping"),
        "the log holds the node's lines: {text}"
    );
    assert!(!log.contains(&0x1b), "no escape byte in the log: {text:?}");
}
