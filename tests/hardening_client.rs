//! Bad client input against the proxy, over raw TCP where a well-behaved client library
//! would refuse to send it: malformed request lines and headers, oversized headers,
//! slowloris, an upload larger than anything should buffer, invalid UTF-8, HTTP/1.0,
//! pipelining and `Expect: 100-continue`. Other clients are served throughout.

mod common;
#[path = "hardening/faults.rs"]
mod faults;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{FixedRoutes, Reply, TestUpstream, client};
use faults::{CountingUpstream, first_status, raw_exchange, rss_bytes};
use mirrorlab::capture::{ShadowOutcome, SkipReason};
use mirrorlab::proxy::{Proxy, ProxySettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PRIMARY_BODY: &str = r#"{"from":"primary"}"#;
const WAIT: Duration = Duration::from_secs(5);

struct Lab {
    primary: TestUpstream,
    shadow: TestUpstream,
    proxy: Proxy,
}

async fn lab(settings: ProxySettings) -> Lab {
    let primary = TestUpstream::start("primary", Reply::ok(PRIMARY_BODY)).await;
    let shadow = TestUpstream::start("shadow", Reply::ok("shadow")).await;
    let (proxy, _cancel) = common::start_proxy(
        FixedRoutes::new("reviews", primary.addr, &[(shadow.addr, 1.0)], None),
        settings,
    );
    Lab {
        primary,
        shadow,
        proxy,
    }
}

/// A well-behaved client is served: the check that a bad one harmed nobody else.
async fn served(addr: SocketAddr) {
    let response = client()
        .get(format!("http://{addr}/reviews/ok"))
        .header("host", "reviews")
        .timeout(WAIT)
        .send()
        .await
        .expect("a good client is served");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), PRIMARY_BODY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_lines_and_headers_get_400() {
    let lab = lab(ProxySettings::default()).await;
    let addr = lab.proxy.local_addr();
    let cases: [&[u8]; 7] = [
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /reviews/1 HTTP/1.1 extra\r\nHost: reviews\r\n\r\n",
        b"GET /reviews/1 HTTP/1.1\r\nHost reviews\r\n\r\n",
        b"GET /reviews/1 HTTP/1.1\r\nHost: reviews\r\nBad Name: x\r\n\r\n",
        b"GET /reviews/1 HTTP/1.1\r\nHost: reviews\r\nX: a\x00b\r\n\r\n",
        b"POST /reviews/1 HTTP/1.1\r\nHost: reviews\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
    ];
    for raw in cases {
        let answer = raw_exchange(addr, raw, WAIT).await;
        assert_eq!(
            first_status(&answer),
            Some(400),
            "{:?} got {:?}",
            String::from_utf8_lossy(raw),
            String::from_utf8_lossy(&answer)
        );
        served(addr).await;
    }
    // None of them reached an upstream: only the good clients' requests did.
    assert_eq!(lab.primary.received().len(), cases.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431_at_the_configured_limit() {
    let lab = lab(ProxySettings {
        max_request_header_bytes: 16 * 1024,
        ..ProxySettings::default()
    })
    .await;
    let addr = lab.proxy.local_addr();
    let request = |value_len: usize| {
        format!(
            "GET /reviews/1 HTTP/1.1\r\nHost: reviews\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(value_len)
        )
    };
    let answer = raw_exchange(addr, request(32 * 1024).as_bytes(), WAIT).await;
    assert_eq!(
        first_status(&answer),
        Some(431),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // Many small headers add up the same way.
    let many: String = (0..90)
        .map(|i| format!("X-H{i}: {}\r\n", "b".repeat(200)))
        .collect();
    let raw = format!("GET / HTTP/1.1\r\nHost: reviews\r\n{many}Connection: close\r\n\r\n");
    let answer = raw_exchange(addr, raw.as_bytes(), WAIT).await;
    assert_eq!(first_status(&answer), Some(431));
    // Under the limit is fine.
    let answer = raw_exchange(addr, request(8 * 1024).as_bytes(), WAIT).await;
    assert_eq!(
        first_status(&answer),
        Some(200),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    served(addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_header_limit_refuses_a_megabyte_of_headers_with_431() {
    let lab = lab(ProxySettings::default()).await;
    let addr = lab.proxy.local_addr();
    let raw = format!(
        "GET / HTTP/1.1\r\nHost: reviews\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let answer = raw_exchange(addr, raw.as_bytes(), WAIT).await;
    assert_eq!(first_status(&answer), Some(431));
    served(addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_clients_are_cut_at_the_header_read_timeout_while_others_are_served() {
    let timeout = Duration::from_millis(800);
    let lab = lab(ProxySettings {
        header_read_timeout: timeout,
        ..ProxySettings::default()
    })
    .await;
    let addr = lab.proxy.local_addr();
    // 50 clients that send a header line every 200 ms and never finish.
    let mut slow = Vec::new();
    for i in 0..50 {
        slow.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let _ = stream
                .write_all(b"GET / HTTP/1.1\r\nHost: reviews\r\n")
                .await;
            for n in 0..100 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let line = format!("X-Slow-{i}-{n}: 1\r\n");
                if stream.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
                let mut buf = [0u8; 256];
                match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(_)) => {
                        // hyper may answer 408 before closing; closing is what matters.
                    }
                    Err(_) => {}
                }
            }
            started.elapsed()
        }));
    }
    // Meanwhile, good clients keep getting answers.
    for _ in 0..20 {
        served(addr).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for handle in slow {
        let lasted = handle.await.expect("slow client task");
        assert!(
            lasted < timeout * 4,
            "a slowloris connection lasted {lasted:?} past the {timeout:?} header timeout"
        );
    }
    served(addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_larger_than_memory_should_hold_streams_to_the_primary_and_is_not_mirrored() {
    const UPLOAD: u64 = 256 * 1024 * 1024;
    let primary = CountingUpstream::start().await;
    let shadow = TestUpstream::start("shadow", Reply::ok("shadow")).await;
    let (proxy, _cancel) = common::start_proxy(
        FixedRoutes::new("reviews", primary.addr, &[(shadow.addr, 1.0)], None),
        ProxySettings::default(),
    );
    let addr = proxy.local_addr();
    let baseline = rss_bytes().unwrap_or(0);
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampling = {
        let peak = Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                if let Some(rss) = rss_bytes() {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "PUT /upload HTTP/1.1\r\nHost: reviews\r\nContent-Length: {UPLOAD}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![7u8; 256 * 1024];
    let mut sent = 0u64;
    while sent < UPLOAD {
        stream
            .write_all(&chunk)
            .await
            .expect("the proxy keeps reading");
        sent += chunk.len() as u64;
    }
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("answer in time")
        .expect("read answer");
    sampling.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(first_status(answer.as_bytes()), Some(200), "{answer}");
    assert!(
        answer.ends_with(&UPLOAD.to_string()),
        "primary got it all: {answer}"
    );
    assert_eq!(primary.received.load(Ordering::Relaxed), UPLOAD);

    let grew = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    assert!(
        grew < 64 * 1024 * 1024,
        "memory grew by {} MiB during a {} MiB upload: the body was buffered",
        grew >> 20,
        UPLOAD >> 20
    );
    let exchanges = common::wait_for_exchanges(proxy.hub().store(), 1, WAIT).await;
    let exchange = &exchanges[0];
    assert!(matches!(
        exchange.shadows[0].outcome,
        ShadowOutcome::Skipped(SkipReason::BodyTooLarge)
    ));
    assert_eq!(exchange.request.body.total_len, UPLOAD);
    assert!(exchange.request.body.truncated);
    assert!(
        shadow.received().is_empty(),
        "nothing of it reached the shadow"
    );
    served_by(addr).await;
}

/// `served` for a proxy whose primary is the counting upstream.
async fn served_by(addr: SocketAddr) {
    let response = client()
        .post(format!("http://{addr}/small"))
        .header("host", "reviews")
        .body("12345")
        .timeout(WAIT)
        .send()
        .await
        .expect("a good client is served");
    assert_eq!(response.text().await.expect("body"), "5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_headers_is_forwarded_and_captured_as_bytes() {
    let lab = lab(ProxySettings::default()).await;
    let addr = lab.proxy.local_addr();
    let raw = b"GET /reviews/1 HTTP/1.1\r\nHost: reviews\r\nX-Latin1: caf\xe9 \xff\xfe\r\nUser-Agent: \x80\x81\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(addr, raw, WAIT).await;
    assert_eq!(
        first_status(&answer),
        Some(200),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let want: &[u8] = b"caf\xe9 \xff\xfe";
    let to_primary = lab.primary.wait_for(1, WAIT).await;
    let to_shadow = lab.shadow.wait_for(1, WAIT).await;
    assert_eq!(to_primary[0].headers["x-latin1"].as_bytes(), want);
    assert_eq!(to_shadow[0].headers["x-latin1"].as_bytes(), want);
    assert_eq!(to_shadow[0].headers["user-agent"].as_bytes(), b"\x80\x81");
    let exchanges = common::wait_for_exchanges(lab.proxy.hub().store(), 1, WAIT).await;
    assert_eq!(exchanges[0].request.headers["x-latin1"].as_bytes(), want);
    served(addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_the_path_gets_400_without_harm() {
    let lab = lab(ProxySettings::default()).await;
    let addr = lab.proxy.local_addr();
    for raw in [
        &b"GET /caf\xe9 HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n"[..],
        &b"GET /\xff\xfe?q=\xc3\x28 HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n"[..],
        &b"GET http://revi\xe9ws/ HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n"[..],
    ] {
        let answer = raw_exchange(addr, raw, WAIT).await;
        // A request target must be ASCII (RFC 9112 section 3.2); hyper refuses the rest.
        assert_eq!(
            first_status(&answer),
            Some(400),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        served(addr).await;
    }
    // Percent-encoded bytes are the legal spelling, and go through verbatim.
    let raw = b"GET /caf%E9?q=%FF%FE HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(addr, raw, WAIT).await;
    assert_eq!(first_status(&answer), Some(200));
    let last = lab.shadow.wait_for(4, WAIT).await;
    assert!(
        last.iter().any(|r| r.uri == "/caf%E9?q=%FF%FE"),
        "{:?}",
        last.iter().map(|r| r.uri.to_string()).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_clients_get_an_answer_and_a_closed_connection() {
    let lab = lab(ProxySettings::default()).await;
    let addr = lab.proxy.local_addr();
    let started = Instant::now();
    let answer = raw_exchange(
        addr,
        b"GET /reviews/1 HTTP/1.0\r\nHost: reviews\r\n\r\n",
        WAIT,
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(first_status(&answer), Some(200), "{text}");
    assert!(text.ends_with(PRIMARY_BODY), "{text}");
    assert!(
        started.elapsed() < WAIT,
        "an HTTP/1.0 connection without keep-alive is closed after the answer"
    );
    // Without a Host header at all, HTTP/1.0 goes to the lab's default host.
    let answer = raw_exchange(addr, b"GET /reviews/2 HTTP/1.0\r\n\r\n", WAIT).await;
    assert_eq!(
        first_status(&answer),
        Some(200),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let to_shadow = lab.shadow.wait_for(2, WAIT).await;
    assert_eq!(to_shadow.len(), 2, "HTTP/1.0 requests are mirrored too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let lab = lab(ProxySettings::default()).await;
    let addr = lab.proxy.local_addr();
    let raw = b"GET /p/1 HTTP/1.1\r\nHost: reviews\r\n\r\n\
POST /p/2 HTTP/1.1\r\nHost: reviews\r\nContent-Length: 3\r\n\r\nabc\
GET /p/3 HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(addr, raw, WAIT).await;
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text}");
    assert_eq!(text.matches(PRIMARY_BODY).count(), 3, "{text}");
    let to_primary = lab.primary.wait_for(3, WAIT).await;
    let paths: Vec<String> = to_primary.iter().map(|r| r.uri.to_string()).collect();
    assert_eq!(paths, ["/p/1", "/p/2", "/p/3"]);
    assert_eq!(&to_primary[1].body[..], b"abc");
    let to_shadow = lab.shadow.wait_for(3, WAIT).await;
    assert_eq!(to_shadow.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_gets_continue_then_the_body_reaches_both_legs() {
    let lab = lab(ProxySettings::default()).await;
    let addr = lab.proxy.local_addr();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            b"POST /reviews/1 HTTP/1.1\r\nHost: reviews\r\nContent-Length: 11\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("head");
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .expect("100 Continue arrives before the body is sent")
        .expect("read");
    let interim = String::from_utf8_lossy(&buf[..n]);
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    stream.write_all(b"hello world").await.expect("body");
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .expect("final answer")
        .expect("read");
    assert_eq!(
        first_status(&rest),
        Some(200),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    let to_primary = lab.primary.wait_for(1, WAIT).await;
    let to_shadow = lab.shadow.wait_for(1, WAIT).await;
    assert_eq!(&to_primary[0].body[..], b"hello world");
    assert_eq!(&to_shadow[0].body[..], b"hello world");
    assert!(
        to_primary[0].headers.get("expect").is_none(),
        "the proxy answered the expectation itself"
    );
}
