//! Where things are in a YAML file: document boundaries and a field-path → line index.
//!
//! yaml_serde gives a location only for syntax and type errors; diagnostics on valid YAML
//! (an unknown subset, say) need the line of a field path such as
//! `spec.http[0].mirror.subset`. We get it from `saphyr-parser`'s marked event stream rather
//! than scanning text by hand: it is a full YAML 1.2 parser, so flow style, block scalars,
//! comments and quoted keys cannot fool the index.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError};

/// One YAML document of a file: its lines and where each field path starts.
#[derive(Debug, Clone, Default)]
pub struct DocumentIndex {
    /// First line of the document (the `---` line for an explicit start), 1-based.
    pub start_line: usize,
    /// First line after the document, 1-based (one past the last line of the file at the end).
    pub end_line: usize,
    /// Whether the document holds any node at all (comment-only documents hold none).
    pub has_content: bool,
    lines: HashMap<String, usize>,
    /// Lines after the first of a scalar that spans several (a block scalar's body, a
    /// folded quoted string), as inclusive ranges: text there is the scalar's, not YAML's
    /// (a `#` in them is no comment).
    scalar_continuations: Vec<(usize, usize)>,
}

impl DocumentIndex {
    /// The line of `path` (e.g. `spec.http[0].mirror`), or of its nearest ancestor present
    /// in the document, or the document start when nothing matches.
    pub fn line_of(&self, path: &str) -> usize {
        let mut p = path;
        loop {
            if let Some(line) = self.lines.get(p) {
                return *line;
            }
            match parent_path(p) {
                Some(parent) => p = parent,
                None => return self.start_line,
            }
        }
    }

    /// The line of `path` only if that exact path is in the document.
    pub fn exact_line_of(&self, path: &str) -> Option<usize> {
        self.lines.get(path).copied()
    }

    /// Every field path in the document with the line it starts on, in no order.
    pub fn paths(&self) -> impl Iterator<Item = (&str, usize)> {
        self.lines.iter().map(|(path, line)| (path.as_str(), *line))
    }

    /// True when `line` continues a scalar begun on an earlier line.
    pub fn inside_scalar(&self, line: usize) -> bool {
        self.scalar_continuations
            .iter()
            .any(|(first, last)| (*first..=*last).contains(&line))
    }
}

/// `spec.http[0].mirror` → `spec.http[0]` → `spec.http` → `spec` → None.
fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    if path.ends_with(']') {
        // Index or quoted key: drop the bracket group.
        let open = path.rfind('[')?;
        return Some(&path[..open]);
    }
    match path.rfind('.') {
        Some(dot) => Some(&path[..dot]),
        None => Some(""),
    }
}

/// Appends a mapping key to a field path: `a` + `b` → `a.b`; keys that are not plain
/// identifiers are quoted, `metadata.annotations["mirrorlab.dev/ignore"]`.
pub fn push_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[\"{}\"]", key.replace('"', "\\\"")),
    }
}

/// Appends a sequence index to a field path: `spec.http` + 0 → `spec.http[0]`.
pub fn push_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// A YAML syntax error with its 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What the parser said.
    pub message: String,
}

impl SyntaxError {
    /// The error at its line as editors count lines (by `\n`): the scanner also breaks
    /// lines at `\r`, U+0085, U+2028 and U+2029 in some contexts, and its own line number
    /// can then point past the end of the file.
    fn in_text(text: &str, e: &ScanError) -> Self {
        let line = 1 + text
            .chars()
            .take(e.marker().index())
            .filter(|c| *c == '\n')
            .count();
        Self {
            line,
            column: e.marker().col() + 1,
            message: e.info().to_owned(),
        }
    }
}

enum Frame {
    Mapping {
        path: String,
        /// The key just read, with its line, waiting for its value.
        pending_key: Option<(String, usize)>,
        /// A complex (non-scalar) key is being skipped; its value gets no path.
        inside_complex_key: bool,
    },
    Sequence {
        path: String,
        next: usize,
    },
}

