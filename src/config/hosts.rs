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

/// Why Istio refuses a host name (`agent.ValidateWildcardDomain`, `ValidateFQDN`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostNameError {
    /// The empty string.
    #[error("empty domain name not allowed")]
    Empty,
    /// More than 255 characters.
    #[error("domain name is {0} characters long; at most 255 are allowed")]
    TooLong(usize),
    /// The last label is a number (`10.0.0.1` is not a host name).
    #[error("top level domain `{0}` cannot be all-numeric")]
    NumericTopLevel(String),
    /// A `*` anywhere but as (the start of) the first label.
    #[error("`*` is allowed only as the first label, as in `*.example.com`; `{0}` is not a label")]
    MisplacedWildcard(String),
    /// A label that is not a DNS-1123 label.
    #[error(
        "`{0}` is not a DNS label (letters, digits and `-`, at most 63, starting and ending with a letter or digit)"
    )]
    BadLabel(String),
}

/// Checks a host that may start with a wildcard label (`*`, `*.example.com`, `*-x.example.com`),
/// as Istio checks VirtualService, DestinationRule and ServiceEntry hosts and destinations.
pub fn validate_wildcard_domain(host: &str) -> Result<(), HostNameError> {
    preconditions(host)?;
    let (first, rest) = match host.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (host, None),
    };
    if !is_wildcard_label(first) {
        return Err(label_error(first));
    }
    match rest {
        Some(rest) => validate_labels(rest),
        None => Ok(()),
    }
}

/// Checks a fully qualified name without wildcards (`ValidateFQDN`).
pub fn validate_fqdn(host: &str) -> Result<(), HostNameError> {
    preconditions(host)?;
    validate_labels(host)
}

fn preconditions(host: &str) -> Result<(), HostNameError> {
    match host.len() {
        0 => Err(HostNameError::Empty),
        n if n > 255 => Err(HostNameError::TooLong(n)),
        _ => Ok(()),
    }
}

/// Istio's `ValidateDNS1123Labels`: dot-separated labels, a trailing dot allowed, and a
/// top-level label that is not a number.
fn validate_labels(domain: &str) -> Result<(), HostNameError> {
    let labels: Vec<&str> = domain.split('.').collect();
    let last = labels.len() - 1;
    let tld = labels[last];
    if !tld.is_empty() && go_atoi(tld) {
        return Err(HostNameError::NumericTopLevel(tld.to_owned()));
    }
    for (i, label) in labels.iter().enumerate() {
        if i == last && label.is_empty() {
            return Ok(());
        }
        if !crate::config::names::is_dns1123_label(label) {
            return Err(label_error(label));
        }
    }
    Ok(())
}

/// Whether Go's `strconv.Atoi` reads `s` as a number (an optional sign, then digits).
fn go_atoi(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn label_error(label: &str) -> HostNameError {
    if label.contains('*') {
        HostNameError::MisplacedWildcard(label.to_owned())
    } else {
        HostNameError::BadLabel(label.to_owned())
    }
}

/// A first label Istio allows: `*`, or a DNS-1123 label optionally prefixed by `*` or `*-`.
fn is_wildcard_label(label: &str) -> bool {
    if label == "*" {
        return true;
    }
    let bare = label
        .strip_prefix("*-")
        .or_else(|| label.strip_prefix('*'))
        .unwrap_or(label);
    label.len() <= 63 && crate::config::names::is_dns1123_label(bare)
}

/// Whether `s` is an IP address as Go's `netip.ParseAddr` reads one (IPv6 zones included).
pub fn is_ip_address(s: &str) -> bool {
    let unzoned = match s.split_once('%') {
        Some((addr, zone)) if !zone.is_empty() && addr.contains(':') => addr,
        _ => s,
    };
    unzoned.parse::<std::net::IpAddr>().is_ok()
}

/// Whether `s` is an IP address or a CIDR block (`ValidateIPSubnet`).
pub fn is_ip_or_cidr(s: &str) -> bool {
    if s.matches('/').count() != 1 {
        return is_ip_address(s);
    }
    let Some((addr, bits)) = s.split_once('/') else {
        return false;
    };
    let max = match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => 32,
        Ok(std::net::IpAddr::V6(_)) => 128,
        Err(_) => return false,
    };
    let canonical = bits == "0" || !bits.starts_with('0');
    canonical
        && !bits.is_empty()
        && bits.bytes().all(|b| b.is_ascii_digit())
        && bits.parse::<u32>().is_ok_and(|b| b <= max)
}

/// Istio's `host.Name.Matches`: whether two host patterns overlap (either may be a
/// wildcard), comparing them as written.
pub fn names_overlap(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => sa.ends_with(sb) || sb.ends_with(sa),
        (Some(sa), None) => b.ends_with(sa),
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// Istio's `host.Name.SubsetOf`: whether every name `a` stands for is one `b` stands for.
pub fn name_subset_of(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => a.len() >= b.len() && sa.ends_with(sb),
        (Some(_), None) => false,
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
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
    fn host_names_as_istio_checks_them() {
        for good in [
            "reviews",
            "reviews.default.svc.cluster.local",
            "*",
            "*.example.com",
            "*-x.example.com",
            "*foo.example.com",
            "istio.io.",
            "Reviews",
        ] {
            assert_eq!(validate_wildcard_domain(good), Ok(()), "{good}");
        }
        for (bad, err) in [
            ("", HostNameError::Empty),
            ("foo.*", HostNameError::MisplacedWildcard("*".into())),
            ("*.*.com", HostNameError::MisplacedWildcard("*".into())),
            ("ns/name", HostNameError::BadLabel("ns/name".into())),
            ("10.0.0.1", HostNameError::NumericTopLevel("1".into())),
            ("a..b", HostNameError::BadLabel("".into())),
            ("-a.b", HostNameError::BadLabel("-a".into())),
        ] {
            assert_eq!(validate_wildcard_domain(bad), Err(err), "{bad}");
        }
        assert!(validate_fqdn("*.example.com").is_err());
        assert!(validate_wildcard_domain(&"a".repeat(256)).is_err());
        assert!(is_ip_address("10.0.0.1") && is_ip_address("::1") && !is_ip_address("10.0.0"));
        assert!(is_ip_or_cidr("10.0.0.0/8") && !is_ip_or_cidr("10.0.0.0/33"));
        assert!(names_overlap("*.foo.com", "*.com") && names_overlap("a.com", "*.com"));
        assert!(!names_overlap("*.foo.com", "foo.com"));
        assert!(name_subset_of("a.foo.com", "*.foo.com") && !name_subset_of("*.com", "*.foo.com"));
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
