//! `mirrorlab run` as a user runs it: the real binary, a config file that changes under it,
//! SIGTERM, and the JSON report it leaves behind.

mod common;

use std::time::Duration;

use common::{Mesh, client};
use tokio::process::Command;

async fn get(addr: &str, n: usize) {
    let http = client();
    for _ in 0..n {
        // Addressed to the proxy itself: the only VirtualService's host is the default.
        let response = http
            .get(format!("http://{addr}/reviews/1"))
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_hot_reloads_from_the_file_and_reports_at_sigterm() {
    let mesh = Mesh::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("reviews.yaml");
    let report = dir.path().join("report.json");
    let har = dir.path().join("run.har");
    std::fs::write(&config, mesh.yaml(common::TO_V1_MIRRORED_NAMED)).expect("write config");

    let common::RunChild {
        mut child,
        addr,
        logs,
        ..
    } = common::spawn_run([
        config.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--seed".as_ref(),
        "5".as_ref(),
        "--duration".as_ref(),
        "60".as_ref(),
        "--workers".as_ref(),
        "2".as_ref(),
        "--report".as_ref(),
        report.as_os_str(),
        "--har".as_ref(),
        har.as_os_str(),
    ])
    .await;

    get(&addr, 10).await;
    assert_eq!(mesh.v1.received().len(), 10);

    // A broken edit (a subset nothing defines) is refused; the old routes keep serving.
    std::fs::write(
        &config,
        mesh.yaml(&format!(
            "# edited\n{}",
            common::TO_V1_MIRRORED_NAMED.replace("subset: v2", "subset: v9")
        )),
    )
    .expect("write broken config");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    get(&addr, 5).await;
    assert_eq!(mesh.v1.received().len(), 15, "old routes still serve");

    // A good edit is picked up: traffic moves to v3.
    std::fs::write(
        &config,
        mesh.yaml(&format!(
            "# fixed\n{}",
            common::TO_V1_MIRRORED_NAMED.replace("subset: v1", "subset: v3")
        )),
    )
    .expect("write new config");
    let mut moved = false;
    for _ in 0..50 {
        get(&addr, 1).await;
        if !mesh.v3.received().is_empty() {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(moved, "the new config was applied");
    let total_requests = mesh.v1.received().len() + mesh.v3.received().len();

    let pid = child.id().expect("child pid");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("wait");
    let logs = logs.await.expect("stderr");
    assert!(status.success(), "exit status {status}; stderr:\n{logs}");
    assert!(logs.contains("config change refused"), "stderr:\n{logs}");
    assert!(
        logs.contains("IST0101"),
        "the refusal names the problem; stderr:\n{logs}"
    );
    assert!(logs.contains("config reloaded"), "stderr:\n{logs}");
    assert!(logs.contains("SIGTERM"), "stderr:\n{logs}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report written"))
            .expect("report is JSON");
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["run"]["seed"], 5);
    let routes = report["routes"].as_array().expect("routes");
    let requests: u64 = routes
        .iter()
        .map(|r| r["requests"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(requests, total_requests as u64);
    let route = &routes[0];
    assert_eq!(route["route_name"], "reviews-v1-mirrored");
    assert_eq!(route["primary"]["status"]["codes"]["200"], requests);
    let mirror = &route["mirrors"][0];
    assert_eq!(
        mirror["sent"], requests,
        "every request was mirrored: {mirror}"
    );
    assert_eq!(mirror["status"]["codes"]["200"], requests);
    let har: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&har).expect("HAR written"))
            .expect("HAR is JSON");
    let entries = har["log"]["entries"].as_array().expect("HAR entries");
    assert_eq!(entries.len() as u64, requests);
    assert_eq!(entries[0]["_shadows"].as_array().map(Vec::len), Some(1));
    // The headless HAR carries the analysis' split of each mirror's differences too.
    assert_eq!(
        entries[0]["_mirrorlab"]["diffs"][0]["state"], "compared",
        "{:#}",
        entries[0]
    );
    let counted: u64 = entries
        .iter()
        .filter_map(|e| e["_mirrorlab"]["diffs"][0]["realDifferences"].as_u64())
        .count() as u64;
    assert_eq!(counted, requests);
    for side in [&route["primary"], mirror] {
        let latency = &side["latency_ms"]["total"];
        for key in ["p50", "p90", "p99", "max"] {
            assert!(latency[key].as_f64().is_some(), "{key} in {latency}");
        }
    }
}

#[tokio::test]
async fn run_refuses_a_non_loopback_address_without_allow_remote() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("reviews.yaml");
    let mesh = Mesh::start().await;
    std::fs::write(&config, mesh.yaml(common::TO_V1_MIRRORED_NAMED)).expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_mirrorlab"))
        .arg("run")
        .arg(&config)
        .args(["--listen", "0.0.0.0:0", "--duration", "1"])
        .output()
        .await
        .expect("run mirrorlab");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow-remote"), "stderr: {stderr}");
}

#[tokio::test]
async fn run_refuses_a_broken_config_at_start_with_its_diagnostics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("broken.yaml");
    let mesh = Mesh::start().await;
    std::fs::write(
        &config,
        mesh.yaml(&common::TO_V1_MIRRORED_NAMED.replace("subset: v2", "subset: v9")),
    )
    .expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_mirrorlab"))
        .arg("run")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--duration", "1"])
        .output()
        .await
        .expect("run mirrorlab");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("IST0101") && stderr.contains("broken.yaml"),
        "stderr: {stderr}"
    );
    assert!(output.stdout.is_empty(), "never said it was listening");
}

