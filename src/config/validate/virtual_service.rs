//! A VirtualService's own rules (istio/istio `ValidateVirtualService`): hosts, gateways,
//! delegates, exportTo, and the presence of routes; then each route.

use super::super::hosts::{
    HostNameError, is_ip_address, names_overlap, validate_fqdn, validate_wildcard_domain,
};
use super::super::lines::push_key;
use super::super::mirror_headers::{
    MIRROR_REMOVE_HEADERS, MIRROR_SET_HEADERS, MirrorHeaderEdits, parse_remove, parse_set,
};
use super::super::model::VirtualService;
use super::super::names::{is_dns1123_label, is_jwt_claim_header, validate_export_to};
use super::super::{Resource, codes};
use super::Checker;
use super::opaque::At;

/// The gateway name that means "the sidecars of the mesh".
pub(super) const MESH: &str = "mesh";

/// Where a VirtualService applies, as Istio's validation reads `spec.gateways`.
#[derive(Clone, Copy)]
pub(super) struct Binding {
    /// No hosts: a delegate, whose routes a root VirtualService includes.
    pub delegate: bool,
    /// Bound to gateways and not to `mesh`.
    pub gateway_only: bool,
}

impl Binding {
    pub(super) fn of(vs: &VirtualService) -> Self {
        Self {
            delegate: vs.spec.hosts.is_empty(),
            gateway_only: !vs.spec.gateways.is_empty()
                && !vs.spec.gateways.iter().any(|g| g == MESH),
        }
    }
}

