//! A parser for RE2 syntax that accepts and refuses what Go's `regexp/syntax` does (with
//! `syntax.Perl` flags, as `regexp.Compile` uses), reporting Go's error codes. It builds a
//! small tree with every flag already applied to the atoms it governs.

use std::fmt;

use super::Re2Error;
use super::escape::{class_char, perl_class, posix_class, single_escape, unicode_escape};
use super::unicode::UnicodeClass;

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

pub(super) fn syntax(code: Re2ErrorCode, expr: &str) -> Re2Error {
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
