//! Property tests over bad config: YAML loading, checking, write-back and route matching must
//! never panic, whatever the text, and what they report must be usable (diagnostics point at
//! real lines; a config without errors compiles; a written-back config reloads the same).
//!
//! Three generators, from raw to structured: arbitrary text, the sample configs mutated byte
//! by byte with YAML-significant characters, and Istio-shaped documents whose leaves are
//! sometimes of the wrong type or out of range. Case counts come from `PROPTEST_CASES`
//! (default 256 here); docs/RELIABILITY.md records the long run.

use std::collections::BTreeMap;
use std::path::PathBuf;

use http::{HeaderMap, HeaderName, HeaderValue};
use mirrorlab::config::{ConfigSet, Severity, parse_duration};
use mirrorlab::routing::{RequestHead, RouteTable, StringMatcher};
use proptest::prelude::*;
use serde_json::{Value, json};

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        // Shrinking a YAML text can take long; a failure is printed with its input anyway.
        max_shrink_iters: 2_000,
        // Failures found so far are pinned as plain tests below instead of a regressions
        // file, so they read as what they are.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn samples() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample-configs");
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("sample-configs is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    for p in paths {
        let text = std::fs::read_to_string(&p).expect("sample config is UTF-8");
        out.push((p.display().to_string(), text));
    }
    assert!(!out.is_empty(), "no sample configs in {}", dir.display());
    out
}

/// Everything a user can make the config layer do with one text: load, check, recheck,
/// compile, write back, look up lines. Returns the set for further checks.
fn exercise(name: &str, text: &str) -> ConfigSet {
    let mut set = ConfigSet::load_str(name, text);
    let lines = text.lines().count().max(1);
    for d in set.diagnostics() {
        assert!(
            d.line <= lines + 1,
            "diagnostic points past the end of the text ({} lines): {d}",
            lines
        );
        assert!(!d.message.is_empty(), "diagnostic without a message: {d:?}");
        // Display must not panic either: it is what `mirrorlab check` prints.
        let _ = d.to_string();
    }
    for r in set.resources() {
        let _ = set.line_of(r, "spec.http[0].match[0].headers.user-agent");
        let _ = set.line_of(r, "");
        let _ = r.display_name();
    }
    let has_errors = set.has_errors();
    match RouteTable::compile(&set) {
        Ok(table) => {
            assert!(!has_errors, "compile accepted a config with errors");
            let _ = table.upstreams();
        }
        Err(errors) => {
            // A refusal must say why, and only for configs the checker also calls broken:
            // otherwise `mirrorlab check` says OK and `run` refuses the same file.
            assert!(!errors.is_empty(), "compile refused without diagnostics");
            assert!(
                has_errors,
                "check found no error but compile refused: {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
    let _ = set.to_yaml_string(0);
    set.recheck();
    assert_eq!(has_errors, set.has_errors(), "recheck changed the verdict");
    set
}

/// Written-back YAML of an error-free config reloads without errors and with the same
/// resources: saving from the lab must never turn a good file into a broken one.
fn round_trips(set: &ConfigSet) {
    if set.has_errors() {
        return;
    }
    let text = match set.to_yaml_string(0) {
        Ok(text) => text,
        Err(err) => panic!(
            "an error-free config could not be written back: {err}\n---\n{}",
            set.files().first().map_or("", |f| f.text.as_str())
        ),
    };
    let again = ConfigSet::load_str("written.yaml", &text);
    let errors: Vec<String> = again
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    assert!(
        errors.is_empty(),
        "written-back YAML has errors:\n{}\n---\n{text}",
        errors.join("\n")
    );
    let before: Vec<_> = set.resources().iter().map(|r| &r.object).collect();
    let after: Vec<_> = again.resources().iter().map(|r| &r.object).collect();
    assert_eq!(before, after, "write-back changed the resources:\n{text}");
}

// ---------------------------------------------------------------------------------------
// Generator 1: arbitrary text.

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        exercise("any.yaml", &text);
    }

    #[test]
    fn yaml_shaped_noise_never_panics(
        text in "([a-zA-Z:\\-\\[\\]{}&*!|>'\"#%@,?.0-9 ]{0,12}\n?){0,40}"
    ) {
        exercise("noise.yaml", &text);
    }
}

// ---------------------------------------------------------------------------------------
// Generator 2: the sample configs, mutated.

#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, String),
    Delete(usize, usize),
    Replace(usize, String),
    Truncate(usize),
    DuplicateLine(usize),
    Indent(usize, bool),
}