/// Splits `text` into documents and indexes every field path in each.
///
/// Comment-only documents are returned with `has_content == false` so callers can skip them.
pub fn index_documents(text: &str) -> Result<Vec<DocumentIndex>, SyntaxError> {
    let mut docs: Vec<DocumentIndex> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut current: Option<DocumentIndex> = None;
    let total_lines = text.lines().count() + 1;

    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| SyntaxError::in_text(text, &e))?;
        let line = span.start.line();
        match event {
            Event::DocumentStart(explicit) => {
                let start_line = if explicit {
                    line
                } else {
                    // An implicit document starts right after the previous one.
                    docs.last().map_or(1, |d| d.end_line)
                };
                current = Some(DocumentIndex {
                    start_line,
                    end_line: total_lines,
                    ..Default::default()
                });
            }
            Event::DocumentEnd => {
                if let Some(mut doc) = current.take() {
                    // `...` or the start of the next document closes this one; the exact end is
                    // fixed by the next DocumentStart, else it runs to the end of the file.
                    doc.end_line = total_lines;
                    docs.push(doc);
                }
                stack.clear();
            }
            Event::Scalar(value, style, ..) => {
                let Some(doc) = current.as_mut() else {
                    continue;
                };
                doc.has_content = true;
                let end = span.end.line();
                if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
                    // A block scalar's span runs from its body's first line to the line
                    // after its body (the indicator sits on the line before).
                    doc.scalar_continuations
                        .push((line, end.saturating_sub(1).max(line)));
                } else if end > line {
                    // A quoted or plain scalar folded over several lines ends inside the last.
                    doc.scalar_continuations.push((line + 1, end));
                }
                node_or_key(&mut stack, doc, line, Some(value.as_ref()));
            }
            Event::Alias(_) => {
                if let Some(doc) = current.as_mut() {
                    node_or_key(&mut stack, doc, line, None);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let Some(doc) = current.as_mut() else {
                    continue;
                };
                doc.has_content = true;
                let path = open_node(&mut stack, doc, line);
                let is_map = matches!(event, Event::MappingStart(..));
                stack.push(match (path, is_map) {
                    (Some(path), true) => Frame::Mapping {
                        path,
                        pending_key: None,
                        inside_complex_key: false,
                    },
                    (Some(path), false) => Frame::Sequence { path, next: 0 },
                    // Inside a complex key: track nesting with unreachable paths.
                    (None, true) => Frame::Mapping {
                        path: "\u{0}".into(),
                        pending_key: None,
                        inside_complex_key: true,
                    },
                    (None, false) => Frame::Sequence {
                        path: "\u{0}".into(),
                        next: 0,
                    },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
    if let Some(doc) = current.take() {
        docs.push(doc);
    }
    // Fix ends: each document ends where the next one starts.
    for i in 1..docs.len() {
        let next_start = docs[i].start_line;
        docs[i - 1].end_line = next_start;
    }
    Ok(docs)
}

/// Handles a scalar or alias: a mapping key, a mapping value or a sequence item.
fn node_or_key(stack: &mut [Frame], doc: &mut DocumentIndex, line: usize, scalar: Option<&str>) {
    match stack.last_mut() {
        Some(Frame::Mapping {
            path,
            pending_key,
            inside_complex_key,
        }) => match pending_key.take() {
            None => {
                *pending_key = Some((scalar.unwrap_or("*").to_owned(), line));
            }
            Some((key, key_line)) => {
                if !*inside_complex_key {
                    doc.lines.insert(push_key(path, &key), key_line);
                }
            }
        },
        Some(Frame::Sequence { path, next }) => {
            doc.lines.insert(push_index(path, *next), line);
            *next += 1;
        }
        None => {
            doc.lines.insert(String::new(), line);
        }
    }
}

/// Handles the start of a mapping or sequence node; returns its path, or `None` when the node
/// is a complex mapping key (which no field path can name).
fn open_node(stack: &mut [Frame], doc: &mut DocumentIndex, line: usize) -> Option<String> {
    match stack.last_mut() {
        Some(Frame::Mapping {
            path,
            pending_key,
            inside_complex_key,
        }) => match pending_key.take() {
            None => {
                // A collection used as a key; give it a placeholder so its value pairs up.
                *pending_key = Some(("?".to_owned(), line));
                None
            }
            Some((key, key_line)) => {
                if *inside_complex_key {
                    return None;
                }
                let child = push_key(path, &key);
                doc.lines.insert(child.clone(), key_line);
                Some(child)
            }
        },
        Some(Frame::Sequence { path, next }) => {
            let child = push_index(path, *next);
            doc.lines.insert(child.clone(), line);
            *next += 1;
            Some(child)
        }
        None => {
            doc.lines.insert(String::new(), line);
            Some(String::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_nested_paths_and_documents() {
        let text = "\
# leading comment
apiVersion: networking.istio.io/v1
kind: VirtualService
spec:
  http:
  - name: a
    mirror:
      host: reviews-v2
      subset: v2
---
kind: DestinationRule
metadata:
  annotations:
    mirrorlab.dev/ignore: \"x\"
spec:
  subsets: [{name: v1, labels: {version: v1}}]
";
        let docs = index_documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].start_line, 1);
        assert_eq!(docs[0].end_line, 10);
        assert_eq!(docs[1].start_line, 10);
        assert_eq!(docs[0].line_of("spec.http[0].mirror.subset"), 9);
        assert_eq!(docs[0].line_of("spec.http[0]"), 6);
        assert_eq!(docs[0].line_of("spec.http[0].mirror.port.number"), 7);
        assert_eq!(
            docs[1].line_of("metadata.annotations[\"mirrorlab.dev/ignore\"]"),
            14
        );
        assert_eq!(docs[1].line_of("spec.subsets[0].labels.version"), 16);
        // Unknown paths fall back to the root node (the first line after `---`).
        assert_eq!(docs[1].line_of("nothing.here"), 11);
    }

    #[test]
    fn lines_inside_multi_line_scalars_are_known() {
        let text = "a:\n  b: |\n    # body\n    y\n  c: \"q\n    r\"\n  # comment\n  d: 1\n";
        let docs = index_documents(text).unwrap();
        let inside: Vec<usize> = (1..=8).filter(|l| docs[0].inside_scalar(*l)).collect();
        assert_eq!(inside, vec![3, 4, 6]);
    }

    #[test]
    fn syntax_error_has_line() {
        let err = index_documents("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent_path("a.b[0].c"), Some("a.b[0]"));
        assert_eq!(parent_path("a.b[0]"), Some("a.b"));
        assert_eq!(parent_path("a[\"x.y\"]"), Some("a"));
        assert_eq!(parent_path("a"), Some(""));
        assert_eq!(parent_path(""), None);
    }
}
