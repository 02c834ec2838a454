//! What the Traffic detail shows of one exchange's primary against one shadow: the diff
//! with the rules and verdicts of the analysis, and both bodies as text, line by line,
//! with the lines only one side has marked. A line inside a field the rules ignore is not
//! marked: the difference list leaves that field out, and so does the side-by-side view.
//! Computed on the engine's runtime, since a large body takes long to decode and diff.

use std::io::Read as _;
use std::sync::Arc;

use crate::analysis::descriptors::GrpcDecode;
use crate::analysis::diff::{self, ResponseDiff};
use crate::analysis::{AnalysisSnapshot, FieldClass, FieldPath, IgnoreRules};
use crate::capture::{CapturedBody, CapturedResponse, Exchange, ShadowOutcome, UpstreamOutcome};

/// Bodies larger than this are shown cut, to keep the detail view responsive.
const MAX_SHOWN_BODY: usize = 256 * 1024;

/// Which side of the comparison a body line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineSide {
    /// Both bodies have it.
    Both,
    /// Only the primary's.
    Primary,
    /// Only the shadow's.
    Shadow,
}

/// One line of the side-by-side bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyLine {
    /// Which body has it.
    pub side: LineSide,
    /// The text, without its newline.
    pub text: String,
    /// The line belongs to a field the ignore rules leave out of diffs (not highlighted).
    pub ignored: bool,
}

/// The detail view's comparison of exchange `exchange_id` with shadow `shadow_index`.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The exchange.
    pub exchange_id: u64,
    /// The shadow compared.
    pub shadow_index: usize,
    /// The differences after the ignore rules, or why there is nothing to compare.
    pub diff: Result<ResponseDiff, String>,
    /// The analysis' headline for this shadow (`1 differs, 2 noise`), when it has one.
    pub headline: Option<String>,
    /// Fields the analysis calls noise (`status`, `header:NAME`, `body`, a JSON path).
    pub noise: Vec<String>,
    /// The client's request body as text (decoded, pretty-printed when JSON).
    pub request_body: String,
    /// The primary's body as text (empty when there is none).
    pub primary_body: String,
    /// The shadow's body as text.
    pub shadow_body: String,
    /// Both bodies, line by line.
    pub lines: Vec<BodyLine>,
    /// For a gRPC call, how its messages were read: by name (and whose descriptors) or
    /// schema-less, and why.
    pub grpc_decode: Option<GrpcDecode>,
}

/// Compares the exchange's primary with shadow `shadow_index` as the analysis would.
pub fn compare(
    exchange: &Arc<Exchange>,
    shadow_index: usize,
    snapshot: &AnalysisSnapshot,
) -> Comparison {
    let mut rules = snapshot.rules_for(exchange.trace.as_ref().map(|t| &*t.virtual_service));
    // What server reflection found since the exchange was analysed counts here too: the
    // detail shows the messages as they read now.
    rules.grpc = snapshot.grpc_descriptors(exchange);
    let grpc_decode = snapshot.grpc_decode(exchange);
    let diff = if exchange.shadows.is_empty() {
        Err("The route has no mirror, so there is nothing to compare.".to_owned())
    } else {
        diff::diff_exchange(exchange, shadow_index, &rules).map_err(|e| e.to_string())
    };
    let summary = snapshot
        .diff_summary(exchange.id)
        .and_then(|s| s.shadows.get(shadow_index));
    let headline = summary.map(|s| s.text(&snapshot.verdicts));
    let noise = summary.map_or_else(Vec::new, |s| {
        s.classified_fields(&snapshot.verdicts)
            .into_iter()
            .filter(|(_, class)| *class == FieldClass::Noise)
            .map(|(field, _)| field.to_string())
            .collect()
    });
    let schema = |side| {
        rules.grpc.as_ref().map(|g| diff::GrpcSchema {
            pool: &g.pool,
            path: exchange.request.uri.as_str(),
            side,
        })
    };
    let answer = schema(diff::MessageSide::Response);
    let primary = exchange
        .primary
        .as_ref()
        .and_then(|p| response_of(&p.outcome))
        .map(|r| body_lines(r, answer))
        .unwrap_or_default();
    let shadow = exchange
        .shadows
        .get(shadow_index)
        .and_then(|s| match &s.outcome {
            ShadowOutcome::Sent(o) => response_of(o),
            ShadowOutcome::Skipped(_) => None,
        })
        .map(|r| body_lines(r, answer))
        .unwrap_or_default();
    let lines = side_by_side(&primary, &shadow, &rules);
    Comparison {
        exchange_id: exchange.id,
        shadow_index,
        diff,
        headline,
        noise,
        request_body: typed_body_text(
            &exchange.request.body,
            &exchange.request.headers,
            schema(diff::MessageSide::Request),
        ),
        primary_body: primary.text(),
        shadow_body: shadow.text(),
        lines,
        grpc_decode,
    }
}