fn yaml_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(":".to_owned()),
        Just("- ".to_owned()),
        Just("\n".to_owned()),
        Just("  ".to_owned()),
        Just("\t".to_owned()),
        Just("---\n".to_owned()),
        Just("&a ".to_owned()),
        Just("*a".to_owned()),
        Just("<<: *a\n".to_owned()),
        Just("!!binary ".to_owned()),
        Just("? ".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just("|".to_owned()),
        Just(">-".to_owned()),
        Just("#".to_owned()),
        Just("~".to_owned()),
        Just("null".to_owned()),
        Just("-1".to_owned()),
        Just("1e999".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("NaN".to_owned()),
        Just(".inf".to_owned()),
        Just("é".to_owned()),
        Just("\u{feff}".to_owned()),
        Just("\u{0}".to_owned()),
        Just("mirrors: []\n".to_owned()),
        Just("regex: \"(\"".to_owned()),
        Just("regex: \"a)|(b\"".to_owned()),
        Just("mirrorPercentage: {value: 250}".to_owned()),
        Just("weight: -5".to_owned()),
        Just("number: 70000".to_owned()),
        Just("kind: List\nitems: [".to_owned()),
        "[ -~]{1,8}",
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let pos = 0usize..4_000;
    prop_oneof![
        (pos.clone(), yaml_fragment()).prop_map(|(p, s)| Mutation::Insert(p, s)),
        (pos.clone(), 1usize..40).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (pos.clone(), yaml_fragment()).prop_map(|(p, s)| Mutation::Replace(p, s)),
        pos.clone().prop_map(Mutation::Truncate),
        (0usize..150).prop_map(Mutation::DuplicateLine),
        (0usize..150, any::<bool>()).prop_map(|(l, d)| Mutation::Indent(l, d)),
    ]
}

/// Nearest char boundary at or below `p` (mutations are positions in bytes).
fn boundary(text: &str, p: usize) -> usize {
    let mut p = p.min(text.len());
    while !text.is_char_boundary(p) {
        p -= 1;
    }
    p
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut out = text.to_owned();
    match m {
        Mutation::Insert(p, s) => out.insert_str(boundary(&out, *p % (out.len() + 1)), s),
        Mutation::Delete(p, n) => {
            let a = boundary(&out, *p % (out.len() + 1));
            let b = boundary(&out, a + n);
            out.replace_range(a..b, "");
        }
        Mutation::Replace(p, s) => {
            let a = boundary(&out, *p % (out.len() + 1));
            let b = boundary(&out, a + s.len());
            out.replace_range(a..b, s);
        }
        Mutation::Truncate(p) => out.truncate(boundary(&out, *p % (out.len() + 1))),
        Mutation::DuplicateLine(l) => {
            let lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let i = l % lines.len();
                let mut v: Vec<&str> = lines.clone();
                v.insert(i, lines[i]);
                out = v.join("\n");
            }
        }
        Mutation::Indent(l, deeper) => {
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            if !lines.is_empty() {
                let i = l % lines.len();
                let mut v = lines.clone();
                v[i] = if *deeper {
                    format!("  {}", v[i])
                } else {
                    v[i].trim_start().to_owned()
                };
                out = v.join("\n");
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn mutated_samples_never_panic(
        pick in any::<prop::sample::Index>(),
        muts in prop::collection::vec(mutation(), 1..6),
    ) {
        let all = samples();
        let (name, original) = pick.get(&all);
        let mut text = original.clone();
        for m in &muts {
            text = apply(&text, m);
        }
        let set = exercise(name, &text);
        round_trips(&set);
    }
}

// ---------------------------------------------------------------------------------------
// Generator 3: Istio-shaped documents with wrong types and out-of-range values at the
// leaves, then requests resolved against whatever compiles.

/// A leaf that is usually what the schema wants and sometimes not.
fn odd_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[ -~]{0,12}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
        Just(json!([])),
        Just(json!({})),
        Just(json!([1, "two", null])),
        Just(json!({"nested": {"deeper": [1]}})),
    ]
}

/// `odd` is the weight of a wrong leaf against 8 for a good one; 0 makes well-formed configs
/// (which still pick missing subsets, bad regexes or port 0 now and then).
fn maybe_odd<S: Strategy<Value = Value> + 'static>(odd: u32, good: S) -> BoxedStrategy<Value> {
    if odd == 0 {
        good.boxed()
    } else {
        prop_oneof![8 => good, odd => odd_scalar()].boxed()
    }
}

