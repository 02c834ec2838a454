//! Primary-versus-shadow response diffs: status, headers and body.
//!
//! Bodies are decoded first (gzip, br, deflate). Two JSON bodies are compared structurally:
//! key order does not matter, numbers compare as numbers (`1` equals `1.0`), and each
//! difference is named by its JSON Pointer and kind. Other text is compared by line with
//! `similar`; binary bodies by length and SHA-256. A body cut at the capture cap is compared
//! only as far as both bodies go, and the diff says so.

mod decode;
mod grpc;

pub use grpc::{GrpcSchema, MessageSide, grpc_messages, grpc_messages_with};
mod headers;
mod json;
mod prepared;
mod text;

use serde::Serialize;
use serde_json::Value;

use super::ignore::{FieldPath, IgnoreRules};
use crate::capture::{CapturedResponse, Exchange, ShadowOutcome, UpstreamOutcome};
use headers::diff_headers;
use json::diff_json;
pub(crate) use prepared::PreparedResponse;
use text::{line_diff, sha256_hex, text_of};

pub use decode::{DecodedBody, decode_body};

/// Largest decoded body the diff looks at; a compressed body that inflates beyond this is
/// treated as cut here, so a zip bomb costs bounded memory.
pub const MAX_DECODED_BYTES: usize = 16 * 1024 * 1024;

/// Why a diff could not be computed for a selected exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    /// The exchange has no shadow record at that index.
    #[error("exchange {exchange_id} has {count} mirror records; there is no record {index}")]
    NoSuchShadow {
        /// The exchange.
        exchange_id: u64,
        /// Requested index.
        index: usize,
        /// Shadow records present.
        count: usize,
    },
    /// The primary gave no complete response, so there is nothing to compare against.
    #[error("exchange {exchange_id}: the primary gave no complete response ({reason})")]
    NoPrimaryResponse {
        /// The exchange.
        exchange_id: u64,
        /// What happened instead.
        reason: String,
    },
    /// The shadow gave no complete response.
    #[error("exchange {exchange_id}: mirror {target} gave no response ({reason})")]
    NoShadowResponse {
        /// The exchange.
        exchange_id: u64,
        /// Mirror destination label.
        target: String,
        /// What happened instead: skipped and why, or how it failed.
        reason: String,
    },
}

/// Kind of a difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// Present in the shadow only.
    Added,
    /// Present in the primary only.
    Removed,
    /// Present in both with different values of the same type.
    Changed,
    /// Present in both with different JSON types.
    TypeChanged,
    /// An array with the same elements in another order (reported at the array).
    OrderChanged,
}

impl DiffKind {
    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Added => "added",
            DiffKind::Removed => "removed",
            DiffKind::Changed => "changed",
            DiffKind::TypeChanged => "type_changed",
            DiffKind::OrderChanged => "order_changed",
        }
    }

    /// True for a change of the place's shape (present on one side only, or another JSON
    /// type), as opposed to a change of its value: a volatile field's values say nothing
    /// about a candidate, its shape still does.
    pub fn changes_shape(self) -> bool {
        matches!(
            self,
            DiffKind::Added | DiffKind::Removed | DiffKind::TypeChanged
        )
    }
}

/// Status codes of both sides, when they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatusDiff {
    /// Primary status.
    pub primary: u16,
    /// Shadow status.
    pub shadow: u16,
    /// An ignore rule covers status differences.
    pub ignored: bool,
}

/// One header that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderDifference {
    /// Lowercase header name.
    pub name: String,
    /// Added, removed or changed.
    pub kind: DiffKind,
    /// Primary values (empty when absent).
    pub primary: Vec<String>,
    /// Shadow values (empty when absent).
    pub shadow: Vec<String>,
    /// Ignored by a rule, or implied by another difference (content-length of differing
    /// bodies); shown greyed out and left out of the aggregates.
    pub ignored: bool,
}

/// One difference between two JSON bodies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonDifference {
    /// JSON Pointer of the place (`""` for the root).
    pub pointer: String,
    /// The same place with array indexes written `*`: the field path the aggregates count.
    pub field: String,
    /// Kind of difference.
    pub kind: DiffKind,
    /// Primary value (absent when added).
    pub primary: Option<Value>,
    /// Shadow value (absent when removed).
    pub shadow: Option<Value>,
    /// An ignore rule covers this place.
    pub ignored: bool,
}

/// Tag of one line of a text diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineTag {
    /// In both bodies (context).
    Equal,
    /// In the primary only.
    Removed,
    /// In the shadow only.
    Added,
}

