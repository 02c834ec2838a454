//! Regexes as Istio and Envoy read them: RE2 syntax.
//!
//! Istio validates every regex with Go's `regexp` (RE2 syntax, `regexp/syntax`), and Envoy
//! matches with Google's RE2. The `regex` crate is RE2-like but not RE2: it accepts things RE2
//! refuses (`a{1001}`, `[a&&b]`, `(?x)`, `\p{Emoji}`), refuses things RE2 accepts (`\0`,
//! `a{,3}` as a literal, `[[]`), and reads some alike-looking syntax differently (`\d` and `\w`
//! are Unicode-wide in Rust, ASCII in RE2; `[[a]]` nests in Rust and is a literal `[` in RE2).
//!
//! So the lab parses the regex itself, as Go's parser does (the same errors, with Go's
//! wording), and hands the `regex` crate an equivalent pattern written in a form both agree
//! on: every literal escaped, `\d` spelled `[0-9]`, flags applied atom by atom. What RE2
//! accepts the lab runs with RE2's meaning; what RE2 refuses the lab refuses.
//!
//! Istio's own limit comes first: a regex longer than 1024 bytes is refused
//! (`validateStringRegexp`), as is any repetition count over 1000, alone or nested
//! (`a{1001}`, `(a{100}){11}`), which is Go's.

mod emit;
mod escape;
mod parse;
mod unicode;

use regex::{Regex, RegexBuilder};

pub use parse::Re2ErrorCode;

/// The longest regex Istio accepts, in bytes.
pub const MAX_REGEX_LEN: usize = 1024;

/// Why a regex is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Re2Error {
    /// Longer than [`MAX_REGEX_LEN`] bytes (Istio's `regex is too large`).
    #[error("regex is {len} bytes long; Istio allows at most 1024")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// Not RE2 syntax; `code` and `expr` are what Go's parser reports.
    #[error("{code}: `{expr}`")]
    Syntax {
        /// Go's error code.
        code: Re2ErrorCode,
        /// The part of the regex the error is about.
        expr: String,
    },
    /// Valid RE2, but too large for the lab's matching engine once compiled.
    #[error("the lab's regex engine cannot hold it once compiled ({0})")]
    Engine(String),
}

/// The compiled-size budget for one regex: `\pL{1000}`, which RE2 accepts, needs about 64 MiB.
const SIZE_LIMIT: usize = 256 << 20;

/// Compiles an RE2 regex that must match a whole value (as Envoy's `safe_regex` matchers and
/// Istio's StringMatch do).
pub fn compile_whole(source: &str) -> Result<Regex, Re2Error> {
    let pattern = translate(source)?;
    build(&format!(r"\A(?:{pattern})\z"))
}

/// Compiles an RE2 regex for searching inside a value (e.g. `uriRegexRewrite.match`).
pub fn compile_search(source: &str) -> Result<Regex, Re2Error> {
    let pattern = translate(source)?;
    build(&pattern)
}

/// Checks a regex as Istio does (length, then RE2 syntax) and returns the equivalent
/// pattern in the `regex` crate's syntax; capture groups keep their numbers.
pub fn translate(source: &str) -> Result<String, Re2Error> {
    if source.len() > MAX_REGEX_LEN {
        return Err(Re2Error::TooLong { len: source.len() });
    }
    let node = parse::parse(source)?;
    Ok(emit::pattern(&node))
}