fn host_name(odd: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("reviews".to_owned()),
        3 => Just("reviews-v2".to_owned()),
        2 => Just("ratings.default.svc.cluster.local".to_owned()),
        1 => Just("*".to_owned()),
        1 => Just("*.example.com".to_owned()),
        1 => Just("10.0.0.1".to_owned()),
        odd => Just("[::1]".to_owned()),
        odd => Just("".to_owned()),
        odd => "[a-z][a-z0-9.-]{0,20}",
        odd => "[ -~]{0,10}",
    ]
}

/// A pick among `good` values, or (with weight `odd` each) among `bad` ones.
fn pick<T: Clone + std::fmt::Debug + 'static>(odd: u32, good: &[T], bad: &[T]) -> BoxedStrategy<T> {
    let good = prop::sample::select(good.to_vec());
    if odd == 0 || bad.is_empty() {
        good.boxed()
    } else {
        prop_oneof![8 => good, odd => prop::sample::select(bad.to_vec())].boxed()
    }
}

fn string_match(odd: u32) -> impl Strategy<Value = Value> {
    let key = pick(odd, &["exact", "prefix", "regex"], &["bogus"]);
    let value = prop_oneof![
        4 => "[ -~]{0,10}",
        2 => Just(".*testing.*".to_owned()),
        1 => Just("(?i)Chrome.*".to_owned()),
        1 => Just("\\p{Greek}+".to_owned()),
        1 => Just("é".to_owned()),
        odd => Just("(".to_owned()),
        odd => Just("a)|(b".to_owned()),
        odd => Just("a{1000}{1000}".to_owned()),
    ];
    let extra = if odd == 0 { 0..1 } else { 0..2 };
    (
        key,
        value.clone(),
        prop::collection::vec((pick(1, &["exact", "prefix", "regex"], &[]), value), extra),
    )
        .prop_map(|(k, v, extra)| {
            let mut m = serde_json::Map::new();
            m.insert(k.to_owned(), Value::String(v));
            for (k, v) in extra {
                m.insert(k.to_owned(), Value::String(v));
            }
            Value::Object(m)
        })
}

fn header_map(odd: u32) -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        pick(
            odd,
            &[
                "user-agent".to_owned(),
                "x-env".to_owned(),
                "end-user".to_owned(),
            ],
            &["User-Agent".to_owned(), "X".to_owned()],
        ),
        prop_oneof![4 => maybe_odd(odd, string_match(odd)), 1 => Just(json!({}))],
        0..3,
    )
    .prop_map(|m: BTreeMap<String, Value>| json!(m))
}

