//! The primary leg: streaming, hop-by-hop fields, error statuses, 404s, the default host.
//! Real servers on 127.0.0.1 with ephemeral ports; the route table is fixed (matching is
//! covered in proxy_mirroring.rs with real Istio YAML).

mod common;

use std::time::{Duration, Instant};

use common::{FixedRoutes, Reply, TestUpstream, client, refusing_addr, resetting_upstream};
use mirrorlab::capture::{UpstreamErrorKind, UpstreamOutcome};
use mirrorlab::proxy::ProxySettings;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn primary_answer_streams_back_with_hop_by_hop_fields_removed() {
    let primary = TestUpstream::start(
        "primary",
        Reply::ok("first half|second half")
            .pause_mid_body(Duration::from_millis(1500))
            .header("x-upstream", "yes")
            .header("keep-alive", "timeout=5"),
    )
    .await;
    let (proxy, cancel) = common::start_proxy(
        FixedRoutes::new("reviews", primary.addr, &[], None),
        ProxySettings::default(),
    );
    let url = format!("http://{}/reviews/1?x=1", proxy.local_addr());

    let sent = Instant::now();
    let mut response = client()
        .get(&url)
        .header("host", "reviews")
        .header("connection", "x-private-hop")
        .header("x-private-hop", "secret")
        .header("proxy-connection", "keep-alive")
        .header("x-end-to-end", "kept")
        .send()
        .await
        .expect("proxy answers");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-upstream"], "yes");
    assert!(response.headers().get("keep-alive").is_none());
    let first = response.chunk().await.expect("first chunk").expect("data");
    let first_at = sent.elapsed();
    let mut body = first.to_vec();
    while let Some(chunk) = response.chunk().await.expect("rest of body") {
        body.extend_from_slice(&chunk);
    }
    assert_eq!(body, b"first half|second half");
    // The upstream holds the second half back for 1.5 s; the first must not wait for it.
    assert!(
        first_at < Duration::from_millis(750),
        "first byte took {first_at:?}: the body was buffered, not streamed"
    );

    let received = primary.received();
    assert_eq!(received.len(), 1);
    let headers = &received[0].headers;
    assert_eq!(headers["x-end-to-end"], "kept");
    assert_eq!(headers["host"], "reviews");
    assert!(
        headers.get("x-private-hop").is_none(),
        "field named by Connection must go"
    );
    assert!(headers.get("proxy-connection").is_none());
    assert!(
        headers.get("x-request-id").is_some(),
        "a request id is added"
    );
    assert_eq!(
        received[0].uri.path_and_query().map(|p| p.as_str()),
        Some("/reviews/1?x=1")
    );

    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await;
    let exchange = &exchanges[0];
    let primary_record = exchange.primary.as_ref().expect("primary record");
    match &primary_record.outcome {
        UpstreamOutcome::Response(r) => {
            assert_eq!(r.status, 200);
            assert_eq!(&r.body.bytes[..], b"first half|second half");
            assert!(r.ttfb < r.total, "ttfb {:?} total {:?}", r.ttfb, r.total);
        }
        other => panic!("primary failed: {other:?}"),
    }
    assert_eq!(&*primary_record.endpoint, primary.addr.to_string());
    cancel.cancel();
    proxy.stopped().await;
}

