//! HAR 1.2 export of captured exchanges (`mirrorlab run --har FILE` and the app's
//! "Save HAR"). Each exchange is one entry: the client's request and the primary's
//! response; its mirror records go in the custom `_shadows` field (HAR allows fields that
//! start with `_`), and, given the analysis, how each mirror's differences count (real
//! and noise apart) in `_mirrorlab`. Secrets are redacted unless the caller asks otherwise.

use std::borrow::Borrow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;

use crate::analysis::AnalysisSnapshot;
use crate::analysis::diff::decode_body;
use crate::capture::{
    CapturedBody, CapturedResponse, Exchange, ShadowOutcome, UpstreamFailure, UpstreamOutcome,
};

pub use super::har_analysis::{HarAnalysis, HarShadowDiff};
pub use super::har_model::{
    Har, HarAttempt, HarContent, HarCookie, HarCreator, HarEntry, HarFailure, HarLog, HarPair,
    HarPostData, HarRequest, HarResponse, HarShadow, HarTimings,
};

/// Headers whose values are replaced by [`REDACTED`] unless [`HarOptions::redact`] is off.
pub const REDACTED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    // API keys travel in headers of their own; the common spellings.
    "x-api-key",
    "api-key",
    "x-auth-token",
];

/// What a redacted value reads.
pub const REDACTED: &str = "[redacted]";

/// Why a HAR file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum HarError {
    /// Serialising or writing to the given writer failed.
    #[error("cannot write HAR: {0}")]
    Json(#[from] serde_json::Error),
    /// The file could not be created or written.
    #[error("cannot write HAR file {path}: {source}; check the directory exists and is writable")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// How to write the HAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HarOptions {
    /// Replace Authorization, Proxy-Authorization, Cookie and Set-Cookie values (and the
    /// cookie values they carry) with [`REDACTED`]. On by default.
    pub redact: bool,
    /// Include captured bodies (decoded; base64 when not UTF-8). On by default.
    pub bodies: bool,
}

impl Default for HarOptions {
    fn default() -> Self {
        Self {
            redact: true,
            bodies: true,
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Whether a header carries credentials ([`REDACTED_HEADERS`]): the one rule the HAR
/// export, sessions and replayed traffic all strip by.
pub fn is_credential_header(name: &str) -> bool {
    REDACTED_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

fn pairs(map: &http::HeaderMap, options: &HarOptions) -> Vec<HarPair> {
    map.iter()
        .map(|(k, v)| HarPair {
            name: k.as_str().to_owned(),
            value: if options.redact && is_credential_header(k.as_str()) {
                REDACTED.to_owned()
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            },
        })
        .collect()
}

fn header_str(map: &http::HeaderMap, name: http::header::HeaderName) -> Option<&str> {
    map.get(name).and_then(|v| v.to_str().ok())
}

fn request_cookies(map: &http::HeaderMap, options: &HarOptions) -> Vec<HarCookie> {
    map.get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| {
            let (name, value) = c.trim().split_once('=')?;
            Some(HarCookie {
                name: name.trim().to_owned(),
                value: if options.redact {
                    REDACTED.to_owned()
                } else {
                    value.trim().to_owned()
                },
                path: None,
                domain: None,
                http_only: None,
                secure: None,
            })
        })
        .collect()
}

fn response_cookies(map: &http::HeaderMap, options: &HarOptions) -> Vec<HarCookie> {
    map.get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let mut parts = v.split(';');
            let (name, value) = parts.next()?.trim().split_once('=')?;
            let mut cookie = HarCookie {
                name: name.trim().to_owned(),
                value: if options.redact {
                    REDACTED.to_owned()
                } else {
                    value.trim().to_owned()
                },
                path: None,
                domain: None,
                http_only: None,
                secure: None,
            };
            for attr in parts {
                let (k, v) = attr.trim().split_once('=').unwrap_or((attr.trim(), ""));
                match k.to_ascii_lowercase().as_str() {
                    "path" => cookie.path = Some(v.to_owned()),
                    "domain" => cookie.domain = Some(v.to_owned()),
                    "httponly" => cookie.http_only = Some(true),
                    "secure" => cookie.secure = Some(true),
                    _ => {}
                }
            }
            Some(cookie)
        })
        .collect()
}

/// Body as HAR text: UTF-8 as is, anything else base64.
fn body_text(bytes: &[u8]) -> (String, Option<&'static str>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), None),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            Some("base64"),
        ),
    }
}

fn wire_len(body: &CapturedBody) -> i64 {
    i64::try_from(body.total_len).unwrap_or(i64::MAX)
}

