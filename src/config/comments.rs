//! Keeping a file's comments when the form editor rewrites its YAML.
//!
//! A form edit writes the resources back with yaml_serde, which knows nothing of comments.
//! [`carry_comments`] puts the old text's comments back into the new text beside the field
//! they were written for: a comment line (or block of them) goes before the field that
//! followed it, a comment at the end of a line goes at the end of that field's line. Fields
//! are found by their path (`spec.http[0].mirrorPercentage.value`) in each document, and
//! documents by their kind and name, so an edit that adds or removes a resource keeps the
//! comments of the others. A comment whose field the edit removed goes with it.
//!
//! The result is parsed again and must hold exactly the data of the rewritten text; if it
//! does not (a comment could not be placed safely), the rewritten text is used as it is.

use std::collections::HashMap;

use super::lines::{DocumentIndex, index_documents};

/// The rewritten text with the old comments put back, and how many comment lines were
/// kept and dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    /// The text to use.
    pub text: String,
    /// Comment lines placed in the new text.
    pub kept: usize,
    /// Comment lines whose field is gone (or that could not be placed).
    pub dropped: usize,
}

/// Where a comment goes: a document (by position in the old text), a field path in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Anchor {
    document: usize,
    path: String,
}

/// The comments of the old text, by where they go.
#[derive(Debug, Default)]
struct Comments {
    /// Comment lines (trimmed) before the line of a field.
    before: Vec<(Anchor, Vec<String>)>,
    /// A comment at the end of a field's line (from the `#`).
    trailing: Vec<(Anchor, String)>,
    /// Comment lines after the last field of the file.
    at_end: Vec<String>,
}

impl Comments {
    fn lines(&self) -> usize {
        self.before
            .iter()
            .map(|(_, block)| block.len())
            .sum::<usize>()
            + self.trailing.len()
            + self.at_end.len()
    }
}

/// Puts the comments of `old` back into `new`, a rewrite of the same resources.
pub fn carry_comments(old: &str, new: &str) -> Carried {
    let unchanged = |dropped| Carried {
        text: new.to_owned(),
        kept: 0,
        dropped,
    };
    let (Ok(old_docs), Ok(new_docs)) = (index_documents(old), index_documents(new)) else {
        return unchanged(0);
    };
    let comments = collect(old, &old_docs);
    let total = comments.lines();
    if total == 0 {
        return unchanged(0);
    }
    let old_data = document_data(old, &old_docs);
    let new_data = document_data(new, &new_docs);
    let matching = match_documents(&old_data, &new_data);
    let new_lines: Vec<&str> = new.lines().collect();
    let mut before: HashMap<usize, Vec<String>> = HashMap::new();
    let mut trailing: HashMap<usize, String> = HashMap::new();
    let mut kept = 0;
    let mut alignments = Alignments::default();
    let mut line_of = |anchor: &Anchor| {
        let document = *matching.get(&anchor.document)?;
        let path = match (&old_data[anchor.document], &new_data[document]) {
            (Some(old_value), Some(new_value)) => {
                alignments.translate(anchor.document, &anchor.path, old_value, new_value)?
            }
            _ => anchor.path.clone(),
        };
        new_docs.get(document)?.exact_line_of(&path)
    };
    for (anchor, block) in &comments.before {
        if let Some(line) = line_of(anchor) {
            let indent = indentation(new_lines.get(line - 1).copied().unwrap_or(""));
            let lines = before.entry(line).or_default();
            lines.extend(block.iter().map(|c| format!("{indent}{c}")));
            kept += block.len();
        }
    }
    for (anchor, comment) in &comments.trailing {
        if let Some(line) = line_of(anchor)
            && !trailing.contains_key(&line)
        {
            trailing.insert(line, comment.clone());
            kept += 1;
        }
    }
    let mut text = String::with_capacity(new.len() + old.len() / 4);
    for (i, line) in new_lines.iter().enumerate() {
        let number = i + 1;
        if let Some(block) = before.get(&number) {
            for comment in block {
                text.push_str(comment);
                text.push('\n');
            }
        }
        text.push_str(line);
        if let Some(comment) = trailing.get(&number) {
            text.push_str("  ");
            text.push_str(comment);
        }
        text.push('\n');
    }
    for comment in &comments.at_end {
        text.push_str(comment);
        text.push('\n');
    }
    kept += comments.at_end.len();
    if same_data(new, &text) {
        Carried {
            text,
            kept,
            dropped: total - kept,
        }
    } else {
        unchanged(total)
    }
}

