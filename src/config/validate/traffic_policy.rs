//! A DestinationRule traffic policy (istio/istio `validateTrafficPolicy` and the functions it
//! calls: `validateConnectionPool`, `validateOutlierDetection`, `validateLoadBalancer`,
//! `agent.ValidateTLS`, `validatePortTrafficPolicies`,
//! `validateTunnelSettings`; load balancers are in `load_balancer`), with the CRD's CEL duration rules and enums. Most of it is kept
//! as YAML by the model, so it is read as such.

use super::super::duration::parse_go_duration;
use super::super::hosts::{is_ip_address, validate_fqdn};
use super::super::model::TrafficPolicy;
use super::super::{Resource, codes};
use super::Checker;
use super::opaque::At;

impl Checker<'_> {
    pub(super) fn traffic_policy(
        &mut self,
        r: &Resource,
        path: &str,
        tp: &TrafficPolicy,
        ns: &str,
    ) {
        let Ok(value) = yaml_serde::to_value(tp) else {
            return;
        };
        let at = At {
            value: &value,
            path,
        };
        let any = [
            "outlierDetection",
            "connectionPool",
            "loadBalancer",
            "tls",
            "portLevelSettings",
            "tunnel",
            "proxyProtocol",
            "retryBudget",
        ]
        .iter()
        .any(|k| at.has(k));
        if !any {
            self.refuse(
                codes::INVALID_TRAFFIC_POLICY,
                r,
                path,
                "a traffic policy must set at least one field",
            );
            return;
        }
        if at.has("tunnel") && at.has("proxyProtocol") {
            self.refuse(
                codes::INVALID_TRAFFIC_POLICY,
                r,
                path,
                "`tunnel` and `proxyProtocol` cannot be set together",
            );
            return;
        }
        self.policy_parts(r, at, ns);
        for part in tp.unsimulated() {
            let field = format!("{path}.{}", part.field);
            self.warning(codes::NOT_SIMULATED, r, &field, part.why.to_owned(), None);
        }
        for p in at.items("portLevelSettings") {
            let p = p.at();
            if !p.has("port") {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    p.path,
                    "a port-level policy needs `port`",
                );
            }
            if !["outlierDetection", "connectionPool", "loadBalancer", "tls"]
                .iter()
                .any(|k| p.has(k))
            {
                self.refuse(codes::INVALID_TRAFFIC_POLICY, r, p.path, "a port-level policy must set at least one of outlierDetection, connectionPool, loadBalancer, tls");
            } else {
                self.policy_parts(r, p, ns);
            }
        }
        if let Some(t) = at.get("tunnel") {
            self.tunnel(r, t.at());
        }
        if let Some(pp) = at.get("proxyProtocol") {
            self.opaque_enum(r, pp.at(), "version", &["V1", "V2"]);
        }
        if let Some(b) = at.get("retryBudget")
            && let Some(pct) = b.at().get("percent")
            && pct
                .value
                .as_f64()
                .is_some_and(|v| !(0.0..=100.0).contains(&v))
        {
            self.refuse(
                codes::PERCENTAGE_RANGE,
                r,
                &pct.path,
                "a retry budget percent is in 0..100",
            );
        }
    }

    /// What a policy and a port-level policy share.
    fn policy_parts(&mut self, r: &Resource, at: At<'_, '_>, ns: &str) {
        let outlier = at.get("outlierDetection");
        if let Some(o) = &outlier {
            self.outlier_detection(r, o.at());
        }
        if let Some(cp) = at.get("connectionPool") {
            self.connection_pool(r, cp.at());
        }
        if let Some(lb) = at.get("loadBalancer") {
            self.load_balancer(r, lb.at(), outlier.is_some());
        }
        if let Some(tls) = at.get("tls") {
            self.client_tls(r, tls.at(), ns);
        }
    }

    /// A duration of a traffic policy: Go syntax, at least 1 ms, whole milliseconds.
    pub(super) fn policy_duration(&mut self, r: &Resource, at: At<'_, '_>, key: &str) {
        if let Some(text) = self.opaque_str(r, at, key) {
            self.duration(r, &super::join(at.path, key), text);
        }
    }

    fn outlier_detection(&mut self, r: &Resource, at: At<'_, '_>) {
        self.policy_duration(r, at, "baseEjectionTime");
        self.policy_duration(r, at, "interval");
        if at.num("consecutiveErrors").is_some_and(|n| n != 0.0) {
            self.warning(
                codes::DEPRECATED_FIELD,
                r,
                &super::join(at.path, "consecutiveErrors"),
                "outlier detection `consecutiveErrors` is deprecated".into(),
                Some("use consecutiveGatewayErrors or consecutive5xxErrors".into()),
            );
        }
        let local = at.num("consecutiveLocalOriginFailures");
        if !at.bool("splitExternalLocalOriginErrors").unwrap_or(false)
            && local.is_some_and(|n| n > 0.0)
        {
            self.refuse(
                codes::INVALID_TRAFFIC_POLICY,
                r,
                at.path,
                "consecutiveLocalOriginFailures is set but splitExternalLocalOriginErrors is false",
            );
        }
        for key in ["maxEjectionPercent", "minHealthPercent"] {
            if let Some(p) = self.opaque_int(r, at, key)
                && !(0..=100).contains(&p)
            {
                self.refuse(
                    codes::PERCENTAGE_RANGE,
                    r,
                    &super::join(at.path, key),
                    format!("percentage {p} is not in range 0..100"),
                );
            }
        }
    }

    fn connection_pool(&mut self, r: &Resource, at: At<'_, '_>) {
        let (http, tcp) = (at.get("http"), at.get("tcp"));
        if http.is_none() && tcp.is_none() {
            self.refuse(
                codes::INVALID_TRAFFIC_POLICY,
                r,
                at.path,
                "a connection pool must set `http` or `tcp`",
            );
            return;
        }
        if let Some(h) = &http {
            let h = h.at();
            for key in [
                "http1MaxPendingRequests",
                "http2MaxRequests",
                "maxRequestsPerConnection",
                "maxRetries",
                "maxConcurrentStreams",
            ] {
                if self.opaque_int(r, h, key).is_some_and(|n| n < 0) {
                    self.refuse(
                        codes::INVALID_TRAFFIC_POLICY,
                        r,
                        &super::join(h.path, key),
                        format!("`{key}` must be non-negative"),
                    );
                }
            }
            self.policy_duration(r, h, "idleTimeout");
            let policy = self.opaque_enum(
                r,
                h,
                "h2UpgradePolicy",
                &["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"],
            );
            if policy == Some("UPGRADE") && h.bool("useClientProtocol") == Some(true) {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    h.path,
                    "useClientProtocol cannot be true when h2UpgradePolicy is UPGRADE",
                );
            }
            if let Some(ka) = h.get("http2KeepAlive") {
                for key in ["interval", "timeout"] {
                    if ka.at().has(key) {
                        self.policy_duration(r, ka.at(), key);
                    } else {
                        self.refuse(
                            codes::INVALID_TRAFFIC_POLICY,
                            r,
                            &ka.path,
                            format!("http2KeepAlive needs `{key}`"),
                        );
                    }
                }
            }
        }
        if let Some(t) = &tcp {
            let t = t.at();
            if self
                .opaque_int(r, t, "maxConnections")
                .is_some_and(|n| n < 0)
            {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    &super::join(t.path, "maxConnections"),
                    "`maxConnections` must be non-negative",
                );
            }
            self.policy_duration(r, t, "connectTimeout");
            self.policy_duration(r, t, "maxConnectionDuration");
            // An idle timeout under a millisecond (0s) disables it, and Istio skips it.
            if let Some(text) = self.opaque_str(r, t, "idleTimeout") {
                let field = super::join(t.path, "idleTimeout");
                match parse_go_duration(text) {
                    Ok(n) if n < 1_000_000 => {}
                    _ => {
                        self.duration(r, &field, text);
                    }
                }
            }
            if let Some(ka) = t.get("tcpKeepalive") {
                self.policy_duration(r, ka.at(), "time");
                self.policy_duration(r, ka.at(), "interval");
            }
        }
    }

    fn client_tls(&mut self, r: &Resource, at: At<'_, '_>, ns: &str) {
        let mode = self
            .opaque_enum(
                r,
                at,
                "mode",
                &["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"],
            )
            .unwrap_or("DISABLE");
        let set = |key: &str| !at.str_or_empty(key).is_empty();
        let credential = at.str_or_empty("credentialName");
        if let Some(rest) = credential.strip_prefix("configmap://") {
            let other_ns = rest.split_once('/').map(|(n, _)| n).filter(|n| *n != ns);
            if rest.is_empty() || other_ns.is_some() {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    at.path,
                    format!(
                        "a configmap:// credentialName must name a ConfigMap of namespace `{ns}`"
                    ),
                );
            }
        }
        let sans = at.has("subjectAltNames");
        let skip_verify = at.bool("insecureSkipVerify") == Some(true);
        if skip_verify {
            if mode == "SIMPLE" && (set("caCertificates") || set("credentialName") || sans) {
                self.refuse(codes::INVALID_TRAFFIC_POLICY, r, at.path, "caCertificates, credentialName and subjectAltNames cannot be set with insecureSkipVerify");
            }
            if mode == "MUTUAL" && (set("caCertificates") || sans) {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    at.path,
                    "caCertificates and subjectAltNames cannot be set with insecureSkipVerify",
                );
            }
        }
        if matches!(mode, "SIMPLE" | "MUTUAL") && !credential.is_empty() {
            if ["clientCertificate", "caCertificates", "privateKey", "caCrl"]
                .iter()
                .any(|k| set(k))
            {
                self.refuse(codes::INVALID_TRAFFIC_POLICY, r, at.path, "with credentialName set, clientCertificate, caCertificates, privateKey and caCrl come from the credential; remove them");
            }
            return;
        }
        if mode == "MUTUAL" {
            for key in ["clientCertificate", "privateKey"] {
                if !set(key) {
                    self.refuse(
                        codes::INVALID_TRAFFIC_POLICY,
                        r,
                        at.path,
                        format!("mutual TLS needs `{key}`"),
                    );
                }
            }
        }
    }

    fn tunnel(&mut self, r: &Resource, at: At<'_, '_>) {
        let protocol = at.str_or_empty("protocol");
        if !matches!(protocol, "" | "CONNECT" | "POST") {
            self.refuse(
                codes::INVALID_TRAFFIC_POLICY,
                r,
                at.path,
                "tunnel protocol must be CONNECT or POST",
            );
        }
        let host = at.str_or_empty("targetHost");
        if validate_fqdn(host).is_err() && !is_ip_address(host) {
            self.refuse(
                codes::INVALID_TRAFFIC_POLICY,
                r,
                at.path,
                format!("tunnel targetHost `{host}` must be an FQDN or an IP address"),
            );
        }
        let port = at.num("targetPort").unwrap_or(0.0);
        if !(1.0..=65535.0).contains(&port) {
            self.refuse(
                codes::PORT_RANGE,
                r,
                at.path,
                format!("tunnel targetPort {port} is outside 1..65535"),
            );
        }
    }
}
