//! From a VirtualService `HTTPRoute` to a compiled [`Route`], as Istio's
//! `pilot/pkg/networking/core/route/route.go` translates one for Envoy: `TranslateRoute`
//! (headers, fault, CORS), `ApplyRedirect`, `ApplyDirectResponse`,
//! `applyHTTPRouteDestination` (rewrite, timeout, mirrors, weighted destinations).
//!
//! The checker has already refused what Istio rejects; the errors here are for a config
//! compiled without being checked, reported the same way.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use super::action::{
    AbortWith, Cors, DirectResponse, Fault, Forward, PathRewrite, Redirect, RedirectPath,
    RedirectPort, Route, RouteAction,
};
use super::policy::{ClusterPolicy, PolicyError};
use super::retry::RetryPolicy;
use super::{EndpointAddr, MirrorHeaders, MirrorPolicy, Upstream, WeightedUpstream};
use crate::config::grpc::grpc_status_code;
use crate::config::headers::{CompiledHeaders, HeaderOps};
use crate::config::hosts::{fqdn, labels_contain};
use crate::config::matcher::{MatchField, RegexRewrite, StringMatcher};
use crate::config::mirror_headers::MirrorHeaderEdits;
use crate::config::model::{
    CorsPolicy, Destination, HeaderOperations, Headers, HttpFaultInjection, HttpRedirect,
    HttpRoute, OrderedMap, Percent,
};
use crate::config::{ConfigSet, Diagnostic, Resource, codes, parse_duration};

/// Port used for a destination without `port.number` and no ServiceEntry port.
pub const DEFAULT_PORT: u16 = 80;

/// Where a route sits: its VirtualService, namespace and the VirtualService's annotations.
pub(super) struct RouteScope<'a> {
    pub set: &'a ConfigSet,
    pub resource: &'a Resource,
    pub namespace: &'a str,
    pub annotations: &'a OrderedMap<String>,
}

impl RouteScope<'_> {
    /// An error at `field` of the route's resource.
    pub(super) fn error(&self, field: String, message: String) -> Box<Diagnostic> {
        Box::new(
            Diagnostic::error(
                codes::INVALID_MATCH,
                message,
                self.set.file_name(self.resource).to_owned(),
                self.set.line_of(self.resource, &field),
            )
            .with_resource(self.resource.display_name())
            .with_field(field),
        )
    }
}

type Compiled<T> = Result<T, Box<Diagnostic>>;

/// Compiles what route `route` (at field path `base`) does.
pub(super) fn compile_route(
    scope: &RouteScope<'_>,
    base: &str,
    route: &HttpRoute,
    resolver: &mut UpstreamResolver<'_>,
) -> Compiled<Route> {
    let headers = RouteHeaders::compile(scope, base, route.headers.as_ref())?;
    let action = if let Some(redirect) = &route.redirect {
        RouteAction::Redirect(compile_redirect(redirect))
    } else if let Some(direct) = &route.direct_response {
        RouteAction::DirectResponse(compile_direct_response(scope, base, direct)?)
    } else {
        RouteAction::Forward(compile_forward(scope, base, route, &headers, resolver)?)
    };
    Ok(Route {
        fault: route
            .fault
            .as_ref()
            .map(|f| compile_fault(scope, base, f))
            .transpose()?
            .flatten(),
        cors: route
            .cors_policy
            .as_ref()
            .map(|c| compile_cors(scope, base, c))
            .transpose()?,
        action,
        response_headers: headers.response,
    })
}

/// A route's own `headers`, compiled.
struct RouteHeaders {
    request: HeaderOps,
    response: HeaderOps,
    /// A `:authority`/`host` entry of `headers.request`: a host rewrite.
    authority: Option<String>,
}

impl RouteHeaders {
    fn compile(scope: &RouteScope<'_>, base: &str, headers: Option<&Headers>) -> Compiled<Self> {
        let side = |ops: Option<&HeaderOperations>, at: &str| -> Compiled<CompiledHeaders> {
            match ops {
                Some(ops) => HeaderOps::compile(ops, &format!("{base}.headers.{at}"))
                    .map_err(|e| scope.error(format!("{base}.headers.{at}"), e.to_string())),
                None => Ok(CompiledHeaders::default()),
            }
        };
        let request = side(headers.and_then(|h| h.request.as_ref()), "request")?;
        let response = side(headers.and_then(|h| h.response.as_ref()), "response")?;
        Ok(Self {
            request: request.ops,
            response: response.ops,
            authority: request.authority,
        })
    }
}

