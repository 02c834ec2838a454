//! gRPC server reflection: the lab's own calls to a primary's endpoint for the descriptors
//! of a service it has none for (grpc/grpc `doc/server-reflection.md`,
//! `src/proto/grpc/reflection/v1/reflection.proto`). The analysis asks through the
//! [`ReflectionTable`]; a task of the lab's runtime (never the proxy's workers) answers,
//! one pair at a time in the background, so the request path is untouched. These calls go
//! straight to the endpoint: they are not proxied, captured, mirrored or counted.
//!
//! One call per (endpoint, service): `file_containing_symbol` with the service's name on
//! `grpc.reflection.v1` (on `v1alpha` when the server answers UNIMPLEMENTED), then
//! `file_by_filename` for every dependency still missing, until the set is complete or
//! [`MAX_FILE_REQUESTS`] were made. Each request is a stream of its own on one HTTP/2
//! connection, which speaks TLS when the primary's DestinationRule originates it (h2c
//! otherwise, as the proxy does for a GRPC port). The whole call has [`REFLECTION_TIMEOUT`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message as _;
use prost_reflect::prost_types::FileDescriptorProto;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::analysis::descriptors::wire::{
    self, MessageRequest, MessageResponse, REFLECTION_V1, REFLECTION_V1ALPHA,
    ServerReflectionRequest, ServerReflectionResponse,
};
use crate::analysis::descriptors::{ReflectionRequest, ReflectionTable};
use crate::routing::Upstream;
use crate::routing::tls::UpstreamTls;

/// How long one (endpoint, service) may take, connection and every request included.
pub const REFLECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a failure is remembered before the pair is asked again.
pub const REFLECTION_RETRY: Duration = Duration::from_secs(60);
/// Most requests for one service's files (the first included): a bound on a server whose
/// dependencies never end.
pub const MAX_FILE_REQUESTS: usize = 16;
/// Most bytes of one reflection answer.
const MAX_ANSWER: usize = 4 << 20;
/// Most reflection calls under way at once.
const MAX_IN_FLIGHT: usize = 8;

/// The TLS each primary destination's endpoints speak, by (destination label, endpoint),
/// as the route table's DestinationRules originate it.
#[derive(Debug, Default)]
pub(super) struct EndpointTls(HashMap<(Arc<str>, String), Arc<UpstreamTls>>);

impl EndpointTls {
    /// The TLS setups of `upstreams`' endpoints.
    pub(super) fn of(upstreams: &[Arc<Upstream>]) -> Self {
        let mut index = HashMap::new();
        for upstream in upstreams {
            let Some(tls) = &upstream.policy.tls else {
                continue;
            };
            for endpoint in &upstream.endpoints {
                index.insert(
                    (upstream.label.clone(), endpoint.to_string()),
                    Arc::clone(tls),
                );
            }
        }
        Self(index)
    }

    fn get(&self, target: &str, endpoint: &str) -> Option<Arc<UpstreamTls>> {
        self.0
            .get(&(Arc::from(target), endpoint.to_owned()))
            .cloned()
    }
}

