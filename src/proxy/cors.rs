//! The CORS filter stage (Envoy's `envoy.filters.http.cors`, after the fault filter):
//! preflights answered, CORS headers added to the answers of requests from an allowed
//! origin. Envoy's `cors_filter.cc`: `decodeHeaders` and `encodeHeaders`.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::routing::action::Cors;

use super::local::LocalReply;

/// What the CORS filter decided for a request.
#[derive(Debug)]
pub(super) enum CorsDecision {
    /// Not a CORS request, or its origin is not allowed: the answer is left alone.
    Pass,
    /// A CORS request from an allowed origin: these headers go on its answer.
    Respond(CorsHeaders),
    /// A preflight the filter answers itself.
    Preflight(LocalReply),
}

/// The headers Envoy's `encodeHeaders` sets on the answer to an allowed CORS request.
#[derive(Debug)]
pub(super) struct CorsHeaders {
    origin: HeaderValue,
    credentials: bool,
    expose: Option<HeaderValue>,
}

impl CorsHeaders {
    /// Sets them, replacing what the upstream sent under the same names.
    pub(super) fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, self.origin.clone());
        if self.credentials {
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.expose {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}

/// Envoy's `decodeHeaders`: a request with an `Origin`; a preflight is `OPTIONS` with an
/// `Access-Control-Request-Method` too (what it asks for is not checked).
pub(super) fn decide(cors: &Cors, method: &Method, headers: &HeaderMap) -> CorsDecision {
    let Some(origin) = headers.get(ORIGIN).filter(|o| !o.is_empty()) else {
        return CorsDecision::Pass;
    };
    let allowed = origin.to_str().is_ok_and(|o| cors.origin_allowed(o));
    let preflight = method == Method::OPTIONS
        && headers
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .is_some_and(|m| !m.is_empty());
    if !preflight {
        return if allowed {
            CorsDecision::Respond(CorsHeaders {
                origin: origin.clone(),
                credentials: cors.allow_credentials,
                expose: cors.expose_headers.clone(),
            })
        } else {
            CorsDecision::Pass
        };
    }
    if !allowed && cors.forward_unmatched_preflights {
        return CorsDecision::Pass;
    }
    CorsDecision::Preflight(preflight_reply(
        cors,
        headers,
        allowed.then(|| origin.clone()),
    ))
}

/// The preflight answer: 200, no body, the allowed origin echoed (never `*`), methods and
/// headers (a configured `*` echoes what the browser asked for), max age, credentials.
fn preflight_reply(cors: &Cors, headers: &HeaderMap, origin: Option<HeaderValue>) -> LocalReply {
    let mut reply = LocalReply::new(StatusCode::OK, bytes::Bytes::new());
    let h = &mut reply.headers;
    if let Some(origin) = origin {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if let Some(expose) = &cors.expose_headers {
            h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
    if cors.allow_credentials {
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    let echo = |configured: &Option<HeaderValue>, asked| match configured {
        Some(v) if v == "*" => headers.get(asked).cloned(),
        other => other.clone(),
    };
    if let Some(methods) = echo(&cors.allow_methods, ACCESS_CONTROL_REQUEST_METHOD) {
        h.insert(ACCESS_CONTROL_ALLOW_METHODS, methods);
    }
    if let Some(allowed) = echo(&cors.allow_headers, ACCESS_CONTROL_REQUEST_HEADERS) {
        h.insert(ACCESS_CONTROL_ALLOW_HEADERS, allowed);
    }
    if let Some(max_age) = &cors.max_age {
        h.insert(ACCESS_CONTROL_MAX_AGE, max_age.clone());
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::matcher::StringMatcher;

    fn cors(forward: bool) -> Cors {
        Cors {
            origins: vec![StringMatcher::Exact("https://app.example".into())],
            allow_methods: Some(HeaderValue::from_static("GET,POST")),
            allow_headers: Some(HeaderValue::from_static("*")),
            expose_headers: Some(HeaderValue::from_static("x-total")),
            max_age: Some(HeaderValue::from_static("86400")),
            allow_credentials: true,
            forward_unmatched_preflights: forward,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn preflights_from_allowed_origins_are_answered_200_with_the_origin_echoed() {
        let h = headers(&[
            ("origin", "https://app.example"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-a"),
        ]);
        let CorsDecision::Preflight(reply) = decide(&cors(true), &Method::OPTIONS, &h) else {
            panic!("a preflight");
        };
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.headers[ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example"
        );
        assert_eq!(reply.headers[ACCESS_CONTROL_ALLOW_METHODS], "GET,POST");
        assert_eq!(
            reply.headers[ACCESS_CONTROL_ALLOW_HEADERS], "x-a",
            "`*` echoes the request"
        );
        assert_eq!(reply.headers[ACCESS_CONTROL_MAX_AGE], "86400");
        assert!(!reply.headers.contains_key("vary"), "Envoy adds no Vary");
    }

    #[test]
    fn unmatched_preflights_go_upstream_unless_ignored() {
        let h = headers(&[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "GET"),
        ]);
        assert!(matches!(
            decide(&cors(true), &Method::OPTIONS, &h),
            CorsDecision::Pass
        ));
        let CorsDecision::Preflight(reply) = decide(&cors(false), &Method::OPTIONS, &h) else {
            panic!("IGNORE answers the preflight");
        };
        assert!(!reply.headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    }

    #[test]
    fn allowed_simple_requests_get_the_origin_credentials_and_exposed_headers() {
        let h = headers(&[("origin", "https://app.example")]);
        let CorsDecision::Respond(add) = decide(&cors(true), &Method::GET, &h) else {
            panic!("an allowed CORS request");
        };
        let mut response = headers(&[("access-control-allow-origin", "*")]);
        add.apply(&mut response);
        assert_eq!(response[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        assert_eq!(response[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(response[ACCESS_CONTROL_EXPOSE_HEADERS], "x-total");
        let star = Cors {
            origins: vec![StringMatcher::Exact("*".into())],
            ..cors(true)
        };
        let h = headers(&[("origin", "https://anyone.example")]);
        assert!(
            matches!(decide(&star, &Method::GET, &h), CorsDecision::Respond(_)),
            "`*` allows any origin"
        );
    }
}
