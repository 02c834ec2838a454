//! Real upstream servers on 127.0.0.1 for the proxy tests: one that records what it
//! receives and answers as told, one that refuses connections, one that resets them.
#![allow(
    dead_code,
    reason = "each test file uses a different part of these helpers"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One request as an upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// How a test upstream answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
    /// Wait this long before the response head.
    pub delay: Duration,
    /// Send the first half of the body, wait this long, then the rest.
    pub pause_mid_body: Option<Duration>,
    pub headers: Vec<(&'static str, &'static str)>,
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: &str) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: Bytes::copy_from_slice(body.as_bytes()),
            delay: Duration::ZERO,
            pause_mid_body: None,
            headers: Vec::new(),
        }
    }

    pub fn status(mut self, status: u16) -> Reply {
        self.status = StatusCode::from_u16(status).expect("valid test status");
        self
    }

    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    pub fn pause_mid_body(mut self, pause: Duration) -> Reply {
        self.pause_mid_body = Some(pause);
        self
    }

    pub fn header(mut self, name: &'static str, value: &'static str) -> Reply {
        self.headers.push((name, value));
        self
    }
}

/// A real HTTP server that records every request and answers with its `Reply`.
pub struct TestUpstream {
    pub addr: SocketAddr,
    pub name: &'static str,
    received: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    cancel: CancellationToken,
}

impl TestUpstream {
    /// Starts on an ephemeral 127.0.0.1 port.
    pub async fn start(name: &'static str, reply: Reply) -> TestUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind test upstream");
        let addr = listener.local_addr().expect("test upstream address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let cancel = CancellationToken::new();
        let (rec, stop) = (Arc::clone(&received), cancel.clone());
        let accepted = Arc::clone(&connections);
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    () = stop.cancelled() => break,
                    next = listener.accept() => match next {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (rec, reply) = (Arc::clone(&rec), reply.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    let (rec, reply) = (Arc::clone(&rec), reply.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        rec.lock().expect("recorder lock").push(Recorded {
                            method: parts.method,
                            uri: parts.uri,
                            headers: parts.headers,
                            body,
                        });
                        tokio::time::sleep(reply.delay).await;
                        let mut response = Response::new(PausingBody::new(
                            reply.body.clone(),
                            reply.pause_mid_body,
                        ));
                        *response.status_mut() = reply.status;
                        response
                            .headers_mut()
                            .insert("x-served-by", name.parse().expect("header value"));
                        for (header, value) in &reply.headers {
                            response
                                .headers_mut()
                                .append(*header, value.parse().expect("header value"));
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let stop = stop.clone();
                tokio::spawn(async move {
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = connection => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
        });
        TestUpstream {
            addr,
            name,
            received,
            connections,
            cancel,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Requests received so far.
    pub fn received(&self) -> Vec<Recorded> {
        self.received.lock().expect("recorder lock").clone()
    }

    /// Waits until at least `n` requests arrived (or `within` passed) and returns them.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received();
            if received.len() >= n || Instant::now() >= deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A body that sends its first half, pauses, then sends the rest.
struct PausingBody {
    first: Option<Bytes>,
    rest: Option<Bytes>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl PausingBody {
    fn new(body: Bytes, pause: Option<Duration>) -> PausingBody {
        match pause {
            Some(pause) if body.len() > 1 => {
                let half = body.len() / 2;
                PausingBody {
                    first: Some(body.slice(..half)),
                    rest: Some(body.slice(half..)),
                    pause: Some(Box::pin(tokio::time::sleep(pause))),
                }
            }
            _ => PausingBody {
                first: Some(body),
                rest: None,
                pause: None,
            },
        }
    }
}

impl Body for PausingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if let Some(pause) = self.pause.as_mut() {
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.pause = None;
        }
        Poll::Ready(self.rest.take().map(|rest| Ok(Frame::data(rest))))
    }
}

/// An address where nothing listens: connections to it are refused.
pub fn refusing_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe");
    let addr = listener.local_addr().expect("probe address");
    drop(listener);
    addr
}

/// A server that accepts connections, reads the request, and resets the connection.
pub async fn resetting_upstream() -> (SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind resetter");
    let addr = listener.local_addr().expect("resetter address");
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                () = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(_) => continue,
                },
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                // Wait for the request so the reset hits an exchange in progress.
                let _ = stream.readable().await;
                let _ = stream.try_read(&mut buf);
                let _ = stream.set_zero_linger();
                drop(stream);
            });
        }
    });
    (addr, cancel)
}