/// Answers the table's requests until `stop` fires; spawned on the lab's runtime.
pub(super) async fn serve(
    mut queue: mpsc::Receiver<ReflectionRequest>,
    table: Arc<ReflectionTable>,
    tls: Arc<ArcSwap<EndpointTls>>,
    stop: CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut calls = tokio::task::JoinSet::new();
    loop {
        let request = tokio::select! {
            () = stop.cancelled() => break,
            request = queue.recv() => request,
            Some(_) = calls.join_next(), if !calls.is_empty() => continue,
        };
        let Some(request) = request else { break };
        // Within the stop: with every call slot taken, one may take its whole timeout.
        let slot = tokio::select! {
            () = stop.cancelled() => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let table = Arc::clone(&table);
        let tls = tls.load().get(&request.target, &request.endpoint);
        calls.spawn(async move {
            let found = match tokio::time::timeout(REFLECTION_TIMEOUT, reflect(&request, tls)).await
            {
                Ok(found) => found,
                Err(_) => Err(format!(
                    "no complete answer within {} s",
                    REFLECTION_TIMEOUT.as_secs()
                )),
            };
            match &found {
                Ok(pool) => tracing::info!(
                    endpoint = %request.endpoint,
                    service = %request.service,
                    files = pool.files().len(),
                    "gRPC descriptors from server reflection"
                ),
                Err(why) => tracing::info!(
                    endpoint = %request.endpoint,
                    service = %request.service,
                    "no gRPC server reflection ({why}); its messages go by field number, asked again in {} s",
                    REFLECTION_RETRY.as_secs()
                ),
            }
            table.answer(&request, found);
            drop(slot);
        });
    }
    calls.abort_all();
}

/// The descriptors of `request.service` from its endpoint's server reflection.
async fn reflect(
    request: &ReflectionRequest,
    tls: Option<Arc<UpstreamTls>>,
) -> Result<prost_reflect::DescriptorPool, String> {
    let endpoint = &request.endpoint;
    let tcp = tokio::net::TcpStream::connect(endpoint.as_str())
        .await
        .map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => over(TokioIo::new(tcp), request, "http").await,
        Some(tls) => {
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
            let stream = connector
                .connect(tls.server_name.clone(), tcp)
                .await
                .map_err(|e| format!("{}: TLS handshake failed: {e}", tls.describe))?;
            over(TokioIo::new(stream), request, "https").await
        }
    }
}

/// [`reflect`] over an open connection.
async fn over<IO>(
    io: IO,
    request: &ReflectionRequest,
    scheme: &str,
) -> Result<prost_reflect::DescriptorPool, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(|e| format!("no HTTP/2 (h2c) with {}: {e}", request.endpoint))?;
    let mut client = Reflector {
        sender,
        base: format!("{scheme}://{}", request.endpoint),
        path: REFLECTION_V1,
    };
    // The connection is driven beside the calls; whichever ends first ends both.
    tokio::select! {
        found = client.descriptors(&request.service) => found,
        closed = connection => Err(match closed {
            Ok(()) => format!("{} closed the connection", request.endpoint),
            Err(e) => format!("the connection to {} failed: {e}", request.endpoint),
        }),
    }
}

/// One endpoint's reflection service, on one HTTP/2 connection.
struct Reflector {
    sender: SendRequest<Full<Bytes>>,
    /// `http://127.0.0.1:9091`.
    base: String,
    /// The reflection method that answers: v1 until the server says UNIMPLEMENTED.
    path: &'static str,
}

/// A call's outcome beside its messages.
enum Answered {
    Messages(Vec<ServerReflectionResponse>),
    Unimplemented,
}

impl Reflector {
    /// The files declaring `service` and their dependencies, as a descriptor pool that
    /// defines the service.
    async fn descriptors(
        &mut self,
        service: &str,
    ) -> Result<prost_reflect::DescriptorPool, String> {
        let mut files: Vec<FileDescriptorProto> = Vec::new();
        let mut names: HashSet<String> = HashSet::new();
        let first = MessageRequest::FileContainingSymbol(service.to_owned());
        self.gather(first, &mut files, &mut names).await?;
        // Well-known types (google/protobuf/*) come from prost-reflect's own copy when the
        // server did not send them.
        let well_known = prost_reflect::DescriptorPool::global();
        let mut asked = 1;
        loop {
            let missing: Vec<String> = files
                .iter()
                .flat_map(|f| f.dependency.iter())
                .filter(|d| !names.contains(*d))
                .cloned()
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            if missing.is_empty() {
                break;
            }
            for name in missing {
                if let Some(file) = well_known.get_file_by_name(&name) {
                    names.insert(name);
                    files.push(file.file_descriptor_proto().clone());
                    continue;
                }
                if asked >= MAX_FILE_REQUESTS {
                    return Err(format!(
                        "the descriptors of {service} were still incomplete after {MAX_FILE_REQUESTS} requests (missing {name})"
                    ));
                }
                asked += 1;
                let by_name = MessageRequest::FileByFilename(name.clone());
                self.gather(by_name, &mut files, &mut names).await?;
                if !names.contains(&name) {
                    return Err(format!("the server sent no {name}, which {service} needs"));
                }
            }
        }
        let mut pool = prost_reflect::DescriptorPool::new();
        pool.add_file_descriptor_protos(files)
            .map_err(|e| format!("the server's descriptors do not build: {e}"))?;
        if pool.get_service_by_name(service).is_none() {
            return Err(format!("the server's descriptors do not define {service}"));
        }
        Ok(pool)
    }

