//! What the lab does not simulate in Gateway API resources, named at the field (ML0301),
//! so that no field of a route, Gateway or GatewayClass is passed over in silence.
//!
//! The typed fields of [`super::model`] are the ones the lab runs; whatever a resource keeps
//! in an `extra` map (a field the schema knows and the lab does not act on) is listed here,
//! with what a person would see in the mesh instead.

use super::GatewayApiObject;
use super::model::{GatewayClassSpec, GatewaySpec, Listener};
use crate::config::lines::{push_index, push_key};
use crate::config::model::{Opaque, OrderedMap};

/// Every field of `object` the lab does not simulate: (field path, what the lab does instead).
pub(super) fn fields(object: &GatewayApiObject) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match object {
        GatewayApiObject::HttpRoute(route) => {
            route_spec(&route.spec.extra, &mut out);
            for (i, rule) in route.spec.rules.iter().enumerate() {
                route_rule(&rule.extra, &push_index("spec.rules", i), &mut out);
            }
        }
        GatewayApiObject::GrpcRoute(route) => {
            route_spec(&route.spec.extra, &mut out);
            for (i, rule) in route.spec.rules.iter().enumerate() {
                route_rule(&rule.extra, &push_index("spec.rules", i), &mut out);
            }
        }
        GatewayApiObject::Gateway(g) => gateway(&g.spec, &mut out),
        GatewayApiObject::GatewayClass(c) => gateway_class(&c.spec, &mut out),
        // A ReferenceGrant's fields are all typed and all used.
        GatewayApiObject::ReferenceGrant(_) => {}
    }
    out
}

/// The generic message for a field the lab reads past.
fn ignored(key: &str) -> String {
    format!("`{key}` is not simulated: the lab routes as if it were absent")
}

fn route_spec(extra: &OrderedMap<Opaque>, out: &mut Vec<(String, String)>) {
    for key in extra.keys() {
        let message = match key.as_str() {
            // GEP-3793 (experimental): routes without parentRefs attach to the default Gateway.
            "useDefaultGateways" => "`useDefaultGateways` is not simulated: the lab binds a route by its parentRefs only".to_owned(),
            other => ignored(other),
        };
        out.push((push_key("spec", key), message));
    }
}

fn route_rule(extra: &OrderedMap<Opaque>, base: &str, out: &mut Vec<(String, String)>) {
    for key in extra.keys() {
        let message = match key.as_str() {
            "sessionPersistence" => {
                "sessionPersistence is not simulated (the lab has no sticky sessions): each request picks its backend by weight".to_owned()
            }
            other => ignored(other),
        };
        out.push((push_key(base, key), message));
    }
}

fn gateway(spec: &GatewaySpec, out: &mut Vec<(String, String)>) {
    for key in spec.extra.keys() {
        let message = match key.as_str() {
            "addresses" => "`addresses` is not simulated: the lab acts as this Gateway on its own listen address (--listen), not on the addresses the cluster would assign".to_owned(),
            "infrastructure" => "`infrastructure` is not simulated: it labels and configures the gateway's Deployment and Service, which the lab does not have".to_owned(),
            other => ignored(other),
        };
        out.push((push_key("spec", key), message));
    }
    for (i, listener) in spec.listeners.iter().enumerate() {
        self::listener(listener, &push_index("spec.listeners", i), out);
    }
}

fn listener(l: &Listener, base: &str, out: &mut Vec<(String, String)>) {
    for key in l.extra.keys() {
        let message = match key.as_str() {
            "tls" => format!(
                "`tls` is not simulated: the lab's listener is plain HTTP, so the routes of this {} listener are served in clear on the lab's port, without its certificates",
                l.protocol
            ),
            other => ignored(other),
        };
        out.push((push_key(base, key), message));
    }
    let from = l
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref())
        .and_then(|n| n.from.as_deref());
    if from == Some("Selector") {
        out.push((
            push_key(&push_key(&push_key(base, "allowedRoutes"), "namespaces"), "from"),
            "a namespace selector is not simulated: namespace labels are the cluster's, so the lab lets routes of every namespace attach".to_owned(),
        ));
    }
}

fn gateway_class(spec: &GatewayClassSpec, out: &mut Vec<(String, String)>) {
    for key in spec.extra.keys() {
        let message = match key.as_str() {
            // A description changes nothing a request sees.
            "description" => continue,
            "parametersRef" => "`parametersRef` is not simulated: the parameters configure the gateway deployments of this class, which the lab does not have".to_owned(),
            other => ignored(other),
        };
        out.push((push_key("spec", key), message));
    }
}