/// HAR's spelling of an HTTP version: `HTTP/1.0`, `HTTP/1.1`, `HTTP/2.0`.
fn har_version(version: http::Version) -> String {
    format!("{version:?}")
}

/// The response with the HTTP version its upstream answered in.
fn har_response(r: &CapturedResponse, options: &HarOptions) -> HarResponse {
    let decoded = decode_body(&r.body, &r.headers);
    let size = i64::try_from(decoded.bytes.len()).unwrap_or(i64::MAX);
    let compression = (decoded.encoding.is_some() && decoded.error.is_none() && !decoded.cut)
        // Negative for tiny bodies that grow when compressed; that is still what it saved.
        .then(|| size - i64::try_from(r.body.bytes.len()).unwrap_or(i64::MAX));
    let (text, encoding) = if options.bodies {
        let (t, e) = body_text(&decoded.bytes);
        (Some(t), e)
    } else {
        (None, None)
    };
    HarResponse {
        status: r.status.as_u16(),
        status_text: r.status.canonical_reason().unwrap_or("").to_owned(),
        http_version: har_version(r.version),
        cookies: response_cookies(&r.headers, options),
        headers: pairs(&r.headers, options),
        content: HarContent {
            size,
            compression,
            mime_type: header_str(&r.headers, http::header::CONTENT_TYPE)
                .unwrap_or("")
                .to_owned(),
            text,
            encoding,
            truncated: decoded.cut,
        },
        redirect_url: header_str(&r.headers, http::header::LOCATION)
            .unwrap_or("")
            .to_owned(),
        headers_size: -1,
        body_size: wire_len(&r.body),
    }
}

/// The `response` of an exchange that got none: status 0, as browsers write failures.
fn no_response() -> HarResponse {
    HarResponse {
        status: 0,
        status_text: String::new(),
        http_version: String::new(),
        cookies: Vec::new(),
        headers: Vec::new(),
        content: HarContent {
            size: 0,
            compression: None,
            mime_type: String::new(),
            text: None,
            encoding: None,
            truncated: false,
        },
        redirect_url: String::new(),
        headers_size: -1,
        body_size: -1,
    }
}

fn timings(r: &CapturedResponse) -> HarTimings {
    HarTimings {
        send: 0.0,
        wait: millis(r.ttfb),
        receive: millis(r.total.saturating_sub(r.ttfb)),
    }
}

fn har_error(f: &UpstreamFailure) -> HarFailure {
    HarFailure {
        kind: f.kind.as_str(),
        detail: f.detail.clone(),
    }
}

fn har_request(e: &Exchange, options: &HarOptions) -> HarRequest {
    let req = &e.request;
    let url = if req.uri.contains("://") {
        req.uri.clone()
    } else {
        format!("http://{}{}", req.authority, req.uri)
    };
    let query_string = req
        .uri
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or(""))
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            HarPair {
                name: n.to_owned(),
                value: v.to_owned(),
            }
        })
        .collect();
    let post_data = (options.bodies && !req.body.bytes.is_empty()).then(|| {
        let (text, encoding) = body_text(&req.body.bytes);
        HarPostData {
            mime_type: header_str(&req.headers, http::header::CONTENT_TYPE)
                .unwrap_or("")
                .to_owned(),
            text,
            encoding,
            truncated: req.body.truncated,
        }
    });
    HarRequest {
        method: req.method.as_str().to_owned(),
        url,
        http_version: har_version(req.version),
        cookies: request_cookies(&req.headers, options),
        headers: pairs(&req.headers, options),
        query_string,
        post_data,
        headers_size: -1,
        body_size: wire_len(&req.body),
    }
}