fn match_block(odd: u32) -> impl Strategy<Value = Value> {
    (
        prop::option::of(maybe_odd(odd, string_match(odd))),
        prop::option::of(maybe_odd(odd, string_match(odd))),
        prop::option::of(header_map(odd)),
        prop::option::of(header_map(odd)),
        prop::option::of(header_map(odd)),
        prop::option::of(maybe_odd(odd, (1u16..=65535).prop_map(Value::from))),
        prop::option::of(maybe_odd(odd, any::<bool>().prop_map(Value::Bool))),
        prop::option::of(maybe_odd(odd, string_match(odd))),
    )
        .prop_map(
            |(uri, method, headers, without, query, port, icase, authority)| {
                let mut m = serde_json::Map::new();
                let mut put = |k: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        m.insert(k.to_owned(), v);
                    }
                };
                put("uri", uri);
                put("method", method);
                put("headers", headers);
                put("withoutHeaders", without);
                put("queryParams", query);
                put("port", port);
                put("ignoreUriCase", icase);
                put("authority", authority);
                Value::Object(m)
            },
        )
}

fn destination(odd: u32) -> impl Strategy<Value = Value> {
    (
        maybe_odd(odd, host_name(odd).prop_map(Value::String)),
        // A subset needs a DestinationRule of the same host to exist (IST0101 otherwise),
        // which a random config rarely has: keep subsets rare in well-formed configs.
        prop::option::weighted(
            if odd == 0 { 0.15 } else { 0.5 },
            maybe_odd(
                odd,
                pick(odd, &["v1", "v2", "v3"], &["nope"]).prop_map(|s| Value::String(s.to_owned())),
            ),
        ),
        prop::option::of(maybe_odd(
            odd,
            pick(odd, &[9080i64, 80], &[0, 70_000, -1]).prop_map(|n| json!({ "number": n })),
        )),
    )
        .prop_map(|(host, subset, port)| {
            let mut d = json!({ "host": host });
            if let Some(s) = subset {
                d["subset"] = s;
            }
            if let Some(p) = port {
                d["port"] = p;
            }
            d
        })
}

fn percentage(odd: u32) -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0.0f64..=100.0).prop_map(|v| json!({ "value": v })),
        1 => Just(json!({ "value": 0 })),
        1 => Just(json!({ "value": 100 })),
        1 => Just(json!({})),
        odd => Just(json!({ "value": -1 })),
        odd => Just(json!({ "value": 250.5 })),
        odd => Just(json!(25)),
    ]
}

fn http_route(odd: u32) -> impl Strategy<Value = Value> {
    let weight = if odd == 0 { 0i64..=100 } else { -10i64..=120 };
    let destinations = if odd == 0 { 1..3 } else { 0..3 };
    let mirror = prop_oneof![
        2 => Just((false, false)),
        2 => Just((true, false)),
        2 => Just((false, true)),
        odd => Just((true, true)),
    ];
    (
        prop::option::of(prop::collection::vec(match_block(odd), 0..3)),
        prop::collection::vec(
            (
                destination(odd),
                prop::option::of(maybe_odd(odd, weight.prop_map(Value::from))),
            ),
            destinations,
        ),
        mirror,
        destination(odd),
        prop::collection::vec((destination(odd), prop::option::of(percentage(odd))), 0..3),
        prop::option::of(percentage(odd)),
        prop::option::of(maybe_odd(odd, (0i64..=100).prop_map(Value::from))),
        prop::option::of(maybe_odd(
            odd,
            pick(odd, &["1s", "250ms", "0s", "2m"], &["1e9h", "fast", "-1s"])
                .prop_map(|s| Value::String(s.to_owned())),
        )),
        prop::option::of("[a-z-]{0,8}"),
    )
        .prop_map(
            |(
                matches,
                routes,
                (use_mirror, use_mirrors),
                mirror,
                mirrors,
                pct,
                old_pct,
                timeout,
                name,
            )| {
                let mut r = serde_json::Map::new();
                if let Some(m) = matches {
                    r.insert("match".into(), Value::Array(m));
                }
                let routes: Vec<Value> = routes
                    .into_iter()
                    .map(|(d, w)| {
                        let mut rd = json!({ "destination": d });
                        if let Some(w) = w {
                            rd["weight"] = w;
                        }
                        rd
                    })
                    .collect();
                if !routes.is_empty() {
                    r.insert("route".into(), Value::Array(routes));
                }
                if use_mirror {
                    r.insert("mirror".into(), mirror);
                    if let Some(p) = pct {
                        r.insert("mirrorPercentage".into(), p);
                    } else if let Some(p) = old_pct {
                        r.insert("mirrorPercent".into(), p);
                    }
                }
                if use_mirrors {
                    let ms = mirrors
                        .into_iter()
                        .map(|(d, p)| {
                            let mut e = json!({ "destination": d });
                            if let Some(p) = p {
                                e["percentage"] = p;
                            }
                            e
                        })
                        .collect();
                    r.insert("mirrors".into(), Value::Array(ms));
                }
                if let Some(t) = timeout {
                    r.insert("timeout".into(), t);
                }
                if let Some(n) = name {
                    r.insert("name".into(), Value::String(n));
                }
                Value::Object(r)
            },
        )
}

