//! Where a route attaches: its `parentRefs` resolved as Istio resolves them
//! (`conversion.go` `extractParentReferenceInfo`, `referenceAllowed`; the route's host
//! names as `route_collections.go` builds one VirtualService per parent and host).
//!
//! A Service parent (GAMMA, the mesh binding) binds the route to that Service's host for
//! sidecar traffic, ignoring `hostnames`; a ServiceEntry parent to the entry's hosts. A
//! Gateway parent binds it to the listeners it may attach to, and the host names are the
//! intersection of the route's and the listeners'.

use super::GROUP;
use super::model::{Listener, ParentReference};
use crate::config::hosts::{CLUSTER_DOMAIN, fqdn, host_matches};
use crate::config::model::Opaque;
use crate::config::{ConfigSet, IstioObject};

/// What one parentRef binds the route to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// Sidecar traffic to a service's hosts.
    Mesh {
        /// The hosts (a Service's FQDN, or a ServiceEntry's hosts as written).
        hosts: Vec<String>,
        /// Namespace of the Service (or ServiceEntry).
        namespace: String,
        /// `port` of the parentRef: only requests to that port.
        port: Option<u32>,
    },
    /// Traffic through a Gateway the lab may act as.
    Gateway {
        /// `namespace/name` of the Gateway.
        gateway: String,
        /// Host names served: route hostnames intersected with the listeners' (`*`: any).
        hosts: Vec<String>,
    },
}

/// Why a parentRef does not bind, as Istio's route status says it (Accepted=False).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentProblem {
    /// Index of the parentRef.
    pub index: usize,
    /// The status reason: `NoMatchingParent`, `NotAllowedByListeners`,
    /// `NoMatchingListenerHostname`.
    pub reason: &'static str,
    /// What Istio says.
    pub message: String,
}

/// Whether the parentRef is for Istio at all: other kinds belong to other controllers and
/// Istio ignores them (`toInternalParentReference`).
pub fn is_istio_parent(p: &ParentReference) -> bool {
    matches!(
        (p.group(), p.kind()),
        (GROUP, "Gateway") | ("", "Service") | ("networking.istio.io", "ServiceEntry")
    )
}

/// Whether the files hold a Kubernetes Service `namespace/name`.
pub fn kube_service_exists(set: &ConfigSet, namespace: &str, name: &str) -> bool {
    set.resources().iter().any(|r| match &r.object {
        IstioObject::Other(v) => {
            v.get("kind").and_then(Opaque::as_str) == Some("Service")
                && v.get("apiVersion").and_then(Opaque::as_str) == Some("v1")
                && r.object.qualified_name() == format!("{namespace}/{name}")
        }
        _ => false,
    })
}

/// The Kubernetes Gateway `namespace/name` of the files and its class's controller
/// (`None` when the class is not in the files).
pub fn find_gateway<'a>(
    set: &'a ConfigSet,
    namespace: &str,
    name: &str,
) -> Option<(&'a super::model::KubeGateway, Option<&'a str>)> {
    let gateway = set.gateway_api().find_map(|(_, o)| match o {
        super::GatewayApiObject::Gateway(g)
            if g.metadata.namespace_or_default() == namespace
                && g.metadata.name.as_deref() == Some(name) =>
        {
            Some(g)
        }
        _ => None,
    })?;
    let controller = set.gateway_api().find_map(|(_, o)| match o {
        super::GatewayApiObject::GatewayClass(c)
            if c.metadata.name.as_deref() == Some(gateway.spec.gateway_class_name.as_str()) =>
        {
            Some(c.spec.controller_name.as_str())
        }
        _ => None,
    });
    Some((gateway, controller))
}

/// Resolves parentRef `index` of a route of `kind` in `namespace` with `hostnames`; `None`
/// for a parent that is not Istio's.
pub fn resolve(
    set: &ConfigSet,
    kind: &str,
    namespace: &str,
    hostnames: &[String],
    index: usize,
    p: &ParentReference,
) -> Option<Result<Binding, ParentProblem>> {
    if !is_istio_parent(p) {
        return None;
    }
    let ns = p.namespace.clone().unwrap_or_else(|| namespace.to_owned());
    let problem = |reason, message| ParentProblem {
        index,
        reason,
        message,
    };
    Some(match p.kind() {
        "Service" => Ok(Binding::Mesh {
            hosts: vec![format!("{}.{ns}.{CLUSTER_DOMAIN}", p.name)],
            namespace: ns,
            port: p.port,
        }),
        "ServiceEntry" => {
            let entry = set
                .service_entries()
                .find(|(r, _)| r.object.qualified_name() == format!("{ns}/{}", p.name));
            match entry {
                Some((_, se)) => Ok(Binding::Mesh {
                    hosts: se.spec.hosts.iter().map(|h| fqdn(h, &ns)).collect(),
                    namespace: ns,
                    port: p.port,
                }),
                None => Err(problem(
                    "NoMatchingParent",
                    format!("parent service entry: \"{}\" not found", p.name),
                )),
            }
        }
        _ => gateway_binding(set, kind, namespace, hostnames, &ns, p)
            .map_err(|(reason, message)| problem(reason, message)),
    })
}