fn compile_forward(
    scope: &RouteScope<'_>,
    base: &str,
    route: &HttpRoute,
    headers: &RouteHeaders,
    resolver: &mut UpstreamResolver<'_>,
) -> Compiled<Forward> {
    let rewrite = route.rewrite.as_ref();
    let path_rewrite = match rewrite {
        Some(r) => match (&r.uri_regex_rewrite, &r.uri) {
            (Some(regex), _) => Some(PathRewrite::Regex(
                RegexRewrite::compile(
                    regex.regex.as_deref().unwrap_or_default(),
                    regex.rewrite.as_deref().unwrap_or_default(),
                    &format!("{base}.rewrite.uriRegexRewrite"),
                )
                .map_err(|e| {
                    scope.error(format!("{base}.rewrite.uriRegexRewrite"), e.to_string())
                })?,
            )),
            (None, Some(uri)) if !uri.is_empty() => Some(PathRewrite::Prefix(uri.clone())),
            _ => None,
        },
        None => None,
    };
    // rewrite.authority wins over an authority set through headers (route.go line 654).
    let route_authority = rewrite
        .and_then(|r| r.authority.clone())
        .filter(|a| !a.is_empty())
        .or_else(|| headers.authority.clone());
    let destinations =
        compile_destinations(scope, base, route, headers, route_authority, resolver)?;
    // Istio's default policy drops previous-hosts for a lone destination that hashes.
    let hashes = destinations.len() == 1
        && destinations
            .first()
            .is_some_and(|d| d.upstream.policy.hash.is_some());
    let retry = RetryPolicy::compile(route.retries.as_ref(), hashes)
        .map_err(|e| scope.error(format!("{base}.retries"), e.to_string()))?;
    let timeout = match &route.timeout {
        Some(t) => {
            let d = parse_duration(t)
                .map_err(|e| scope.error(format!("{base}.timeout"), e.to_string()))?;
            // Envoy reads a zero route timeout as "no timeout".
            (!d.is_zero()).then_some(d)
        }
        None => None,
    };
    Ok(Forward {
        destinations: destinations.into(),
        mirrors: compile_mirrors(scope, base, route, resolver)?.into(),
        retry,
        path_rewrite,
        timeout,
    })
}

/// Weighted destinations with their header operations in Envoy's order: a lone
/// destination's operations are appended to the route's in one header parser (so its `set`
/// wins); several destinations each get a parser of their own that Envoy runs before the
/// route's (so the route's `set` wins). Istio: `processDestination` /
/// `processWeightedDestination`; Envoy: `WeightedClusterEntry::finalizeRequestHeaders`.
fn compile_destinations(
    scope: &RouteScope<'_>,
    base: &str,
    route: &HttpRoute,
    headers: &RouteHeaders,
    route_authority: Option<String>,
    resolver: &mut UpstreamResolver<'_>,
) -> Compiled<Vec<WeightedUpstream>> {
    let lone = route.route.len() == 1;
    let mut out = Vec::with_capacity(route.route.len());
    for (k, d) in route.route.iter().enumerate() {
        let own = RouteHeaders::compile(scope, &format!("{base}.route[{k}]"), d.headers.as_ref())?;
        let (request, response): (Vec<HeaderOps>, Vec<HeaderOps>) = if lone {
            (
                vec![headers.request.then(&own.request)],
                vec![headers.response.then(&own.response)],
            )
        } else {
            (
                vec![own.request.clone(), headers.request.clone()],
                vec![own.response.clone(), headers.response.clone()],
            )
        };
        let authority = route_authority.clone().or(own.authority);
        let authority = match authority {
            Some(a) => Some(HeaderValue::from_str(&a).map_err(|_| {
                scope.error(
                    format!("{base}.rewrite.authority"),
                    format!("`{a}` is not a valid authority"),
                )
            })?),
            None => None,
        };
        let upstream = resolver
            .upstream(&d.destination, scope.namespace)
            .map_err(|e| {
                scope.error(
                    format!("{base}.route[{k}].destination"),
                    policy_message(&d.destination, &e),
                )
            })?;
        let mut trace: Vec<String> = request
            .iter()
            .flat_map(|ops| ops.describe("request"))
            .chain(response.iter().flat_map(|ops| ops.describe("response")))
            .collect();
        trace.extend(connection_steps(&upstream));
        out.push(WeightedUpstream {
            upstream,
            weight: d.weight.unwrap_or(if lone { 100 } else { 0 }),
            request_headers: request.into_iter().filter(|o| !o.is_empty()).collect(),
            response_headers: response.into_iter().filter(|o| !o.is_empty()).collect(),
            authority,
            trace: trace.into(),
        });
    }
    Ok(out)
}

