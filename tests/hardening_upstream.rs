//! Upstream faults, on the shadow and on the primary, with real servers on 127.0.0.1.
//!
//! A broken shadow (slow, hung, reset mid-body, garbage, 100 MiB, random keep-alive closes)
//! must never reach the primary's clients, and the capture must record each failure with
//! its own error kind. The same faults on the primary give the client a clear 5xx within
//! the route's timeout. After each case nothing is left in flight.

mod common;
#[path = "hardening/faults.rs"]
mod faults;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{FixedRoutes, Reply, TestUpstream, client};
use faults::{Fault, FaultyUpstream, HUGE_BODY};
use mirrorlab::capture::{Exchange, ShadowOutcome, UpstreamErrorKind, UpstreamOutcome};
use mirrorlab::proxy::{Proxy, ProxySettings};

const PRIMARY_BODY: &str = r#"{"from":"primary"}"#;
/// Requests per case: enough to meet a fault more than once, few enough to stay quick.
const REQUESTS: usize = 8;
/// A client answer slower than this would mean the shadow leaked into the primary path;
/// the faults below take a second or more, so the margin is wide.
const CLIENT_BOUND: Duration = Duration::from_millis(500);

/// Starts a healthy primary and a proxy mirroring 100% to `shadow`.
async fn proxy_with_shadow(
    shadow: std::net::SocketAddr,
    shadow_timeout: Duration,
) -> (TestUpstream, Proxy) {
    let primary = TestUpstream::start("primary", Reply::ok(PRIMARY_BODY)).await;
    let (proxy, _cancel) = common::start_proxy(
        FixedRoutes::new("reviews", primary.addr, &[(shadow, 1.0)], None),
        ProxySettings {
            shadow_timeout,
            ..ProxySettings::default()
        },
    );
    (primary, proxy)
}

/// Sends `REQUESTS` requests (half GET, half POST with a body) and checks that each got the
/// primary's answer quickly. Returns the exchanges once every shadow has finished.
async fn clients_see_only_the_primary(proxy: &Proxy, wait: Duration) -> Vec<Arc<Exchange>> {
    let url = format!("http://{}/reviews/1", proxy.local_addr());
    let http = client();
    for i in 0..REQUESTS {
        let started = Instant::now();
        let request = if i % 2 == 0 {
            http.get(&url)
        } else {
            http.post(&url).body(vec![b'p'; 2048])
        };
        let response = request
            .header("host", "reviews")
            .send()
            .await
            .expect("client gets an answer");
        assert_eq!(response.status(), 200, "request {i}: the primary's status");
        assert_eq!(response.text().await.expect("body"), PRIMARY_BODY);
        let took = started.elapsed();
        assert!(
            took < CLIENT_BOUND,
            "request {i} took {took:?}: the shadow slowed the client"
        );
    }
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), REQUESTS, wait).await;
    assert_eq!(exchanges.len(), REQUESTS, "every request was captured");
    exchanges
}

/// Asserts that every exchange's shadow failed, with `kind`.
fn every_shadow_failed_with(exchanges: &[Arc<Exchange>], kind: UpstreamErrorKind) {
    let kinds = shadow_kinds(exchanges);
    assert!(kinds.iter().all(|k| *k == Some(kind)), "{kinds:?}");
}

/// The failure kind of each exchange's single shadow (`None` for a full response).
fn shadow_kinds(exchanges: &[Arc<Exchange>]) -> Vec<Option<UpstreamErrorKind>> {
    exchanges
        .iter()
        .map(|e| match &e.shadows[..] {
            [shadow] => match &shadow.outcome {
                ShadowOutcome::Sent(UpstreamOutcome::Response(_)) => None,
                ShadowOutcome::Sent(UpstreamOutcome::Failed(f)) => Some(f.kind),
                ShadowOutcome::Skipped(reason) => panic!("shadow skipped: {reason:?}"),
            },
            other => panic!("expected one shadow, got {other:?}"),
        })
        .collect()
}

