//! Connections the lab passes through: a WebSocket upgrade to the route's primary (Istio
//! enables `websocket` upgrades on every route) and CONNECT (the lab as `HTTPS_PROXY`),
//! neither mirrored (router.cc shadows a request once it is complete). Raw TCP clients
//! and servers on 127.0.0.1; bounded.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(5);

/// A server that reads one request head per connection, records it, answers with `head`
/// and then echoes every byte until the client closes.
struct RawServer {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl RawServer {
    async fn start(head: &'static str) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&heads);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let record = Arc::clone(&record);
                tokio::spawn(async move {
                    let Some(request) = read_head(&mut stream).await else {
                        return;
                    };
                    record.lock().expect("heads").push(request);
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        RawServer { addr, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("heads").clone()
    }
}

/// A TCP echo server (the target of a CONNECT).
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

/// Reads up to the end of a head (`\r\n\r\n`), within [`WAIT`].
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(WAIT, async {
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        Some(())
    })
    .await
    .ok()??;
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// Writes `data` and reads as many bytes back, within [`WAIT`].
async fn round_trip(stream: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).await.expect("write");
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(WAIT, stream.read_exact(&mut back))
        .await
        .expect("echoed in time")
        .expect("echoed");
    back
}

fn config(v1: SocketAddr, v2: SocketAddr) -> String {
    common::mirrored_pair_yaml(v1, v2, "http", ", protocol: HTTP", "")
}

const UPGRADE_REQUEST: &str = "GET /chat HTTP/1.1\r\nHost: reviews:9080\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

const SWITCHING: &str = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

#[tokio::test]
async fn a_websocket_upgrade_reaches_the_primary_is_not_mirrored_and_is_captured_as_a_tunnel() {
    let v1 = RawServer::start(SWITCHING).await;
    let v2 = RawServer::start(SWITCHING).await;
    let lab = common::start_lab(&config(v1.addr, v2.addr), Some(1));
    let mut client = TcpStream::connect(lab.local_addr()).await.expect("connect");
    client
        .write_all(UPGRADE_REQUEST.as_bytes())
        .await
        .expect("write");
    let head = read_head(&mut client).await.expect("an answer");
    assert!(head.starts_with("HTTP/1.1 101"), "upgraded: {head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    assert!(head.contains("Sec-WebSocket-Accept") || head.contains("sec-websocket-accept"));
    assert_eq!(round_trip(&mut client, b"hello").await, b"hello");
    assert_eq!(round_trip(&mut client, b"mesh!!").await, b"mesh!!");
    drop(client);

    let primary_heads = v1.heads();
    assert_eq!(primary_heads.len(), 1);
    let head = primary_heads[0].to_ascii_lowercase();
    assert!(
        head.contains("upgrade: websocket"),
        "the primary got the upgrade: {head}"
    );
    assert!(head.contains("connection: upgrade"), "{head}");
    assert!(
        head.contains("x-request-id:"),
        "a finalised request: {head}"
    );
    let exchanges = common::wait_for_exchanges(lab.captures(), 1, WAIT).await;
    let exchange = &exchanges[0];
    let tunnel = exchange.tunnel.as_ref().expect("recorded as a tunnel");
    assert_eq!(tunnel.protocol, "websocket");
    assert_eq!((tunnel.bytes_up, tunnel.bytes_down), (11, 11));
    assert_eq!(tunnel.error, None);
    let trace = exchange.trace.as_ref().expect("trace");
    assert!(
        trace.steps.iter().any(|s| s.contains("not mirrored")),
        "the trace says why: {:?}",
        trace.steps
    );
    assert!(exchange.shadows.is_empty());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(v2.heads().is_empty(), "the mirror got nothing");
}

#[tokio::test]
async fn an_upgrade_the_upstream_refuses_is_answered_as_it_answered() {
    let refusal =
        "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 7\r\nConnection: close\r\n\r\nrefused";
    let v1 = RawServer::start(refusal).await;
    let v2 = RawServer::start(refusal).await;
    let lab = common::start_lab(&config(v1.addr, v2.addr), Some(1));
    let mut client = TcpStream::connect(lab.local_addr()).await.expect("connect");
    client
        .write_all(UPGRADE_REQUEST.as_bytes())
        .await
        .expect("write");
    let head = read_head(&mut client).await.expect("an answer");
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    let mut body = [0u8; 7];
    tokio::time::timeout(WAIT, client.read_exact(&mut body))
        .await
        .expect("in time")
        .expect("body");
    assert_eq!(&body, b"refused");
    let exchanges = common::wait_for_exchanges(lab.captures(), 1, WAIT).await;
    assert!(exchanges[0].tunnel.is_none(), "no tunnel was opened");
}

#[tokio::test]
async fn connect_tunnels_to_its_target_and_a_refused_target_is_a_503() {
    let target = echo_server().await;
    let (v1, v2) = (
        RawServer::start(SWITCHING).await,
        RawServer::start(SWITCHING).await,
    );
    let lab = common::start_lab(&config(v1.addr, v2.addr), Some(1));
    let mut client = TcpStream::connect(lab.local_addr()).await.expect("connect");
    let connect = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    client.write_all(connect.as_bytes()).await.expect("write");
    let head = read_head(&mut client).await.expect("an answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(round_trip(&mut client, b"tls bytes").await, b"tls bytes");
    drop(client);
    let exchanges = common::wait_for_exchanges(lab.captures(), 1, WAIT).await;
    let tunnel = exchanges[0].tunnel.as_ref().expect("a tunnel");
    assert_eq!(tunnel.protocol, "CONNECT");
    assert_eq!((tunnel.bytes_up, tunnel.bytes_down), (9, 9));
    assert!(
        v1.heads().is_empty() && v2.heads().is_empty(),
        "no route was used"
    );

    let refused = common::refusing_addr();
    let mut client = TcpStream::connect(lab.local_addr()).await.expect("connect");
    let connect = format!("CONNECT {refused} HTTP/1.1\r\nHost: {refused}\r\n\r\n");
    client.write_all(connect.as_bytes()).await.expect("write");
    let head = read_head(&mut client).await.expect("an answer");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
}

#[tokio::test]
async fn an_h2c_upgrade_is_served_as_an_ordinary_request_and_mirrored() {
    // Istio enables `websocket` upgrades only; Envoy's HTTP/1 codec drops `Upgrade: h2c`
    // and serves the request as any other, so it is finalised and mirrored.
    let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (v1, v2) = (
        RawServer::start(answer).await,
        RawServer::start(answer).await,
    );
    let lab = common::start_lab(&config(v1.addr, v2.addr), Some(1));
    let mut client = TcpStream::connect(lab.local_addr()).await.expect("connect");
    let request = "GET /reviews/1 HTTP/1.1\r\nHost: reviews:9080\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";
    client.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(&mut client).await.expect("an answer");
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "served, not upgraded: {head}"
    );
    let exchanges = common::wait_for_exchanges(lab.captures(), 1, WAIT).await;
    assert!(exchanges[0].tunnel.is_none());
    let deadline = tokio::time::Instant::now() + WAIT;
    while v2.heads().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let shadow = v2.heads();
    assert_eq!(shadow.len(), 1, "the shadow got its copy");
    let primary = v1.heads()[0].to_ascii_lowercase();
    assert!(
        !primary.contains("upgrade"),
        "the upgrade is not forwarded: {primary}"
    );
    assert!(!primary.contains("http2-settings"), "{primary}");
}

/// An upstream that upgrades, echoes the first `n` bytes, then resets the connection.
async fn resetting_websocket(n: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if read_head(&mut stream).await.is_none() {
                    return;
                }
                let _ = stream.write_all(SWITCHING.as_bytes()).await;
                let mut echo = vec![0u8; n];
                if stream.read_exact(&mut echo).await.is_ok() {
                    let _ = stream.write_all(&echo).await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                // SO_LINGER 0: the close is a reset, as a crashed WebSocket server's is.
                let _ = stream.set_zero_linger();
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_tunnel_that_ends_in_a_reset_still_counts_its_bytes() {
    let v1 = resetting_websocket(5).await;
    let v2 = RawServer::start(SWITCHING).await;
    let lab = common::start_lab(&config(v1, v2.addr), Some(1));
    let mut client = TcpStream::connect(lab.local_addr()).await.expect("connect");
    client
        .write_all(UPGRADE_REQUEST.as_bytes())
        .await
        .expect("write");
    let head = read_head(&mut client).await.expect("an answer");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(round_trip(&mut client, b"hello").await, b"hello");
    let exchanges = common::wait_for_exchanges(lab.captures(), 1, WAIT).await;
    let tunnel = exchanges[0].tunnel.as_ref().expect("a tunnel");
    assert_eq!((tunnel.bytes_up, tunnel.bytes_down), (5, 5), "{tunnel:?}");
    assert!(tunnel.error.is_some(), "it ended in a reset: {tunnel:?}");
}