#[tokio::test]
async fn upstream_failures_are_answered_as_envoy_does_503_uf_503_uc_504_ut() {
    let refusing = refusing_addr();
    let (resetting, stop_resetting) = resetting_upstream().await;
    let slow = TestUpstream::start("slow", Reply::ok("late").delay(Duration::from_secs(3))).await;
    // Envoy's answers (router.cc onUpstreamReset / onResponseTimeout, flag names from
    // stream_info/utility.h): a refused connection 503 UF, a close before the response head
    // 503 UC (not 502), the route timeout 504 UT.
    let reset = "upstream connect error or disconnect/reset before headers. reset reason:";
    let cases = [
        (
            refusing,
            None,
            503,
            format!("{reset} remote connection failure"),
            UpstreamErrorKind::Refused,
            "UF",
        ),
        (
            resetting,
            None,
            503,
            format!("{reset} connection termination"),
            UpstreamErrorKind::Reset,
            "UC",
        ),
        (
            slow.addr,
            Some(Duration::from_millis(200)),
            504,
            "upstream request timeout".to_owned(),
            UpstreamErrorKind::Timeout,
            "UT",
        ),
    ];
    for (addr, timeout, status, envoy_body, kind, flag) in cases {
        let (proxy, cancel) = common::start_proxy(
            FixedRoutes::new("reviews", addr, &[], timeout),
            ProxySettings::default(),
        );
        let response = client()
            .get(format!("http://{}/reviews/1", proxy.local_addr()))
            .header("host", "reviews")
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(response.status(), status, "upstream {kind:?}");
        assert_eq!(response.headers()["server"], "envoy");
        assert_eq!(response.headers()["content-type"], "text/plain");
        let body = response.text().await.expect("body");
        assert_eq!(body, envoy_body);

        let exchanges = common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await;
        let primary = exchanges[0].primary.as_ref().expect("primary");
        assert_eq!(primary.target.as_ref(), "reviews/primary");
        assert_eq!(
            &*primary.endpoint,
            addr.to_string(),
            "the capture names the endpoint"
        );
        match &primary.outcome {
            UpstreamOutcome::Failed(failure) => assert_eq!(failure.kind, kind),
            other => panic!("expected a {kind:?} failure, got {other:?}"),
        }
        assert_eq!(exchanges[0].flags.to_string(), flag);
        assert_eq!(proxy.counters().primary_errors, 1);
        cancel.cancel();
        proxy.stopped().await;
    }
    stop_resetting.cancel();
}

#[tokio::test]
async fn a_failed_primary_answers_at_once_when_the_request_is_mirrored() {
    // A mirrored GET (no body) to a primary that refuses: the 503 must not wait for the
    // shadow timeout (10 s by default) on a body that will never be read.
    let shadow = TestUpstream::start("shadow", Reply::ok("shadow")).await;
    let (proxy, cancel) = common::start_proxy(
        FixedRoutes::new("reviews", refusing_addr(), &[(shadow.addr, 1.0)], None),
        ProxySettings::default(),
    );
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let started = Instant::now();
        let response = client()
            .request(
                method.clone(),
                format!("http://{}/reviews/1", proxy.local_addr()),
            )
            .header("host", "reviews")
            .body(if method == reqwest::Method::POST {
                "hello"
            } else {
                ""
            })
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(response.status(), 503, "{method}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{method} to a refusing primary took {:?}",
            started.elapsed()
        );
    }
    // The shadow still gets both copies.
    assert_eq!(shadow.wait_for(2, WAIT).await.len(), 2);
    cancel.cancel();
    proxy.stopped().await;
}

#[tokio::test]
async fn unknown_host_gets_a_404_that_says_how_to_address_a_configured_one() {
    let primary = TestUpstream::start("primary", Reply::ok("hello")).await;
    let (proxy, cancel) = common::start_proxy(
        FixedRoutes::new("reviews", primary.addr, &[], None),
        ProxySettings::default(),
    );
    let response = client()
        .get(format!("http://{}/ratings/1", proxy.local_addr()))
        .header("host", "ratings:9080")
        .send()
        .await
        .expect("proxy answers");
    assert_eq!(response.status(), 404);
    let body = response.text().await.expect("body");
    assert!(body.contains("'ratings'"), "names the host: {body}");
    assert!(
        body.contains("reviews"),
        "names the configured hosts: {body}"
    );
    assert!(body.contains("Host") && body.contains("HTTP_PROXY") && body.contains("--host"));
    assert!(primary.received().is_empty());
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await;
    assert!(exchanges[0].trace.is_none() && exchanges[0].primary.is_none());
    assert_eq!(proxy.counters().no_route, 1);
    cancel.cancel();
    proxy.stopped().await;
}