impl Checker<'_> {
    pub(super) fn virtual_service(&mut self, r: &Resource, vs: &VirtualService) {
        let ns = vs.metadata.namespace_or_default();
        let binding = Binding::of(vs);
        self.refused_annotations(r, &vs.metadata);
        if binding.delegate {
            self.delegate_rules(r, vs);
            if !self.is_delegated_to(vs) {
                // Istio accepts a VirtualService without hosts: it is a delegate, whose routes
                // a root VirtualService takes in. Without a root, no request reaches them.
                self.warning(
                    codes::UNUSED_DELEGATE,
                    r,
                    "spec.hosts",
                    "VirtualService has no hosts, so it is a delegate, and no VirtualService delegates to it: no request reaches its routes".into(),
                    Some("add `hosts: [reviews]` (the service the routes are for), or name it in a root route's `delegate`".into()),
                );
            }
        }
        if binding.gateway_only {
            self.info(
                codes::GATEWAY_ONLY,
                r,
                "spec.gateways",
                format!(
                    "this VirtualService applies only to gateway(s) {}, not to sidecars: the lab's traffic does not take its routes unless the lab acts as one of them",
                    vs.spec.gateways.join(", ")
                ),
                Some("add `mesh` to `gateways` for sidecar traffic, or run the lab with --gateway NAMESPACE/NAME".into()),
            );
        }
        self.gateway_names(r, "spec.gateways", &vs.spec.gateways);
        if !binding.gateway_only {
            self.jwt_claim_routes(r, vs);
        }
        self.virtual_service_hosts(r, vs, binding);
        if vs.spec.http.is_empty() && vs.spec.tcp.is_empty() && vs.spec.tls.is_empty() {
            self.error(
                codes::NO_ROUTES,
                r,
                "spec",
                "VirtualService has no http, tcp or tls routes; Istio requires at least one".into(),
                Some("add an `http:` route with a destination".into()),
            );
        } else if vs.spec.http.is_empty() {
            self.warning(
                codes::NO_HTTP_ROUTES,
                r,
                "spec.http",
                "VirtualService has only tcp/tls routes, which the lab does not simulate".into(),
                None,
            );
        }
        self.mirror_header_annotations(r, vs);
        for (i, route) in vs.spec.http.iter().enumerate() {
            self.route(r, ns, &format!("spec.http[{i}]"), route, binding);
        }
        self.tcp_tls_routes(r, vs, binding);
        for e in validate_export_to(ns, &vs.spec.export_to, false, false) {
            self.refuse(codes::INVALID_EXPORT_TO, r, "spec.exportTo", e.to_string());
        }
        self.unreachable_rules(r, vs);
    }

    /// Whether some root route's `delegate` names `vs`.
    fn is_delegated_to(&self, vs: &VirtualService) -> bool {
        self.set.virtual_services().any(|(_, root)| {
            root.spec
                .http
                .iter()
                .filter_map(|h| h.delegate.as_ref())
                .any(|d| {
                    self.set
                        .delegate_for(d, root.metadata.namespace_or_default())
                        .is_ok_and(|(_, found)| std::ptr::eq(found, vs))
                })
        })
    }

    /// A delegate (no hosts) may not have what only a root VirtualService can.
    fn delegate_rules(&mut self, r: &Resource, vs: &VirtualService) {
        for (present, field, what) in [
            (!vs.spec.gateways.is_empty(), "spec.gateways", "gateways"),
            (!vs.spec.tls.is_empty(), "spec.tls", "tls routes"),
            (!vs.spec.tcp.is_empty(), "spec.tcp", "tcp routes"),
        ] {
            if present {
                self.error(
                    codes::DELEGATE_RULE,
                    r,
                    field,
                    format!("a VirtualService without hosts is a delegate, and a delegate may not have {what}"),
                    Some("give it `hosts`, or move these to the root VirtualService that delegates to it".into()),
                );
            }
        }
    }

    /// Gateway names (`validateGatewayNames`): `mesh`, `name`, or `namespace/name`, each a DNS
    /// name; `name.namespace` is the legacy form Istio warns about.
    pub(super) fn gateway_names(&mut self, r: &Resource, base: &str, gateways: &[String]) {
        for (i, name) in gateways.iter().enumerate() {
            let field = format!("{base}[{i}]");
            match name.split_once('/') {
                None => {
                    if let Some((gw, gw_ns)) = name.split_once('.') {
                        let gw_ns = gw_ns.split('.').next().unwrap_or(gw_ns);
                        self.warning(
                            codes::ISTIO_WARNING,
                            r,
                            &field,
                            format!("`{name}` is the legacy gateway name format"),
                            Some(format!("write `{gw_ns}/{gw}` (namespace/name)")),
                        );
                    }
                    if let Err(e) = validate_fqdn(name) {
                        self.refuse(
                            codes::INVALID_NAME,
                            r,
                            &field,
                            format!("gateway name `{name}` is invalid: {e}"),
                        );
                    }
                    // Go's loop returns after the first name without a namespace.
                    return;
                }
                Some((gw_ns, gw)) => {
                    if gw_ns.is_empty() || gw.is_empty() {
                        self.refuse(
                            codes::INVALID_NAME,
                            r,
                            &field,
                            "gateway namespace and name cannot be empty",
                        );
                    }
                    if !is_dns1123_label(gw_ns) {
                        self.refuse(
                            codes::INVALID_NAME,
                            r,
                            &field,
                            format!("`{gw_ns}` is not a valid namespace (a DNS label)"),
                        );
                    }
                    if !is_dns1123_label(gw) {
                        self.refuse(
                            codes::INVALID_NAME,
                            r,
                            &field,
                            format!("`{gw}` is not a valid gateway name (a DNS label)"),
                        );
                    }
                }
            }
        }
    }

    /// Routing on a JWT claim works at gateways only.
    fn jwt_claim_routes(&mut self, r: &Resource, vs: &VirtualService) {
        for (i, route) in vs.spec.http.iter().enumerate() {
            for (j, m) in route.matches.iter().enumerate() {
                for (map, entries) in [
                    ("headers", &m.headers),
                    ("withoutHeaders", &m.without_headers),
                ] {
                    for key in entries.keys().filter(|k| is_jwt_claim_header(k)) {
                        let field = push_key(&format!("spec.http[{i}].match[{j}].{map}"), key);
                        self.error(
                            codes::INVALID_HEADER,
                            r,
                            &field,
                            format!("routing on a JWT claim (`{key}`) works at gateways only, and this VirtualService applies to the mesh"),
                            Some("bind it to a gateway in `spec.gateways`, or match a header".into()),
                        );
                    }
                }
            }
        }
    }

    fn virtual_service_hosts(&mut self, r: &Resource, vs: &VirtualService, binding: Binding) {
        let sni = vs.spec.tls.iter().any(|t| {
            At { value: t, path: "" }
                .items("match")
                .iter()
                .any(|m| !m.at().strings("sniHosts").is_empty())
        });
        let mut all_valid = true;
        for (i, host) in vs.spec.hosts.iter().enumerate() {
            let field = format!("spec.hosts[{i}]");
            let checked = if binding.gateway_only {
                gateway_host(sni, host)
            } else {
                validate_wildcard_domain(host)
            };
            match checked {
                Err(e) if !is_ip_address(host) => {
                    all_valid = false;
                    self.error(
                        codes::INVALID_HOST,
                        r,
                        &field,
                        format!("host `{host}` is invalid: {e}"),
                        host_help(host),
                    );
                }
                Ok(()) if !binding.gateway_only && host == "*" => {
                    all_valid = false;
                    self.error(
                        codes::INVALID_HOST,
                        r,
                        &field,
                        "host `*` is not allowed for a VirtualService bound to the mesh".into(),
                        Some(
                            "name the services (`*.example.com` is fine), or bind it to a gateway"
                                .into(),
                        ),
                    );
                }
                _ => {}
            }
        }
        if !all_valid {
            return;
        }
        for (i, a) in vs.spec.hosts.iter().enumerate() {
            for (j, b) in vs.spec.hosts.iter().enumerate().skip(i + 1) {
                if names_overlap(a, b) {
                    self.error(
                        codes::DUPLICATE_HOST,
                        r,
                        &format!("spec.hosts[{j}]"),
                        format!("hosts `{a}` and `{b}` overlap; Istio refuses duplicate hosts in one VirtualService"),
                        Some("keep the more general one".into()),
                    );
                }
            }
        }
    }

    /// `mirrorlab.dev/mirror-remove-headers` and `-set-headers`, VirtualService-wide or
    /// keyed by a route name: well-formed, and naming a route that exists.
    fn mirror_header_annotations(&mut self, r: &Resource, vs: &VirtualService) {
        for (key, text) in &vs.metadata.annotations {
            let parsed = if key.starts_with(MIRROR_SET_HEADERS) {
                parse_set(key, text).map(|_| ())
            } else if key.starts_with(MIRROR_REMOVE_HEADERS) {
                parse_remove(key, text).map(|_| ())
            } else {
                continue;
            };
            if let Err(err) = parsed {
                self.error(
                    codes::INVALID_ANNOTATION,
                    r,
                    &push_key("metadata.annotations", key),
                    err.reason,
                    Some(format!(
                        "{MIRROR_REMOVE_HEADERS} takes names separated by commas; {MIRROR_SET_HEADERS} takes one `name: value` per line"
                    )),
                );
            }
        }
        for (key, route) in MirrorHeaderEdits::scoped_route_names(&vs.metadata.annotations) {
            if !vs
                .spec
                .http
                .iter()
                .any(|h| h.name.as_deref() == Some(route.as_str()))
            {
                self.warning(
                    codes::ANNOTATION_UNKNOWN_ROUTE,
                    r,
                    &push_key("metadata.annotations", &key),
                    format!(
                        "no http route is named `{route}`, so these header edits apply to nothing"
                    ),
                    Some(
                        "give the route `name: ...` or fix the name after the `.` in the key"
                            .into(),
                    ),
                );
            }
        }
    }

    /// Reports a host name Istio refuses; `what` names the field in the message.
    pub(super) fn host_name(&mut self, r: &Resource, field: &str, what: &str, host: &str) -> bool {
        match validate_wildcard_domain(host) {
            Ok(()) => true,
            Err(e) => {
                self.error(
                    codes::INVALID_HOST,
                    r,
                    field,
                    format!("{what} `{host}` is invalid: {e}"),
                    host_help(host),
                );
                false
            }
        }
    }
}