fn response_of(outcome: &UpstreamOutcome) -> Option<&CapturedResponse> {
    match outcome {
        UpstreamOutcome::Response(r) => Some(r),
        UpstreamOutcome::Failed(f) => f.partial.as_ref(),
    }
}

/// A body's lines, each with the JSON Pointer of the field it shows (`None` for text).
#[derive(Debug, Default)]
struct Lines {
    lines: Vec<(String, Option<String>)>,
}

impl Lines {
    fn text(&self) -> String {
        let texts: Vec<&str> = self.lines.iter().map(|(t, _)| t.as_str()).collect();
        texts.join("\n")
    }
}

fn body_lines(response: &CapturedResponse, schema: Option<diff::GrpcSchema<'_>>) -> Lines {
    let bytes = decoded(&response.body, &response.headers);
    let mut lines = match structured(&response.headers, &bytes, schema) {
        Some(value) => {
            let mut out = Vec::new();
            pretty(&value, "", 0, None, false, &mut out);
            Lines { lines: out }
        }
        None => Lines {
            lines: plain_text(&bytes)
                .lines()
                .map(|l| (l.to_owned(), None))
                .collect(),
        },
    };
    if let Some(note) = cut_note(&response.body) {
        lines.lines.push((note, None));
    }
    lines
}

/// Pretty-prints `value` as `serde_json::to_string_pretty` does (two spaces), each line
/// with the pointer of the field it belongs to.
fn pretty(
    value: &serde_json::Value,
    pointer: &str,
    depth: usize,
    key: Option<&str>,
    comma: bool,
    out: &mut Vec<(String, Option<String>)>,
) {
    use serde_json::Value;
    let indent = "  ".repeat(depth);
    let lead = match key {
        Some(k) => format!("{indent}{}: ", serde_json::Value::from(k)),
        None => indent.clone(),
    };
    let tail = if comma { "," } else { "" };
    let here = Some(pointer.to_owned());
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push((format!("{lead}{{"), here.clone()));
            let n = map.len();
            for (i, (k, v)) in map.iter().enumerate() {
                let child = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                pretty(v, &child, depth + 1, Some(k), i + 1 < n, out);
            }
            out.push((format!("{indent}}}{tail}"), here));
        }
        Value::Array(items) if !items.is_empty() => {
            out.push((format!("{lead}["), here.clone()));
            let n = items.len();
            for (i, v) in items.iter().enumerate() {
                pretty(
                    v,
                    &format!("{pointer}/{i}"),
                    depth + 1,
                    None,
                    i + 1 < n,
                    out,
                );
            }
            out.push((format!("{indent}]{tail}"), here));
        }
        scalar => out.push((format!("{lead}{scalar}{tail}"), here)),
    }
}

/// Lines of both bodies in diff order; a line of an ignored field is left unmarked.
fn side_by_side(primary: &Lines, shadow: &Lines, rules: &IgnoreRules) -> Vec<BodyLine> {
    let old: Vec<&str> = primary.lines.iter().map(|(t, _)| t.as_str()).collect();
    let new: Vec<&str> = shadow.lines.iter().map(|(t, _)| t.as_str()).collect();
    // A JSON line is ignored with its field; a text line only with the whole body.
    let ignored = |pointer: &Option<String>| match pointer {
        Some(p) => rules.ignores(&FieldPath::Json(p.clone())),
        None => rules.body,
    };
    let diff = similar::TextDiff::from_slices(&old, &new);
    let mut out = Vec::with_capacity(old.len().max(new.len()));
    for change in diff.iter_all_changes() {
        let (side, line) = match change.tag() {
            similar::ChangeTag::Equal => (LineSide::Both, None),
            similar::ChangeTag::Delete => (
                LineSide::Primary,
                change.old_index().and_then(|i| primary.lines.get(i)),
            ),
            similar::ChangeTag::Insert => (
                LineSide::Shadow,
                change.new_index().and_then(|i| shadow.lines.get(i)),
            ),
        };
        out.push(BodyLine {
            side,
            text: (*change.value()).to_owned(),
            ignored: line.is_some_and(|(_, pointer)| ignored(pointer)),
        });
    }
    out
}

