//! Shared parts of the UI tests: real upstream servers on 127.0.0.1 and the app in a
//! kittest harness.
#![allow(dead_code, reason = "each test file uses a different part")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mirrorlab::ui::files::DialogBackend;
use mirrorlab::ui::{AppOptions, MirrorlabApp};

/// A JSON service on an ephemeral port that counts the requests it gets.
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests served.
    pub hits: Arc<AtomicU64>,
    /// What each request served was sent: its path and query, and its headers.
    pub seen: Arc<std::sync::Mutex<Vec<SeenRequest>>>,
}

/// A request as an [`Upstream`] got it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// Path and query.
    pub path: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
}

impl Upstream {
    /// Starts a server answering `{"id":..}` plus the fields in `extra` when given (so v2
    /// can differ from v1).
    pub fn start(rt: &tokio::runtime::Runtime, extra: Option<&'static str>) -> Upstream {
        Upstream::answering(rt, move |id, _| match extra {
            Some(extra) => format!(r#"{{"id":"{id}",{extra}}}"#),
            None => format!(r#"{{"id":"{id}"}}"#),
        })
    }

    /// Starts a server whose JSON answer `body(id, n)` makes from the last path segment and
    /// the number of requests served before this one.
    pub fn answering(
        rt: &tokio::runtime::Runtime,
        body: impl Fn(&str, u64) -> String + Send + Sync + 'static,
    ) -> Upstream {
        Upstream::answering_with(rt, body, |_| 200)
    }

    /// [`Upstream::answering`] with the status `status(n)` for the request after `n` served.
    pub fn answering_with(
        rt: &tokio::runtime::Runtime,
        body: impl Fn(&str, u64) -> String + Send + Sync + 'static,
        status: impl Fn(u64) -> u16 + Send + Sync + 'static,
    ) -> Upstream {
        let body = Arc::new(body);
        let status = Arc::new(status);
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&hits);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let counter = Arc::clone(&counter);
                let make = Arc::clone(&body);
                let status = Arc::clone(&status);
                let record = Arc::clone(&record);
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        let path = req
                            .uri()
                            .path_and_query()
                            .map_or_else(String::new, |p| p.as_str().to_owned());
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                            })
                            .collect();
                        record.lock().unwrap().push(SeenRequest { path, headers });
                        let id = req
                            .uri()
                            .path()
                            .rsplit('/')
                            .next()
                            .unwrap_or("0")
                            .to_owned();
                        let body = make(&id, n);
                        let code = status(n);
                        async move {
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(code)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream { addr, hits, seen }
    }

    /// The last request served, if any.
    pub fn last_seen(&self) -> Option<SeenRequest> {
        self.seen.lock().unwrap().last().cloned()
    }

    /// Requests served so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

/// Two upstreams on 127.0.0.1 and [`mirror_config`] naming them, written to
/// `reviews.yaml` in a fresh temporary directory (removed when this is dropped).
pub struct MirrorFiles {
    pub v1: Upstream,
    pub v2: Upstream,
    pub dir: tempfile::TempDir,
    pub path: std::path::PathBuf,
}

/// Starts the two upstreams and writes the config.
pub fn mirror_files(rt: &tokio::runtime::Runtime) -> MirrorFiles {
    mirror_files_of(Upstream::start(rt, None), Upstream::start(rt, None))
}

/// Writes the config for these two upstreams.
pub fn mirror_files_of(v1: Upstream, v2: Upstream) -> MirrorFiles {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, mirror_config(v1.addr, v2.addr)).unwrap();
    MirrorFiles { v1, v2, dir, path }
}

/// A config: VirtualService `reviews` to v1, mirrored 100% to v2, both on the given servers.
pub fn mirror_config(v1: SocketAddr, v2: SocketAddr) -> String {
    let head = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-vs
spec:
  hosts:
  - reviews
  http:
  - name: to-v1
    route:
    - destination:
        host: reviews
        subset: v1
    mirror:
      host: reviews
      subset: v2
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews-dr
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
---
";
    format!("{head}{}", reviews_service_entry(&[(v1, "v1"), (v2, "v2")]))
}

/// The ServiceEntry for `reviews` (port 9080) with one endpoint per (address, version).
pub fn reviews_service_entry(endpoints: &[(SocketAddr, &str)]) -> String {
    let mut text = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
spec:
  hosts:
  - reviews.default.svc.cluster.local
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - number: 9080
    name: http
    protocol: HTTP
  endpoints:
"
    .to_owned();
    for (addr, version) in endpoints {
        text.push_str(&format!(
            "  - address: 127.0.0.1\n    ports:\n      http: {}\n    labels:\n      version: {version}\n",
            addr.port()
        ));
    }
    text
}

/// The smallest VirtualService: host `reviews`, one route to it.
pub const VS: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
";

/// The multi-thread runtime the app's engine runs on in tests.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The real app in a harness, with `config` open (so the proxy starts with it), fresh
/// settings, the path-field dialogs, and the proxy set to listen on an ephemeral port.
pub fn app<'a>(rt: &tokio::runtime::Runtime, config: Option<&Path>) -> Harness<'a, MirrorlabApp> {
    let handle = rt.handle().clone();
    let options = AppOptions {
        config: config.map(Path::to_path_buf),
        dialogs: DialogBackend::PathField,
        fresh_state: true,
        // The proxy starts as the config opens, in the first frame: an ephemeral port from
        // the start.
        listen: Some("127.0.0.1:0".to_owned()),
        ..AppOptions::default()
    };
    Harness::builder()
        .with_size(egui::vec2(1500.0, 1000.0))
        // Frames keep coming while the engine works (the top bar's spinner): enough steps
        // for a start or a stop to finish within one `run`.
        .with_max_steps(2_000)
        .build_eframe(move |cc| MirrorlabApp::new(cc, handle, options))
}

/// Focuses the text field labelled `label` and types `text` into it.
pub fn type_into(h: &mut Harness<'_, MirrorlabApp>, label: &str, text: &str) {
    let input = egui::accesskit::Role::TextInput;
    h.get_by_role_and_label(input, label).click();
    h.run_ok();
    h.get_by_role_and_label(input, label).type_text(text);
    h.run_ok();
}

/// Steps the app (in real time) until `done` holds or `secs` pass.
pub fn wait_until(
    h: &mut Harness<'_, MirrorlabApp>,
    secs: u64,
    mut done: impl FnMut(&MirrorlabApp) -> bool,
) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        h.step();
        if done(h.state()) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// Sends `n` GET requests for host `reviews` through the proxy at `addr`.
pub fn send_requests(rt: &tokio::runtime::Runtime, addr: SocketAddr, n: usize) {
    let paths: Vec<String> = (0..n).map(|i| format!("/reviews/{i}")).collect();
    send_paths(rt, addr, &paths);
}

/// Sends one GET request for host `reviews` per path, in order, through the proxy at `addr`.
pub fn send_paths(rt: &tokio::runtime::Runtime, addr: SocketAddr, paths: &[String]) {
    rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        for path in paths {
            let resp = client
                .get(format!("http://{addr}{path}"))
                .header("host", "reviews")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{path} through the proxy");
        }
    });
}
