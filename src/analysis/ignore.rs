//! Ignore rules: which differences between a primary and a shadow response are expected
//! and not worth reporting. Read from the VirtualService annotation
//! [`DIFF_IGNORE_ANNOTATION`] or set at run time.

use std::fmt;

use serde::Serialize;

/// The VirtualService annotation that carries ignore rules; see [`IgnoreRules::parse`].
pub const DIFF_IGNORE_ANNOTATION: &str = "mirrorlab.dev/diff-ignore";

/// Headers that differ between any two responses and are ignored unless the user removes
/// them from the list.
pub const DEFAULT_IGNORED_HEADERS: &[&str] = &[
    "date",
    "age",
    "expires",
    "last-modified",
    "server-timing",
    "x-envoy-upstream-service-time",
    "x-response-time",
    "x-request-start",
    "x-runtime",
    "set-cookie",
];

/// Where two responses can differ: the name a difference is counted under in the diff
/// aggregates, and what an ignore rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldPath {
    /// The status code.
    Status,
    /// One header, by lowercase name.
    Header(String),
    /// A body as a whole (text, binary, or JSON whose root type changed).
    Body,
    /// One place in a JSON body, as an RFC 6901 JSON Pointer (`/items/0/price`).
    Json(String),
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldPath::Status => f.write_str("status"),
            FieldPath::Header(name) => write!(f, "header:{name}"),
            FieldPath::Body => f.write_str("body"),
            FieldPath::Json(pointer) => f.write_str(pointer),
        }
    }
}

impl Serialize for FieldPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One segment of a JSON path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// An object key or array index, kept in its escaped JSON Pointer form.
    Literal(String),
    /// `*`: any one key or index.
    Any,
    /// `**`: any number of keys or indexes, including none.
    AnyDepth,
}

/// A JSON Pointer with wildcards: `*` is any one key or index, `**` any number of them.
/// A pattern also covers everything below the place it names: `/meta` ignores `/meta/ts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPathPattern {
    text: String,
    segments: Vec<Segment>,
}

impl JsonPathPattern {
    /// Parses `/a/*/b`; the text must start with `/` (JSON Pointer form).
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix('/')
            .ok_or_else(|| format!("JSON path '{text}' must start with '/' (JSON Pointer)"))?;
        let segments = rest
            .split('/')
            .map(|s| match s {
                "*" => Segment::Any,
                "**" => Segment::AnyDepth,
                other => Segment::Literal(other.to_owned()),
            })
            .collect();
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// True when `pointer` is the place this pattern names or lies below it.
    pub fn matches(&self, pointer: &str) -> bool {
        let Some(rest) = pointer.strip_prefix('/') else {
            return false; // the root "" is a whole-body difference, never a field
        };
        let parts: Vec<&str> = rest.split('/').collect();
        matches_from(&self.segments, &parts)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Prefix match with `**` backtracking; patterns are short, so recursion depth is small.
fn matches_from(pattern: &[Segment], path: &[&str]) -> bool {
    let Some((head, tail)) = pattern.split_first() else {
        return true; // pattern exhausted: path is the named place or below it
    };
    match head {
        Segment::AnyDepth => (0..=path.len()).any(|skip| {
            path.get(skip..)
                .is_some_and(|rest| matches_from(tail, rest))
        }),
        Segment::Any => path
            .split_first()
            .is_some_and(|(_, rest)| matches_from(tail, rest)),
        Segment::Literal(lit) => path
            .split_first()
            .is_some_and(|(p, rest)| *p == lit && matches_from(tail, rest)),
    }
}

/// An ignore rule that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ignore rule {index} ('{entry}'): {reason}")]
pub struct IgnoreRuleError {
    /// 1-based position of the entry in the list.
    pub index: usize,
    /// The entry as written.
    pub entry: String,
    /// What is wrong and how to write it instead.
    pub reason: String,
}

/// Which differences to ignore.
///
/// Text form (the [`DIFF_IGNORE_ANNOTATION`] value and the app's editor): entries separated
/// by commas or newlines, blanks ignored, `#` starts a comment that runs to the end of the
/// line. An entry is one of:
/// - `/json/pointer`: a place in JSON bodies, with `*` for any one key or array index and
///   `**` for any depth; it also covers everything below it;
/// - `header:NAME`: a response header (case-insensitive);
/// - `status`: status-code differences;
/// - `body`: whole-body differences of non-JSON bodies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreRules {
    /// Ignored response header names, lowercase.
    pub headers: Vec<String>,
    /// Ignored places in JSON bodies.
    pub json_paths: Vec<JsonPathPattern>,
    /// Status differences are ignored.
    pub status: bool,
    /// Whole-body differences of non-JSON bodies are ignored.
    pub body: bool,
    /// How gRPC messages are read: the service's descriptors, from the VirtualService's
    /// [`GRPC_DESCRIPTORS_ANNOTATION`] (or, for every route without one, the lab setting);
    /// without them, server reflection, else messages decode by field number.
    pub grpc: Option<super::descriptors::GrpcDescriptors>,
}

/// The VirtualService annotation naming a `FileDescriptorSet` file (what `protoc
/// --descriptor_set_out` or `buf build -o` writes), relative to the config file.
pub const GRPC_DESCRIPTORS_ANNOTATION: &str = "mirrorlab.dev/grpc-descriptors";

impl IgnoreRules {
    /// No rules at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// The default rules: the headers of [`DEFAULT_IGNORED_HEADERS`].
    pub fn with_default_headers() -> Self {
        Self {
            headers: DEFAULT_IGNORED_HEADERS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
            ..Self::default()
        }
    }

