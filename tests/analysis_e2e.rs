//! End to end: real Istio YAML compiled into the lab, real upstreams on 127.0.0.1 whose
//! answers carry a random field, requests through the proxy, then the lab's analysis, the
//! JSON report and the HAR export of what it captured.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mirrorlab::analysis::{AnalysisSettings, Verdict};
use mirrorlab::export::har::{HarOptions, build_har};
use mirrorlab::export::{Report, RunInfo};
use mirrorlab::lab::{CompiledConfig, Lab, LabSettings};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A JSON service on 127.0.0.1: `answer(id)` is the body for `/reviews/{id}`.
async fn json_service(
    stop: CancellationToken,
    answer: impl Fn(&str) -> String + Send + Sync + 'static,
) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                a = listener.accept() => a,
            };
            let Ok((stream, _)) = accepted else { continue };
            let stop = stop.clone();
            let answer = Arc::clone(&answer);
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let id = req
                        .uri()
                        .path()
                        .rsplit('/')
                        .next()
                        .unwrap_or("0")
                        .to_owned();
                    let body = answer(&id);
                    async move {
                        let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
                        resp.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, Infallible>(resp)
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::select! {
                    () = stop.cancelled() => {}
                    _ = conn => {}
                }
            });
        }
    });
    addr
}

/// A reviews service: `price` is what this version charges; `nonce` is random in every
/// answer (noise), `servedAt` too (ignored by the VirtualService's annotation).
async fn reviews_service(version: &'static str, price: u32, stop: CancellationToken) -> SocketAddr {
    json_service(stop, move |id| {
        format!(
            r#"{{"id":{id},"version":"{version}","price":{price},"nonce":"{:016x}","servedAt":{}}}"#,
            fastrand::u64(..),
            fastrand::u32(..)
        )
    })
    .await
}

fn config(v1: u16, v2: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
spec:
  hosts: [reviews]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {{number: 9080, name: http, protocol: HTTP}}
  endpoints:
  - address: 127.0.0.1
    ports: {{http: {v1}}}
    labels: {{version: v1}}
  - address: 127.0.0.1
    ports: {{http: {v2}}}
    labels: {{version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {{version: v1}}
  - name: v2
    labels: {{version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  annotations:
    mirrorlab.dev/diff-ignore: /servedAt
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews, subset: v1}}
    mirrors:
    - destination: {{host: reviews, subset: v2}}
    - destination: {{host: reviews, subset: v1}}
"#
    )
}

/// The lab on an ephemeral port with [`config`] for these two services, its annotation's
/// rules in the analysis.
fn start_lab(v1: SocketAddr, v2: SocketAddr, seed: Option<u64>) -> Lab {
    let compiled = CompiledConfig::from_text("e2e.yaml", &config(v1.port(), v2.port()))
        .unwrap_or_else(|e| panic!("config refused: {e}"));
    Lab::start(
        &tokio::runtime::Handle::current(),
        CancellationToken::new(),
        LabSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed,
            analysis: compiled.analysis_settings(AnalysisSettings::default()),
            ..LabSettings::default()
        },
        compiled.table,
    )
    .expect("lab starts")
}

