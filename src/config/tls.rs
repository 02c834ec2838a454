//! A DestinationRule's `tls` (`ClientTLSSettings`) as the lab reads it: one reading for
//! `check` and the route table.

use super::model::Opaque;

/// `ClientTLSSettings.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// `DISABLE` (or absent): plaintext.
    #[default]
    Disable,
    /// `SIMPLE`: TLS, the server's certificate checked.
    Simple,
    /// `MUTUAL`: TLS with a client certificate.
    Mutual,
    /// `ISTIO_MUTUAL`: the mesh's own mTLS between sidecars.
    IstioMutual,
}

/// `ClientTLSSettings`: what the sidecar's TLS origination to the upstream uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientTls {
    /// The mode.
    pub mode: TlsMode,
    /// PEM file of the CAs that sign the server's certificate; absent: the system's.
    pub ca_certificates: Option<String>,
    /// PEM file of the client certificate (`MUTUAL`).
    pub client_certificate: Option<String>,
    /// PEM file of its private key (`MUTUAL`).
    pub private_key: Option<String>,
    /// A Kubernetes secret holding the above: cluster-only.
    pub credential_name: Option<String>,
    /// SNI sent in the handshake; absent: the destination's host.
    pub sni: Option<String>,
    /// Names one of which the server's certificate must carry; empty: the SNI.
    pub subject_alt_names: Vec<String>,
    /// Accept any server certificate.
    pub insecure_skip_verify: bool,
}

impl ClientTls {
    /// Reads `tls` as Istio's schema writes it; an unknown mode reads as `DISABLE`
    /// (`check` reports it against the schema).
    pub fn from_opaque(tls: &Opaque) -> Self {
        let text = |key: &str| tls.get(key).and_then(Opaque::as_str).map(str::to_owned);
        let mode = match tls.get("mode").and_then(Opaque::as_str) {
            Some("SIMPLE") => TlsMode::Simple,
            Some("MUTUAL") => TlsMode::Mutual,
            Some("ISTIO_MUTUAL") => TlsMode::IstioMutual,
            _ => TlsMode::Disable,
        };
        Self {
            mode,
            ca_certificates: text("caCertificates"),
            client_certificate: text("clientCertificate"),
            private_key: text("privateKey"),
            credential_name: text("credentialName"),
            sni: text("sni"),
            subject_alt_names: tls
                .get("subjectAltNames")
                .and_then(Opaque::as_sequence)
                .map(|names| {
                    names
                        .iter()
                        .filter_map(Opaque::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            insecure_skip_verify: tls
                .get("insecureSkipVerify")
                .and_then(Opaque::as_bool)
                .unwrap_or(false),
        }
    }

    /// Whether the lab originates TLS for it (`SIMPLE`, `MUTUAL`).
    pub fn originates(&self) -> bool {
        matches!(self.mode, TlsMode::Simple | TlsMode::Mutual)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_istio_names() {
        let tls: Opaque = yaml_serde::from_str(
            "{mode: MUTUAL, caCertificates: /ca.pem, clientCertificate: /c.pem, privateKey: /k.pem, sni: api.example.com, subjectAltNames: [a, b], insecureSkipVerify: true}",
        )
        .expect("yaml");
        let read = ClientTls::from_opaque(&tls);
        assert_eq!(read.mode, TlsMode::Mutual);
        assert_eq!(read.ca_certificates.as_deref(), Some("/ca.pem"));
        assert_eq!(read.private_key.as_deref(), Some("/k.pem"));
        assert_eq!(read.sni.as_deref(), Some("api.example.com"));
        assert_eq!(read.subject_alt_names, ["a", "b"]);
        assert!(read.insecure_skip_verify && read.originates());
        let plain: Opaque = yaml_serde::from_str("{mode: ISTIO_MUTUAL}").expect("yaml");
        assert!(!ClientTls::from_opaque(&plain).originates());
    }
}
