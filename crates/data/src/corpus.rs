//! Reading a corpus directory of `.txt` and `.jsonl` files, reporting every unreadable line.
//!
//! A `.txt` file is one document; a `.jsonl` file holds one document per line, as an object with
//! a `"text"` string field (other fields are ignored, blank lines too). A line with invalid
//! UTF-8, or a `.jsonl` line that is not such an object, becomes a [`Problem`] naming the file
//! and line: skipped (and listed) by default, or the whole corpus refused when `strict`.

use std::fmt;
use std::path::{Path, PathBuf};

use neuroshard_primitives::Hash;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One document: the unit that is tokenised, terminated by `<|eos|>`, and put in one split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Index of the file it came from in [`Corpus::sources`].
    pub source: usize,
    /// The text.
    pub text: String,
}

/// What a corpus file contributed, recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceStats {
    /// Path relative to the corpus root, `/`-separated.
    pub path: String,
    /// Documents read from it.
    pub documents: usize,
    /// Bytes of text read from it.
    pub bytes: u64,
    /// BLAKE3 over its documents, each as a little-endian `u64` length then its bytes.
    pub text_hash: Hash,
}

/// An unreadable line: reported, never silently dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// The line, counted from 1.
    pub line: usize,
    /// What was wrong with it.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

/// A corpus read from disk, in a fixed order (files sorted by path, lines in order).
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    /// Every document.
    pub documents: Vec<Document>,
    /// One entry per file read.
    pub sources: Vec<SourceStats>,
    /// Lines that were skipped, with why.
    pub skipped: Vec<Problem>,
}

/// Reads every `.txt` and `.jsonl` file under `path` (a directory, searched recursively, or a
/// single file). With `strict`, any unreadable line refuses the whole corpus.
pub fn read_corpus(path: &Path, strict: bool) -> Result<Corpus> {
    let mut files = Vec::new();
    collect_files(path, &mut files)?;
    files.sort();
    let mut corpus = Corpus::default();
    for file in &files {
        let bytes = std::fs::read(file).map_err(Error::io("reading", file))?;
        let is_jsonl = file.extension().is_some_and(|ext| ext == "jsonl");
        let (texts, problems) = if is_jsonl {
            parse_jsonl(&bytes)
        } else {
            parse_txt(&bytes)
        };
        let problems = problems.into_iter().map(|(line, reason)| Problem {
            file: file.clone(),
            line,
            reason,
        });
        corpus.skipped.extend(problems);
        let relative = file.strip_prefix(path).unwrap_or(file);
        corpus.add_source(relative_name(relative, file), texts);
    }
    if strict && !corpus.skipped.is_empty() {
        return Err(Error::CorpusRefused {
            problems: corpus.skipped,
        });
    }
    if corpus.documents.is_empty() {
        return Err(Error::EmptyCorpus {
            path: path.to_owned(),
        });
    }
    Ok(corpus)
}

impl Corpus {
    /// Appends one file's documents and its statistics (empty documents are left out: they
    /// hold no tokens).
    pub(crate) fn add_source(&mut self, path: String, texts: Vec<String>) {
        let source = self.sources.len();
        let texts: Vec<String> = texts.into_iter().filter(|t| !t.is_empty()).collect();
        self.sources.push(SourceStats {
            path,
            documents: texts.len(),
            bytes: texts.iter().map(|t| t.len() as u64).sum(),
            text_hash: text_hash(&texts),
        });
        self.documents
            .extend(texts.into_iter().map(|text| Document { source, text }));
    }
}

