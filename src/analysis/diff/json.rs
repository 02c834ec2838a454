//! The structural comparison of two JSON documents: objects by key whatever their order,
//! numbers by value, arrays element by element (aligned first when their lengths differ).

use serde_json::Value;

use super::{DiffKind, JsonDifference};
use crate::analysis::ignore::{FieldPath, IgnoreRules};

/// JSON type name used in type-change reports.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Numbers compare by value: `1` equals `1.0`; integers compare exactly.
fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Appends one RFC 6901 reference token (`~` → `~0`, `/` → `~1`).
fn push_token(path: &mut String, token: &str) {
    path.push('/');
    for c in token.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

fn push_difference(
    kind: DiffKind,
    primary: Option<&Value>,
    shadow: Option<&Value>,
    pointer: &str,
    field: &str,
    rules: &IgnoreRules,
    out: &mut Vec<JsonDifference>,
) {
    let ignored = if pointer.is_empty() {
        rules.ignores(&FieldPath::Body)
    } else {
        rules.json_paths.iter().any(|p| p.matches(pointer))
    };
    out.push(JsonDifference {
        pointer: pointer.to_owned(),
        field: field.to_owned(),
        kind,
        primary: primary.cloned(),
        shadow: shadow.cloned(),
        ignored,
    });
}

/// How long aligning two arrays may take before the alignment settles for a coarser,
/// still correct, match (`similar`'s deadline).
const ARRAY_ALIGN_BUDGET: std::time::Duration = std::time::Duration::from_millis(20);

/// One array element against its counterpart, given with their indexes. The pointer takes
/// the primary's index, or the shadow's for an element only the shadow has.
fn diff_element(
    primary: Option<(usize, &Value)>,
    shadow: Option<(usize, &Value)>,
    pointer: &mut String,
    field: &mut String,
    rules: &IgnoreRules,
    out: &mut Vec<JsonDifference>,
) {
    let Some(index) = primary.or(shadow).map(|(i, _)| i) else {
        return;
    };
    let (pl, fl) = (pointer.len(), field.len());
    pointer.push('/');
    pointer.push_str(&index.to_string());
    field.push_str("/*");
    diff_present(
        primary.map(|(_, v)| v),
        shadow.map(|(_, v)| v),
        pointer,
        field,
        rules,
        out,
    );
    pointer.truncate(pl);
    field.truncate(fl);
}

/// Arrays of different lengths: the elements are aligned first (Myers, on a hash of each
/// element's value), so an element inserted or removed near the front is reported once
/// instead of shifting every element after it into a difference. Aligned elements are
/// still compared structurally (a hash collision cannot hide a difference); within a run
/// replaced by another run, elements pair by position and the longer run's extras are
/// added or removed.
fn diff_aligned(
    pa: &[Value],
    sa: &[Value],
    pointer: &mut String,
    field: &mut String,
    rules: &IgnoreRules,
    out: &mut Vec<JsonDifference>,
) {
    let (ph, sh): (Vec<u64>, Vec<u64>) = (
        pa.iter().map(value_hash).collect(),
        sa.iter().map(value_hash).collect(),
    );
    let deadline = std::time::Instant::now() + ARRAY_ALIGN_BUDGET;
    let ops =
        similar::capture_diff_slices_deadline(similar::Algorithm::Myers, &ph, &sh, Some(deadline));
    for op in ops {
        // Equal runs pair element by element; a delete or insert has an empty other side.
        let (old_range, new_range) = (op.old_range(), op.new_range());
        let (old_index, old_len) = (old_range.start, old_range.len());
        let (new_index, new_len) = (new_range.start, new_range.len());
        for k in 0..old_len.max(new_len) {
            let primary = (k < old_len).then(|| (old_index + k, &pa[old_index + k]));
            let shadow = (k < new_len).then(|| (new_index + k, &sa[new_index + k]));
            diff_element(primary, shadow, pointer, field, rules, out);
        }
    }
}

/// Arrays of the same length: element by element, as a shadow of the same API nearly
/// always changes elements in place. When the elements that differ are the same values
/// in another order (their hashes are a permutation, and each pair so matched is equal),
/// the array is one `order_changed` difference instead of a change in every element.
///
/// Only the elements that differ in place are hashed, and only when there are two or more
/// of them (one element cannot be a reordering): an array changed in place, the common
/// case, costs no hashing at all.
fn diff_same_length(
    p: &Value,
    s: &Value,
    pointer: &mut String,
    field: &mut String,
    rules: &IgnoreRules,
    out: &mut Vec<JsonDifference>,
) {
    let (Value::Array(pa), Value::Array(sa)) = (p, s) else {
        return; // called for two arrays only
    };
    let start = out.len();
    // The first element that differs is kept aside, so that an array with one changed
    // element (which cannot be a reordering) allocates nothing.
    let (mut first, mut moved): (Option<usize>, Vec<usize>) = (None, Vec::new());
    for (i, (pv, sv)) in pa.iter().zip(sa).enumerate() {
        let before = out.len();
        diff_element(Some((i, pv)), Some((i, sv)), pointer, field, rules, out);
        if out.len() > before {
            match first {
                None => first = Some(i),
                Some(f) => {
                    if moved.is_empty() {
                        moved.push(f);
                    }
                    moved.push(i);
                }
            }
        }
    }
    if moved.len() >= 2 && is_permutation(pa, sa, &moved) {
        out.truncate(start);
        push_difference(
            DiffKind::OrderChanged,
            Some(p),
            Some(s),
            pointer,
            field,
            rules,
            out,
        );
    }
}

/// True when the elements at `at` of `pa` are those of `sa` in some order: their hashes
/// sorted are the same, and every pair the sort lines up is equal as the diff sees it (a
/// hash collision cannot hide a difference).
fn is_permutation(pa: &[Value], sa: &[Value], at: &[usize]) -> bool {
    let hashed = |values: &[Value]| {
        let mut h: Vec<(u64, usize)> = at
            .iter()
            .filter_map(|&i| values.get(i).map(|v| (value_hash(v), i)))
            .collect();
        h.sort_unstable();
        h
    };
    let (ph, sh) = (hashed(pa), hashed(sa));
    ph.len() == sh.len()
        && ph.iter().zip(&sh).all(|((a, i), (b, j))| {
            a == b
                && match (pa.get(*i), sa.get(*j)) {
                    (Some(x), Some(y)) => json_equal(x, y),
                    _ => false,
                }
        })
}

/// Equality as the diff sees it: numbers by value, objects whatever their key order.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => numbers_equal(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, xv)| y.get(k).is_some_and(|yv| json_equal(xv, yv)))
        }
        _ => a == b,
    }
}