    /// Parses the text form described on [`IgnoreRules`].
    pub fn parse(text: &str) -> Result<Self, IgnoreRuleError> {
        let mut rules = Self::default();
        let entries = text
            .lines()
            .map(|line| line.split('#').next().unwrap_or(""))
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty());
        for (i, entry) in entries.enumerate() {
            let err = |reason: String| IgnoreRuleError {
                index: i + 1,
                entry: entry.to_owned(),
                reason,
            };
            if entry.starts_with('/') {
                let p = JsonPathPattern::parse(entry).map_err(err)?;
                rules.json_paths.push(p);
            } else if let Some(name) = entry.strip_prefix("header:") {
                let name = name.trim().to_ascii_lowercase();
                if name.is_empty() || http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(err(format!(
                        "'{name}' is not a valid header name; write header:x-my-header"
                    )));
                }
                rules.headers.push(name);
            } else if entry == "status" {
                rules.status = true;
            } else if entry == "body" {
                rules.body = true;
            } else {
                return Err(err(
                    "expected a JSON Pointer such as /items/*/id, header:NAME, status or body"
                        .to_owned(),
                ));
            }
        }
        Ok(rules)
    }

    /// Adds every rule of `other` to these.
    pub fn extend(&mut self, other: &IgnoreRules) {
        for h in &other.headers {
            if !self.headers.contains(h) {
                self.headers.push(h.clone());
            }
        }
        for p in &other.json_paths {
            if !self.json_paths.contains(p) {
                self.json_paths.push(p.clone());
            }
        }
        self.status |= other.status;
        self.body |= other.body;
        if other.grpc.is_some() {
            self.grpc.clone_from(&other.grpc);
        }
    }

    /// True when a difference at `path` is to be ignored.
    pub fn ignores(&self, path: &FieldPath) -> bool {
        match path {
            FieldPath::Status => self.status,
            FieldPath::Body => self.body,
            FieldPath::Header(name) => self.ignores_header(name),
            FieldPath::Json(pointer) => self.json_paths.iter().any(|p| p.matches(pointer)),
        }
    }

    /// True when header `name` (any case) is ignored.
    pub fn ignores_header(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for IgnoreRules {
    /// The text form, one entry per line, as [`IgnoreRules::parse`] reads it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines: Vec<String> = self.headers.iter().map(|h| format!("header:{h}")).collect();
        lines.extend(self.json_paths.iter().map(|p| p.as_str().to_owned()));
        if self.status {
            lines.push("status".to_owned());
        }
        if self.body {
            lines.push("body".to_owned());
        }
        f.write_str(&lines.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_annotation_forms() {
        let r = IgnoreRules::parse(
            "/meta/requestId, header:X-Trace  # tracing\n/items/*/updatedAt\n\nstatus",
        )
        .unwrap_or_default();
        assert_eq!(r.headers, vec!["x-trace".to_owned()]);
        assert_eq!(r.json_paths.len(), 2);
        assert!(r.status);
        assert!(!r.body);
        assert!(r.ignores(&FieldPath::Json("/meta/requestId".into())));
        assert!(r.ignores(&FieldPath::Json("/meta/requestId/x".into())));
        assert!(!r.ignores(&FieldPath::Json("/meta".into())));
        assert!(r.ignores(&FieldPath::Json("/items/3/updatedAt".into())));
        assert!(!r.ignores(&FieldPath::Json("/items/3/price".into())));
        assert!(r.ignores(&FieldPath::Header("x-trace".into())));
        let round = IgnoreRules::parse(&r.to_string()).unwrap_or_default();
        assert_eq!(round, r);
    }

    #[test]
    fn any_depth_and_errors() {
        let r = IgnoreRules::parse("/**/etag").unwrap_or_default();
        assert!(r.ignores(&FieldPath::Json("/etag".into())));
        assert!(r.ignores(&FieldPath::Json("/a/b/etag".into())));
        assert!(!r.ignores(&FieldPath::Json("/a/b/tag".into())));
        let e = IgnoreRules::parse("/ok, items.price").err();
        assert_eq!(e.as_ref().map(|e| e.index), Some(2));
        assert!(e.is_some_and(|e| e.to_string().contains("items.price")));
        assert!(IgnoreRules::parse("header:bad name").is_err());
    }
}
