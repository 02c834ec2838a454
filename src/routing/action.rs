//! What a matched route does, compiled from a VirtualService `HTTPRoute` as Istio translates
//! it into an Envoy route: the fault and CORS filters' per-route settings, then the router's
//! action (forward, redirect or direct response). This is the one model the engine, the route
//! trace, `check` and the editor read; the pure parts of each action (a redirect's Location,
//! a rewritten path, an allowed origin) are computed here so they can be tested alone.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use super::{MirrorPolicy, WeightedUpstream};
use crate::config::headers::HeaderOps;
use crate::config::matcher::{RegexRewrite, StringMatcher};

/// A compiled route: the filters' settings and the router's action.
#[derive(Debug)]
pub struct Route {
    /// `fault`: delay and abort, run first (Istio puts the fault filter before CORS).
    pub fault: Option<Fault>,
    /// `corsPolicy`: run after the fault filter.
    pub cors: Option<Cors>,
    /// What the router does.
    pub action: RouteAction,
    /// `headers.response` of the route: also applied to the lab's own answers (a fault
    /// abort, a 503 or 504), as Envoy applies route response headers to local replies.
    pub response_headers: HeaderOps,
}

/// What the router does with a request.
#[derive(Debug)]
pub enum RouteAction {
    /// Forward to a weighted destination, copying to the mirrors.
    Forward(Forward),
    /// Answer with a redirect.
    Redirect(Redirect),
    /// Answer with a fixed response.
    DirectResponse(DirectResponse),
}

impl RouteAction {
    /// The action's kind, for the trace and the stats.
    pub fn kind(&self) -> ActionKind {
        match self {
            RouteAction::Forward(_) => ActionKind::Forward,
            RouteAction::Redirect(_) => ActionKind::Redirect,
            RouteAction::DirectResponse(_) => ActionKind::DirectResponse,
        }
    }
}

/// Which kind of action answered a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Forwarded to a primary destination.
    #[default]
    Forward,
    /// Answered with a redirect.
    Redirect,
    /// Answered with a direct response.
    DirectResponse,
    /// Answered by the fault filter's abort.
    FaultAbort,
    /// A CORS preflight answered by the CORS filter.
    CorsPreflight,
}

impl ActionKind {
    /// Stable lowercase name used in reports and the UI.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Forward => "forward",
            ActionKind::Redirect => "redirect",
            ActionKind::DirectResponse => "direct_response",
            ActionKind::FaultAbort => "fault_abort",
            ActionKind::CorsPreflight => "cors_preflight",
        }
    }
}

/// A forwarding route.
#[derive(Debug)]
pub struct Forward {
    /// Weighted primary destinations, each with the header operations that apply when it
    /// is picked (its own and the route's, in Envoy's order).
    pub destinations: Arc<[WeightedUpstream]>,
    /// Mirror policies, in config order.
    pub mirrors: Arc<[MirrorPolicy]>,
    /// `rewrite.uri` or `rewrite.uriRegexRewrite`.
    pub path_rewrite: Option<PathRewrite>,
    /// `timeout`: from the end of the client's request to the end of the primary's answer;
    /// also each shadow's timeout. `None`: no timeout (Istio's default for sidecars).
    pub timeout: Option<Duration>,
    /// `retries` (absent: Istio's default policy; `None`: `attempts: 0`, no retries).
    pub retry: Option<super::retry::RetryPolicy>,
}

/// A path rewrite before forwarding.
#[derive(Debug, Clone)]
pub enum PathRewrite {
    /// `rewrite.uri`: Envoy's `prefix_rewrite`, which replaces the part of the path the route
    /// matched (the prefix of a prefix match, the whole path of an exact or regex match, the
    /// leading `/` when the route has no uri match) and keeps the rest, query included.
    Prefix(String),
    /// `rewrite.uriRegexRewrite`: every match in the path (not the query) replaced.
    Regex(RegexRewrite),
}

impl PathRewrite {
    /// The rewritten target for `path_and_query`, where the route matched its first
    /// `matched` bytes; `None` when the path stays as it is.
    pub fn apply(&self, path_and_query: &str, matched: usize) -> Option<String> {
        match self {
            PathRewrite::Prefix(replacement) => {
                let rest = path_and_query.get(matched..).unwrap_or("");
                Some(format!("{replacement}{rest}"))
            }
            PathRewrite::Regex(regex) => {
                let (path, query) = split_query(path_and_query);
                let path = regex.apply(path)?;
                Some(match query {
                    Some(q) => format!("{path}?{q}"),
                    None => path,
                })
            }
        }
    }
}

/// `/p?q` → (`/p`, `Some("q")`).
pub fn split_query(path_and_query: &str) -> (&str, Option<&str>) {
    match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    }
}

