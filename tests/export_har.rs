//! HAR 1.2 export: validity against the HAR 1.2 schema (tests/har-1.2.schema.json, written
//! from the spec), shadows in `_shadows`, decoded bodies, and redaction of secrets.

mod analysis_support;
mod common;

use std::io::Write;
use std::time::Duration;

use analysis_support::*;
use bytes::Bytes;
use mirrorlab::analysis::{AnalysisSettings, Analyzer};
use mirrorlab::capture::{SkipReason, UpstreamErrorKind};
use mirrorlab::export::har::{HarOptions, REDACTED, build_har, write_har, write_har_file};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn har_validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/har-1.2.schema.json"
    ))
    .expect("HAR schema is readable");
    let schema: Value = serde_json::from_str(&text).expect("HAR schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("HAR schema compiles")
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip in memory");
    e.finish().expect("gzip in memory")
}

/// One exchange of every shape: JSON answered by all, gzip, binary, POST with a body and a
/// query, primary failure, unrouted request.
fn sample_exchanges() -> Vec<mirrorlab::capture::Exchange> {
    let mut out = Vec::new();
    let set_cookie = [
        ("content-type", "application/json"),
        ("set-cookie", "session=s3cr3t-value; Path=/; HttpOnly"),
    ];
    // The client speaks HTTP/2 to the proxy; the primary's server answered in HTTP/1.0.
    let mut primary = response_with(200, &set_cookie, body(r#"{"id":1}"#), 12);
    primary.version = http::Version::HTTP_10;
    let mut first = exchange(
        1,
        T0,
        "/reviews/1?lang=en&x",
        ok(primary),
        vec![
            sent(
                "reviews/v2",
                response_with(200, &set_cookie, body(r#"{"id":1,"v":2}"#), 15),
            ),
            skipped("reviews/v3", SkipReason::NotSampled),
            sent_failed("reviews/v4", UpstreamErrorKind::Timeout),
        ],
    );
    first.request.version = http::Version::HTTP_2;
    out.push(first);
    out.push(exchange(
        2,
        T0 + 1,
        "/reviews/2",
        ok(response_with(
            200,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            body(gzip(br#"{"zipped":true}"#)),
            5,
        )),
        vec![sent(
            "reviews/v2",
            response_with(
                200,
                &[("content-type", "image/png")],
                body(vec![0x89u8, 0x50, 0x4e, 0x47, 0xff]),
                6,
            ),
        )],
    ));
    let mut post = exchange(
        3,
        T0 + 2,
        "/reviews",
        ok(response_with(
            201,
            &[("location", "/reviews/3")],
            body(""),
            7,
        )),
        vec![],
    );
    post.request.method = http::Method::POST;
    post.request.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    post.request.body = body(Bytes::from_static(br#"{"text":"great"}"#));
    out.push(post);
    out.push(exchange(
        4,
        T0 + 3,
        "/reviews/4",
        failure(UpstreamErrorKind::Refused, 2),
        vec![sent("reviews/v2", response(200, "{}", 3))],
    ));
    let mut unrouted = exchange(
        5,
        T0 + 4,
        "/nowhere",
        failure(UpstreamErrorKind::Other, 0),
        vec![],
    );
    unrouted.trace = None;
    unrouted.primary = None;
    out.push(unrouted);
    out
}

#[test]
fn har_is_valid_and_carries_shadows() {
    let exchanges = sample_exchanges();
    let mut buf = Vec::new();
    write_har(&mut buf, &exchanges, &HarOptions::default(), None).expect("HAR written");
    let har: Value = serde_json::from_slice(&buf).expect("HAR is JSON");
    let v = har_validator();
    let errs = errors(&v, &har);
    assert!(errs.is_empty(), "HAR invalid:\n{}", errs.join("\n"));

    let entries = har["log"]["entries"].as_array().expect("entries");
    assert_eq!(har["log"]["version"], "1.2");
    assert_eq!(entries.len(), 5);
    let e1 = &entries[0];
    assert_eq!(e1["request"]["url"], "http://reviews/reviews/1?lang=en&x");
    assert_eq!(
        e1["request"]["queryString"],
        json!([{"name":"lang","value":"en"},{"name":"x","value":""}])
    );
    assert_eq!(e1["startedDateTime"], "2026-01-01T00:00:00.000Z");
    assert_eq!(e1["time"], 12.0);
    assert_eq!(e1["_route"], "default/reviews:http[0]");
    assert_eq!(e1["response"]["content"]["text"], r#"{"id":1}"#);
    let shadows = e1["_shadows"].as_array().expect("_shadows");
    assert_eq!(shadows.len(), 3);
    assert_eq!(shadows[0]["target"], "reviews/v2");
    assert_eq!(shadows[0]["outcome"], "response");
    assert_eq!(
        shadows[0]["response"]["content"]["text"],
        r#"{"id":1,"v":2}"#
    );
    assert_eq!(shadows[1]["outcome"], "skipped");
    assert_eq!(shadows[1]["skipReason"], "not_sampled");
    assert_eq!(shadows[2]["outcome"], "failed");
    assert_eq!(shadows[2]["error"]["kind"], "timeout");
    // Each response carries the version its upstream spoke, whatever the client spoke.
    assert_eq!(e1["request"]["httpVersion"], "HTTP/2.0");
    assert_eq!(e1["response"]["httpVersion"], "HTTP/1.0");
    assert_eq!(shadows[0]["response"]["httpVersion"], "HTTP/1.1");

    // gzip decoded for display, binary as base64
    let e2 = &entries[1];
    assert_eq!(e2["response"]["content"]["text"], r#"{"zipped":true}"#);
    assert!(e2["response"]["content"]["compression"].is_i64());
    assert_eq!(
        e2["_shadows"][0]["response"]["content"]["encoding"],
        "base64"
    );
    assert_eq!(e2["_shadows"][0]["response"]["content"]["text"], "iVBOR/8=");

    // POST body, redirect
    assert_eq!(
        entries[2]["request"]["postData"]["text"],
        r#"{"text":"great"}"#
    );
    assert_eq!(entries[2]["response"]["redirectURL"], "/reviews/3");
    // primary failure: status 0 and the reason
    assert_eq!(entries[3]["response"]["status"], 0);
    assert_eq!(entries[3]["response"]["httpVersion"], "");
    assert_eq!(entries[3]["_error"]["kind"], "refused");
    assert_eq!(entries[3]["_shadows"][0]["outcome"], "response");
    assert!(entries[4].get("_route").is_none());

    // every shadow response is itself a valid HAR response
    let shadow_responses: Vec<Value> = entries
        .iter()
        .flat_map(|e| e["_shadows"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s.get("response").cloned())
        .collect();
    assert_eq!(shadow_responses.len(), 3);
    let mut as_entries = har.clone();
    for (entry, resp) in as_entries["log"]["entries"]
        .as_array_mut()
        .expect("entries")
        .iter_mut()
        .zip(shadow_responses)
    {
        entry["response"] = resp;
    }
    let errs = errors(&v, &as_entries);
    assert!(
        errs.is_empty(),
        "shadow responses invalid:\n{}",
        errs.join("\n")
    );
}

#[test]
fn schema_rejects_what_har_forbids() {
    let har: Value =
        serde_json::to_value(build_har(&sample_exchanges(), &HarOptions::default(), None))
            .expect("value");
    let v = har_validator();
    let mut missing = har.clone();
    missing["log"]["entries"][0]["request"]
        .as_object_mut()
        .expect("request object")
        .remove("httpVersion");
    assert!(!errors(&v, &missing).is_empty());
    let mut custom = har.clone();
    custom["log"]["entries"][0]["shadows"] = json!([]); // custom fields need a leading _
    assert!(!errors(&v, &custom).is_empty());
    let mut bad_time = har;
    bad_time["log"]["entries"][0]["startedDateTime"] = json!("yesterday");
    assert!(!errors(&v, &bad_time).is_empty());
}

#[test]
fn secrets_are_redacted_unless_asked_otherwise() {
    let exchanges = sample_exchanges();
    let redacted =
        serde_json::to_string(&build_har(&exchanges, &HarOptions::default(), None)).expect("json");
    for secret in ["secret-token", "abc123", "s3cr3t-value"] {
        assert!(!redacted.contains(secret), "{secret} leaked into the HAR");
    }
    let har: Value = serde_json::from_str(&redacted).expect("json");
    let e1 = &har["log"]["entries"][0];
    let header = |headers: &Value, name: &str| {
        headers
            .as_array()
            .and_then(|h| h.iter().find(|p| p["name"] == name))
            .map(|p| p["value"].clone())
    };
    assert_eq!(
        header(&e1["request"]["headers"], "authorization"),
        Some(json!(REDACTED))
    );
    assert_eq!(
        header(&e1["request"]["headers"], "cookie"),
        Some(json!(REDACTED))
    );
    assert_eq!(
        header(&e1["request"]["headers"], "accept"),
        Some(json!("application/json"))
    );
    assert_eq!(
        header(&e1["response"]["headers"], "set-cookie"),
        Some(json!(REDACTED))
    );
    assert_eq!(
        header(&e1["_shadows"][0]["response"]["headers"], "set-cookie"),
        Some(json!(REDACTED))
    );
    // cookie names stay, values go
    assert_eq!(
        e1["request"]["cookies"],
        json!([{"name":"session","value":REDACTED},{"name":"theme","value":REDACTED}])
    );
    assert_eq!(e1["response"]["cookies"][0]["name"], "session");
    assert_eq!(e1["response"]["cookies"][0]["httpOnly"], true);
    assert_eq!(e1["response"]["cookies"][0]["path"], "/");

    let plain = serde_json::to_string(&build_har(
        &exchanges,
        &HarOptions {
            redact: false,
            bodies: true,
        },
        None,
    ))
    .expect("json");
    for secret in ["Bearer secret-token", "abc123", "s3cr3t-value"] {
        assert!(
            plain.contains(secret),
            "{secret} missing when redaction is off"
        );
    }
}

#[test]
fn har_file_and_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("run.har");
    write_har_file(
        &path,
        &sample_exchanges(),
        &HarOptions {
            redact: true,
            bodies: false,
        },
        None,
    )
    .expect("written");
    let har: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("readable")).expect("json");
    assert!(errors(&har_validator(), &har).is_empty());
    assert!(
        har["log"]["entries"][0]["response"]["content"]
            .get("text")
            .is_none()
    );
    // the capture store hands out Arcs; they go in as they are
    let shared: Vec<std::sync::Arc<mirrorlab::capture::Exchange>> = sample_exchanges()
        .into_iter()
        .map(std::sync::Arc::new)
        .collect();
    assert_eq!(
        build_har(&shared, &HarOptions::default(), None)
            .log
            .entries
            .len(),
        5
    );
    let none: &[mirrorlab::capture::Exchange] = &[];
    let err = write_har_file(
        &dir.path().join("no/such/dir.har"),
        none,
        &HarOptions::default(),
        None,
    )
    .expect_err("missing directory");
    assert!(err.to_string().contains("no/such/dir.har"), "{err}");
}

/// A server on 127.0.0.1 that answers every connection in HTTP/1.0 and closes it, as an
/// old server does, whatever version the request came in.
async fn http_1_0_upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"old":true}"#;
                let answer = format!(
                    "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn har_responses_carry_the_version_their_upstream_spoke() {
    let old = http_1_0_upstream().await;
    let modern = common::TestUpstream::start("shadow", common::Reply::ok(r#"{"old":false}"#)).await;
    let (proxy, cancel) = common::start_proxy(
        common::FixedRoutes::new("reviews", old, &[(modern.addr, 1.0)], None),
        mirrorlab::proxy::ProxySettings::default(),
    );
    // The client speaks HTTP/2 (cleartext) to the proxy.
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .expect("h2c client");
    let response = h2
        .get(format!("http://{}/reviews/1", proxy.local_addr()))
        .send()
        .await
        .expect("proxy answers");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), r#"{"old":true}"#);
    modern.wait_for(1, Duration::from_secs(5)).await;
    let exchanges =
        common::wait_for_exchanges(proxy.hub().store(), 1, Duration::from_secs(5)).await;
    let har =
        serde_json::to_value(build_har(&exchanges, &HarOptions::default(), None)).expect("HAR");
    let entry = &har["log"]["entries"][0];
    assert_eq!(entry["request"]["httpVersion"], "HTTP/2.0");
    assert_eq!(entry["response"]["httpVersion"], "HTTP/1.0");
    assert_eq!(
        entry["_shadows"][0]["response"]["httpVersion"], "HTTP/1.1",
        "{entry:#}"
    );
    cancel.cancel();
    proxy.stopped().await;
}

#[test]
fn har_entries_carry_each_mirrors_real_and_noise_differences() {
    // v2 changes `stars` (real) and, like the baseline, `nonce` (noise: the baseline
    // differs there in every exchange); the baseline's own differences are all noise.
    let mut a = Analyzer::new(AnalysisSettings::default());
    let mut exchanges = Vec::new();
    for i in 0..10u64 {
        let body = |stars: u64, nonce: &str| format!(r#"{{"stars":{stars},"nonce":"{nonce}{i}"}}"#);
        let stars = if i == 9 { 5 } else { 4 };
        exchanges.push(exchange(
            i,
            T0 + i,
            &format!("/reviews/{i}"),
            ok(response(200, body(5, "p"), 10)),
            vec![
                sent("reviews/v2", response(200, body(stars, "c"), 12)),
                sent("reviews/v1", response(200, body(5, "b"), 11)),
                skipped("reviews/v3", SkipReason::NotSampled),
            ],
        ));
    }
    for e in &exchanges {
        a.ingest(e);
    }
    let snapshot = a.snapshot();
    let har = serde_json::to_value(build_har(
        &exchanges,
        &HarOptions::default(),
        Some(&snapshot),
    ))
    .expect("HAR");
    assert!(errors(&har_validator(), &har).is_empty());
    let entries = har["log"]["entries"].as_array().expect("entries");
    assert_eq!(
        entries[0]["_mirrorlab"]["diffs"],
        json!([
            {
                "target": "reviews/v2", "baseline": false, "state": "compared",
                "summary": "1 differs, 1 noise", "realDifferences": 1, "noiseDifferences": 1,
                "realFields": ["/stars"], "noiseFields": ["/nonce"]
            },
            {
                "target": "reviews/v1", "baseline": true, "state": "compared",
                "summary": "1 noise", "realDifferences": 0, "noiseDifferences": 1,
                "realFields": [], "noiseFields": ["/nonce"]
            },
            {
                "target": "reviews/v3", "baseline": false, "state": "skipped",
                "summary": "skipped: not_sampled", "realDifferences": 0, "noiseDifferences": 0,
                "realFields": [], "noiseFields": []
            }
        ])
    );
    assert_eq!(entries[9]["_mirrorlab"]["diffs"][0]["summary"], "1 noise");
    // Without the analysis (or for an exchange it no longer keeps) there is no extension.
    let plain =
        serde_json::to_value(build_har(&exchanges, &HarOptions::default(), None)).expect("HAR");
    assert!(plain["log"]["entries"][0].get("_mirrorlab").is_none());
}