/// BLAKE3 over documents, each as a little-endian `u64` length and its bytes.
pub(crate) fn text_hash(texts: &[String]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    for text in texts {
        hasher.update(&(text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    Hash(*hasher.finalize().as_bytes())
}

fn relative_name(relative: &Path, file: &Path) -> String {
    let name = if relative.as_os_str().is_empty() {
        file.file_name().map(Path::new).unwrap_or(file)
    } else {
        relative
    };
    let parts: Vec<String> = name
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(Error::io("reading", path))?;
    if meta.is_file() {
        files.push(path.to_owned());
        return Ok(());
    }
    let entries = std::fs::read_dir(path).map_err(Error::io("listing", path))?;
    for entry in entries {
        let entry = entry.map_err(Error::io("listing", path))?;
        let child = entry.path();
        let kind = entry.file_type().map_err(Error::io("reading", &child))?;
        if kind.is_dir() {
            collect_files(&child, files)?;
        } else if child
            .extension()
            .is_some_and(|ext| ext == "txt" || ext == "jsonl")
        {
            files.push(child);
        }
    }
    Ok(())
}

/// A `.txt` file: one document, with any invalid-UTF-8 lines left out and reported.
fn parse_txt(bytes: &[u8]) -> (Vec<String>, Vec<(usize, String)>) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return (vec![text.to_owned()], Vec::new());
    }
    let mut kept = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        match std::str::from_utf8(line) {
            Ok(line) => kept.push(line),
            Err(err) => problems.push((index + 1, utf8_reason(&err))),
        }
    }
    (vec![kept.join("\n")], problems)
}

/// One `{"text": …}` object per line.
#[derive(Deserialize)]
struct JsonLine {
    text: String,
}

/// A `.jsonl` file: one document per line, bad lines reported.
fn parse_jsonl(bytes: &[u8]) -> (Vec<String>, Vec<(usize, String)>) {
    let mut texts = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let parsed = std::str::from_utf8(line)
            .map_err(|err| utf8_reason(&err))
            .and_then(|line| {
                if line.trim().is_empty() {
                    return Ok(None);
                }
                serde_json::from_str::<JsonLine>(line)
                    .map(|doc| Some(doc.text))
                    .map_err(|err| format!("not a {{\"text\": …}} object: {err}"))
            });
        match parsed {
            Ok(Some(text)) => texts.push(text),
            Ok(None) => {}
            Err(reason) => problems.push((index + 1, reason)),
        }
    }
    (texts, problems)
}

fn utf8_reason(err: &std::str::Utf8Error) -> String {
    format!("invalid UTF-8 at byte {} of the line", err.valid_up_to())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_with_a_bad_line_keeps_the_rest_and_names_the_line() {
        let (texts, problems) = parse_txt(b"good one\nbad \xff here\nlast");
        assert_eq!(texts, vec!["good one\nlast".to_owned()]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, 2);
        assert!(problems[0].1.contains("UTF-8"), "{}", problems[0].1);
    }

    #[test]
    fn jsonl_reports_malformed_and_non_utf8_lines() {
        let input =
            b"{\"text\": \"a\"}\n\n{\"text\": 3}\nnot json\n{\"text\":\"b\",\"id\":1}\n\xfe\n";
        let (texts, problems) = parse_jsonl(input);
        assert_eq!(texts, vec!["a".to_owned(), "b".to_owned()]);
        let lines: Vec<usize> = problems.iter().map(|p| p.0).collect();
        assert_eq!(lines, vec![3, 4, 6]);
    }

    #[test]
    fn directory_is_read_in_sorted_order_with_problems_listed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("b.txt"), "second").unwrap();
        std::fs::write(dir.path().join("a.jsonl"), "{\"text\":\"first\"}\n{oops\n").unwrap();
        std::fs::write(dir.path().join("sub/c.txt"), b"third\n\xc3\x28").unwrap();
        std::fs::write(dir.path().join("ignored.md"), "nope").unwrap();
        let corpus = read_corpus(dir.path(), false).unwrap();
        let texts: Vec<&str> = corpus.documents.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(texts, vec!["first", "second", "third"]);
        let names: Vec<&str> = corpus.sources.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(names, vec!["a.jsonl", "b.txt", "sub/c.txt"]);
        let shown: Vec<String> = corpus.skipped.iter().map(|p| p.to_string()).collect();
        assert_eq!(corpus.skipped.len(), 2, "{shown:?}");
        assert!(shown[0].contains("a.jsonl:2"), "{shown:?}");
        assert!(shown[1].contains("c.txt:2"), "{shown:?}");

        let err = read_corpus(dir.path(), true).unwrap_err().to_string();
        assert!(
            err.contains("a.jsonl:2") && err.contains("c.txt:2"),
            "{err}"
        );
    }

    #[test]
    fn empty_corpus_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_corpus(dir.path(), false),
            Err(Error::EmptyCorpus { .. })
        ));
    }
}
