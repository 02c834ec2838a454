//! Sessions: `mirrorlab run --session` saves what the lab captured; `mirrorlab report
//! SESSION` rebuilds the same report with no proxy running; the session replays as
//! traffic, and `mirrorlab compare` sets the two runs' reports side by side.

mod common;
mod replay_support;

use std::time::Duration;

use mirrorlab::replay::sources::session::read_session;
use replay_support::{mirrorlab, write};
use serde_json::Value;

fn json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("file written")).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_session_reopens_to_the_same_report_and_replays() {
    // v1 and v2 answer differently, so the report has diffs to rebuild.
    let mesh = common::Mesh::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(dir.path(), "lab.yaml", &mesh.yaml(common::TO_V1_MIRRORED));
    let (report, session) = (
        dir.path().join("run.json"),
        dir.path().join("run.session.har"),
    );
    let common::RunChild {
        mut child, addr, ..
    } = common::spawn_run([
        config.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--duration".as_ref(),
        "3".as_ref(),
        "--seed".as_ref(),
        "3".as_ref(),
        "--report".as_ref(),
        report.as_os_str(),
        "--session".as_ref(),
        session.as_os_str(),
    ])
    .await;
    let client = common::client();
    for i in 0..12 {
        let response = client
            .get(format!("http://{addr}/reviews/{i}"))
            .header("host", "reviews")
            .header("authorization", "Bearer s3cret-token")
            .send()
            .await
            .expect("the lab answers");
        assert_eq!(response.status(), 200);
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("run ends after its duration")
        .expect("run exits");
    assert!(status.success());
    assert_eq!(mesh.v2.wait_for(12, Duration::from_secs(5)).await.len(), 12);

    let text = std::fs::read_to_string(&session).expect("session written");
    assert!(
        !text.contains("s3cret-token"),
        "credentials are not saved by default"
    );
    // A session is a HAR 1.2 file: HAR tools open it.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/har-1.2.schema.json"
        ))
        .expect("HAR schema is readable"),
    )
    .expect("HAR schema is JSON");
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("HAR schema compiles");
    let doc: Value = serde_json::from_str(&text).expect("the session is JSON");
    let problems: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    let saved = read_session(&session).expect("the session reads back");
    assert_eq!(saved.exchanges.len(), 12);
    assert!(
        saved.meta.config[0].text.contains("reviews-vs"),
        "the config travels with it"
    );
    assert_eq!(saved.meta.seed, Some(3));

    let reopened = dir.path().join("reopened.json");
    let out = mirrorlab([
        "report".as_ref(),
        session.as_os_str(),
        "--report".as_ref(),
        reopened.as_os_str(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (live, again) = (json(&report), json(&reopened));
    assert_eq!(live["routes"][0]["requests"], 12);
    assert!(
        live["diffs"].as_array().is_some_and(|d| !d.is_empty()),
        "the run saw v2 differ"
    );
    assert_eq!(live, again, "the reopened session gives the run's report");

    // The session is traffic too: replayed against the same config, as fast as possible.
    let replayed = dir.path().join("replayed.json");
    let out = mirrorlab([
        "replay".as_ref(),
        session.as_os_str(),
        config.as_os_str(),
        "--speed".as_ref(),
        "max".as_ref(),
        "--report".as_ref(),
        replayed.as_os_str(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed_report = json(&replayed);
    assert_eq!(replayed_report["routes"][0]["requests"], 12);
    let last = mesh.v1.wait_for(24, Duration::from_secs(5)).await;
    assert!(
        last[12..]
            .iter()
            .all(|r| r.headers.get("authorization").is_none()),
        "the redacted credentials are not sent again"
    );

    let out = mirrorlab(["compare".as_ref(), report.as_os_str(), replayed.as_os_str()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("default/reviews-vs:http[0]"), "{table}");
    let requests = table
        .lines()
        .find(|l| l.trim_start().starts_with("requests"))
        .unwrap_or_else(|| panic!("a requests row: {table}"));
    assert_eq!(
        requests.split_whitespace().collect::<Vec<_>>(),
        ["requests", "12", "12", "+0.00"]
    );
    let field = table
        .lines()
        .find(|l| l.trim_start().starts_with("field /version"))
        .unwrap_or_else(|| panic!("a field row for the body's version: {table}"));
    assert!(field.contains("100.0% real"), "{field}");

    let out = mirrorlab([
        "compare".as_ref(),
        report.as_os_str(),
        replayed.as_os_str(),
        "--json".as_ref(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let requests = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["section"] == "default/reviews-vs:http[0]" && r["what"] == "requests")
        .expect("a requests row for the route");
    assert_eq!(
        (&requests["a"], &requests["b"]),
        (&Value::from("12"), &Value::from("12"))
    );
}

/// An exchange with every part a session must keep: a route trace with steps, attempts,
/// a failed and a skipped shadow, trailers, a tunnel, binary bodies, flags.
fn full_exchange() -> mirrorlab::capture::Exchange {
    use mirrorlab::capture::*;
    use std::sync::Arc;
    let headers = |pairs: &[(&str, &[u8])]| {
        let mut map = http::HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                http::header::HeaderName::from_bytes(n.as_bytes()).expect("name"),
                http::HeaderValue::from_bytes(v).expect("value"),
            );
        }
        map
    };
    let response = CapturedResponse {
        status: http::StatusCode::OK,
        headers: headers(&[
            ("content-type", b"application/grpc"),
            ("x-bin", b"\xff\xfe"),
        ]),
        body: CapturedBody {
            bytes: bytes::Bytes::from_static(b"\x00\x00\x00\x00\x02\x08\x01"),
            total_len: 7,
            truncated: false,
        },
        ttfb: Duration::from_nanos(1_234_567),
        total: Duration::from_nanos(2_345_678),
        version: http::Version::HTTP_2,
        trailers: Some(Box::new(headers(&[("grpc-status", b"0")]))),
    };
    Exchange {
        id: 42,
        request_id: "req-42".to_owned(),
        started_at: std::time::UNIX_EPOCH + Duration::from_nanos(1_733_000_000_123_456_789),
        trace: Some(mirrorlab::routing::RouteTrace {
            virtual_service: "default/reviews-vs".into(),
            route_index: 2,
            route_name: Some("grpc".into()),
            match_index: Some(1),
            match_summary: "uri prefix /reviews.Reviews/".into(),
            steps: vec!["request header x-env set to lab".to_owned()],
            ..Default::default()
        }),
        request: CapturedRequest {
            method: http::Method::POST,
            uri: "/reviews.Reviews/Get".to_owned(),
            authority: "reviews".to_owned(),
            version: http::Version::HTTP_2,
            headers: headers(&[("te", b"trailers"), ("authorization", b"Bearer kept")]),
            body: CapturedBody {
                bytes: bytes::Bytes::from_static(b"\x00\x00\x00\x00\x00"),
                total_len: 5,
                truncated: false,
            },
        },
        primary: Some(PrimaryRecord {
            target: Arc::from("reviews/v1"),
            endpoint: "127.0.0.1:9081".into(),
            outcome: UpstreamOutcome::Response(response.clone()),
            attempts: vec![
                Attempt {
                    endpoint: "127.0.0.1:9084".into(),
                    outcome: AttemptOutcome::Failed(UpstreamErrorKind::Tls),
                    started: Duration::ZERO,
                    took: Duration::from_micros(300),
                    ejected: true,
                    skipped_ejected: 0,
                },
                Attempt {
                    endpoint: "127.0.0.1:9081".into(),
                    outcome: AttemptOutcome::Status(http::StatusCode::OK),
                    started: Duration::from_micros(400),
                    took: Duration::from_micros(900),
                    ejected: false,
                    skipped_ejected: 1,
                },
            ],
        }),
        forwarded: Some(Arc::new(ForwardedRequest {
            uri: "/reviews.Reviews/Get".to_owned(),
            authority: "reviews:9080".to_owned(),
            headers: headers(&[("x-env", b"lab")]),
        })),
        shadows: vec![
            ShadowRecord {
                target: Arc::from("reviews-v2/v2"),
                endpoint: Some("127.0.0.1:9082".into()),
                outcome: ShadowOutcome::Sent(UpstreamOutcome::Failed(UpstreamFailure {
                    kind: UpstreamErrorKind::Reset,
                    detail: "reset mid-body".to_owned(),
                    elapsed: Duration::from_millis(3),
                    partial: Some(response),
                })),
            },
            ShadowRecord {
                target: Arc::from("reviews/v3"),
                endpoint: None,
                outcome: ShadowOutcome::Skipped(SkipReason::NotSampled),
            },
        ],
        flags: ResponseFlags::DI.union(ResponseFlags::URX),
        tunnel: Some(Box::new(Tunnel {
            protocol: "websocket".to_owned(),
            duration: Duration::from_millis(1500),
            bytes_up: 10,
            bytes_down: 20,
            error: Some("closed by the upstream".to_owned()),
        })),
    }
}

#[test]
fn a_session_keeps_every_part_of_an_exchange() {
    use mirrorlab::replay::session::{SessionMeta, write_session_file};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("full.session.har");
    let exchange = full_exchange();
    let run = mirrorlab::export::RunInfo::ending_now(exchange.started_at);
    let settings = mirrorlab::analysis::AnalysisSettings::default();
    // Kept credentials: the comparison below is then of every byte.
    let meta = SessionMeta::new(Vec::new(), &run, &settings, true);
    write_session_file(&path, &meta, std::slice::from_ref(&exchange), None).expect("written");
    let back = read_session(&path).expect("reads back");
    assert_eq!(back.meta, meta);
    assert_eq!(back.exchanges.len(), 1);
    assert_eq!(format!("{:?}", back.exchanges[0]), format!("{exchange:?}"));
}