/// A hash of a JSON value that agrees with the diff's equality: numbers by value (`1` and
/// `1.0` hash alike), objects whatever their key order.
fn value_hash(value: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    match value {
        Value::Null => 0u8.hash(&mut hasher),
        Value::Bool(b) => (1u8, b).hash(&mut hasher),
        Value::Number(n) => match n.as_f64() {
            Some(f) => (2u8, f.to_bits()).hash(&mut hasher),
            None => (2u8, n.to_string()).hash(&mut hasher),
        },
        Value::String(text) => (3u8, text).hash(&mut hasher),
        Value::Array(items) => {
            4u8.hash(&mut hasher);
            for item in items {
                value_hash(item).hash(&mut hasher);
            }
        }
        Value::Object(map) => {
            // Summed per entry, so the order the map keeps its keys in does not matter.
            let entries = map.iter().fold(0u64, |sum, (key, item)| {
                let mut entry = std::collections::hash_map::DefaultHasher::new();
                (key, value_hash(item)).hash(&mut entry);
                sum.wrapping_add(entry.finish())
            });
            (5u8, map.len(), entries).hash(&mut hasher);
        }
    }
    hasher.finish()
}

/// The values at the current place, either of which may be missing: compared when both
/// sides have one, else the one there is was removed or added.
fn diff_present(
    primary: Option<&Value>,
    shadow: Option<&Value>,
    pointer: &mut String,
    field: &mut String,
    rules: &IgnoreRules,
    out: &mut Vec<JsonDifference>,
) {
    match (primary, shadow) {
        (Some(p), Some(s)) => diff_json(p, s, pointer, field, rules, out),
        (Some(p), None) => {
            push_difference(DiffKind::Removed, Some(p), None, pointer, field, rules, out);
        }
        (None, Some(s)) => {
            push_difference(DiffKind::Added, None, Some(s), pointer, field, rules, out)
        }
        (None, None) => {}
    }
}

/// Structural diff; `pointer` and `field` are the current place, restored on return.
pub(super) fn diff_json(
    p: &Value,
    s: &Value,
    pointer: &mut String,
    field: &mut String,
    rules: &IgnoreRules,
    out: &mut Vec<JsonDifference>,
) {
    match (p, s) {
        (Value::Object(po), Value::Object(so)) => {
            for (k, pv) in po {
                diff_key(k, Some(pv), so.get(k), pointer, field, rules, out);
            }
            for (k, sv) in so.iter().filter(|(k, _)| !po.contains_key(*k)) {
                diff_key(k, None, Some(sv), pointer, field, rules, out);
            }
        }
        (Value::Array(pa), Value::Array(sa)) if pa.len() == sa.len() => {
            diff_same_length(p, s, pointer, field, rules, out);
        }
        (Value::Array(pa), Value::Array(sa)) => diff_aligned(pa, sa, pointer, field, rules, out),
        _ => {
            let kind = match (p, s) {
                (Value::Number(a), Value::Number(b)) => {
                    (!numbers_equal(a, b)).then_some(DiffKind::Changed)
                }
                _ if type_name(p) != type_name(s) => Some(DiffKind::TypeChanged),
                _ => (p != s).then_some(DiffKind::Changed),
            };
            if let Some(kind) = kind {
                push_difference(kind, Some(p), Some(s), pointer, field, rules, out);
            }
        }
    }
}

/// The values at key `k` of two objects, either of which may lack it.
fn diff_key(
    k: &str,
    primary: Option<&Value>,
    shadow: Option<&Value>,
    pointer: &mut String,
    field: &mut String,
    rules: &IgnoreRules,
    out: &mut Vec<JsonDifference>,
) {
    let (pl, fl) = (pointer.len(), field.len());
    push_token(pointer, k);
    push_token(field, k);
    diff_present(primary, shadow, pointer, field, rules, out);
    pointer.truncate(pl);
    field.truncate(fl);
}
