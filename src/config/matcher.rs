//! Compiled string matchers (`exact`, `prefix`, `regex`, `{}`): the one builder that
//! `check` and the route table share, so a regex `check` passes is the regex the lab runs.

use regex::Regex;

use super::model::StringMatch;

/// Why a match block could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    /// A regex did not compile.
    #[error("invalid regex `{regex}` at {field}: {reason}")]
    InvalidRegex {
        /// Field path relative to the match block, e.g. `headers.user-agent.regex`.
        field: String,
        /// The regex as written.
        regex: String,
        /// What the regex crate said.
        reason: String,
    },
    /// More than one of exact/prefix/regex.
    #[error("{field} sets more than one of exact, prefix and regex; Istio allows exactly one")]
    Ambiguous {
        /// Field path relative to the match block.
        field: String,
    },
}

/// One compiled `StringMatch`.
#[derive(Debug, Clone)]
pub enum StringMatcher {
    /// The whole value equals this.
    Exact(String),
    /// The value starts with this.
    Prefix(String),
    /// The regex matches the whole value (anchored at compile time).
    Regex {
        /// The regex as written, for summaries.
        source: String,
        /// `^(?:source)$`.
        compiled: Regex,
    },
    /// `{}`: the header or parameter is present, whatever its value.
    Present,
}

impl StringMatcher {
    /// Compiles a `StringMatch`; `field` names it in errors.
    pub fn compile(m: &StringMatch, field: &str) -> Result<Self, MatcherError> {
        match (&m.exact, &m.prefix, &m.regex) {
            (None, None, None) => Ok(Self::Present),
            (Some(e), None, None) => Ok(Self::Exact(e.clone())),
            (None, Some(p), None) => Ok(Self::Prefix(p.clone())),
            (None, None, Some(r)) => Self::regex(r, &format!("{field}.regex")),
            _ => Err(MatcherError::Ambiguous {
                field: field.to_owned(),
            }),
        }
    }

    /// Compiles the `StringMatch` of a header or query parameter, where Istio turns
    /// `regex: "*"` (like `{}`) into a presence match (route.go
    /// `canBeConvertedToPresentMatch`).
    pub fn compile_for_presence(m: &StringMatch, field: &str) -> Result<Self, MatcherError> {
        if m.exact.is_none() && m.prefix.is_none() && m.regex.as_deref() == Some("*") {
            return Ok(Self::Present);
        }
        Self::compile(m, field)
    }

    /// Compiles a whole-value (RE2-style) regex.
    pub fn regex(source: &str, field: &str) -> Result<Self, MatcherError> {
        // The source must parse on its own first: wrapped unchecked, `a)|(b` or `)\` would
        // close the anchoring group early and match part of a value, where Istio rejects it.
        Regex::new(source)
            .and_then(|_| Regex::new(&format!("^(?:{source})$")))
            .map(|compiled| Self::Regex {
                source: source.to_owned(),
                compiled,
            })
            .map_err(|e| MatcherError::InvalidRegex {
                field: field.to_owned(),
                regex: source.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Whether `value` matches; `ignore_case` applies to exact and prefix only, as in Envoy.
    pub fn matches(&self, value: &str, ignore_case: bool) -> bool {
        match self {
            Self::Exact(e) if ignore_case => value.eq_ignore_ascii_case(e),
            Self::Exact(e) => value == e,
            Self::Prefix(p) if ignore_case => value
                .get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p)),
            Self::Prefix(p) => value.starts_with(p.as_str()),
            Self::Regex { compiled, .. } => compiled.is_match(value),
            Self::Present => true,
        }
    }

    /// `subject = v`, `subject prefix v`, `subject ~ re`, `subject present`.
    pub fn summary(&self, subject: &str) -> String {
        match self {
            Self::Exact(e) => format!("{subject} = {e}"),
            Self::Prefix(p) => format!("{subject} prefix {p}"),
            Self::Regex { source, .. } => format!("{subject} ~ {source}"),
            Self::Present => format!("{subject} present"),
        }
    }
}

/// `rewrite.uriRegexRewrite` compiled: Envoy's `regex_rewrite`, which replaces every match
/// of the pattern in the path (not the query) with the substitution, where `\1` names a
/// group as RE2 writes it.
#[derive(Debug, Clone)]
pub struct RegexRewrite {
    /// The pattern as written.
    pub source: String,
    /// The substitution as written (RE2 syntax).
    pub rewrite: String,
    pattern: Regex,
    /// The substitution in the `regex` crate's syntax (`${1}`).
    replacement: String,
}

impl RegexRewrite {
    /// Compiles `match` and `rewrite`; `field` names the `uriRegexRewrite` in errors.
    pub fn compile(pattern: &str, rewrite: &str, field: &str) -> Result<Self, MatcherError> {
        let compiled = Regex::new(pattern).map_err(|e| MatcherError::InvalidRegex {
            field: format!("{field}.match"),
            regex: pattern.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            source: pattern.to_owned(),
            rewrite: rewrite.to_owned(),
            pattern: compiled,
            replacement: re2_substitution(rewrite),
        })
    }

