//! `\p{Name}` classes: which names Go's `regexp/syntax` knows.
//!
//! Go (1.25 and later) accepts a general category (`L`, `Lu`, `LC`, `Cn`), a category alias
//! (`Letter`, `Uppercase_Letter`, `digit`), a script (`Greek`, `Old_Italic`), or `Any`,
//! `ASCII`, `Assigned`, matching the name loosely: case, spaces, underscores and hyphens do
//! not count. It knows no other Unicode property (`\p{Emoji}`, `\p{White_Space}`), no
//! `gc=`/`sc=` prefixes, no `Is` prefix and no four-letter script codes (`Grek`), all of which
//! the `regex` crate accepts; those are refused here as Go refuses them.

use regex::Regex;

/// A Unicode class the lab can hand to the `regex` crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::config::re2) enum UnicodeClass {
    /// Every code point.
    Any,
    /// U+0000 to U+007F.
    Ascii,
    /// Every assigned code point (not `Cn`).
    Assigned,
    /// `Cs`: surrogates, which no UTF-8 text contains.
    Surrogate,
    /// A general category or one of its aliases, as written.
    Category(String),
    /// A script, as written.
    Script(String),
}

/// Script names that are four letters long, like the script codes Go does not accept.
const FOUR_LETTER_SCRIPTS: [&str; 8] = [
    "cham", "kawi", "lisu", "miao", "modi", "newa", "thai", "toto",
];

/// The class `name` stands for, if Go knows it.
pub(in crate::config::re2) fn unicode_class(name: &str) -> Option<UnicodeClass> {
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' '))
    {
        return None;
    }
    let canonical: String = name
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    match canonical.as_str() {
        "" => return None,
        "any" => return Some(UnicodeClass::Any),
        "ascii" => return Some(UnicodeClass::Ascii),
        "assigned" => return Some(UnicodeClass::Assigned),
        "cs" | "surrogate" => return Some(UnicodeClass::Surrogate),
        _ => {}
    }
    // The `regex` crate's loose matching also drops a leading "is"; Go's does not.
    if canonical.starts_with("is") {
        return None;
    }
    if Regex::new(&format!(r"\p{{gc={name}}}")).is_ok() {
        return Some(UnicodeClass::Category(name.to_owned()));
    }
    if canonical.len() == 4 && !FOUR_LETTER_SCRIPTS.contains(&canonical.as_str()) {
        return None;
    }
    Regex::new(&format!(r"\p{{sc={name}}}"))
        .is_ok()
        .then(|| UnicodeClass::Script(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_go_knows() {
        for known in [
            "L",
            "Lu",
            "Nd",
            "LC",
            "Cn",
            "Letter",
            "Uppercase_Letter",
            "uppercase letter",
            "digit",
            "Greek",
            "greek",
            "Old_Italic",
            "Han",
            "Thai",
            "Any",
            "ASCII",
            "Assigned",
            "Cs",
        ] {
            assert!(unicode_class(known).is_some(), "{known}");
        }
        for unknown in [
            "",
            "Emoji",
            "White_Space",
            "Alphabetic",
            "gc=L",
            "sc:Greek",
            "IsGreek",
            "Grek",
            "Latn",
            "L&",
            "Klingon",
        ] {
            assert!(unicode_class(unknown).is_none(), "{unknown}");
        }
    }
}
