//! A DestinationRule traffic policy (istio/istio `validateTrafficPolicy` and the functions it
//! calls: `validateConnectionPool`, `validateOutlierDetection`, `validateLoadBalancer`,
//! `agent.ValidateTLS`, `agent.ValidateLocalityLbSetting`, `validatePortTrafficPolicies`,
//! `validateTunnelSettings`), with the CRD's CEL duration rules and enums. Most of it is kept
//! as YAML by the model, so it is read as such.

use super::super::duration::parse_go_duration;
use super::super::hosts::{is_ip_address, validate_fqdn};
use super::super::model::{Opaque, TrafficPolicy};
use super::super::{Resource, codes};
use super::Checker;
use super::opaque::At;

/// The node labels locality settings may not name where Istio handles them itself.
const TOPOLOGY_LABELS: [&str; 3] = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

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
        {
            let v = pct
                .value
                .as_f64()
                .or_else(|| pct.value.get("value").and_then(Opaque::as_f64));
            if v.is_some_and(|v| !(0.0..=100.0).contains(&v)) {
                self.refuse(
                    codes::PERCENTAGE_RANGE,
                    r,
                    &pct.path,
                    "a retry budget percent is in 0..100",
                );
            }
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
    fn policy_duration(&mut self, r: &Resource, at: At<'_, '_>, key: &str) {
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
        let local = at.num("consecutiveLocalOriginFailures").or_else(|| {
            at.value
                .get("consecutiveLocalOriginFailures")
                .and_then(|v| v.get("value"))
                .and_then(Opaque::as_f64)
        });
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

    fn load_balancer(&mut self, r: &Resource, at: At<'_, '_>, has_outlier: bool) {
        if at.has("simple") && at.has("consistentHash") {
            self.refuse(
                codes::INVALID_TRAFFIC_POLICY,
                r,
                at.path,
                "a load balancer is either `simple` or `consistentHash`, not both",
            );
        }
        self.opaque_enum(
            r,
            at,
            "simple",
            &[
                "UNSPECIFIED",
                "LEAST_CONN",
                "RANDOM",
                "PASSTHROUGH",
                "ROUND_ROBIN",
                "LEAST_REQUEST",
            ],
        );
        if let Some(ch) = at.get("consistentHash") {
            self.consistent_hash(r, ch.at());
        }
        let (locality, zone) = (at.get("localityLbSetting"), at.get("zoneAwareLbSetting"));
        if locality.is_some() && zone.is_some() {
            self.refuse(
                codes::INVALID_TRAFFIC_POLICY,
                r,
                at.path,
                "only one of localityLbSetting and zoneAwareLbSetting can be set",
            );
        }
        if let Some(l) = &locality {
            self.locality_lb(r, l.at(), has_outlier);
        }
        if let Some(z) = &zone {
            self.zone_aware_lb(r, z.at(), has_outlier);
        }
        if let Some(w) = at.get("warmup") {
            let w = w.at();
            if w.has("duration") {
                self.policy_duration(r, w, "duration");
            } else {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    w.path,
                    "warmup needs `duration`",
                );
            }
            let wrapped = |key: &str| {
                w.num(key).or_else(|| {
                    w.value
                        .get(key)
                        .and_then(|v| v.get("value"))
                        .and_then(Opaque::as_f64)
                })
            };
            if wrapped("minimumPercent").is_some_and(|p| !(0.0..=100.0).contains(&p)) {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    &super::join(w.path, "minimumPercent"),
                    "minimumPercent must be in 0..100",
                );
            }
            if wrapped("aggression").is_some_and(|a| a <= 0.0) {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    &super::join(w.path, "aggression"),
                    "aggression must be greater than 0",
                );
            }
        }
        self.policy_duration(r, at, "warmupDurationSecs");
    }

    fn consistent_hash(&mut self, r: &Resource, ch: At<'_, '_>) {
        if let Some(cookie) = ch.get("httpCookie") {
            let cookie = cookie.at();
            if cookie.str_or_empty("name").is_empty() {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    cookie.path,
                    "an httpCookie needs a `name`",
                );
            }
            let mut names: Vec<&str> = Vec::new();
            for attr in cookie.items("attributes") {
                let name = attr.at().str_or_empty("name");
                if name.is_empty() {
                    self.refuse(
                        codes::INVALID_TRAFFIC_POLICY,
                        r,
                        &attr.path,
                        "a cookie attribute name cannot be empty",
                    );
                } else if names.contains(&name) {
                    self.refuse(
                        codes::INVALID_TRAFFIC_POLICY,
                        r,
                        &attr.path,
                        format!("cookie attribute `{name}` is defined twice"),
                    );
                } else {
                    names.push(name);
                }
            }
        }
        let ring = ch.num("minimumRingSize").is_some_and(|n| n != 0.0);
        if ring {
            self.warning(
                codes::DEPRECATED_FIELD,
                r,
                &super::join(ch.path, "minimumRingSize"),
                "consistentHash `minimumRingSize` is deprecated".into(),
                Some("use `ringHash: {minimumRingSize: ...}`".into()),
            );
            if ch.has("maglev") || ch.has("ringHash") {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    ch.path,
                    "only one of minimumRingSize, maglev and ringHash can be set",
                );
            }
        }
        if let Some(m) = ch.get("maglev") {
            let size = m.at().num("tableSize").unwrap_or(0.0);
            let problem = if size == 0.0 {
                Some("maglev needs `tableSize`")
            } else if size >= 5_000_011.0 {
                Some("maglev tableSize must be less than 5000011")
            } else if size.fract() != 0.0 || !is_prime(size as u64) {
                Some("maglev tableSize must be a prime number")
            } else {
                None
            };
            if let Some(p) = problem {
                self.refuse(codes::INVALID_TRAFFIC_POLICY, r, &m.path, p);
            }
        }
    }

    fn locality_lb(&mut self, r: &Resource, at: At<'_, '_>, has_outlier: bool) {
        let distribute = at.items("distribute");
        let failover = at.items("failover");
        let priority = at.strings("failoverPriority");
        if !distribute.is_empty() && !failover.is_empty() {
            self.refuse(
                codes::INVALID_TRAFFIC_POLICY,
                r,
                at.path,
                "`distribute` and `failover` cannot be set together",
            );
            return;
        }
        if !failover.is_empty()
            && let Some(label) = priority.iter().find(|p| TOPOLOGY_LABELS.contains(p))
        {
            self.refuse(codes::INVALID_TRAFFIC_POLICY, r, at.path, format!("`failover` and topology label `{label}` in failoverPriority cannot be set together"));
            return;
        }
        let mut sources = Vec::new();
        for d in &distribute {
            let d = d.at();
            sources.push(d.str_or_empty("from").to_owned());
            let to = d.entries("to");
            let mut total = 0.0;
            for (_, w) in &to {
                let w = w.value.as_f64().unwrap_or(0.0);
                if w <= 0.0 || w > 100.0 {
                    self.refuse(
                        codes::INVALID_TRAFFIC_POLICY,
                        r,
                        d.path,
                        "locality weights must be in 1..100",
                    );
                    return;
                }
                total += w;
            }
            if total != 100.0 {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    d.path,
                    format!("locality weights add up to {total}, not 100"),
                );
                return;
            }
            let destinations: Vec<String> = to.into_iter().map(|(k, _)| k).collect();
            if let Err(e) = validate_localities(&destinations) {
                self.refuse(codes::INVALID_TRAFFIC_POLICY, r, d.path, e);
            }
        }
        if let Err(e) = validate_localities(&sources) {
            self.refuse(codes::INVALID_TRAFFIC_POLICY, r, at.path, e);
        }
        self.failover(
            r,
            at,
            &failover,
            !priority.is_empty(),
            has_outlier,
            "locality lb failover",
        );
    }

    fn zone_aware_lb(&mut self, r: &Resource, at: At<'_, '_>, has_outlier: bool) {
        let priority = at.strings("failoverPriority");
        for label in priority.iter().filter(|p| TOPOLOGY_LABELS.contains(p)) {
            self.refuse(codes::INVALID_TRAFFIC_POLICY, r, at.path, format!("failoverPriority of a zone aware load balancer must not use topology label `{label}`; region and zone routing are automatic"));
        }
        let failover = at.items("failover");
        self.failover(
            r,
            at,
            &failover,
            !priority.is_empty(),
            has_outlier,
            "zone aware lb failover",
        );
    }

    fn failover(
        &mut self,
        r: &Resource,
        at: At<'_, '_>,
        failover: &[super::opaque::Field<'_>],
        priority: bool,
        has_outlier: bool,
        what: &str,
    ) {
        if (!failover.is_empty() || priority) && !has_outlier {
            self.warning(
                codes::ISTIO_WARNING,
                r,
                at.path,
                "failover needs an outlier detection policy to take effect".into(),
                Some("add `outlierDetection` to the traffic policy".into()),
            );
        }
        for f in failover {
            let (from, to) = (f.at().str_or_empty("from"), f.at().str_or_empty("to"));
            if from == to {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    &f.path,
                    format!("{what} must name different regions"),
                );
            }
            if from.contains('/') || to.contains('/') {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    &f.path,
                    format!("{what} names regions only"),
                );
            }
            if from.contains('*') || to.contains('*') {
                self.refuse(
                    codes::INVALID_TRAFFIC_POLICY,
                    r,
                    &f.path,
                    format!("{what} regions cannot contain `*`"),
                );
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
        let skip_verify = at.bool("insecureSkipVerify") == Some(true)
            || at
                .value
                .get("insecureSkipVerify")
                .and_then(|v| v.get("value"))
                .and_then(Opaque::as_bool)
                == Some(true);
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

/// Envoy's primality test for maglev table sizes.
fn is_prime(x: u64) -> bool {
    if x != 0 && x < 4 {
        return true;
    }
    if x & 1 == 0 {
        return false;
    }
    let mut f = 3;
    while f * f <= x {
        if x.is_multiple_of(f) {
            return false;
        }
        f += 2;
    }
    true
}

/// Istio's `validateLocalities`: `region[/zone[/subzone]]`, one `*` at most and only at the
/// end, no empty part, none overlapping another.
fn validate_localities(localities: &[String]) -> Result<(), String> {
    let mut taken: Vec<Vec<&str>> = Vec::new();
    for locality in localities {
        let stars = locality.matches('*').count();
        if stars > 1 || (stars == 1 && !locality.ends_with('*')) {
            return Err(format!(
                "locality `{locality}`: a `*` may stand only once, at the end"
            ));
        }
        let parts: Vec<&str> = locality.splitn(3, '/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "locality `{locality}` must not have an empty region, zone or subzone"
            ));
        }
        // A locality overlaps an earlier one that is its prefix, an earlier `*` standing for
        // every name at its level.
        let overlaps = taken
            .iter()
            .any(|t| t.iter().zip(&parts).all(|(a, b)| a == b || *a == "*"));
        if overlaps {
            return Err(format!("locality `{locality}` overlaps with one before it"));
        }
        taken.push(parts);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes_and_localities() {
        assert!(is_prime(65537) && is_prime(2) && !is_prime(65536) && !is_prime(0));
        let l = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(validate_localities(&l(&["us-east", "us-west/zone1"])).is_ok());
        assert!(validate_localities(&l(&["us-east/*", "us-east/zone1"])).is_err());
        assert!(validate_localities(&l(&["us-east", "us-east"])).is_err());
        assert!(validate_localities(&l(&["*/zone"])).is_err());
        assert!(validate_localities(&l(&["a//b"])).is_err());
    }
}