/// Nothing left running: no exchange unpublished, no shadow holding a slot, and the proxy
/// stops cleanly.
async fn nothing_in_flight(mut proxy: Proxy) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while (proxy.exchanges_in_flight() > 0 || proxy.counters().shadows_in_flight > 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(proxy.exchanges_in_flight(), 0, "exchanges still in flight");
    assert_eq!(proxy.counters().shadows_in_flight, 0, "shadow slots leaked");
    assert!(
        proxy.stop(Duration::from_secs(5)).await,
        "the proxy did not stop cleanly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_shadow_is_cut_at_its_timeout_and_never_slows_the_client() {
    let shadow =
        TestUpstream::start("shadow", Reply::ok("late").delay(Duration::from_secs(3))).await;
    let (_primary, proxy) = proxy_with_shadow(shadow.addr, Duration::from_secs(1)).await;
    let exchanges = clients_see_only_the_primary(&proxy, Duration::from_secs(10)).await;
    every_shadow_failed_with(&exchanges, UpstreamErrorKind::Timeout);
    nothing_in_flight(proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_shadow_times_out_and_never_reaches_the_client() {
    let shadow = FaultyUpstream::start(Fault::Hung).await;
    let (_primary, proxy) = proxy_with_shadow(shadow.addr, Duration::from_secs(1)).await;
    let exchanges = clients_see_only_the_primary(&proxy, Duration::from_secs(10)).await;
    every_shadow_failed_with(&exchanges, UpstreamErrorKind::Timeout);
    nothing_in_flight(proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_that_resets_mid_body_is_captured_as_a_reset_with_its_status() {
    let shadow = FaultyUpstream::start(Fault::ResetMidBody).await;
    let (_primary, proxy) = proxy_with_shadow(shadow.addr, Duration::from_secs(5)).await;
    let exchanges = clients_see_only_the_primary(&proxy, Duration::from_secs(10)).await;
    for exchange in &exchanges {
        match &exchange.shadows[0].outcome {
            ShadowOutcome::Sent(UpstreamOutcome::Failed(f)) => {
                assert_eq!(f.kind, UpstreamErrorKind::Reset, "{}", f.detail);
                let partial = f
                    .partial
                    .as_ref()
                    .expect("head was received before the reset");
                assert_eq!(partial.status, 200);
                assert!(partial.body.total_len <= 100, "{:?}", partial.body);
            }
            other => panic!("expected a reset, got {other:?}"),
        }
    }
    nothing_in_flight(proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_that_answers_garbage_is_captured_as_a_protocol_error() {
    let shadow = FaultyUpstream::start(Fault::Garbage).await;
    let (_primary, proxy) = proxy_with_shadow(shadow.addr, Duration::from_secs(5)).await;
    let exchanges = clients_see_only_the_primary(&proxy, Duration::from_secs(10)).await;
    every_shadow_failed_with(&exchanges, UpstreamErrorKind::Protocol);
    nothing_in_flight(proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_shadow_response_is_read_to_the_end_and_captured_only_up_to_the_cap() {
    let shadow = FaultyUpstream::start(Fault::Huge).await;
    let (_primary, proxy) = proxy_with_shadow(shadow.addr, Duration::from_secs(120)).await;
    let cap = proxy.settings().capture_body_cap;
    let exchanges = clients_see_only_the_primary(&proxy, Duration::from_secs(120)).await;
    for exchange in &exchanges {
        match &exchange.shadows[0].outcome {
            ShadowOutcome::Sent(UpstreamOutcome::Response(r)) => {
                assert_eq!(r.status, 200);
                assert_eq!(r.body.total_len, HUGE_BODY, "the whole body was read");
                assert!(r.body.truncated);
                assert_eq!(r.body.bytes.len(), cap, "capture stops at the cap");
            }
            other => panic!("expected a full response, got {other:?}"),
        }
    }
    nothing_in_flight(proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_closing_keep_alive_connections_at_random_never_reaches_the_client() {
    let shadow = FaultyUpstream::start(Fault::RandomKeepAliveClose).await;
    let (_primary, proxy) = proxy_with_shadow(shadow.addr, Duration::from_secs(5)).await;
    let exchanges = clients_see_only_the_primary(&proxy, Duration::from_secs(10)).await;
    let kinds = shadow_kinds(&exchanges);
    // A request written just as the upstream closes is lost (Envoy has the same race);
    // when that happens it must be recorded as a reset, and most copies still arrive.
    assert!(
        kinds
            .iter()
            .all(|k| k.is_none() || *k == Some(UpstreamErrorKind::Reset)),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().filter(|k| k.is_none()).count() >= REQUESTS / 2,
        "{kinds:?}"
    );
    assert!(
        shadow
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2,
        "the shadow closed connections, so the proxy had to reconnect"
    );
    nothing_in_flight(proxy).await;
}

// ---------------------------------------------------------------------------------------
// The same faults on the primary.

const ROUTE_TIMEOUT: Duration = Duration::from_secs(1);

async fn proxy_to_primary(primary: std::net::SocketAddr) -> Proxy {
    let (proxy, _cancel) = common::start_proxy(
        FixedRoutes::new("reviews", primary, &[], Some(ROUTE_TIMEOUT)),
        ProxySettings::default(),
    );
    proxy
}

/// One GET through the proxy; returns status, body text and how long it took.
async fn get(proxy: &Proxy) -> (u16, String, Duration) {
    let started = Instant::now();
    let response = client()
        .get(format!("http://{}/reviews/1", proxy.local_addr()))
        .header("host", "reviews")
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the proxy answers even when the primary fails");
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    (status, body, started.elapsed())
}

/// The response flags of the last exchange captured.
fn last_flags(proxy: &Proxy) -> String {
    let exchanges = proxy.hub().store().recent(1);
    exchanges
        .last()
        .map_or_else(String::new, |e| e.flags.to_string())
}

async fn primary_failure(proxy: &Proxy) -> mirrorlab::capture::UpstreamFailure {
    let exchanges =
        common::wait_for_exchanges(proxy.hub().store(), 1, Duration::from_secs(5)).await;
    let exchange = exchanges.last().expect("the request was captured");
    match &exchange.primary.as_ref().expect("routed").outcome {
        UpstreamOutcome::Failed(f) => f.clone(),
        other => panic!("expected a failed primary, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_primary_gives_504_at_the_route_timeout() {
    let primary =
        TestUpstream::start("primary", Reply::ok("late").delay(Duration::from_secs(5))).await;
    let proxy = proxy_to_primary(primary.addr).await;
    let (status, body, took) = get(&proxy).await;
    // router.cc onResponseTimeout: 504, "upstream request timeout", flag UT.
    assert_eq!(status, 504, "{body}");
    assert_eq!(body, "upstream request timeout");
    assert!(
        took >= ROUTE_TIMEOUT && took < ROUTE_TIMEOUT * 3,
        "{took:?}"
    );
    let failure = primary_failure(&proxy).await;
    assert_eq!(failure.kind, UpstreamErrorKind::Timeout);
    assert!(
        failure.detail.contains("route timeout"),
        "{}",
        failure.detail
    );
    assert_eq!(last_flags(&proxy), "UT");
    nothing_in_flight(proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_primary_gives_504_at_the_route_timeout() {
    let primary = FaultyUpstream::start(Fault::Hung).await;
    let proxy = proxy_to_primary(primary.addr).await;
    let (status, body, took) = get(&proxy).await;
    assert_eq!(status, 504, "{body}");
    assert!(
        took >= ROUTE_TIMEOUT && took < ROUTE_TIMEOUT * 3,
        "{took:?}"
    );
    assert_eq!(
        primary_failure(&proxy).await.kind,
        UpstreamErrorKind::Timeout
    );
    nothing_in_flight(proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_answering_garbage_gives_502_upe_and_the_capture_names_the_endpoint() {
    let primary = FaultyUpstream::start(Fault::Garbage).await;
    let proxy = proxy_to_primary(primary.addr).await;
    let (status, body, _) = get(&proxy).await;
    // router.cc onUpstreamReset: a protocol error is the one reset answered 502 (UPE).
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        body,
        "upstream connect error or disconnect/reset before headers. reset reason: protocol error"
    );
    assert_eq!(
        primary_failure(&proxy).await.kind,
        UpstreamErrorKind::Protocol
    );
    let exchanges = proxy.hub().store().recent(1);
    let exchange = exchanges.last().expect("captured");
    let record = exchange.primary.as_ref().expect("routed");
    assert_eq!(&*record.endpoint, primary.addr.to_string());
    assert_eq!(record.target.as_ref(), "reviews/primary");
    assert_eq!(exchange.flags.to_string(), "UPE");
    nothing_in_flight(proxy).await;
}

/// One GET whose 200 head arrives and whose body is then cut; returns how long until the
/// client learned of the cut.
async fn get_cut_off(proxy: &Proxy) -> Duration {
    let started = Instant::now();
    let response = client()
        .get(format!("http://{}/reviews/1", proxy.local_addr()))
        .header("host", "reviews")
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the head arrives before the body fails");
    // The status line was already forwarded (the body streams), so the client learns of
    // the failure as a cut body, exactly as through Envoy; it must not hang.
    assert_eq!(response.status(), 200);
    let body = response.bytes().await;
    assert!(body.is_err(), "a cut body must not look complete: {body:?}");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_reset_mid_body_cuts_the_client_off_and_is_captured_as_a_reset() {
    let primary = FaultyUpstream::start(Fault::ResetMidBody).await;
    let proxy = proxy_to_primary(primary.addr).await;
    assert!(get_cut_off(&proxy).await < Duration::from_secs(5));
    let failure = primary_failure(&proxy).await;
    assert_eq!(failure.kind, UpstreamErrorKind::Reset, "{}", failure.detail);
    assert_eq!(failure.partial.expect("head before the reset").status, 200);
    nothing_in_flight(proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_body_stalling_past_the_route_timeout_is_cut_and_captured_as_a_timeout() {
    // Envoy's route timeout runs to the end of the response, not only to its head: a body
    // that stops midway is cut at the timeout, not left to hold the client.
    let primary = FaultyUpstream::start(Fault::StallMidBody).await;
    let proxy = proxy_to_primary(primary.addr).await;
    let took = get_cut_off(&proxy).await;
    assert!(
        took >= ROUTE_TIMEOUT && took < ROUTE_TIMEOUT * 3,
        "cut after {took:?}"
    );
    let failure = primary_failure(&proxy).await;
    assert_eq!(
        failure.kind,
        UpstreamErrorKind::Timeout,
        "{}",
        failure.detail
    );
    assert!(
        failure.detail.contains("route timeout"),
        "{}",
        failure.detail
    );
    let partial = failure.partial.expect("the head and the first bytes");
    assert_eq!(partial.status, 200);
    assert_eq!(&partial.body.bytes[..], &[b'x'; 100][..]);
    nothing_in_flight(proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_primary_body_that_ends_within_the_route_timeout_arrives_whole() {
    let primary = TestUpstream::start(
        "primary",
        Reply::ok("first half|second half")
            .delay(Duration::from_millis(200))
            .pause_mid_body(Duration::from_millis(300)),
    )
    .await;
    let proxy = proxy_to_primary(primary.addr).await;
    let (status, body, took) = get(&proxy).await;
    assert_eq!((status, body.as_str()), (200, "first half|second half"));
    assert!(took < ROUTE_TIMEOUT, "{took:?}");
    let exchanges =
        common::wait_for_exchanges(proxy.hub().store(), 1, Duration::from_secs(5)).await;
    match &exchanges[0].primary.as_ref().expect("routed").outcome {
        UpstreamOutcome::Response(r) => assert_eq!(&r.body.bytes[..], b"first half|second half"),
        other => panic!("{other:?}"),
    }
    nothing_in_flight(proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_primary_response_streams_to_the_client_and_is_captured_up_to_the_cap() {
    let primary = FaultyUpstream::start(Fault::Huge).await;
    let (proxy, _cancel) = common::start_proxy(
        FixedRoutes::new("reviews", primary.addr, &[], None),
        ProxySettings::default(),
    );
    let response = client()
        .get(format!("http://{}/big", proxy.local_addr()))
        .header("host", "reviews")
        .send()
        .await
        .expect("head");
    assert_eq!(response.status(), 200);
    let mut response = response;
    let mut total = 0u64;
    let mut nonzero = false;
    while let Some(chunk) = response.chunk().await.expect("body streams to the end") {
        nonzero |= chunk.iter().any(|b| *b != 0);
        total += chunk.len() as u64;
    }
    assert_eq!(total, HUGE_BODY);
    assert!(!nonzero);
    let exchanges =
        common::wait_for_exchanges(proxy.hub().store(), 1, Duration::from_secs(10)).await;
    match &exchanges[0].primary.as_ref().expect("routed").outcome {
        UpstreamOutcome::Response(r) => {
            assert_eq!(r.body.total_len, HUGE_BODY);
            assert_eq!(r.body.bytes.len(), proxy.settings().capture_body_cap);
        }
        other => panic!("{other:?}"),
    }
    nothing_in_flight(proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_closing_keep_alive_connections_at_random_still_serves_every_request() {
    let primary = FaultyUpstream::start(Fault::RandomKeepAliveClose).await;
    let proxy = proxy_to_primary(primary.addr).await;
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let (status, _, _) = get(&proxy).await;
        statuses.push(status);
        // Give the upstream's close time to land, so the pool sees dead connections.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        statuses.iter().all(|s| *s == 200),
        "stale pooled connections must be retried, not answered with 502: {statuses:?}"
    );
    assert!(
        primary
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 10
    );
    nothing_in_flight(proxy).await;
}
