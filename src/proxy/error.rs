//! The proxy layer's errors, and what status the client gets for each.

use std::error::Error as StdError;
use std::net::SocketAddr;

use http::StatusCode;

use crate::capture::{ResponseFlags, UpstreamErrorKind};
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
    /// The worker threads could not start.
    #[error("cannot start the proxy's worker threads: {source}")]
    Workers {
        /// Why.
        source: std::io::Error,
    },
    /// No VirtualService or route for the request (404, flag NR).
    #[error(transparent)]
    NoRoute(#[from] NoRoute),
    /// Talking to the primary failed before its response head.
    #[error("upstream {upstream} ({endpoint}): {} ({detail})", kind.as_str())]
    Upstream {
        /// What kind of failure.
        kind: UpstreamErrorKind,
        /// Label of the destination.
        upstream: String,
        /// The endpoint tried (empty when there was none).
        endpoint: String,
        /// What happened, for the capture and the log.
        detail: String,
        /// The request was retried before this last failure.
        retried: bool,
    },
}

/// Envoy's body for a stream reset before the response head
/// (`router.cc` `Filter::onUpstreamReset`), with `reason` from `resetReasonToString`.
fn reset_body(reason: &str, retried: bool) -> String {
    let retried = if retried {
        "retried and the latest "
    } else {
        ""
    };
    format!(
        "upstream connect error or disconnect/reset before headers. {retried}reset reason: {reason}"
    )
}

impl ProxyError {
    /// The error for a failed upstream exchange of the given kind.
    pub fn upstream(
        kind: UpstreamErrorKind,
        upstream: impl Into<String>,
        endpoint: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        ProxyError::Upstream {
            kind,
            upstream: upstream.into(),
            endpoint: endpoint.into(),
            detail: detail.into(),
            retried: false,
        }
    }

    /// The same failure, after retries: Envoy's body says "retried and the latest".
    #[must_use]
    pub fn retried(mut self) -> Self {
        if let ProxyError::Upstream { retried, .. } = &mut self {
            *retried = true;
        }
        self
    }

    /// The status code the client gets for this error, as Envoy answers: 503 for a
    /// connection failure, a close before the head and no healthy endpoint, 502 only for a
    /// protocol error, 504 for the route timeout.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute(_) => StatusCode::NOT_FOUND,
            ProxyError::Upstream { kind, .. } => match kind {
                UpstreamErrorKind::Protocol => StatusCode::BAD_GATEWAY,
                UpstreamErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            },
            ProxyError::Bind { .. } | ProxyError::Workers { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// Envoy's response flags for this error.
    pub fn flags(&self) -> ResponseFlags {
        match self {
            ProxyError::NoRoute(_) => ResponseFlags::NR,
            ProxyError::Upstream { kind, .. } => kind.response_flag(),
            ProxyError::Bind { .. } | ProxyError::Workers { .. } => ResponseFlags::NONE,
        }
    }

    /// The body the client gets: Envoy's text for an upstream failure; for no route, the
    /// lab's explanation of which hosts it serves (Envoy's 404 has no body, but a person
    /// pointing curl at the lab needs to know how to address a service).
    pub fn body(&self) -> String {
        match self {
            ProxyError::NoRoute(no_route) => format!("{no_route}\n"),
            ProxyError::Upstream { kind, retried, .. } => match kind {
                UpstreamErrorKind::Refused => reset_body("remote connection failure", *retried),
                UpstreamErrorKind::ConnectTimeout => reset_body("connection timeout", *retried),
                UpstreamErrorKind::Reset | UpstreamErrorKind::Other => {
                    reset_body("connection termination", *retried)
                }
                UpstreamErrorKind::Protocol => reset_body("protocol error", *retried),
                // `resetReasonToString` of RemoteReset and RemoteRefusedStreamReset.
                UpstreamErrorKind::RemoteReset => reset_body("remote reset", *retried),
                UpstreamErrorKind::RefusedStream => {
                    reset_body("remote refused stream reset", *retried)
                }
                UpstreamErrorKind::Timeout => "upstream request timeout".to_owned(),
                UpstreamErrorKind::Dns | UpstreamErrorKind::NoEndpoint => {
                    "no healthy upstream".to_owned()
                }
                UpstreamErrorKind::Overflow => reset_body("overflow", *retried),
                UpstreamErrorKind::Tls => reset_body(
                    "remote connection failure, transport failure reason: TLS_error",
                    *retried,
                ),
            },
            ProxyError::Bind { .. } | ProxyError::Workers { .. } => format!("{self}\n"),
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
    // A TLS alert after the handshake (the server wanted a client certificate, TLS 1.3
    // tells after the client's Finished) comes with the first request: still TLS's.
    if e.downcast_ref::<rustls::Error>().is_some() {
        return Some(UpstreamErrorKind::Tls);
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        // `io::Error::source` skips the error it wraps: look at it here.
        if io
            .get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return Some(UpstreamErrorKind::Tls);
        }
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
    if let Some(h2_err) = e.downcast_ref::<h2::Error>() {
        // A stream the upstream reset; a GOAWAY or a broken connection is classified by
        // what lies beneath (the I/O error, or hyper's).
        if h2_err.is_reset() && h2_err.is_remote() {
            return Some(if h2_err.reason() == Some(h2::Reason::REFUSED_STREAM) {
                UpstreamErrorKind::RefusedStream
            } else {
                UpstreamErrorKind::RemoteReset
            });
        }
        return None;
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
    fn statuses_flags_and_bodies_follow_envoy() {
        // router.cc onUpstreamReset: 502 only for a protocol error, else 503; 504 UT for
        // the route timeout; "no healthy upstream" for a cluster without hosts.
        let err = |kind| ProxyError::upstream(kind, "reviews/v1", "127.0.0.1:1", "x");
        let cases = [
            (
                UpstreamErrorKind::Refused,
                503,
                "UF",
                "reset reason: remote connection failure",
            ),
            (
                UpstreamErrorKind::ConnectTimeout,
                503,
                "UF",
                "reset reason: connection timeout",
            ),
            (
                UpstreamErrorKind::Reset,
                503,
                "UC",
                "reset reason: connection termination",
            ),
            (
                UpstreamErrorKind::RefusedStream,
                503,
                "UR",
                "reset reason: remote refused stream reset",
            ),
            (
                UpstreamErrorKind::RemoteReset,
                503,
                "UR",
                "reset reason: remote reset",
            ),
            (
                UpstreamErrorKind::Protocol,
                502,
                "UPE",
                "reset reason: protocol error",
            ),
            (
                UpstreamErrorKind::Timeout,
                504,
                "UT",
                "upstream request timeout",
            ),
            (
                UpstreamErrorKind::NoEndpoint,
                503,
                "UH",
                "no healthy upstream",
            ),
        ];
        for (kind, status, flag, body) in cases {
            let e = err(kind);
            assert_eq!(e.status().as_u16(), status, "{kind:?}");
            assert_eq!(e.flags().to_string(), flag, "{kind:?}");
            assert!(e.body().ends_with(body), "{kind:?}: {}", e.body());
        }
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
