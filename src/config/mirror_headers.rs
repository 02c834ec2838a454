//! Header edits for the mirrored copy only, read from VirtualService annotations, so that
//! production credentials need not reach a service under test. Neither Istio nor Envoy can
//! do this: their shadow gets every header of the original.
//!
//! ```yaml
//! metadata:
//!   annotations:
//!     # every mirror of every route of this VirtualService
//!     mirrorlab.dev/mirror-remove-headers: authorization, cookie, x-api-key
//!     mirrorlab.dev/mirror-set-headers: |
//!       authorization: Bearer shadow-test-token
//!     # only the mirrors of the route named `reviews-v2`
//!     mirrorlab.dev/mirror-remove-headers.reviews-v2: x-debug
//! ```
//!
//! `remove` lists header names separated by commas or newlines; `set` has one
//! `name: value` per line (values may contain commas and `#`: a token `abc#1` or a URL
//! fragment is a value, not a comment). In `remove` a `#` starts a comment; in `set` only a
//! line that starts with `#` is one. A route's own
//! key adds to the VirtualService-wide one. Removals apply before sets, so a header can be
//! replaced by removing and setting it, or just by setting it.

use super::model::OrderedMap;

/// Annotation listing headers to remove from mirrored copies.
pub const MIRROR_REMOVE_HEADERS: &str = "mirrorlab.dev/mirror-remove-headers";
/// Annotation listing `name: value` headers to set (replace) on mirrored copies.
pub const MIRROR_SET_HEADERS: &str = "mirrorlab.dev/mirror-set-headers";

/// Headers the edits may not touch: the pairing key, routing and body framing.
const PROTECTED: [&str; 5] = [
    "host",
    "x-request-id",
    "content-length",
    "transfer-encoding",
    "connection",
];

/// Edits to the mirrored copy's headers, as written in the annotations (names lowercase).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorHeaderEdits {
    /// Header names to remove.
    pub remove: Vec<String>,
    /// Headers to set, replacing any value the client sent.
    pub set: Vec<(String, String)>,
}

/// A malformed mirror header annotation: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {key}: {reason}")]
pub struct MirrorHeaderError {
    /// The annotation key.
    pub key: String,
    /// What is wrong and how to write it instead.
    pub reason: String,
}

impl MirrorHeaderEdits {
    /// True when the edits change nothing.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty()
    }

    /// The edits for the mirrors of one route: the VirtualService-wide annotations, then the
    /// ones keyed by the route's name.
    pub fn for_route(
        annotations: &OrderedMap<String>,
        route_name: Option<&str>,
    ) -> Result<MirrorHeaderEdits, MirrorHeaderError> {
        let mut edits = MirrorHeaderEdits::default();
        let mut keys = vec![
            MIRROR_REMOVE_HEADERS.to_owned(),
            MIRROR_SET_HEADERS.to_owned(),
        ];
        if let Some(name) = route_name {
            keys.push(format!("{MIRROR_REMOVE_HEADERS}.{name}"));
            keys.push(format!("{MIRROR_SET_HEADERS}.{name}"));
        }
        for key in keys {
            let Some(text) = annotations.get(&key) else {
                continue;
            };
            if key.starts_with(MIRROR_SET_HEADERS) {
                edits.set.extend(parse_set(&key, text)?);
            } else {
                edits.remove.extend(parse_remove(&key, text)?);
            }
        }
        Ok(edits)
    }

    /// Route names that the VirtualService's annotations scope edits to, with the key.
    pub fn scoped_route_names(annotations: &OrderedMap<String>) -> Vec<(String, String)> {
        annotations
            .keys()
            .filter_map(|key| {
                [MIRROR_REMOVE_HEADERS, MIRROR_SET_HEADERS]
                    .iter()
                    .find_map(|prefix| key.strip_prefix(prefix)?.strip_prefix('.'))
                    .map(|route| (key.clone(), route.to_owned()))
            })
            .collect()
    }
}

/// Parses a remove list: names separated by commas or newlines.
pub fn parse_remove(key: &str, text: &str) -> Result<Vec<String>, MirrorHeaderError> {
    let mut names = Vec::new();
    for line in text.lines() {
        for entry in strip_comment(line).split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            names.push(header_name(key, entry)?);
        }
    }
    Ok(names)
}

