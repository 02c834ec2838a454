//! The test's gRPC servers: `reviews.Reviews/GetReviews` over h2c (or TLS), offering
//! server reflection v1, only v1alpha, or none, and recording every reflection request.
//! The reflection messages are written and read here by hand from the field numbers of
//! grpc/grpc `src/proto/grpc/reflection/v1/reflection.proto`, independently of the lab's
//! own definitions, so a wrong number on either side fails the tests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message as _;
use prost_reflect::prost_types::field_descriptor_proto::{Label, Type};
use prost_reflect::prost_types::{
    DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    MethodDescriptorProto, ServiceDescriptorProto,
};
use prost_reflect::{DescriptorPool, DynamicMessage, Value};
use tokio_util::sync::CancellationToken;

/// `grpc.reflection.v1.ServerReflection/ServerReflectionInfo`.
pub const V1: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
/// Its `v1alpha` twin (same messages, `package grpc.reflection.v1alpha`).
pub const V1ALPHA: &str = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
/// The test service's one method.
pub const GET_REVIEWS: &str = "/reviews.Reviews/GetReviews";

/// Which reflection a server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offers {
    V1,
    V1AlphaOnly,
    Nothing,
}

/// One reflection request as the server read it (`message_request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// `file_containing_symbol = 4`.
    Symbol(String),
    /// `file_by_filename = 3`.
    File(String),
    /// Anything else.
    Other,
}

pub struct GrpcServer {
    pub addr: SocketAddr,
    /// Every reflection request: the method's path and what it asked.
    asks: Arc<Mutex<Vec<(String, Ask)>>>,
    /// `GetReviews` calls answered.
    calls: Arc<AtomicUsize>,
    _stop: tokio_util::sync::DropGuard,
}

impl GrpcServer {
    /// A server answering as `version` (1: the primary, 2: the candidate, which adds a
    /// `summary`), speaking TLS with `tls` when given.
    pub async fn start(
        version: u8,
        offers: Offers,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> GrpcServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let asks = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let (record, count, cancel) = (Arc::clone(&asks), Arc::clone(&calls), stop.clone());
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = cancel.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => return,
                    },
                };
                let (record, count) = (Arc::clone(&record), Arc::clone(&count));
                let service = service_fn(move |request: Request<Incoming>| {
                    let (record, count) = (Arc::clone(&record), Arc::clone(&count));
                    async move {
                        Ok::<_, Infallible>(answer(request, version, offers, &record, &count).await)
                    }
                });
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        GrpcServer {
            addr,
            asks,
            calls,
            _stop: stop.drop_guard(),
        }
    }

    /// The reflection requests so far.
    pub fn asks(&self) -> Vec<(String, Ask)> {
        self.asks.lock().expect("asks").clone()
    }

    /// `GetReviews` calls answered so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }
}

type Body =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

async fn answer(
    request: Request<Incoming>,
    version: u8,
    offers: Offers,
    asks: &Mutex<Vec<(String, Ask)>>,
    calls: &AtomicUsize,
) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    if path == GET_REVIEWS {
        let n = calls.fetch_add(1, Ordering::Relaxed);
        return grpc_response(vec![framed(&reply(version, n))], "0");
    }
    if path != V1 && path != V1ALPHA {
        return grpc_response(Vec::new(), "12");
    }
    let requests: Vec<Ask> = unframed(&body).iter().map(|m| ask_of(m)).collect();
    asks.lock()
        .expect("asks")
        .extend(requests.iter().map(|a| (path.clone(), a.clone())));
    let offered =
        (offers == Offers::V1 && path == V1) || (offers == Offers::V1AlphaOnly && path == V1ALPHA);
    if !offered {
        // What a server without the service answers: a trailers-only UNIMPLEMENTED.
        return trailers_only("12");
    }
    let answers = requests
        .iter()
        .map(|ask| match ask {
            // The service's file alone, not its dependencies: the lab must ask for those.
            Ask::Symbol(s) if s == "reviews.Reviews" => {
                file_answer(&[service_file().encode_to_vec()])
            }
            Ask::File(f) if f == "reviews/types.proto" => {
                file_answer(&[types_file("summary").encode_to_vec()])
            }
            _ => error_answer(5, "not found"),
        })
        .map(|m| framed(&m))
        .collect();
    grpc_response(answers, "0")
}

