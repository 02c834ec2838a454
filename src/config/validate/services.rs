//! The services the files define, as `istioctl analyze` finds them from a VirtualService
//! (istio/istio `analyzers/util/service_lookup.go`, `hosts.go`): ServiceEntries and
//! Kubernetes Services, each visible in the namespaces its `exportTo` names.

use super::super::model::Opaque;
use super::super::{IstioObject, Resource};
use super::opaque::At;

/// A service the files define: a ServiceEntry, or a Kubernetes Service.
pub(super) struct Service<'a> {
    pub resource: Option<&'a Resource>,
    /// `namespace/name`.
    pub name: String,
    /// Hosts as written and as FQDNs.
    pub hosts: Vec<(String, String)>,
    /// `*` or the namespaces that see it.
    pub scopes: Vec<String>,
    /// Port numbers and protocols.
    pub ports: Vec<(u32, String)>,
}

/// Istio's `ConvertHostToFQDN`: short names expand into the namespace, others stay.
pub(super) fn to_fqdn(namespace: &str, host: &str) -> String {
    if host.starts_with('*') || host.contains('.') {
        host.to_owned()
    } else {
        format!("{host}.{namespace}.svc.cluster.local")
    }
}

/// The scopes an `exportTo` list gives (`.` is the resource's namespace; none is all).
pub(super) fn scopes(namespace: &str, export_to: &[String]) -> Vec<String> {
    if export_to.is_empty() || export_to.iter().any(|e| e == "*") {
        return vec!["*".to_owned()];
    }
    namespaces(namespace, export_to)
}

/// An `exportTo` list with `.` read as `namespace`.
fn namespaces(namespace: &str, export_to: &[String]) -> Vec<String> {
    export_to
        .iter()
        .map(|e| {
            if e == "." {
                namespace.to_owned()
            } else {
                e.clone()
            }
        })
        .collect()
}

fn meta_str<'v>(v: &'v Opaque, key: &str) -> Option<&'v str> {
    v.get("metadata")?.get(key)?.as_str()
}

/// The namespace and name of a kept-verbatim resource.
pub(super) fn other_name(v: &Opaque) -> (String, String) {
    (
        meta_str(v, "namespace").unwrap_or("default").to_owned(),
        meta_str(v, "name").unwrap_or_default().to_owned(),
    )
}

pub(super) fn kind_of(v: &Opaque) -> (&str, &str) {
    (
        v.get("kind").and_then(Opaque::as_str).unwrap_or(""),
        v.get("apiVersion").and_then(Opaque::as_str).unwrap_or(""),
    )
}

/// Every service of the files: ServiceEntries and Kubernetes Services.
pub(super) fn services(resources: &[Resource]) -> Vec<Service<'_>> {
    let mut out = Vec::new();
    for r in resources {
        match &r.object {
            IstioObject::ServiceEntry(se) => {
                let ns = se.metadata.namespace_or_default().to_owned();
                out.push(Service {
                    resource: Some(r),
                    name: r.object.qualified_name(),
                    hosts: se
                        .spec
                        .hosts
                        .iter()
                        .map(|h| (h.clone(), to_fqdn(&ns, h)))
                        .collect(),
                    scopes: scopes(&ns, &se.spec.export_to),
                    ports: se
                        .spec
                        .ports
                        .iter()
                        .map(|p| (p.number, p.protocol.clone().unwrap_or_default()))
                        .collect(),
                });
            }
            IstioObject::Other(v) if kind_of(v) == ("Service", "v1") => {
                let (ns, name) = other_name(v);
                let export: Vec<String> = v
                    .get("metadata")
                    .and_then(|m| m.get("annotations"))
                    .and_then(|a| a.get("networking.istio.io/exportTo"))
                    .and_then(Opaque::as_str)
                    .map(|s| s.split(',').map(|e| e.trim().to_owned()).collect())
                    .unwrap_or_default();
                let at = At { value: v, path: "" };
                let ports = at
                    .get("spec")
                    .map(|spec| {
                        spec.at()
                            .items("ports")
                            .iter()
                            .map(|p| {
                                let p = p.at();
                                (
                                    p.num("port").unwrap_or(0.0) as u32,
                                    p.str_or_empty("protocol").to_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Service {
                    resource: None,
                    name: format!("{ns}/{name}"),
                    hosts: vec![(name.clone(), to_fqdn(&ns, &name))],
                    scopes: if export.is_empty() {
                        vec!["*".to_owned()]
                    } else {
                        scopes(&ns, &export)
                    },
                    ports,
                });
            }
            _ => {}
        }
    }
    out
}

/// Istio's `GetDestinationHost`: the service a host names, seen from `namespace`.
pub(super) fn find_service<'s, 'a>(
    services: &'s [Service<'a>],
    namespace: &str,
    export_to: &[String],
    host: &str,
) -> Option<&'s Service<'a>> {
    let wanted = to_fqdn(namespace, host);
    let visible = |s: &Service<'_>, scope: &str| s.scopes.iter().any(|x| x == scope);
    let exact = |scope: &str| {
        services
            .iter()
            .find(|s| visible(s, scope) && s.hosts.iter().any(|(_, f)| *f == wanted))
    };
    if let Some(s) = exact("*") {
        return Some(s);
    }
    let own: Vec<String> = if export_to.is_empty() {
        vec![namespace.to_owned()]
    } else {
        namespaces(namespace, export_to)
    };
    if let Some(s) = own.iter().find_map(|scope| exact(scope)) {
        return Some(s);
    }
    let bare = host.strip_prefix('*').unwrap_or(host);
    services.iter().find(|s| {
        (visible(s, "*") || visible(s, namespace))
            && s.hosts.iter().any(|(_, f)| {
                f.strip_prefix('*')
                    .is_some_and(|suffix| bare.ends_with(suffix))
            })
    })
}
