//! A parser for RE2 syntax that accepts and refuses what Go's `regexp/syntax` does (with
//! `syntax.Perl` flags, as `regexp.Compile` uses), reporting Go's error codes. It builds a
//! small tree with every flag already applied to the atoms it governs.

use std::fmt;

use super::Re2Error;
use super::unicode::{UnicodeClass, unicode_class};

/// Go's `regexp/syntax` error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Re2ErrorCode {
    /// `invalid character class range`.
    InvalidCharRange,
    /// `invalid escape sequence`.
    InvalidEscape,
    /// `invalid named capture`.
    InvalidNamedCapture,
    /// `invalid or unsupported Perl syntax`.
    InvalidPerlOp,
    /// `invalid nested repetition operator`.
    InvalidRepeatOp,
    /// `invalid repeat count`.
    InvalidRepeatSize,
    /// `missing closing ]`.
    MissingBracket,
    /// `missing closing )`.
    MissingParen,
    /// `missing argument to repetition operator`.
    MissingRepeatArgument,
    /// `trailing backslash at end of expression`.
    TrailingBackslash,
    /// `unexpected )`.
    UnexpectedParen,
}

impl fmt::Display for Re2ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidCharRange => "invalid character class range",
            Self::InvalidEscape => "invalid escape sequence",
            Self::InvalidNamedCapture => "invalid named capture",
            Self::InvalidPerlOp => "invalid or unsupported Perl syntax",
            Self::InvalidRepeatOp => "invalid nested repetition operator",
            Self::InvalidRepeatSize => "invalid repeat count",
            Self::MissingBracket => "missing closing ]",
            Self::MissingParen => "missing closing )",
            Self::MissingRepeatArgument => "missing argument to repetition operator",
            Self::TrailingBackslash => "trailing backslash at end of expression",
            Self::UnexpectedParen => "unexpected )",
        })
    }
}

/// Go's limit on a repetition count, alone or multiplied through nesting.
const MAX_REPEAT: u32 = 1000;

/// A parsed regex. Code points are `u32` because RE2 accepts surrogates (`\x{D800}`), which
/// no Rust `char` (and no UTF-8 text) holds.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    /// Matches the empty string.
    Empty,
    /// One code point, case-folded or not.
    Literal { c: u32, fold: bool },
    /// A character class.
    Class(Class),
    /// `.`: any character, newline included or not.
    Dot { newline: bool },
    /// A zero-width assertion.
    Assert(Assertion),
    /// A numbered capture group.
    Capture(Box<Node>),
    /// A repetition; `counted` for the `{n,m}` forms, which count against Go's limit.
    Repeat(Box<Repeat>),
    /// A sequence.
    Concat(Vec<Node>),
    /// Alternatives.
    Alternate(Vec<Node>),
}

/// A repetition of a node.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Repeat {
    pub sub: Node,
    pub min: u32,
    pub max: Option<u32>,
    pub greedy: bool,
    pub counted: bool,
}

/// Zero-width assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Assertion {
    BeginText,
    EndText,
    BeginLine,
    EndLine,
    WordBoundary,
    NotWordBoundary,
}

/// A character class: its items, negation, and case folding.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Class {
    pub items: Vec<ClassItem>,
    pub negated: bool,
    pub fold: bool,
}

/// One part of a character class.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ClassItem {
    /// An inclusive code point range.
    Range(u32, u32),
    /// A fixed ASCII set (`\d`, `[:alpha:]`), possibly negated.
    Ascii(&'static [(u8, u8)], bool),
    /// A Unicode category or script, possibly negated.
    Unicode(UnicodeClass, bool),
}

#[derive(Debug, Clone, Copy)]
struct Flags {
    fold: bool,
    multi_line: bool,
    dot_newline: bool,
    non_greedy: bool,
}

/// A group being parsed: the flags to restore at its `)` and its alternatives so far.
struct Group {
    capture: bool,
    saved: Flags,
    alternatives: Vec<Vec<Node>>,
}

fn syntax(code: Re2ErrorCode, expr: &str) -> Re2Error {
    Re2Error::Syntax {
        code,
        expr: expr.to_owned(),
    }
}