/// Parses a set list: one `name: value` per line.
pub fn parse_set(key: &str, text: &str) -> Result<Vec<(String, String)>, MirrorHeaderError> {
    let mut headers = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(MirrorHeaderError {
                key: key.to_owned(),
                reason: format!(
                    "`{line}` is not `name: value`; write one header per line, e.g. `authorization: Bearer test-token`"
                ),
            });
        };
        let name = header_name(key, name.trim())?;
        let value = value.trim();
        if let Some(bad) = value.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(MirrorHeaderError {
                key: key.to_owned(),
                reason: format!("the value of `{name}` contains the control character {bad:?}"),
            });
        }
        headers.push((name, value.to_owned()));
    }
    Ok(headers)
}

/// `#` starts a comment in a list of names (a header name has no `#` worth keeping there).
fn strip_comment(line: &str) -> &str {
    line.split_once('#').map_or(line, |(before, _)| before)
}

/// A valid, lowercase, editable header name.
fn header_name(key: &str, name: &str) -> Result<String, MirrorHeaderError> {
    let error = |reason: String| MirrorHeaderError {
        key: key.to_owned(),
        reason,
    };
    // RFC 9110 token characters.
    let is_token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(is_token) {
        return Err(error(format!(
            "`{name}` is not a header name (letters, digits and -_.!#$%&'*+^`|~ only)"
        )));
    }
    let lower = name.to_ascii_lowercase();
    if PROTECTED.contains(&lower.as_str()) {
        return Err(error(format!(
            "`{lower}` cannot be edited on the mirrored copy: the lab needs it to route, pair or frame the request"
        )));
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> OrderedMap<String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn lists_split_on_commas_and_newlines_and_merge_with_route_scoped_keys() {
        let a = annotations(&[
            (
                MIRROR_REMOVE_HEADERS,
                "Authorization, cookie\nx-api-key # keys",
            ),
            (
                MIRROR_SET_HEADERS,
                "authorization: Bearer a, b\nx-env: shadow",
            ),
            ("mirrorlab.dev/mirror-remove-headers.v2", "x-debug"),
        ]);
        let edits = MirrorHeaderEdits::for_route(&a, Some("v2")).expect("valid");
        assert_eq!(
            edits.remove,
            ["authorization", "cookie", "x-api-key", "x-debug"]
        );
        assert_eq!(
            edits.set,
            [
                ("authorization".to_owned(), "Bearer a, b".to_owned()),
                ("x-env".to_owned(), "shadow".to_owned())
            ]
        );
        let other = MirrorHeaderEdits::for_route(&a, Some("v1")).expect("valid");
        assert_eq!(other.remove.len(), 3);
        assert_eq!(
            MirrorHeaderEdits::scoped_route_names(&a),
            [(
                "mirrorlab.dev/mirror-remove-headers.v2".to_owned(),
                "v2".to_owned()
            )]
        );
    }

    #[test]
    fn bad_names_values_and_protected_headers_are_refused() {
        assert!(parse_remove(MIRROR_REMOVE_HEADERS, "bad name").is_err());
        assert!(parse_remove(MIRROR_REMOVE_HEADERS, "x-request-id").is_err());
        assert!(parse_remove(MIRROR_REMOVE_HEADERS, "Host").is_err());
        assert!(parse_set(MIRROR_SET_HEADERS, "authorization Bearer x").is_err());
        assert!(parse_set(MIRROR_SET_HEADERS, "x: a\u{7}b").is_err());
        let err = parse_set(MIRROR_SET_HEADERS, "content-length: 3").expect_err("protected");
        assert!(err.to_string().contains("content-length"), "{err}");
    }

    #[test]
    fn a_hash_in_a_set_value_is_part_of_the_value_and_a_hash_line_is_a_comment() {
        let set = parse_set(
            MIRROR_SET_HEADERS,
            "# the shadow's own token\nauthorization: Bearer abc#123\nx-page: /docs#intro",
        )
        .expect("valid");
        assert_eq!(
            set,
            [
                ("authorization".to_owned(), "Bearer abc#123".to_owned()),
                ("x-page".to_owned(), "/docs#intro".to_owned())
            ]
        );
    }
}
