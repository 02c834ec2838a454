//! Unit tests of `pool`, a child module of it.

use std::net::SocketAddr;

use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// Answers `hi` to every request on `listener`'s connections (to the first only, then
/// closes, with `one_per_connection`); returns the count of connections accepted.
fn answer_hi(listener: TcpListener, one_per_connection: bool) -> Arc<AtomicUsize> {
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while stream.read(&mut buf).await.unwrap_or(0) > 0 {
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi";
                    if stream.write_all(reply).await.is_err() || one_per_connection {
                        return;
                    }
                }
            });
        }
    });
    accepted
}

/// A server answering every request with `hi`, counting connections.
async fn server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    (addr, answer_hi(listener, false))
}

fn get() -> Request<UpstreamBody> {
    Request::builder()
        .uri("/")
        .header(http::header::HOST, "test")
        .body(UpstreamBody::Empty)
        .expect("valid request")
}

async fn read_all(response: Response<Incoming>) -> Bytes {
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

/// Sends a primary GET on `pool` now, checks the answer is `hi`, and returns the
/// connection it used.
async fn get_hi(pool: &Arc<EndpointPool>) -> Pooled {
    let (response, pooled) = pool
        .send(
            get(),
            &SendOptions::plain(Duration::from_secs(5), false),
            Instant::now(),
        )
        .await
        .expect("answer");
    assert_eq!(read_all(response).await, "hi");
    pooled
}

#[tokio::test]
async fn a_released_connection_is_reused() {
    let (addr, accepted) = server().await;
    let pool = Arc::new(EndpointPool::new(EndpointAddr::Socket(addr), None));
    for _ in 0..5 {
        let pooled = get_hi(&pool).await;
        pooled.release();
        // The connection's task goes idle after the body; let it run.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(pool.idle_len(), 1);
}

#[tokio::test]
async fn a_connection_not_released_is_not_reused() {
    let (addr, accepted) = server().await;
    let pool = Arc::new(EndpointPool::new(EndpointAddr::Socket(addr), None));
    for _ in 0..3 {
        let pooled = get_hi(&pool).await;
        drop(pooled);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    assert_eq!(pool.idle_len(), 0);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_replaced() {
    // Answers one request per connection, then closes it.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    answer_hi(listener, true);
    let pool = Arc::new(EndpointPool::new(EndpointAddr::Socket(addr), None));
    for _ in 0..3 {
        let pooled = get_hi(&pool).await;
        pooled.release();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A pool for a loopback port nothing listens on (bound, then let go), and the port.
fn refusing_pool() -> (Arc<EndpointPool>, SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    (
        Arc::new(EndpointPool::new(EndpointAddr::Socket(addr), None)),
        addr,
    )
}

#[tokio::test]
async fn a_refused_connection_is_classified() {
    let (pool, _) = refusing_pool();
    let err = pool
        .send(
            get(),
            &SendOptions::plain(Duration::from_secs(5), false),
            Instant::now(),
        )
        .await
        .expect_err("nothing listens")
        .failure;
    assert_eq!(err.0, UpstreamErrorKind::Refused, "{err:?}");
}

#[tokio::test]
async fn an_expired_idle_connection_is_not_used() {
    let (addr, accepted) = server().await;
    let pool = Arc::new(EndpointPool::new(EndpointAddr::Socket(addr), None));
    let (response, pooled) = pool
        .send(
            get(),
            &SendOptions::plain(Duration::from_secs(5), false),
            Instant::now(),
        )
        .await
        .expect("answer");
    read_all(response).await;
    pooled.release();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let later = Instant::now() + IDLE_TIMEOUT + Duration::from_secs(1);
    let (response, _pooled) = pool
        .send(
            get(),
            &SendOptions::plain(Duration::from_secs(5), false),
            later,
        )
        .await
        .expect("answer");
    read_all(response).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn copies_to_an_endpoint_that_refused_fail_at_once_until_the_backoff_ends() {
    let (pool, addr) = refusing_pool();
    let err = pool
        .send(
            get(),
            &SendOptions::plain(Duration::from_secs(5), true),
            Instant::now(),
        )
        .await
        .expect_err("nothing listens")
        .failure;
    assert_eq!(err.0, UpstreamErrorKind::Refused);
    assert!(!err.1.starts_with("not sent"), "{err:?}");
    // A copy right after is not tried; a primary always is.
    let err = pool
        .send(
            get(),
            &SendOptions::plain(Duration::from_secs(5), true),
            Instant::now(),
        )
        .await
        .expect_err("still refused")
        .failure;
    assert_eq!(err.0, UpstreamErrorKind::Refused);
    assert!(err.1.starts_with("not sent"), "{err:?}");
    let err = pool
        .send(
            get(),
            &SendOptions::plain(Duration::from_secs(5), false),
            Instant::now(),
        )
        .await
        .expect_err("nothing listens")
        .failure;
    assert!(!err.1.starts_with("not sent"), "{err:?}");
    // The shadow comes up: once the backoff has passed, copies reach it.
    let Ok(listener) = TcpListener::bind(addr).await else {
        // Another test took the port meanwhile; nothing more to check here.
        return;
    };
    answer_hi(listener, false);
    tokio::time::sleep(REFUSED_BACKOFF + Duration::from_millis(50)).await;
    let (response, _pooled) = pool
        .send(
            get(),
            &SendOptions::plain(Duration::from_secs(5), true),
            Instant::now(),
        )
        .await
        .expect("the shadow is back");
    assert_eq!(read_all(response).await, "hi");
}

#[tokio::test]
async fn a_connection_still_sending_an_upload_is_not_waited_for() {
    // Answers as soon as a request's first bytes arrive and never reads the rest, so a
    // large upload stays stuck in the connection after its answer.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                if stream.read(&mut buf).await.unwrap_or(0) > 0 {
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi";
                    let _ = stream.write_all(reply).await;
                }
                // Hold the connection open without reading.
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    let pool = Arc::new(EndpointPool::new(EndpointAddr::Socket(addr), None));
    let upload: Arc<[Bytes]> = Arc::from(vec![Bytes::from(vec![b'x'; 32 << 20])]);
    let post = Request::builder()
        .method("POST")
        .uri("/")
        .header(http::header::HOST, "test")
        .header(http::header::CONTENT_LENGTH, 32 << 20)
        .body(UpstreamBody::Chunks(super::super::body::ChunkBody::new(
            upload,
        )))
        .expect("valid request");
    let (response, pooled) = pool
        .send(
            post,
            &SendOptions::plain(Duration::from_secs(5), false),
            Instant::now(),
        )
        .await
        .expect("answered early");
    assert_eq!(read_all(response).await, "hi");
    pooled.release();
    // The first connection is still writing the upload: the next request gets a new one.
    let (response, _pooled) = tokio::time::timeout(
        Duration::from_secs(5),
        pool.send(
            get(),
            &SendOptions::plain(Duration::from_secs(5), false),
            Instant::now(),
        ),
    )
    .await
    .expect("not stuck behind the upload")
    .expect("answer");
    assert_eq!(read_all(response).await, "hi");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}
