//! An HTTP/2 upstream that resets the request's stream, as Envoy's router treats it:
//! `RST_STREAM` with `REFUSED_STREAM` is a `RemoteRefusedStreamReset`, any other reason a
//! `RemoteReset`; both answer 503 with flag UR (`router.cc`
//! `streamResetReasonToResponseFlag`) and the reason in the body (`resetReasonToString`:
//! "remote refused stream reset", "remote reset"); `refused-stream` retries only the first,
//! `reset` both (`retry_state_impl.cc` `wouldRetryFromReset`); Istio's default policy
//! (`retry/retry.go`) has `refused-stream` and not `reset`. The upstream is a real h2c
//! server on 127.0.0.1 built on the h2 crate, which can reset a stream with any reason.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use mirrorlab::capture::{AttemptOutcome, ResponseFlags, UpstreamErrorKind, UpstreamOutcome};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

/// An h2c server: the `n`th stream it is sent (from 0) is reset with `resets[n]` when that
/// is set, and answered `200 ok` otherwise.
struct H2Server {
    addr: SocketAddr,
    streams: Arc<AtomicUsize>,
    _stop: tokio_util::sync::DropGuard,
}

impl H2Server {
    async fn start(resets: Vec<Option<h2::Reason>>) -> H2Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let streams = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let (count, cancel, resets) = (Arc::clone(&streams), stop.clone(), Arc::new(resets));
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = cancel.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => return,
                    },
                };
                let (count, resets) = (Arc::clone(&count), Arc::clone(&resets));
                tokio::spawn(async move {
                    let Ok(mut connection) = h2::server::handshake(stream).await else {
                        return;
                    };
                    while let Some(Ok((_request, mut respond))) = connection.accept().await {
                        let n = count.fetch_add(1, Ordering::SeqCst);
                        if let Some(Some(reason)) = resets.get(n) {
                            respond.send_reset(*reason);
                            continue;
                        }
                        let head = http::Response::builder()
                            .status(200)
                            .body(())
                            .expect("head");
                        if let Ok(mut body) = respond.send_response(head, false) {
                            let _ = body.send_data(Bytes::from_static(b"ok"), true);
                        }
                    }
                });
            }
        });
        H2Server {
            addr,
            streams,
            _stop: stop.drop_guard(),
        }
    }

    fn streams(&self) -> usize {
        self.streams.load(Ordering::SeqCst)
    }
}

/// reviews (v1) and reviews-v2 on an `HTTP2` port (the sidecar speaks h2c to both), every
/// request mirrored to v2; `retries` as the route's `retries` field, or none.
fn config(v1: SocketAddr, v2: SocketAddr, retries: Option<&str>) -> String {
    let yaml = common::mirrored_pair_yaml(v1, v2, "http2", ", protocol: HTTP2", "");
    match retries {
        None => yaml,
        Some(retries) => yaml.replace(
            "    mirror: {host: reviews-v2, subset: v2}\n",
            &format!("    retries: {retries}\n    mirror: {{host: reviews-v2, subset: v2}}\n"),
        ),
    }
}

