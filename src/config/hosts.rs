//! Host names as Istio compares them: short names, FQDNs and wildcards.

/// The cluster domain short names expand into.
pub const CLUSTER_DOMAIN: &str = "svc.cluster.local";

/// The fully qualified, lowercase form of `host` as written in a resource of `namespace`:
/// `reviews` in `default` → `reviews.default.svc.cluster.local`. Names with a dot, IPs and
/// wildcards are kept as they are (lowercased), as Istio does.
pub fn fqdn(host: &str, namespace: &str) -> String {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host.contains('.') || host.contains(':') || host.starts_with('*') {
        host
    } else {
        format!("{host}.{namespace}.{CLUSTER_DOMAIN}")
    }
}

/// The names a request's authority may stand for, most specific first: `reviews` →
/// `reviews.default.svc.cluster.local`; `reviews.prod` → itself and
/// `reviews.prod.svc.cluster.local`; `reviews.prod.svc` → also `reviews.prod.svc.cluster.local`.
pub fn request_host_candidates(authority: &str) -> Vec<String> {
    let host = authority.trim().trim_end_matches('.').to_ascii_lowercase();
    let dots = host.matches('.').count();
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    let mut out = vec![fqdn(&host, "default")];
    if !is_ip && dots == 1 {
        out.push(format!("{host}.{CLUSTER_DOMAIN}"));
    }
    if !is_ip && host.ends_with(".svc") {
        out.push(format!("{host}.cluster.local"));
    }
    out
}

/// Whether a (normalized) host pattern matches a (normalized) host: exact, `*`, or
/// `*.suffix` (which matches any name ending in `.suffix`, not `suffix` itself).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
        None => pattern == host,
    }
}

/// How specific a host pattern is, for "most specific wins": exact names beat wildcards,
/// longer wildcard suffixes beat shorter ones.
pub fn specificity(pattern: &str) -> (bool, usize) {
    (!pattern.starts_with('*'), pattern.len())
}

/// Whether `labels` contains every pair of `selector` (an empty selector selects all).
pub fn labels_contain<'a>(
    labels: &indexmap::IndexMap<String, String>,
    selector: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> bool {
    selector
        .into_iter()
        .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_expand_with_namespace() {
        assert_eq!(
            fqdn("reviews", "default"),
            "reviews.default.svc.cluster.local"
        );
        assert_eq!(fqdn("Reviews", "prod"), "reviews.prod.svc.cluster.local");
        assert_eq!(
            fqdn("reviews.default.svc.cluster.local", "x"),
            "reviews.default.svc.cluster.local"
        );
        assert_eq!(fqdn("127.0.0.1", "default"), "127.0.0.1");
        assert_eq!(fqdn("*.example.com", "default"), "*.example.com");
        assert_eq!(fqdn("*", "default"), "*");
    }

    #[test]
    fn request_candidates() {
        assert_eq!(
            request_host_candidates("reviews"),
            vec!["reviews.default.svc.cluster.local"]
        );
        assert!(
            request_host_candidates("reviews.prod")
                .contains(&"reviews.prod.svc.cluster.local".to_owned())
        );
        assert!(
            request_host_candidates("reviews.prod.svc")
                .contains(&"reviews.prod.svc.cluster.local".to_owned())
        );
    }

    #[test]
    fn wildcards() {
        assert!(host_matches("*", "anything"));
        assert!(host_matches("*.example.com", "api.example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "badexample.com"));
        assert!(host_matches("reviews", "reviews"));
        assert!(specificity("a.example.com") > specificity("*.example.com"));
        assert!(specificity("*.b.example.com") > specificity("*.example.com"));
    }
}