/// The comments of `text`, each anchored to the field it was written for.
fn collect(text: &str, docs: &[DocumentIndex]) -> Comments {
    // For each line: the document it is in, the outermost and the innermost path starting
    // there.
    let mut starts: HashMap<usize, (usize, &str, &str)> = HashMap::new();
    for (d, doc) in docs.iter().enumerate() {
        for (path, line) in doc.paths() {
            let entry = starts.entry(line).or_insert((d, path, path));
            if path.len() < entry.1.len() {
                entry.1 = path;
            }
            if path.len() > entry.2.len() {
                entry.2 = path;
            }
        }
    }
    let in_scalar = |line: usize| docs.iter().any(|d| d.inside_scalar(line));
    let mut comments = Comments::default();
    let mut pending: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if in_scalar(number) {
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            pending.push(trimmed.trim_end().to_owned());
            continue;
        }
        let Some(&(document, outer, inner)) = starts.get(&number) else {
            // `---`, a blank line, or the rest of a flow collection: comments before it
            // wait for the next field.
            continue;
        };
        if !pending.is_empty() {
            let anchor = Anchor {
                document,
                path: outer.to_owned(),
            };
            comments.before.push((anchor, std::mem::take(&mut pending)));
        }
        if let Some(comment) = trailing_comment(line) {
            let anchor = Anchor {
                document,
                path: inner.to_owned(),
            };
            comments
                .trailing
                .push((anchor, comment.trim_end().to_owned()));
        }
    }
    comments.at_end = pending;
    comments
}

/// The comment at the end of a YAML line (from its `#`), if any: a `#` after a space or tab
/// and outside quotes.
fn trailing_comment(line: &str) -> Option<&str> {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    let mut chars = line.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match quote {
            Some('\'') if c == '\'' => {
                // `''` is an escaped quote inside a single-quoted scalar.
                if chars.peek().is_some_and(|(_, next)| *next == '\'') {
                    chars.next();
                } else {
                    quote = None;
                }
            }
            Some('"') if c == '\\' => {
                chars.next();
            }
            Some('"') if c == '"' => quote = None,
            Some(_) => {}
            None if c == '#' && (previous == ' ' || previous == '\t') && at > 0 => {
                return Some(&line[at..]);
            }
            None if (c == '\'' || c == '"')
                && matches!(previous, ' ' | '\t' | ':' | '-' | '[' | '{' | ',') =>
            {
                quote = Some(c);
            }
            None => {}
        }
        previous = c;
    }
    None
}

fn indentation(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

/// Old document index → new document index: by kind and name where both texts have one
/// such document, else by position when both have as many documents.
fn match_documents(
    old: &[Option<yaml_serde::Value>],
    new: &[Option<yaml_serde::Value>],
) -> HashMap<usize, usize> {
    let old_ids: Vec<Option<String>> = old.iter().map(|d| d.as_ref().and_then(identity)).collect();
    let new_ids: Vec<Option<String>> = new.iter().map(|d| d.as_ref().and_then(identity)).collect();
    let unique = |ids: &[Option<String>], id: &String| {
        ids.iter().flatten().filter(|x| *x == id).count() == 1
    };
    let mut matching = HashMap::new();
    for (o, id) in old_ids.iter().enumerate() {
        let Some(id) = id else { continue };
        if !unique(&old_ids, id) || !unique(&new_ids, id) {
            continue;
        }
        if let Some(n) = new_ids.iter().position(|x| x.as_ref() == Some(id)) {
            matching.insert(o, n);
        }
    }
    if matching.is_empty() && old.len() == new.len() {
        matching.extend((0..old.len()).map(|i| (i, i)));
    }
    matching
}

/// Each document's data, parsed from its own lines.
fn document_data(text: &str, docs: &[DocumentIndex]) -> Vec<Option<yaml_serde::Value>> {
    let lines: Vec<&str> = text.lines().collect();
    docs.iter()
        .map(|doc| {
            let from = doc.start_line.saturating_sub(1).min(lines.len());
            let to = doc.end_line.saturating_sub(1).clamp(from, lines.len());
            yaml_serde::from_str(&lines[from..to].join("\n")).ok()
        })
        .collect()
}

/// `kind/namespace/name` of a resource.
fn identity(value: &yaml_serde::Value) -> Option<String> {
    let kind = value.get("kind")?.as_str()?;
    let metadata = value.get("metadata")?;
    let name = metadata.get("name")?.as_str()?;
    let namespace = metadata
        .get("namespace")
        .and_then(|n| n.as_str())
        .unwrap_or("");
    Some(format!("{kind}/{namespace}/{name}"))
}

/// One step of a field path.
#[derive(Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// `spec.http[0]["x.y"]` → `spec`, `http`, 0, `x.y` (the form `push_key` and `push_index`
/// write).
fn steps(path: &str) -> Option<Vec<Step>> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix("[\"") {
            let mut key = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (_, '\\') => key.push(chars.next()?.1),
                    (at, '"') => break at,
                    (_, c) => key.push(c),
                }
            };
            rest = quoted[end + 1..].strip_prefix(']')?;
            out.push(Step::Key(key));
        } else if let Some(index) = rest.strip_prefix('[') {
            let close = index.find(']')?;
            out.push(Step::Index(index[..close].parse().ok()?));
            rest = &index[close + 1..];
        } else {
            let plain = rest.strip_prefix('.').unwrap_or(rest);
            let end = plain.find(['.', '[']).unwrap_or(plain.len());
            out.push(Step::Key(plain[..end].to_owned()));
            rest = &plain[end..];
        }
    }
    Some(out)
}