fn compile_mirrors(
    scope: &RouteScope<'_>,
    base: &str,
    route: &HttpRoute,
    resolver: &mut UpstreamResolver<'_>,
) -> Compiled<Vec<MirrorPolicy>> {
    let headers = MirrorHeaderEdits::for_route(scope.annotations, route.name.as_deref())
        .map_err(|e| e.to_string())
        .and_then(|edits| MirrorHeaders::from_edits(&edits))
        .map(Arc::new)
        .map_err(|message| scope.error("metadata.annotations".to_owned(), message))?;
    let mut mirrors = Vec::new();
    if let Some(m) = &route.mirror {
        let percent = route.mirror_percent_value();
        mirrors.push(MirrorPolicy {
            upstream: resolver
                .upstream(m, scope.namespace)
                .map_err(|e| scope.error(format!("{base}.mirror"), policy_message(m, &e)))?,
            fraction: fraction(percent, 100.0),
            headers: Arc::clone(&headers),
        });
    }
    for m in &route.mirrors {
        mirrors.push(MirrorPolicy {
            upstream: resolver
                .upstream(&m.destination, scope.namespace)
                .map_err(|e| {
                    scope.error(
                        format!("{base}.mirrors"),
                        policy_message(&m.destination, &e),
                    )
                })?,
            fraction: fraction(m.percentage.as_ref().map(|p| p.value), 100.0),
            headers: Arc::clone(&headers),
        });
    }
    Ok(mirrors)
}

/// What the route trace says of how the sidecar talks to `upstream`, when it is not plain
/// HTTP/1.1: the protocol Istio picked, the TLS it originates.
fn connection_steps(upstream: &Upstream) -> Vec<String> {
    let mut steps = Vec::new();
    let protocol = upstream.policy.protocol;
    if protocol != crate::config::protocol::UpstreamProtocol::Http1 {
        steps.push(format!("{}: {}", upstream.label, protocol.describe()));
    }
    if let Some(tls) = &upstream.policy.tls {
        steps.push(format!("{}: {}", upstream.label, tls.describe));
    }
    steps
}

/// The message for a DestinationRule policy the lab cannot use (the checker reports it at
/// the DestinationRule first).
fn policy_message(dest: &Destination, e: &PolicyError) -> String {
    format!("the DestinationRule of host `{}`: {e}", dest.host)
}

/// Percentage (absent: `absent`) → fraction clamped to 0..=1.
pub(super) fn fraction(percent: Option<f64>, absent: f64) -> f64 {
    (percent.unwrap_or(absent) / 100.0).clamp(0.0, 1.0)
}

/// `redirect`, as Istio's `ApplyRedirect` translates it.
fn compile_redirect(redirect: &HttpRedirect) -> Redirect {
    let status = match redirect.redirect_code {
        None | Some(0) | Some(301) => StatusCode::MOVED_PERMANENTLY,
        // 302, 303, 307 and 308 map to Envoy's codes; Istio translates no other code (the
        // route gets no action: `check` warns), so the lab answers with the code as written.
        Some(code) => u16::try_from(code)
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::MOVED_PERMANENTLY),
    };
    let port = match (redirect.port, redirect.derive_port.as_deref()) {
        (Some(p), _) => u16::try_from(p).map_or(RedirectPort::Keep, RedirectPort::Fixed),
        (None, Some("FROM_REQUEST_PORT")) => RedirectPort::FromRequest,
        _ => RedirectPort::Keep,
    };
    let path = match &redirect.prefix_rewrite {
        Some(prefix) => RedirectPath::Prefix(prefix.clone()),
        None => RedirectPath::Path(redirect.uri.clone().unwrap_or_default()),
    };
    Redirect {
        status,
        scheme: redirect.scheme.clone().filter(|s| !s.is_empty()),
        authority: redirect.authority.clone().filter(|a| !a.is_empty()),
        port,
        path,
    }
}

fn compile_direct_response(
    scope: &RouteScope<'_>,
    base: &str,
    direct: &crate::config::model::HttpDirectResponse,
) -> Compiled<DirectResponse> {
    let status = u16::try_from(direct.status)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| {
            scope.error(
                format!("{base}.directResponse.status"),
                format!("{} is not an HTTP status", direct.status),
            )
        })?;
    let body = match &direct.body {
        Some(b) => match (&b.string, &b.bytes) {
            (Some(s), _) => Bytes::from(s.clone()),
            (None, Some(encoded)) => Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|e| {
                        scope.error(
                            format!("{base}.directResponse.body.bytes"),
                            format!("body.bytes is not base64: {e}"),
                        )
                    })?,
            ),
            (None, None) => Bytes::new(),
        },
        None => Bytes::new(),
    };
    Ok(DirectResponse { status, body })
}