/// One line of a text diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextLine {
    /// Added, removed or context.
    pub tag: LineTag,
    /// 1-based line number in the primary body.
    pub primary_line: Option<usize>,
    /// 1-based line number in the shadow body.
    pub shadow_line: Option<usize>,
    /// The line, without its newline.
    pub text: String,
}

/// Line diff of two text bodies: changed lines with three lines of context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextDiff {
    /// Lines in the shadow only.
    pub added: usize,
    /// Lines in the primary only.
    pub removed: usize,
    /// Hunks, separated by `None` where context was skipped.
    pub lines: Vec<Option<TextLine>>,
    /// More than the displayed lines differ.
    pub lines_cut: bool,
}

/// Comparison of two binary bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BinaryDiff {
    /// Primary body length compared.
    pub primary_len: usize,
    /// Shadow body length compared.
    pub shadow_len: usize,
    /// SHA-256 of the compared primary bytes, lowercase hex.
    pub primary_sha256: String,
    /// SHA-256 of the compared shadow bytes, lowercase hex.
    pub shadow_sha256: String,
}

/// What the body comparison found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BodyComparison {
    /// Byte-for-byte the same (after decoding, as far as compared).
    Identical,
    /// Both JSON; the list is empty when they are equal as JSON (key order, `1` vs `1.0`).
    Json {
        /// Differences in document order.
        differences: Vec<JsonDifference>,
    },
    /// Text compared by line.
    Text(TextDiff),
    /// Binary compared by length and hash.
    Binary(BinaryDiff),
}

/// Body part of a diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BodyDiff {
    /// What the comparison found.
    pub comparison: BodyComparison,
    /// A body was cut at the capture cap (or by the decode limit), so only the first
    /// `compared_bytes` decoded bytes of each were compared.
    pub truncated: bool,
    /// Decoded bytes compared on each side when `truncated`.
    pub compared_bytes: Option<usize>,
    /// `content-encoding` of the primary body, when it was decoded.
    pub primary_encoding: Option<String>,
    /// `content-encoding` of the shadow body, when it was decoded.
    pub shadow_encoding: Option<String>,
    /// Problems decoding either body (the raw bytes were compared instead).
    pub decode_errors: Vec<String>,
    /// An ignore rule covers whole-body differences (text and binary bodies).
    pub ignored: bool,
}

impl BodyDiff {
    /// True when the bodies are the same as far as they were compared (ignoring what the
    /// rules ignore).
    pub fn is_same(&self) -> bool {
        match &self.comparison {
            BodyComparison::Identical => true,
            BodyComparison::Json { differences } => differences.iter().all(|d| d.ignored),
            BodyComparison::Text(_) | BodyComparison::Binary(_) => self.ignored,
        }
    }
}

/// Full diff of one shadow response against its primary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseDiff {
    /// Status codes, when they differ.
    pub status: Option<StatusDiff>,
    /// Headers that differ, by name.
    pub headers: Vec<HeaderDifference>,
    /// The bodies.
    pub body: BodyDiff,
}

impl ResponseDiff {
    /// Field paths of the differences that are not ignored, for the aggregates; JSON places
    /// are given with array indexes as `*`, and each path appears once.
    pub fn field_paths(&self) -> Vec<FieldPath> {
        self.field_changes().into_iter().map(|c| c.path).collect()
    }

    /// The differences that are not ignored, one per field path (as [`field_paths`]), each
    /// saying whether the place changed its shape (type or presence) anywhere the path
    /// covers, or only its value.
    ///
    /// [`field_paths`]: ResponseDiff::field_paths
    pub fn field_changes(&self) -> Vec<FieldChange> {
        let mut out = Vec::new();
        if self.status.is_some_and(|s| !s.ignored) {
            out.push(FieldChange::value(FieldPath::Status));
        }
        out.extend(
            self.headers
                .iter()
                .filter(|h| !h.ignored)
                .map(|h| FieldChange {
                    path: FieldPath::Header(h.name.clone()),
                    shape: h.kind.changes_shape(),
                }),
        );
        match &self.body.comparison {
            BodyComparison::Identical => {}
            BodyComparison::Json { differences } => {
                for d in differences.iter().filter(|d| !d.ignored) {
                    let path = if d.pointer.is_empty() {
                        FieldPath::Body
                    } else {
                        FieldPath::Json(d.field.clone())
                    };
                    let shape = d.kind.changes_shape();
                    match out.iter_mut().find(|c: &&mut FieldChange| c.path == path) {
                        Some(seen) => seen.shape |= shape,
                        None => out.push(FieldChange { path, shape }),
                    }
                }
            }
            BodyComparison::Text(_) | BodyComparison::Binary(_) => {
                if !self.body.ignored {
                    out.push(FieldChange::value(FieldPath::Body));
                }
            }
        }
        out
    }