/// How the lists of the old documents line up with the new ones, worked out once per list.
#[derive(Default)]
struct Alignments {
    /// (old document, old path of the list) → for each old index, its new index.
    lists: HashMap<(usize, String), Vec<Option<usize>>>,
}

impl Alignments {
    /// Where the field at `path` in `old` is in `new`: keys stay, and a list index follows
    /// its element (lists aligned by their elements' values, so removing the first subset
    /// moves the second's comments with it); `None` when the edit removed the field.
    fn translate(
        &mut self,
        document: usize,
        path: &str,
        old: &yaml_serde::Value,
        new: &yaml_serde::Value,
    ) -> Option<String> {
        let (mut old_path, mut new_path) = (String::new(), String::new());
        let (mut old, mut new) = (old, new);
        for step in steps(path)? {
            match step {
                Step::Key(key) => {
                    old = old.get(key.as_str())?;
                    new = new.get(key.as_str())?;
                    old_path = super::lines::push_key(&old_path, &key);
                    new_path = super::lines::push_key(&new_path, &key);
                }
                Step::Index(i) => {
                    let (old_items, new_items) = (old.as_sequence()?, new.as_sequence()?);
                    let j = self
                        .lists
                        .entry((document, old_path.clone()))
                        .or_insert_with(|| alignment(old_items, new_items))
                        .get(i)
                        .copied()
                        .flatten()?;
                    old = old_items.get(i)?;
                    new = new_items.get(j)?;
                    old_path = super::lines::push_index(&old_path, i);
                    new_path = super::lines::push_index(&new_path, j);
                }
            }
        }
        Some(new_path)
    }
}

/// For each element of `old`, its index in `new`: equal elements pair up, and within a run
/// of elements replaced by another run (edited in place) they pair by position.
fn alignment(old: &[yaml_serde::Value], new: &[yaml_serde::Value]) -> Vec<Option<usize>> {
    let text = |items: &[yaml_serde::Value]| -> Vec<String> {
        items
            .iter()
            .map(|v| yaml_serde::to_string(v).unwrap_or_default())
            .collect()
    };
    let mut out = vec![None; old.len()];
    for op in similar::capture_diff_slices(similar::Algorithm::Myers, &text(old), &text(new)) {
        // Deleted elements keep `None` (their new range is empty); inserted ones have no
        // old index.
        let (old_range, new_range) = (op.old_range(), op.new_range());
        let (old_index, old_len) = (old_range.start, old_range.len());
        let (new_index, new_len) = (new_range.start, new_range.len());
        for k in 0..old_len.min(new_len) {
            if let Some(slot) = out.get_mut(old_index + k) {
                *slot = Some(new_index + k);
            }
        }
    }
    out
}

