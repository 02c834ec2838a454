//! TCP and TLS routes, which the model keeps as YAML (istio/istio `validateTLSRoute`,
//! `validateTLSMatch`, `validateSniHost`, `validateTCPRoute`, `validateTCPMatch`,
//! `validateRouteDestinations`, and `analyzeUnreachableTCPRules`/`TLSRules`).

use super::super::hosts::{is_ip_address, is_ip_or_cidr, name_subset_of, validate_wildcard_domain};
use super::super::model::{Destination, Opaque, VirtualService};
use super::super::{Resource, codes};
use super::opaque::{At, Field};
use super::virtual_service::Binding;
use super::{Checker, DestinationRole};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp,
    Tls,
}

impl Checker<'_> {
    pub(super) fn tcp_tls_routes(&mut self, r: &Resource, vs: &VirtualService, binding: Binding) {
        let ns = vs.metadata.namespace_or_default();
        for (kind, list, routes) in [
            (Kind::Tls, "tls", &vs.spec.tls),
            (Kind::Tcp, "tcp", &vs.spec.tcp),
        ] {
            let fields: Vec<Field<'_>> = routes
                .iter()
                .enumerate()
                .map(|(i, value)| Field {
                    value,
                    path: format!("spec.{list}[{i}]"),
                })
                .collect();
            for f in &fields {
                self.l4_route(r, ns, vs, f.at(), kind, binding);
            }
            self.unreachable_l4(r, &fields);
        }
    }

    fn l4_route(
        &mut self,
        r: &Resource,
        ns: &str,
        vs: &VirtualService,
        route: At<'_, '_>,
        kind: Kind,
        binding: Binding,
    ) {
        let matches = route.items("match");
        if kind == Kind::Tls && matches.is_empty() {
            self.refuse(
                codes::INVALID_TCP_TLS_ROUTE,
                r,
                route.path,
                "a TLS route needs at least one match condition",
            );
        }
        for m in &matches {
            let m = m.at();
            if m.value.is_null() || !m.value.is_mapping() {
                self.refuse(
                    codes::INVALID_TCP_TLS_ROUTE,
                    r,
                    m.path,
                    "a match must be a mapping",
                );
                continue;
            }
            if kind == Kind::Tls {
                self.sni_hosts(r, vs, m, binding);
            }
            self.l4_match(r, m);
        }
        self.l4_destinations(r, ns, route, kind);
    }

    /// What TCP and TLS matches share (`validateTCPMatch`, `validateTLSMatch`).
    fn l4_match(&mut self, r: &Resource, m: At<'_, '_>) {
        for (i, subnet) in m.strings("destinationSubnets").iter().enumerate() {
            if !is_ip_or_cidr(subnet) {
                self.refuse(
                    codes::INVALID_TCP_TLS_ROUTE,
                    r,
                    &format!("{}.destinationSubnets[{i}]", m.path),
                    format!("`{subnet}` is not an IP address or a CIDR block"),
                );
            }
        }
        if let Some(p) = self.opaque_int(r, m, "port")
            && p != 0
            && !(1..=65535).contains(&p)
        {
            self.refuse(
                codes::PORT_RANGE,
                r,
                &format!("{}.port", m.path),
                format!("port {p} is outside 1..65535"),
            );
        }
        let labels = m.entries("sourceLabels");
        let labels = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.value.as_str().unwrap_or("")));
        self.labels(r, &format!("{}.sourceLabels", m.path), labels);
        let gateways: Vec<String> = m
            .strings("gateways")
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        self.gateway_names(r, &format!("{}.gateways", m.path), &gateways);
    }

    /// A TCP or TLS route's destinations (`validateRouteDestinations`).
    fn l4_destinations(&mut self, r: &Resource, ns: &str, route: At<'_, '_>, kind: Kind) {
        let destinations = route.items("route");
        if destinations.is_empty() {
            let what = if kind == Kind::Tls { "TLS" } else { "TCP" };
            self.refuse(
                codes::NO_DESTINATION,
                r,
                route.path,
                format!("a {what} route needs `route` destinations"),
            );
        }
        let mut total = 0i64;
        for d in &destinations {
            let d = d.at();
            match d.get("destination") {
                None => self.refuse(
                    codes::MISSING_HOST,
                    r,
                    d.path,
                    "a route destination needs `destination`",
                ),
                Some(dest) => match yaml_serde::from_value::<Destination>(dest.value.clone()) {
                    Ok(dest_typed) => {
                        self.destination(r, ns, &dest.path, &dest_typed, DestinationRole::Route)
                    }
                    Err(e) => self.refuse(
                        codes::SCHEMA,
                        r,
                        &dest.path,
                        format!("not a destination: {e}"),
                    ),
                },
            }
            if let Some(w) = self.opaque_int(r, d, "weight") {
                if w < 0 {
                    self.refuse(
                        codes::PERCENTAGE_RANGE,
                        r,
                        &format!("{}.weight", d.path),
                        format!("weight {w} is negative"),
                    );
                }
                total += w;
            }
        }
        if destinations.len() > 1 && total == 0 {
            self.refuse(codes::ZERO_TOTAL_WEIGHT, r, &format!("{}.route", route.path), "the destinations' weights add up to 0; Istio refuses a route whose traffic goes nowhere");
        }
    }

    /// Each SNI host: a valid (wildcard) name within the VirtualService's hosts; an IP is
    /// accepted with a warning (`validateSniHost`).
    fn sni_hosts(&mut self, r: &Resource, vs: &VirtualService, m: At<'_, '_>, binding: Binding) {
        let hosts = m.strings("sniHosts");
        if hosts.is_empty() {
            self.refuse(
                codes::INVALID_TCP_TLS_ROUTE,
                r,
                m.path,
                "a TLS match needs at least one SNI host",
            );
        }
        for (i, sni) in hosts.iter().enumerate() {
            let field = format!("{}.sniHosts[{i}]", m.path);
            let valid = if binding.gateway_only && sni.starts_with("outbound_") {
                Ok(())
            } else {
                validate_wildcard_domain(sni)
            };
            if let Err(e) = valid {
                if is_ip_address(sni) {
                    self.warning(codes::ISTIO_WARNING, r, &field, format!("SNI host `{sni}` is an IP address, which goes against the SNI spec; most clients do not send it"), None);
                } else {
                    self.refuse(
                        codes::INVALID_HOST,
                        r,
                        &field,
                        format!("SNI host `{sni}` is invalid: {e}"),
                    );
                }
                continue;
            }
            if !vs.spec.hosts.iter().any(|h| name_subset_of(sni, h)) {
                self.refuse(
                    codes::INVALID_TCP_TLS_ROUTE,
                    r,
                    &field,
                    format!(
                        "SNI host `{sni}` is not within any of the VirtualService's hosts ({})",
                        vs.spec.hosts.join(", ")
                    ),
                );
            }
        }
    }

    /// IST0130 and IST0131 for TCP and TLS routes: duplicate matches, and routes after one
    /// without matches.
    fn unreachable_l4(&mut self, r: &Resource, routes: &[Field<'_>]) {
        let mut seen: Vec<(&Opaque, usize)> = Vec::new();
        let mut without_match = false;
        for (i, route) in routes.iter().enumerate() {
            let matches = route.at().items("match");
            if matches.is_empty() {
                if without_match {
                    self.l4_unreachable(
                        r,
                        &route.path,
                        i,
                        "only the last rule can have no matches",
                    );
                }
                without_match = true;
                continue;
            }
            if without_match {
                self.l4_unreachable(r, &route.path, i, "route without matches defined before");
                continue;
            }
            let mut duplicates = 0;
            for (j, m) in matches.iter().enumerate() {
                if let Some((_, earlier)) = seen.iter().find(|(v, _)| *v == m.value) {
                    duplicates += 1;
                    self.info(
                        codes::INEFFECTIVE_MATCH,
                        r,
                        &m.path,
                        format!("VirtualService rule #{i} match #{j} is not used (duplicate/overlapping match in rule #{earlier})"),
                        None,
                    );
                } else {
                    seen.push((m.value, i));
                }
            }
            if duplicates == matches.len() {
                self.l4_unreachable(r, &route.path, i, "all matches used by prior rules");
            }
        }
    }

    fn l4_unreachable(&mut self, r: &Resource, path: &str, i: usize, reason: &str) {
        self.warning(
            codes::UNREACHABLE_RULE,
            r,
            path,
            format!("VirtualService rule #{i} not used ({reason})"),
            None,
        );
    }
}
