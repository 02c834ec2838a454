//! Bad traffic files are refused before anything is sent, with the file, the line (and
//! column, for JSON) and what is wrong; the upstreams behind the lab see no request.

mod common;
mod replay_support;

use std::path::Path;

use mirrorlab::replay::{SourceOptions, TrafficError, load_traffic};
use replay_support::{HarRequest, gor_payload, har_json, mirrorlab, write};

fn parse_error(path: &Path) -> (usize, Option<usize>, String) {
    match load_traffic(path, &SourceOptions::default()) {
        Err(TrafficError::Parse {
            line,
            column,
            message,
            ..
        }) => (line, column, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

/// `mirrorlab replay FILE CONFIG` must fail naming `FILE:LINE` and send nothing.
async fn refused_by_the_cli(mesh: &common::Mesh, dir: &Path, traffic: &Path, at: &str) -> String {
    let config = write(dir, "lab.yaml", &mesh.yaml(common::TO_V1_MIRRORED));
    let out = mirrorlab(["replay".as_ref(), traffic.as_os_str(), config.as_os_str()]).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(at), "expected {at:?} in: {stderr}");
    assert!(stderr.contains("nothing was sent"), "{stderr}");
    assert!(out.stdout.is_empty(), "no report, no listening line");
    for upstream in [&mesh.v1, &mesh.v2, &mesh.v3] {
        assert!(
            upstream.received().is_empty(),
            "{} got a request",
            upstream.name
        );
    }
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_har_is_refused_at_the_line_and_column_where_it_ends() {
    let mesh = common::Mesh::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let requests: Vec<HarRequest> = (0..4u64)
        .map(|i| HarRequest::get(format!("http://reviews/reviews/{i}"), i * 10))
        .collect();
    let full = serde_json::to_string_pretty(&har_json(&requests)).expect("json");
    // Cut in the middle of the third entry, as an interrupted download leaves it.
    let cut = &full[..full.len() * 2 / 3];
    let path = write(dir.path(), "truncated.har", cut);
    let (line, column, message) = parse_error(&path);
    assert_eq!(line, cut.lines().count(), "the line where the file ends");
    assert!(column.is_some());
    assert!(
        message.contains("EOF") && message.contains("truncated?"),
        "{message}"
    );
    let stderr =
        refused_by_the_cli(&mesh, dir.path(), &path, &format!("truncated.har:{line}:")).await;
    assert!(stderr.contains("truncated?"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_har_with_one_bad_entry_is_refused_whole_at_that_entrys_line() {
    let mesh = common::Mesh::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut doc = har_json(&[
        HarRequest::get("http://reviews/reviews/1", 0),
        HarRequest::get("http://reviews/reviews/2", 10),
        HarRequest::get("http://reviews/reviews/3", 20),
    ]);
    doc["log"]["entries"][2]["request"]["method"] = "GE T".into();
    let text = serde_json::to_string_pretty(&doc).expect("json");
    let bad_line = text
        .lines()
        .position(|l| l.contains("\"GE T\""))
        .expect("the bad method is in the file")
        + 1;
    let path = write(dir.path(), "bad-method.har", &text);
    let (line, _, message) = parse_error(&path);
    assert_eq!(line, bad_line);
    assert!(
        message.contains("request.method: \"GE T\" is not an HTTP method"),
        "{message}"
    );
    refused_by_the_cli(
        &mesh,
        dir.path(),
        &path,
        &format!("bad-method.har:{bad_line}:"),
    )
    .await;

    let mut doc = har_json(&[HarRequest::get("http://reviews/reviews/1", 0)]);
    doc["log"]["entries"][0]["request"]["url"] = "/reviews/1".into();
    let path = write(
        dir.path(),
        "relative.har",
        &serde_json::to_string_pretty(&doc).expect("json"),
    );
    let (_, _, message) = parse_error(&path);
    assert!(message.contains("is not absolute"), "{message}");

    let path = write(
        dir.path(),
        "not-har.json",
        r#"{"schema_version": 1, "routes": []}"#,
    );
    let (line, _, message) = parse_error(&path);
    assert_eq!(line, 1);
    assert!(message.contains("no `log.entries`"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_gor_file_is_refused_at_its_line() {
    let mesh = common::Mesh::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(
        dir.path(),
        "garbage.gor",
        "1 this is not\na capture\n🐵🙈🙉\n",
    );
    let (line, column, message) = parse_error(&path);
    assert_eq!((line, column), (1, None));
    assert!(
        message.contains("expected a GoReplay payload header"),
        "{message}"
    );
    refused_by_the_cli(&mesh, dir.path(), &path, "garbage.gor:1:").await;

    // A good first request, then a payload of an unknown type: refused whole, at the line
    // of that payload's header.
    let good = gor_payload(
        1,
        "a",
        1_000,
        "GET /reviews/1 HTTP/1.1\r\nHost: reviews\r\n\r\n",
    );
    let next = good.lines().count() + 1;
    let text = format!("{good}7 b 2000 0\nwhat is this\n🐵🙈🙉\n");
    let path = write(dir.path(), "unknown-type.gor", &text);
    let (line, _, message) = parse_error(&path);
    assert_eq!(line, next);
    assert!(message.contains("payload type \"7\""), "{message}");
    refused_by_the_cli(
        &mesh,
        dir.path(),
        &path,
        &format!("unknown-type.gor:{next}:"),
    )
    .await;

    // A request payload whose HTTP is broken: the line after its header.
    let text = format!("{good}1 c 3000 0\nGET /x HTTP/1.1\r\nHost reviews\r\n\r\n\n🐵🙈🙉\n");
    let path = write(dir.path(), "bad-http.gor", &text);
    let (line, _, message) = parse_error(&path);
    assert_eq!(line, next + 1);
    assert!(message.contains("not an HTTP/1 request"), "{message}");

    // Cut before the last separator.
    let path = write(
        dir.path(),
        "cut.gor",
        &format!("{good}1 d 4000 0\nGET /y HTTP/1.1\r\n"),
    );
    let (line, _, message) = parse_error(&path);
    assert_eq!(line, next);
    assert!(message.contains("truncated?"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_refuses_a_har_that_is_not_a_session() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(
        dir.path(),
        "browser.har",
        &har_json(&[HarRequest::get("http://reviews/reviews/1", 0)]).to_string(),
    );
    let out = mirrorlab(["report".as_ref(), path.as_os_str()]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a mirrorlab session"), "{stderr}");
    assert!(out.stdout.is_empty());
}
