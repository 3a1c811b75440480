//! Repository hygiene checks that keep the house style true without a reviewer's eye.

use std::fs;
use std::path::{Path, PathBuf};

/// The checkout under test: cargo runs a test binary in its package's directory. Not
/// `env!("CARGO_MANIFEST_DIR")`, which a build cache shared between clones keeps from another path.
fn repo_root() -> PathBuf {
    std::env::current_dir()
        .expect("working directory")
        .join("../..")
        .canonicalize()
        .expect("repo root exists")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// Every Rust file opens with a `//!` line saying what it is for.
#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let root = repo_root();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    rust_files(&root.join("bin"), &mut files);
    let missing: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = fs::read_to_string(path).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|path| {
            path.strip_prefix(&root)
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        files.len() > 10,
        "found only {} Rust files under {}",
        files.len(),
        root.display()
    );
    assert!(
        missing.is_empty(),
        "files without a leading //! doc line: {missing:#?}"
    );
}

/// Every crate opts into the workspace lints.
#[test]
fn every_crate_uses_workspace_lints() {
    let root = repo_root();
    let mut manifests = vec![root.join("bin/neuroshard/Cargo.toml")];
    for entry in fs::read_dir(root.join("crates"))
        .expect("crates dir")
        .flatten()
    {
        manifests.push(entry.path().join("Cargo.toml"));
    }
    for manifest in manifests {
        let text = fs::read_to_string(&manifest).expect("manifest readable");
        assert!(
            text.contains("[lints]\nworkspace = true"),
            "{} lacks `[lints] workspace = true`",
            manifest.display()
        );
    }
}