/// Parses `source` as Go's `regexp.Compile` would.
pub(super) fn parse(source: &str) -> Result<Node, Re2Error> {
    let mut p = Parser {
        whole: source,
        flags: Flags {
            fold: false,
            multi_line: false,
            dot_newline: false,
            non_greedy: false,
        },
        stack: Vec::new(),
    };
    p.open(false);
    let mut t = source;
    // The text from the previous repetition operator on, when the last token was one.
    let mut last_repeat: Option<&str> = None;
    while let Some(c) = t.chars().next() {
        let mut repeat = None;
        t = match c {
            '(' if t.starts_with("(?") => p.perl_flags(t)?,
            '(' => {
                p.open(true);
                &t[1..]
            }
            '|' => {
                p.current().alternatives.push(Vec::new());
                &t[1..]
            }
            ')' => {
                p.close()?;
                &t[1..]
            }
            '^' | '$' | '.' => {
                p.push(p.simple_atom(c));
                &t[1..]
            }
            '[' => p.class(t)?,
            '*' | '+' | '?' => {
                let (min, max) = match c {
                    '*' => (0, None),
                    '+' => (1, None),
                    _ => (0, Some(1)),
                };
                repeat = Some(t);
                p.repeat(t, &t[1..], min, max, false, last_repeat)?
            }
            '{' => match repeat_bounds(t) {
                None => {
                    p.literal(u32::from('{'));
                    &t[1..]
                }
                Some((bounds, after)) => {
                    let text = &t[..t.len() - after.len()];
                    let (min, max) = bounds
                        .filter(|(min, max)| {
                            *min <= MAX_REPEAT && max.is_none_or(|m| m <= MAX_REPEAT && *min <= m)
                        })
                        .ok_or_else(|| syntax(Re2ErrorCode::InvalidRepeatSize, text))?;
                    repeat = Some(t);
                    p.repeat(t, after, min, max, true, last_repeat)?
                }
            },
            '\\' => p.escape(t)?,
            _ => {
                p.literal(u32::from(c));
                &t[c.len_utf8()..]
            }
        };
        last_repeat = repeat;
    }
    if p.stack.len() != 1 {
        return Err(syntax(Re2ErrorCode::MissingParen, source));
    }
    let root = p.stack.pop().map(|g| alternation(g.alternatives));
    Ok(root.unwrap_or(Node::Empty))
}

/// A repetition's minimum and maximum (`None`: unbounded).
type Bounds = (u32, Option<u32>);

/// `{n}`, `{n,}` or `{n,m}` at the start of `t`: the bounds (`None` when a number is too
/// big) and the text after. Anything else is not a repetition and `{` is a literal.
fn repeat_bounds(t: &str) -> Option<(Option<Bounds>, &str)> {
    let s = t.strip_prefix('{')?;
    let (min, s) = decimal(s)?;
    let (max, s) = match s.strip_prefix(',') {
        None => (Some(min), s),
        Some(rest) if rest.starts_with('}') => (None, rest),
        Some(rest) => {
            let (max, rest) = decimal(rest)?;
            (Some(max), rest)
        }
    };
    let rest = s.strip_prefix('}')?;
    let bounds = match (min, max) {
        (Some(min), None) => Some((min, None)),
        (Some(min), Some(Some(max))) => Some((min, Some(max))),
        _ => None,
    };
    Some((bounds, rest))
}

/// A decimal without leading zeros; `Some(None)` when it is too big to matter.
fn decimal(s: &str) -> Option<(Option<u32>, &str)> {
    let len = s.bytes().take_while(u8::is_ascii_digit).count();
    if len == 0 || (len >= 2 && s.starts_with('0')) {
        return None;
    }
    let (digits, rest) = s.split_at(len);
    Some((
        digits.parse::<u32>().ok().filter(|n| *n < 100_000_000),
        rest,
    ))
}

/// Several alternatives as one node.
fn alternation(mut alternatives: Vec<Vec<Node>>) -> Node {
    if alternatives.len() == 1 {
        return concatenation(alternatives.pop().unwrap_or_default());
    }
    Node::Alternate(alternatives.into_iter().map(concatenation).collect())
}

fn concatenation(mut items: Vec<Node>) -> Node {
    match items.len() {
        0 => Node::Empty,
        1 => items.pop().unwrap_or(Node::Empty),
        _ => Node::Concat(items),
    }
}

/// Go's `repeatIsValid`: no counted repetition, multiplied through its nesting, exceeds `n`.
fn repeat_is_valid(node: &Node, mut n: u32) -> bool {
    if let Node::Repeat(r) = node
        && r.counted
    {
        let m = r.max.unwrap_or(r.min);
        if m == 0 {
            return true;
        }
        if m > n {
            return false;
        }
        n /= m;
    }
    match node {
        Node::Capture(sub) => repeat_is_valid(sub, n),
        Node::Repeat(r) => repeat_is_valid(&r.sub, n),
        Node::Concat(items) | Node::Alternate(items) => {
            items.iter().all(|item| repeat_is_valid(item, n))
        }
        _ => true,
    }
}