/// `fault`, as Istio's `TranslateFault` gives it to Envoy. A percentage that is absent is
/// 0%: Envoy then never injects the fault (Istio's API says so; istio/istio#36303).
fn compile_fault(
    scope: &RouteScope<'_>,
    base: &str,
    fault: &HttpFaultInjection,
) -> Compiled<Option<Fault>> {
    let share = |p: &Option<Percent>| fraction(p.as_ref().map(|p| p.value), 0.0);
    let delay = match &fault.delay {
        Some(d) => match &d.fixed_delay {
            Some(text) => {
                let duration = parse_duration(text).map_err(|e| {
                    scope.error(format!("{base}.fault.delay.fixedDelay"), e.to_string())
                })?;
                let share = match (&d.percentage, d.percent) {
                    (Some(p), _) => fraction(Some(p.value), 0.0),
                    (None, Some(percent)) => fraction(Some(f64::from(percent)), 0.0),
                    (None, None) => 0.0,
                };
                Some((duration, share))
            }
            // exponentialDelay: Istio drops the delay (its validation rejects it).
            None => None,
        },
        None => None,
    };
    let abort = match &fault.abort {
        Some(a) => {
            let with = match (a.http_status, &a.grpc_status) {
                (Some(code), _) => Some(AbortWith::Http(
                    u16::try_from(code)
                        .ok()
                        .and_then(|c| StatusCode::from_u16(c).ok())
                        .ok_or_else(|| {
                            scope.error(
                                format!("{base}.fault.abort.httpStatus"),
                                format!("{code} is not an HTTP status"),
                            )
                        })?,
                )),
                (None, Some(name)) => Some(AbortWith::Grpc(grpc_status_code(name).ok_or_else(
                    || {
                        scope.error(
                            format!("{base}.fault.abort.grpcStatus"),
                            format!("`{name}` is not a gRPC status name"),
                        )
                    },
                )?)),
                // http2Error: Istio drops the abort (its validation rejects it).
                (None, None) => None,
            };
            with.map(|w| (w, share(&a.percentage)))
        }
        None => None,
    };
    Ok((delay.is_some() || abort.is_some()).then_some(Fault { delay, abort }))
}

/// `corsPolicy`, as Istio's `TranslateCORSPolicy` gives it to Envoy's CORS filter.
fn compile_cors(scope: &RouteScope<'_>, base: &str, cors: &CorsPolicy) -> Compiled<Cors> {
    let field = format!("{base}.corsPolicy");
    let mut origins = Vec::new();
    if cors.allow_origins.is_empty() {
        // The deprecated list is read only when allowOrigins is absent; each is exact.
        origins.extend(
            cors.allow_origin
                .iter()
                .map(|o| StringMatcher::Exact(o.clone())),
        );
    } else {
        for (i, m) in cors.allow_origins.iter().enumerate() {
            let at = format!("{field}.allowOrigins[{i}]");
            origins.push(
                StringMatcher::compile(m, MatchField::AllowOrigin, &at)
                    .map_err(|e| scope.error(at, e.to_string()))?,
            );
        }
    }
    let joined = |list: &[String], at: &str| -> Compiled<Option<HeaderValue>> {
        if list.is_empty() {
            return Ok(None);
        }
        HeaderValue::from_str(&list.join(","))
            .map(Some)
            .map_err(|_| {
                scope.error(
                    format!("{field}.{at}"),
                    format!("{at} holds a character HTTP headers forbid"),
                )
            })
    };
    let max_age = match &cors.max_age {
        Some(text) => {
            let d = parse_duration(text)
                .map_err(|e| scope.error(format!("{field}.maxAge"), e.to_string()))?;
            Some(HeaderValue::from(d.as_secs()))
        }
        None => None,
    };
    Ok(Cors {
        origins,
        allow_methods: joined(&cors.allow_methods, "allowMethods")?,
        allow_headers: joined(&cors.allow_headers, "allowHeaders")?,
        expose_headers: joined(&cors.expose_headers, "exposeHeaders")?,
        max_age,
        allow_credentials: cors.allow_credentials.unwrap_or(false),
        forward_unmatched_preflights: cors.unmatched_preflights.as_deref() != Some("IGNORE"),
    })
}