fn api_version(odd: u32) -> impl Strategy<Value = Value> {
    maybe_odd(
        odd,
        pick(
            odd,
            &[
                "networking.istio.io/v1",
                "networking.istio.io/v1beta1",
                "networking.istio.io/v1alpha3",
            ],
            &["networking.istio.io/v2", "v1"],
        )
        .prop_map(|s| Value::String(s.to_owned())),
    )
}

fn metadata(odd: u32) -> impl Strategy<Value = Value> {
    (
        maybe_odd(odd, "[a-z][a-z0-9-]{0,10}".prop_map(Value::String)),
        prop::option::of(maybe_odd(
            odd,
            pick(odd, &["default", "prod"], &[""]).prop_map(|s| Value::String(s.to_owned())),
        )),
        prop::option::of(
            prop::collection::btree_map("mirrorlab\\.dev/[a-z-]{1,12}", "[ -~]{0,16}", 0..3)
                .prop_map(|m| json!(m)),
        ),
    )
        .prop_map(|(name, ns, annotations)| {
            let mut m = json!({ "name": name });
            if let Some(ns) = ns {
                m["namespace"] = ns;
            }
            if let Some(a) = annotations {
                m["annotations"] = a;
            }
            m
        })
}

fn host_list(odd: u32) -> BoxedStrategy<Value> {
    let len = if odd == 0 { 1..3 } else { 0..3 };
    maybe_odd(
        odd,
        prop::collection::vec(host_name(odd).prop_map(Value::String), len).prop_map(Value::Array),
    )
}

fn virtual_service(odd: u32) -> impl Strategy<Value = Value> {
    (
        api_version(odd),
        metadata(odd),
        host_list(odd),
        prop::collection::vec(maybe_odd(odd, http_route(odd)), 0..4),
    )
        .prop_map(|(api, meta, hosts, http)| {
            json!({
                "apiVersion": api, "kind": "VirtualService", "metadata": meta,
                "spec": { "hosts": hosts, "http": http },
            })
        })
}

fn destination_rule(odd: u32) -> impl Strategy<Value = Value> {
    let names = prop::collection::vec(
        pick(odd, &["v1", "v2", "v3"], &[""]).prop_map(|s| Value::String(s.to_owned())),
        0..4,
    )
    .prop_map(move |mut v| {
        if odd == 0 {
            // Duplicate subset names are an error (ML0108); keep well-formed rules clean.
            v.sort_by_key(ToString::to_string);
            v.dedup();
        }
        v
    });
    let labels = maybe_odd(
        odd,
        pick(odd, &["v1", "v2"], &["v9"]).prop_map(|v| json!({ "version": v })),
    );
    (
        api_version(odd),
        metadata(odd),
        maybe_odd(odd, host_name(odd).prop_map(Value::String)),
        names,
        prop::collection::vec(labels, 4),
    )
        .prop_map(|(api, meta, host, names, labels)| {
            let subsets: Vec<Value> = names
                .into_iter()
                .zip(labels)
                .map(|(name, labels)| json!({ "name": name, "labels": labels }))
                .collect();
            json!({
                "apiVersion": api, "kind": "DestinationRule", "metadata": meta,
                "spec": { "host": host, "subsets": subsets },
            })
        })
}

