//! Response diffs: JSON structure, numbers, key order, arrays, type changes, text and
//! binary bodies, content decoding, cut bodies, headers and ignore rules.

mod analysis_support;

use std::io::Write;

use analysis_support::*;
use bytes::Bytes;
use mirrorlab::analysis::diff::{
    BodyComparison, DiffError, DiffKind, JsonDifference, LineTag, ResponseDiff, diff_exchange,
    diff_responses,
};
use mirrorlab::analysis::{FieldPath, IgnoreRules};
use mirrorlab::capture::{CapturedBody, SkipReason, UpstreamErrorKind};
use serde_json::json;

fn json_diff(p: &str, s: &str, rules: &IgnoreRules) -> ResponseDiff {
    diff_responses(
        &response(200, p.to_owned(), 1),
        &response(200, s.to_owned(), 1),
        rules,
    )
}

fn json_differences(d: &ResponseDiff) -> &[JsonDifference] {
    match &d.body.comparison {
        BodyComparison::Json { differences } => differences,
        other => panic!("expected a JSON comparison, got {other:?}"),
    }
}

fn kinds(d: &ResponseDiff) -> Vec<(String, DiffKind)> {
    json_differences(d)
        .iter()
        .map(|x| (x.pointer.clone(), x.kind))
        .collect()
}

#[test]
fn nested_objects_report_pointers_and_kinds() {
    let d = json_diff(
        r#"{"user":{"name":"ann","address":{"city":"Oslo","zip":"0150"},"old":true}}"#,
        r#"{"user":{"name":"ann","address":{"city":"Bergen","zip":"0150"},"new":1}}"#,
        &IgnoreRules::none(),
    );
    assert_eq!(
        kinds(&d),
        vec![
            ("/user/address/city".to_owned(), DiffKind::Changed),
            ("/user/old".to_owned(), DiffKind::Removed),
            ("/user/new".to_owned(), DiffKind::Added),
        ]
    );
    let city = &json_differences(&d)[0];
    assert_eq!(city.primary, Some(json!("Oslo")));
    assert_eq!(city.shadow, Some(json!("Bergen")));
    assert!(!d.is_same());
    assert_eq!(d.summary(), "3 fields differ");
}

#[test]
fn key_order_and_number_forms_do_not_differ() {
    let d = json_diff(
        r#"{"a":1,"b":{"x":[1,2],"y":2.50},"c":1e2}"#,
        r#"{"c":100,"b":{"y":2.5,"x":[1.0,2]},"a":1.0}"#,
        &IgnoreRules::none(),
    );
    assert_eq!(json_differences(&d), &[] as &[JsonDifference]);
    assert!(d.is_same());
    assert_eq!(d.summary(), "same");
    // but a different number is a change, and 1 vs "1" is a type change
    let d = json_diff(
        r#"{"a":1,"b":1}"#,
        r#"{"a":1.5,"b":"1"}"#,
        &IgnoreRules::none(),
    );
    assert_eq!(
        kinds(&d),
        vec![
            ("/a".to_owned(), DiffKind::Changed),
            ("/b".to_owned(), DiffKind::TypeChanged)
        ]
    );
}

#[test]
fn changed_elements_compare_in_place_and_fold_indexes_in_field_paths() {
    let d = json_diff(
        r#"{"items":[{"id":1,"price":10},{"id":2,"price":20}]}"#,
        r#"{"items":[{"id":1,"price":11},{"id":2,"price":21},{"id":3,"price":30}]}"#,
        &IgnoreRules::none(),
    );
    assert_eq!(
        kinds(&d),
        vec![
            ("/items/0/price".to_owned(), DiffKind::Changed),
            ("/items/1/price".to_owned(), DiffKind::Changed),
            ("/items/2".to_owned(), DiffKind::Added),
        ]
    );
    assert_eq!(
        d.field_paths(),
        vec![
            FieldPath::Json("/items/*/price".into()),
            FieldPath::Json("/items/*".into())
        ]
    );
}

