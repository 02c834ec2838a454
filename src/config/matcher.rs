//! Compiled string matchers (`exact`, `prefix`, `regex`, `{}`): the one builder that
//! `check` and the route table share, so a matcher `check` passes is the matcher the lab
//! runs, and one Istio refuses is refused by both.
//!
//! Istio's rules (`validateStringMatch`, `validateStringMatchRegexp`, `validateAllowOrigins`
//! in istio/istio `pkg/config/validation/validation.go`) depend on the field: an empty
//! `prefix` is fine on `uri` only, an empty `regex` nowhere, a CORS origin must match
//! something, and a `withoutHeaders` regex of `*` is not a regex at all but a presence test
//! (Istio's route translation turns it into Envoy's `present_match`). Regexes are RE2
//! ([`super::re2`]) and must match the whole value.

use regex::Regex;

use super::model::StringMatch;
use super::re2::{self, Re2Error};

/// Where a `StringMatch` stands; Istio's rules differ from field to field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchField {
    /// `match.uri` (Envoy's path matcher: an empty prefix matches every path).
    Uri,
    /// `match.scheme`.
    Scheme,
    /// `match.method`.
    Method,
    /// `match.authority`.
    Authority,
    /// A `match.headers` entry.
    Header,
    /// A `match.withoutHeaders` entry.
    WithoutHeader,
    /// A `match.queryParams` entry.
    QueryParam,
    /// A `corsPolicy.allowOrigins` entry.
    AllowOrigin,
}

/// Why a string match could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    /// A regex RE2 (or Istio's length limit) refuses.
    #[error("invalid regex `{regex}` at {field}: {reason}")]
    InvalidRegex {
        /// Field path of the regex, e.g. `headers.user-agent.regex`.
        field: String,
        /// The regex as written.
        regex: String,
        /// Why RE2 or Istio refuses it.
        reason: Re2Error,
    },
    /// More than one of exact/prefix/regex.
    #[error("{field} sets more than one of exact, prefix and regex; Istio allows exactly one")]
    Ambiguous {
        /// Field path of the match.
        field: String,
    },
    /// `prefix: ""` where Istio refuses it (every field but `uri`).
    #[error("{field} has an empty prefix; Istio refuses an empty prefix match here")]
    EmptyPrefix {
        /// Field path of the match.
        field: String,
    },
    /// `regex: ""`.
    #[error("{field} has an empty regex; Istio refuses an empty regex match")]
    EmptyRegex {
        /// Field path of the match.
        field: String,
    },
    /// A `uriRegexRewrite` without `match` or without `rewrite`.
    #[error("{field} needs both `match` and `rewrite`; Istio refuses one without the other")]
    IncompleteRegexRewrite {
        /// Field path of the `uriRegexRewrite`.
        field: String,
    },
    /// A CORS origin that matches nothing in particular (`{}` or an empty string).
    #[error(
        "{field} is empty; Istio requires a CORS origin to name an exact, prefix or regex value"
    )]
    EmptyOrigin {
        /// Field path of the match.
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
        /// The RE2 regex, anchored to the whole value.
        compiled: Regex,
    },
    /// `{}` (or `regex: "*"` in `withoutHeaders`): the header or parameter is present,
    /// whatever its value.
    Present,
}

impl StringMatcher {
    /// Compiles a `StringMatch` standing in `kind`, as Istio validates and translates it;
    /// `field` names it in errors.
    pub fn compile(m: &StringMatch, kind: MatchField, field: &str) -> Result<Self, MatcherError> {
        let origin = kind == MatchField::AllowOrigin;
        let empty_origin = || MatcherError::EmptyOrigin {
            field: field.to_owned(),
        };
        match (&m.exact, &m.prefix, &m.regex) {
            (None, None, None) if origin => Err(empty_origin()),
            (None, None, None) => Ok(Self::Present),
            (Some(e), None, None) if origin && e.is_empty() => Err(empty_origin()),
            (Some(e), None, None) => Ok(Self::Exact(e.clone())),
            (None, Some(p), None) if p.is_empty() && origin => Err(empty_origin()),
            (None, Some(p), None) if p.is_empty() && kind != MatchField::Uri => {
                Err(MatcherError::EmptyPrefix {
                    field: field.to_owned(),
                })
            }
            (None, Some(p), None) => Ok(Self::Prefix(p.clone())),
            (None, None, Some(r)) if r == "*" && kind == MatchField::WithoutHeader => {
                Ok(Self::Present)
            }
            (None, None, Some(r)) if r.is_empty() && origin => Err(empty_origin()),
            (None, None, Some(r)) if r.is_empty() => Err(MatcherError::EmptyRegex {
                field: field.to_owned(),
            }),
            (None, None, Some(r)) => Self::regex(r, &format!("{field}.regex")),
            _ => Err(MatcherError::Ambiguous {
                field: field.to_owned(),
            }),
        }
    }