fn service_entry(odd: u32) -> impl Strategy<Value = Value> {
    let port = if odd == 0 {
        1i64..=65_535
    } else {
        0i64..=70_000
    };
    let endpoint = (
        maybe_odd(
            odd,
            pick(odd, &["127.0.0.1", "::1", "localhost"], &["not an address", "999.1.1.1"])
                .prop_map(|s| Value::String(s.to_owned())),
        ),
        maybe_odd(odd, port.clone().prop_map(|p| json!({ "http": p }))),
        maybe_odd(
            odd,
            pick(odd, &["v1", "v2", "v3"], &[]).prop_map(|v| json!({ "version": v })),
        ),
    )
        .prop_map(|(address, ports, labels)| {
            json!({ "address": address, "ports": ports, "labels": labels })
        });
    (
        api_version(odd),
        metadata(odd),
        host_list(odd),
        maybe_odd(
            odd,
            port.prop_map(|n| json!([{ "number": n, "name": "http", "protocol": "HTTP" }])),
        ),
        prop::collection::vec(endpoint, 0..3),
    )
        .prop_map(|(api, meta, hosts, ports, endpoints)| {
            json!({
                "apiVersion": api, "kind": "ServiceEntry", "metadata": meta,
                "spec": { "hosts": hosts, "ports": ports, "resolution": "STATIC",
                          "endpoints": endpoints },
            })
        })
}

fn document(odd: u32) -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => virtual_service(odd),
        2 => destination_rule(odd),
        2 => service_entry(odd),
        odd => odd_scalar(),
        1 => prop::collection::vec(virtual_service(odd), 0..3)
            .prop_map(|items| json!({ "apiVersion": "v1", "kind": "List", "items": items })),
    ]
}

#[derive(Debug, Clone)]
struct Request {
    method: String,
    authority: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    port: u16,
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop_oneof![
            Just("GET"),
            Just("POST"),
            Just("PUT"),
            Just("get"),
            Just("")
        ],
        prop_oneof![
            host_name(1),
            Just("reviews:9080".to_owned()),
            Just("REVIEWS".to_owned()),
            Just("reviews.default.svc.cluster.local".to_owned()),
            Just("a.example.com".to_owned()),
        ],
        prop_oneof![
            "/[ -~]{0,20}",
            Just("/reviews/1?x=1&x=2&y".to_owned()),
            Just("/%ff%fe?q=%00".to_owned()),
            Just("/é/ü".to_owned()),
            Just("".to_owned()),
            Just("*".to_owned()),
        ],
        prop::collection::vec(
            (
                prop_oneof![
                    Just("user-agent".to_owned()),
                    Just("x-env".to_owned()),
                    "[a-z-]{1,8}"
                ],
                prop_oneof![
                    "[ -~]{0,16}".prop_map(String::into_bytes),
                    Just(b"Mozilla testing".to_vec()),
                    prop::collection::vec(any::<u8>(), 0..16),
                ],
            ),
            0..4,
        ),
        any::<u16>(),
    )
        .prop_map(|(method, authority, path, headers, port)| Request {
            method: method.to_owned(),
            authority,
            path,
            headers,
            port,
        })
}