/// Stops the lab (within 20 s, its shadows given 5) and returns its final analysis.
async fn shut_down(lab: Lab) -> Arc<mirrorlab::analysis::AnalysisSnapshot> {
    tokio::time::timeout(
        Duration::from_secs(20),
        lab.shutdown(Duration::from_secs(5)),
    )
    .await
    .expect("lab shuts down")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_analysis_report_and_har_from_real_traffic() {
    let stop = CancellationToken::new();
    let v1 = reviews_service("v1", 10, stop.clone()).await;
    let v2 = reviews_service("v2", 12, stop.clone()).await;
    let lab = start_lab(v1, v2, Some(1));
    let started_at = std::time::SystemTime::now();

    let http = reqwest::Client::new();
    const N: u64 = 40;
    for i in 0..N {
        let r = http
            .get(format!("http://{}/reviews/{}", lab.local_addr(), i % 4))
            .header("host", "reviews")
            .header("authorization", "Bearer e2e-secret")
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.expect("JSON from v1");
        assert_eq!(
            body["version"], "v1",
            "the client only ever sees the primary"
        );
    }
    let captures = lab.captures_handle();
    let snapshot = shut_down(lab).await;
    stop.cancel();

    // statistics
    assert_eq!(snapshot.exchanges, N);
    let route = &snapshot.routes[0];
    assert_eq!(route.requests, N);
    assert_eq!(route.primary.status.codes.get(&200), Some(&N));
    assert_eq!(route.mirrors.len(), 2);
    let candidate = route
        .mirrors
        .iter()
        .find(|m| !m.baseline)
        .expect("v2 mirror");
    let baseline = route
        .mirrors
        .iter()
        .find(|m| m.baseline)
        .expect("v1 baseline mirror");
    assert_eq!((candidate.sent, baseline.sent), (N, N));
    assert_eq!(candidate.delta.map(|d| d.count), Some(N));
    assert!(route.primary.total.count == N && route.primary.total.max_ms > 0.0);

    // diffs: price really changed, nonce is noise, servedAt is ignored by the annotation
    let row = |field: &str| {
        snapshot
            .diffs
            .iter()
            .find(|r| !r.baseline && r.field.to_string() == field)
    };
    let price = row("/price").expect("price differs on v2");
    assert_eq!(price.verdict, Verdict::Real);
    assert_eq!((price.differing, price.compared), (N, N));
    assert_eq!(price.endpoint, "GET /reviews/{id}");
    assert_eq!(row("/nonce").map(|r| r.verdict), Some(Verdict::Noise));
    assert!(
        row("/servedAt").is_none(),
        "ignored by mirrorlab.dev/diff-ignore"
    );
    assert!(row("/version").is_some_and(|r| r.verdict == Verdict::Real));
    assert!(
        snapshot
            .diffs
            .iter()
            .all(|r| !r.field.to_string().starts_with("header:date"))
    );

    // report
    let report = Report::build(&snapshot, &RunInfo::ending_now(started_at));
    let json: Value = serde_json::from_str(&report.to_json().expect("report JSON")).expect("JSON");
    assert_eq!(json["routes"][0]["requests"], N);
    assert_eq!(json["totals"]["real_differences"], 2, "{:#}", json["diffs"]);

    // HAR of what the lab captured, per-exchange summaries for the traffic table
    let exchanges = captures.store().recent(usize::MAX);
    assert_eq!(exchanges.len() as u64, N);
    let har = serde_json::to_string(&build_har(
        &exchanges,
        &HarOptions::default(),
        Some(&snapshot),
    ))
    .expect("HAR");
    assert!(!har.contains("e2e-secret"));
    let har: Value = serde_json::from_str(&har).expect("HAR JSON");
    let entries = har["log"]["entries"].as_array().expect("entries");
    assert_eq!(entries.len() as u64, N);
    assert!(
        entries
            .iter()
            .all(|e| e["_shadows"].as_array().is_some_and(|s| s.len() == 2))
    );
    // The HAR carries the same split: price and version real, nonce noise.
    let first = entries
        .iter()
        .find(|e| e["_exchangeId"] == exchanges[0].id)
        .expect("the first exchange's entry");
    let candidate = &first["_mirrorlab"]["diffs"][0];
    assert_eq!(candidate["summary"], "2 differ, 1 noise", "{first:#}");
    assert_eq!(candidate["noiseFields"], serde_json::json!(["/nonce"]));
    assert_eq!(json["totals"]["exchange_differences"]["real"], N);
    let id = exchanges[0].id;
    assert_eq!(
        snapshot.diff_headline(id),
        Some("2 differ, 1 noise".to_owned()),
        "price and version differ; nonce is noise (known across exchanges, applied to all)"
    );
}

/// A service whose `served_at` is a clock that ticks 0.78 times per answer: two answers in
/// a row (the primary's and the baseline's to one request) differ there about three times
/// in four, as v1's millisecond timestamp did in the issue's run. `ahead` puts the clock
/// that many ticks later (a candidate that answers later).
async fn clock_service(
    ahead: u64,
    answered: Arc<AtomicU64>,
    stop: CancellationToken,
) -> SocketAddr {
    json_service(stop, move |id| {
        let n = answered.fetch_add(1, Ordering::SeqCst);
        format!(r#"{{"id":"{id}","served_at":{}}}"#, n * 78 / 100 + ahead)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slower_candidates_timestamp_is_noise_when_the_baseline_changes_it_in_most_exchanges() {
    let stop = CancellationToken::new();
    let v1_answers = Arc::new(AtomicU64::new(0));
    let v1 = clock_service(0, Arc::clone(&v1_answers), stop.clone()).await;
    // v2 answers later than v1, whose clock it never catches up with.
    let v2 = clock_service(1_000_000, Arc::new(AtomicU64::new(0)), stop.clone()).await;
    let lab = start_lab(v1, v2, None);
    let http = reqwest::Client::new();
    const N: u64 = 50;
    for i in 0..N {
        let r = http
            .get(format!("http://{}/reviews/{i}", lab.local_addr()))
            .header("host", "reviews")
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(r.status(), 200);
        // The baseline's copy is answered before the next request, so each request's two
        // v1 answers are two ticks of the clock in a row.
        for _ in 0..500 {
            if v1_answers.load(Ordering::SeqCst) >= 2 * (i + 1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let snapshot = shut_down(lab).await;
    stop.cancel();
    assert_eq!(v1_answers.load(Ordering::SeqCst), 2 * N);
    let served_at = snapshot
        .diffs
        .iter()
        .find(|r| !r.baseline && r.field.to_string() == "/served_at")
        .expect("the candidate's served_at differs");
    assert_eq!((served_at.differing, served_at.compared), (N, N));
    assert_eq!(served_at.noise_differing, Some(38), "{served_at:#?}");
    // Diffy's rule alone: (1.00 - 0.76) / 1.00 = 24% > 20%, a real difference.
    assert_eq!(
        mirrorlab::analysis::NoiseThresholds::default().verdict(1.0, served_at.noise_rate),
        Verdict::Real
    );
    assert_eq!(served_at.verdict, Verdict::Noise);
    assert_eq!(
        served_at.evidence.describe(),
        "volatile: baseline differs in 76%"
    );
    let report = Report::build(
        &snapshot,
        &RunInfo::ending_now(std::time::SystemTime::now()),
    );
    let json: Value = serde_json::from_str(&report.to_json().expect("report JSON")).expect("JSON");
    assert_eq!(json["totals"]["real_differences"], 0, "{:#}", json["diffs"]);
    assert_eq!(json["totals"]["exchange_differences"]["noise_only"], N);
}
