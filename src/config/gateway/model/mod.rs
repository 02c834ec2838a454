//! Serde model of the Gateway API resources the lab reads (`gateway.networking.k8s.io` v1 and
//! v1beta1): HTTPRoute, GRPCRoute, Gateway, GatewayClass, ReferenceGrant, field for field as
//! the project's CRDs have them, written back as they were written (CRD defaults are applied
//! by the accessors, never stored, so a file round-trips unchanged).
//!
//! The CRD schema (`super::schema`) has already refused unknown fields and wrong types, so
//! these structs are lenient: what the lab does not act on (Gateway TLS, addresses,
//! `sessionPersistence`, ...) is kept in `extra` and written back verbatim.

use serde::{Deserialize, Serialize};

mod kinds;

pub use kinds::*;

use crate::config::model::{Opaque, OrderedMap};

/// One Gateway API resource: `apiVersion`, `kind`, `metadata`, `spec`, `status`, the
/// envelope every Kubernetes resource the lab reads shares.
pub type GatewayResource<S> = crate::config::model::IstioResource<S>;

/// An HTTPRoute.
pub type HttpRouteResource = GatewayResource<HttpRouteSpec>;
/// A GRPCRoute.
pub type GrpcRouteResource = GatewayResource<GrpcRouteSpec>;
/// A Kubernetes Gateway.
pub type KubeGateway = GatewayResource<GatewaySpec>;
/// A GatewayClass.
pub type GatewayClass = GatewayResource<GatewayClassSpec>;
/// A ReferenceGrant.
pub type ReferenceGrant = GatewayResource<ReferenceGrantSpec>;

/// `ParentReference`: the Gateway or Service a route attaches to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// API group; absent: `gateway.networking.k8s.io`; `""` with kind Service: the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind; absent: `Gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace; absent: the route's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the parent.
    #[serde(default)]
    pub name: String,
    /// A listener of the Gateway, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// A port of the Gateway's listeners, or of the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
}

impl ParentReference {
    /// The group with the CRD default applied.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(super::GROUP)
    }

    /// The kind with the CRD default applied.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("Gateway")
    }

    /// Whether it names a Service (GAMMA, the mesh binding): core group, kind Service.
    pub fn is_service(&self) -> bool {
        self.kind() == "Service" && self.group().is_empty()
    }
}

/// `HTTPRoute.spec`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// Gateways and Services the route attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    /// Host names the route serves (on a Gateway; a Service parent ignores them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Rules; matched by Gateway API precedence, not in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<HttpRouteRule>,
    /// Other fields (experimental channel), kept verbatim.
    #[serde(flatten)]
    pub extra: OrderedMap<Opaque>,
}

/// `HTTPRouteRule`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// Rule name (unique in the route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Matches, OR'd; absent: one PathPrefix `/` match (the CRD's default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpRouteMatch>,
    /// Filters, applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
    /// Weighted backends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<HttpBackendRef>,
    /// `timeouts.request` and `timeouts.backendRequest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HttpRouteTimeouts>,
    /// `retry` (experimental channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<HttpRouteRetry>,
    /// Other fields (`sessionPersistence`), kept verbatim.
    #[serde(flatten)]
    pub extra: OrderedMap<Opaque>,
}

impl HttpRouteRule {
    /// The matches with the CRD default applied: absent is one PathPrefix `/` match.
    pub fn effective_matches(&self) -> Vec<HttpRouteMatch> {
        if self.matches.is_empty() {
            vec![HttpRouteMatch::default()]
        } else {
            self.matches.clone()
        }
    }
}

/// `HTTPRouteMatch`: every condition must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// Path match; absent: PathPrefix `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathMatch>,
    /// Header matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatch>,
    /// Query parameter matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<ValueMatch>,
    /// Method match (`GET`, `POST`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

impl HttpRouteMatch {
    /// The path match with the CRD defaults applied.
    pub fn path(&self) -> (PathMatchType, &str) {
        match &self.path {
            Some(p) => (p.kind(), p.value.as_deref().unwrap_or("/")),
            None => (PathMatchType::PathPrefix, "/"),
        }
    }
}

/// `HTTPPathMatch`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpPathMatch {
    /// `Exact`, `PathPrefix` (default) or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub match_type: Option<String>,
    /// The path (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl HttpPathMatch {
    /// The match type with the default applied (an unknown one, which the schema refuses,
    /// reads as PathPrefix).
    pub fn kind(&self) -> PathMatchType {
        match self.match_type.as_deref() {
            Some("Exact") => PathMatchType::Exact,
            Some("RegularExpression") => PathMatchType::RegularExpression,
            _ => PathMatchType::PathPrefix,
        }
    }
}

/// How a path is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathMatchType {
    /// The whole path.
    Exact,
    /// A prefix, element by element (`/foo` matches `/foo` and `/foo/bar`, not `/foobar`).
    PathPrefix,
    /// An RE2 regex over the whole path.
    RegularExpression,
}