/// A client that talks to the proxy directly, whatever HTTP_PROXY says.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("test http client")
}

/// A route table with one host and one fixed route: for proxy behaviour that does not
/// depend on matching (forwarding, errors, streaming).
pub struct FixedRoutes {
    pub host: String,
    pub resolution: mirrorlab::routing::Resolution,
}

impl FixedRoutes {
    /// `host` goes to `primary`, mirrored to each `(mirror, fraction)`.
    pub fn new(
        host: &str,
        primary: SocketAddr,
        mirrors: &[(SocketAddr, f64)],
        timeout: Option<Duration>,
    ) -> FixedRoutes {
        use mirrorlab::routing::action::Forward;
        use mirrorlab::routing::{
            EndpointAddr, MirrorPolicy, Resolution, Route, RouteAction, RouteTrace, Upstream,
            WeightedUpstream,
        };
        let upstream = |label: String, addr: SocketAddr| {
            Arc::new(Upstream::new(
                host.to_owned(),
                None,
                None,
                label,
                vec![EndpointAddr::Socket(addr)],
            ))
        };
        let forward = Forward {
            destinations: Arc::from(vec![WeightedUpstream::plain(
                upstream(format!("{host}/primary"), primary),
                100,
            )]),
            mirrors: mirrors
                .iter()
                .enumerate()
                .map(|(i, (addr, fraction))| MirrorPolicy {
                    upstream: upstream(format!("{host}/mirror{i}"), *addr),
                    fraction: *fraction,
                    headers: Default::default(),
                })
                .collect(),
            path_rewrite: None,
            timeout,
            // No retries: these tests look at one attempt's failure.
            retry: None,
        };
        FixedRoutes {
            host: host.to_owned(),
            resolution: Resolution {
                trace: RouteTrace {
                    virtual_service: Arc::from(format!("default/{host}")),
                    route_index: 0,
                    route_name: None,
                    match_index: None,
                    match_summary: Arc::from("any request"),
                    ..Default::default()
                },
                route: Arc::new(Route {
                    fault: None,
                    cors: None,
                    action: RouteAction::Forward(forward),
                    response_headers: Default::default(),
                }),
                matched: 1,
            },
        }
    }
}

impl mirrorlab::proxy::Routes for FixedRoutes {
    fn resolve(
        &self,
        head: &mirrorlab::routing::RequestHead<'_>,
    ) -> Result<mirrorlab::routing::Resolution, mirrorlab::routing::NoRoute> {
        if head.host == self.host {
            Ok(self.resolution.clone())
        } else {
            Err(mirrorlab::routing::NoRoute::UnknownHost {
                host: head.host.to_owned(),
                configured: self.hosts(),
                passed_over: Vec::new(),
            })
        }
    }

    fn default_host(&self) -> Option<&str> {
        Some(&self.host)
    }

    fn hosts(&self) -> Vec<String> {
        vec![self.host.clone()]
    }
}

/// A proxy on an ephemeral port serving `routes`, with its own capture hub.
pub fn start_proxy(
    routes: impl mirrorlab::proxy::Routes,
    settings: mirrorlab::proxy::ProxySettings,
) -> (mirrorlab::proxy::Proxy, CancellationToken) {
    let cancel = CancellationToken::new();
    let hub = Arc::new(mirrorlab::capture::CaptureHub::new(
        mirrorlab::capture::StoreBounds::default(),
    ));
    let settings = mirrorlab::proxy::ProxySettings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..settings
    };
    let proxy = mirrorlab::proxy::Proxy::start(
        &tokio::runtime::Handle::current(),
        cancel.clone(),
        settings,
        Box::new(routes),
        hub,
    )
    .expect("start proxy");
    (proxy, cancel)
}

