//! One request typed into the app's "Send request" form, sent through the proxy.

use std::net::SocketAddr;
use std::time::Duration;

/// A request typed into the "Send request" form.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct OneRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Host header (a VirtualService host).
    pub host: String,
    /// Path and query.
    pub path: String,
    /// Extra headers, one `name: value` a line.
    pub headers: String,
    /// Body.
    pub body: String,
}

/// What happened to a one-off request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The proxy answered with this status.
    Answered {
        /// The `x-request-id` sent, to find the exchange in Traffic.
        request_id: String,
        /// Status code.
        status: u16,
    },
    /// The request failed before an answer.
    Failed(String),
}

/// Sends `r` to the proxy at `addr` with this `x-request-id`.
pub(super) async fn send_one(addr: SocketAddr, r: &OneRequest, request_id: &str) -> SendOutcome {
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => return SendOutcome::Failed(format!("cannot build an HTTP client: {e}")),
    };
    let method = match http::Method::from_bytes(r.method.trim().to_ascii_uppercase().as_bytes()) {
        Ok(m) => m,
        Err(_) => return SendOutcome::Failed(format!("'{}' is not an HTTP method", r.method)),
    };
    let path = if r.path.starts_with('/') {
        r.path.clone()
    } else {
        format!("/{}", r.path)
    };
    let mut builder = client
        .request(method, format!("http://{addr}{path}"))
        .header("x-request-id", request_id);
    if !r.host.trim().is_empty() {
        builder = builder.header(http::header::HOST, r.host.trim());
    }
    for (n, line) in r.headers.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return SendOutcome::Failed(format!(
                "header line {} ('{line}') has no ':'; write name: value",
                n + 1
            ));
        };
        builder = builder.header(name.trim(), value.trim());
    }
    if !r.body.is_empty() {
        builder = builder.body(r.body.clone());
    }
    match builder.send().await {
        Ok(resp) => SendOutcome::Answered {
            request_id: request_id.to_owned(),
            status: resp.status().as_u16(),
        },
        Err(e) => SendOutcome::Failed(format!("request to the proxy at {addr} failed: {e}")),
    }
}
