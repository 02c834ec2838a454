//! What the schema tests share: the fields an API server would prune, and the CEL rules of
//! a structural schema, walked the same way for Istio's CRDs and the Gateway API's.

use serde_json::Value as Json;

/// Fields the API server would prune (structural schema): every object key must be in
/// `properties` unless the schema preserves unknown fields or is a map. `apiVersion`,
/// `kind` and `metadata` at the top are the API server's own.
pub fn unknown_fields(schema: &Json, instance: &Json, path: &str, out: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == true {
        return;
    }
    match instance {
        Json::Object(map) => {
            if let Some(props) = schema["properties"].as_object() {
                for (k, v) in map {
                    if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    match props.get(k) {
                        Some(s) => unknown_fields(s, v, &format!("{path}.{k}"), out),
                        None => out.push(format!("{path}.{k}")),
                    }
                }
            } else if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, v) in map {
                    unknown_fields(add, v, &format!("{path}.{k}"), out);
                }
            }
        }
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                unknown_fields(&schema["items"], item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Every CEL rule (`x-kubernetes-validations` entry) of a schema, with its field path
/// (`.spec.http[].timeout`).
pub fn cel_rules(schema: &Json, path: &str, out: &mut Vec<(String, Json)>) {
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push((path.to_owned(), rule.clone()));
    }
    if let Some(props) = schema["properties"].as_object() {
        for (k, v) in props {
            cel_rules(v, &format!("{path}.{k}"), out);
        }
    }
    if schema["items"].is_object() {
        cel_rules(&schema["items"], &format!("{path}[]"), out);
    }
    if schema["additionalProperties"].is_object() {
        cel_rules(&schema["additionalProperties"], &format!("{path}{{}}"), out);
    }
}