fn resolve_all(table: &RouteTable, requests: &[Request], draws: &[f64]) {
    for r in requests {
        let mut headers = HeaderMap::new();
        for (k, v) in &r.headers {
            // Invalid header bytes never reach routing: hyper refuses them first. What it
            // lets through (obs-text, opaque bytes) must still route without a panic.
            if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_bytes(v)) {
                headers.append(k, v);
            }
        }
        let head = RequestHead {
            method: &r.method,
            scheme: "http",
            host: &r.authority,
            authority: &r.authority,
            path_and_query: &r.path,
            headers: &headers,
            port: r.port,
        };
        match table.resolve(&head) {
            Ok(res) => {
                if let Some(forward) = res.forward() {
                    assert!(
                        !forward.destinations.is_empty(),
                        "a forwarding route without a destination: {res:?}"
                    );
                }
                for m in res.mirrors().iter() {
                    assert!(
                        (0.0..=1.0).contains(&m.fraction),
                        "mirror fraction outside 0..=1: {}",
                        m.fraction
                    );
                }
                for &u in draws {
                    if let Some(up) = res.pick_destination(u) {
                        let _ = up.upstream.next_endpoint();
                    }
                }
            }
            Err(no_route) => {
                let _ = no_route.to_string();
            }
        }
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn istio_shaped_configs_check_compile_and_route_without_panic(
        docs in prop::collection::vec(document(1), 1..5),
        requests in prop::collection::vec(request(), 1..8),
        draws in prop::collection::vec(prop_oneof![0.0f64..1.0, Just(1.0), Just(-1.0), Just(f64::NAN)], 1..4),
    ) {
        let mut text = String::new();
        for d in &docs {
            text.push_str("---\n");
            text.push_str(&yaml_serde::to_string(d).expect("a JSON value renders as YAML"));
        }
        let set = exercise("generated.yaml", &text);
        round_trips(&set);
        if let Ok(table) = RouteTable::compile(&set) {
            resolve_all(&table, &requests, &draws);
        }
    }

    /// Mostly well-formed configs, so that most compile and requests meet real routes.
    #[test]
    fn well_formed_configs_route_without_panic(
        docs in prop::collection::vec(document(0), 1..6),
        requests in prop::collection::vec(request(), 1..12),
        draws in prop::collection::vec(prop_oneof![0.0f64..1.0, Just(1.0), Just(-1.0), Just(f64::NAN)], 1..4),
    ) {
        let mut text = String::new();
        for d in &docs {
            text.push_str("---\n");
            text.push_str(&yaml_serde::to_string(d).expect("a JSON value renders as YAML"));
        }
        let set = exercise("well-formed.yaml", &text);
        round_trips(&set);
        if let Ok(table) = RouteTable::compile(&set) {
            resolve_all(&table, &requests, &draws);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Matchers and small parsers on their own.

proptest! {
    #![proptest_config(cases(1024))]

    /// A regex the lab accepts must be a valid RE2 regex on its own: the lab anchors it to
    /// the whole value, and a user regex like `a)|(b` must not escape that anchoring and match
    /// partially, where Istio would reject it. So what is accepted alone is accepted inside
    /// a group too, and what RE2 accepts the `regex` crate compiles once translated.
    #[test]
    fn accepted_regexes_are_valid_on_their_own(
        source in prop_oneof![
            "[a-z().|*?+\\[\\]{}^$\\\\:0-9,-]{0,12}",
            any::<String>(),
        ],
        values in prop::collection::vec(any::<String>(), 0..4),
    ) {
        if let Ok(m) = StringMatcher::regex(&source, "headers.x.regex") {
            // `\Q` quotes to the end of the text, so a group around it cannot close.
            prop_assert!(
                source.contains("\\Q")
                    || StringMatcher::regex(&format!("({source})"), "headers.x.regex").is_ok(),
                "lab accepted `{}` but not `({})`", source, source
            );
            let translated = mirrorlab::config::re2::translate(&source);
            prop_assert!(translated.as_ref().is_ok_and(|t| regex::Regex::new(t).is_ok()), "{:?}", translated);
            for v in &values {
                let _ = m.matches(v, false);
                let _ = m.matches(v, true);
            }
        }
    }

    #[test]
    fn string_matchers_never_panic_on_any_value(
        pattern in any::<String>(),
        value in any::<String>(),
        icase in any::<bool>(),
    ) {
        for m in [StringMatcher::Exact(pattern.clone()), StringMatcher::Prefix(pattern.clone())] {
            let hit = m.matches(&value, icase);
            if !icase {
                let expected = match &m {
                    StringMatcher::Exact(e) => &value == e,
                    _ => value.starts_with(pattern.as_str()),
                };
                prop_assert_eq!(hit, expected);
            }
        }
        prop_assert!(StringMatcher::Present.matches(&value, icase));
    }

    #[test]
    fn durations_parse_or_refuse_without_panic(text in prop_oneof![
        "[0-9.]{0,25}(h|m|s|ms|us|µs|ns|x|)",
        any::<String>(),
    ]) {
        if let Ok(d) = parse_duration(&text) {
            prop_assert!(d.as_secs_f64().is_finite());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Failures the generators found, pinned.

/// Found by `accepted_regexes_are_valid_on_their_own`: the lab wrapped user regexes as
/// `^(?:…)$` before checking them, so `a)|(b` compiled to `^(?:a)|(b)$` and matched any value
/// starting with `a`, and `)\` compiled to `^(?:)\)$`.
#[test]
fn regexes_that_escape_the_anchoring_group_are_refused() {
    for bad in ["a)|(b", ")\\", "x)|.*|(y"] {
        assert!(
            StringMatcher::regex(bad, "headers.user-agent.regex").is_err(),
            "`{bad}` was accepted"
        );
        let yaml = format!(
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs}}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        user-agent: {{regex: '{bad}'}}
    route:
    - destination: {{host: reviews}}
"
        );
        let set = ConfigSet::load_str("bad-regex.yaml", &yaml);
        let d = set
            .diagnostics()
            .iter()
            .find(|d| d.code == "ML0103")
            .unwrap_or_else(|| panic!("no ML0103 for `{bad}`: {:?}", set.diagnostics()));
        assert_eq!(d.line, 9, "{d}");
        assert!(RouteTable::compile(&set).is_err());
    }
}

/// Found by `mutated_samples_never_panic`: a document whose key is itself a mapping
/// (`? mirrors: []`) loaded as an ignored kind without an error, and then could not be
/// written back. Kubernetes objects are JSON, so such keys are refused where they stand.
#[test]
fn complex_mapping_keys_are_refused_where_they_stand() {
    for (text, line) in [
        ("? mirrors: []\n# comment\n", 1),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  ? [a, b]\n  : c\n",
            5,
        ),
    ] {
        let set = exercise("complex-key.yaml", text);
        let d = set
            .diagnostics()
            .iter()
            .find(|d| d.code == "ML0003")
            .unwrap_or_else(|| panic!("no ML0003 for {text:?}: {:?}", set.diagnostics()));
        assert!(d.message.contains("keys are strings"), "{d}");
        assert_eq!(d.line, line, "{d}");
        assert!(set.has_errors());
    }
}

/// Found by `arbitrary_text_never_panics`: the YAML parser breaks lines at U+2028 (and
/// U+2029, U+0085), editors do not, so a syntax error after one was reported lines below
/// the end of the file.
#[test]
fn syntax_errors_after_unicode_line_separators_keep_editor_line_numbers() {
    for text in [
        "A:\u{2028}\u{3a3}",
        "a: 1\nb\u{2029}c: [\n",
        "x: \u{85}\u{85}y\nz",
    ] {
        let set = exercise("separators.yaml", text);
        let lines = text.split('\n').count();
        for d in set.diagnostics() {
            assert!(d.line <= lines, "{text:?} has {lines} lines: {d}");
        }
    }
}
