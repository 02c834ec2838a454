//! gRPC server reflection: a gRPC call whose route has no descriptors (no
//! `mirrorlab.dev/grpc-descriptors` annotation, no `--grpc-descriptors` setting) makes the
//! lab ask the primary's endpoint for them, in the background, with
//! `grpc.reflection.v1.ServerReflection/ServerReflectionInfo` (`v1alpha` when v1 is
//! UNIMPLEMENTED): `file_containing_symbol` with the service from the `:path`, then
//! `file_by_filename` for the dependencies still missing. The protocol is grpc/grpc
//! `src/proto/grpc/reflection/v1/reflection.proto`:
//! - `ServerReflectionRequest`: `string host = 1`; `oneof message_request { string
//!   file_by_filename = 3; string file_containing_symbol = 4; ExtensionRequest
//!   file_containing_extension = 5; string all_extension_numbers_of_type = 6; string
//!   list_services = 7; }`
//! - `ServerReflectionResponse`: `string valid_host = 1`; `ServerReflectionRequest
//!   original_request = 2`; `oneof message_response { FileDescriptorResponse
//!   file_descriptor_response = 4; ...; ErrorResponse error_response = 7; }`
//! - `FileDescriptorResponse`: `repeated bytes file_descriptor_proto = 1`;
//!   `ErrorResponse`: `int32 error_code = 1; string error_message = 2`.
//!
//! The servers (tests/grpc_reflection/server.rs) write those messages by hand. Real
//! servers on 127.0.0.1, ephemeral ports; every wait bounded.

mod common;
#[path = "grpc_reflection/server.rs"]
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mirrorlab::analysis::descriptors::{DescriptorOrigin, GrpcDecode, GrpcDescriptors};
use mirrorlab::analysis::{AnalysisSettings, AnalysisSnapshot, FieldPath, Verdict};
use mirrorlab::capture::Exchange;
use mirrorlab::lab::{CompiledConfig, Lab, LabSettings};
use server::{Ask, GET_REVIEWS, GrpcServer, Offers, V1, V1ALPHA};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

/// `reviews` v1 and `reviews-v2` on GRPC ports, every call to v1 mirrored to v2, with
/// `policy` under both DestinationRules' `spec`.
fn yaml(v1: SocketAddr, v2: SocketAddr, policy: &str) -> String {
    common::mirrored_pair_yaml(v1, v2, "grpc", ", protocol: GRPC", policy)
}

/// A lab on an ephemeral port for `yaml` (annotations read relative to `file`), with the
/// gRPC descriptors setting `setting`, and server reflection on (the default).
fn start_lab(yaml: &str, file: &str, setting: Option<GrpcDescriptors>) -> Lab {
    let compiled = CompiledConfig::from_text(file, yaml).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        compiled.ignore_errors.is_empty(),
        "{:?}",
        compiled.ignore_errors
    );
    let mut analysis = compiled.analysis_settings(AnalysisSettings::default());
    analysis.grpc_descriptors = setting;
    Lab::start(
        &tokio::runtime::Handle::current(),
        CancellationToken::new(),
        LabSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: Some(1),
            analysis,
            ..LabSettings::default()
        },
        compiled.table,
    )
    .expect("lab starts")
}

/// An h2c client of the lab, calling `reviews.Reviews/GetReviews` on `reviews:9080`.
struct Client(SendRequest<Full<Bytes>>);

impl Client {
    async fn connect(lab: &str) -> Client {
        let stream = tokio::net::TcpStream::connect(lab).await.expect("connect");
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .expect("h2c handshake");
        tokio::spawn(connection);
        Client(sender)
    }