    /// True when nothing but ignored differences were found.
    pub fn is_same(&self) -> bool {
        self.status.is_none_or(|s| s.ignored)
            && self.headers.iter().all(|h| h.ignored)
            && self.body.is_same()
    }

    /// One-line summary for the traffic table: `same`, `status 200→500`, `3 fields differ`.
    pub fn summary(&self) -> String {
        summarize(self.status.filter(|s| !s.ignored), self.field_paths().len())
    }
}

/// One field where two responses differ, as the aggregates count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// Where.
    pub path: FieldPath,
    /// The place appeared, disappeared or changed its JSON type (somewhere the path
    /// covers), rather than only changing its value.
    pub shape: bool,
}

impl FieldChange {
    /// A change of value only.
    pub fn value(path: FieldPath) -> Self {
        Self { path, shape: false }
    }
}

/// The summary text of a full diff, which knows nothing of noise.
pub(crate) fn summarize(status: Option<StatusDiff>, differing_fields: usize) -> String {
    summarize_split(status, differing_fields, 0)
}

/// The summary text with real differences and noise apart: `same`, `3 fields differ`,
/// `1 differs, 2 noise`, `2 noise`, `status 200→500, 1 more differs, 2 noise`. `status`
/// is given only when the status difference is real, and is one of the `real` fields.
pub(crate) fn summarize_split(status: Option<StatusDiff>, real: usize, noise: usize) -> String {
    let noise_part = (noise > 0).then(|| format!("{noise} noise"));
    let join = |head: String| match &noise_part {
        Some(n) => format!("{head}, {n}"),
        None => head,
    };
    if let Some(s) = status {
        let head = format!("status {}→{}", s.primary, s.shadow);
        return join(match real.saturating_sub(1) {
            0 => head,
            1 => format!("{head}, 1 more differs"),
            n => format!("{head}, {n} more differ"),
        });
    }
    match (real, noise_part) {
        (0, None) => "same".to_owned(),
        (0, Some(n)) => n,
        (1, None) => "1 field differs".to_owned(),
        (r, None) => format!("{r} fields differ"),
        (1, Some(n)) => format!("1 differs, {n}"),
        (r, Some(n)) => format!("{r} differ, {n}"),
    }
}

/// How much detail to compute: the UI wants text hunks and values; the analyzer only needs
/// to know which fields differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detail {
    /// Everything, for display.
    Full,
    /// Field paths only (no text hunks, no hashes).
    Paths,
}

/// Diffs the shadow record at `shadow_index` of `exchange` against its primary.
pub fn diff_exchange(
    exchange: &Exchange,
    shadow_index: usize,
    rules: &IgnoreRules,
) -> Result<ResponseDiff, DiffError> {
    let record = exchange
        .shadows
        .get(shadow_index)
        .ok_or(DiffError::NoSuchShadow {
            exchange_id: exchange.id,
            index: shadow_index,
            count: exchange.shadows.len(),
        })?;
    let primary = match exchange.primary.as_ref().map(|p| &p.outcome) {
        Some(UpstreamOutcome::Response(r)) => r,
        Some(UpstreamOutcome::Failed(f)) => {
            return Err(DiffError::NoPrimaryResponse {
                exchange_id: exchange.id,
                reason: format!("{}: {}", f.kind.as_str(), f.detail),
            });
        }
        None => {
            return Err(DiffError::NoPrimaryResponse {
                exchange_id: exchange.id,
                reason: "no route matched".to_owned(),
            });
        }
    };
    let shadow = match &record.outcome {
        ShadowOutcome::Sent(UpstreamOutcome::Response(r)) => r,
        ShadowOutcome::Sent(UpstreamOutcome::Failed(f)) => {
            return Err(DiffError::NoShadowResponse {
                exchange_id: exchange.id,
                target: record.target.to_string(),
                reason: format!("{}: {}", f.kind.as_str(), f.detail),
            });
        }
        ShadowOutcome::Skipped(reason) => {
            return Err(DiffError::NoShadowResponse {
                exchange_id: exchange.id,
                target: record.target.to_string(),
                reason: format!("not sent: {}", reason.as_str()),
            });
        }
    };
    let path = Some(exchange.request.uri.as_str());
    let descriptors = rules.grpc.as_ref().map(|g| &g.pool);
    let prepared = |response, side| {
        PreparedResponse::new(response, side)
            .for_method(path)
            .with_descriptors(descriptors)
    };
    Ok(diff_prepared(
        &prepared(primary, "primary"),
        &prepared(shadow, "shadow"),
        rules,
        Detail::Full,
    ))
}

