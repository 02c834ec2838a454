//! A ServiceEntry (istio/istio `ValidateServiceEntry`, `validateWorkloadEntry`,
//! `ValidatePortName`, `ValidateProtocol`, and the CRD's CEL rules): hosts, addresses, ports,
//! and the endpoints each resolution allows.

use super::super::hosts::{is_ip_address, is_ip_or_cidr, validate_fqdn};
use super::super::lines::push_key;
use super::super::model::{ServiceEntry, ServicePort, WorkloadEntry};
use super::super::names::{is_dns1123_label, validate_export_to};
use super::super::protocol::{KNOWN_PROTOCOLS, PortProtocol};
use super::super::{Resource, codes};
use super::Checker;

/// ServiceEntry resolutions.
const RESOLUTIONS: [&str; 5] = ["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"];

fn protocol(p: &ServicePort) -> String {
    p.protocol.as_deref().unwrap_or("").to_ascii_lowercase()
}

fn is_http_or_tls(p: &str) -> bool {
    let parsed = PortProtocol::parse(Some(p));
    parsed.is_http() || parsed == PortProtocol::Tls
}

impl Checker<'_> {
    pub(super) fn service_entry(&mut self, r: &Resource, se: &ServiceEntry) {
        let ns = se.metadata.namespace_or_default();
        let spec = &se.spec;
        self.refused_annotations(r, &se.metadata);
        let resolution = spec.resolution.as_deref().unwrap_or("NONE");
        if !RESOLUTIONS.contains(&resolution) {
            self.enum_error(r, "spec.resolution", resolution, &RESOLUTIONS);
            return;
        }
        if let Some(l) = spec.location.as_deref()
            && !["MESH_EXTERNAL", "MESH_INTERNAL"].contains(&l)
        {
            self.enum_error(r, "spec.location", l, &["MESH_EXTERNAL", "MESH_INTERNAL"]);
        }
        if let Some(selector) = &spec.workload_selector {
            self.workload_selector(r, "spec.workloadSelector", selector, "labels");
            if !spec.endpoints.is_empty() {
                self.refuse(
                    codes::INVALID_SERVICE_ENTRY,
                    r,
                    "spec.endpoints",
                    "a ServiceEntry has either a workloadSelector or endpoints, not both",
                );
            }
        }
        self.service_entry_hosts(r, se, resolution);
        let mut cidr = false;
        for (i, a) in spec.addresses.iter().enumerate() {
            cidr |= a.contains('/');
            if !is_ip_or_cidr(a) {
                self.refuse(
                    codes::INVALID_SERVICE_ENTRY,
                    r,
                    &format!("spec.addresses[{i}]"),
                    format!("`{a}` is not an IP address or a CIDR block"),
                );
            }
        }
        if cidr && !matches!(resolution, "NONE" | "STATIC") {
            self.refuse(
                codes::INVALID_SERVICE_ENTRY,
                r,
                "spec.addresses",
                "CIDR addresses are allowed only with resolution NONE or STATIC",
            );
        }
        self.service_ports(r, se);
        self.resolution_rules(r, se, resolution);
        let untold = spec.ports.iter().enumerate().find(|(_, p)| {
            let p = protocol(p);
            !is_http_or_tls(&p)
        });
        if resolution != "NONE"
            && spec.hosts.len() > 1
            && let Some((i, _)) = untold
        {
            self.error(
                codes::INVALID_SERVICE_ENTRY,
                r,
                &format!("spec.ports[{i}]"),
                "a ServiceEntry with several hosts needs HTTP or TLS ports (unless resolution is NONE): nothing else tells the hosts apart".into(),
                Some("set `protocol: HTTP` (or HTTPS/TLS) on every port, or split the hosts into ServiceEntries of their own".into()),
            );
        }
        for e in validate_export_to(ns, &spec.export_to, true, false) {
            self.refuse(codes::INVALID_EXPORT_TO, r, "spec.exportTo", e.to_string());
        }
    }

    fn service_entry_hosts(&mut self, r: &Resource, se: &ServiceEntry, resolution: &str) {
        if se.spec.hosts.is_empty() {
            self.error(
                codes::MISSING_RESOURCE_HOST,
                r,
                "spec.hosts",
                "ServiceEntry has no hosts".into(),
                Some("add `hosts: [reviews.default.svc.cluster.local]`".into()),
            );
        }
        for (i, host) in se.spec.hosts.iter().enumerate() {
            let field = format!("spec.hosts[{i}]");
            if host == "*" {
                self.error(
                    codes::INVALID_HOST,
                    r,
                    &field,
                    "host `*` is not allowed in a ServiceEntry".into(),
                    Some("name the hosts, or a domain with `*.example.com`".into()),
                );
                continue;
            }
            self.host_name(r, &field, "host", host);
            if resolution != "DYNAMIC_DNS" && host.contains('*') && !host.starts_with("*.") {
                self.warning(
                    codes::ISTIO_WARNING,
                    r,
                    &field,
                    format!("partial wildcard `{host}` is not allowed for resolution {resolution}"),
                    Some("use `*.example.com`".into()),
                );
            }
        }
    }

    fn service_ports(&mut self, r: &Resource, se: &ServiceEntry) {
        let mut names: Vec<&str> = Vec::new();
        let mut numbers: Vec<u32> = Vec::new();
        for (i, p) in se.spec.ports.iter().enumerate() {
            let field = format!("spec.ports[{i}]");
            if names.contains(&p.name.as_str()) {
                self.refuse(
                    codes::INVALID_SERVICE_ENTRY,
                    r,
                    &format!("{field}.name"),
                    format!("port name `{}` is already defined", p.name),
                );
            }
            names.push(&p.name);
            if numbers.contains(&p.number) {
                self.refuse(
                    codes::INVALID_SERVICE_ENTRY,
                    r,
                    &format!("{field}.number"),
                    format!(
                        "port {} is already defined; port numbers cannot be duplicated",
                        p.number
                    ),
                );
            }
            numbers.push(p.number);
            if !(1..=65535).contains(&p.number) {
                self.refuse(
                    codes::PORT_RANGE,
                    r,
                    &format!("{field}.number"),
                    format!("port {} is outside 1..65535", p.number),
                );
            }
            if let Some(t) = p.target_port
                && !(1..=65535).contains(&t)
            {
                self.refuse(
                    codes::PORT_RANGE,
                    r,
                    &format!("{field}.targetPort"),
                    format!("targetPort {t} is outside 1..65535"),
                );
            }
            if !is_dns1123_label(&p.name) {
                self.refuse(
                    codes::INVALID_NAME,
                    r,
                    &format!("{field}.name"),
                    format!(
                        "port name `{}` is invalid: Istio requires a DNS label",
                        p.name
                    ),
                );
            }
            let proto = protocol(p);
            if !proto.is_empty() && !KNOWN_PROTOCOLS.contains(&proto.as_str()) {
                self.error(
                    codes::INVALID_SERVICE_ENTRY,
                    r,
                    &format!("{field}.protocol"),
                    format!(
                        "unsupported protocol `{}`",
                        p.protocol.as_deref().unwrap_or("")
                    ),
                    Some("use HTTP, HTTPS, HTTP2, GRPC, TLS, TCP, ...".into()),
                );
            }
        }
    }

    fn resolution_rules(&mut self, r: &Resource, se: &ServiceEntry, resolution: &str) {
        let spec = &se.spec;
        match resolution {
            "NONE" => {
                if !spec.endpoints.is_empty() {
                    self.error(
                        codes::INVALID_SERVICE_ENTRY,
                        r,
                        "spec.endpoints",
                        "endpoints are not allowed with resolution NONE (the default)".into(),
                        Some(
                            "set `resolution: STATIC` for IP endpoints, or `DNS` for host names"
                                .into(),
                        ),
                    );
                }
                if spec.workload_selector.is_some() {
                    self.warning(
                        codes::ISTIO_WARNING,
                        r,
                        "spec.workloadSelector",
                        "workloadSelector should not be set when resolution is NONE".into(),
                        None,
                    );
                }
            }
            "STATIC" => {
                for (i, ep) in spec.endpoints.iter().enumerate() {
                    self.endpoint(r, se, i, ep, false);
                }
            }
            "DNS" | "DNS_ROUND_ROBIN" => {
                if spec.endpoints.is_empty()
                    && let Some((i, h)) = spec
                        .hosts
                        .iter()
                        .enumerate()
                        .find(|(_, h)| validate_fqdn(h).is_err())
                {
                    self.refuse(codes::INVALID_SERVICE_ENTRY, r, &format!("spec.hosts[{i}]"), format!("with resolution {resolution} and no endpoints, hosts must be FQDNs; `{h}` is not"));
                }
                if resolution == "DNS_ROUND_ROBIN" && spec.endpoints.len() > 1 {
                    self.refuse(
                        codes::INVALID_SERVICE_ENTRY,
                        r,
                        "spec.endpoints",
                        "resolution DNS_ROUND_ROBIN allows at most one endpoint",
                    );
                }
                for (i, ep) in spec.endpoints.iter().enumerate() {
                    self.endpoint(r, se, i, ep, true);
                }
                if !spec.addresses.is_empty()
                    && spec.hosts.len() > 1
                    && spec.ports.iter().any(|p| {
                        matches!(
                            protocol(p).as_str(),
                            "tcp" | "https" | "tls" | "mongo" | "redis" | "mysql"
                        )
                    })
                {
                    self.warning(codes::ISTIO_WARNING, r, "spec.hosts", "a ServiceEntry should not have several hosts together with addresses and a TCP port".into(), None);
                }
            }
            _ => self.dynamic_dns(r, se),
        }
    }

    fn dynamic_dns(&mut self, r: &Resource, se: &ServiceEntry) {
        let spec = &se.spec;
        for (i, h) in spec.hosts.iter().enumerate() {
            if !h.starts_with('*') {
                self.refuse(
                    codes::INVALID_SERVICE_ENTRY,
                    r,
                    &format!("spec.hosts[{i}]"),
                    "with resolution DYNAMIC_DNS every host must be a wildcard",
                );
            }
        }
        if !spec.addresses.is_empty() {
            self.refuse(
                codes::INVALID_SERVICE_ENTRY,
                r,
                "spec.addresses",
                "addresses cannot be set with resolution DYNAMIC_DNS",
            );
        }
        if !spec.endpoints.is_empty() {
            self.refuse(
                codes::INVALID_SERVICE_ENTRY,
                r,
                "spec.endpoints",
                "endpoints cannot be set with resolution DYNAMIC_DNS",
            );
        }
        for (i, p) in spec.ports.iter().enumerate() {
            if !matches!(protocol(p).as_str(), "http" | "tls" | "grpc" | "http2") {
                self.refuse(
                    codes::INVALID_SERVICE_ENTRY,
                    r,
                    &format!("spec.ports[{i}].protocol"),
                    "resolution DYNAMIC_DNS supports only HTTP, TLS, GRPC and HTTP2 ports",
                );
            }
        }
        let waypoint = se
            .metadata
            .labels
            .get("istio.io/use-waypoint")
            .is_some_and(|v| !v.is_empty() && !v.eq_ignore_ascii_case("none"));
        if spec.location.as_deref() == Some("MESH_INTERNAL") && waypoint {
            self.refuse(codes::INVALID_SERVICE_ENTRY, r, "spec.location", "location MESH_INTERNAL with resolution DYNAMIC_DNS is not supported with a waypoint");
        }
    }

    /// One endpoint (`validateWorkloadEntry` and the CEL rules of `endpoints`); `dns`: a
    /// DNS resolution, whose endpoints may be host names.
    fn endpoint(
        &mut self,
        r: &Resource,
        se: &ServiceEntry,
        i: usize,
        ep: &WorkloadEntry,
        dns: bool,
    ) {
        let base = format!("spec.endpoints[{i}]");
        let address = ep.address.as_deref().unwrap_or("");
        if address.is_empty() {
            if ep.network.as_deref().unwrap_or("").is_empty() {
                self.error(
                    codes::INVALID_SERVICE_ENTRY,
                    r,
                    &base,
                    "endpoint has no address".into(),
                    Some("add `address: 127.0.0.1`".into()),
                );
                return;
            }
            self.warning(
                codes::ISTIO_WARNING,
                r,
                &base,
                format!(
                    "endpoint has no address, only network `{}`",
                    ep.network.as_deref().unwrap_or("")
                ),
                None,
            );
        }
        self.endpoint_address(r, se, &base, ep, dns);
        self.endpoint_ports(r, se, &base, ep);
    }

    /// An endpoint's address: a unix socket (STATIC only), an IP, or (DNS) a host name.
    fn endpoint_address(
        &mut self,
        r: &Resource,
        se: &ServiceEntry,
        base: &str,
        ep: &WorkloadEntry,
        dns: bool,
    ) {
        let address = ep.address.as_deref().unwrap_or("");
        let field = format!("{base}.address");
        if let Some(path) = address.strip_prefix("unix://").filter(|_| !dns) {
            if !ep.ports.is_empty() {
                self.refuse(
                    codes::INVALID_SERVICE_ENTRY,
                    r,
                    &format!("{base}.ports"),
                    "a unix socket endpoint may not have ports",
                );
            }
            let absolute = path.starts_with('/') && !path.ends_with('/');
            if !(path.starts_with('@') || absolute) {
                self.refuse(codes::INVALID_SERVICE_ENTRY, r, &field, format!("`{address}` is not an absolute path to a socket file (or an abstract `@name`)"));
            }
            if se.spec.ports.len() != 1 {
                self.refuse(
                    codes::INVALID_SERVICE_ENTRY,
                    r,
                    "spec.ports",
                    "a ServiceEntry with a unix socket endpoint needs exactly one port",
                );
            }
        } else if !address.is_empty() && !is_ip_address(address) {
            if !dns {
                self.error(codes::INVALID_SERVICE_ENTRY, r, &field, format!("endpoint address `{address}` is not an IP address, which resolution STATIC requires"), Some("use `resolution: DNS` for host names".into()));
            } else if validate_fqdn(address).is_err() {
                self.refuse(
                    codes::INVALID_SERVICE_ENTRY,
                    r,
                    &field,
                    format!("endpoint address `{address}` is neither an FQDN nor an IP address"),
                );
            }
        }
    }

    /// An endpoint's ports (named after the entry's ports) and labels.
    fn endpoint_ports(&mut self, r: &Resource, se: &ServiceEntry, base: &str, ep: &WorkloadEntry) {
        for (name, port) in &ep.ports {
            let field = push_key(&format!("{base}.ports"), name);
            if !se.spec.ports.iter().any(|p| &p.name == name) {
                self.error(
                    codes::INVALID_SERVICE_ENTRY,
                    r,
                    &field,
                    format!(
                        "endpoint port `{name}` ({port}) is not a port the ServiceEntry defines"
                    ),
                    Some(format!(
                        "name one of the ServiceEntry's `ports` ({})",
                        se.spec
                            .ports
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                );
            }
            if !is_dns1123_label(name) || name.len() >= 63 {
                self.refuse(
                    codes::INVALID_NAME,
                    r,
                    &field,
                    format!("port name `{name}` is invalid: Istio requires a DNS label"),
                );
            }
            if !(1..=65535).contains(port) {
                self.refuse(
                    codes::PORT_RANGE,
                    r,
                    &field,
                    format!("port {port} is outside 1..65535"),
                );
            }
        }
        self.labels(r, &format!("{base}.labels"), super::pairs(&ep.labels));
    }
}