/// A host of a VirtualService bound to gateways only: a wildcard domain, or with TLS SNI
/// routes the `outbound_.PORT_._.HOST` names Envoy generates
/// (`ValidateWildcardDomainForVirtualServiceBoundToGateway`).
fn gateway_host(sni: bool, host: &str) -> Result<(), HostNameError> {
    if sni && host.starts_with("outbound_") {
        let parts: Vec<&str> = host.split('_').collect();
        let port = parts.get(1).map(|p| p.trim_matches('.'));
        let name = parts.get(3).map(|h| h.trim_matches('.'));
        let valid = parts.len() >= 4
            && parts[0] == "outbound"
            && port.is_some_and(|p| p.chars().any(|c| c.is_ascii_digit()))
            && name.is_some_and(|h| h.chars().any(|c| c.is_ascii_alphabetic()));
        return if valid {
            Ok(())
        } else {
            Err(HostNameError::BadLabel(host.to_owned()))
        };
    }
    validate_wildcard_domain(host)
}

/// How to write a host Istio accepts, for the common mistakes.
pub(super) fn host_help(host: &str) -> Option<String> {
    if host.contains('/') {
        Some("a host is a DNS name; `namespace/name` is the form of a gateway reference".into())
    } else if host.contains('*') {
        Some("a wildcard stands only at the start: `*` or `*.example.com`".into())
    } else if is_ip_address(host) {
        Some("an IP address is not a service host; use a service name, and a ServiceEntry whose endpoint has that address".into())
    } else {
        None
    }
}