    /// Compiles an RE2 regex that must match the whole value.
    pub fn regex(source: &str, field: &str) -> Result<Self, MatcherError> {
        re2::compile_whole(source)
            .map(|compiled| Self::Regex {
                source: source.to_owned(),
                compiled,
            })
            .map_err(|reason| MatcherError::InvalidRegex {
                field: field.to_owned(),
                regex: source.to_owned(),
                reason,
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
    /// Compiles `match` (RE2, searched in the path) and `rewrite`, both required as Istio
    /// requires them (`validateURIRegexRewrite`); `field` names the `uriRegexRewrite`.
    pub fn compile(pattern: &str, rewrite: &str, field: &str) -> Result<Self, MatcherError> {
        if pattern.is_empty() || rewrite.is_empty() {
            return Err(MatcherError::IncompleteRegexRewrite {
                field: field.to_owned(),
            });
        }
        let compiled =
            re2::compile_search(pattern).map_err(|reason| MatcherError::InvalidRegex {
                field: format!("{field}.match"),
                regex: pattern.to_owned(),
                reason,
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

    fn compile(m: &StringMatch, kind: MatchField) -> Result<StringMatcher, MatcherError> {
        StringMatcher::compile(m, kind, "m")
    }

    #[test]
    fn string_matchers() {
        let exact = compile(&sm(Some("/a"), None, None), MatchField::Uri).unwrap();
        assert!(exact.matches("/a", false));
        assert!(!exact.matches("/ab", false));
        assert!(!exact.matches("/A", false));
        assert!(exact.matches("/A", true));

        let prefix = compile(&sm(None, Some("/api"), None), MatchField::Uri).unwrap();
        assert!(prefix.matches("/api/v1", false));
        assert!(!prefix.matches("/ap", false));
        assert!(!prefix.matches("/API/v1", false));
        assert!(prefix.matches("/API/v1", true));

        let re = compile(&sm(None, None, Some(".*testing.*")), MatchField::Header).unwrap();
        assert!(re.matches("my-testing-agent", false));
        assert!(!re.matches("curl", false));
        // Whole-value match: a partial hit is not enough.
        let re = compile(&sm(None, None, Some("v[0-9]")), MatchField::Header).unwrap();
        assert!(re.matches("v1", false));
        assert!(!re.matches("xv1", false));
        assert!(!re.matches("v12", false));

        let present = compile(&sm(None, None, None), MatchField::Header).unwrap();
        assert!(present.matches("", false));
    }

    #[test]
    fn bad_matchers_are_errors_not_panics() {
        let e = compile(&sm(None, None, Some("(unclosed")), MatchField::Uri).unwrap_err();
        assert!(matches!(e, MatcherError::InvalidRegex { .. }), "{e}");
        let e = compile(&sm(Some("a"), Some("b"), None), MatchField::Uri).unwrap_err();
        assert!(matches!(e, MatcherError::Ambiguous { .. }), "{e}");
    }

    #[test]
    fn empty_matches_follow_istio_field_by_field() {
        // An empty prefix matches every path on `uri` and is refused everywhere else.
        assert!(matches!(
            compile(&sm(None, Some(""), None), MatchField::Uri),
            Ok(StringMatcher::Prefix(p)) if p.is_empty()
        ));
        for kind in [
            MatchField::Scheme,
            MatchField::Method,
            MatchField::Authority,
            MatchField::Header,
            MatchField::WithoutHeader,
            MatchField::QueryParam,
        ] {
            let e = compile(&sm(None, Some(""), None), kind).unwrap_err();
            assert!(
                matches!(e, MatcherError::EmptyPrefix { .. }),
                "{kind:?}: {e}"
            );
        }
        for kind in [MatchField::Uri, MatchField::Header, MatchField::QueryParam] {
            let e = compile(&sm(None, None, Some("")), kind).unwrap_err();
            assert!(
                matches!(e, MatcherError::EmptyRegex { .. }),
                "{kind:?}: {e}"
            );
        }
        // `*` is a presence test in withoutHeaders, and not a regex anywhere else.
        assert!(matches!(
            compile(&sm(None, None, Some("*")), MatchField::WithoutHeader),
            Ok(StringMatcher::Present)
        ));
        assert!(compile(&sm(None, None, Some("*")), MatchField::Header).is_err());
        // An exact empty value is a value.
        assert!(compile(&sm(Some(""), None, None), MatchField::Header).is_ok());
        for origin in [
            sm(None, None, None),
            sm(Some(""), None, None),
            sm(None, Some(""), None),
        ] {
            let e = compile(&origin, MatchField::AllowOrigin).unwrap_err();
            assert!(matches!(e, MatcherError::EmptyOrigin { .. }), "{e}");
        }
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
        let r = RegexRewrite::compile("^(x?).*$", "\\1", "r").unwrap();
        assert_eq!(
            r.apply("/gone"),
            None,
            "an empty result leaves the path as it was"
        );
        assert!(RegexRewrite::compile("(", "x", "r").is_err());
        // Istio requires both parts, and RE2 syntax in the pattern.
        assert!(matches!(
            RegexRewrite::compile("^.*$", "", "r"),
            Err(MatcherError::IncompleteRegexRewrite { .. })
        ));
        assert!(RegexRewrite::compile("a{1001}", "b", "r").is_err());
    }
}
