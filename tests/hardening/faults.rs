//! Broken upstreams on 127.0.0.1, each a real TCP server that misbehaves one way: hangs,
//! resets mid-body, answers with garbage, sends 100 MiB, or closes keep-alive connections at
//! random. Each stops when its token is cancelled (or the test's runtime ends).
#![allow(
    dead_code,
    reason = "each hardening test file uses a different part of these helpers"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How a [`FaultyUpstream`] misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Accepts, reads the request, and never answers (keeps the socket open).
    Hung,
    /// Sends a 200 head promising 1000 bytes, 100 of them, then resets the connection.
    ResetMidBody,
    /// Sends a 200 head promising 1000 bytes, 100 of them, then nothing more (the
    /// connection stays open).
    StallMidBody,
    /// Answers with bytes that are not HTTP, then closes.
    Garbage,
    /// Answers 200 with a 100 MiB body, streamed.
    Huge,
    /// Answers 200 "ok" with keep-alive, but closes each connection after 1 to 3 answers,
    /// without a `Connection: close`, so pooled connections die under the client.
    RandomKeepAliveClose,
}

/// Size of the [`Fault::Huge`] body.
pub const HUGE_BODY: u64 = 100 * 1024 * 1024;

/// A misbehaving upstream on an ephemeral 127.0.0.1 port.
pub struct FaultyUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub connections: Arc<AtomicU64>,
    cancel: CancellationToken,
}

impl FaultyUpstream {
    /// Starts serving `fault`.
    pub async fn start(fault: Fault) -> FaultyUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind faulty upstream");
        let addr = listener.local_addr().expect("faulty upstream address");
        let cancel = CancellationToken::new();
        let connections = Arc::new(AtomicU64::new(0));
        let (stop, count) = (cancel.clone(), Arc::clone(&connections));
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    () = stop.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                let n = count.fetch_add(1, Ordering::Relaxed);
                let stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = serve(fault, stream, n) => {}
                    }
                });
            }
        });
        FaultyUpstream {
            addr,
            connections,
            cancel,
        }
    }
}

impl Drop for FaultyUpstream {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Reads one request head (and a Content-Length body) from `stream`; false at EOF.
async fn read_request(stream: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let mut have = buf.len() - end - 4;
            while have < len {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => have += n,
                }
            }
            return true;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A 200 head promising 1000 bytes, and the first 100 of them.
async fn send_a_tenth(stream: &mut TcpStream) {
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n")
        .await;
    let _ = stream.write_all(&[b'x'; 100]).await;
    let _ = stream.flush().await;
}

async fn serve(fault: Fault, mut stream: TcpStream, connection: u64) {
    match fault {
        Fault::Hung => {
            let _ = read_request(&mut stream).await;
            // Hold the connection open, answering nothing, until the test ends.
            std::future::pending::<()>().await;
        }
        Fault::ResetMidBody => {
            if read_request(&mut stream).await {
                send_a_tenth(&mut stream).await;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let _ = stream.set_zero_linger();
                drop(stream);
            }
        }
        Fault::StallMidBody => {
            if read_request(&mut stream).await {
                send_a_tenth(&mut stream).await;
                std::future::pending::<()>().await;
            }
        }
        Fault::Garbage => {
            if read_request(&mut stream).await {
                let _ = stream
                    .write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe garbage, not HTTP\r\n\r\n")
                    .await;
                let _ = stream.shutdown().await;
            }
        }
        Fault::Huge => {
            let service = service_fn(|request: Request<Incoming>| async move {
                let _ = request.into_body().collect().await;
                Ok::<_, Infallible>(Response::new(ZeroBody::new(HUGE_BODY)))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
        Fault::RandomKeepAliveClose => {
            // Deterministic per connection, so a failure can be replayed: 1, 2 or 3 answers.
            let answers = 1 + (connection * 7 + 3) % 3;
            for _ in 0..answers {
                if !read_request(&mut stream).await {
                    return;
                }
                if stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // Close without warning: the client still thinks the connection is reusable.
            drop(stream);
        }
    }
}

/// A body of `len` zero bytes in 64 KiB frames, never held in memory at once.
pub struct ZeroBody {
    left: u64,
    frame: Bytes,
}

impl ZeroBody {
    /// `len` zero bytes.
    pub fn new(len: u64) -> ZeroBody {
        ZeroBody {
            left: len,
            frame: Bytes::from(vec![0u8; 64 * 1024]),
        }
    }
}

impl Body for ZeroBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(self.frame.len() as u64);
        self.left -= n;
        let frame = self.frame.slice(..n as usize);
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// An upstream that counts the request body bytes it receives without keeping them, and
/// answers 200 with the count: for uploads larger than anything should buffer.
pub struct CountingUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Body bytes received, over all requests.
    pub received: Arc<AtomicU64>,
    cancel: CancellationToken,
}

impl CountingUpstream {
    /// Starts on an ephemeral port.
    pub async fn start() -> CountingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind counting upstream");
        let addr = listener.local_addr().expect("counting upstream address");
        let cancel = CancellationToken::new();
        let received = Arc::new(AtomicU64::new(0));
        let (stop, total) = (cancel.clone(), Arc::clone(&received));
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    () = stop.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                let total = Arc::clone(&total);
                let service = service_fn(move |request: Request<Incoming>| {
                    let total = Arc::clone(&total);
                    async move {
                        let mut body = request.into_body();
                        let mut n = 0u64;
                        while let Some(Ok(frame)) = body.frame().await {
                            if let Some(data) = frame.data_ref() {
                                n += data.len() as u64;
                                total.fetch_add(data.len() as u64, Ordering::Relaxed);
                            }
                        }
                        Ok::<_, Infallible>(Response::new(http_body_util::Full::new(Bytes::from(
                            n.to_string(),
                        ))))
                    }
                });
                let stop = stop.clone();
                tokio::spawn(async move {
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = connection => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
        });
        CountingUpstream {
            addr,
            received,
            cancel,
        }
    }
}

impl Drop for CountingUpstream {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Resident set size of this process in bytes (Linux), for memory bounds.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Sends raw bytes to `addr` and reads until the server closes or `within` passes.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], within: std::time::Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect to proxy");
    stream.write_all(bytes).await.expect("write raw request");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut out)).await;
    out
}

/// The status code of the first response in `raw`, if it starts like HTTP.
pub fn first_status(raw: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(raw.get(..12)?).ok()?;
    let rest = text.strip_prefix("HTTP/1.")?;
    rest.get(2..5)?.parse().ok()
}