/// Diffs two captured responses in full detail.
pub fn diff_responses(
    primary: &CapturedResponse,
    shadow: &CapturedResponse,
    rules: &IgnoreRules,
) -> ResponseDiff {
    diff_with_detail(primary, shadow, rules, Detail::Full)
}

/// Diffs two responses with the given amount of detail.
pub(crate) fn diff_with_detail(
    primary: &CapturedResponse,
    shadow: &CapturedResponse,
    rules: &IgnoreRules,
    detail: Detail,
) -> ResponseDiff {
    diff_prepared(
        &PreparedResponse::new(primary, "primary"),
        &PreparedResponse::new(shadow, "shadow"),
        rules,
        detail,
    )
}

/// Diffs two prepared responses.
pub(crate) fn diff_prepared(
    p: &PreparedResponse<'_>,
    s: &PreparedResponse<'_>,
    rules: &IgnoreRules,
    detail: Detail,
) -> ResponseDiff {
    let (primary, shadow) = (p.response, s.response);
    let status = (primary.status != shadow.status).then(|| StatusDiff {
        primary: primary.status.as_u16(),
        shadow: shadow.status.as_u16(),
        ignored: rules.ignores(&FieldPath::Status),
    });
    let body = diff_bodies(p, s, rules, detail);
    let mut headers = diff_headers(
        &primary.headers,
        &shadow.headers,
        rules,
        !body_bytes_equal(&body),
    );
    if primary.trailers.is_some() || shadow.trailers.is_some() {
        // Trailers (gRPC's status and message) are compared as header fields: a gRPC
        // answer's outcome is there, not in its 200.
        let none = http::HeaderMap::new();
        headers.extend(diff_headers(
            primary.trailers.as_deref().unwrap_or(&none),
            shadow.trailers.as_deref().unwrap_or(&none),
            rules,
            false,
        ));
    }
    ResponseDiff {
        status,
        headers,
        body,
    }
}

/// True when the bodies compared equal byte for byte (JSON equality still lets
/// content-length differ, e.g. by whitespace, so only `Identical` counts).
fn body_bytes_equal(body: &BodyDiff) -> bool {
    matches!(body.comparison, BodyComparison::Identical) && !body.truncated
}

fn diff_bodies(
    p: &PreparedResponse<'_>,
    s: &PreparedResponse<'_>,
    rules: &IgnoreRules,
    detail: Detail,
) -> BodyDiff {
    let (pd, sd) = (&p.decoded, &s.decoded);
    let decode_errors: Vec<String> = [pd.error.clone(), sd.error.clone()]
        .into_iter()
        .flatten()
        .collect();
    let truncated = pd.cut || sd.cut;
    let mut body = BodyDiff {
        comparison: BodyComparison::Identical,
        truncated,
        compared_bytes: None,
        primary_encoding: pd.encoding.clone(),
        shadow_encoding: sd.encoding.clone(),
        decode_errors,
        ignored: rules.ignores(&FieldPath::Body),
    };
    let (pb, sb): (&[u8], &[u8]) = if truncated {
        // Compare only as far as both go: past the cut we know nothing.
        let n = pd.bytes.len().min(sd.bytes.len());
        body.compared_bytes = Some(n);
        (
            pd.bytes.get(..n).unwrap_or(&[]),
            sd.bytes.get(..n).unwrap_or(&[]),
        )
    } else {
        (&pd.bytes, &sd.bytes)
    };
    if pb == sb {
        return body;
    }
    // A cut JSON document does not parse, so cut bodies go to the text or binary comparison.
    if !truncated && let (Some(pj), Some(sj)) = (p.json(), s.json()) {
        let mut differences = Vec::new();
        let mut pointer = String::new();
        let mut field = String::new();
        diff_json(pj, sj, &mut pointer, &mut field, rules, &mut differences);
        body.comparison = BodyComparison::Json { differences };
        return body;
    }
    body.comparison = match (text_of(pb, truncated), text_of(sb, truncated)) {
        (Some(pt), Some(st)) => BodyComparison::Text(match detail {
            Detail::Full => line_diff(pt, st),
            Detail::Paths => TextDiff {
                added: 0,
                removed: 0,
                lines: Vec::new(),
                lines_cut: true,
            },
        }),
        _ => BodyComparison::Binary(match detail {
            Detail::Full => BinaryDiff {
                primary_len: pb.len(),
                shadow_len: sb.len(),
                primary_sha256: sha256_hex(pb),
                shadow_sha256: sha256_hex(sb),
            },
            Detail::Paths => BinaryDiff {
                primary_len: pb.len(),
                shadow_len: sb.len(),
                primary_sha256: String::new(),
                shadow_sha256: String::new(),
            },
        }),
    };
    body
}
