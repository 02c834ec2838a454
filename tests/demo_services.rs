//! The demo: reviews servers where the config's ServiceEntries say, v2 believably different,
//! and traffic through a real lab.

mod common;

use std::time::{Duration, Instant};

use common::client;
use mirrorlab::capture::{ShadowOutcome, UpstreamOutcome};
use mirrorlab::config::ConfigSet;
use mirrorlab::demo::{DemoServices, ReviewsVersion, TrafficGenerator, TrafficSettings};

/// The built-in sample with its fixed ports (9081-9083) swapped for ephemeral ones.
fn sample_on_port_zero() -> String {
    mirrorlab::demo::SAMPLE_CONFIG
        .replace("http: 9081", "http: 0")
        .replace("http: 9082", "http: 0")
        .replace("http: 9083", "http: 0")
}

#[tokio::test]
async fn the_sample_config_names_the_endpoints_the_demo_serves() {
    let set = ConfigSet::load_str("sample", mirrorlab::demo::SAMPLE_CONFIG);
    assert!(!set.has_errors(), "{:?}", set.diagnostics());
    let mut endpoints: Vec<(u16, ReviewsVersion)> = mirrorlab::demo::endpoints_from_config(&set)
        .iter()
        .map(|e| (e.addr.port(), e.version))
        .collect();
    endpoints.sort_by_key(|(port, _)| *port);
    endpoints.dedup();
    assert_eq!(
        endpoints,
        vec![
            (9081, ReviewsVersion::V1),
            (9082, ReviewsVersion::V2),
            (9083, ReviewsVersion::V3)
        ]
    );
}

#[tokio::test]
async fn an_endpoint_labelled_down_is_not_served() {
    // sample-configs/reviews-one-pod-down.yaml: the demo leaves 9089 unserved; the
    // default retry policy sends those requests to the live pod, and outlier detection
    // ejects the dead one.
    let text = std::fs::read_to_string("sample-configs/reviews-one-pod-down.yaml").expect("sample");
    let set = ConfigSet::load_str("sample", &text);
    assert!(set.diagnostics().is_empty(), "{:?}", set.diagnostics());
    let ports: Vec<u16> = mirrorlab::demo::endpoints_from_config(&set)
        .iter()
        .map(|e| e.addr.port())
        .collect();
    assert!(!ports.contains(&9089), "{ports:?}");
    assert!(ports.contains(&9081) && ports.contains(&9082), "{ports:?}");
}

#[tokio::test]
async fn v2_differs_from_v1_the_way_a_new_release_might() {
    // One endpoint per version, on ephemeral ports.
    let yaml = r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  ports:
  - number: 9080
    name: http
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      http: 0
    labels:
      version: v1
  - address: 127.0.0.1
    ports:
      http: 0
    labels:
      version: v2
"#;
    let set = ConfigSet::load_str("demo.yaml", yaml);
    let services =
        DemoServices::start(&tokio::runtime::Handle::current(), &set).expect("demo starts");
    let url = |version: ReviewsVersion, path: &str| {
        let endpoint = services
            .endpoints()
            .iter()
            .find(|e| e.version == version)
            .expect("endpoint of this version");
        format!("http://{}{path}", endpoint.addr)
    };
    let http = client();
    let v1: serde_json::Value = http
        .get(url(ReviewsVersion::V1, "/reviews/5"))
        .send()
        .await
        .expect("v1 answers")
        .json()
        .await
        .expect("v1 JSON");
    assert_eq!(v1["id"], "5");
    assert!(v1["reviews"][0]["rating"]["stars"].is_number());
    assert!(v1.get("summary").is_none());

    let mut v2_statuses = Vec::new();
    let mut v2_body = None;
    for _ in 0..100 {
        let sent = Instant::now();
        let response = http
            .get(url(ReviewsVersion::V2, "/reviews/5"))
            .send()
            .await
            .expect("v2 answers");
        // v2 sleeps 30 ms more than v1 before answering; this is a floor, not a stopwatch.
        assert!(sent.elapsed() >= Duration::from_millis(30));
        v2_statuses.push(response.status().as_u16());
        if response.status() == 200 && v2_body.is_none() {
            v2_body = Some(response.json::<serde_json::Value>().await.expect("v2 JSON"));
        }
    }
    let failures = v2_statuses.iter().filter(|s| **s == 500).count();
    assert_eq!(failures, 2, "a few 500s: one answer in fifty");
    let v2 = v2_body.expect("a 200 from v2");
    assert!(
        v2["summary"]["average_stars"].is_number(),
        "v2 adds a field"
    );
    assert_ne!(
        v2["reviews"][0]["rating"]["stars"], v1["reviews"][0]["rating"]["stars"],
        "v2 rates product 5 differently"
    );

    let created = http
        .post(url(ReviewsVersion::V1, "/reviews/3"))
        .body(r#"{"reviewer":"Ann","stars":4}"#)
        .send()
        .await
        .expect("post answers");
    assert_eq!(created.status(), 201);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_through_a_lab_with_the_demo_services_is_captured_with_its_shadows() {
    let handle = tokio::runtime::Handle::current();
    let set = ConfigSet::load_str("sample", &sample_on_port_zero());
    let services = DemoServices::start(&handle, &set).expect("demo starts");
    // Point the sample config at the ports the demo really got.
    let mut yaml = mirrorlab::demo::SAMPLE_CONFIG.to_owned();
    for (fixed, version) in [
        (9081, ReviewsVersion::V1),
        (9082, ReviewsVersion::V2),
        (9083, ReviewsVersion::V3),
    ] {
        let port = services
            .endpoints()
            .iter()
            .find(|e| e.version == version)
            .map(|e| e.addr.port())
            .expect("endpoint started");
        yaml = yaml.replace(&format!("http: {fixed}"), &format!("http: {port}"));
    }
    let lab = common::start_lab(&yaml, None);
    let cancel = tokio_util::sync::CancellationToken::new();
    let traffic = TrafficGenerator::start(
        &handle,
        cancel.clone(),
        TrafficSettings::new(lab.local_addr(), Some("reviews".to_owned()), 100.0),
    )
    .expect("traffic starts");
    let exchanges = common::wait_for_exchanges(lab.captures(), 40, Duration::from_secs(10)).await;
    traffic.stop().await;
    assert!(exchanges.len() >= 40, "{} exchanges", exchanges.len());
    let complete: Vec<_> = exchanges
        .iter()
        .filter(|e| {
            matches!(
                e.primary.as_ref().map(|p| &p.outcome),
                Some(UpstreamOutcome::Response(r)) if r.status.is_success()
            )
        })
        .collect();
    assert!(
        complete.len() >= 35,
        "{} of {} answered",
        complete.len(),
        exchanges.len()
    );
    assert!(complete.iter().all(|e| matches!(
        e.shadows[0].outcome,
        ShadowOutcome::Sent(UpstreamOutcome::Response(_))
    )));
    let methods: std::collections::BTreeSet<&str> = exchanges
        .iter()
        .map(|e| e.request.method.as_str())
        .collect();
    assert!(methods.contains("GET"));
    lab.shutdown(Duration::from_secs(5)).await;
    services.stop().await;
}
