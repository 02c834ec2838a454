//! The escapes and class items of RE2 syntax, as Go's `parseEscape`, `parsePerlClassEscape`,
//! `parseNamedClass` and `parseUnicodeClass` read them.

use super::Re2Error;
use super::parse::{ClassItem, Re2ErrorCode, syntax};
use super::unicode::unicode_class;

/// One character of a class, escaped or not.
pub(super) fn class_char<'a>(t: &'a str, whole_class: &str) -> Result<(u32, &'a str), Re2Error> {
    match t.chars().next() {
        None => Err(syntax(Re2ErrorCode::MissingBracket, whole_class)),
        Some('\\') => single_escape(t),
        Some(c) => Ok((u32::from(c), &t[c.len_utf8()..])),
    }
}

/// `\d \D \s \S \w \W`, as RE2 defines them (ASCII).
pub(super) fn perl_class(t: &str) -> Option<(ClassItem, &str)> {
    let set: &'static [(u8, u8)] = match t.get(..2)? {
        "\\d" | "\\D" => DIGIT,
        "\\s" | "\\S" => PERL_SPACE,
        "\\w" | "\\W" => WORD,
        _ => return None,
    };
    let negated = t.as_bytes()[1].is_ascii_uppercase();
    Some((ClassItem::Ascii(set, negated), &t[2..]))
}

/// `[:alpha:]` and friends at the start of `t` (which starts with `[:`), if `:]` follows.
pub(super) fn posix_class(t: &str) -> Result<Option<(ClassItem, &str)>, Re2Error> {
    let Some(end) = t[2..].find(":]").map(|i| i + 4) else {
        return Ok(None);
    };
    let name = &t[..end];
    let (negated, bare) = match name[2..name.len() - 2].strip_prefix('^') {
        Some(bare) => (true, bare),
        None => (false, &name[2..name.len() - 2]),
    };
    let set: &'static [(u8, u8)] = match bare {
        "alnum" => &[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z')],
        "alpha" => &[(b'A', b'Z'), (b'a', b'z')],
        "ascii" => &[(0, 0x7f)],
        "blank" => &[(b'\t', b'\t'), (b' ', b' ')],
        "cntrl" => &[(0, 0x1f), (0x7f, 0x7f)],
        "digit" => DIGIT,
        "graph" => &[(b'!', b'~')],
        "lower" => &[(b'a', b'z')],
        "print" => &[(b' ', b'~')],
        "punct" => &[(b'!', b'/'), (b':', b'@'), (b'[', b'`'), (b'{', b'~')],
        "space" => &[(b'\t', b'\r'), (b' ', b' ')],
        "upper" => &[(b'A', b'Z')],
        "word" => WORD,
        "xdigit" => &[(b'0', b'9'), (b'A', b'F'), (b'a', b'f')],
        _ => return Err(syntax(Re2ErrorCode::InvalidCharRange, name)),
    };
    Ok(Some((ClassItem::Ascii(set, negated), &t[end..])))
}

const DIGIT: &[(u8, u8)] = &[(b'0', b'9')];
const WORD: &[(u8, u8)] = &[(b'0', b'9'), (b'A', b'Z'), (b'_', b'_'), (b'a', b'z')];
const PERL_SPACE: &[(u8, u8)] = &[(b'\t', b'\n'), (0x0c, b'\r'), (b' ', b' ')];

/// `\pN`, `\p{Name}`, `\PN`, `\P{^Name}` at the start of `t`.
pub(super) fn unicode_escape(t: &str) -> Result<Option<(ClassItem, &str)>, Re2Error> {
    let negated = match t.get(..2) {
        Some("\\p") => false,
        Some("\\P") => true,
        _ => return Ok(None),
    };
    let rest = &t[2..];
    let (seq_len, name) = match rest.chars().next() {
        Some('{') => {
            let Some(end) = t.find('}') else {
                return Err(syntax(Re2ErrorCode::InvalidCharRange, t));
            };
            (end + 1, &t[3..end])
        }
        Some(c) => (2 + c.len_utf8(), &rest[..c.len_utf8()]),
        None => (2, ""),
    };
    let seq = &t[..seq_len];
    let (negated, name) = match name.strip_prefix('^') {
        Some(bare) => (!negated, bare),
        None => (negated, name),
    };
    let class = unicode_class(name).ok_or_else(|| syntax(Re2ErrorCode::InvalidCharRange, seq))?;
    Ok(Some((ClassItem::Unicode(class, negated), &t[seq_len..])))
}

/// A single-character escape (Go's `parseEscape`): `\n`, `\x41`, `\x{41}`, `\101`, `\.`.
pub(super) fn single_escape(t: &str) -> Result<(u32, &str), Re2Error> {
    let mut chars = t[1..].chars();
    let Some(c) = chars.next() else {
        return Err(syntax(Re2ErrorCode::TrailingBackslash, ""));
    };
    let rest = chars.as_str();
    let invalid = |end: &str| syntax(Re2ErrorCode::InvalidEscape, &t[..t.len() - end.len()]);
    match c {
        '1'..='7' if !rest.starts_with(|d: char| ('0'..='7').contains(&d)) => Err(invalid(rest)),
        '0'..='7' => {
            let digits = 1 + rest
                .bytes()
                .take(2)
                .take_while(|d| (b'0'..=b'7').contains(d))
                .count();
            let octal = &t[1..1 + digits];
            let value = u32::from_str_radix(octal, 8).map_err(|_| invalid(rest))?;
            Ok((value, &t[1 + digits..]))
        }
        'x' => hex_escape(rest).ok_or_else(|| {
            let end = rest.find('}').map_or("", |i| &rest[i + 1..]);
            invalid(if rest.starts_with('{') {
                end
            } else {
                rest.get(2..).unwrap_or("")
            })
        }),
        'a' => Ok((0x07, rest)),
        'f' => Ok((0x0c, rest)),
        'n' => Ok((0x0a, rest)),
        'r' => Ok((0x0d, rest)),
        't' => Ok((0x09, rest)),
        'v' => Ok((0x0b, rest)),
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok((u32::from(c), rest)),
        _ => Err(invalid(rest)),
    }
}

/// `\x41` or `\x{10FFFF}`; `rest` is the text after `\x`.
fn hex_escape(rest: &str) -> Option<(u32, &str)> {
    if let Some(braced) = rest.strip_prefix('{') {
        let end = braced.find('}')?;
        let digits = &braced[..end];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let trimmed = digits.trim_start_matches('0');
        if trimmed.len() > 6 {
            return None;
        }
        let value = u32::from_str_radix(if trimmed.is_empty() { "0" } else { trimmed }, 16).ok()?;
        return (value <= 0x10_ffff).then_some((value, &braced[end + 1..]));
    }
    let digits = rest.get(..2)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((u32::from_str_radix(digits, 16).ok()?, &rest[2..]))
}
