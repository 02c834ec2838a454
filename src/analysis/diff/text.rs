//! Text bodies compared by line (with `similar`), binary ones by length and SHA-256.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{LineTag, TextDiff, TextLine};

/// Most text lines kept in a [`TextDiff`] for display.
const MAX_TEXT_LINES: usize = 2000;

/// How long a line diff may search for a minimal edit script before settling for a
/// coarser one: the app calls this on the UI's behalf and must not stall.
const TEXT_DIFF_TIMEOUT: Duration = Duration::from_millis(200);

/// The bytes as text, if they are UTF-8 without NUL bytes. A cut body may end inside a
/// character; that partial character is dropped.
pub(super) fn text_of(bytes: &[u8], cut: bool) -> Option<&str> {
    if bytes.contains(&0) {
        return None;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Some(s),
        Err(e) if cut && e.error_len().is_none() => bytes
            .get(..e.valid_up_to())
            .and_then(|b| std::str::from_utf8(b).ok()),
        Err(_) => None,
    }
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn line_diff(primary: &str, shadow: &str) -> TextDiff {
    let diff = similar::TextDiff::configure()
        .timeout(TEXT_DIFF_TIMEOUT)
        .diff_lines(primary, shadow);
    let mut out = TextDiff {
        added: 0,
        removed: 0,
        lines: Vec::new(),
        lines_cut: false,
    };
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => out.added += 1,
            similar::ChangeTag::Delete => out.removed += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    for (i, group) in diff.grouped_ops(3).iter().enumerate() {
        if i > 0 {
            out.lines.push(None);
        }
        for op in group {
            for change in diff.iter_changes(op) {
                if out.lines.len() >= MAX_TEXT_LINES {
                    out.lines_cut = true;
                    return out;
                }
                let tag = match change.tag() {
                    similar::ChangeTag::Equal => LineTag::Equal,
                    similar::ChangeTag::Delete => LineTag::Removed,
                    similar::ChangeTag::Insert => LineTag::Added,
                };
                out.lines.push(Some(TextLine {
                    tag,
                    primary_line: change.old_index().map(|i| i + 1),
                    shadow_line: change.new_index().map(|i| i + 1),
                    text: change.value().trim_end_matches(['\n', '\r']).to_owned(),
                }));
            }
        }
    }
    out
}