fn grpc_response(frames: Vec<Bytes>, status: &'static str) -> Response<Body> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static(status));
    let mut body: Vec<_> = frames.into_iter().map(|f| Ok(Frame::data(f))).collect();
    body.push(Ok(Frame::trailers(trailers)));
    let mut response = Response::new(StreamBody::new(futures_util::stream::iter(body)));
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    response
}

fn trailers_only(status: &'static str) -> Response<Body> {
    let mut response = Response::new(StreamBody::new(futures_util::stream::iter(Vec::new())));
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from_static(status));
    headers.insert("grpc-message", HeaderValue::from_static("unknown service"));
    response
}

// --- protobuf by hand (reflection.proto's field numbers) ---

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `ServerReflectionResponse { file_descriptor_response (4): FileDescriptorResponse {
/// file_descriptor_proto (1): files } }`.
fn file_answer(files: &[Vec<u8>]) -> Vec<u8> {
    let mut inner = Vec::new();
    for file in files {
        put_bytes(&mut inner, 1, file);
    }
    let mut out = Vec::new();
    put_bytes(&mut out, 4, &inner);
    out
}

/// `ServerReflectionResponse { error_response (7): ErrorResponse { error_code (1),
/// error_message (2) } }`.
fn error_answer(code: u64, message: &str) -> Vec<u8> {
    let mut inner = Vec::new();
    put_varint(&mut inner, 1 << 3);
    put_varint(&mut inner, code);
    put_bytes(&mut inner, 2, message.as_bytes());
    let mut out = Vec::new();
    put_bytes(&mut out, 7, &inner);
    out
}

/// The `message_request` of a `ServerReflectionRequest`: `file_by_filename = 3`,
/// `file_containing_symbol = 4` (strings); `host = 1` and the rest are passed over.
fn ask_of(mut message: &[u8]) -> Ask {
    let mut ask = Ask::Other;
    while let Some(tag) = varint(&mut message) {
        let value = match tag & 7 {
            0 => {
                varint(&mut message);
                continue;
            }
            2 => {
                let Some(len) = varint(&mut message) else {
                    break;
                };
                let Some((value, rest)) = message.split_at_checked(len as usize) else {
                    break;
                };
                message = rest;
                String::from_utf8_lossy(value).into_owned()
            }
            _ => break,
        };
        match tag >> 3 {
            3 => ask = Ask::File(value),
            4 => ask = Ask::Symbol(value),
            _ => {}
        }
    }
    ask
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// One gRPC length-prefixed message (uncompressed).
pub fn framed(message: &[u8]) -> Bytes {
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(message);
    Bytes::from(frame)
}

fn unframed(mut body: &[u8]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let Some(message) = body.get(5..5 + len) else {
            break;
        };
        messages.push(message.to_vec());
        body = &body[5 + len..];
    }
    messages
}

// --- the service's descriptors: two files and a well-known type ---

fn field(name: &str, number: i32, kind: Type, type_name: Option<&str>) -> FieldDescriptorProto {
    FieldDescriptorProto {
        name: Some(name.to_owned()),
        number: Some(number),
        label: Some(Label::Optional as i32),
        r#type: Some(kind as i32),
        type_name: type_name.map(str::to_owned),
        ..FieldDescriptorProto::default()
    }
}

fn message(name: &str, fields: Vec<FieldDescriptorProto>) -> DescriptorProto {
    DescriptorProto {
        name: Some(name.to_owned()),
        field: fields,
        ..DescriptorProto::default()
    }
}