    /// The path with every match replaced, or `None` when the result is empty (Envoy then
    /// leaves the path as it was).
    pub fn apply(&self, path: &str) -> Option<String> {
        let out = self.pattern.replace_all(path, self.replacement.as_str());
        (!out.is_empty()).then(|| out.into_owned())
    }
}

/// RE2's `\1` group references (and `\\` for a backslash) in the `regex` crate's syntax,
/// with a literal `$` escaped.
fn re2_substitution(rewrite: &str) -> String {
    let mut out = String::with_capacity(rewrite.len() + 4);
    let mut chars = rewrite.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    out.push_str("${");
                    out.push(d);
                    out.push('}');
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(exact: Option<&str>, prefix: Option<&str>, regex: Option<&str>) -> StringMatch {
        StringMatch {
            exact: exact.map(Into::into),
            prefix: prefix.map(Into::into),
            regex: regex.map(Into::into),
        }
    }

    #[test]
    fn string_matchers() {
        let exact = StringMatcher::compile(&sm(Some("/a"), None, None), "uri").unwrap();
        assert!(exact.matches("/a", false));
        assert!(!exact.matches("/ab", false));
        assert!(!exact.matches("/A", false));
        assert!(exact.matches("/A", true));

        let prefix = StringMatcher::compile(&sm(None, Some("/api"), None), "uri").unwrap();
        assert!(prefix.matches("/api/v1", false));
        assert!(!prefix.matches("/ap", false));
        assert!(!prefix.matches("/API/v1", false));
        assert!(prefix.matches("/API/v1", true));

        let re = StringMatcher::compile(&sm(None, None, Some(".*testing.*")), "h").unwrap();
        assert!(re.matches("my-testing-agent", false));
        assert!(!re.matches("curl", false));
        // Whole-value match: a partial hit is not enough.
        let re = StringMatcher::compile(&sm(None, None, Some("v[0-9]")), "h").unwrap();
        assert!(re.matches("v1", false));
        assert!(!re.matches("xv1", false));
        assert!(!re.matches("v12", false));

        let present = StringMatcher::compile(&sm(None, None, None), "h").unwrap();
        assert!(present.matches("", false));
    }

    #[test]
    fn bad_matchers_are_errors_not_panics() {
        let e = StringMatcher::compile(&sm(None, None, Some("(unclosed")), "uri").unwrap_err();
        assert!(matches!(e, MatcherError::InvalidRegex { .. }), "{e}");
        let e = StringMatcher::compile(&sm(Some("a"), Some("b"), None), "uri").unwrap_err();
        assert!(matches!(e, MatcherError::Ambiguous { .. }), "{e}");
    }

    #[test]
    fn regex_rewrites_replace_every_match_with_re2_groups() {
        // Envoy's regex_rewrite: RE2::GlobalReplace over the path, `\1` for a group.
        let r = RegexRewrite::compile("^/service/([^/]+)(/.*)$", "\\2/instance/\\1", "r").unwrap();
        assert_eq!(
            r.apply("/service/foo/v1/api").as_deref(),
            Some("/v1/api/instance/foo")
        );
        let r = RegexRewrite::compile("a", "b", "r").unwrap();
        assert_eq!(r.apply("/aaa").as_deref(), Some("/bbb"));
        let r = RegexRewrite::compile("x", "$1", "r").unwrap();
        assert_eq!(r.apply("/x").as_deref(), Some("/$1"));
        let r = RegexRewrite::compile("^.*$", "", "r").unwrap();
        assert_eq!(
            r.apply("/gone"),
            None,
            "an empty result leaves the path as it was"
        );
        assert!(RegexRewrite::compile("(", "", "r").is_err());
    }
}