/// `HTTPHeaderMatch` / `HTTPQueryParamMatch` / `GRPCHeaderMatch`: a name, a value, a type.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub match_type: Option<String>,
    /// Header or parameter name.
    #[serde(default)]
    pub name: String,
    /// The value.
    #[serde(default)]
    pub value: String,
}

impl ValueMatch {
    /// Whether the value is a regular expression (else exact).
    pub fn is_regex(&self) -> bool {
        self.match_type.as_deref() == Some("RegularExpression")
    }
}

/// `HTTPRouteFilter` (also the GRPCRoute filter, a subset).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteFilter {
    /// `RequestHeaderModifier`, `ResponseHeaderModifier`, `RequestMirror`,
    /// `RequestRedirect`, `URLRewrite`, `CORS`, `ExtensionRef`.
    #[serde(default, rename = "type")]
    pub filter_type: String,
    /// `RequestHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderFilter>,
    /// `ResponseHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderFilter>,
    /// `RequestMirror`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<RequestMirrorFilter>,
    /// `RequestRedirect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<RequestRedirectFilter>,
    /// `URLRewrite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<UrlRewriteFilter>,
    /// `CORS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsFilter>,
    /// `ExtensionRef`, `externalAuth` and whatever else, kept verbatim.
    #[serde(flatten)]
    pub extra: OrderedMap<Opaque>,
}

/// `HTTPHeaderFilter`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderFilter {
    /// Headers set (replacing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HeaderValuePair>,
    /// Headers added (appending).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HeaderValuePair>,
    /// Headers removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// `HTTPHeader`: a name and a value.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderValuePair {
    /// Header name.
    #[serde(default)]
    pub name: String,
    /// Header value.
    #[serde(default)]
    pub value: String,
}

/// `HTTPRequestMirrorFilter`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMirrorFilter {
    /// Where the copy goes.
    #[serde(default)]
    pub backend_ref: BackendObjectReference,
    /// Share of requests mirrored, 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    /// Share of requests mirrored as a fraction (GEP-3171).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<Fraction>,
}

impl RequestMirrorFilter {
    /// The mirrored percentage as Istio's `createMirrorFilter` computes it; `None`: absent,
    /// which is 100%.
    pub fn percentage(&self) -> Option<f64> {
        if let Some(f) = &self.fraction {
            let denominator = f.denominator.unwrap_or(100).max(1);
            return Some(100.0 * f64::from(f.numerator) / f64::from(denominator));
        }
        self.percent.map(f64::from)
    }
}

/// `Fraction`: numerator over denominator (default 100).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fraction {
    /// Numerator.
    #[serde(default)]
    pub numerator: u32,
    /// Denominator; absent: 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denominator: Option<u32>,
}

/// `HTTPRequestRedirectFilter`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRedirectFilter {
    /// `http` or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Host name of the Location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Path of the Location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
    /// Port of the Location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Status code; absent: 302 (the CRD's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u32>,
}

/// `HTTPPathModifier`: `ReplaceFullPath` or `ReplacePrefixMatch`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathModifier {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(default, rename = "type")]
    pub modifier_type: String,
    /// The new path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_full_path: Option<String>,
    /// What replaces the matched prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_prefix_match: Option<String>,
}

/// `HTTPURLRewriteFilter`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlRewriteFilter {
    /// The Host the backend gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The path the backend gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
}

/// `HTTPCORSFilter`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CorsFilter {
    /// Allowed origins (`*` wildcards).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<String>,
    /// `Access-Control-Allow-Credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// Allowed methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Allowed request headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Headers the browser may read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// Preflight cache, seconds (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u32>,
    /// Other fields, kept verbatim.
    #[serde(flatten)]
    pub extra: OrderedMap<Opaque>,
}

/// `BackendObjectReference`: a Service (default kind) or another kind by group.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendObjectReference {
    /// API group; absent or `""`: the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind; absent: `Service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name (for Istio's `Hostname` kind, the host itself).
    #[serde(default)]
    pub name: String,
    /// Namespace; absent: the route's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Port; required for a Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
}

impl BackendObjectReference {
    /// The group with the CRD default applied.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or("")
    }

    /// The kind with the CRD default applied.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("Service")
    }
}

/// `HTTPBackendRef`: a backend, its weight and its own filters.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpBackendRef {
    /// The backend.
    #[serde(flatten)]
    pub backend: BackendObjectReference,
    /// Weight; absent: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Filters applied when this backend is picked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
}

impl HttpBackendRef {
    /// The weight with the CRD default applied.
    pub fn weight(&self) -> u32 {
        self.weight.unwrap_or(1)
    }
}

/// `HTTPRouteTimeouts`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteTimeouts {
    /// The whole request, e.g. `10s`; `0s` disables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// Each request to a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<String>,
}

/// `HTTPRouteRetry` (experimental channel).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRetry {
    /// HTTP status codes that are retried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<u32>,
    /// Retries; absent: Istio uses 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Backoff between retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
}
