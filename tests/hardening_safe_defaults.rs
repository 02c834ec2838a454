//! Safe defaults: credentials kept from the shadow when asked (per VirtualService, per route
//! or lab-wide), a loopback-only listener unless allowed, exports that redact credentials,
//! and nothing of the traffic written to disk unless the user exports it.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{Mesh, client};
use mirrorlab::config::ConfigSet;
use mirrorlab::export::har::{HarOptions, REDACTED, write_har};
use mirrorlab::lab::{Lab, LabError, LabSettings};
use mirrorlab::routing::MirrorHeaders;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);
const SECRET: &str = "prod-secret-7f3a";

/// Two routes, both mirrored to reviews-v2; the VirtualService strips credentials from every
/// copy and the `canary` route also replaces the API key.
const VIRTUAL_SERVICE: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-vs
  annotations:
    mirrorlab.dev/mirror-remove-headers: authorization, cookie
    mirrorlab.dev/mirror-set-headers.canary: |
      x-api-key: shadow-test-key
      x-mirrored-by: mirrorlab
spec:
  hosts:
  - reviews
  http:
  - name: canary
    match:
    - uri:
        prefix: /canary
    route:
    - destination:
        host: reviews
        subset: v1
    mirror:
      host: reviews-v2
      subset: v2
  - name: rest
    route:
    - destination:
        host: reviews
        subset: v1
    mirror:
      host: reviews-v2
      subset: v2
"#;