/// The route a sidecar gives a host a ServiceEntry defines and no VirtualService routes:
/// everything to the service, no timeout (Istio's `BuildDefaultHTTPOutboundRoute`).
pub(super) fn default_route(upstream: Arc<Upstream>) -> Route {
    Route {
        fault: None,
        cors: None,
        action: RouteAction::Forward(Forward {
            destinations: Arc::new([WeightedUpstream::plain(upstream, 100)]),
            mirrors: Arc::new([]),
            path_rewrite: None,
            timeout: None::<Duration>,
            // BuildDefaultHTTPOutboundRoute: the mesh default, previous-hosts kept.
            retry: Some(RetryPolicy::istio_default(false)),
        }),
        response_headers: HeaderOps::default(),
    }
}

/// Resolves destinations to shared upstreams (one per host+subset+port, so round robin is
/// shared between routes that name the same destination).
pub(super) struct UpstreamResolver<'a> {
    pub set: &'a ConfigSet,
    pub cache: HashMap<(String, Option<String>, Option<u32>), Arc<Upstream>>,
}

impl UpstreamResolver<'_> {
    /// The shared upstream for `dest`, written in a resource of `namespace`, with the
    /// cluster policy its DestinationRule gives it.
    pub(super) fn upstream(
        &mut self,
        dest: &Destination,
        namespace: &str,
    ) -> Result<Arc<Upstream>, PolicyError> {
        let host = fqdn(&dest.host, namespace);
        let port = dest.port.as_ref().and_then(|p| p.number);
        let key = (host.clone(), dest.subset.clone(), port);
        if let Some(u) = self.cache.get(&key) {
            return Ok(Arc::clone(u));
        }
        // The cluster's port: the destination's, else the service's first (Istio's
        // GetDestinationCluster with a single-port service).
        let service_port = port.or_else(|| {
            self.set
                .service_entry_for(&host)
                .and_then(|(_, se)| se.spec.ports.first().map(|p| p.number))
        });
        let policy =
            ClusterPolicy::resolve(self.set, &host, dest.subset.as_deref(), service_port, port)?;
        let endpoints =
            resolve_endpoints(self.set, &host, &dest.host, dest.subset.as_deref(), port);
        let mut label = dest.host.clone();
        if let Some(p) = port {
            label.push_str(&format!(":{p}"));
        }
        if let Some(s) = &dest.subset {
            label.push_str(&format!("/{s}"));
        }
        let upstream = Arc::new(Upstream::with_policy(
            dest.host.clone(),
            dest.subset.clone(),
            port.and_then(|p| u16::try_from(p).ok()),
            label,
            endpoints,
            policy,
        ));
        self.cache.insert(key, Arc::clone(&upstream));
        Ok(upstream)
    }
}

/// Endpoints for a destination: the ServiceEntry endpoints whose labels contain the subset's
/// labels, on the ServiceEntry port matching `port`; with no ServiceEntry, the host itself
/// (an IP or a DNS name) on `port` (80 if absent).
pub fn resolve_endpoints(
    set: &ConfigSet,
    host_fqdn: &str,
    host_as_written: &str,
    subset: Option<&str>,
    port: Option<u32>,
) -> Vec<EndpointAddr> {
    let selector = subset.and_then(|s| set.subset_labels(host_fqdn, s));
    let Some((_, se)) = set.service_entry_for(host_fqdn) else {
        let port = port
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(DEFAULT_PORT);
        return vec![address(host_as_written, port)];
    };
    let se_port = match port {
        Some(n) => se.spec.ports.iter().find(|p| p.number == n),
        None => se.spec.ports.first(),
    };
    let service_port = port.or(se_port.map(|p| p.number));
    if se.spec.endpoints.is_empty() {
        // A DNS ServiceEntry without endpoints: the host itself is the address.
        let p = service_port
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(DEFAULT_PORT);
        return vec![address(host_as_written, p)];
    }
    se.spec
        .endpoints
        .iter()
        .filter(|ep| selector.is_none_or(|sel| labels_contain(&ep.labels, sel)))
        .filter_map(|ep| {
            let addr = ep.address.as_deref()?;
            let p = se_port
                .and_then(|sp| ep.ports.get(&sp.name).copied().or(sp.target_port))
                .or(service_port)?;
            Some(address(addr, u16::try_from(p).ok()?))
        })
        .collect()
}

fn address(host: &str, port: u16) -> EndpointAddr {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => EndpointAddr::Socket(std::net::SocketAddr::new(ip, port)),
        Err(_) => EndpointAddr::Dns {
            host: host.to_owned(),
            port,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions() {
        assert_eq!(fraction(None, 100.0), 1.0);
        assert_eq!(fraction(None, 0.0), 0.0);
        assert_eq!(fraction(Some(0.0), 100.0), 0.0);
        assert_eq!(fraction(Some(25.0), 100.0), 0.25);
        assert_eq!(fraction(Some(100.0), 100.0), 1.0);
    }
}