/// Waits until the store holds `n` exchanges (or `within` passed) and returns them by id.
pub async fn wait_for_exchanges(
    store: &mirrorlab::capture::CaptureStore,
    n: usize,
    within: Duration,
) -> Vec<Arc<mirrorlab::capture::Exchange>> {
    let deadline = Instant::now() + within;
    loop {
        let mut exchanges = store.recent(usize::MAX);
        if exchanges.len() >= n || Instant::now() >= deadline {
            exchanges.sort_by_key(|e| e.id);
            return exchanges;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Where the test mesh's services live: `reviews` v1 and v3, and `reviews-v2` (v2).
#[derive(Debug, Clone, Copy)]
pub struct MeshPorts {
    pub v1: u16,
    pub v2: u16,
    pub v3: u16,
}

/// The ServiceEntries and DestinationRules of the test mesh, followed by `virtual_service`
/// (Istio YAML, as a user would write it).
pub fn mesh_yaml(ports: MeshPorts, virtual_service: &str) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - number: 9080
    name: http
    protocol: HTTP
  endpoints:
  - address: 127.0.0.1
    ports:
      http: {v1}
    labels:
      version: v1
  - address: 127.0.0.1
    ports:
      http: {v3}
    labels:
      version: v3
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v3
    labels:
      version: v3
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews-v2
spec:
  hosts:
  - reviews-v2
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - number: 9080
    name: http
    protocol: HTTP
  endpoints:
  - address: 127.0.0.1
    ports:
      http: {v2}
    labels:
      version: v2
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews-v2
spec:
  host: reviews-v2
  subsets:
  - name: v2
    labels:
      version: v2
---
{virtual_service}"#,
        v1 = ports.v1,
        v2 = ports.v2,
        v3 = ports.v3,
    )
}

/// Three recording upstreams standing in for reviews v1, reviews-v2 (v2) and reviews v3.
pub struct Mesh {
    pub v1: TestUpstream,
    pub v2: TestUpstream,
    pub v3: TestUpstream,
}

impl Mesh {
    pub async fn start() -> Mesh {
        Mesh {
            v1: TestUpstream::start("v1", Reply::ok(r#"{"version":"v1"}"#)).await,
            v2: TestUpstream::start("v2", Reply::ok(r#"{"version":"v2"}"#)).await,
            v3: TestUpstream::start("v3", Reply::ok(r#"{"version":"v3"}"#)).await,
        }
    }

    pub fn ports(&self) -> MeshPorts {
        MeshPorts {
            v1: self.v1.addr.port(),
            v2: self.v2.addr.port(),
            v3: self.v3.addr.port(),
        }
    }

    pub fn yaml(&self, virtual_service: &str) -> String {
        mesh_yaml(self.ports(), virtual_service)
    }
}

/// A VirtualService `reviews-vs` for host `reviews` whose `http` routes are `routes` (YAML
/// list items, indented two spaces).
pub fn reviews_vs(routes: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-vs
spec:
  hosts: [reviews]
  http:
{routes}"
    )
}

/// Compiles Istio YAML into a route table, failing the test with the diagnostics.
pub fn route_table(yaml: &str) -> mirrorlab::routing::RouteTable {
    let set = mirrorlab::config::ConfigSet::load_str("test.yaml", yaml);
    assert!(
        !set.has_errors(),
        "test config has errors:\n{}",
        set.diagnostics()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    mirrorlab::routing::RouteTable::compile(&set).unwrap_or_else(|errors| {
        panic!(
            "test config does not compile:\n{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// A lab on an ephemeral port serving `yaml`, without gRPC server reflection: the lab's
/// own reflection calls would reach the servers of these tests beside the traffic they
/// count (tests/grpc_reflection.rs tests reflection with it on).
pub fn start_lab(yaml: &str, seed: Option<u64>) -> mirrorlab::lab::Lab {
    mirrorlab::lab::Lab::start(
        &tokio::runtime::Handle::current(),
        CancellationToken::new(),
        mirrorlab::lab::LabSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed,
            grpc_reflection: false,
            ..mirrorlab::lab::LabSettings::default()
        },
        route_table(yaml),
    )
    .expect("start lab")
}

/// The tutorial's VirtualService with its route named `reviews-v1-mirrored`.
pub const TO_V1_MIRRORED_NAMED: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-vs
spec:
  hosts:
  - reviews
  http:
  - name: reviews-v1-mirrored
    route:
    - destination:
        host: reviews
        subset: v1
    mirror:
      host: reviews-v2
      subset: v2
"#;

/// The tutorial's VirtualService: all reviews traffic to v1, 100% mirrored to reviews-v2/v2
/// (the mesh around it comes from `mesh_yaml`).
#[allow(
    dead_code,
    reason = "not every test binary that includes common uses it"
)]
pub const TO_V1_MIRRORED: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-vs
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
    mirror:
      host: reviews-v2
      subset: v2
"#;

/// A `mirrorlab run` started by a test: the process, the address its first line says it
/// listens on, and its stderr, gathered until it exits.
pub struct RunChild {
    pub child: tokio::process::Child,
    pub addr: String,
    pub logs: tokio::task::JoinHandle<String>,
    /// Kept open so the process can still write to stdout.
    _stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

/// Starts `mirrorlab run ARGS...` (logging at info, no proxy from the environment) and
/// waits up to 30 s for its `listening on ADDR` line.
pub async fn spawn_run<I, S>(args: I) -> RunChild
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mirrorlab"))
        .arg("run")
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("HTTP_PROXY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start mirrorlab run");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stderr = child.stderr.take().expect("stderr");
    let logs = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let first = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("listening line in time")
        .expect("read stdout")
        .expect("a first line");
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line says where it listens: {first}"))
        .to_owned();
    RunChild {
        child,
        addr,
        logs,
        _stdout: stdout,
    }
}

/// `reviews` (subset v1 on `v1`) and `reviews-v2` (subset v2 on `v2`): each a ServiceEntry
/// with port 9080 named `port` and `port_extra` after the name (`, protocol: GRPC`, or
/// nothing for a sniffed port), and a DestinationRule with `policy` (lines under `spec:`,
/// e.g. a `trafficPolicy`), every request to v1 mirrored to v2.
#[allow(
    dead_code,
    reason = "not every test binary that includes common uses it"
)]
pub fn mirrored_pair_yaml(
    v1: SocketAddr,
    v2: SocketAddr,
    port: &str,
    port_extra: &str,
    policy: &str,
) -> String {
    let service = |name: &str, number: u16, version: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}}}
spec:
  hosts: [{name}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: {port}{port_extra}}}]
  endpoints:
  - {{address: 127.0.0.1, ports: {{{port}: {number}}}, labels: {{version: {version}}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}}}
spec:
  host: {name}
{policy}  subsets:
  - {{name: {version}, labels: {{version: {version}}}}}
---
"
        )
    };
    format!(
        "{}{}apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - route: [{{destination: {{host: reviews, subset: v1}}}}]
    mirror: {{host: reviews-v2, subset: v2}}
",
        service("reviews", v1.port(), "v1"),
        service("reviews-v2", v2.port(), "v2"),
    )
}

