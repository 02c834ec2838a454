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
