//! The shadow leg: verbatim copies, fire-and-forget, failures that never reach the client,
//! the mirror buffer limit, and the bound on shadows in flight. Real servers on 127.0.0.1.

mod common;

use std::time::{Duration, Instant};

use common::{FixedRoutes, Reply, TestUpstream, client, refusing_addr, resetting_upstream};
use mirrorlab::capture::{ShadowOutcome, SkipReason, UpstreamErrorKind, UpstreamOutcome};
use mirrorlab::proxy::ProxySettings;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn the_shadow_gets_a_verbatim_copy_and_the_client_only_the_primary() {
    let primary = TestUpstream::start(
        "primary",
        Reply::ok(r#"{"from":"primary"}"#)
            .status(201)
            .header("x-primary-only", "1"),
    )
    .await;
    let shadow = TestUpstream::start(
        "shadow",
        Reply::ok(r#"{"from":"shadow"}"#)
            .status(500)
            .header("x-shadow-only", "1"),
    )
    .await;
    let (proxy, cancel) = common::start_proxy(
        FixedRoutes::new("reviews", primary.addr, &[(shadow.addr, 1.0)], None),
        ProxySettings::default(),
    );
    let base = format!("http://{}", proxy.local_addr());
    let cases: [(reqwest::Method, &str, Vec<u8>, Option<&str>); 3] = [
        (
            reqwest::Method::POST,
            "/reviews/7?lang=en&sort=new",
            br#"{"stars":5}"#.to_vec(),
            None,
        ),
        (
            reqwest::Method::PUT,
            "/reviews/8?x=%20y",
            (0..=255u8).cycle().take(70_000).collect(),
            Some("client-chosen-id"),
        ),
        (reqwest::Method::DELETE, "/reviews/9", Vec::new(), None),
    ];
    for (i, (method, path, body, request_id)) in cases.iter().enumerate() {
        let mut request = client()
            .request(method.clone(), format!("{base}{path}"))
            .header("host", "reviews:9080")
            .header("user-agent", "mirror-test/1.0")
            .header("authorization", "Bearer abc")
            .header("cookie", "a=1; b=2")
            .header("x-custom", "one")
            .header("content-type", "application/octet-stream")
            .body(body.clone());
        if let Some(id) = request_id {
            request = request.header("x-request-id", *id);
        }
        let response = request.send().await.expect("proxy answers");
        assert_eq!(response.status(), 201, "client gets the primary's status");
        assert_eq!(response.headers()["x-primary-only"], "1");
        assert!(response.headers().get("x-shadow-only").is_none());
        assert_eq!(response.headers()["x-served-by"], "primary");
        assert_eq!(
            response.text().await.expect("body"),
            r#"{"from":"primary"}"#
        );

        let to_primary = primary.wait_for(i + 1, WAIT).await;
        let to_shadow = shadow.wait_for(i + 1, WAIT).await;
        let (p, s) = (&to_primary[i], &to_shadow[i]);
        assert_eq!(s.method, *method);
        assert_eq!(s.uri.path_and_query(), p.uri.path_and_query());
        assert_eq!(s.uri.path_and_query().map(|pq| pq.as_str()), Some(*path));
        assert_eq!(s.body, p.body);
        assert_eq!(
            &s.body[..],
            &body[..],
            "shadow body is byte for byte the client's"
        );
        for name in [
            "host",
            "user-agent",
            "authorization",
            "cookie",
            "x-custom",
            "content-type",
        ] {
            assert_eq!(s.headers.get(name), p.headers.get(name), "header {name}");
            assert!(
                s.headers.get(name).is_some(),
                "header {name} reached the shadow"
            );
        }
        assert_eq!(
            s.headers["host"], "reviews:9080",
            "Host kept as the client sent it"
        );
        let id = s.headers["x-request-id"].to_str().expect("ascii id");
        assert_eq!(
            p.headers["x-request-id"], id,
            "same x-request-id on both legs"
        );
        if let Some(chosen) = request_id {
            assert_eq!(id, *chosen);
        }
    }

    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 3, WAIT).await;
    assert_eq!(exchanges.len(), 3);
    for exchange in &exchanges {
        assert_eq!(exchange.shadows.len(), 1);
        match &exchange.shadows[0].outcome {
            ShadowOutcome::Sent(UpstreamOutcome::Response(r)) => assert_eq!(r.status, 500),
            other => panic!("shadow not captured: {other:?}"),
        }
    }
    assert_eq!(proxy.counters().mirrored, 3);
    cancel.cancel();
    proxy.stopped().await;
}

#[tokio::test]
async fn the_shadow_host_suffix_is_a_setting() {
    let primary = TestUpstream::start("primary", Reply::ok("ok")).await;
    let shadow = TestUpstream::start("shadow", Reply::ok("ok")).await;
    let (proxy, cancel) = common::start_proxy(
        FixedRoutes::new("reviews", primary.addr, &[(shadow.addr, 1.0)], None),
        ProxySettings {
            shadow_host_suffix: true,
            ..ProxySettings::default()
        },
    );
    client()
        .get(format!("http://{}/reviews/1", proxy.local_addr()))
        .header("host", "reviews:9080")
        .send()
        .await
        .expect("proxy answers");
    let to_shadow = shadow.wait_for(1, WAIT).await;
    assert_eq!(to_shadow[0].headers["host"], "reviews-shadow:9080");
    assert_eq!(primary.received()[0].headers["host"], "reviews:9080");
    cancel.cancel();
    proxy.stopped().await;
}

#[tokio::test]
async fn slow_refusing_and_resetting_shadows_never_touch_the_client() {
    let primary = TestUpstream::start("primary", Reply::ok("fast")).await;
    let slow = TestUpstream::start("slow", Reply::ok("slow").delay(Duration::from_secs(1))).await;
    let refusing = refusing_addr();
    let (resetting, stop_resetting) = resetting_upstream().await;
    let (proxy, cancel) = common::start_proxy(
        FixedRoutes::new(
            "reviews",
            primary.addr,
            &[(slow.addr, 1.0), (refusing, 1.0), (resetting, 1.0)],
            None,
        ),
        ProxySettings::default(),
    );
    let http = client();
    let url = format!("http://{}/reviews/1", proxy.local_addr());
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let sent = Instant::now();
        let response = http
            .get(&url)
            .header("host", "reviews")
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.expect("body"), "fast");
        slowest = slowest.max(sent.elapsed());
    }
    // The slow shadow takes 1 s; a client that waited on it would take at least that.
    assert!(
        slowest < Duration::from_millis(200),
        "slowest answer {slowest:?}"
    );

    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 5, WAIT).await;
    assert_eq!(exchanges.len(), 5);
    for exchange in &exchanges {
        let kinds: Vec<_> = exchange
            .shadows
            .iter()
            .map(|s| match &s.outcome {
                ShadowOutcome::Sent(UpstreamOutcome::Response(r)) => Ok(r.status.as_u16()),
                ShadowOutcome::Sent(UpstreamOutcome::Failed(f)) => Err(f.kind),
                ShadowOutcome::Skipped(reason) => panic!("skipped: {reason:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                Ok(200),
                Err(UpstreamErrorKind::Refused),
                Err(UpstreamErrorKind::Reset)
            ]
        );
        match &exchange.shadows[0].outcome {
            ShadowOutcome::Sent(UpstreamOutcome::Response(r)) => {
                assert!(
                    r.ttfb >= Duration::from_secs(1),
                    "slow shadow ttfb {:?}",
                    r.ttfb
                );
            }
            other => panic!("{other:?}"),
        }
    }
    let counters = proxy.counters();
    assert_eq!(counters.mirrored, 15);
    assert_eq!(counters.shadow_errors, 10);
    assert_eq!(counters.primary_errors, 0);
    stop_resetting.cancel();
    cancel.cancel();
    proxy.stopped().await;
}