/// The client's status and body for one GET through the lab.
async fn get(lab: SocketAddr) -> (u16, String) {
    let response = common::client()
        .get(format!("http://{lab}/reviews/1"))
        .header("host", "reviews:9080")
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

async fn the_exchange(lab: &mirrorlab::lab::Lab) -> mirrorlab::capture::Exchange {
    let exchanges = common::wait_for_exchanges(lab.captures(), 1, WAIT).await;
    assert_eq!(exchanges.len(), 1, "one exchange captured");
    exchanges[0].as_ref().clone()
}

fn attempt_outcomes(exchange: &mirrorlab::capture::Exchange) -> Vec<AttemptOutcome> {
    let primary = exchange.primary.as_ref().expect("primary record");
    primary.attempts.iter().map(|a| a.outcome).collect()
}

#[tokio::test]
async fn istios_default_policy_retries_a_refused_stream_and_the_client_gets_the_answer() {
    // retry.go DefaultPolicy: connect-failure,refused-stream,unavailable,cancelled,
    // retriable-status-codes; wouldRetryFromReset retries a RemoteRefusedStreamReset.
    let v1 = H2Server::start(vec![Some(h2::Reason::REFUSED_STREAM)]).await;
    let v2 = H2Server::start(Vec::new()).await;
    let lab = common::start_lab(&config(v1.addr, v2.addr, None), Some(1));
    assert_eq!(get(lab.local_addr()).await, (200, "ok".to_owned()));
    let exchange = the_exchange(&lab).await;
    assert_eq!(
        attempt_outcomes(&exchange),
        vec![
            AttemptOutcome::Failed(UpstreamErrorKind::RefusedStream),
            AttemptOutcome::Status(http::StatusCode::OK),
        ],
        "the refused stream, then the retry"
    );
    assert_eq!(v1.streams(), 2, "the primary was sent the request twice");
    assert!(
        exchange.flags.is_empty(),
        "the client got the retry's answer: {}",
        exchange.flags
    );
    assert_eq!(
        v2.streams(),
        1,
        "the shadow got one copy: shadows are not retried"
    );
}

#[tokio::test]
async fn a_refused_stream_not_retried_is_a_503_with_flag_ur_and_envoys_reason() {
    let v1 = H2Server::start(vec![Some(h2::Reason::REFUSED_STREAM)]).await;
    let v2 = H2Server::start(Vec::new()).await;
    let retries = "{attempts: 2, retryOn: connect-failure}";
    let lab = common::start_lab(&config(v1.addr, v2.addr, Some(retries)), Some(1));
    let (status, body) = get(lab.local_addr()).await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        "upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset"
    );
    let exchange = the_exchange(&lab).await;
    assert!(
        exchange.flags.contains(ResponseFlags::UR),
        "{}",
        exchange.flags
    );
    assert_eq!(exchange.flags.to_string(), "UR");
    match &exchange.primary.as_ref().expect("primary").outcome {
        UpstreamOutcome::Failed(failure) => {
            assert_eq!(failure.kind, UpstreamErrorKind::RefusedStream);
        }
        other => panic!("the primary failed: {other:?}"),
    }
    assert_eq!(
        v1.streams(),
        1,
        "connect-failure does not retry a reset stream"
    );
}

#[tokio::test]
async fn another_stream_reset_is_a_remote_reset_retried_only_under_reset() {
    // INTERNAL_ERROR: a RemoteReset. Istio's default policy has no `reset`: not retried.
    let v1 = H2Server::start(vec![Some(h2::Reason::INTERNAL_ERROR)]).await;
    let v2 = H2Server::start(Vec::new()).await;
    let lab = common::start_lab(&config(v1.addr, v2.addr, None), Some(1));
    let (status, body) = get(lab.local_addr()).await;
    assert_eq!(status, 503);
    assert!(body.ends_with("reset reason: remote reset"), "{body}");
    let exchange = the_exchange(&lab).await;
    assert_eq!(exchange.flags.to_string(), "UR");
    assert_eq!(
        v1.streams(),
        1,
        "the default policy does not retry a remote reset"
    );

    // `reset` retries any reset of the stream.
    let v1 = H2Server::start(vec![Some(h2::Reason::INTERNAL_ERROR)]).await;
    let retries = "{attempts: 2, retryOn: reset}";
    let lab = common::start_lab(&config(v1.addr, v2.addr, Some(retries)), Some(1));
    assert_eq!(get(lab.local_addr()).await, (200, "ok".to_owned()));
    let exchange = the_exchange(&lab).await;
    assert_eq!(
        attempt_outcomes(&exchange),
        vec![
            AttemptOutcome::Failed(UpstreamErrorKind::RemoteReset),
            AttemptOutcome::Status(http::StatusCode::OK),
        ]
    );
    assert_eq!(v1.streams(), 2);
}
