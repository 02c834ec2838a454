//! Gateway API resources (`gateway.networking.k8s.io` v1 and v1beta1) beside Istio's:
//! HTTPRoute and GRPCRoute, and the Gateway, GatewayClass and ReferenceGrant they refer to.
//!
//! They load into [`GatewayApiObject`] after the CRDs' structural schema and CEL rules have
//! had their say (`schema`, `cel`), and are turned into VirtualService routes exactly as
//! Istio turns them (`convert`, after istio/istio `pilot/pkg/config/kube/gateway/`), so the
//! route table, `check`, the editor and `mirrorlab convert` share one translation.

pub mod cel;
mod check;
pub mod convert;

pub mod model;
pub mod parents;
pub mod schema;

pub use check::check;
pub use convert::{GeneratedRoute, GeneratedVirtualService, RouteKind, convert_all};

use model::{GatewayClass, GrpcRouteResource, HttpRouteResource, KubeGateway, ReferenceGrant};

use super::model::{ObjectMeta, Opaque};

/// The Gateway API group.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// The kinds the lab reads from the Gateway API group, and the versions of each.
pub const KINDS: [(&str, &[&str]); 5] = [
    ("HTTPRoute", &["v1", "v1beta1"]),
    ("GRPCRoute", &["v1"]),
    ("Gateway", &["v1", "v1beta1"]),
    ("GatewayClass", &["v1", "v1beta1"]),
    ("ReferenceGrant", &["v1", "v1beta1"]),
];

/// The controller name of Istio's GatewayClasses (`istio` and `istio-waypoint` use it or the
/// mesh controller).
pub const ISTIO_CONTROLLERS: [&str; 2] =
    ["istio.io/gateway-controller", "istio.io/mesh-controller"];

/// One loaded Gateway API resource.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayApiObject {
    /// An HTTPRoute.
    HttpRoute(HttpRouteResource),
    /// A GRPCRoute.
    GrpcRoute(GrpcRouteResource),
    /// A Kubernetes Gateway.
    Gateway(KubeGateway),
    /// A GatewayClass.
    GatewayClass(GatewayClass),
    /// A ReferenceGrant.
    ReferenceGrant(ReferenceGrant),
}

impl GatewayApiObject {
    /// The kind, e.g. `HTTPRoute`.
    pub fn kind(&self) -> &str {
        match self {
            GatewayApiObject::HttpRoute(r) => &r.kind,
            GatewayApiObject::GrpcRoute(r) => &r.kind,
            GatewayApiObject::Gateway(r) => &r.kind,
            GatewayApiObject::GatewayClass(r) => &r.kind,
            GatewayApiObject::ReferenceGrant(r) => &r.kind,
        }
    }

    /// The metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            GatewayApiObject::HttpRoute(r) => &r.metadata,
            GatewayApiObject::GrpcRoute(r) => &r.metadata,
            GatewayApiObject::Gateway(r) => &r.metadata,
            GatewayApiObject::GatewayClass(r) => &r.metadata,
            GatewayApiObject::ReferenceGrant(r) => &r.metadata,
        }
    }

    /// The resource as a YAML value, to write it back.
    pub fn to_value(&self) -> Result<Opaque, yaml_serde::Error> {
        match self {
            GatewayApiObject::HttpRoute(r) => yaml_serde::to_value(r),
            GatewayApiObject::GrpcRoute(r) => yaml_serde::to_value(r),
            GatewayApiObject::Gateway(r) => yaml_serde::to_value(r),
            GatewayApiObject::GatewayClass(r) => yaml_serde::to_value(r),
            GatewayApiObject::ReferenceGrant(r) => yaml_serde::to_value(r),
        }
    }
}

/// Whether `kind` of `api_version` is a Gateway API resource the lab reads.
pub fn is_gateway_kind(kind: Option<&str>, api_version: Option<&str>) -> bool {
    api_version.is_some_and(|v| v.starts_with("gateway.networking.k8s.io/"))
        && kind.is_some_and(|k| KINDS.iter().any(|(name, _)| *name == k))
}

/// Why a Gateway API document did not load: schema findings (with their field paths) or a
/// version the CRDs do not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadProblem {
    /// A version of the group the kind does not have.
    Version(String),
    /// What the structural schema refuses.
    Schema(Vec<schema::SchemaIssue>),
    /// What the typed model could not read (should not happen after the schema).
    Typed(String),
}

/// Reads a Gateway API document, after the experimental channel's structural schema (the
/// superset; fields only the experimental channel has are warned about by `check`).
pub fn load(
    kind: &str,
    api_version: &str,
    value: &Opaque,
) -> Result<GatewayApiObject, LoadProblem> {
    let version = api_version.rsplit('/').next().unwrap_or_default();
    let served = KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .is_some_and(|(_, versions)| versions.contains(&version));
    if !served {
        return Err(LoadProblem::Version(version.to_owned()));
    }
    let json = serde_json::to_value(value).map_err(|e| LoadProblem::Typed(e.to_string()))?;
    match schema::validate(schema::Channel::Experimental, kind, version, &json) {
        Some(issues) if !issues.is_empty() => return Err(LoadProblem::Schema(issues)),
        _ => {}
    }
    let typed = |e: yaml_serde::Error| LoadProblem::Typed(e.to_string());
    let value = value.clone();
    Ok(match kind {
        "HTTPRoute" => GatewayApiObject::HttpRoute(yaml_serde::from_value(value).map_err(typed)?),
        "GRPCRoute" => GatewayApiObject::GrpcRoute(yaml_serde::from_value(value).map_err(typed)?),
        "Gateway" => GatewayApiObject::Gateway(yaml_serde::from_value(value).map_err(typed)?),
        "GatewayClass" => {
            GatewayApiObject::GatewayClass(yaml_serde::from_value(value).map_err(typed)?)
        }
        _ => GatewayApiObject::ReferenceGrant(yaml_serde::from_value(value).map_err(typed)?),
    })
}

/// The fields of a resource that only the experimental channel's CRDs have: with the
/// standard CRDs installed, the API server refuses them.
pub fn experimental_only_fields(object: &GatewayApiObject) -> Vec<String> {
    let Ok(value) = object.to_value() else {
        return Vec::new();
    };
    let version = match object {
        GatewayApiObject::HttpRoute(r) => &r.api_version,
        GatewayApiObject::GrpcRoute(r) => &r.api_version,
        GatewayApiObject::Gateway(r) => &r.api_version,
        GatewayApiObject::GatewayClass(r) => &r.api_version,
        GatewayApiObject::ReferenceGrant(r) => &r.api_version,
    };
    let version = version.rsplit('/').next().unwrap_or_default();
    let Ok(json) = serde_json::to_value(&value) else {
        return Vec::new();
    };
    schema::validate(schema::Channel::Standard, object.kind(), version, &json)
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.unknown_field)
        .map(|i| i.path)
        .collect()
}