#[tokio::test]
async fn a_shadow_past_its_timeout_is_captured_as_a_timeout() {
    let primary = TestUpstream::start("primary", Reply::ok("fast")).await;
    let slow = TestUpstream::start("slow", Reply::ok("slow").delay(Duration::from_secs(2))).await;
    let (proxy, cancel) = common::start_proxy(
        FixedRoutes::new("reviews", primary.addr, &[(slow.addr, 1.0)], None),
        ProxySettings {
            shadow_timeout: Duration::from_millis(200),
            ..ProxySettings::default()
        },
    );
    client()
        .get(format!("http://{}/reviews/1", proxy.local_addr()))
        .header("host", "reviews")
        .send()
        .await
        .expect("proxy answers");
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await;
    match &exchanges[0].shadows[0].outcome {
        ShadowOutcome::Sent(UpstreamOutcome::Failed(f)) => {
            assert_eq!(f.kind, UpstreamErrorKind::Timeout);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    cancel.cancel();
    proxy.stopped().await;
}

#[tokio::test]
async fn a_5_mib_upload_reaches_the_primary_intact_and_is_not_mirrored() {
    let primary = TestUpstream::start("primary", Reply::ok("stored")).await;
    let shadow = TestUpstream::start("shadow", Reply::ok("stored")).await;
    let (proxy, cancel) = common::start_proxy(
        FixedRoutes::new("reviews", primary.addr, &[(shadow.addr, 1.0)], None),
        ProxySettings::default(),
    );
    let upload: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let response = client()
        .post(format!("http://{}/uploads", proxy.local_addr()))
        .header("host", "reviews")
        .body(upload.clone())
        .send()
        .await
        .expect("proxy answers");
    assert_eq!(response.status(), 200);
    let received = primary.wait_for(1, WAIT).await;
    assert_eq!(received[0].body.len(), upload.len());
    assert!(
        received[0].body[..] == upload[..],
        "primary got the upload byte for byte"
    );

    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await;
    let exchange = &exchanges[0];
    assert!(matches!(
        exchange.shadows[0].outcome,
        ShadowOutcome::Skipped(SkipReason::BodyTooLarge)
    ));
    assert_eq!(exchange.request.body.total_len, upload.len() as u64);
    assert!(exchange.request.body.truncated);
    assert_eq!(exchange.request.body.bytes.len(), 64 * 1024);
    assert_eq!(proxy.counters().skipped_body_too_large, 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(shadow.received().is_empty(), "nothing was mirrored");

    // Just under the limit is still mirrored.
    let small: Vec<u8> = vec![b'a'; 1024 * 1024];
    client()
        .post(format!("http://{}/uploads", proxy.local_addr()))
        .header("host", "reviews")
        .body(small.clone())
        .send()
        .await
        .expect("proxy answers");
    let to_shadow = shadow.wait_for(1, WAIT).await;
    assert_eq!(to_shadow.len(), 1);
    assert_eq!(to_shadow[0].body.len(), small.len());
    cancel.cancel();
    proxy.stopped().await;
}

#[tokio::test]
async fn shadows_past_the_in_flight_bound_are_skipped_and_counted() {
    let primary = TestUpstream::start("primary", Reply::ok("fast")).await;
    let slow =
        TestUpstream::start("slow", Reply::ok("slow").delay(Duration::from_millis(800))).await;
    let (proxy, cancel) = common::start_proxy(
        FixedRoutes::new("reviews", primary.addr, &[(slow.addr, 1.0)], None),
        ProxySettings {
            max_shadows_in_flight: 2,
            ..ProxySettings::default()
        },
    );
    let http = client();
    for _ in 0..5 {
        let response = http
            .get(format!("http://{}/reviews/1", proxy.local_addr()))
            .header("host", "reviews")
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(response.status(), 200);
    }
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 5, WAIT).await;
    let no_slot = exchanges
        .iter()
        .filter(|e| {
            matches!(
                e.shadows[0].outcome,
                ShadowOutcome::Skipped(SkipReason::NoSlot)
            )
        })
        .count();
    assert_eq!(
        no_slot, 3,
        "two slots, five quick requests, each shadow takes 800 ms"
    );
    let counters = proxy.counters();
    assert_eq!(counters.skipped_no_slot, 3);
    assert_eq!(counters.mirrored, 2);
    cancel.cancel();
    proxy.stopped().await;
}

#[tokio::test]
async fn with_every_slot_taken_no_slot_and_not_sampled_skips_are_told_apart() {
    let primary = TestUpstream::start("primary", Reply::ok("fast")).await;
    let slow =
        TestUpstream::start("slow", Reply::ok("slow").delay(Duration::from_millis(800))).await;
    let never = TestUpstream::start("never", Reply::ok("never")).await;
    let (proxy, cancel) = common::start_proxy(
        FixedRoutes::new(
            "reviews",
            primary.addr,
            &[(slow.addr, 1.0), (never.addr, 0.0)],
            None,
        ),
        ProxySettings {
            max_shadows_in_flight: 1,
            ..ProxySettings::default()
        },
    );
    let http = client();
    let get = || {
        http.get(format!("http://{}/reviews/1", proxy.local_addr()))
            .header("host", "reviews")
            .send()
    };
    assert_eq!(get().await.expect("first").status(), 200);
    // The slow shadow has the first copy, so its one slot is held for 800 ms.
    assert_eq!(slow.wait_for(1, WAIT).await.len(), 1);
    assert_eq!(get().await.expect("second").status(), 200);
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 2, WAIT).await;
    let second = exchanges
        .iter()
        .find(|e| e.id == 2)
        .expect("the second exchange");
    let outcomes: Vec<_> = second.shadows.iter().map(|s| &s.outcome).collect();
    assert!(
        matches!(
            outcomes[..],
            [
                ShadowOutcome::Skipped(SkipReason::NoSlot),
                ShadowOutcome::Skipped(SkipReason::NotSampled)
            ]
        ),
        "{outcomes:?}"
    );
    assert!(matches!(
        second.primary.as_ref().map(|p| &p.outcome),
        Some(UpstreamOutcome::Response(_))
    ));
    let counters = proxy.counters();
    assert_eq!(counters.skipped_no_slot, 1);
    assert_eq!(counters.mirrored, 1);
    assert!(never.received().is_empty());
    cancel.cancel();
    proxy.stopped().await;
}

#[tokio::test]
async fn a_failed_primary_does_not_keep_the_shadow_from_its_copy() {
    let shadow = TestUpstream::start("shadow", Reply::ok("shadow")).await;
    let (proxy, cancel) = common::start_proxy(
        FixedRoutes::new("reviews", refusing_addr(), &[(shadow.addr, 1.0)], None),
        ProxySettings::default(),
    );
    let body = vec![b'r'; 200_000];
    let response = client()
        .post(format!("http://{}/reviews/1", proxy.local_addr()))
        .header("host", "reviews")
        .body(body.clone())
        .send()
        .await
        .expect("proxy answers");
    assert_eq!(response.status(), 503);
    let to_shadow = shadow.wait_for(1, WAIT).await;
    eprintln!(
        "{:?}",
        common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await[0].shadows
    );
    assert_eq!(
        to_shadow.len(),
        1,
        "the mirror is independent of the primary"
    );
    assert_eq!(to_shadow[0].body.len(), body.len());
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await;
    assert!(matches!(
        &exchanges[0].primary.as_ref().expect("primary").outcome,
        UpstreamOutcome::Failed(f) if f.kind == UpstreamErrorKind::Refused
    ));
    assert!(matches!(
        exchanges[0].shadows[0].outcome,
        ShadowOutcome::Sent(UpstreamOutcome::Response(_))
    ));
    cancel.cancel();
    proxy.stopped().await;
}