    /// One call, answered in full.
    async fn call(&mut self) {
        let request = http::Request::post(format!("http://reviews:9080{GET_REVIEWS}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(server::request()))
            .expect("request");
        let response = tokio::time::timeout(WAIT, self.0.send_request(request))
            .await
            .expect("answered in time")
            .expect("answered");
        assert_eq!(response.status(), 200);
        let body = tokio::time::timeout(WAIT, response.into_body().collect())
            .await
            .expect("body in time")
            .expect("body");
        let status = body.trailers().and_then(|t| t.get("grpc-status")).cloned();
        assert_eq!(status.as_ref().map(|v| v.as_bytes()), Some(&b"0"[..]));
    }

    async fn calls(&mut self, n: usize) {
        for _ in 0..n {
            self.call().await;
        }
    }
}

/// How the lab reads `exchange`'s messages once reflection has answered (bounded).
async fn settled_decode(lab: &Lab, exchange: &Exchange) -> GrpcDecode {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let decode = lab.analysis().grpc_decode(exchange).expect("a gRPC call");
        if !decode.pending() || tokio::time::Instant::now() >= deadline {
            return decode;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The analysis once `n` exchanges are in it (bounded).
async fn analysed(lab: &Lab, n: u64) -> Arc<AnalysisSnapshot> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let snapshot = lab.analysis();
        if snapshot.exchanges >= n || tokio::time::Instant::now() >= deadline {
            return snapshot;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many exchanges differ at `field` in the analysis' aggregates.
fn differing(snapshot: &AnalysisSnapshot, field: &str) -> u64 {
    snapshot
        .diffs
        .iter()
        .filter(|r| r.field == FieldPath::Json(field.to_owned()))
        .map(|r| r.differing)
        .sum()
}

fn reflected(v1: &GrpcServer) -> GrpcDecode {
    GrpcDecode::Typed(DescriptorOrigin::Reflection {
        endpoint: v1.addr.to_string(),
        service: "reviews.Reviews".to_owned(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_offering_reflection_v1_gets_its_messages_read_by_name() {
    let v1 = GrpcServer::start(1, Offers::V1, None).await;
    let v2 = GrpcServer::start(2, Offers::Nothing, None).await;
    let lab = start_lab(&yaml(v1.addr, v2.addr, ""), "reviews.yaml", None);
    let mut client = Client::connect(&lab.local_addr().to_string()).await;
    // The first call is analysed before any descriptors exist, and asks for them.
    client.call().await;
    let first = common::wait_for_exchanges(lab.captures(), 1, WAIT).await;
    assert_eq!(settled_decode(&lab, &first[0]).await, reflected(&v1));

    client.calls(40).await;
    let exchanges = common::wait_for_exchanges(lab.captures(), 41, WAIT).await;
    assert_eq!(exchanges.len(), 41, "the client's calls, and only them");
    assert!(
        exchanges.iter().all(|e| e.request.uri == GET_REVIEWS),
        "no reflection call among the captures"
    );
    assert_eq!(lab.counters().requests, 41, "nor in the proxy's counters");
    assert_eq!((v1.calls(), v2.calls()), (41, 41));

    // Every call after the answer was diffed by field name; the first, by number.
    let snapshot = analysed(&lab, 41).await;
    assert!(
        differing(&snapshot, "/summary") >= 10,
        "{:?}",
        snapshot.diffs
    );
    assert!(differing(&snapshot, "/stars") >= 10, "{:?}", snapshot.diffs);
    assert!(differing(&snapshot, "/4") <= 1, "{:?}", snapshot.diffs);
    // v1's own repeats (the same call, its timestamp moving) are read as the shadow's
    // answers are, by name: its constant fields are not taken for volatile ones (read by
    // number against by name, every field of a repeat would look changed).
    let stars = snapshot
        .diffs
        .iter()
        .find(|r| r.field == FieldPath::Json("/stars".to_owned()))
        .map(|r| r.verdict);
    assert_eq!(stars, Some(Verdict::Real), "{:?}", snapshot.diffs);

    // The first exchange's detail reads by name now, and says where the names came from.
    let comparison = mirrorlab::lab::control::compare::compare(&first[0], 0, &snapshot);
    assert_eq!(comparison.grpc_decode, Some(reflected(&v1)));
    let shown = comparison
        .grpc_decode
        .map(|d| d.to_string())
        .unwrap_or_default();
    assert!(
        shown.contains(&format!(
            "from server reflection ({}, reviews.Reviews)",
            v1.addr
        )),
        "{shown}"
    );
    assert!(
        comparison.shadow_body.contains("\"average_stars\""),
        "{}",
        comparison.shadow_body
    );

    // What the primary was asked: the file declaring the service, then its missing
    // dependency by name; never the well-known timestamp.proto, which prost-reflect has.
    assert_eq!(
        v1.asks(),
        vec![
            (V1.to_owned(), Ask::Symbol("reviews.Reviews".to_owned())),
            (V1.to_owned(), Ask::File("reviews/types.proto".to_owned())),
        ]
    );
    assert!(v2.asks().is_empty(), "the shadow is never asked");
    lab.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_offering_only_v1alpha_is_asked_there_after_v1_is_unimplemented() {
    let v1 = GrpcServer::start(1, Offers::V1AlphaOnly, None).await;
    let v2 = GrpcServer::start(2, Offers::Nothing, None).await;
    let lab = start_lab(&yaml(v1.addr, v2.addr, ""), "reviews.yaml", None);
    let mut client = Client::connect(&lab.local_addr().to_string()).await;
    client.call().await;
    let first = common::wait_for_exchanges(lab.captures(), 1, WAIT).await;
    assert_eq!(settled_decode(&lab, &first[0]).await, reflected(&v1));
    client.calls(5).await;
    let snapshot = analysed(&lab, 6).await;
    assert!(
        differing(&snapshot, "/summary") >= 5,
        "{:?}",
        snapshot.diffs
    );
    assert_eq!(
        v1.asks(),
        vec![
            (V1.to_owned(), Ask::Symbol("reviews.Reviews".to_owned())),
            (
                V1ALPHA.to_owned(),
                Ask::Symbol("reviews.Reviews".to_owned())
            ),
            (
                V1ALPHA.to_owned(),
                Ask::File("reviews/types.proto".to_owned())
            ),
        ],
        "v1 once, then v1alpha for everything"
    );
    lab.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_without_reflection_is_asked_once_and_its_messages_go_by_number() {
    let v1 = GrpcServer::start(1, Offers::Nothing, None).await;
    let v2 = GrpcServer::start(2, Offers::Nothing, None).await;
    let lab = start_lab(&yaml(v1.addr, v2.addr, ""), "reviews.yaml", None);
    let mut client = Client::connect(&lab.local_addr().to_string()).await;
    client.calls(20).await;
    let first = common::wait_for_exchanges(lab.captures(), 1, WAIT).await;
    let decode = settled_decode(&lab, &first[0]).await;
    let GrpcDecode::SchemaLess(why) = &decode else {
        panic!("read by name: {decode:?}");
    };
    assert!(
        why.contains(&format!(
            "server reflection ({}, reviews.Reviews) failed",
            v1.addr
        )) && why.contains("UNIMPLEMENTED"),
        "{why}"
    );
    // The failure is remembered: more calls ask nothing more.
    client.calls(20).await;
    let snapshot = analysed(&lab, 40).await;
    assert_eq!(snapshot.exchanges, 40);
    assert_eq!(differing(&snapshot, "/4"), 40, "{:?}", snapshot.diffs);
    assert_eq!(differing(&snapshot, "/summary"), 0);
    assert_eq!(
        v1.asks(),
        vec![
            (V1.to_owned(), Ask::Symbol("reviews.Reviews".to_owned())),
            (
                V1ALPHA.to_owned(),
                Ask::Symbol("reviews.Reviews".to_owned())
            ),
        ],
        "one attempt (v1, then v1alpha) over 40 calls"
    );
    let comparison = mirrorlab::lab::control::compare::compare(&first[0], 0, &snapshot);
    let shown = comparison
        .grpc_decode
        .map(|d| d.to_string())
        .unwrap_or_default();
    assert!(shown.starts_with("gRPC messages schema-less"), "{shown}");
    lab.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_behind_tls_origination_is_asked_over_tls() {
    // The DestinationRule's `tls` (SIMPLE) makes the lab originate TLS to both versions;
    // its own reflection call speaks the same TLS, with ALPN h2, to the primary.
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tls = Arc::new(config);
    let v1 = GrpcServer::start(1, Offers::V1, Some(Arc::clone(&tls))).await;
    let v2 = GrpcServer::start(2, Offers::Nothing, Some(tls)).await;
    let policy = "  trafficPolicy:\n    tls: {mode: SIMPLE, insecureSkipVerify: true}\n";
    let lab = start_lab(&yaml(v1.addr, v2.addr, policy), "reviews.yaml", None);
    let mut client = Client::connect(&lab.local_addr().to_string()).await;
    client.call().await;
    let first = common::wait_for_exchanges(lab.captures(), 1, WAIT).await;
    assert_eq!(settled_decode(&lab, &first[0]).await, reflected(&v1));
    assert_eq!(v1.asks().len(), 2, "{:?}", v1.asks());
    lab.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_reviews_v1_answers_reflection_for_its_own_service() {
    // The gRPC demo without its annotation: v1's reflection names the fields.
    let handle = tokio::runtime::Handle::current();
    let (services, yaml) = common::start_grpc_demo(&handle);
    let yaml = yaml.replace("    mirrorlab.dev/grpc-descriptors: reviews.pb\n", "");
    assert!(!yaml.contains("grpc-descriptors"));
    let lab = start_lab(&yaml, "reviews-grpc.yaml", None);
    let v1 = services
        .endpoints()
        .iter()
        .find(|e| e.version == mirrorlab::demo::ReviewsVersion::V1)
        .map(|e| e.addr)
        .expect("v1");
    let mut client = Client::connect(&lab.local_addr().to_string()).await;
    client.call().await;
    let first = common::wait_for_exchanges(lab.captures(), 1, WAIT).await;
    assert_eq!(
        settled_decode(&lab, &first[0]).await,
        GrpcDecode::Typed(DescriptorOrigin::Reflection {
            endpoint: v1.to_string(),
            service: "reviews.Reviews".to_owned(),
        })
    );
    lab.shutdown(Duration::from_secs(2)).await;
    services.stop().await;
}

/// Runs `mirrorlab run CONFIG ARGS... --duration 3` while 5 calls go through it; returns
/// the report's differing fields and the logs.
async fn run_with(config: &std::path::Path, args: &[&std::ffi::OsStr]) -> (Vec<String>, String) {
    let dir = config.parent().expect("dir");
    let report = dir.join(format!("report-{}.json", fastrand::u32(..)));
    let mut all: Vec<&std::ffi::OsStr> = vec![
        config.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--duration".as_ref(),
        "3".as_ref(),
        "--report".as_ref(),
        report.as_os_str(),
    ];
    all.extend_from_slice(args);
    let common::RunChild {
        mut child,
        addr,
        logs,
        ..
    } = common::spawn_run(all).await;
    let mut client = Client::connect(&addr).await;
    client.call().await;
    // Reflection, when the run asks for it, answers from 127.0.0.1 in milliseconds; the
    // later calls are analysed with what it found.
    tokio::time::sleep(Duration::from_millis(500)).await;
    client.calls(4).await;
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("run ends")
        .expect("run exits");
    let logs = logs.await.expect("logs");
    assert!(status.success(), "{status}\n{logs}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let fields = json["diffs"]
        .as_array()
        .expect("diffs")
        .iter()
        .filter_map(|d| d["field"].as_str().map(str::to_owned))
        .collect();
    (fields, logs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_descriptors_setting_reads_routes_without_an_annotation_and_the_annotation_wins() {
    // Servers without reflection: the names can only come from the files.
    let v1 = GrpcServer::start(1, Offers::Nothing, None).await;
    let v2 = GrpcServer::start(2, Offers::Nothing, None).await;
    let dir = tempfile::tempdir().expect("temp dir");
    // The two files name the reply's field 4 differently, so the diff says which was read.
    std::fs::write(
        dir.path().join("setting.pb"),
        server::descriptor_set("summary"),
    )
    .expect("pb");
    std::fs::write(
        dir.path().join("annotated.pb"),
        server::descriptor_set("annotated_summary"),
    )
    .expect("pb");
    let plain = dir.path().join("plain.yaml");
    std::fs::write(&plain, yaml(v1.addr, v2.addr, "")).expect("config");
    let annotated = dir.path().join("annotated.yaml");
    let with_annotation = yaml(v1.addr, v2.addr, "").replace(
        "metadata: {name: reviews}\nspec:\n  hosts: [reviews]",
        "metadata:\n  name: reviews\n  annotations: {mirrorlab.dev/grpc-descriptors: annotated.pb}\nspec:\n  hosts: [reviews]",
    );
    assert!(with_annotation.contains("annotated.pb"));
    std::fs::write(&annotated, with_annotation).expect("config");
    let setting = dir.path().join("setting.pb");
    let flag: [&std::ffi::OsStr; 2] = ["--grpc-descriptors".as_ref(), setting.as_os_str()];

    let (fields, logs) = run_with(&plain, &flag).await;
    assert!(fields.iter().any(|f| f == "/summary"), "{fields:?}\n{logs}");
    assert!(!fields.iter().any(|f| f == "/4"), "{fields:?}");

    let (fields, logs) = run_with(&annotated, &flag).await;
    assert!(
        fields.iter().any(|f| f == "/annotated_summary"),
        "{fields:?}\n{logs}"
    );
    assert!(
        !fields.iter().any(|f| f == "/summary" || f == "/4"),
        "{fields:?}"
    );
    assert!(
        v1.asks().is_empty(),
        "with descriptors, no reflection: {:?}",
        v1.asks()
    );

    // A file that does not load is logged with its name and why; the proxy runs, and
    // the messages go by number (this primary offers no reflection).
    let missing = dir.path().join("missing.pb");
    let flag: [&std::ffi::OsStr; 2] = ["--grpc-descriptors".as_ref(), missing.as_os_str()];
    let (fields, logs) = run_with(&plain, &flag).await;
    assert!(
        logs.contains(&missing.display().to_string()) && logs.contains("cannot read"),
        "{logs}"
    );
    assert!(fields.iter().any(|f| f == "/4"), "{fields:?}");
    assert_eq!(v1.calls(), 15, "every run served its calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_asks_by_reflection_unless_told_not_to() {
    let v1 = GrpcServer::start(1, Offers::V1, None).await;
    let v2 = GrpcServer::start(2, Offers::Nothing, None).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("reviews.yaml");
    std::fs::write(&config, yaml(v1.addr, v2.addr, "")).expect("config");

    let off: [&std::ffi::OsStr; 1] = ["--no-grpc-reflection".as_ref()];
    let (fields, _) = run_with(&config, &off).await;
    assert!(v1.asks().is_empty(), "{:?}", v1.asks());
    assert!(fields.iter().any(|f| f == "/4"), "{fields:?}");

    let (fields, logs) = run_with(&config, &[]).await;
    assert_eq!(v1.asks().len(), 2, "{:?}", v1.asks());
    assert!(
        logs.contains("gRPC descriptors from server reflection"),
        "{logs}"
    );
    assert!(fields.iter().any(|f| f == "/summary"), "{fields:?}\n{logs}");
}
