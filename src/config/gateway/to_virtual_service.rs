//! HTTPRoutes and GRPCRoutes written as the VirtualServices Istio makes of them: one per
//! parent and host, the routes in Gateway API precedence, prefixes written segment-wise
//! (`convert`). What a VirtualService cannot say the same way is listed.

use super::Limitation;
use super::convert::{Conversion, GeneratedBinding, GeneratedVirtualService};
use crate::config::hosts::CLUSTER_DOMAIN;
use crate::config::model::{HttpRoute, ObjectMeta, VirtualService, VirtualServiceSpec};
use crate::config::{ConfigSet, IstioObject};

/// The VirtualServices for the route objects of `file`, each at the place of the first
/// route object it comes from, with what they cannot express.
pub fn virtual_services_for(
    set: &ConfigSet,
    conversion: &Conversion,
    file: usize,
) -> (Vec<(usize, VirtualService)>, Vec<Limitation>) {
    let mut out = Vec::new();
    let mut limits = Vec::new();
    let mut used_names: Vec<String> = Vec::new();
    for g in &conversion.services {
        let Some(first) = g.routes.first() else {
            continue;
        };
        let resource = first.origin.resource;
        if set
            .resources()
            .get(resource)
            .is_none_or(|r| r.source.file != file)
        {
            continue;
        }
        let meta = match set.resources().get(resource).map(|r| &r.object) {
            Some(IstioObject::GatewayApi(o)) => o.metadata().clone(),
            _ => ObjectMeta::default(),
        };
        let base = meta.name.clone().unwrap_or_else(|| "route".to_owned());
        let mut name = base.clone();
        let mut n = 1;
        while used_names.contains(&name) {
            n += 1;
            name = format!("{base}-{n}");
        }
        used_names.push(name.clone());
        if let GeneratedBinding::Gateway(gateway) = &g.binding {
            limits.push(Limitation {
                resource: g.sources.join(", "),
                field: "spec.parentRefs".to_owned(),
                message: format!(
                    "bound to Kubernetes Gateway {gateway}: the VirtualService names `{gateway}` in `gateways`, which Istio reads as an Istio Gateway (networking.istio.io) of that name; define one with the listener's hosts"
                ),
            });
        }
        let annotations = meta
            .annotations
            .iter()
            .filter(|(k, _)| k.starts_with("mirrorlab.dev/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.push((
            resource,
            VirtualService {
                api_version: "networking.istio.io/v1".to_owned(),
                kind: "VirtualService".to_owned(),
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: meta.namespace.clone(),
                    annotations,
                    ..ObjectMeta::default()
                },
                spec: VirtualServiceSpec {
                    hosts: vec![vs_host(g)],
                    gateways: match &g.binding {
                        GeneratedBinding::Mesh { .. } => Vec::new(),
                        GeneratedBinding::Gateway(gw) => vec![gw.clone()],
                    },
                    http: g
                        .routes
                        .iter()
                        .map(|r| single_mirror(r.route.clone()))
                        .collect(),
                    ..VirtualServiceSpec::default()
                },
                status: None,
            },
        ));
    }
    (out, limits)
}

/// The host as a person writes it in a VirtualService of the routes' namespace.
fn vs_host(g: &GeneratedVirtualService) -> String {
    match &g.binding {
        GeneratedBinding::Mesh { .. } => g
            .host
            .strip_suffix(&format!(".{}.{CLUSTER_DOMAIN}", g.namespace))
            .unwrap_or(&g.host)
            .to_owned(),
        GeneratedBinding::Gateway(_) => g.host.clone(),
    }
}

/// One mirror as the tutorial writes it (`mirror` and `mirrorPercentage`); several stay
/// `mirrors`.
fn single_mirror(mut route: HttpRoute) -> HttpRoute {
    if route.mirrors.len() == 1 {
        let m = route.mirrors.remove(0);
        route.mirror = Some(m.destination);
        route.mirror_percentage = m.percentage;
    }
    route
}
