//! The app's replay and sessions on real upstreams: Replay… sends a HAR's requests through
//! the proxy and they arrive in Traffic marked as replayed; File → Open session… shows a
//! saved session on Dashboard and Traffic with no proxy running.

mod ui_common;

use std::io::BufRead as _;
use std::path::Path;

use egui_kittest::kittest::Queryable as _;
use ui_common::{Upstream, app, mirror_config, runtime, send_requests, type_into, wait_until};

fn har(n: usize) -> String {
    let entries: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "startedDateTime": format!("2024-11-30T10:00:00.{:03}Z", i * 50),
                "request": {"method": "GET", "url": format!("http://reviews/reviews/{i}"), "headers": []},
                "response": {"status": 200},
            })
        })
        .collect();
    serde_json::json!({"log": {"version": "1.2", "entries": entries}}).to_string()
}

#[test]
fn replay_sends_a_har_through_the_proxy_and_marks_the_exchanges() {
    let rt = runtime();
    let v1 = Upstream::start(&rt, None);
    let v2 = Upstream::start(&rt, Some(r#""stars":5"#));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("reviews.yaml");
    std::fs::write(&config, mirror_config(v1.addr, v2.addr)).unwrap();
    let traffic = dir.path().join("traffic.har");
    std::fs::write(&traffic, har(4)).unwrap();
    let mut h = app(&rt, Some(&config));
    h.run_ok();
    assert!(h.state().lab.is_running());

    h.get_by_label("File").click();
    h.run_ok();
    h.get_by_label("Replay…").click();
    h.run_ok();
    type_into(&mut h, "Traffic file", &traffic.display().to_string());
    h.get_by_label("Start").click();
    h.run_ok();
    assert!(
        wait_until(&mut h, 15, |app| app.traffic.len() == 4
            && app.lab.view().replay.as_ref().is_some_and(|p| p.finished)),
        "the four replayed exchanges arrive"
    );
    let progress = h.state().lab.view().replay.clone().expect("a replay ran");
    assert_eq!(
        (progress.sent, progress.answered, progress.failed),
        (4, 4, 0)
    );
    assert_eq!(v1.hits(), 4);
    h.run_ok();
    h.get_by_label("4 sent of 4, 4 answered, 0 failed (done)");
    let marked = h
        .query_all_by(|node| node.value().is_some_and(|v| v.ends_with(" replay")))
        .count();
    assert_eq!(marked, 4, "each row of Traffic says it is replayed");

    // What the lab captured, saved as a session next to the config (the dialog's default).
    h.get_by_label("File").click();
    h.run_ok();
    h.get_by_label("Save session…").click();
    h.run_ok();
    h.get_by_label("Save").click();
    h.run_ok();
    let saved = dir.path().join("reviews.session.har");
    assert!(
        wait_until(&mut h, 10, |_| saved.exists() && session_complete(&saved)),
        "the session is written"
    );
    let session = mirrorlab::replay::sources::session::read_session(&saved).expect("it reads back");
    assert_eq!(session.exchanges.len(), 4);
    assert!(session.exchanges.iter().all(|e| e.replayed()));
    assert!(
        session.meta.config[0].text.contains("name: reviews-vs"),
        "with the config's text"
    );
}

/// The session file is complete (the writer closes the document last).
fn session_complete(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.trim_end().ends_with("]}}"))
}

/// `mirrorlab run --session` on `config` for two seconds with three requests through it.
fn saved_session(rt: &tokio::runtime::Runtime, config: &Path, session: &Path) {
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_mirrorlab"))
        .arg("run")
        .arg(config)
        .args(["--listen", "127.0.0.1:0", "--duration", "2", "--session"])
        .arg(session)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(run.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    send_requests(rt, addr, 3);
    assert!(run.wait().unwrap().success());
}

#[test]
fn a_saved_session_opens_on_the_dashboard_and_in_traffic_with_no_proxy() {
    let rt = runtime();
    let v1 = Upstream::start(&rt, None);
    let v2 = Upstream::start(&rt, Some(r#""stars":5"#));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("reviews.yaml");
    std::fs::write(&config, mirror_config(v1.addr, v2.addr)).unwrap();
    let session = dir.path().join("saved.session.har");
    saved_session(&rt, &config, &session);

    let mut h = app(&rt, None);
    h.run_ok();
    h.get_by_label("File").click();
    h.run_ok();
    h.get_by_label("Open session…").click();
    h.run_ok();
    type_into(&mut h, "Session to open", &session.display().to_string());
    h.get_by_label("Open").click();
    h.run_ok();
    assert!(
        wait_until(&mut h, 15, |app| app.traffic.len() == 3),
        "the session's exchanges are in Traffic"
    );
    assert!(!h.state().lab.is_running(), "no proxy runs for a session");
    assert_eq!(
        h.state().lab.view().session.as_deref(),
        Some(session.as_path())
    );
    assert_eq!(h.state().lab.analysis().exchanges, 3);
    h.run_ok();
    h.get_by_label("Primary (reviews/v1)");
    h.get_by_label("Shadow reviews/v2");
    assert_eq!(h.get_all_by_label("3 (3 answered)").count(), 2);
    h.get_by_label("Diffs").click();
    h.run_ok();
    h.get_by_label_contains("/stars");
}

#[test]
fn two_sessions_compare_side_by_side_per_field() {
    let rt = runtime();
    let v1 = Upstream::start(&rt, None);
    let differs = Upstream::start(&rt, Some(r#""stars":5"#));
    let same = Upstream::start(&rt, None);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        dir.path().join("v2.session.har"),
        dir.path().join("v3.session.har"),
    );
    for (shadow, session) in [(&differs, &a), (&same, &b)] {
        let config = dir.path().join("reviews.yaml");
        std::fs::write(&config, mirror_config(v1.addr, shadow.addr)).unwrap();
        saved_session(&rt, &config, session);
    }

    let mut h = app(&rt, None);
    h.run_ok();
    h.get_by_label("File").click();
    h.run_ok();
    h.get_by_label("Compare sessions…").click();
    h.run_ok();
    type_into(&mut h, "Session A", &a.display().to_string());
    type_into(&mut h, "Session B", &b.display().to_string());
    h.get_by_label("Compare").click();
    h.run_ok();
    assert!(wait_until(&mut h, 15, |app| app.lab.is_idle()));
    h.run_ok();
    // v2 differs at /stars in every exchange; v3, answering as v1 does, in none.
    h.get_by_label_contains("field /stars");
    h.get_by_label("100.0% real");
    // The share of exchanges that differ really, and the field's rate, both fall by 100 points.
    assert_eq!(h.get_all_by_label("-100.00 pts").count(), 2);
    assert!(h.get_all_by_label("3").count() >= 2, "3 requests in each");
}