#[test]
fn an_element_inserted_or_removed_near_the_front_is_one_difference_not_a_shift() {
    let reviews = |ids: &[u32]| {
        let items: Vec<_> = ids
            .iter()
            .map(|id| json!({"reviewer": format!("Reviewer{id}"), "rating": id % 5}))
            .collect();
        json!({ "reviews": items }).to_string()
    };
    // The shadow adds a review at the front: one `added`, at the shadow's index.
    let d = json_diff(
        &reviews(&[1, 2, 3, 4]),
        &reviews(&[9, 1, 2, 3, 4]),
        &IgnoreRules::none(),
    );
    assert_eq!(kinds(&d), vec![("/reviews/0".to_owned(), DiffKind::Added)]);
    assert_eq!(
        json_differences(&d)[0].shadow,
        Some(json!({"reviewer": "Reviewer9", "rating": 4}))
    );
    // It drops the second one: one `removed`, at the primary's index.
    let d = json_diff(
        &reviews(&[1, 2, 3, 4]),
        &reviews(&[1, 3, 4]),
        &IgnoreRules::none(),
    );
    assert_eq!(
        kinds(&d),
        vec![("/reviews/1".to_owned(), DiffKind::Removed)]
    );
    assert_eq!(d.field_paths(), vec![FieldPath::Json("/reviews/*".into())]);
}

#[test]
fn aligned_arrays_still_compare_their_elements_field_by_field() {
    // Drop the first element, change a field of the third, append two: the changed field
    // is reported where it is (primary index 2), not as a whole element.
    let d = json_diff(
        r#"[{"id":1,"n":1},{"id":2,"n":2},{"id":3,"n":3},{"id":4,"n":4}]"#,
        r#"[{"id":2,"n":2},{"id":3,"n":30},{"id":4,"n":4},{"id":5,"n":5},{"id":6,"n":6}]"#,
        &IgnoreRules::none(),
    );
    assert_eq!(
        kinds(&d),
        vec![
            ("/0".to_owned(), DiffKind::Removed),
            ("/2/n".to_owned(), DiffKind::Changed),
            ("/3".to_owned(), DiffKind::Added),
            ("/4".to_owned(), DiffKind::Added),
        ]
    );
    // Numbers by value and keys in any order still count as the same element.
    let d = json_diff(
        r#"[{"a":1,"b":2.0},{"c":3}]"#,
        r#"[0,{"b":2,"a":1.0},{"c":3.0}]"#,
        &IgnoreRules::none(),
    );
    assert_eq!(kinds(&d), vec![("/0".to_owned(), DiffKind::Added)]);
}

