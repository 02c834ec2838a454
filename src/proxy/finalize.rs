//! The router's finalised request: what every sidecar does to a request it forwards
//! (hop-by-hop fields removed, `x-request-id`, `x-forwarded-proto`, `x-envoy-attempt-count`),
//! then what the route says (Envoy's `finalizeRequestHeaders`: the header operations, then
//! the host rewrite, then the path rewrite). The primary and every shadow are sent this one
//! request, as router.cc copies the shadow's headers after finalising them.

use std::sync::Arc;
use std::time::Duration;

use http::header::{EXPECT, HOST};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::capture::{ForwardedRequest, owned_headers};
use crate::routing::WeightedUpstream;
use crate::routing::action::Forward;

use super::hop::strip_request_hop_by_hop;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_ENVOY_ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-envoy-attempt-count");
const X_ENVOY_ORIGINAL_PATH: HeaderName = HeaderName::from_static("x-envoy-original-path");
const X_ENVOY_EXPECTED_TIMEOUT: HeaderName =
    HeaderName::from_static("x-envoy-expected-rq-timeout-ms");

/// What every forwarded request gets, whatever its route: returns its `x-request-id`.
pub(super) fn prepare(headers: &mut HeaderMap, authority: Option<&http::uri::Authority>) -> String {
    strip_request_hop_by_hop(headers);
    // One pass over the names (cheap comparisons of standard names) instead of a lookup
    // for each.
    let (mut expect, mut host) = (false, false);
    for name in headers.keys() {
        expect |= name == EXPECT;
        host |= name == HOST;
    }
    // The proxy answers `Expect: 100-continue` itself (hyper does, when the body is read),
    // as Envoy does by default; the upstream gets the body without waiting.
    if expect {
        headers.remove(EXPECT);
    }
    let request_id = ensure_request_id(headers);
    if !host {
        // HTTP/2 clients send `:authority` instead of Host; HTTP/1.1 upstreams need Host.
        if let Some(value) = authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
            headers.insert(HOST, value);
        }
    }
    request_id
}

/// What the sidecar adds to every request it sends upstream, primary and shadow: the
/// connection manager's `x-forwarded-proto` when the client sent none, and the attempt
/// count Istio's virtual hosts ask for (the first attempt is 1). Added after the capture
/// takes the client's headers, so the capture does not copy them for every request.
pub(super) fn add_sidecar_headers(headers: &mut HeaderMap) {
    headers
        .entry(X_FORWARDED_PROTO)
        .or_insert(HeaderValue::from_static("http"));
    headers.insert(X_ENVOY_ATTEMPT_COUNT, HeaderValue::from_static("1"));
}

/// The request after the route's own changes.
#[derive(Debug)]
pub(super) struct Finalized {
    /// The target sent upstream.
    pub path_and_query: PathAndQuery,
    /// What was sent, when the route changed anything.
    pub forwarded: Option<Arc<ForwardedRequest>>,
    /// One line per change, for the route trace.
    pub steps: Vec<String>,
}