/// True when both texts hold the same documents with the same data.
fn same_data(a: &str, b: &str) -> bool {
    fn documents(text: &str) -> Option<Vec<yaml_serde::Value>> {
        yaml_serde::Deserializer::from_str(text)
            .map(|doc| serde::Deserialize::deserialize(doc).ok())
            .collect()
    }
    matches!((documents(a), documents(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "\
# The reviews service: v1 serves, v2 gets a copy.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews  # the VirtualService
  annotations:
    mirrorlab.dev/ignore: |
      # not a YAML comment: the annotation's own
      /reviews/*/generatedAt
spec:
  hosts: [reviews]
  http:
  # Mirror everything to v2.
  - route:
    - destination: {host: reviews, subset: v1}
    mirror: {host: reviews, subset: v2}
    mirrorPercentage:
      value: 100  # all of it
---
# Subsets.
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1  # the primary
    labels: {version: v1}
  - name: v2  # the candidate
    labels: {version: v2}
# the end
";

    /// `OLD` rewritten as the form editor would write it, with `edit` applied to its data.
    fn rewrite(edit: impl FnOnce(&mut Vec<yaml_serde::Value>)) -> String {
        let mut docs: Vec<yaml_serde::Value> = yaml_serde::Deserializer::from_str(OLD)
            .map(|d| serde::Deserialize::deserialize(d).expect("document"))
            .collect();
        edit(&mut docs);
        docs.iter()
            .map(|d| yaml_serde::to_string(d).expect("yaml"))
            .collect::<Vec<_>>()
            .join("---\n")
    }

    #[test]
    fn every_comment_comes_back_beside_its_field() {
        let new = rewrite(|docs| {
            docs[0]["spec"]["http"][0]["mirrorPercentage"]["value"] =
                yaml_serde::Value::Number(25.into());
        });
        let carried = carry_comments(OLD, &new);
        assert_eq!((carried.kept, carried.dropped), (8, 0), "{}", carried.text);
        let text = &carried.text;
        assert!(
            text.starts_with("# The reviews service: v1 serves, v2 gets a copy.\napiVersion:"),
            "{text}"
        );
        assert!(
            text.contains("  name: reviews  # the VirtualService\n"),
            "{text}"
        );
        assert!(text.contains("value: 25  # all of it\n"), "{text}");
        assert!(
            text.contains("# Mirror everything to v2.\n  - route:"),
            "{text}"
        );
        assert!(text.contains("# Subsets.\napiVersion:"), "{text}");
        assert!(text.contains("name: v1  # the primary\n"), "{text}");
        assert!(text.ends_with("# the end\n"), "{text}");
        // The annotation's `#` line is data, kept by the rewrite itself, not doubled.
        assert_eq!(text.matches("# not a YAML comment").count(), 1, "{text}");
        assert!(same_data(&new, text));
    }

    #[test]
    fn a_comment_goes_with_the_field_the_edit_removed() {
        let new = rewrite(|docs| {
            let rule = docs[1]["spec"]["subsets"]
                .as_sequence_mut()
                .expect("subsets");
            rule.remove(0);
        });
        let carried = carry_comments(OLD, &new);
        assert_eq!(carried.dropped, 1, "{}", carried.text);
        assert!(!carried.text.contains("# the primary"));
        // The second subset is the first now; its comment moved with it.
        assert!(
            carried.text.contains("  - name: v2  # the candidate\n"),
            "{}",
            carried.text
        );
        assert!(carried.text.contains("# Mirror everything to v2."));
    }

    #[test]
    fn documents_are_matched_by_kind_and_name_when_one_is_removed() {
        let new = rewrite(|docs| {
            docs.remove(0);
        });
        let carried = carry_comments(OLD, &new);
        let text = &carried.text;
        assert!(text.starts_with("# Subsets.\napiVersion:"), "{text}");
        assert!(text.contains("name: v1  # the primary"), "{text}");
        assert!(!text.contains("# all of it"), "{text}");
        assert_eq!(carried.dropped, 4, "{text}");
    }

    #[test]
    fn paths_split_into_keys_and_indexes() {
        assert_eq!(
            steps(r#"metadata.annotations["mirrorlab.dev/ignore"].x[2]"#),
            Some(vec![
                Step::Key("metadata".into()),
                Step::Key("annotations".into()),
                Step::Key("mirrorlab.dev/ignore".into()),
                Step::Key("x".into()),
                Step::Index(2),
            ])
        );
        assert_eq!(
            steps(r#"a["say \"hi\""]"#),
            Some(vec![Step::Key("a".into()), Step::Key("say \"hi\"".into())])
        );
    }

    #[test]
    fn a_hash_in_a_quoted_value_is_not_a_comment() {
        assert_eq!(trailing_comment("  name: 'a # b'"), None);
        assert_eq!(trailing_comment("  name: \"a # \\\" b\"  # c"), Some("# c"));
        assert_eq!(trailing_comment("  name: it''s # x"), Some("# x"));
        assert_eq!(trailing_comment("  url: http://x/#frag"), None);
        assert_eq!(trailing_comment("  - 'don''t # stop' # yes"), Some("# yes"));
    }

    #[test]
    fn text_without_comments_comes_back_unchanged() {
        let new = rewrite(|_| {});
        let old = new.clone();
        assert_eq!(
            carry_comments(&old, &new),
            Carried {
                text: new,
                kept: 0,
                dropped: 0
            }
        );
    }
}
