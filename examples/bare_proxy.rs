//! The floor of mirrorlab's HTTP stack: the smallest hyper reverse proxy, with nothing of
//! mirrorlab in it (no routing, no capture, no analysis, no mirroring), on one thread with
//! its own event loop as each of mirrorlab's proxy workers is, with hyper-util's pooled
//! client. `scripts/bench.py` runs it as case H, so the table shows how much of the
//! proxy's cost is the stack itself.
//!
//!     cargo run --release --example bare_proxy -- LISTEN_ADDR UPSTREAM_ADDR

use std::convert::Infallible;
use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Body = http_body_util::combinators::BoxBody<bytes::Bytes, hyper::Error>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        return Err("usage: bare_proxy LISTEN_ADDR UPSTREAM_ADDR".into());
    };
    let listen: SocketAddr = listen.parse()?;
    let upstream: http::uri::Authority = upstream.parse()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(listen, upstream))
}

async fn serve(
    listen: SocketAddr,
    upstream: http::uri::Authority,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(connector);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (client, upstream) = (client.clone(), upstream.clone());
        let service = service_fn(move |request: Request<Incoming>| {
            let (client, upstream) = (client.clone(), upstream.clone());
            async move {
                let (mut parts, body) = request.into_parts();
                let mut uri = http::uri::Parts::default();
                uri.scheme = Some(http::uri::Scheme::HTTP);
                uri.authority = Some(upstream);
                uri.path_and_query = parts.uri.path_and_query().cloned();
                parts.uri = http::Uri::from_parts(uri).expect("valid upstream URI");
                let response = match client.request(Request::from_parts(parts, body)).await {
                    Ok(response) => response.map(http_body_util::BodyExt::boxed),
                    Err(_) => {
                        let mut response = Response::new(http_body_util::BodyExt::boxed(
                            http_body_util::BodyExt::map_err(
                                http_body_util::Empty::new(),
                                |never| match never {},
                            ),
                        ));
                        *response.status_mut() = http::StatusCode::BAD_GATEWAY;
                        response
                    }
                };
                Ok::<Response<Body>, Infallible>(response)
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