#[test]
fn a_reordered_array_is_one_order_changed_difference() {
    // The same values in another order: one difference at the array, not one per element.
    let d = json_diff(r#"[1,2,3]"#, r#"[2,3,1]"#, &IgnoreRules::none());
    assert_eq!(kinds(&d), vec![("".to_owned(), DiffKind::OrderChanged)]);
    let reviews = |order: &[u32]| {
        let items: Vec<_> = order
            .iter()
            .map(|id| json!({"reviewer": format!("Reviewer{id}"), "rating": {"stars": id % 5}}))
            .collect();
        json!({ "id": 7, "reviews": items }).to_string()
    };
    let d = json_diff(
        &reviews(&[1, 2, 3, 4]),
        &reviews(&[4, 1, 3, 2]),
        &IgnoreRules::none(),
    );
    assert_eq!(
        kinds(&d),
        vec![("/reviews".to_owned(), DiffKind::OrderChanged)]
    );
    assert_eq!(d.field_paths(), vec![FieldPath::Json("/reviews".into())]);
    assert_eq!(d.summary(), "1 field differs");
    let order = &json_differences(&d)[0];
    assert_eq!(
        order.primary.as_ref().map(|v| v[0]["reviewer"].clone()),
        Some(json!("Reviewer1"))
    );
    assert_eq!(
        order.shadow.as_ref().map(|v| v[0]["reviewer"].clone()),
        Some(json!("Reviewer4"))
    );
    // Elements equal as the diff sees them (key order, 1 vs 1.0) still make a reordering,
    // and repeated elements must match as often on both sides.
    let d = json_diff(
        r#"[{"a":1,"b":2},{"a":3},{"a":3}]"#,
        r#"[{"a":3.0},{"b":2,"a":1.0},{"a":3}]"#,
        &IgnoreRules::none(),
    );
    assert_eq!(kinds(&d), vec![("".to_owned(), DiffKind::OrderChanged)]);
    let d = json_diff(r#"[1,1,2]"#, r#"[2,1,2]"#, &IgnoreRules::none());
    assert_eq!(kinds(&d), vec![("/0".to_owned(), DiffKind::Changed)]);
    // A reordering nested in elements that are otherwise the same is found where it is.
    let d = json_diff(
        r#"{"items":[{"tags":["a","b"]},{"tags":["c"]}]}"#,
        r#"{"items":[{"tags":["b","a"]},{"tags":["c"]}]}"#,
        &IgnoreRules::none(),
    );
    assert_eq!(
        kinds(&d),
        vec![("/items/0/tags".to_owned(), DiffKind::OrderChanged)]
    );
    assert_eq!(
        d.field_paths(),
        vec![FieldPath::Json("/items/*/tags".into())]
    );
    // An ignore rule on the array covers its order.
    let rules = IgnoreRules::parse("/reviews").expect("valid rule");
    let d = json_diff(&reviews(&[1, 2]), &reviews(&[2, 1]), &rules);
    assert!(d.is_same());
}

#[test]
fn a_real_change_inside_a_reordered_array_is_still_found() {
    // Reordered, and one element changed as well: not a permutation, so the elements are
    // compared in place as before and the changed rating is among the differences.
    let d = json_diff(
        r#"{"reviews":[{"id":1,"stars":5},{"id":2,"stars":4},{"id":3,"stars":3}]}"#,
        r#"{"reviews":[{"id":3,"stars":3},{"id":1,"stars":5},{"id":2,"stars":1}]}"#,
        &IgnoreRules::none(),
    );
    let found = kinds(&d);
    assert!(
        !found.iter().any(|(_, k)| *k == DiffKind::OrderChanged),
        "{found:?}"
    );
    assert!(
        found.contains(&("/reviews/2/stars".to_owned(), DiffKind::Changed)),
        "{found:?}"
    );
    assert_eq!(
        d.field_paths(),
        vec![
            FieldPath::Json("/reviews/*/id".into()),
            FieldPath::Json("/reviews/*/stars".into())
        ]
    );
    // Changed in place without reordering: exactly that element.
    let d = json_diff(
        r#"{"reviews":[{"id":1,"stars":5},{"id":2,"stars":4}]}"#,
        r#"{"reviews":[{"id":1,"stars":5},{"id":2,"stars":1}]}"#,
        &IgnoreRules::none(),
    );
    assert_eq!(
        kinds(&d),
        vec![("/reviews/1/stars".to_owned(), DiffKind::Changed)]
    );
}

#[test]
fn a_long_array_with_one_insertion_gives_one_difference() {
    let primary: Vec<u32> = (0..20_000).collect();
    let mut shadow = primary.clone();
    shadow.insert(10, 99_999);
    let d = json_diff(
        &json!(primary).to_string(),
        &json!(shadow).to_string(),
        &IgnoreRules::none(),
    );
    assert_eq!(kinds(&d), vec![("/10".to_owned(), DiffKind::Added)]);
}

#[test]
fn type_changes_at_any_level_including_the_root() {
    let d = json_diff(
        r#"{"a":{"b":1},"c":[1],"d":null,"e":true}"#,
        r#"{"a":[1],"c":{"0":1},"d":0,"e":"true"}"#,
        &IgnoreRules::none(),
    );
    assert!(
        kinds(&d).iter().all(|(_, k)| *k == DiffKind::TypeChanged),
        "{:?}",
        kinds(&d)
    );
    assert_eq!(kinds(&d).len(), 4);
    let root = json_diff("[1,2]", r#"{"a":1}"#, &IgnoreRules::none());
    assert_eq!(kinds(&root), vec![(String::new(), DiffKind::TypeChanged)]);
    assert_eq!(root.field_paths(), vec![FieldPath::Body]);
}

#[test]
fn pointer_tokens_are_escaped() {
    let d = json_diff(
        r#"{"a/b":{"m~n":1}}"#,
        r#"{"a/b":{"m~n":2}}"#,
        &IgnoreRules::none(),
    );
    assert_eq!(
        kinds(&d),
        vec![("/a~1b/m~0n".to_owned(), DiffKind::Changed)]
    );
}

#[test]
fn ignore_rules_mark_json_paths_and_headers() {
    let rules =
        IgnoreRules::parse("/meta, /items/*/updatedAt, header:x-trace").expect("valid rules");
    let p = response_with(
        200,
        &[
            ("content-type", "application/json"),
            ("x-trace", "a"),
            ("x-version", "1"),
        ],
        body(r#"{"meta":{"ts":1},"items":[{"updatedAt":1,"v":1}],"v":1}"#),
        1,
    );
    let s = response_with(
        200,
        &[
            ("content-type", "application/json"),
            ("x-trace", "b"),
            ("x-version", "2"),
        ],
        body(r#"{"meta":{"ts":2},"items":[{"updatedAt":2,"v":1}],"v":1}"#),
        1,
    );
    let d = diff_responses(&p, &s, &rules);
    let ignored: Vec<(String, bool)> = json_differences(&d)
        .iter()
        .map(|x| (x.pointer.clone(), x.ignored))
        .collect();
    assert_eq!(
        ignored,
        vec![
            ("/items/0/updatedAt".to_owned(), true),
            ("/meta/ts".to_owned(), true)
        ]
    );
    assert!(d.headers.iter().any(|h| h.name == "x-trace" && h.ignored));
    assert!(
        d.headers
            .iter()
            .any(|h| h.name == "x-version" && !h.ignored)
    );
    assert_eq!(d.field_paths(), vec![FieldPath::Header("x-version".into())]);
    assert_eq!(d.summary(), "1 field differs");
}

#[test]
fn default_header_list_and_content_length() {
    let rules = IgnoreRules::with_default_headers();
    let p = response_with(
        200,
        &[
            ("date", "Mon"),
            ("content-length", "2"),
            ("server", "v1"),
            ("set-cookie", "s=1"),
        ],
        body("ab"),
        1,
    );
    let s = response_with(
        200,
        &[
            ("date", "Tue"),
            ("content-length", "3"),
            ("server", "v2"),
            ("set-cookie", "s=2"),
        ],
        body("abc"),
        1,
    );
    let d = diff_responses(&p, &s, &rules);
    let by_name = |n: &str| d.headers.iter().find(|h| h.name == n).expect(n);
    assert!(by_name("date").ignored);
    assert!(by_name("set-cookie").ignored);
    assert!(
        by_name("content-length").ignored,
        "implied by the body difference"
    );
    assert!(!by_name("server").ignored);
    assert_eq!(by_name("server").kind, DiffKind::Changed);
    // same body, different content-length: that one is real
    let s2 = response_with(200, &[("content-length", "9")], body("ab"), 1);
    let p2 = response_with(200, &[("content-length", "2")], body("ab"), 1);
    let d2 = diff_responses(&p2, &s2, &rules);
    assert_eq!(
        d2.field_paths(),
        vec![FieldPath::Header("content-length".into())]
    );
}

#[test]
fn header_differences_come_sorted_by_name_and_repeated_values_count() {
    let rules = IgnoreRules::default();
    // `headers()` appends, so a name given twice has two values.
    let p = response_with(
        200,
        &[
            ("x-b", "1"),
            ("vary", "accept"),
            ("vary", "origin"),
            ("x-only-primary", "p"),
            ("x-a", "same"),
        ],
        body("ab"),
        1,
    );
    let s = response_with(
        200,
        &[
            ("x-only-shadow", "s"),
            ("x-a", "same"),
            ("vary", "accept"),
            ("vary", "origin"),
            ("x-b", "2"),
        ],
        body("ab"),
        1,
    );
    let d = diff_responses(&p, &s, &rules);
    let found: Vec<(&str, DiffKind)> = d
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.kind))
        .collect();
    assert_eq!(
        found,
        vec![
            ("x-b", DiffKind::Changed),
            ("x-only-primary", DiffKind::Removed),
            ("x-only-shadow", DiffKind::Added),
        ]
    );
    // The same values in another order are a difference.
    let s2 = response_with(
        200,
        &[("vary", "origin"), ("vary", "accept")],
        body("ab"),
        1,
    );
    let p2 = response_with(
        200,
        &[("vary", "accept"), ("vary", "origin")],
        body("ab"),
        1,
    );
    let d2 = diff_responses(&p2, &s2, &rules);
    assert_eq!(d2.headers.len(), 1);
    assert_eq!(d2.headers[0].primary, vec!["accept", "origin"]);
    assert_eq!(d2.headers[0].shadow, vec!["origin", "accept"]);
}

#[test]
fn status_difference_is_summarised() {
    let d = diff_responses(
        &response(200, "{}", 1),
        &response(500, r#"{"e":1}"#, 1),
        &IgnoreRules::none(),
    );
    assert_eq!(d.status.map(|s| (s.primary, s.shadow)), Some((200, 500)));
    assert_eq!(d.summary(), "status 200→500, 1 more differs");
    let d = diff_responses(
        &response(200, "{}", 1),
        &response(503, "{}", 1),
        &IgnoreRules::none(),
    );
    assert_eq!(d.summary(), "status 200→503");
    let ignore_status = IgnoreRules::parse("status").expect("valid");
    assert!(
        diff_responses(
            &response(200, "{}", 1),
            &response(503, "{}", 1),
            &ignore_status
        )
        .is_same()
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip in memory");
    e.finish().expect("gzip in memory")
}

fn brotli_bytes(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).expect("brotli in memory");
    }
    out
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("deflate in memory");
    e.finish().expect("deflate in memory")
}

#[test]
fn compressed_bodies_are_decoded_first() {
    let plain = r#"{"a":1,"b":"x"}"#;
    let changed = r#"{"b":"y","a":1}"#;
    let p = response_with(
        200,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        body(gzip(plain.as_bytes())),
        1,
    );
    // the shadow uses another encoding: still compared as JSON
    let s = response_with(
        200,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "br"),
        ],
        body(brotli_bytes(changed.as_bytes())),
        1,
    );
    let d = diff_responses(&p, &s, &IgnoreRules::with_default_headers());
    assert_eq!(kinds(&d), vec![("/b".to_owned(), DiffKind::Changed)]);
    assert_eq!(d.body.primary_encoding.as_deref(), Some("gzip"));
    assert_eq!(d.body.shadow_encoding.as_deref(), Some("br"));
    assert!(d.body.decode_errors.is_empty());
    // content-encoding itself differs and is reported as a header difference
    assert!(
        d.headers
            .iter()
            .any(|h| h.name == "content-encoding" && !h.ignored)
    );

    let s = response_with(
        200,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "deflate"),
        ],
        body(deflate(plain.as_bytes())),
        1,
    );
    assert!(
        diff_responses(
            &p,
            &s,
            &IgnoreRules::parse("header:content-encoding").expect("ok")
        )
        .is_same()
    );
}

