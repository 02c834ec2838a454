//! Writes a parsed RE2 regex in the `regex` crate's syntax, in a form whose meaning the two
//! engines agree on: literals escaped, ASCII sets spelled out, each flag on the atom it
//! governs, and what can never match in UTF-8 text (surrogates) as an empty class.

use std::fmt::Write;

use super::parse::{Assertion, Class, ClassItem, Node, Repeat};
use super::unicode::UnicodeClass;

/// A class that matches nothing.
const NOTHING: &str = r"[^\x{0}-\x{10FFFF}]";
/// Every code point, inside a class.
const EVERYTHING: &str = r"\x{0}-\x{10FFFF}";

/// The `regex` crate pattern for `node`.
pub(super) fn pattern(node: &Node) -> String {
    let mut out = String::new();
    write_node(node, &mut out);
    out
}

fn write_node(node: &Node, out: &mut String) {
    match node {
        Node::Empty => out.push_str("(?:)"),
        Node::Literal { c, fold } => match char::from_u32(*c) {
            None => out.push_str(NOTHING),
            Some(c) if *fold => {
                out.push_str("(?i:");
                push_char(c, out);
                out.push(')');
            }
            Some(c) => push_char(c, out),
        },
        Node::Class(class) => write_class(class, out),
        Node::Dot { newline: true } => out.push_str("(?s:.)"),
        Node::Dot { newline: false } => out.push_str(r"[^\x{A}]"),
        Node::Assert(a) => out.push_str(match a {
            Assertion::BeginText => r"\A",
            Assertion::EndText => r"\z",
            Assertion::BeginLine => "(?m:^)",
            Assertion::EndLine => "(?m:$)",
            // RE2's word boundaries are ASCII.
            Assertion::WordBoundary => r"(?-u:\b)",
            Assertion::NotWordBoundary => r"(?-u:\B)",
        }),
        Node::Capture(sub) => {
            out.push('(');
            write_node(sub, out);
            out.push(')');
        }
        Node::Repeat(r) => write_repeat(r, out),
        Node::Concat(items) => items.iter().for_each(|item| write_node(item, out)),
        Node::Alternate(items) => {
            out.push_str("(?:");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                write_node(item, out);
            }
            out.push(')');
        }
    }
}

fn write_repeat(r: &Repeat, out: &mut String) {
    out.push_str("(?:");
    write_node(&r.sub, out);
    out.push(')');
    match (r.counted, r.min, r.max) {
        (false, 0, None) => out.push('*'),
        (false, 1, None) => out.push('+'),
        (false, _, _) => out.push('?'),
        (true, min, None) => {
            let _ = write!(out, "{{{min},}}");
        }
        (true, min, Some(max)) if min == max => {
            let _ = write!(out, "{{{min}}}");
        }
        (true, min, Some(max)) => {
            let _ = write!(out, "{{{min},{max}}}");
        }
    }
    if !r.greedy {
        out.push('?');
    }
}

/// A literal character: letters and digits as they are, everything else as a hex escape,
/// which means the same in both syntaxes wherever it stands.
fn push_char(c: char, out: &mut String) {
    if c.is_ascii_alphanumeric() {
        out.push(c);
    } else {
        let _ = write!(out, r"\x{{{:X}}}", u32::from(c));
    }
}

fn write_class(class: &Class, out: &mut String) {
    let mut body = String::new();
    for item in &class.items {
        write_item(item, &mut body);
    }
    let text = match (body.is_empty(), class.negated) {
        (true, false) => NOTHING.to_owned(),
        (true, true) => format!("[{EVERYTHING}]"),
        (false, negated) => format!("[{}{body}]", if negated { "^" } else { "" }),
    };
    if class.fold {
        let _ = write!(out, "(?i:{text})");
    } else {
        out.push_str(&text);
    }
}

fn write_item(item: &ClassItem, out: &mut String) {
    match item {
        ClassItem::Range(lo, hi) => write_range(*lo, *hi, out),
        ClassItem::Ascii(set, negated) => {
            let mut ranges = String::new();
            for (lo, hi) in *set {
                write_range(u32::from(*lo), u32::from(*hi), &mut ranges);
            }
            if *negated {
                let _ = write!(out, "[^{ranges}]");
            } else {
                out.push_str(&ranges);
            }
        }
        ClassItem::Unicode(class, negated) => write_unicode(class, *negated, out),
    }
}

fn write_unicode(class: &UnicodeClass, negated: bool, out: &mut String) {
    let p = if negated { 'P' } else { 'p' };
    match (class, negated) {
        (UnicodeClass::Any, false) | (UnicodeClass::Surrogate, true) => out.push_str(EVERYTHING),
        (UnicodeClass::Any, true) | (UnicodeClass::Surrogate, false) => {}
        (UnicodeClass::Ascii, false) => out.push_str(r"\x{0}-\x{7F}"),
        (UnicodeClass::Ascii, true) => out.push_str(r"[^\x{0}-\x{7F}]"),
        (UnicodeClass::Assigned, false) => out.push_str(r"\P{gc=Cn}"),
        (UnicodeClass::Assigned, true) => out.push_str(r"\p{gc=Cn}"),
        (UnicodeClass::Category(name), _) => {
            let _ = write!(out, r"\{p}{{gc={name}}}");
        }
        (UnicodeClass::Script(name), _) => {
            let _ = write!(out, r"\{p}{{sc={name}}}");
        }
    }
}

/// A code point range, without the surrogates no `char` can be.
fn write_range(lo: u32, hi: u32, out: &mut String) {
    const SURROGATES: std::ops::RangeInclusive<u32> = 0xD800..=0xDFFF;
    if lo <= *SURROGATES.end() && hi >= *SURROGATES.start() {
        if lo < *SURROGATES.start() {
            write_range(lo, SURROGATES.start() - 1, out);
        }
        if hi > *SURROGATES.end() {
            write_range(SURROGATES.end() + 1, hi, out);
        }
        return;
    }
    if lo == hi {
        let _ = write!(out, r"\x{{{lo:X}}}");
    } else {
        let _ = write!(out, r"\x{{{lo:X}}}-\x{{{hi:X}}}");
    }
}