/// One exchange as a HAR entry (a session writes them one at a time).
pub fn har_entry(
    e: &Exchange,
    options: &HarOptions,
    analysis: Option<&AnalysisSnapshot>,
) -> HarEntry {
    let (response, time, t, error) = match e.primary.as_ref().map(|p| &p.outcome) {
        Some(UpstreamOutcome::Response(r)) => {
            (har_response(r, options), millis(r.total), timings(r), None)
        }
        Some(UpstreamOutcome::Failed(f)) => (
            f.partial
                .as_ref()
                .map_or_else(no_response, |r| har_response(r, options)),
            millis(f.elapsed),
            HarTimings {
                send: 0.0,
                wait: millis(f.elapsed),
                receive: 0.0,
            },
            Some(har_error(f)),
        ),
        None => (
            no_response(),
            0.0,
            HarTimings {
                send: 0.0,
                wait: 0.0,
                receive: 0.0,
            },
            None,
        ),
    };
    let shadows = e
        .shadows
        .iter()
        .map(|s| {
            let mut out = HarShadow {
                target: s.target.to_string(),
                endpoint: s.endpoint.as_deref().map(str::to_owned),
                outcome: "skipped",
                skip_reason: None,
                error: None,
                time: None,
                timings: None,
                response: None,
            };
            match &s.outcome {
                ShadowOutcome::Skipped(reason) => out.skip_reason = Some(reason.as_str()),
                ShadowOutcome::Sent(UpstreamOutcome::Response(r)) => {
                    out.outcome = "response";
                    out.time = Some(millis(r.total));
                    out.timings = Some(timings(r));
                    out.response = Some(har_response(r, options));
                }
                ShadowOutcome::Sent(UpstreamOutcome::Failed(f)) => {
                    out.outcome = "failed";
                    out.time = Some(millis(f.elapsed));
                    out.error = Some(har_error(f));
                    out.response = f.partial.as_ref().map(|r| har_response(r, options));
                }
            }
            out
        })
        .collect();
    HarEntry {
        started_date_time: super::rfc3339(e.started_at),
        time,
        request: har_request(e, options),
        response,
        cache: serde_json::Map::new(),
        timings: t,
        exchange_id: e.id,
        request_id: e.request_id.clone(),
        route: e.trace.as_ref().map(|t| match (&t.origin, &t.route_name) {
            // A Gateway API route: its kind, rule and match, as the route object has them.
            (crate::routing::RouteOrigin::GatewayRoute { kind, route }, _) => {
                let at = t
                    .match_index
                    .map_or_else(String::new, |m| format!(".matches[{m}]"));
                format!("{kind} {route}:rules[{}]{at}", t.route_index)
            }
            (_, Some(name)) => format!("{}:{name}", t.virtual_service),
            (_, None) => format!("{}:http[{}]", t.virtual_service, t.route_index),
        }),
        primary_target: e.primary.as_ref().map(|p| p.target.to_string()),
        primary_endpoint: e.primary.as_ref().map(|p| p.endpoint.to_string()),
        error,
        shadows,
        action: e.trace.as_ref().map(|t| t.action.as_str()),
        steps: e.trace.as_ref().map_or_else(Vec::new, |t| t.steps.clone()),
        response_flags: (!e.flags.is_empty()).then(|| e.flags.to_string()),
        attempts: e
            .primary
            .iter()
            .flat_map(|p| &p.attempts)
            .map(|a| HarAttempt {
                endpoint: a.endpoint.to_string(),
                outcome: a.outcome.to_string(),
                started: millis(a.started),
                time: millis(a.took),
                ejected: a.ejected,
                skipped_ejected: a.skipped_ejected,
            })
            .collect(),
        mirrorlab: analysis.and_then(|a| super::har_analysis::of_exchange(e, a)),
    }
}

/// Builds the HAR document for `exchanges` (owned, or `Arc`s from the capture store), in
/// the order given; with `analysis`, each entry carries its differences in `_mirrorlab`.
pub fn build_har<E: Borrow<Exchange>>(
    exchanges: &[E],
    options: &HarOptions,
    analysis: Option<&AnalysisSnapshot>,
) -> Har {
    Har {
        log: HarLog {
            version: "1.2",
            creator: HarCreator {
                name: "mirrorlab",
                version: env!("CARGO_PKG_VERSION"),
            },
            entries: exchanges
                .iter()
                .map(|e| har_entry(e.borrow(), options, analysis))
                .collect(),
        },
    }
}

/// Writes `exchanges` as HAR 1.2 JSON to `writer` (see [`build_har`]).
pub fn write_har<W: Write, E: Borrow<Exchange>>(
    writer: W,
    exchanges: &[E],
    options: &HarOptions,
    analysis: Option<&AnalysisSnapshot>,
) -> Result<(), HarError> {
    serde_json::to_writer_pretty(writer, &build_har(exchanges, options, analysis))?;
    Ok(())
}

/// Writes `exchanges` as a HAR 1.2 file at `path` (see [`build_har`]).
pub fn write_har_file<E: Borrow<Exchange>>(
    path: &Path,
    exchanges: &[E],
    options: &HarOptions,
    analysis: Option<&AnalysisSnapshot>,
) -> Result<(), HarError> {
    let io_err = |source| HarError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io_err)?;
    let mut w = std::io::BufWriter::new(file);
    write_har(&mut w, exchanges, options, analysis)?;
    w.flush().map_err(io_err)
}
