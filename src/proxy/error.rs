//! The proxy layer's errors, and what status the client gets for each.

use std::error::Error as StdError;
use std::net::SocketAddr;

use http::StatusCode;

use crate::capture::UpstreamErrorKind;
use crate::routing::NoRoute;

/// Everything that can go wrong in the proxy, each with the status its client sees.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The listener could not bind.
    #[error(
        "cannot listen on {addr}: {source}. Is another mirrorlab (or something else) using it? Pick another address with --listen"
    )]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why the bind failed.
        source: std::io::Error,
    },
    /// No VirtualService or route for the request (404).
    #[error("cannot start the proxy's worker threads: {source}")]
    Workers { source: std::io::Error },
    #[error(transparent)]
    NoRoute(#[from] NoRoute),
    /// The matched destination has no endpoint to send to (503).
    #[error("upstream {upstream} has no endpoints; check the ServiceEntry for its host")]
    NoEndpoint {
        /// Label of the destination.
        upstream: String,
    },
    /// The request cannot be forwarded as it is (400).
    #[error("cannot forward the request to {upstream}: {detail}")]
    BadRequest {
        /// Label of the destination.
        upstream: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Nothing listens at the endpoint (503, as Envoy's "connection refused" is).
    #[error("upstream {upstream} ({endpoint}) refused the connection: {detail}")]
    UpstreamRefused {
        /// Label of the destination.
        upstream: String,
        /// The endpoint tried.
        endpoint: String,
        /// The underlying error.
        detail: String,
    },
    /// The endpoint closed or reset the connection before a full response (502).
    #[error("upstream {upstream} ({endpoint}) reset the connection: {detail}")]
    UpstreamReset {
        /// Label of the destination.
        upstream: String,
        /// The endpoint tried.
        endpoint: String,
        /// The underlying error.
        detail: String,
    },
    /// No answer within the route's timeout or the connect timeout (504).
    #[error("upstream {upstream} ({endpoint}) timed out: {detail}")]
    UpstreamTimeout {
        /// Label of the destination.
        upstream: String,
        /// The endpoint tried.
        endpoint: String,
        /// Which timeout fired.
        detail: String,
    },
    /// The endpoint answered with something that is not HTTP (502).
    #[error("upstream {upstream} ({endpoint}) sent an invalid response: {detail}")]
    UpstreamProtocol {
        /// Label of the destination.
        upstream: String,
        /// The endpoint tried.
        endpoint: String,
        /// The underlying error.
        detail: String,
    },
    /// The endpoint's host name does not resolve (503).
    #[error("upstream {upstream}: cannot resolve {endpoint}: {detail}")]
    UpstreamDns {
        /// Label of the destination.
        upstream: String,
        /// The endpoint tried.
        endpoint: String,
        /// The underlying error.
        detail: String,
    },
    /// Any other failure talking to the endpoint (502).
    #[error("upstream {upstream} ({endpoint}) failed: {detail}")]
    UpstreamOther {
        /// Label of the destination.
        upstream: String,
        /// The endpoint tried.
        endpoint: String,
        /// The underlying error.
        detail: String,
    },
}

impl ProxyError {
    /// The error for a failed upstream exchange of the given kind.
    pub fn upstream(
        kind: UpstreamErrorKind,
        upstream: impl Into<String>,
        endpoint: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        let (upstream, endpoint, detail) = (upstream.into(), endpoint.into(), detail.into());
        match kind {
            UpstreamErrorKind::Refused => ProxyError::UpstreamRefused {
                upstream,
                endpoint,
                detail,
            },
            UpstreamErrorKind::Reset => ProxyError::UpstreamReset {
                upstream,
                endpoint,
                detail,
            },
            UpstreamErrorKind::Timeout => ProxyError::UpstreamTimeout {
                upstream,
                endpoint,
                detail,
            },
            UpstreamErrorKind::Protocol => ProxyError::UpstreamProtocol {
                upstream,
                endpoint,
                detail,
            },
            UpstreamErrorKind::Dns => ProxyError::UpstreamDns {
                upstream,
                endpoint,
                detail,
            },
            UpstreamErrorKind::Other => ProxyError::UpstreamOther {
                upstream,
                endpoint,
                detail,
            },
        }
    }

    /// The status code the client gets for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute(_) => StatusCode::NOT_FOUND,
            ProxyError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ProxyError::NoEndpoint { .. }
            | ProxyError::UpstreamRefused { .. }
            | ProxyError::UpstreamDns { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::UpstreamReset { .. }
            | ProxyError::UpstreamProtocol { .. }
            | ProxyError::UpstreamOther { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Bind { .. } | ProxyError::Workers { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// Sorts an error from the upstream client into a kind, with a short detail for people.
pub(crate) fn classify(err: &(dyn StdError + 'static)) -> (UpstreamErrorKind, String) {
    let mut kind = None;
    let mut innermost: &(dyn StdError + 'static) = err;
    let mut current = Some(err);
    while let Some(e) = current {
        innermost = e;
        if kind.is_none() {
            kind = kind_of(e);
        }
        current = e.source();
    }
    let detail = innermost.to_string();
    (kind.unwrap_or(UpstreamErrorKind::Other), detail)
}

fn kind_of(e: &(dyn StdError + 'static)) -> Option<UpstreamErrorKind> {
    use std::io::ErrorKind;
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return match io.kind() {
            ErrorKind::ConnectionRefused => Some(UpstreamErrorKind::Refused),
            ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof => Some(UpstreamErrorKind::Reset),
            ErrorKind::TimedOut => Some(UpstreamErrorKind::Timeout),
            _ => None,
        };
    }
    if let Some(hyper_err) = e.downcast_ref::<hyper::Error>() {
        if hyper_err.is_incomplete_message() || hyper_err.is_canceled() {
            return Some(UpstreamErrorKind::Reset);
        }
        if hyper_err.is_parse() || hyper_err.is_parse_status() || hyper_err.is_parse_too_large() {
            return Some(UpstreamErrorKind::Protocol);
        }
        if hyper_err.is_timeout() {
            return Some(UpstreamErrorKind::Timeout);
        }
        return None;
    }
    // hyper-util's connector says "dns error" and keeps the resolver's error as source;
    // its type is private, so the message is the only handle on it.
    if e.to_string() == "dns error" {
        return Some(UpstreamErrorKind::Dns);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_envoy() {
        let status = |kind| ProxyError::upstream(kind, "reviews/v1", "127.0.0.1:1", "x").status();
        assert_eq!(
            status(UpstreamErrorKind::Refused),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status(UpstreamErrorKind::Reset), StatusCode::BAD_GATEWAY);
        assert_eq!(
            status(UpstreamErrorKind::Timeout),
            StatusCode::GATEWAY_TIMEOUT
        );
    }

    #[test]
    fn io_errors_are_classified_through_the_source_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error")]
        struct Wrapper(#[source] std::io::Error);
        let err = Wrapper(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&err).0, UpstreamErrorKind::Refused);
        let err = Wrapper(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(classify(&err).0, UpstreamErrorKind::Reset);
    }
}
