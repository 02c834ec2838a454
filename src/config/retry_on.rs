//! Envoy's retry conditions as Istio reads `retries.retryOn`: the one vocabulary that
//! `check` validates against (`validation.go` `supportedRetryOnPolicies`) and the route
//! table compiles (`retry.go` `parseRetryOn`).

/// Envoy's retry conditions (`retry_on`), as a set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RetryOn(u32);

impl RetryOn {
    /// Any 5xx answer, and any reset.
    pub const FIVE_XX: Self = Self(1);
    /// 502, 503, 504, and any reset.
    pub const GATEWAY_ERROR: Self = Self(1 << 1);
    /// Any reset (not a circuit breaker's overflow).
    pub const RESET: Self = Self(1 << 2);
    /// A reset before any byte of the request went upstream.
    pub const RESET_BEFORE_REQUEST: Self = Self(1 << 3);
    /// A connection that could not be made.
    pub const CONNECT_FAILURE: Self = Self(1 << 4);
    /// 409.
    pub const RETRIABLE_4XX: Self = Self(1 << 5);
    /// An HTTP/2 stream refused.
    pub const REFUSED_STREAM: Self = Self(1 << 6);
    /// The policy's status codes.
    pub const RETRIABLE_STATUS_CODES: Self = Self(1 << 7);
    /// An answer marked `x-envoy-ratelimited`.
    pub const ENVOY_RATELIMITED: Self = Self(1 << 8);
    /// gRPC status CANCELLED in the response head.
    pub const GRPC_CANCELLED: Self = Self(1 << 9);
    /// gRPC status DEADLINE_EXCEEDED.
    pub const GRPC_DEADLINE_EXCEEDED: Self = Self(1 << 10);
    /// gRPC status INTERNAL.
    pub const GRPC_INTERNAL: Self = Self(1 << 11);
    /// gRPC status RESOURCE_EXHAUSTED.
    pub const GRPC_RESOURCE_EXHAUSTED: Self = Self(1 << 12);
    /// gRPC status UNAVAILABLE.
    pub const GRPC_UNAVAILABLE: Self = Self(1 << 13);

    const NAMES: [(&'static str, Self); 16] = [
        ("5xx", Self::FIVE_XX),
        ("gateway-error", Self::GATEWAY_ERROR),
        ("reset", Self::RESET),
        ("reset-before-request", Self::RESET_BEFORE_REQUEST),
        ("connect-failure", Self::CONNECT_FAILURE),
        ("retriable-4xx", Self::RETRIABLE_4XX),
        ("refused-stream", Self::REFUSED_STREAM),
        ("retriable-status-codes", Self::RETRIABLE_STATUS_CODES),
        // Istio never sets the headers these need; parsed so they are not taken for typos.
        ("retriable-headers", Self(0)),
        ("http3-post-connect-failure", Self(0)),
        ("envoy-ratelimited", Self::ENVOY_RATELIMITED),
        ("cancelled", Self::GRPC_CANCELLED),
        ("deadline-exceeded", Self::GRPC_DEADLINE_EXCEEDED),
        ("internal", Self::GRPC_INTERNAL),
        ("resource-exhausted", Self::GRPC_RESOURCE_EXHAUSTED),
        ("unavailable", Self::GRPC_UNAVAILABLE),
    ];

    /// Every condition name Envoy knows, in the order its docs list them (the route
    /// editor's menu).
    pub fn all_names() -> impl Iterator<Item = &'static str> {
        Self::NAMES.iter().map(|(n, _)| *n)
    }

    /// Whether every condition of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        other.0 != 0 && self.0 & other.0 == other.0
    }

    /// Both sets' conditions.
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The condition `name` stands for, if Envoy knows it.
    pub fn condition(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
    }

    /// The conditions by name, as `retryOn` writes them.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(_, c)| self.contains(*c))
            .map(|(n, _)| *n)
            .collect()
    }
}

/// A part of `retryOn` that is an HTTP status code (Go's `http.StatusText` knows it).
pub fn status_code(part: &str) -> Option<u16> {
    part.parse::<u16>()
        .ok()
        .filter(|c| http::StatusCode::from_u16(*c).is_ok_and(|s| s.canonical_reason().is_some()))
}

/// Istio's `parseRetryOn`: names go to `retry_on`, known HTTP status codes to the retriable
/// codes (adding `retriable-status-codes`).
pub fn parse_retry_on(text: &str) -> Result<(RetryOn, Vec<u16>), String> {
    let mut on = RetryOn::default();
    let mut codes = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some(code) = status_code(part) {
            codes.push(code);
            continue;
        }
        match RetryOn::condition(part) {
            Some(c) => on = on.union(c),
            None => return Err(part.to_owned()),
        }
    }
    if !codes.is_empty() {
        on = on.union(RetryOn::RETRIABLE_STATUS_CODES);
    }
    Ok((on, codes))
}