#[test]
fn undecodable_body_is_compared_raw_and_says_so() {
    let p = response_with(
        200,
        &[("content-encoding", "gzip")],
        body("not gzip at all"),
        1,
    );
    let s = response_with(
        200,
        &[("content-encoding", "gzip")],
        body("not gzip either"),
        1,
    );
    let d = diff_responses(&p, &s, &IgnoreRules::none());
    assert_eq!(d.body.decode_errors.len(), 2, "{:?}", d.body.decode_errors);
    assert!(d.body.decode_errors[0].contains("primary"));
    assert!(matches!(d.body.comparison, BodyComparison::Text(_)));
}

fn cut(bytes: &[u8], keep: usize) -> CapturedBody {
    CapturedBody {
        bytes: Bytes::copy_from_slice(&bytes[..keep]),
        total_len: bytes.len() as u64,
        truncated: true,
    }
}

#[test]
fn cut_bodies_compare_as_far_as_both_go() {
    let long = format!(r#"{{"items":[{}]}}"#, vec![r#"{"id":1}"#; 100].join(","));
    let other_tail = long.replacen(r#"{"id":1}]"#, r#"{"id":2}]"#, 1);
    // both cut at 200 bytes: the difference near the end is beyond the cut
    let p = response_with(
        200,
        &[("content-type", "application/json")],
        cut(long.as_bytes(), 200),
        1,
    );
    let s = response_with(
        200,
        &[("content-type", "application/json")],
        cut(other_tail.as_bytes(), 300),
        1,
    );
    let d = diff_responses(&p, &s, &IgnoreRules::none());
    assert!(d.body.truncated);
    assert_eq!(d.body.compared_bytes, Some(200));
    assert_eq!(d.body.comparison, BodyComparison::Identical);
    assert!(d.is_same());

    // a difference before the cut is found, by line/text since cut JSON does not parse
    let early = long.replacen(r#"{"id":1}"#, r#"{"id":7}"#, 1);
    let s = response_with(
        200,
        &[("content-type", "application/json")],
        cut(early.as_bytes(), 250),
        1,
    );
    let d = diff_responses(&p, &s, &IgnoreRules::none());
    assert!(d.body.truncated);
    assert_eq!(d.body.compared_bytes, Some(200));
    assert!(
        matches!(d.body.comparison, BodyComparison::Text(_)),
        "{:?}",
        d.body.comparison
    );
    assert_eq!(d.field_paths(), vec![FieldPath::Body]);

    // a gzip body cut at the cap is decoded as far as it goes
    let big: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    let gz = gzip(big.as_bytes());
    let p = response_with(
        200,
        &[("content-encoding", "gzip")],
        cut(&gz, gz.len() / 2),
        1,
    );
    let s = response_with(200, &[], body(big.clone()), 1);
    let d = diff_responses(&p, &s, &IgnoreRules::none());
    assert!(d.body.truncated);
    assert!(
        d.body.decode_errors.is_empty(),
        "{:?}",
        d.body.decode_errors
    );
    assert!(
        d.body.compared_bytes.is_some_and(|n| n > 1000),
        "{:?}",
        d.body.compared_bytes
    );
    assert_eq!(d.body.comparison, BodyComparison::Identical);
}

#[test]
fn text_bodies_diff_by_line() {
    let p = response_with(
        200,
        &[("content-type", "text/plain")],
        body("a\nb\nc\nd\ne\nf\ng\nh\n"),
        1,
    );
    let s = response_with(
        200,
        &[("content-type", "text/plain")],
        body("a\nb\nc\nD\ne\nf\ng\nh\ni\n"),
        1,
    );
    let d = diff_responses(&p, &s, &IgnoreRules::none());
    let BodyComparison::Text(t) = &d.body.comparison else {
        panic!("expected text, got {:?}", d.body.comparison)
    };
    assert_eq!((t.added, t.removed), (2, 1));
    let changed: Vec<(LineTag, &str)> = t
        .lines
        .iter()
        .flatten()
        .filter(|l| l.tag != LineTag::Equal)
        .map(|l| (l.tag, l.text.as_str()))
        .collect();
    assert_eq!(
        changed,
        vec![
            (LineTag::Removed, "d"),
            (LineTag::Added, "D"),
            (LineTag::Added, "i")
        ]
    );
    let removed = t
        .lines
        .iter()
        .flatten()
        .find(|l| l.tag == LineTag::Removed)
        .expect("a removed line");
    assert_eq!(removed.primary_line, Some(4));
    // ignoring whole bodies
    assert!(diff_responses(&p, &s, &IgnoreRules::parse("body").expect("ok")).is_same());
}

#[test]
fn binary_bodies_by_length_and_hash() {
    let p = response_with(
        200,
        &[("content-type", "image/png")],
        body(vec![0u8, 1, 2, 3]),
        1,
    );
    let s = response_with(
        200,
        &[("content-type", "image/png")],
        body(vec![0u8, 1, 2, 3, 4]),
        1,
    );
    let d = diff_responses(&p, &s, &IgnoreRules::none());
    let BodyComparison::Binary(b) = &d.body.comparison else {
        panic!("expected binary, got {:?}", d.body.comparison)
    };
    assert_eq!((b.primary_len, b.shadow_len), (4, 5));
    assert_eq!(
        b.primary_sha256,
        "054edec1d0211f624fed0cbca9d4f9400b0e491c43742af2c5b0abebf0c990d8"
    );
    assert_ne!(b.primary_sha256, b.shadow_sha256);
}

#[test]
fn diff_exchange_explains_what_cannot_be_compared() {
    let e = exchange(
        9,
        T0,
        "/reviews/1",
        ok(response(200, r#"{"a":1}"#, 1)),
        vec![
            sent("reviews/v2", response(200, r#"{"a":2}"#, 1)),
            skipped("reviews/v3", SkipReason::BodyTooLarge),
            sent_failed("reviews/v4", UpstreamErrorKind::Timeout),
        ],
    );
    let d = diff_exchange(&e, 0, &IgnoreRules::none()).expect("both answered");
    assert_eq!(kinds(&d), vec![("/a".to_owned(), DiffKind::Changed)]);
    let skipped_err = diff_exchange(&e, 1, &IgnoreRules::none()).expect_err("not sent");
    assert!(
        skipped_err.to_string().contains("body_too_large"),
        "{skipped_err}"
    );
    let failed = diff_exchange(&e, 2, &IgnoreRules::none()).expect_err("failed");
    assert!(failed.to_string().contains("reviews/v4") && failed.to_string().contains("timeout"));
    assert!(matches!(
        diff_exchange(&e, 5, &IgnoreRules::none()),
        Err(DiffError::NoSuchShadow { count: 3, .. })
    ));
}