/// A canary route for productpage's sidecar, and a redirect route: `mirrorlab run
/// --source-labels` plays that workload, and the report counts what answered.
const CANARY: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-vs
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new}
  - match: [{sourceLabels: {app: productpage}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_plays_the_source_workload_it_is_given_and_reports_actions() {
    let mesh = Mesh::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("reviews.yaml");
    let report = dir.path().join("report.json");
    std::fs::write(&config, mesh.yaml(CANARY)).expect("write config");
    let common::RunChild {
        mut child, addr, ..
    } = common::spawn_run([
        config.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--duration".as_ref(),
        "3".as_ref(),
        "--source-labels".as_ref(),
        "app=productpage,version=v1".as_ref(),
        "--report".as_ref(),
        report.as_os_str(),
    ])
    .await;
    get(&addr, 3).await;
    assert_eq!(
        mesh.v3.received().len(),
        3,
        "productpage's sidecar takes the canary route"
    );
    assert!(mesh.v1.received().is_empty());
    let redirect = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(format!("http://{addr}/old"))
        .send()
        .await
        .expect("answered");
    assert_eq!(redirect.status(), 301);
    let status = child.wait().await.expect("run exits");
    assert!(status.success(), "{status}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let routes = report["routes"].as_array().expect("routes");
    let redirect_route = routes
        .iter()
        .find(|r| r["route_index"] == 0)
        .expect("the redirect route is reported");
    assert_eq!(redirect_route["actions"]["redirect"], 1);
}

const MIRRORED: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-vs
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews-v2, subset: v2}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_edits_every_mirrored_copy_as_its_flags_say() {
    // The lab-wide edits come before each route's annotations and touch only the copies:
    // the primary gets the client's headers.
    let mesh = Mesh::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("reviews.yaml");
    std::fs::write(&config, mesh.yaml(MIRRORED)).expect("write config");
    let common::RunChild {
        mut child, addr, ..
    } = common::spawn_run([
        config.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--duration".as_ref(),
        "3".as_ref(),
        "--shadow-host-suffix".as_ref(),
        "--mirror-remove-headers".as_ref(),
        "authorization,cookie".as_ref(),
        "--mirror-set-header".as_ref(),
        "authorization: Bearer test-token".as_ref(),
        "--mirror-set-header".as_ref(),
        "x-mirrored: yes".as_ref(),
    ])
    .await;
    common::client()
        .get(format!("http://{addr}/reviews/1"))
        .header("host", "reviews")
        .header("authorization", "Bearer real")
        .header("cookie", "session=1")
        .send()
        .await
        .expect("answered");
    let shadow = mesh.v2.wait_for(1, Duration::from_secs(5)).await;
    let copy = &shadow[0].headers;
    assert_eq!(copy["authorization"], "Bearer test-token");
    assert_eq!(copy["x-mirrored"], "yes");
    assert!(copy.get("cookie").is_none(), "{copy:?}");
    assert_eq!(copy["host"], "reviews-shadow");
    let primary = &mesh.v1.received()[0].headers;
    assert_eq!(primary["authorization"], "Bearer real");
    assert_eq!(primary["cookie"], "session=1");
    let status = child.wait().await.expect("run exits");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn run_refuses_a_protected_mirror_header() {
    // x-request-id joins the primary and its copies; the annotations refuse to edit it, and
    // so does the flag.
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorlab"))
        .args(["run", "x.yaml", "--mirror-remove-headers", "x-request-id"])
        .output()
        .await
        .expect("run mirrorlab");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("x-request-id"), "{stderr}");
}

#[tokio::test]
async fn run_refuses_malformed_workload_flags_with_what_to_write() {
    for (flag, value, hint) in [
        ("--source-labels", "app", "KEY=VALUE"),
        ("--gateway", "just-a-name", "NAMESPACE/NAME"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mirrorlab"))
            .args(["run", "x.yaml", flag, value])
            .output()
            .await
            .expect("run mirrorlab");
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(hint), "{flag}: {stderr}");
    }
}