/// `reviews/types.proto`: the messages, the reply's field 4 named `summary_name`; it
/// imports `google/protobuf/timestamp.proto`, which the test servers never send.
pub fn types_file(summary_name: &str) -> FileDescriptorProto {
    FileDescriptorProto {
        name: Some("reviews/types.proto".to_owned()),
        package: Some("reviews".to_owned()),
        syntax: Some("proto3".to_owned()),
        dependency: vec!["google/protobuf/timestamp.proto".to_owned()],
        message_type: vec![
            message(
                "ReviewsRequest",
                vec![field("product_id", 1, Type::Uint32, None)],
            ),
            message(
                "Summary",
                vec![
                    field("count", 1, Type::Uint32, None),
                    field("average_stars", 2, Type::String, None),
                ],
            ),
            message(
                "ReviewsReply",
                vec![
                    field("id", 1, Type::String, None),
                    field("podname", 2, Type::String, None),
                    field("stars", 3, Type::Uint32, None),
                    field(summary_name, 4, Type::Message, Some(".reviews.Summary")),
                    field(
                        "served_at",
                        5,
                        Type::Message,
                        Some(".google.protobuf.Timestamp"),
                    ),
                ],
            ),
        ],
        ..FileDescriptorProto::default()
    }
}

/// `reviews/service.proto`: the service, importing the messages.
pub fn service_file() -> FileDescriptorProto {
    FileDescriptorProto {
        name: Some("reviews/service.proto".to_owned()),
        package: Some("reviews".to_owned()),
        syntax: Some("proto3".to_owned()),
        dependency: vec!["reviews/types.proto".to_owned()],
        service: vec![ServiceDescriptorProto {
            name: Some("Reviews".to_owned()),
            method: vec![MethodDescriptorProto {
                name: Some("GetReviews".to_owned()),
                input_type: Some(".reviews.ReviewsRequest".to_owned()),
                output_type: Some(".reviews.ReviewsReply".to_owned()),
                ..MethodDescriptorProto::default()
            }],
            ..ServiceDescriptorProto::default()
        }],
        ..FileDescriptorProto::default()
    }
}

fn timestamp_file() -> FileDescriptorProto {
    DescriptorPool::global()
        .get_file_by_name("google/protobuf/timestamp.proto")
        .expect("prost-reflect has the well-known types")
        .file_descriptor_proto()
        .clone()
}

/// Every file, as `protoc --descriptor_set_out --include_imports` writes them.
pub fn descriptor_set(summary_name: &str) -> Vec<u8> {
    FileDescriptorSet {
        file: vec![timestamp_file(), types_file(summary_name), service_file()],
    }
    .encode_to_vec()
}

/// `ReviewsReply` of `version` to its `n`th call: v2 rates differently and adds a
/// `summary`; `served_at` moves with every answer, as a timestamp does.
fn reply(version: u8, n: usize) -> Vec<u8> {
    let pool = DescriptorPool::decode(descriptor_set("summary").as_slice()).expect("pool");
    let by_name = |name: &str| pool.get_message_by_name(name).expect("message");
    let mut reply = DynamicMessage::new(by_name("reviews.ReviewsReply"));
    reply.set_field_by_name("id", Value::String("5".to_owned()));
    reply.set_field_by_name("podname", Value::String(format!("reviews-v{version}")));
    reply.set_field_by_name("stars", Value::U32(if version == 1 { 4 } else { 3 }));
    let mut served_at = DynamicMessage::new(by_name("google.protobuf.Timestamp"));
    let seconds = 1_700_000_000 + i64::try_from(n).expect("few calls");
    served_at.set_field_by_name("seconds", Value::I64(seconds));
    reply.set_field_by_name("served_at", Value::Message(served_at));
    if version == 2 {
        let mut summary = DynamicMessage::new(by_name("reviews.Summary"));
        summary.set_field_by_name("count", Value::U32(2));
        summary.set_field_by_name("average_stars", Value::String("3.5".to_owned()));
        reply.set_field_by_name("summary", Value::Message(summary));
    }
    reply.encode_to_vec()
}

/// `ReviewsRequest { product_id: 5 }`, framed.
pub fn request() -> Bytes {
    framed(b"\x08\x05")
}
