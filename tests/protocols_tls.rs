//! TLS origination to upstreams, as a DestinationRule's `tls` asks (Istio's
//! `buildUpstreamTLSSettings`): SIMPLE against `caCertificates`, the SNI, `subjectAltNames`,
//! `insecureSkipVerify`, MUTUAL with a client certificate, and the handshake failures the
//! client sees as Envoy's 503 (flag UF). Certificates are made by the test (rcgen); the
//! servers are rustls on 127.0.0.1.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mirrorlab::capture::{UpstreamErrorKind, UpstreamOutcome};
use rcgen::{CertificateParams, CertifiedIssuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const WAIT: Duration = Duration::from_secs(5);

/// A CA and what it signed, written as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let issuer =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("ca.pem"), issuer.pem()).expect("write CA");
        Pki { dir, issuer }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A leaf certificate for `names`, signed by the CA; written as `{file}.pem` and
    /// `{file}-key.pem`, and returned for a rustls server.
    fn leaf(
        &self,
        file: &str,
        names: &[&str],
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &self.issuer)
            .expect("signed");
        std::fs::write(self.dir.path().join(format!("{file}.pem")), cert.pem()).expect("write");
        std::fs::write(
            self.dir.path().join(format!("{file}-key.pem")),
            key.serialize_pem(),
        )
        .expect("write key");
        (
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }
}

/// What a TLS server saw: the SNI of each handshake, and whether a client certificate came.
#[derive(Debug, Default)]
struct Seen {
    sni: Vec<Option<String>>,
    client_certs: Vec<bool>,
    requests: usize,
}

/// A TLS server on 127.0.0.1 answering `200 tls` to every request; with `client_ca`, it
/// requires a client certificate signed by it.
async fn tls_server(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<&Path>,
) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            let pem = std::fs::read(ca).expect("CA");
            for cert in rustls_pemfile_certs(&pem) {
                roots.add(cert).expect("root");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(chain, key).expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, record) = (acceptor.clone(), Arc::clone(&record));
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                {
                    let (_, session) = tls.get_ref();
                    let mut seen = record.lock().expect("seen");
                    seen.sni.push(session.server_name().map(str::to_owned));
                    seen.client_certs
                        .push(session.peer_certificates().is_some());
                }
                let service = service_fn(move |_request: Request<Incoming>| {
                    let record = Arc::clone(&record);
                    async move {
                        record.lock().expect("seen").requests += 1;
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"tls"))))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM")
}

/// `reviews` on `addr` (port protocol HTTPS), its DestinationRule's `tls` as given.
fn config(addr: SocketAddr, tls: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews}}
spec:
  hosts: [reviews.lab]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: 443, name: https, protocol: HTTP}}]
  endpoints:
  - {{address: 127.0.0.1, ports: {{https: {}}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews.lab
  trafficPolicy:
    tls: {tls}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews.lab]
  http:
  - route: [{{destination: {{host: reviews.lab, port: {{number: 443}}}}}}]
",
        addr.port()
    )
}

/// One request through a lab serving `yaml`: the status, the body, and the capture.
async fn call(yaml: &str) -> (u16, String, mirrorlab::capture::UpstreamOutcome) {
    let lab = common::start_lab(yaml, Some(1));
    let response = common::client()
        .get(format!("http://{}/", lab.local_addr()))
        .header("host", "reviews.lab")
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    let exchanges = common::wait_for_exchanges(lab.captures(), 1, WAIT).await;
    let outcome = exchanges[0]
        .primary
        .as_ref()
        .expect("primary")
        .outcome
        .clone();
    (status, body, outcome)
}

fn failure(outcome: &UpstreamOutcome) -> (UpstreamErrorKind, String) {
    match outcome {
        UpstreamOutcome::Failed(f) => (f.kind, f.detail.clone()),
        UpstreamOutcome::Response(r) => panic!("expected a failure, got {}", r.status),
    }
}

