//! Credentials in recorded traffic and saved sessions follow the HAR export's rules
//! (Authorization, Proxy-Authorization, Cookie, Set-Cookie, API key headers): stripped
//! before a replay and redacted in a session, unless the user keeps them.

mod common;
mod replay_support;

use std::time::Duration;

use mirrorlab::replay::session::{SessionMeta, write_session_file};
use mirrorlab::replay::{Pace, ReplayOptions, SourceOptions, load_traffic};
use replay_support::{HarRequest, har_json, replay_file, write};

fn recorded() -> Vec<HarRequest> {
    vec![
        HarRequest::get("http://reviews/reviews/1", 0)
            .header("Authorization", "Bearer live-token")
            .header("Cookie", "session=abc123")
            .header("X-Api-Key", "key-42")
            // What a HAR exported with redaction holds: never sendable as it is.
            .header("Proxy-Authorization", "[redacted]")
            .header("X-Trace", "kept")
            .header(":authority", "reviews"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_stripped_before_a_replay_unless_kept() {
    let mesh = common::Mesh::start().await;
    let lab = common::start_lab(&mesh.yaml(common::TO_V1_MIRRORED), Some(1));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(dir.path(), "creds.har", &har_json(&recorded()).to_string());
    let fast = ReplayOptions {
        pace: Pace::Max,
        ..ReplayOptions::default()
    };

    let stripped = load_traffic(&path, &SourceOptions::default()).expect("loads");
    assert_eq!(stripped.credentials_stripped, 4);
    replay_file(
        &path,
        lab.local_addr(),
        SourceOptions::default(),
        fast,
        Duration::from_secs(10),
    )
    .await;
    let first = mesh.v1.wait_for(1, Duration::from_secs(5)).await;
    let headers = &first[0].headers;
    for name in [
        "authorization",
        "cookie",
        "x-api-key",
        "proxy-authorization",
    ] {
        assert!(headers.get(name).is_none(), "{name} was sent: {headers:?}");
    }
    assert_eq!(headers["x-trace"], "kept");

    let keep = SourceOptions {
        keep_credentials: true,
    };
    assert_eq!(
        load_traffic(&path, &keep)
            .expect("loads")
            .credentials_stripped,
        1
    );
    replay_file(&path, lab.local_addr(), keep, fast, Duration::from_secs(10)).await;
    let both = mesh.v1.wait_for(2, Duration::from_secs(5)).await;
    let headers = &both[1].headers;
    assert_eq!(headers["authorization"], "Bearer live-token");
    assert_eq!(headers["cookie"], "session=abc123");
    assert_eq!(headers["x-api-key"], "key-42");
    assert!(
        headers.get("proxy-authorization").is_none(),
        "a value the export redacted is not sent even when credentials are kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_redacts_credentials_to_digests_that_keep_equal_values_equal() {
    let mesh = common::Mesh::start().await;
    let lab = common::start_lab(&mesh.yaml(common::TO_V1_MIRRORED), Some(1));
    let client = common::client();
    for token in ["Bearer one", "Bearer one", "Bearer two"] {
        client
            .get(format!("http://{}/reviews/1", lab.local_addr()))
            .header("host", "reviews")
            .header("authorization", token)
            .send()
            .await
            .expect("the lab answers");
    }
    let exchanges = common::wait_for_exchanges(lab.captures(), 3, Duration::from_secs(5)).await;
    let snapshot = lab.shutdown(Duration::from_secs(5)).await;
    let run = mirrorlab::export::RunInfo::ending_now(std::time::SystemTime::now());
    let dir = tempfile::tempdir().expect("temp dir");

    let redacted = dir.path().join("redacted.har");
    let meta = SessionMeta::new(Vec::new(), &run, &snapshot.settings, false);
    write_session_file(&redacted, &meta, &exchanges, Some(&snapshot)).expect("written");
    let text = std::fs::read_to_string(&redacted).expect("read");
    assert!(
        !text.contains("Bearer one") && !text.contains("Bearer two"),
        "{text}"
    );
    let session = mirrorlab::replay::sources::session::read_session(&redacted).expect("reads");
    let values: Vec<String> = session
        .exchanges
        .iter()
        .map(|e| {
            e.request.headers["authorization"]
                .to_str()
                .expect("ascii")
                .to_owned()
        })
        .collect();
    assert!(
        values.iter().all(|v| v.starts_with("[redacted:")),
        "{values:?}"
    );
    assert_eq!(values[0], values[1], "one token, one digest");
    assert_ne!(values[0], values[2], "another token, another digest");

    let kept = dir.path().join("kept.har");
    let meta = SessionMeta::new(Vec::new(), &run, &snapshot.settings, true);
    write_session_file(&kept, &meta, &exchanges, Some(&snapshot)).expect("written");
    let text = std::fs::read_to_string(&kept).expect("read");
    assert!(text.contains("Bearer one") && text.contains("Bearer two"));
}