fn build(pattern: &str) -> Result<Regex, Re2Error> {
    RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        // Go allows nesting up to 1000 levels; the translation adds a group per repetition.
        .nest_limit(4000)
        .build()
        .map_err(|e| Re2Error::Engine(e.to_string().lines().last().unwrap_or("").to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(source: &str, value: &str) -> bool {
        compile_whole(source)
            .unwrap_or_else(|e| panic!("`{source}`: {e}"))
            .is_match(value)
    }

    fn refused(source: &str) -> Re2Error {
        compile_whole(source).expect_err(source)
    }

    #[test]
    fn what_re2_accepts_matches_as_re2_does() {
        assert!(whole(".*testing.*", "my-testing-agent"));
        assert!(!whole("v[0-9]", "xv1"));
        // Perl classes are ASCII in RE2.
        assert!(whole(r"\d+", "123"));
        assert!(!whole(r"\d", "\u{0663}"));
        assert!(!whole(r"\w", "é"));
        assert!(whole(r"\W", "é"));
        assert!(whole(r"[[:alpha:]]+", "abc"));
        assert!(!whole(r"[[:^alpha:]]", "a"));
        // Octal escapes and literal braces are RE2 syntax the `regex` crate refuses.
        assert!(whole(r"\0101", "\u{8}1"));
        assert!(whole(r"\101", "A"));
        assert!(whole("a{,3}", "a{,3}"));
        assert!(whole("a{", "a{"));
        assert!(whole("x{01}", "x{01}"));
        // `[` inside a class is a literal, `&&` is two ampersands.
        assert!(whole("[[]", "["));
        assert!(whole("[a&&b]", "&"));
        assert!(whole(r"\Qa.b\E", "a.b"));
        assert!(!whole(r"\Qa.b\E", "axb"));
        assert!(whole(r"\Qa.b", "a.b"));
        // Flags are scoped to their group, and survive `|` inside it.
        assert!(whole("(?i)abc", "ABC"));
        assert!(whole("(?:a(?i)b|c)d", "Cd"));
        assert!(!whole("(?:a(?i)b|c)d", "cD"));
        assert!(whole("(?i:a)b", "Ab"));
        assert!(!whole("(?i:a)b", "AB"));
        assert!(whole("(?s).", "\n"));
        assert!(!whole(".", "\n"));
        assert!(whole("(?U)a+", "aaa"));
        // `$` without (?m) is the end of the text only.
        assert!(!whole("a$\n", "a\n"));
        assert!(whole("(?m)a$\n", "a\n"));
        assert!(whole("[^a]", "\n"));
        assert!(whole(r"\pL+", "héllo"));
        assert!(whole(r"\p{Greek}+", "αβ"));
        assert!(whole(r"\p{Letter}", "a"));
        assert!(whole(r"\p{^Greek}", "a"));
        assert!(whole(r"\PL", "1"));
        assert!(whole(r"\p{Any}", "\u{1F600}"));
        assert!(whole(r"a{1000}", &"a".repeat(1000)));
        assert!(whole("(?P<name>a)(?<other>b)", "ab"));
        assert!(whole("^*a", "a"));
        assert!(whole(r"\x{D800}|a", "a"));
        assert!(whole("()", ""));
        assert!(whole("a|", ""));
    }

    #[test]
    fn what_re2_refuses_is_refused_with_gos_reason() {
        for (source, code) in [
            ("a{1001}", Re2ErrorCode::InvalidRepeatSize),
            ("a{2,1}", Re2ErrorCode::InvalidRepeatSize),
            ("(a{100}){11}", Re2ErrorCode::InvalidRepeatSize),
            ("((a{10}){10}){11}", Re2ErrorCode::InvalidRepeatSize),
            ("a**", Re2ErrorCode::InvalidRepeatOp),
            ("a*+", Re2ErrorCode::InvalidRepeatOp),
            ("a{2}*", Re2ErrorCode::InvalidRepeatOp),
            ("*", Re2ErrorCode::MissingRepeatArgument),
            ("(*)", Re2ErrorCode::MissingRepeatArgument),
            ("a|*", Re2ErrorCode::MissingRepeatArgument),
            ("(?i)*", Re2ErrorCode::MissingRepeatArgument),
            ("(?!a)", Re2ErrorCode::InvalidPerlOp),
            ("(?=a)", Re2ErrorCode::InvalidPerlOp),
            ("(?x)a", Re2ErrorCode::InvalidPerlOp),
            ("(?i-)a", Re2ErrorCode::InvalidPerlOp),
            ("(?#c)", Re2ErrorCode::InvalidPerlOp),
            ("(?<=a)b", Re2ErrorCode::InvalidNamedCapture),
            ("(?P<a-b>x)", Re2ErrorCode::InvalidNamedCapture),
            (r"\1", Re2ErrorCode::InvalidEscape),
            (r"\8", Re2ErrorCode::InvalidEscape),
            (r"\e", Re2ErrorCode::InvalidEscape),
            (r"\C", Re2ErrorCode::InvalidEscape),
            (r"\u0041", Re2ErrorCode::InvalidEscape),
            (r"\Z", Re2ErrorCode::InvalidEscape),
            (r"\x{110000}", Re2ErrorCode::InvalidEscape),
            ("a\\", Re2ErrorCode::TrailingBackslash),
            ("[a", Re2ErrorCode::MissingBracket),
            ("[]", Re2ErrorCode::MissingBracket),
            ("[z-a]", Re2ErrorCode::InvalidCharRange),
            ("[[:foo:]]", Re2ErrorCode::InvalidCharRange),
            (r"\p{Emoji}", Re2ErrorCode::InvalidCharRange),
            (r"\p{White_Space}", Re2ErrorCode::InvalidCharRange),
            (r"\p{gc=L}", Re2ErrorCode::InvalidCharRange),
            (r"\p{IsGreek}", Re2ErrorCode::InvalidCharRange),
            (r"\p{Grek}", Re2ErrorCode::InvalidCharRange),
            (r"\p{Greek", Re2ErrorCode::InvalidCharRange),
            ("(a", Re2ErrorCode::MissingParen),
            ("a)", Re2ErrorCode::UnexpectedParen),
            ("a)|(b", Re2ErrorCode::UnexpectedParen),
        ] {
            match refused(source) {
                Re2Error::Syntax { code: got, .. } => assert_eq!(got, code, "`{source}`"),
                other => panic!("`{source}`: {other}"),
            }
        }
        let e = refused(&"a".repeat(1025));
        assert_eq!(e, Re2Error::TooLong { len: 1025 });
        assert!(compile_whole(&"a".repeat(1024)).is_ok());
        assert_eq!(
            refused("a{1001}").to_string(),
            "invalid repeat count: `{1001}`"
        );
        assert_eq!(
            refused("a**").to_string(),
            "invalid nested repetition operator: `**`"
        );
    }

    #[test]
    fn capture_groups_keep_their_numbers() {
        let re = compile_search("/(?P<v>v[0-9])/(x)").unwrap();
        let caps = re.captures("/v1/x").unwrap();
        assert_eq!(caps.get(1).map(|m| m.as_str()), Some("v1"));
        assert_eq!(caps.get(2).map(|m| m.as_str()), Some("x"));
    }
}