/// Where a redirect's port comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectPort {
    /// No `port_redirect`: the Location keeps the Host's port (`derivePort:
    /// FROM_PROTOCOL_DEFAULT`, no port, or the scheme's default port, which Istio drops).
    Keep,
    /// `port: N`.
    Fixed(u16),
    /// `derivePort: FROM_REQUEST_PORT`: the service port the client addressed.
    FromRequest,
}

/// Where a redirect's path comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectPath {
    /// `uri`: the path (a `?` in it replaces the query; without one the request's query is
    /// kept). Empty: the request's own path and query.
    Path(String),
    /// `prefixRewrite`: the matched prefix replaced, as a forwarding rewrite does.
    Prefix(String),
}

/// A redirect route, as Istio's `ApplyRedirect` translates it.
#[derive(Debug, Clone)]
pub struct Redirect {
    /// 301 unless `redirectCode` says otherwise.
    pub status: StatusCode,
    /// `scheme`, if set.
    pub scheme: Option<String>,
    /// `authority`, if set.
    pub authority: Option<String>,
    /// The port.
    pub port: RedirectPort,
    /// The path.
    pub path: RedirectPath,
}

/// What a request looks like to a redirect or a direct response's Location.
#[derive(Debug, Clone, Copy)]
pub struct RequestUrl<'a> {
    /// The scheme the client used.
    pub scheme: &'a str,
    /// The Host as the client sent it, port included.
    pub authority: &'a str,
    /// Path and query.
    pub path_and_query: &'a str,
    /// The service port the client addressed.
    pub port: u16,
}

impl Redirect {
    /// The Location, as Envoy's `Http::Utility::newUri` builds it; the route matched the first
    /// `matched` bytes of the path.
    pub fn location(&self, req: &RequestUrl<'_>, matched: usize) -> String {
        let scheme = self.scheme.as_deref().unwrap_or(req.scheme);
        let port = match self.port {
            RedirectPort::Keep => None,
            RedirectPort::Fixed(p) => Some(p),
            RedirectPort::FromRequest => Some(req.port),
        }
        // Istio drops a port that is the scheme's default (ApplyRedirect).
        .filter(|p| !matches!((scheme, *p), ("http", 80) | ("https", 443)));
        let host = match &self.authority {
            Some(authority) => authority.clone(),
            None => {
                let (name, request_port) = split_port(req.authority);
                // Envoy drops the Host's port when a port is set, or when the scheme changes
                // and the port is the old scheme's default (processRequestHost).
                let drop = port.is_some()
                    || (scheme != req.scheme
                        && matches!(
                            (req.scheme, request_port),
                            ("http", Some("80")) | ("https", Some("443"))
                        ));
                match request_port {
                    Some(p) if !drop => format!("{name}:{p}"),
                    _ => name.to_owned(),
                }
            }
        };
        let port = port.map_or(String::new(), |p| format!(":{p}"));
        let path = match &self.path {
            RedirectPath::Path(p) if p.is_empty() => req.path_and_query.to_owned(),
            RedirectPath::Path(p) if p.contains('?') => p.clone(),
            RedirectPath::Path(p) => match split_query(req.path_and_query).1 {
                Some(q) => format!("{p}?{q}"),
                None => p.clone(),
            },
            RedirectPath::Prefix(prefix) => PathRewrite::Prefix(prefix.clone())
                .apply(req.path_and_query, matched)
                .unwrap_or_else(|| req.path_and_query.to_owned()),
        };
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("{scheme}://{host}{port}{slash}{path}")
    }
}

/// `name:port` → (`name`, `Some("port")`); `[::1]:80` → (`[::1]`, `Some("80")`).
fn split_port(authority: &str) -> (&str, Option<&str>) {
    match authority.rsplit_once(':') {
        Some((name, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!name.contains(':') || name.ends_with(']')) =>
        {
            (name, Some(port))
        }
        _ => (authority, None),
    }
}

/// A direct response route.
#[derive(Debug, Clone)]
pub struct DirectResponse {
    /// The status.
    pub status: StatusCode,
    /// The body (`body.string`, or `body.bytes` decoded); empty when absent.
    pub body: Bytes,
}

impl DirectResponse {
    /// Envoy adds a Location with the request's own URL to a 201 or 3xx direct response.
    pub fn location(&self, req: &RequestUrl<'_>) -> Option<String> {
        let code = self.status.as_u16();
        (code == 201 || (300..400).contains(&code))
            .then(|| format!("{}://{}{}", req.scheme, req.authority, req.path_and_query))
    }
}

/// `fault`, as Istio's `TranslateFault` gives it to Envoy's fault filter.
#[derive(Debug, Clone)]
pub struct Fault {
    /// `delay.fixedDelay` and the share of requests delayed.
    pub delay: Option<(Duration, f64)>,
    /// `abort` and the share of requests aborted.
    pub abort: Option<(AbortWith, f64)>,
}

/// What an abort answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortWith {
    /// `httpStatus`.
    Http(StatusCode),
    /// `grpcStatus`, as its numeric code.
    Grpc(u32),
}