    /// Asks for `what` and adds the files of the answer not seen yet.
    async fn gather(
        &mut self,
        what: MessageRequest,
        files: &mut Vec<FileDescriptorProto>,
        names: &mut HashSet<String>,
    ) -> Result<(), String> {
        for answer in self.ask(what).await? {
            let file_descriptors = match answer.message_response {
                Some(MessageResponse::FileDescriptorResponse(f)) => f.file_descriptor_proto,
                Some(MessageResponse::ErrorResponse(e)) => {
                    return Err(format!(
                        "reflection error {} ({}): {}",
                        e.error_code,
                        grpc_code_name(e.error_code),
                        e.error_message
                    ));
                }
                _ => return Err("the reflection answer holds no file descriptors".to_owned()),
            };
            for bytes in file_descriptor_bytes_checked(&file_descriptors)? {
                let file = FileDescriptorProto::decode(bytes.as_slice())
                    .map_err(|e| format!("a file descriptor that does not decode: {e}"))?;
                if names.insert(file.name().to_owned()) {
                    files.push(file);
                }
            }
        }
        Ok(())
    }

    /// One request on the reflection method in use, falling back from v1 to v1alpha once
    /// when the server does not implement v1.
    async fn ask(&mut self, what: MessageRequest) -> Result<Vec<ServerReflectionResponse>, String> {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(what),
        };
        match self.call(&request).await? {
            Answered::Messages(m) => Ok(m),
            Answered::Unimplemented if self.path == REFLECTION_V1 => {
                self.path = REFLECTION_V1ALPHA;
                match self.call(&request).await? {
                    Answered::Messages(m) => Ok(m),
                    Answered::Unimplemented => Err(
                        "the server offers no reflection (grpc.reflection.v1 and v1alpha: UNIMPLEMENTED)"
                            .to_owned(),
                    ),
                }
            }
            Answered::Unimplemented => Err("the server no longer offers reflection".to_owned()),
        }
    }

    /// One unary use of the streaming method: the request, the end of the stream, then
    /// every answer up to the trailers.
    async fn call(&mut self, request: &ServerReflectionRequest) -> Result<Answered, String> {
        let uri = format!("{}{}", self.base, self.path);
        let http_request = http::Request::post(uri)
            .version(http::Version::HTTP_2)
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .body(Full::new(wire::frame(request)))
            .map_err(|e| format!("cannot build the reflection request: {e}"))?;
        self.sender
            .ready()
            .await
            .map_err(|e| format!("the connection closed: {e}"))?;
        let response = self
            .sender
            .send_request(http_request)
            .await
            .map_err(|e| format!("the reflection request failed: {e}"))?;
        let (head, body) = response.into_parts();
        if head.status != http::StatusCode::OK {
            return Err(format!(
                "{} answered HTTP {}, not gRPC",
                self.path, head.status
            ));
        }
        let collected = Limited::new(body, MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("the reflection answer did not arrive whole: {e}"))?;
        let trailers = collected.trailers().cloned();
        let status = trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| head.headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i32>().ok());
        match status {
            Some(0) => Ok(Answered::Messages(wire::unframe(&collected.to_bytes())?)),
            Some(12) => Ok(Answered::Unimplemented),
            Some(code) => {
                let message = trailers
                    .as_ref()
                    .and_then(|t| t.get("grpc-message"))
                    .or_else(|| head.headers.get("grpc-message"))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                Err(format!(
                    "{} answered grpc-status {code} ({}) {message}",
                    self.path,
                    grpc_code_name(code)
                ))
            }
            None => Err(format!("{} answered without a grpc-status", self.path)),
        }
    }
}

/// The answer's files, at most a bound of them.
fn file_descriptor_bytes_checked(files: &[Vec<u8>]) -> Result<&[Vec<u8>], String> {
    const MAX_FILES: usize = 256;
    if files.len() > MAX_FILES {
        return Err(format!(
            "the server sent {} file descriptors, more than the {MAX_FILES} the lab reads",
            files.len()
        ));
    }
    Ok(files)
}

/// The name of a gRPC status code (grpc/grpc `doc/statuscodes.md`).
fn grpc_code_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("unknown code")
}