struct Parser<'a> {
    whole: &'a str,
    flags: Flags,
    stack: Vec<Group>,
}

impl<'a> Parser<'a> {
    fn open(&mut self, capture: bool) {
        self.stack.push(Group {
            capture,
            saved: self.flags,
            alternatives: vec![Vec::new()],
        });
    }

    fn close(&mut self) -> Result<(), Re2Error> {
        if self.stack.len() < 2 {
            return Err(syntax(Re2ErrorCode::UnexpectedParen, self.whole));
        }
        let Some(group) = self.stack.pop() else {
            return Err(syntax(Re2ErrorCode::UnexpectedParen, self.whole));
        };
        self.flags = group.saved;
        let inner = alternation(group.alternatives);
        self.push(if group.capture {
            Node::Capture(Box::new(inner))
        } else {
            inner
        });
        Ok(())
    }

    fn current(&mut self) -> &mut Group {
        if self.stack.is_empty() {
            self.open(false);
        }
        let last = self.stack.len() - 1;
        &mut self.stack[last]
    }

    fn sequence(&mut self) -> &mut Vec<Node> {
        let group = self.current();
        if group.alternatives.is_empty() {
            group.alternatives.push(Vec::new());
        }
        let last = group.alternatives.len() - 1;
        &mut group.alternatives[last]
    }

    fn push(&mut self, node: Node) {
        self.sequence().push(node);
    }

    fn literal(&mut self, c: u32) {
        let fold = self.flags.fold;
        self.push(Node::Literal { c, fold });
    }

    fn simple_atom(&self, c: char) -> Node {
        match c {
            '^' if self.flags.multi_line => Node::Assert(Assertion::BeginLine),
            '^' => Node::Assert(Assertion::BeginText),
            '$' if self.flags.multi_line => Node::Assert(Assertion::EndLine),
            '$' => Node::Assert(Assertion::EndText),
            _ => Node::Dot {
                newline: self.flags.dot_newline,
            },
        }
    }