async fn send_with_credentials(addr: SocketAddr, path: &str) {
    let response = client()
        .get(format!("http://{addr}{path}"))
        .header("host", "reviews")
        .header("authorization", format!("Bearer {SECRET}"))
        .header("cookie", format!("session={SECRET}; theme=dark"))
        .header("x-api-key", SECRET)
        .send()
        .await
        .expect("proxy answers");
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_keep_credentials_from_the_shadow_but_not_from_the_primary() {
    let mesh = Mesh::start().await;
    let lab = common::start_lab(&mesh.yaml(VIRTUAL_SERVICE), Some(1));
    send_with_credentials(lab.local_addr(), "/canary/1").await;
    send_with_credentials(lab.local_addr(), "/reviews/1").await;

    let to_primary = mesh.v1.wait_for(2, WAIT).await;
    let to_shadow = mesh.v2.wait_for(2, WAIT).await;
    assert_eq!(to_shadow.len(), 2);
    for p in &to_primary {
        // The primary is production: it gets exactly what the client sent.
        assert_eq!(
            p.headers["authorization"],
            format!("Bearer {SECRET}").as_str()
        );
        assert!(
            p.headers["cookie"]
                .to_str()
                .expect("ascii")
                .contains(SECRET)
        );
        assert_eq!(p.headers["x-api-key"], SECRET);
        assert!(p.headers.get("x-mirrored-by").is_none());
    }
    let canary = to_shadow
        .iter()
        .find(|r| r.uri.path().starts_with("/canary"))
        .expect("canary copy");
    let rest = to_shadow
        .iter()
        .find(|r| r.uri.path().starts_with("/reviews"))
        .expect("rest copy");
    for copy in [canary, rest] {
        assert!(
            copy.headers.get("authorization").is_none(),
            "{:?}",
            copy.headers
        );
        assert!(copy.headers.get("cookie").is_none(), "{:?}", copy.headers);
        // Everything else still arrives verbatim, with the pairing id.
        assert_eq!(copy.headers["host"], "reviews");
        assert!(copy.headers.get("x-request-id").is_some());
    }
    assert_eq!(
        canary.headers["x-api-key"], "shadow-test-key",
        "replaced on canary"
    );
    assert_eq!(canary.headers["x-mirrored-by"], "mirrorlab");
    assert_eq!(
        rest.headers["x-api-key"], SECRET,
        "the canary-only rule stays on canary"
    );
    let _ = lab.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_wide_setting_strips_headers_from_every_mirror() {
    let mesh = Mesh::start().await;
    let plain = VIRTUAL_SERVICE
        .lines()
        .filter(|l| {
            !l.contains("mirrorlab.dev")
                && !l.contains("annotations")
                && !l.contains(": shadow-test-key")
                && !l.contains("x-mirrored-by")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let lab = Lab::start(
        &tokio::runtime::Handle::current(),
        CancellationToken::new(),
        LabSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            mirror_headers: MirrorHeaders {
                remove: vec![http::HeaderName::from_static("x-api-key")],
                set: vec![(
                    http::header::AUTHORIZATION,
                    http::HeaderValue::from_static("Bearer shadow"),
                )],
            },
            ..LabSettings::default()
        },
        common::route_table(&mesh.yaml(&plain)),
    )
    .expect("start lab");
    send_with_credentials(lab.local_addr(), "/reviews/1").await;
    let copy = &mesh.v2.wait_for(1, WAIT).await[0];
    assert!(copy.headers.get("x-api-key").is_none());
    assert_eq!(copy.headers["authorization"], "Bearer shadow");
    let original = &mesh.v1.wait_for(1, WAIT).await[0];
    assert_eq!(original.headers["x-api-key"], SECRET);
    let _ = lab.shutdown(WAIT).await;
}

#[test]
fn malformed_header_annotations_are_errors_with_their_line() {
    let yaml = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-vs
  annotations:
    mirrorlab.dev/mirror-remove-headers: authorization, x-request-id
    mirrorlab.dev/mirror-set-headers: "authorization Bearer x"
    mirrorlab.dev/mirror-remove-headers.nope: cookie
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
"#;
    let set = ConfigSet::load_str("bad.yaml", yaml);
    let by_code = |code: &str| {
        set.diagnostics()
            .iter()
            .filter(|d| d.code == code)
            .map(|d| (d.line, d.message.clone()))
            .collect::<Vec<_>>()
    };
    let errors = by_code("ML0110");
    assert_eq!(errors.len(), 2, "{:?}", set.diagnostics());
    assert_eq!(errors[0].0, 6);
    assert!(errors[0].1.contains("x-request-id"), "{}", errors[0].1);
    assert_eq!(errors[1].0, 7);
    let warnings = by_code("ML0207");
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].0, 8);
    assert!(warnings[0].1.contains("`nope`"));
    assert!(mirrorlab::routing::RouteTable::compile(&set).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_is_loopback_only_unless_remote_access_is_allowed() {
    let mesh = Mesh::start().await;
    let table = || common::route_table(&mesh.yaml(VIRTUAL_SERVICE));
    let start = |listen: SocketAddr, allow_remote: bool, table| {
        Lab::start(
            &tokio::runtime::Handle::current(),
            CancellationToken::new(),
            LabSettings {
                listen,
                allow_remote,
                ..LabSettings::default()
            },
            table,
        )
    };
    assert_eq!(
        LabSettings::default().listen,
        SocketAddr::from(([127, 0, 0, 1], 15001))
    );
    let refused = start(SocketAddr::from(([0, 0, 0, 0], 0)), false, table());
    match refused {
        Err(err @ LabError::RemoteListen { .. }) => {
            assert!(err.to_string().contains("--allow-remote"), "{err}");
        }
        other => panic!("a wildcard address without the flag must be refused: {other:?}"),
    }
    let loopback = start(SocketAddr::from(([127, 0, 0, 1], 0)), false, table()).expect("loopback");
    let _ = loopback.shutdown(WAIT).await;
    let allowed = start(SocketAddr::from(([0, 0, 0, 0], 0)), true, table()).expect("allowed");
    let _ = allowed.shutdown(WAIT).await;

    // The command line says the same, before binding anything.
    let output = Command::new(env!("CARGO_BIN_EXE_mirrorlab"))
        .args([
            "run",
            "sample-configs/reviews-mirror.yaml",
            "--listen",
            "0.0.0.0:0",
            "--duration",
            "1",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .await
        .expect("run mirrorlab");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_redact_credentials_by_default() {
    let mesh = Mesh::start().await;
    let lab = common::start_lab(&mesh.yaml(VIRTUAL_SERVICE), Some(1));
    send_with_credentials(lab.local_addr(), "/canary/1").await;
    let exchanges = common::wait_for_exchanges(lab.captures(), 1, WAIT).await;
    let exchanges: Vec<_> = exchanges.iter().map(|e| (**e).clone()).collect();
    let mut har = Vec::new();
    write_har(&mut har, &exchanges, &HarOptions::default(), None).expect("write HAR");
    let har = String::from_utf8(har).expect("HAR is UTF-8");
    assert!(
        !har.contains(SECRET),
        "a credential leaked into the default export"
    );
    assert!(har.contains(REDACTED));
    // Opting out is explicit, and then the values are there.
    let mut raw = Vec::new();
    write_har(
        &mut raw,
        &exchanges,
        &HarOptions {
            redact: false,
            ..HarOptions::default()
        },
        None,
    )
    .expect("write HAR");
    assert!(String::from_utf8_lossy(&raw).contains(SECRET));
    let _ = lab.shutdown(WAIT).await;
}

/// Every file under `dir`, relative.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable temp dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(
                    path.strip_prefix(dir)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                );
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headless_run_writes_nothing_to_disk_but_the_report_it_was_asked_for() {
    let mesh = Mesh::start().await;
    let home = tempfile::tempdir().expect("temp dir");
    let config = home.path().join("reviews.yaml");
    std::fs::write(&config, mesh.yaml(VIRTUAL_SERVICE)).expect("write config");
    let report = home.path().join("report.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mirrorlab"))
        .arg("run")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--duration", "3"])
        .arg("--report")
        .arg(&report)
        // Everywhere a program might write by default points into the temp dir.
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("TMPDIR", home.path())
        .env("XDG_DATA_HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env("XDG_CACHE_HOME", home.path())
        .env("XDG_STATE_HOME", home.path())
        .env_remove("HTTP_PROXY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start mirrorlab run");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("listening line in time")
        .expect("read stdout")
        .expect("a first line");
    let addr: SocketAddr = first
        .strip_prefix("listening on ")
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"));
    for path in ["/canary/1", "/reviews/2", "/reviews/3"] {
        send_with_credentials(addr, path).await;
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("run ends after its duration")
        .expect("wait");
    assert!(status.success());
    assert_eq!(
        files_under(home.path()),
        ["report.json", "reviews.yaml"],
        "the run wrote files nobody asked for"
    );
    let text = std::fs::read_to_string(&report).expect("report");
    assert!(!text.contains(SECRET), "a credential reached the report");
}