/// `corsPolicy`, as Istio's `TranslateCORSPolicy` gives it to Envoy's CORS filter.
#[derive(Debug, Clone)]
pub struct Cors {
    /// `allowOrigins` (or the deprecated exact `allowOrigin`).
    pub origins: Vec<StringMatcher>,
    /// `allowMethods`, joined with `,`.
    pub allow_methods: Option<HeaderValue>,
    /// `allowHeaders`, joined with `,`.
    pub allow_headers: Option<HeaderValue>,
    /// `exposeHeaders`, joined with `,`.
    pub expose_headers: Option<HeaderValue>,
    /// `maxAge` in whole seconds.
    pub max_age: Option<HeaderValue>,
    /// `allowCredentials`.
    pub allow_credentials: bool,
    /// `unmatchedPreflights` is not IGNORE: a preflight from an origin that is not allowed
    /// goes upstream like any request.
    pub forward_unmatched_preflights: bool,
}

impl Cors {
    /// Envoy's `isOriginAllowed`: a matcher that matches the origin, or `*` itself.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.origins
            .iter()
            .any(|m| m.matches("*", false) || m.matches(origin, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url<'a>(authority: &'a str, path: &'a str) -> RequestUrl<'a> {
        RequestUrl {
            scheme: "http",
            authority,
            path_and_query: path,
            port: 9080,
        }
    }

    fn redirect(path: RedirectPath, port: RedirectPort) -> Redirect {
        Redirect {
            status: StatusCode::MOVED_PERMANENTLY,
            scheme: None,
            authority: None,
            port,
            path,
        }
    }

    #[test]
    fn prefix_rewrites_replace_what_the_route_matched_and_keep_the_query() {
        // config_impl.cc currentUrlPathAfterRewriteWithMatchedPath.
        let r = PathRewrite::Prefix("/bar".into());
        assert_eq!(r.apply("/foo/x?q=1", 4).as_deref(), Some("/bar/x?q=1"));
        assert_eq!(r.apply("/foobar", 4).as_deref(), Some("/barbar"));
        // An exact match replaces the whole path, keeping the query.
        assert_eq!(r.apply("/login?x=1", 6).as_deref(), Some("/bar?x=1"));
        // No uri match: Istio matches prefix "/", so only the leading slash is replaced.
        assert_eq!(
            PathRewrite::Prefix("/v2".into())
                .apply("/foo", 1)
                .as_deref(),
            Some("/v2foo")
        );
    }

    #[test]
    fn redirect_locations_follow_envoys_new_uri() {
        let keep = RedirectPort::Keep;
        let r = redirect(RedirectPath::Path("/new".into()), keep);
        assert_eq!(
            r.location(&url("svc:8080", "/old?a=1"), 4),
            "http://svc:8080/new?a=1"
        );
        let r = redirect(RedirectPath::Path("/new?b=2".into()), keep);
        assert_eq!(r.location(&url("svc", "/old?a=1"), 4), "http://svc/new?b=2");
        let r = redirect(RedirectPath::Path(String::new()), keep);
        assert_eq!(
            r.location(&url("svc", "/same?a=1"), 5),
            "http://svc/same?a=1"
        );
        let mut r = redirect(RedirectPath::Path("/x".into()), keep);
        r.authority = Some("other".into());
        assert_eq!(r.location(&url("svc:8080", "/"), 1), "http://other/x");
        let mut r = redirect(RedirectPath::Path("/x".into()), keep);
        r.scheme = Some("https".into());
        assert_eq!(r.location(&url("svc:80", "/"), 1), "https://svc/x");
        let r = redirect(RedirectPath::Path("/x".into()), RedirectPort::Fixed(8443));
        assert_eq!(r.location(&url("svc:8080", "/"), 1), "http://svc:8443/x");
        let r = redirect(RedirectPath::Path("/x".into()), RedirectPort::FromRequest);
        assert_eq!(r.location(&url("svc", "/"), 1), "http://svc:9080/x");
        let r = redirect(RedirectPath::Path("/x".into()), RedirectPort::Fixed(80));
        assert_eq!(
            r.location(&url("svc:8080", "/"), 1),
            "http://svc:8080/x",
            "80 is dropped for http"
        );
        let r = redirect(RedirectPath::Prefix("/v2".into()), keep);
        assert_eq!(r.location(&url("svc", "/v1/a?q"), 3), "http://svc/v2/a?q");
    }

    #[test]
    fn direct_responses_with_201_or_3xx_carry_the_request_url() {
        let d = |code| DirectResponse {
            status: StatusCode::from_u16(code).expect("valid test status"),
            body: Bytes::new(),
        };
        assert_eq!(
            d(302).location(&url("svc:1", "/p?q")).as_deref(),
            Some("http://svc:1/p?q")
        );
        assert_eq!(
            d(201).location(&url("svc", "/")).as_deref(),
            Some("http://svc/")
        );
        assert_eq!(d(200).location(&url("svc", "/")), None);
    }
}
