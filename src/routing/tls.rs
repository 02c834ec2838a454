//! TLS origination to a cluster's endpoints, as a DestinationRule's `tls` asks for it
//! (`SIMPLE`, `MUTUAL`): the rustls client configuration, built once per cluster when the
//! config is applied, so a missing or malformed certificate file is an error of the config
//! (the running one stays), not of every request.
//!
//! Istio (`cluster_tls.go` `buildUpstreamTLSSettings`, with `VERIFY_CERTIFICATE_AT_CLIENT`
//! and `ENABLE_AUTO_SNI` on, their defaults since 1.20): the server's certificate is checked
//! against `caCertificates`, or the system's CAs when none is given; against
//! `subjectAltNames` when set, else against the SNI; `sni` when set, else the destination's
//! host; `insecureSkipVerify` accepts any certificate. ALPN offers `h2` to an HTTP/2 cluster
//! and `http/1.1` otherwise.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::tls::{ClientTls, TlsMode};

/// A cluster's TLS origination, ready for a handshake.
#[derive(Debug)]
pub struct UpstreamTls {
    /// Unique per build: connection pools are kept apart per TLS setup.
    pub id: u64,
    /// The client configuration.
    pub config: Arc<ClientConfig>,
    /// The SNI (and, without `subjectAltNames`, the name the certificate must carry).
    pub server_name: ServerName<'static>,
    /// For the route trace: `TLS (SIMPLE) to reviews.example.com`.
    pub describe: String,
}

/// Two setups are the same when they are the same build.
impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The TLS origination `tls` asks for, to `host`; `None` when the mode originates none.
pub fn build(tls: &ClientTls, host: &str, http2: bool) -> Result<Option<UpstreamTls>, String> {
    if !tls.originates() {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
    } else {
        let roots = Arc::new(roots(tls.ca_certificates.as_deref())?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
            .build()
            .map_err(|e| format!("tls.caCertificates: {e}"))?;
        if tls.subject_alt_names.is_empty() {
            builder.with_webpki_verifier(webpki)
        } else {
            let names = tls
                .subject_alt_names
                .iter()
                .map(|n| {
                    ServerName::try_from(n.clone())
                        .map_err(|e| format!("tls.subjectAltNames: `{n}`: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SubjectAltNames { webpki, names }))
        }
    };
    let mut config = if tls.mode == TlsMode::Mutual {
        let (certs, key) = client_identity(tls)?;
        builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| format!("tls.clientCertificate: {e}"))?
    } else {
        builder.with_no_client_auth()
    };
    config.alpn_protocols = vec![if http2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    let sni = tls.sni.clone().unwrap_or_else(|| host.to_owned());
    let server_name =
        ServerName::try_from(sni.clone()).map_err(|e| format!("tls.sni: `{sni}`: {e}"))?;
    let mode = if tls.mode == TlsMode::Mutual {
        "MUTUAL"
    } else {
        "SIMPLE"
    };
    Ok(Some(UpstreamTls {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        config: Arc::new(config),
        server_name,
        describe: format!("TLS ({mode}) to {sni}"),
    }))
}

/// The CAs of `path` (PEM), or the system's.
fn roots(path: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match path {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("tls.caCertificates: cannot read {path}: {e}"))?
            {
                let cert = cert.map_err(|e| format!("tls.caCertificates: {path}: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("tls.caCertificates: {path}: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!("tls.caCertificates: {path} holds no certificate"));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    Ok(roots)
}

/// `MUTUAL`'s client certificate chain and key, from their PEM files.
fn client_identity(
    tls: &ClientTls,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let (Some(cert_path), Some(key_path)) = (&tls.client_certificate, &tls.private_key) else {
        return Err(
            "tls: MUTUAL needs clientCertificate and privateKey (credentialName is a Kubernetes secret the lab cannot read)"
                .to_owned(),
        );
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| format!("tls.clientCertificate: cannot read {cert_path}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.clientCertificate: {cert_path}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| format!("tls.privateKey: {key_path}: {e}"))?;
    Ok((certs, key))
}

/// `insecureSkipVerify`: any certificate is accepted (its signatures still checked).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `subjectAltNames`: the chain checked against the CAs, and the certificate against the
/// listed names (one must match) instead of the SNI.
#[derive(Debug)]
struct SubjectAltNames {
    webpki: Arc<WebPkiServerVerifier>,
    names: Vec<ServerName<'static>>,
}

impl ServerCertVerifier for SubjectAltNames {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut last = None;
        for name in &self.names {
            match self
                .webpki
                .verify_server_cert(end_entity, intermediates, name, ocsp, now)
            {
                Ok(verified) => return Ok(verified),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or(rustls::Error::General("no subjectAltNames".to_owned())))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