    /// Applies a repetition operator (the text `before` up to `after`) to the last atom.
    fn repeat(
        &mut self,
        before: &'a str,
        after: &'a str,
        min: u32,
        max: Option<u32>,
        counted: bool,
        last_repeat: Option<&'a str>,
    ) -> Result<&'a str, Re2Error> {
        let (after, lazy) = match after.strip_prefix('?') {
            Some(rest) => (rest, true),
            None => (after, false),
        };
        let op_text = &before[..before.len() - after.len()];
        if let Some(previous) = last_repeat {
            let stacked = &previous[..previous.len() - after.len()];
            return Err(syntax(Re2ErrorCode::InvalidRepeatOp, stacked));
        }
        let greedy = lazy == self.flags.non_greedy;
        let Some(sub) = self.sequence().pop() else {
            return Err(syntax(Re2ErrorCode::MissingRepeatArgument, op_text));
        };
        let node = Node::Repeat(Box::new(Repeat {
            sub,
            min,
            max,
            greedy,
            counted,
        }));
        if counted
            && (min >= 2 || max.is_some_and(|m| m >= 2))
            && !repeat_is_valid(&node, MAX_REPEAT)
        {
            return Err(syntax(Re2ErrorCode::InvalidRepeatSize, op_text));
        }
        self.push(node);
        Ok(after)
    }

    /// `(?flags)`, `(?flags:`, `(?P<name>` or `(?<name>` at the start of `s`.
    fn perl_flags(&mut self, s: &'a str) -> Result<&'a str, Re2Error> {
        let named =
            s.len() > 4 && s[2..].starts_with("P<") || s.len() > 3 && s[2..].starts_with('<');
        if named {
            let start = if s[2..].starts_with('P') { 4 } else { 3 };
            let Some(end) = s.find('>') else {
                return Err(syntax(Re2ErrorCode::InvalidNamedCapture, s));
            };
            let name = s.get(start..end).unwrap_or("");
            if name.is_empty() || !name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()) {
                return Err(syntax(Re2ErrorCode::InvalidNamedCapture, &s[..=end]));
            }
            self.open(true);
            return Ok(&s[end + 1..]);
        }
        let mut flags = self.flags;
        let mut negate = false;
        let mut saw_flag = false;
        let mut t = &s[2..];
        while let Some(c) = t.chars().next() {
            t = &t[c.len_utf8()..];
            let on = !negate;
            match c {
                'i' => flags.fold = on,
                'm' => flags.multi_line = on,
                's' => flags.dot_newline = on,
                'U' => flags.non_greedy = on,
                '-' if !negate => {
                    negate = true;
                    saw_flag = false;
                    continue;
                }
                ':' | ')' if !negate || saw_flag => {
                    if c == ':' {
                        self.open(false);
                    }
                    self.flags = flags;
                    return Ok(t);
                }
                _ => break,
            }
            saw_flag = true;
        }
        Err(syntax(Re2ErrorCode::InvalidPerlOp, &s[..s.len() - t.len()]))
    }

    /// A backslash sequence outside a class.
    fn escape(&mut self, t: &'a str) -> Result<&'a str, Re2Error> {
        let assertion = match t.as_bytes().get(1) {
            Some(b'A') => Some(Assertion::BeginText),
            Some(b'z') => Some(Assertion::EndText),
            Some(b'b') => Some(Assertion::WordBoundary),
            Some(b'B') => Some(Assertion::NotWordBoundary),
            _ => None,
        };
        if let Some(a) = assertion {
            self.push(Node::Assert(a));
            return Ok(&t[2..]);
        }
        if t.starts_with("\\C") {
            return Err(syntax(Re2ErrorCode::InvalidEscape, "\\C"));
        }
        if let Some(quoted) = t.strip_prefix("\\Q") {
            let (literal, rest) = quoted.split_once("\\E").unwrap_or((quoted, ""));
            for c in literal.chars() {
                self.literal(u32::from(c));
            }
            return Ok(rest);
        }
        let fold = self.flags.fold;
        if let Some((item, rest)) = unicode_escape(t)? {
            self.push(Node::Class(Class {
                items: vec![item],
                negated: false,
                fold,
            }));
            return Ok(rest);
        }
        if let Some((item, rest)) = perl_class(t) {
            self.push(Node::Class(Class {
                items: vec![item],
                negated: false,
                fold,
            }));
            return Ok(rest);
        }
        let (c, rest) = single_escape(t)?;
        self.literal(c);
        Ok(rest)
    }

    /// A `[...]` class at the start of `s`.
    fn class(&mut self, s: &'a str) -> Result<&'a str, Re2Error> {
        let mut t = &s[1..];
        let negated = t.starts_with('^');
        if negated {
            t = &t[1..];
        }
        let mut items = Vec::new();
        let mut first = true;
        while first || !t.starts_with(']') {
            if t.is_empty() {
                return Err(syntax(Re2ErrorCode::MissingBracket, s));
            }
            first = false;
            if t.starts_with("[:")
                && let Some((item, rest)) = posix_class(t)?
            {
                items.push(item);
                t = rest;
                continue;
            }
            if let Some((item, rest)) = unicode_escape(t)? {
                items.push(item);
                t = rest;
                continue;
            }
            if let Some((item, rest)) = perl_class(t) {
                items.push(item);
                t = rest;
                continue;
            }
            let range_start = t;
            let (lo, rest) = class_char(t, s)?;
            t = rest;
            let mut hi = lo;
            if t.len() >= 2 && t.starts_with('-') && !t[1..].starts_with(']') {
                let (h, rest) = class_char(&t[1..], s)?;
                t = rest;
                hi = h;
                if hi < lo {
                    let text = &range_start[..range_start.len() - t.len()];
                    return Err(syntax(Re2ErrorCode::InvalidCharRange, text));
                }
            }
            items.push(ClassItem::Range(lo, hi));
        }
        let fold = self.flags.fold;
        self.push(Node::Class(Class {
            items,
            negated,
            fold,
        }));
        Ok(&t[1..])
    }
}

/// One character of a class, escaped or not.
fn class_char<'a>(t: &'a str, whole_class: &str) -> Result<(u32, &'a str), Re2Error> {
    match t.chars().next() {
        None => Err(syntax(Re2ErrorCode::MissingBracket, whole_class)),
        Some('\\') => single_escape(t),
        Some(c) => Ok((u32::from(c), &t[c.len_utf8()..])),
    }
}

/// `\d \D \s \S \w \W`, as RE2 defines them (ASCII).
fn perl_class(t: &str) -> Option<(ClassItem, &str)> {
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
fn posix_class(t: &str) -> Result<Option<(ClassItem, &str)>, Re2Error> {
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
fn unicode_escape(t: &str) -> Result<Option<(ClassItem, &str)>, Re2Error> {
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
fn single_escape(t: &str) -> Result<(u32, &str), Re2Error> {
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