/// The body's bytes, decoded when compressed (up to the shown limit).
fn decoded(body: &CapturedBody, headers: &http::HeaderMap) -> Vec<u8> {
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let raw: &[u8] = &body.bytes;
    let mut decoded = Vec::new();
    let limit = MAX_SHOWN_BODY as u64;
    let ok = match encoding.as_str() {
        "gzip" | "x-gzip" => flate2::read::GzDecoder::new(raw)
            .take(limit)
            .read_to_end(&mut decoded)
            .is_ok(),
        "deflate" => flate2::read::ZlibDecoder::new(raw)
            .take(limit)
            .read_to_end(&mut decoded)
            .is_ok(),
        "br" => brotli::Decompressor::new(raw, 4096)
            .take(limit)
            .read_to_end(&mut decoded)
            .is_ok(),
        _ => false,
    };
    if ok { decoded } else { raw.to_vec() }
}

fn plain_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.chars().take(MAX_SHOWN_BODY).collect(),
        Err(_) => format!("({} bytes of binary data)", bytes.len()),
    }
}

fn cut_note(body: &CapturedBody) -> Option<String> {
    body.truncated.then(|| {
        format!(
            "... (cut at the capture cap: {} of {} bytes captured)",
            body.bytes.len(),
            body.total_len
        )
    })
}

/// A body as a JSON value: its gRPC messages decoded by field number (as the diff reads
/// them), or the JSON document it is.
fn structured(
    headers: &http::HeaderMap,
    bytes: &[u8],
    schema: Option<diff::GrpcSchema<'_>>,
) -> Option<serde_json::Value> {
    diff::grpc_messages_with(headers, bytes, schema).or_else(|| serde_json::from_slice(bytes).ok())
}

/// A body as text: decoded when compressed, pretty-printed when JSON or gRPC, cut when huge.
pub fn body_text(body: &CapturedBody, headers: &http::HeaderMap) -> String {
    typed_body_text(body, headers, None)
}

/// [`body_text`], gRPC messages read with `schema` when given.
fn typed_body_text(
    body: &CapturedBody,
    headers: &http::HeaderMap,
    schema: Option<diff::GrpcSchema<'_>>,
) -> String {
    let bytes = decoded(body, headers);
    let mut text = match structured(headers, &bytes, schema) {
        Some(v) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| plain_text(&bytes)),
        None => plain_text(&bytes),
    };
    if let Some(note) = cut_note(body) {
        text.push('\n');
        text.push_str(&note);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_lines_are_serde_jsons_and_name_their_fields() {
        let value: serde_json::Value =
            serde_json::from_str(r#"{"a":{"b":[1,{"c":"x"}],"e":{}},"d/e":null,"f":[]}"#).unwrap();
        let mut out = Vec::new();
        pretty(&value, "", 0, None, false, &mut out);
        let text: Vec<&str> = out.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            text.join("\n"),
            serde_json::to_string_pretty(&value).unwrap()
        );
        let at = |line: &str| {
            out.iter()
                .find(|(t, _)| t.trim() == line)
                .and_then(|(_, p)| p.clone())
        };
        assert_eq!(at("\"c\": \"x\"").as_deref(), Some("/a/b/1/c"));
        assert_eq!(at("\"d/e\": null,").as_deref(), Some("/d~1e"));
        assert_eq!(at("1,").as_deref(), Some("/a/b/0"));
    }

    #[test]
    fn lines_of_an_ignored_field_are_not_marked() {
        let body = |text: &str| CapturedResponse {
            trailers: None,
            status: http::StatusCode::OK,
            headers: http::HeaderMap::new(),
            body: CapturedBody {
                bytes: bytes::Bytes::copy_from_slice(text.as_bytes()),
                total_len: text.len() as u64,
                truncated: false,
            },
            ttfb: std::time::Duration::ZERO,
            total: std::time::Duration::ZERO,
            version: http::Version::HTTP_11,
        };
        let primary = body_lines(&body(r#"{"id":1,"served_at":"10:00","stars":4}"#), None);
        let shadow = body_lines(&body(r#"{"id":1,"served_at":"10:01","stars":5}"#), None);
        let rules = IgnoreRules::parse("/served_at").unwrap();
        let lines = side_by_side(&primary, &shadow, &rules);
        let marked: Vec<&str> = lines
            .iter()
            .filter(|l| l.side != LineSide::Both && !l.ignored)
            .map(|l| l.text.trim())
            .collect();
        assert_eq!(marked, ["\"stars\": 4", "\"stars\": 5"]);
        let ignored: Vec<&str> = lines
            .iter()
            .filter(|l| l.ignored)
            .map(|l| l.text.trim())
            .collect();
        assert_eq!(
            ignored,
            ["\"served_at\": \"10:00\",", "\"served_at\": \"10:01\","]
        );
    }
}