#[tokio::test]
async fn simple_tls_checks_the_server_against_ca_certificates_and_the_sni() {
    let pki = Pki::new("mesh");
    let (chain, key) = pki.leaf("server", &["reviews.lab"]);
    let (addr, seen) = tls_server(chain, key, None).await;
    let ca = pki.ca_file().display().to_string();

    // SNI defaults to the destination's host, and the certificate is valid for it.
    let (status, body, _) = call(&config(
        addr,
        &format!("{{mode: SIMPLE, caCertificates: {ca}}}"),
    ))
    .await;
    assert_eq!((status, body.as_str()), (200, "tls"));
    assert_eq!(
        seen.lock().expect("seen").sni,
        [Some("reviews.lab".to_owned())]
    );

    // An SNI the certificate does not carry: the handshake fails, Envoy's 503 UF.
    let yaml = config(
        addr,
        &format!("{{mode: SIMPLE, caCertificates: {ca}, sni: other.lab}}"),
    );
    let (status, body, outcome) = call(&yaml).await;
    assert_eq!(status, 503);
    assert!(body.contains("TLS_error"), "{body}");
    let (kind, detail) = failure(&outcome);
    assert_eq!(kind, UpstreamErrorKind::Tls);
    assert!(
        detail.contains("not valid for name \"other.lab\""),
        "{detail}"
    );

    // subjectAltNames: the certificate is checked against them instead of the SNI.
    let yaml = config(
        addr,
        &format!(
            "{{mode: SIMPLE, caCertificates: {ca}, sni: other.lab, subjectAltNames: [reviews.lab]}}"
        ),
    );
    let (status, _, _) = call(&yaml).await;
    assert_eq!(status, 200);
    assert_eq!(
        seen.lock().expect("seen").sni.last(),
        Some(&Some("other.lab".to_owned())),
        "the SNI is still sent"
    );
}

#[tokio::test]
async fn an_unknown_ca_fails_the_handshake_unless_verification_is_skipped() {
    let (server_pki, other_pki) = (Pki::new("server"), Pki::new("other"));
    let (chain, key) = server_pki.leaf("server", &["reviews.lab"]);
    let (addr, seen) = tls_server(chain, key, None).await;
    let other_ca = other_pki.ca_file().display().to_string();
    let (status, _, outcome) = call(&config(
        addr,
        &format!("{{mode: SIMPLE, caCertificates: {other_ca}}}"),
    ))
    .await;
    assert_eq!(status, 503);
    let (kind, detail) = failure(&outcome);
    assert_eq!(kind, UpstreamErrorKind::Tls);
    assert!(detail.contains("invalid peer certificate"), "{detail}");
    assert_eq!(seen.lock().expect("seen").requests, 0);

    let (status, body, _) = call(&config(
        addr,
        // Istio refuses caCertificates beside insecureSkipVerify (ML0127).
        "{mode: SIMPLE, insecureSkipVerify: true}",
    ))
    .await;
    assert_eq!((status, body.as_str()), (200, "tls"));
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate() {
    let pki = Pki::new("mesh");
    let (chain, key) = pki.leaf("server", &["reviews.lab"]);
    pki.leaf("client", &["productpage.lab"]);
    let (addr, seen) = tls_server(chain, key, Some(&pki.ca_file())).await;
    let ca = pki.ca_file().display().to_string();
    let yaml = config(
        addr,
        &format!(
            "{{mode: MUTUAL, caCertificates: {ca}, clientCertificate: {}, privateKey: {}}}",
            pki.path("client.pem"),
            pki.path("client-key.pem")
        ),
    );
    let (status, body, _) = call(&yaml).await;
    assert_eq!((status, body.as_str()), (200, "tls"));
    assert_eq!(seen.lock().expect("seen").client_certs, [true]);

    // SIMPLE to a server that requires a client certificate: refused by a TLS alert.
    let (status, _, outcome) = call(&config(
        addr,
        &format!("{{mode: SIMPLE, caCertificates: {ca}}}"),
    ))
    .await;
    assert_eq!(status, 503);
    let (kind, detail) = failure(&outcome);
    assert_eq!(kind, UpstreamErrorKind::Tls, "{detail}");
}

#[tokio::test]
async fn a_certificate_file_that_cannot_be_read_is_an_error_of_the_config() {
    let missing = "/nonexistent/mirrorlab-test/ca.pem";
    let yaml = config(
        "127.0.0.1:1".parse().expect("addr"),
        &format!("{{mode: SIMPLE, caCertificates: {missing}}}"),
    );
    let set = mirrorlab::config::ConfigSet::load_str("tls.yaml", &yaml);
    let errors = match mirrorlab::routing::RouteTable::compile(&set) {
        Ok(_) => panic!("a missing CA file must not compile"),
        Err(errors) => errors,
    };
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|e| e.contains("caCertificates") && e.contains(missing)),
        "says which file and field: {text:?}"
    );
}