fn gateway_binding(
    set: &ConfigSet,
    kind: &str,
    route_namespace: &str,
    hostnames: &[String],
    ns: &str,
    p: &ParentReference,
) -> Result<Binding, (&'static str, String)> {
    let Some((gateway, _)) = find_gateway(set, ns, &p.name) else {
        return Err((
            "NoMatchingParent",
            format!("no Gateway {ns}/{} in these files", p.name),
        ));
    };
    let listeners: Vec<&Listener> = gateway
        .spec
        .listeners
        .iter()
        .filter(|l| p.section_name.as_deref().is_none_or(|s| s == l.name))
        .filter(|l| p.port.is_none_or(|port| port == l.port))
        .collect();
    if listeners.is_empty() {
        let what = match (&p.section_name, p.port) {
            (Some(s), _) => format!("sectionName \"{s}\" not found"),
            (None, Some(port)) => format!("port {port} not found"),
            (None, None) => "the Gateway has no listeners".to_owned(),
        };
        return Err(("NoMatchingParent", what));
    }
    let route_hosts: Vec<&str> = if hostnames.is_empty() {
        vec!["*"]
    } else {
        hostnames.iter().map(String::as_str).collect()
    };
    let mut hosts = Vec::new();
    let mut hostname_matched = false;
    let mut denied = None;
    for l in &listeners {
        let intersection: Vec<String> = route_hosts
            .iter()
            .filter_map(|h| intersect(h, l.hostname.as_deref()))
            .collect();
        if intersection.is_empty() {
            continue;
        }
        hostname_matched = true;
        if let Err(why) = listener_allows(l, kind, route_namespace, ns) {
            denied = Some(why);
            continue;
        }
        for h in intersection {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }
    if hosts.is_empty() {
        if !hostname_matched {
            let names: Vec<&str> = listeners
                .iter()
                .map(|l| l.hostname.as_deref().unwrap_or("*"))
                .collect();
            return Err((
                "NoMatchingListenerHostname",
                format!(
                    "no hostnames matched parent hostname \"{}\"",
                    names.join(", ")
                ),
            ));
        }
        return Err((
            "NotAllowedByListeners",
            denied.unwrap_or_else(|| "no listener allows this route".to_owned()),
        ));
    }
    Ok(Binding::Gateway {
        gateway: format!("{ns}/{}", p.name),
        hosts,
    })
}

/// `allowedRoutes`: the route's namespace (default `Same`) and kind (default: the kinds
/// of the listener's protocol).
fn listener_allows(
    l: &Listener,
    kind: &str,
    route_namespace: &str,
    gateway_namespace: &str,
) -> Result<(), String> {
    let from = l
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref())
        .and_then(|n| n.from.as_deref())
        .unwrap_or("Same");
    // A namespace selector needs the namespaces' labels, which only the cluster has: the
    // lab lets the route through (and `check` says so).
    if from == "Same" && route_namespace != gateway_namespace {
        return Err(format!(
            "listener {} allows routes from its own namespace ({gateway_namespace}) only, and the route is in {route_namespace}",
            l.name
        ));
    }
    let kinds = l
        .allowed_routes
        .as_ref()
        .map(|a| a.kinds.as_slice())
        .unwrap_or_default();
    let allowed = if kinds.is_empty() {
        matches!(l.protocol.as_str(), "HTTP" | "HTTPS") && matches!(kind, "HTTPRoute" | "GRPCRoute")
    } else {
        kinds
            .iter()
            .any(|k| k.kind == kind && k.group.as_deref().unwrap_or(GROUP) == GROUP)
    };
    if !allowed {
        return Err(format!("kind {kind} is not allowed by listener {}", l.name));
    }
    Ok(())
}

/// The intersection of a route host name and a listener's (`None`: any host), wildcards
/// included: the more specific of the two when one covers the other.
pub fn intersect(route: &str, listener: Option<&str>) -> Option<String> {
    let Some(listener) = listener.filter(|l| !l.is_empty()) else {
        return Some(route.to_owned());
    };
    if route == "*" || host_matches(route, listener) || route == listener {
        return Some(listener.to_owned());
    }
    host_matches(listener, route).then(|| route.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_intersect_with_the_listeners() {
        // Gateway API spec, HTTPRouteSpec.hostnames: a listener *.example.com and a route
        // foo.example.com serve foo.example.com; a route *.example.com on a listener
        // foo.example.com serves foo.example.com; disjoint names serve nothing.
        assert_eq!(
            intersect("foo.example.com", Some("*.example.com")).as_deref(),
            Some("foo.example.com")
        );
        assert_eq!(
            intersect("*.example.com", Some("foo.example.com")).as_deref(),
            Some("foo.example.com")
        );
        assert_eq!(
            intersect("*", Some("*.example.com")).as_deref(),
            Some("*.example.com")
        );
        assert_eq!(
            intersect("foo.example.com", None).as_deref(),
            Some("foo.example.com")
        );
        assert_eq!(intersect("foo.example.org", Some("*.example.com")), None);
    }
}
