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
pub mod from_virtual_service;

pub mod model;
pub mod parents;
pub mod schema;
pub mod to_virtual_service;
mod unsimulated;

pub use check::check;
pub use convert::{GeneratedRoute, GeneratedVirtualService, RouteKind, convert_all};

use model::{GatewayClass, GrpcRouteResource, HttpRouteResource, KubeGateway, ReferenceGrant};

use super::model::{ObjectMeta, Opaque};
use super::{ConfigError, ConfigSet, IstioObject};

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

    /// The metadata, to edit (annotations the lab writes).
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            GatewayApiObject::HttpRoute(r) => &mut r.metadata,
            GatewayApiObject::GrpcRoute(r) => &mut r.metadata,
            GatewayApiObject::Gateway(r) => &mut r.metadata,
            GatewayApiObject::GatewayClass(r) => &mut r.metadata,
            GatewayApiObject::ReferenceGrant(r) => &mut r.metadata,
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

/// Something a conversion cannot say in the other API: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limitation {
    /// `Kind namespace/name` of the resource converted.
    pub resource: String,
    /// Field path in it.
    pub field: String,
    /// What is not expressible, and what to do.
    pub message: String,
}

impl std::fmt::Display for Limitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.resource, self.field, self.message)
    }
}

/// Which way `mirrorlab convert` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// VirtualServices become HTTPRoutes.
    HttpRoute,
    /// HTTPRoutes and GRPCRoutes become VirtualServices.
    VirtualService,
}

/// A converted file: its YAML, how many resources were converted, what could not be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// Every resource of the file, the converted ones in the place of what they replace.
    pub yaml: String,
    /// Resources written in the other API.
    pub converted: usize,
    /// What the other API cannot express.
    pub limitations: Vec<Limitation>,
}

/// Converts the routes of file `file` of `set` to `target`, keeping every other resource.
pub fn translate_file(
    set: &ConfigSet,
    file: usize,
    target: Target,
) -> Result<Translation, ConfigError> {
    let converted = match target {
        Target::HttpRoute => to_http_routes(set, file),
        Target::VirtualService => to_virtual_services(set, file),
    };
    Ok(Translation {
        yaml: write_yaml(set, file, &converted.objects)?,
        converted: converted.count,
        limitations: converted.limitations,
    })
}

/// The resources of one file after a conversion, in file order.
struct Converted {
    objects: Vec<IstioObject>,
    limitations: Vec<Limitation>,
    /// How many resources of the target kind were written.
    count: usize,
}

/// The file's VirtualServices as HTTPRoutes where Gateway API can say it, each other one
/// (and every other resource) as it is.
fn to_http_routes(set: &ConfigSet, file: usize) -> Converted {
    let mut out = Converted {
        objects: Vec::new(),
        limitations: Vec::new(),
        count: 0,
    };
    for r in set.resources().iter().filter(|r| r.source.file == file) {
        let IstioObject::VirtualService(vs) = &r.object else {
            out.objects.push(r.object.clone());
            continue;
        };
        let (route, limits) = from_virtual_service::http_route_for(set, vs);
        out.limitations.extend(limits);
        match route {
            Some(route) => {
                out.count += 1;
                out.objects.push(IstioObject::GatewayApi(Box::new(
                    GatewayApiObject::HttpRoute(route),
                )));
            }
            None => out.objects.push(r.object.clone()),
        }
    }
    out
}

/// The file's HTTPRoutes and GRPCRoutes as the VirtualServices Istio makes of them; a route
/// Istio drops is listed, not written.
fn to_virtual_services(set: &ConfigSet, file: usize) -> Converted {
    let conversion = convert_all(set);
    let (services, limitations) = to_virtual_service::virtual_services_for(set, &conversion, file);
    let mut out = Converted {
        objects: Vec::new(),
        limitations,
        count: 0,
    };
    for (i, r) in set
        .resources()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.source.file == file)
    {
        match &r.object {
            IstioObject::GatewayApi(g)
                if matches!(
                    **g,
                    GatewayApiObject::HttpRoute(_) | GatewayApiObject::GrpcRoute(_)
                ) =>
            {
                for (_, vs) in services.iter().filter(|(at, _)| *at == i) {
                    out.count += 1;
                    out.objects
                        .push(IstioObject::VirtualService(Box::new(vs.clone())));
                }
            }
            other => out.objects.push(other.clone()),
        }
    }
    for p in conversion.problems.iter().filter(|p| p.drops_route) {
        if let Some(r) = set
            .resources()
            .get(p.resource)
            .filter(|r| r.source.file == file)
        {
            out.limitations.push(Limitation {
                resource: r.display_name(),
                field: p.field.clone(),
                message: format!(
                    "{}; Istio drops the route, so nothing is written for it",
                    p.message
                ),
            });
        }
    }
    out
}

/// `objects` as one multi-document YAML file, named after file `file` of `set` in errors.
fn write_yaml(
    set: &ConfigSet,
    file: usize,
    objects: &[IstioObject],
) -> Result<String, ConfigError> {
    let name = set
        .files()
        .get(file)
        .map_or_else(|| format!("#{file}"), |f| f.name.clone());
    let mut yaml = String::new();
    for object in objects {
        let error = |e: yaml_serde::Error| ConfigError::Serialize {
            file: name.clone(),
            resource: object.to_string(),
            message: e.to_string(),
        };
        let text = object
            .to_value()
            .and_then(|v| yaml_serde::to_string(&v))
            .map_err(error)?;
        if !yaml.is_empty() {
            yaml.push_str("---\n");
        }
        yaml.push_str(&text);
    }
    if !yaml.ends_with('\n') {
        yaml.push('\n');
    }
    Ok(yaml)
}
