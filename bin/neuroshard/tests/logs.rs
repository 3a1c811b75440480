//! A node whose log goes to a file (as `neuroshard up` writes `node-N.log`) writes plain text:
//! no ANSI colour codes; it says there what speed it measured at start-up, or that it announces
//! the one it saved.

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

/// A node measures its speed at its first start, says what it measured in its log and announces
/// it (its status shows its capacity record's figure), and announces the same figure after a
/// restart; `--work-per-sec` pins the figure instead.
#[test]
fn a_node_announces_the_speed_it_measured_or_the_one_pinned() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let genesis = build_genesis(Path::new(EXE), work, &["--inner-steps", "4"]);
    let exe = Path::new(EXE);
    let mut measured = NodeProcess::start(exe, "measured", work, &genesis, &[]);
    let mut pinned = NodeProcess::start(exe, "pinned", work, &genesis, &["--work-per-sec", "1234"]);
    // The dashboard line comes after the start-up, so the record is in the status already.
    let capacity =
        |node: &NodeProcess| node.status().expect("the node answers")["capacity"].clone();
    let (mine, theirs) = (capacity(&measured), capacity(&pinned));
    assert_eq!(mine["measured"], true, "{mine}");
    let figure = mine["work_per_sec"].as_u64().unwrap();
    // Not the fixed nominal figure every record carried before nodes measured.
    assert!(figure > 1 && figure != 1_000_000_000, "{mine}");
    assert_eq!(
        (theirs["work_per_sec"].as_u64(), &theirs["measured"]),
        (Some(1234), &false.into())
    );
    assert!(measured.stop() && pinned.stop());
    let log = std::fs::read_to_string(&measured.log).unwrap();
    assert!(
        log.contains("measured this node's speed") && log.contains(&figure.to_string()),
        "the log says what the node measured: {log}"
    );
    // Restarted on the same directory, it announces the figure it measured, so that it computes
    // the plan its peers computed from it (`docs/pool.md`, "Measured speed").
    let mut again = NodeProcess::start(exe, "measured", work, &genesis, &[]);
    let record = capacity(&again);
    assert_eq!(
        (record["work_per_sec"].as_u64(), &record["measured"]),
        (Some(figure), &true.into())
    );
    assert!(again.stop());
    let log = std::fs::read_to_string(&again.log).unwrap();
    assert!(
        log.contains("announcing the speed measured at this node's first start")
            && !log.contains("measured this node's speed"),
        "the log says the figure is the saved one: {log}"
    );
}