/// Applies the route's header operations for `destination`, its host rewrite and its path
/// rewrite (the route matched the first `matched` bytes of the path), as Envoy's
/// `finalizeRequestHeaders` does, in that order.
pub(super) fn finalize(
    headers: &mut HeaderMap,
    path_and_query: &PathAndQuery,
    forward: &Forward,
    destination: &WeightedUpstream,
    matched: usize,
) -> Result<Finalized, String> {
    let mut steps: Vec<String> = destination.trace.to_vec();
    let mut changed = !destination.request_headers.is_empty();
    for ops in destination.request_headers.iter() {
        ops.apply(headers);
    }
    if let Some(authority) = &destination.authority {
        steps.push(format!(
            "authority rewritten to {}",
            String::from_utf8_lossy(authority.as_bytes())
        ));
        headers.insert(HOST, authority.clone());
        changed = true;
    }
    let mut target = path_and_query.clone();
    if let Some(rewrite) = &forward.path_rewrite
        && let Some(new) = rewrite.apply(path_and_query.as_str(), matched)
        && new != path_and_query.as_str()
    {
        let rewritten = PathAndQuery::try_from(new.as_str()).map_err(|e| {
            format!("the rewritten path `{new}` is not a valid request target: {e}")
        })?;
        steps.push(format!("rewrite {} → {}", path_and_query.as_str(), new));
        if let Ok(original) = HeaderValue::from_str(path_and_query.as_str()) {
            headers.insert(X_ENVOY_ORIGINAL_PATH, original);
        }
        target = rewritten;
        changed = true;
    }
    if let Some(timeout) = forward.timeout {
        headers.insert(X_ENVOY_EXPECTED_TIMEOUT, timeout_ms(timeout));
        changed = true;
    }
    add_sidecar_headers(headers);
    let forwarded = changed.then(|| {
        Arc::new(ForwardedRequest {
            uri: target.as_str().to_owned(),
            authority: headers
                .get(HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            headers: owned_headers(headers),
        })
    });
    Ok(Finalized {
        path_and_query: target,
        forwarded,
        steps,
    })
}

fn timeout_ms(timeout: Duration) -> HeaderValue {
    HeaderValue::from(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
}

/// Keeps the client's `x-request-id`, or adds a fresh one, and returns it.
fn ensure_request_id(headers: &mut HeaderMap) -> String {
    // One lookup of the name, for the client's id and for the place of a new one.
    let entry = headers.entry(X_REQUEST_ID);
    if let http::header::Entry::Occupied(kept) = &entry
        && let Ok(id) = kept.get().to_str()
    {
        return id.to_owned();
    }
    // A v4 UUID from the thread's fast generator, as Envoy draws its request ids from a
    // non-cryptographic one: the OS generator would cost a system call per request.
    let uuid = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id: &str = uuid.hyphenated().encode_lower(&mut text);
    if let Ok(value) = HeaderValue::from_str(id) {
        match entry {
            http::header::Entry::Occupied(mut kept) => {
                kept.insert(value);
            }
            http::header::Entry::Vacant(place) => {
                place.insert(value);
            }
        }
    }
    id.to_owned()
}

/// Appends `-shadow` to the Host's name, before any port, as Envoy does unless told not to.
pub(super) fn shadow_host(headers: &mut HeaderMap) {
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let shadowed = match host.parse::<http::uri::Authority>() {
        Ok(authority) => match authority.port_u16() {
            Some(port) => format!("{}-shadow:{port}", authority.host()),
            None => format!("{}-shadow", authority.host()),
        },
        Err(_) => format!("{host}-shadow"),
    };
    if let Ok(value) = HeaderValue::from_str(&shadowed) {
        headers.insert(HOST, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_host_goes_before_the_port() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("reviews:9080"));
        shadow_host(&mut headers);
        assert_eq!(headers[HOST], "reviews-shadow:9080");
        headers.insert(HOST, HeaderValue::from_static("reviews"));
        shadow_host(&mut headers);
        assert_eq!(headers[HOST], "reviews-shadow");
    }

    #[test]
    fn a_client_request_id_is_kept_and_a_missing_one_is_added() {
        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("abc"));
        assert_eq!(ensure_request_id(&mut headers), "abc");
        let mut headers = HeaderMap::new();
        let id = ensure_request_id(&mut headers);
        assert_eq!(id.len(), 36);
        assert_eq!(headers[X_REQUEST_ID], id.as_str());
        // An id that is not text is replaced, not kept beside a fresh one.
        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID, HeaderValue::from_bytes(b"\xff").unwrap());
        let id = ensure_request_id(&mut headers);
        assert_eq!(id.len(), 36);
        assert_eq!(headers.get_all(X_REQUEST_ID).iter().count(), 1);
        assert_eq!(headers[X_REQUEST_ID], id.as_str());
    }

    #[test]
    fn every_forwarded_request_gets_the_sidecars_own_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("keep-alive"));
        headers.insert(EXPECT, HeaderValue::from_static("100-continue"));
        prepare(&mut headers, None);
        assert!(!headers.contains_key("connection"));
        assert!(!headers.contains_key(EXPECT));
        add_sidecar_headers(&mut headers);
        assert_eq!(headers[X_FORWARDED_PROTO], "http");
        assert_eq!(headers[X_ENVOY_ATTEMPT_COUNT], "1");
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        add_sidecar_headers(&mut headers);
        assert_eq!(headers[X_FORWARDED_PROTO], "https", "the client's is kept");
    }
}
