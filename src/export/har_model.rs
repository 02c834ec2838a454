//! The HAR 1.2 document as mirrorlab writes it, field for field (the spec's names in
//! camelCase), with the custom `_`-fields for shadows, attempts and the analysis.

use serde::Serialize;

use super::har_analysis::HarAnalysis;

/// A HAR document.
#[derive(Debug, Clone, Serialize)]
pub struct Har {
    /// The log.
    pub log: HarLog,
}

/// `log`.
#[derive(Debug, Clone, Serialize)]
pub struct HarLog {
    /// Always `1.2`.
    pub version: &'static str,
    /// mirrorlab and its version.
    pub creator: HarCreator,
    /// One entry per exchange.
    pub entries: Vec<HarEntry>,
}

/// `log.creator`.
#[derive(Debug, Clone, Serialize)]
pub struct HarCreator {
    /// `mirrorlab`.
    pub name: &'static str,
    /// Crate version.
    pub version: &'static str,
}

/// A name/value pair (headers, query parameters).
#[derive(Debug, Clone, Serialize)]
pub struct HarPair {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// A cookie.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HarCookie {
    /// Cookie name.
    pub name: String,
    /// Cookie value (redacted by default).
    pub value: String,
    /// `Path` attribute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `Domain` attribute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// `HttpOnly` attribute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_only: Option<bool>,
    /// `Secure` attribute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
}

/// `request.postData`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HarPostData {
    /// Content type of the request body.
    pub mime_type: String,
    /// The body (base64 when `_encoding` says so).
    pub text: String,
    /// `base64` for bodies that are not UTF-8 (HAR 1.2 has no encoding field here).
    #[serde(rename = "_encoding", skip_serializing_if = "Option::is_none")]
    pub encoding: Option<&'static str>,
    /// The body was cut at the capture cap.
    #[serde(rename = "_truncated")]
    pub truncated: bool,
}

/// `request`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HarRequest {
    /// Method.
    pub method: String,
    /// Absolute URL (`http://authority/path?query`).
    pub url: String,
    /// `HTTP/1.1`, `HTTP/2.0`, ...
    pub http_version: String,
    /// Cookies from the Cookie header.
    pub cookies: Vec<HarCookie>,
    /// Headers as forwarded.
    pub headers: Vec<HarPair>,
    /// Query parameters.
    pub query_string: Vec<HarPair>,
    /// Body, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_data: Option<HarPostData>,
    /// Not measured: -1.
    pub headers_size: i64,
    /// Body length on the wire.
    pub body_size: i64,
}

/// `response.content`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HarContent {
    /// Decoded length (of the captured part when cut).
    pub size: i64,
    /// Bytes saved by content encoding, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<i64>,
    /// Content type.
    pub mime_type: String,
    /// Decoded body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `base64` when `text` is base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<&'static str>,
    /// The body was cut at the capture cap.
    #[serde(rename = "_truncated")]
    pub truncated: bool,
}

/// `response`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HarResponse {
    /// Status, 0 when there was no response.
    pub status: u16,
    /// Reason phrase.
    pub status_text: String,
    /// The version the upstream answered in (`HTTP/1.1`); empty when there was no response.
    pub http_version: String,
    /// Cookies from Set-Cookie headers.
    pub cookies: Vec<HarCookie>,
    /// Headers.
    pub headers: Vec<HarPair>,
    /// Body.
    pub content: HarContent,
    /// Location header, or empty.
    #[serde(rename = "redirectURL")]
    pub redirect_url: String,
    /// Not measured: -1.
    pub headers_size: i64,
    /// Body length on the wire, -1 when there was no response.
    pub body_size: i64,
}

/// `timings`: the lab measures time to first byte and total time.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HarTimings {
    /// Not measured separately: 0.
    pub send: f64,
    /// Time to first byte.
    pub wait: f64,
    /// Rest of the body.
    pub receive: f64,
}

/// A failure without a complete response.
#[derive(Debug, Clone, Serialize)]
pub struct HarFailure {
    /// `refused`, `reset`, `timeout`, `protocol`, `dns`, `other`.
    pub kind: &'static str,
    /// Human detail.
    pub detail: String,
}

/// One mirror record in `_shadows`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HarShadow {
    /// Mirror destination label.
    pub target: String,
    /// Endpoint the copy went to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `response`, `failed` or `skipped`.
    pub outcome: &'static str,
    /// Why no copy was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<&'static str>,
    /// How the copy failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<HarFailure>,
    /// Total time in milliseconds, when sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
    /// Timings, when answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<HarTimings>,
    /// The shadow's response, when answered (or partially answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<HarResponse>,
}

/// `log.entries[]`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HarEntry {
    /// When the request arrived.
    pub started_date_time: String,
    /// Total time of the primary in milliseconds.
    pub time: f64,
    /// The client's request.
    pub request: HarRequest,
    /// The primary's response (status 0 when it failed or no route matched).
    pub response: HarResponse,
    /// Not used: empty.
    pub cache: serde_json::Map<String, serde_json::Value>,
    /// Primary timings.
    pub timings: HarTimings,
    /// Lab exchange id.
    #[serde(rename = "_exchangeId")]
    pub exchange_id: u64,
    /// `x-request-id` shared by primary and shadows.
    #[serde(rename = "_requestId")]
    pub request_id: String,
    /// Route label, or absent when no route matched.
    #[serde(rename = "_route", skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Primary destination label.
    #[serde(rename = "_primaryTarget", skip_serializing_if = "Option::is_none")]
    pub primary_target: Option<String>,
    /// Primary endpoint.
    #[serde(rename = "_primaryEndpoint", skip_serializing_if = "Option::is_none")]
    pub primary_endpoint: Option<String>,
    /// How the primary failed.
    #[serde(rename = "_error", skip_serializing_if = "Option::is_none")]
    pub error: Option<HarFailure>,
    /// Mirror records, in config order.
    #[serde(rename = "_shadows")]
    pub shadows: Vec<HarShadow>,
    /// What answered: `forward`, `redirect`, `direct_response`, `fault_abort`,
    /// `cors_preflight`; absent when no route matched.
    #[serde(rename = "_action", skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    /// What the lab did to the request on the way (fault, rewrite, header operations).
    #[serde(rename = "_steps", skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// Envoy's response flags for the client's answer (`UF`, `UT`, `FI`, ...), if any.
    #[serde(rename = "_responseFlags", skip_serializing_if = "Option::is_none")]
    pub response_flags: Option<String>,
    /// The primary's attempts, when it took more than one or one ejected its endpoint.
    #[serde(rename = "_attempts", skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<HarAttempt>,
    /// The analysis of this exchange, when the HAR was written with one.
    #[serde(rename = "_mirrorlab", skip_serializing_if = "Option::is_none")]
    pub mirrorlab: Option<HarAnalysis>,
}

/// One attempt of the primary (one of Envoy's upstream requests).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HarAttempt {
    /// `address:port` tried.
    pub endpoint: String,
    /// The status it answered, or how it failed (`refused`, `timeout`, ...).
    pub outcome: String,
    /// Milliseconds from the first attempt's start.
    pub started: f64,
    /// Milliseconds to its response head or failure.
    pub time: f64,
    /// Outlier detection ejected the endpoint after it.
    pub ejected: bool,
    /// Ejected endpoints its pick passed over.
    pub skipped_ejected: usize,
}