/// The gRPC demo of sample-configs/reviews-grpc.yaml on ephemeral ports: its services, and
/// the sample's YAML pointed at where they listen.
#[allow(
    dead_code,
    reason = "not every test binary that includes common uses it"
)]
pub fn start_grpc_demo(handle: &tokio::runtime::Handle) -> (mirrorlab::demo::DemoServices, String) {
    use mirrorlab::demo::ReviewsVersion;
    let sample = include_str!("../../sample-configs/reviews-grpc.yaml");
    let on_port_zero = sample
        .replace("grpc: 9091", "grpc: 0")
        .replace("grpc: 9092", "grpc: 0");
    let services = mirrorlab::demo::DemoServices::start(
        handle,
        &mirrorlab::config::ConfigSet::load_str("grpc", &on_port_zero),
    )
    .expect("the gRPC demo starts");
    let mut yaml = sample.to_owned();
    for (fixed, version) in [(9091, ReviewsVersion::V1), (9092, ReviewsVersion::V2)] {
        let port = services
            .endpoints()
            .iter()
            .find(|e| e.version == version)
            .map(|e| e.addr.port())
            .expect("endpoint started");
        yaml = yaml.replace(&format!("grpc: {fixed}"), &format!("grpc: {port}"));
    }
    (services, yaml)
}