#[tokio::test]
async fn requests_to_the_proxy_itself_go_to_the_default_host_and_absolute_form_works() {
    let primary = TestUpstream::start("primary", Reply::ok("hello")).await;
    let (proxy, cancel) = common::start_proxy(
        FixedRoutes::new("reviews", primary.addr, &[], None),
        ProxySettings::default(),
    );
    // `curl http://127.0.0.1:PORT/reviews/1` just works.
    let response = client()
        .get(format!("http://{}/reviews/1", proxy.local_addr()))
        .send()
        .await
        .expect("proxy answers");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "hello");

    // As HTTP_PROXY: the absolute-form target names the service.
    let via_proxy = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{}", proxy.local_addr())).expect("proxy url"))
        .build()
        .expect("client");
    let response = via_proxy
        .get("http://reviews/reviews/2")
        .send()
        .await
        .expect("proxy answers");
    assert_eq!(response.status(), 200);
    let received = primary.wait_for(2, WAIT).await;
    assert_eq!(received[1].uri.path(), "/reviews/2");
    cancel.cancel();
    proxy.stopped().await;
}

#[tokio::test]
async fn http2_cleartext_clients_are_served() {
    let primary = TestUpstream::start("primary", Reply::ok("over h2c")).await;
    let (proxy, cancel) = common::start_proxy(
        FixedRoutes::new("reviews", primary.addr, &[], None),
        ProxySettings::default(),
    );
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .expect("h2c client");
    let response = h2
        .get(format!("http://{}/reviews/1", proxy.local_addr()))
        .send()
        .await
        .expect("proxy answers over h2c");
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "over h2c");
    cancel.cancel();
    proxy.stopped().await;
}

#[tokio::test]
async fn a_client_that_leaves_early_still_leaves_the_whole_primary_answer_captured() {
    let primary = TestUpstream::start(
        "primary",
        Reply::ok("the whole answer, in two parts").pause_mid_body(Duration::from_millis(300)),
    )
    .await;
    let (proxy, cancel) = common::start_proxy(
        FixedRoutes::new("reviews", primary.addr, &[], None),
        ProxySettings::default(),
    );
    let response = client()
        .get(format!("http://{}/reviews/1", proxy.local_addr()))
        .header("host", "reviews")
        .send()
        .await
        .expect("proxy answers");
    assert_eq!(response.status(), 200);
    drop(response);
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await;
    match &exchanges[0].primary.as_ref().expect("primary").outcome {
        UpstreamOutcome::Response(r) => {
            assert_eq!(&r.body.bytes[..], b"the whole answer, in two parts");
        }
        other => panic!("the primary answered in full: {other:?}"),
    }
    assert_eq!(proxy.counters().primary_errors, 0);
    cancel.cancel();
    proxy.stopped().await;
}

/// Several worker threads, each with its own event loop and upstream pools: every request
/// is answered, captured and copied, and upstream connections are kept alive and reused
/// (a handful per worker, not one per request).
#[tokio::test]
async fn worker_threads_share_the_load_and_keep_upstream_connections_alive() {
    let primary = TestUpstream::start("primary", Reply::ok("primary")).await;
    let shadow = TestUpstream::start("shadow", Reply::ok("shadow")).await;
    let (proxy, cancel) = common::start_proxy(
        FixedRoutes::new("reviews", primary.addr, &[(shadow.addr, 1.0)], None),
        ProxySettings {
            workers: 3,
            ..ProxySettings::default()
        },
    );
    assert_eq!(proxy.workers(), 3);
    let url = format!("http://{}/reviews/1", proxy.local_addr());
    let (clients, each) = (6, 40);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        // One keep-alive connection per client, dealt to the workers in turn.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("client");
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..each {
                let response = http
                    .get(&url)
                    .header("host", "reviews")
                    .send()
                    .await
                    .expect("proxy answers");
                assert_eq!(response.status(), 200);
                assert_eq!(response.text().await.expect("body"), "primary");
            }
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }
    let total = clients * each;
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), total, WAIT).await;
    assert_eq!(exchanges.len(), total);
    assert_eq!(shadow.wait_for(total, WAIT).await.len(), total);
    assert_eq!(primary.received().len(), total);
    // Kept alive: about one upstream connection per client connection (a shadow may still
    // be answering when its client's next request is copied), never one per request.
    for upstream in [&primary, &shadow] {
        assert!(
            upstream.connections() <= total / 4,
            "{} connections to {} for {total} requests",
            upstream.connections(),
            upstream.name
        );
    }
    cancel.cancel();
    proxy.stopped().await;
}
