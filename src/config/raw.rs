//! Checks on a document's YAML before the typed model reads it, for what the model cannot
//! tell apart afterwards.

use super::lines::{DocumentIndex, push_key};
use super::load::join_prefix;
use super::model::Opaque;
use super::{Diagnostic, Source, codes};

/// Paths of `headers`, `withoutHeaders` and `queryParams` entries that are null: the typed
/// model would read them as `{}` (present), where Istio refuses them.
pub(super) fn null_string_matches(vs: &Opaque) -> Vec<String> {
    let mut out = Vec::new();
    let routes = vs
        .get("spec")
        .and_then(|s| s.get("http"))
        .and_then(Opaque::as_sequence);
    for (i, route) in routes.into_iter().flatten().enumerate() {
        let blocks = route.get("match").and_then(Opaque::as_sequence);
        for (j, block) in blocks.into_iter().flatten().enumerate() {
            for map in ["headers", "withoutHeaders", "queryParams"] {
                let entries = block.get(map).and_then(Opaque::as_mapping);
                for (k, v) in entries.into_iter().flatten() {
                    if v.is_null() {
                        let key = k.as_str().unwrap_or_default();
                        out.push(push_key(&format!("spec.http[{i}].match[{j}].{map}"), key));
                    }
                }
            }
        }
    }
    out
}

/// The error for a null string match at `path`.
pub(super) fn null_match_diagnostic(
    file: &str,
    doc: &DocumentIndex,
    source: &Source,
    resource: &str,
    path: String,
) -> Diagnostic {
    let full = join_prefix(&source.path_prefix, &path);
    Diagnostic::error(
        codes::SCHEMA,
        "a string match cannot be null (Istio refuses it)".to_owned(),
        file.to_owned(),
        doc.line_of(&full),
    )
    .with_resource(resource.to_owned())
    .with_field(path)
    .with_help("write `{}` to test that the header or parameter is present")
}
