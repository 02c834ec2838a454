//! Istio's mirroring semantics end to end: real Istio YAML compiled into the lab, real
//! upstreams on 127.0.0.1, requests through the proxy.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Mesh, client};
use mirrorlab::capture::{Exchange, ShadowOutcome, SkipReason};
use mirrorlab::lab::{CompiledConfig, Lab, LabError};

const WAIT: Duration = Duration::from_secs(10);

/// Sends `n` GETs for `path` through the lab, `parallel` at a time, and checks each is 200.
async fn send_many(lab: &Lab, n: usize, parallel: usize, path: &str) {
    let http = client();
    let url = format!("http://{}{path}", lab.local_addr());
    let mut workers = Vec::new();
    for worker in 0..parallel {
        let (http, url) = (http.clone(), url.clone());
        let share = n / parallel + usize::from(worker < n % parallel);
        workers.push(tokio::spawn(async move {
            for _ in 0..share {
                let response = http
                    .get(&url)
                    .header("host", "reviews")
                    .send()
                    .await
                    .expect("proxy answers");
                assert_eq!(response.status(), 200);
                response.bytes().await.expect("body");
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
}

fn sent(exchange: &Exchange, mirror: usize) -> bool {
    matches!(exchange.shadows[mirror].outcome, ShadowOutcome::Sent(_))
}

/// The tutorial's VirtualService with `mirrorPercentage: 0`.
fn never_mirrored() -> String {
    format!(
        "{}    mirrorPercentage:\n      value: 0\n",
        common::TO_V1_MIRRORED
    )
}

async fn all_exchanges(lab: &Lab, n: usize) -> Vec<Arc<Exchange>> {
    let exchanges = common::wait_for_exchanges(lab.captures(), n, WAIT).await;
    assert_eq!(exchanges.len(), n, "every request yields one exchange");
    exchanges
}

#[tokio::test]
async fn routes_are_tried_in_order_and_the_first_match_wins() {
    let mesh = Mesh::start().await;
    let lab = common::start_lab(
        &mesh.yaml(
            r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - name: special
    match:
    - uri:
        prefix: /reviews/special
    route:
    - destination:
        host: reviews
        subset: v3
  - name: all-reviews
    match:
    - uri:
        prefix: /reviews
    route:
    - destination:
        host: reviews
        subset: v1
    mirror:
      host: reviews-v2
      subset: v2
  - name: also-reviews-never-reached
    match:
    - uri:
        prefix: /reviews/1
    route:
    - destination:
        host: reviews
        subset: v3
"#,
        ),
        None,
    );
    send_many(&lab, 1, 1, "/reviews/special/1").await;
    send_many(&lab, 2, 1, "/reviews/1").await;
    let exchanges = all_exchanges(&lab, 3).await;
    let routes: Vec<Option<String>> = exchanges
        .iter()
        .map(|e| {
            e.trace
                .as_ref()
                .and_then(|t| t.route_name.as_deref().map(str::to_owned))
        })
        .collect();
    assert_eq!(
        routes,
        vec![
            Some("special".to_owned()),
            Some("all-reviews".to_owned()),
            Some("all-reviews".to_owned())
        ]
    );
    assert_eq!(mesh.v3.received().len(), 1);
    assert_eq!(mesh.v1.received().len(), 2);
    assert_eq!(
        mesh.v2.wait_for(2, WAIT).await.len(),
        2,
        "only the second route mirrors"
    );
    assert!(exchanges[0].shadows.is_empty());
    lab.shutdown(WAIT).await;
}

#[tokio::test]
async fn only_requests_whose_user_agent_matches_the_regex_are_mirrored() {
    let mesh = Mesh::start().await;
    // The tutorial's third example, verbatim.
    let lab = common::start_lab(
        &mesh.yaml(
            r#"apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: reviews-vs
spec:
  hosts:
  - reviews
  http:
  - match:
    - headers:
        user-agent:
          regex: ".*testing.*"
    route:
    - destination:
        host: reviews
        subset: v1
      weight: 100
    mirror:
      host: reviews-v2
      subset: v2
  - route: # This route handles all other traffic
    - destination:
        host: reviews
        subset: v1
      weight: 100
"#,
        ),
        None,
    );
    let http = client();
    let agents = [
        "my-testing-tool/1.0",
        "testing",
        "curl/8.5.0",
        "Mozilla/5.0 (X11; Linux x86_64)",
        "load-testing-bot",
        "TESTING-upper-case",
    ];
    for agent in agents {
        let response = http
            .get(format!("http://{}/reviews/1", lab.local_addr()))
            .header("host", "reviews")
            .header("user-agent", agent)
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(response.status(), 200);
    }
    let exchanges = all_exchanges(&lab, agents.len()).await;
    let shadowed = mesh.v2.wait_for(3, WAIT).await;
    let mut mirrored_agents: Vec<&str> = shadowed
        .iter()
        .map(|r| r.headers["user-agent"].to_str().expect("ascii"))
        .collect();
    mirrored_agents.sort_unstable();
    assert_eq!(
        mirrored_agents,
        vec!["load-testing-bot", "my-testing-tool/1.0", "testing"]
    );
    assert_eq!(
        mesh.v1.received().len(),
        agents.len(),
        "every request reaches the primary"
    );
    let route_indexes: Vec<usize> = exchanges
        .iter()
        .map(|e| e.trace.as_ref().map_or(99, |t| t.route_index))
        .collect();
    assert_eq!(route_indexes, vec![0, 0, 1, 1, 0, 1]);
    lab.shutdown(WAIT).await;
}

const TWENTY_FIVE_PERCENT: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-vs
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 100
    mirror:
      host: reviews-v2
      subset: v2
    mirrorPercentage:
      value: 25.0
"#;

/// Runs 2,000 requests through a fresh lab with `seed`; returns the draw per request id.
async fn twenty_five_percent_run(mesh: &Mesh, seed: u64) -> Vec<bool> {
    let lab = common::start_lab(&mesh.yaml(TWENTY_FIVE_PERCENT), Some(seed));
    send_many(&lab, 2000, 8, "/reviews/1").await;
    let exchanges = all_exchanges(&lab, 2000).await;
    let counters = lab.counters();
    assert_eq!(counters.requests, 2000);
    assert_eq!(counters.mirrored + counters.skipped_not_sampled, 2000);
    lab.shutdown(WAIT).await;
    exchanges.iter().map(|e| sent(e, 0)).collect()
}

#[tokio::test]
async fn a_25_percent_mirror_samples_a_quarter_and_a_seed_repeats_the_draws() {
    let mesh = Mesh::start().await;
    let first = twenty_five_percent_run(&mesh, 42).await;
    let mirrored = first.iter().filter(|s| **s).count();
    // Binomial(2000, 0.25): mean 500, sd 19.4; 4.5 sd either side.
    assert!(
        (413..=587).contains(&mirrored),
        "{mirrored} of 2000 mirrored at 25%"
    );
    assert_eq!(mesh.v2.wait_for(mirrored, WAIT).await.len(), mirrored);

    let again = twenty_five_percent_run(&mesh, 42).await;
    assert_eq!(first, again, "the same seed gives the same draws");
    let other = twenty_five_percent_run(&mesh, 43).await;
    assert_ne!(first, other, "another seed gives other draws");
}

#[tokio::test]
async fn mirrors_to_two_shadows_draw_each_percentage_on_its_own() {
    let mesh = Mesh::start().await;
    let lab = common::start_lab(
        &mesh.yaml(
            r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-vs
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
    mirrors:
    - destination:
        host: reviews-v2
        subset: v2
      percentage:
        value: 100
    - destination:
        host: reviews
        subset: v3
      percentage:
        value: 40
"#,
        ),
        Some(7),
    );
    send_many(&lab, 1000, 8, "/reviews/2").await;
    let exchanges = all_exchanges(&lab, 1000).await;
    let to_v2 = exchanges.iter().filter(|e| sent(e, 0)).count();
    let to_v3 = exchanges.iter().filter(|e| sent(e, 1)).count();
    assert_eq!(to_v2, 1000);
    // Binomial(1000, 0.4): mean 400, sd 15.5; 4.5 sd either side.
    assert!(
        (330..=470).contains(&to_v3),
        "{to_v3} of 1000 mirrored at 40%"
    );
    assert_eq!(mesh.v2.wait_for(1000, WAIT).await.len(), 1000);
    let v3 = mesh.v3.wait_for(to_v3, WAIT).await;
    assert_eq!(v3.len(), to_v3);
    // Each copy carries its primary's x-request-id.
    let primary_ids: std::collections::HashSet<String> = mesh
        .v1
        .received()
        .iter()
        .map(|r| {
            r.headers["x-request-id"]
                .to_str()
                .expect("ascii")
                .to_owned()
        })
        .collect();
    assert_eq!(primary_ids.len(), 1000, "one fresh id per request");
    assert!(
        v3.iter()
            .all(|r| primary_ids.contains(r.headers["x-request-id"].to_str().expect("ascii")))
    );
    let targets: Vec<&str> = exchanges[0].shadows.iter().map(|s| &*s.target).collect();
    assert_eq!(targets.len(), 2);
    lab.shutdown(WAIT).await;
}

#[tokio::test]
async fn mirror_percentage_zero_never_mirrors() {
    let mesh = Mesh::start().await;
    let lab = common::start_lab(&mesh.yaml(&never_mirrored()), None);
    // A subscriber that never reads: its captures are dropped and counted, never waited on.
    let _stalled = lab.subscribe(1);
    send_many(&lab, 200, 4, "/reviews/3").await;
    let exchanges = all_exchanges(&lab, 200).await;
    assert_eq!(lab.counters().captures_dropped, 199);
    assert!(exchanges.iter().all(|e| matches!(
        e.shadows[0].outcome,
        ShadowOutcome::Skipped(SkipReason::NotSampled)
    )));
    assert_eq!(lab.counters().skipped_not_sampled, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(mesh.v2.received().is_empty());
    assert_eq!(mesh.v1.received().len(), 200);
    lab.shutdown(WAIT).await;
}

/// A request that is not mirrored is recorded without an exchange task: its body and its
/// primary's answer are joined by whichever ends last. Both must be whole in the capture.
#[tokio::test]
async fn an_unmirrored_upload_is_captured_whole_with_its_answer() {
    let mesh = Mesh::start().await;
    let lab = common::start_lab(&mesh.yaml(&never_mirrored()), None);
    let http = client();
    let url = format!("http://{}/reviews/7", lab.local_addr());
    for i in 0..20 {
        let body = format!("{{\"rating\": {i}, \"text\": \"{}\"}}", "x".repeat(i * 100));
        let response = http
            .post(&url)
            .header("host", "reviews")
            .body(body)
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(response.status(), 200);
        response.bytes().await.expect("body");
    }
    let exchanges = all_exchanges(&lab, 20).await;
    let received = mesh.v1.received();
    assert_eq!(received.len(), 20);
    for exchange in &exchanges {
        let request_body = &exchange.request.body;
        assert!(!request_body.truncated);
        assert_eq!(request_body.total_len, request_body.bytes.len() as u64);
        assert!(
            received.iter().any(|r| r.body == request_body.bytes),
            "the captured body is the one the primary got"
        );
        let primary = exchange.primary.as_ref().expect("routed");
        match &primary.outcome {
            mirrorlab::capture::UpstreamOutcome::Response(response) => {
                assert_eq!(response.status, 200);
                assert!(!response.body.bytes.is_empty());
            }
            other => panic!("the primary answered, yet the capture says {other:?}"),
        }
        assert!(matches!(
            exchange.shadows[0].outcome,
            ShadowOutcome::Skipped(SkipReason::NotSampled)
        ));
    }
    assert!(mesh.v2.received().is_empty());
    assert_eq!(lab.counters().skipped_not_sampled, 20);
    lab.shutdown(WAIT).await;
}

#[tokio::test]
async fn a_hot_reload_with_a_broken_config_keeps_the_old_routes_serving() {
    let mesh = Mesh::start().await;
    let lab = common::start_lab(&mesh.yaml(common::TO_V1_MIRRORED), None);
    send_many(&lab, 3, 1, "/reviews/1").await;
    assert_eq!(mesh.v1.received().len(), 3);

    // A mirror to a subset nothing defines: Istio's IST0101. Refused with its diagnostics.
    let broken = mesh.yaml(&common::TO_V1_MIRRORED.replace("subset: v2", "subset: v9"));
    match CompiledConfig::from_text("broken.yaml", &broken) {
        Err(LabError::Config { diagnostics, .. }) => {
            assert!(
                diagnostics
                    .iter()
                    .any(|d| d.contains("IST0101") && d.contains("v9")),
                "diagnostics name the problem: {diagnostics:?}"
            );
        }
        Ok(_) => panic!("a config with IST0101 must be refused"),
        Err(other) => panic!("unexpected error: {other}"),
    }
    // Not even YAML.
    assert!(CompiledConfig::from_text("garbage.yaml", "spec: [unclosed").is_err());
    send_many(&lab, 3, 1, "/reviews/1").await;
    assert_eq!(mesh.v1.received().len(), 6, "the old routes keep serving");
    assert_eq!(mesh.v2.wait_for(6, WAIT).await.len(), 6);

    // A good config is swapped in: new requests go to v3, unmirrored.
    let to_v3 = CompiledConfig::from_text(
        "fixed.yaml",
        &mesh.yaml(
            &common::TO_V1_MIRRORED
                .replace("subset: v1", "subset: v3")
                .replace(
                    "    mirror:\n      host: reviews-v2\n      subset: v2\n",
                    "",
                ),
        ),
    )
    .expect("valid config");
    lab.apply_config(to_v3);
    send_many(&lab, 2, 1, "/reviews/1").await;
    assert_eq!(mesh.v3.received().len(), 2);
    assert_eq!(mesh.v1.received().len(), 6);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(mesh.v2.received().len(), 6);
    lab.shutdown(WAIT).await;
}

#[tokio::test]
async fn in_flight_requests_finish_on_the_table_they_started_with() {
    let mesh = Mesh::start().await;
    let slow_v1 = common::TestUpstream::start(
        "slow-v1",
        common::Reply::ok("old table").delay(Duration::from_millis(600)),
    )
    .await;
    let ports = common::MeshPorts {
        v1: slow_v1.addr.port(),
        ..mesh.ports()
    };
    let lab = common::start_lab(&common::mesh_yaml(ports, common::TO_V1_MIRRORED), None);
    let url = format!("http://{}/reviews/1", lab.local_addr());
    let in_flight = tokio::spawn(async move {
        client()
            .get(url)
            .header("host", "reviews")
            .send()
            .await
            .expect("proxy answers")
            .text()
            .await
            .expect("body")
    });
    slow_v1.wait_for(1, WAIT).await;
    lab.apply(common::route_table(&common::mesh_yaml(
        ports,
        &common::TO_V1_MIRRORED.replace("subset: v1", "subset: v3"),
    )));
    assert_eq!(in_flight.await.expect("request"), "old table");
    send_many(&lab, 1, 1, "/reviews/1").await;
    assert_eq!(
        mesh.v3.received().len(),
        1,
        "new requests use the new table"
    );
    lab.shutdown(WAIT).await;
}

#[tokio::test]
async fn weights_split_the_primary_and_a_subset_s_endpoints_take_turns() {
    let mesh = Mesh::start().await;
    let second_v1 = common::TestUpstream::start("v1-b", common::Reply::ok("v1-b")).await;
    // reviews v1 gets a second endpoint.
    let yaml = mesh.yaml(
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-vs
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 80
    - destination:
        host: reviews
        subset: v3
      weight: 20
"#,
    );
    let yaml = yaml.replacen(
        "    labels:\n      version: v1\n",
        &format!(
            "    labels:\n      version: v1\n  - address: 127.0.0.1\n    ports:\n      http: {}\n    labels:\n      version: v1\n",
            second_v1.addr.port()
        ),
        1,
    );
    // Round robin takes turns; Istio's default, LEAST_REQUEST, would pick at random
    // between two idle endpoints.
    let yaml = yaml.replacen(
        "  host: reviews\n  subsets:",
        "  host: reviews\n  trafficPolicy:\n    loadBalancer:\n      simple: ROUND_ROBIN\n  subsets:",
        1,
    );
    assert!(yaml.contains("ROUND_ROBIN"));
    let lab = common::start_lab(&yaml, Some(11));
    send_many(&lab, 1000, 1, "/reviews/4").await;
    let (a, b, v3) = (
        mesh.v1.received().len(),
        second_v1.received().len(),
        mesh.v3.received().len(),
    );
    assert_eq!(a + b + v3, 1000);
    // Binomial(1000, 0.2): mean 200, sd 12.6; 4.5 sd either side.
    assert!(
        (143..=257).contains(&v3),
        "{v3} of 1000 to the weight-20 destination"
    );
    assert!(
        a.abs_diff(b) <= 1,
        "round robin over v1's endpoints: {a} and {b}"
    );
    let exchanges = all_exchanges(&lab, 1000).await;
    let to_v3 = exchanges
        .iter()
        .filter(|e| {
            e.primary
                .as_ref()
                .is_some_and(|p| &*p.target == "reviews/v3")
        })
        .count();
    assert_eq!(to_v3, v3, "captures name the picked destination");
    lab.shutdown(WAIT).await;
}
