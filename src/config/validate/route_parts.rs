//! The parts of an HTTP route besides its destinations, as Istio validates them: header
//! operations, retries, fault injection, redirect, direct response, rewrite and CORS
//! (istio/istio `pkg/config/validation/validation.go`, `virtualservice.go`,
//! `agent/validation.go` `ValidateHTTPRetry`).

use super::super::duration::{is_whole_seconds, parse_duration};
use super::super::grpc::grpc_status_code;
use super::super::lines::push_key;
use super::super::matcher::{MatchField, RegexRewrite, StringMatcher};
use super::super::model::{
    CorsPolicy, HeaderOperations, Headers, HttpFaultInjection, HttpRedirect, HttpRetry, HttpRoute,
    Percent,
};
use super::super::names::{
    HeaderOperation, is_authority_header, validate_cors_header_name, validate_header_value,
    validate_operation_header_name,
};
use super::super::re2;
use super::super::retry_on::{RetryOn, status_code};
use super::super::{Resource, codes};
use super::Checker;

/// The methods a CORS policy may allow (Go's `net/http` methods and `*`).
const CORS_METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

impl Checker<'_> {
    /// A duration field, as Istio reads and validates it.
    pub(super) fn duration(
        &mut self,
        r: &Resource,
        field: &str,
        text: &str,
    ) -> Option<std::time::Duration> {
        match parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    codes::INVALID_DURATION,
                    r,
                    field,
                    e.to_string(),
                    Some("Istio reads durations as Go does: 1ms or more, in whole milliseconds, e.g. 250ms, 1.5s, 1m30s".into()),
                );
                None
            }
        }
    }

    pub(super) fn route_parts(&mut self, r: &Resource, base: &str, route: &HttpRoute) {
        if let Some(h) = &route.headers {
            self.header_operations(r, &format!("{base}.headers"), h);
        }
        self.authority_set_once(r, base, route);
        if let Some(cors) = &route.cors_policy {
            self.cors(r, &format!("{base}.corsPolicy"), cors);
        }
        if let Some(fault) = &route.fault {
            self.fault(r, &format!("{base}.fault"), fault);
        }
        if let Some(redirect) = &route.redirect {
            self.redirect(r, &format!("{base}.redirect"), redirect, route);
        }
        if let Some(dr) = &route.direct_response {
            let field = format!("{base}.directResponse");
            self.http_status(
                r,
                &format!("{field}.status"),
                i64::from(dr.status),
                "status",
            );
            let size = dr.body.as_ref().map_or(0, |b| {
                b.string.as_ref().map_or(0, String::len) + b.bytes.as_ref().map_or(0, String::len)
            });
            if let Some(b) = &dr.body
                && b.string.is_some()
                && b.bytes.is_some()
            {
                self.refuse(
                    codes::INVALID_DIRECT_RESPONSE,
                    r,
                    &format!("{field}.body"),
                    "a body is either `string` or `bytes`, not both",
                );
            }
            if size > 1 << 20 {
                self.refuse(
                    codes::INVALID_DIRECT_RESPONSE,
                    r,
                    &format!("{field}.body"),
                    "a direct response body must be under 1 MB; Istio refuses larger ones",
                );
            } else if size > 100 << 10 {
                self.warning(
                    codes::ISTIO_WARNING,
                    r,
                    &format!("{field}.body"),
                    "a direct response body over 100 KB may slow Istio's control plane".into(),
                    None,
                );
            }
        }
        if let Some(retries) = &route.retries {
            self.retries(r, &format!("{base}.retries"), retries);
        }
        if let Some(rw) = &route.rewrite {
            let field = format!("{base}.rewrite");
            let uri = rw.uri.as_deref().unwrap_or("");
            let authority = rw.authority.as_deref().unwrap_or("");
            if !uri.is_empty() && rw.uri_regex_rewrite.is_some() {
                self.refuse(
                    codes::INVALID_REWRITE,
                    r,
                    &field,
                    "a rewrite has either `uri` or `uriRegexRewrite`, not both",
                );
            } else if uri.is_empty() && rw.uri_regex_rewrite.is_none() && authority.is_empty() {
                self.refuse(
                    codes::INVALID_REWRITE,
                    r,
                    &field,
                    "a rewrite must set `uri`, `uriRegexRewrite` or `authority`",
                );
            } else if let Some(rr) = &rw.uri_regex_rewrite {
                // The builder the route table compiles the rewrite with.
                if let Err(e) = RegexRewrite::compile(
                    rr.regex.as_deref().unwrap_or(""),
                    rr.rewrite.as_deref().unwrap_or(""),
                    &format!("{field}.uriRegexRewrite"),
                ) {
                    self.matcher_error(r, e);
                }
            }
        }
    }

    /// `headers.request` and `headers.response` of a route or a destination.
    pub(super) fn header_operations(&mut self, r: &Resource, base: &str, headers: &Headers) {
        for (side, ops) in [
            ("request", &headers.request),
            ("response", &headers.response),
        ] {
            let Some(ops) = ops else { continue };
            self.header_operation_set(r, &format!("{base}.{side}"), ops, side == "request");
        }
    }

    fn header_operation_set(
        &mut self,
        r: &Resource,
        base: &str,
        ops: &HeaderOperations,
        request: bool,
    ) {
        let kind = if request {
            HeaderOperation::RequestSet
        } else {
            HeaderOperation::Other
        };
        for (op, map) in [("set", &ops.set), ("add", &ops.add)] {
            for (name, value) in map {
                let field = push_key(&format!("{base}.{op}"), name);
                if let Err(e) = validate_operation_header_name(name, kind) {
                    self.refuse(codes::INVALID_HEADER, r, &field, e.to_string());
                }
                if let Err(e) = validate_header_value(value) {
                    self.refuse(codes::INVALID_HEADER, r, &field, e.to_string());
                }
            }
        }
        for (i, name) in ops.remove.iter().enumerate() {
            if let Err(e) = validate_operation_header_name(name, HeaderOperation::Other) {
                self.refuse(
                    codes::INVALID_HEADER,
                    r,
                    &format!("{base}.remove[{i}]"),
                    e.to_string(),
                );
            }
        }
    }

    /// The authority may be rewritten in one place only (`validateAuthorityRewrite`).
    fn authority_set_once(&mut self, r: &Resource, base: &str, route: &HttpRoute) {
        let mut current = route
            .rewrite
            .as_ref()
            .and_then(|rw| rw.authority.clone())
            .unwrap_or_default();
        let Some(request) = route.headers.as_ref().and_then(|h| h.request.as_ref()) else {
            return;
        };
        for (op, map) in [("set", &request.set), ("add", &request.add)] {
            for (name, value) in map.iter().filter(|(k, _)| is_authority_header(k)) {
                if !current.is_empty() {
                    self.refuse(
                        codes::INVALID_HEADER,
                        r,
                        &push_key(&format!("{base}.headers.request.{op}"), name),
                        format!("the authority is set twice (`{current}`, then `{value}`); Istio allows one place only"),
                    );
                    return;
                }
                current.clone_from(value);
            }
        }
    }

    fn cors(&mut self, r: &Resource, base: &str, cors: &CorsPolicy) {
        for (i, origin) in cors.allow_origins.iter().enumerate() {
            let field = format!("{base}.allowOrigins[{i}]");
            if let Err(e) = StringMatcher::compile(origin, MatchField::AllowOrigin, &field) {
                self.matcher_error(r, e);
            }
        }
        for (i, m) in cors.allow_methods.iter().enumerate() {
            if !CORS_METHODS.contains(&m.as_str()) {
                self.refuse(
                    codes::INVALID_CORS,
                    r,
                    &format!("{base}.allowMethods[{i}]"),
                    format!("`{m}` is not an HTTP method Istio knows (GET, POST, ... or *)"),
                );
            }
        }
        for (list, names) in [
            ("allowHeaders", &cors.allow_headers),
            ("exposeHeaders", &cors.expose_headers),
        ] {
            for (i, name) in names.iter().enumerate() {
                if let Err(e) = validate_cors_header_name(name) {
                    self.refuse(
                        codes::INVALID_HEADER,
                        r,
                        &format!("{base}.{list}[{i}]"),
                        e.to_string(),
                    );
                }
            }
        }
        if let Some(max_age) = &cors.max_age {
            let field = format!("{base}.maxAge");
            if let Some(d) = self.duration(r, &field, max_age)
                && !is_whole_seconds(d)
            {
                self.refuse(
                    codes::INVALID_CORS,
                    r,
                    &field,
                    "`maxAge` is accurate to seconds only; Istio refuses a fraction of a second",
                );
            }
        }
        if let Some(u) = &cors.unmatched_preflights {
            const ALLOWED: [&str; 3] = ["UNSPECIFIED", "FORWARD", "IGNORE"];
            if !ALLOWED.contains(&u.as_str()) {
                self.enum_error(r, &format!("{base}.unmatchedPreflights"), u, &ALLOWED);
            }
        }
    }

    fn fault(&mut self, r: &Resource, base: &str, fault: &HttpFaultInjection) {
        if fault.abort.is_none() && fault.delay.is_none() {
            self.refuse(
                codes::INVALID_FAULT,
                r,
                base,
                "fault injection needs an `abort`, a `delay` or both",
            );
        }
        if let Some(abort) = &fault.abort {
            let field = format!("{base}.abort");
            if let Some(p) = &abort.percentage {
                self.fault_percent(r, &format!("{field}.percentage.value"), p);
            }
            let types = [
                abort.http_status.is_some(),
                abort.grpc_status.is_some(),
                abort.http2_error.is_some(),
            ];
            match types.iter().filter(|t| **t).count() {
                0 => self.warning(codes::ISTIO_WARNING, r, &field, "abort is configured, but without httpStatus, grpcStatus or http2Error it aborts nothing".into(), None),
                1 => {}
                _ => self.refuse(codes::INVALID_FAULT, r, &field, "an abort has one of `httpStatus`, `grpcStatus` and `http2Error`"),
            }
            if let Some(s) = abort.http_status {
                self.http_status(
                    r,
                    &format!("{field}.httpStatus"),
                    i64::from(s),
                    "abort status",
                );
            }
            if let Some(g) = &abort.grpc_status
                && grpc_status_code(g).is_none()
            {
                self.error(
                    codes::INVALID_FAULT,
                    r,
                    &format!("{field}.grpcStatus"),
                    format!("gRPC status `{g}` is not one Istio knows"),
                    Some("use a name such as NOT_FOUND or UNAVAILABLE".into()),
                );
            }
            if abort.http2_error.is_some() {
                self.refuse(
                    codes::INVALID_FAULT,
                    r,
                    &format!("{field}.http2Error"),
                    "Istio does not support HTTP/2 abort fault injection yet",
                );
            }
        }
        if let Some(delay) = &fault.delay {
            let field = format!("{base}.delay");
            if let Some(p) = &delay.percentage {
                self.fault_percent(r, &format!("{field}.percentage.value"), p);
            }
            if delay.fixed_delay.is_some() && delay.exponential_delay.is_some() {
                self.refuse(
                    codes::INVALID_FAULT,
                    r,
                    &field,
                    "a delay has either `fixedDelay` or `exponentialDelay`, not both",
                );
            }
            if let Some(d) = &delay.fixed_delay {
                self.duration(r, &format!("{field}.fixedDelay"), d);
            }
            if let Some(d) = &delay.exponential_delay {
                self.duration(r, &format!("{field}.exponentialDelay"), d);
                self.refuse(
                    codes::INVALID_FAULT,
                    r,
                    &format!("{field}.exponentialDelay"),
                    "Istio does not support `exponentialDelay` yet",
                );
            }
        }
    }

    /// A fault's share of requests: 0, or 0.0001 to 100 (`validatePercentage`).
    fn fault_percent(&mut self, r: &Resource, field: &str, p: &Percent) {
        let v = p.value;
        if !(0.0..=100.0).contains(&v) || (v > 0.0 && v < 0.0001) {
            self.error(
                codes::PERCENTAGE_RANGE,
                r,
                field,
                format!("percentage {v} is neither 0 nor in 0.0001..100"),
                None,
            );
        }
    }

    fn http_status(&mut self, r: &Resource, field: &str, status: i64, what: &str) {
        if !(200..=600).contains(&status) {
            let code = if what == "status" {
                codes::INVALID_DIRECT_RESPONSE
            } else {
                codes::INVALID_FAULT
            };
            self.refuse(
                code,
                r,
                field,
                format!("HTTP {what} {status} is outside 200..599"),
            );
        }
    }

    fn redirect(&mut self, r: &Resource, base: &str, redirect: &HttpRedirect, route: &HttpRoute) {
        let uri = redirect.uri.as_deref().unwrap_or("");
        let prefix = redirect.prefix_rewrite.as_deref().unwrap_or("");
        let problem = if !uri.is_empty() && !prefix.is_empty() {
            Some("a redirect has either `uri` or `prefixRewrite`, not both".to_owned())
        } else if !prefix.is_empty()
            && route
                .matches
                .iter()
                .any(|m| m.uri.as_ref().is_some_and(|u| u.prefix.is_none()))
        {
            Some(
                "`prefixRewrite` needs every `uri` match of the route to be a prefix match"
                    .to_owned(),
            )
        } else if uri.is_empty()
            && prefix.is_empty()
            && redirect.authority.as_deref().unwrap_or("").is_empty()
            && redirect.port.is_none()
            && redirect.derive_port.is_none()
            && redirect.scheme.as_deref().unwrap_or("").is_empty()
        {
            Some("a redirect must set a uri, prefixRewrite, authority, scheme or port".to_owned())
        } else if let Some(code) = redirect
            .redirect_code
            .filter(|c| *c != 0 && !(300..=399).contains(c))
        {
            Some(format!("redirect code {code} is not a 3xx status"))
        } else if let Some(s) = redirect
            .scheme
            .as_deref()
            .filter(|s| !s.is_empty() && *s != "http" && *s != "https")
        {
            Some(format!("redirect scheme `{s}` is neither http nor https"))
        } else {
            redirect
                .port
                .filter(|p| *p > 65535)
                .map(|p| format!("redirect port {p} is outside 1..65535"))
        };
        if let Some(message) = problem {
            self.refuse(codes::INVALID_REDIRECT, r, base, message);
        }
        if redirect.port.is_some() && redirect.derive_port.is_some() {
            self.refuse(
                codes::INVALID_REDIRECT,
                r,
                base,
                "a redirect has either `port` or `derivePort`, not both",
            );
        }
        if let Some(d) = &redirect.derive_port {
            const ALLOWED: [&str; 2] = ["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"];
            if !ALLOWED.contains(&d.as_str()) {
                self.enum_error(r, &format!("{base}.derivePort"), d, &ALLOWED);
            }
        }
    }

    fn retries(&mut self, r: &Resource, base: &str, retries: &HttpRetry) {
        let attempts = retries.attempts.unwrap_or(0);
        if attempts < 0 {
            self.refuse(
                codes::INVALID_RETRIES,
                r,
                &format!("{base}.attempts"),
                "retry attempts cannot be negative",
            );
        }
        if attempts == 0
            && (retries.per_try_timeout.is_some()
                || retries.retry_on.as_deref().is_some_and(|s| !s.is_empty())
                || retries.retry_remote_localities.is_some())
        {
            self.error(codes::INVALID_RETRIES, r, base, "a retry policy with `attempts: 0` (retries disabled) cannot set perTryTimeout, retryOn or retryRemoteLocalities".into(), Some("set `attempts`, or drop the other fields".into()));
        }
        if let Some(t) = &retries.per_try_timeout {
            self.duration(r, &format!("{base}.perTryTimeout"), t);
        }
        if let Some(on) = retries.retry_on.as_deref().filter(|s| !s.is_empty()) {
            for policy in on.split(',') {
                // Istio splits on commas without trimming: " reset" is refused.
                if status_code(policy).is_none() && RetryOn::condition(policy).is_none() {
                    self.error(codes::INVALID_RETRIES, r, &format!("{base}.retryOn"), format!("`{policy}` is not a retry condition Envoy knows"), Some("use conditions such as 5xx, reset, connect-failure, retriable-4xx, or HTTP status codes".into()));
                }
            }
        }
        if let Some(b) = &retries.backoff {
            self.duration(r, &format!("{base}.backoff"), b);
        }
    }

    /// A regex refused by RE2 or Istio, wherever it stands.
    pub(super) fn regex_error(
        &mut self,
        r: &Resource,
        field: &str,
        regex: &str,
        reason: &re2::Re2Error,
    ) {
        self.error(
            codes::INVALID_REGEX,
            r,
            field,
            format!("invalid regex `{regex}`: {reason}"),
            Some("Istio uses RE2 syntax (no look-around, no backreferences, repetition counts up to 1000, at most 1024 bytes); a match regex must match the whole value".into()),
        );
    }
}
