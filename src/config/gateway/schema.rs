//! The Gateway API CRDs' structural schema, applied as the API server applies it on
//! `kubectl apply`: types, required fields, enums, patterns, lengths, item counts, ranges,
//! list keys, and no field the schema lacks. The schema is the project's own CRDs, carried
//! in `tests/gateway-api/gateway-structural.json` (made by
//! `scripts/gateway-api-structural-schema.py`), the same file the schema tests read, so what
//! `check` refuses and what the tests validate against cannot drift apart. The CEL rules of
//! the same CRDs are checked in `super::cel`.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value as Json;

/// The committed structural schema of the Gateway API CRDs (standard and experimental).
const SCHEMA_JSON: &str = include_str!("../../../tests/gateway-api/gateway-structural.json");

/// Which release channel of the CRDs a resource is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The standard channel, what most clusters install.
    Standard,
    /// The experimental channel, a superset (HTTPRoute `retry`, ...).
    Experimental,
}

impl Channel {
    fn key(self) -> &'static str {
        match self {
            Channel::Standard => "standard",
            Channel::Experimental => "experimental",
        }
    }
}

/// What the schema refuses, at which field path (`spec.rules[0].matches[0].path.type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaIssue {
    /// Field path inside the resource.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// A field the schema does not have (else a wrong value).
    pub unknown_field: bool,
    /// The fields allowed where an unknown one stands, for a "did you mean".
    pub allowed: Vec<String>,
}

struct Schemas {
    root: Json,
    patterns: HashMap<String, Option<Regex>>,
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        // The file is part of the build and checked by the tests: a parse failure is a
        // broken build, and the lab then checks nothing structural rather than crashing.
        let root: Json = serde_json::from_str(SCHEMA_JSON).unwrap_or(Json::Null);
        let mut patterns = HashMap::new();
        collect_patterns(&root, &mut patterns);
        Schemas { root, patterns }
    })
}

fn collect_patterns(schema: &Json, out: &mut HashMap<String, Option<Regex>>) {
    match schema {
        Json::Object(map) => {
            if let Some(Json::String(p)) = map.get("pattern") {
                out.entry(p.clone()).or_insert_with(|| Regex::new(p).ok());
            }
            map.values().for_each(|v| collect_patterns(v, out));
        }
        Json::Array(items) => items.iter().for_each(|v| collect_patterns(v, out)),
        _ => {}
    }
}

/// The openAPIV3Schema of `kind` at `version` (`v1`) in `channel`, if the CRDs have it.
pub fn schema_for(channel: Channel, kind: &str, version: &str) -> Option<&'static Json> {
    schemas().root["channels"][channel.key()][kind]["schemas"]
        .as_array()?
        .iter()
        .find(|s| {
            s["versions"]
                .as_array()
                .is_some_and(|v| v.iter().any(|x| x == version))
        })
        .map(|s| &s["openAPIV3Schema"])
}

/// The problems the schema of `kind` `version` in `channel` finds in `value` (the whole
/// resource). `apiVersion`, `kind` and `metadata` are the API server's own and not looked
/// into; `None` when the CRDs have no such kind or version.
pub fn validate(
    channel: Channel,
    kind: &str,
    version: &str,
    value: &Json,
) -> Option<Vec<SchemaIssue>> {
    let schema = schema_for(channel, kind, version)?;
    let mut out = Vec::new();
    if let Json::Object(map) = value {
        for (k, v) in map {
            match k.as_str() {
                "apiVersion" | "kind" | "metadata" => {}
                _ => match schema["properties"].get(k) {
                    Some(s) => walk(s, v, k, &mut out),
                    None => out.push(unknown(k, schema)),
                },
            }
        }
    }
    Some(out)
}

fn unknown(path: &str, parent: &Json) -> SchemaIssue {
    let allowed = parent["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    SchemaIssue {
        path: path.to_owned(),
        message: format!(
            "unknown field `{}` (the CRD's schema has no such field; kubectl apply rejects it)",
            path.rsplit('.').next().unwrap_or(path)
        ),
        unknown_field: true,
        allowed,
    }
}

fn issue(path: &str, message: String) -> SchemaIssue {
    SchemaIssue {
        path: path.to_owned(),
        message,
        unknown_field: false,
        allowed: Vec::new(),
    }
}

fn type_name(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

fn walk(schema: &Json, value: &Json, path: &str, out: &mut Vec<SchemaIssue>) {
    if value.is_null() && schema["nullable"] == true {
        return;
    }
    if let Some(expected) = schema["type"].as_str() {
        let got = type_name(value);
        let ok = got == expected || (expected == "number" && got == "integer");
        if !ok {
            out.push(issue(path, format!("must be {expected}, not {got}")));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        out.push(issue(
            path,
            format!("{value} is not one of {}", list.join(", ")),
        ));
    }
    match value {
        Json::String(s) => string_rules(schema, s, path, out),
        Json::Number(n) => number_rules(schema, n, path, out),
        Json::Array(items) => array_rules(schema, items, path, out),
        Json::Object(map) => object_rules(schema, map, path, out),
        _ => {}
    }
}

fn string_rules(schema: &Json, s: &str, path: &str, out: &mut Vec<SchemaIssue>) {
    let len = s.chars().count() as u64;
    if let Some(max) = schema["maxLength"].as_u64()
        && len > max
    {
        out.push(issue(
            path,
            format!("is {len} characters long; at most {max} are allowed"),
        ));
    }
    if let Some(min) = schema["minLength"].as_u64()
        && len < min
    {
        out.push(issue(
            path,
            format!("must be at least {min} characters long"),
        ));
    }
    if let Some(p) = schema["pattern"].as_str()
        && let Some(Some(re)) = schemas().patterns.get(p)
        && !re.is_match(s)
    {
        out.push(issue(path, format!("`{s}` does not match the pattern {p}")));
    }
}

fn number_rules(schema: &Json, n: &serde_json::Number, path: &str, out: &mut Vec<SchemaIssue>) {
    let Some(v) = n.as_f64() else {
        return;
    };
    if let Some(min) = schema["minimum"].as_f64()
        && v < min
    {
        out.push(issue(path, format!("{n} is below the minimum {min}")));
    }
    if let Some(max) = schema["maximum"].as_f64()
        && v > max
    {
        out.push(issue(path, format!("{n} is above the maximum {max}")));
    }
    if schema["format"] == "int32" && (v < f64::from(i32::MIN) || v > f64::from(i32::MAX)) {
        out.push(issue(path, format!("{n} does not fit a 32-bit integer")));
    }
}

fn array_rules(schema: &Json, items: &[Json], path: &str, out: &mut Vec<SchemaIssue>) {
    let n = items.len() as u64;
    if let Some(max) = schema["maxItems"].as_u64()
        && n > max
    {
        out.push(issue(
            path,
            format!("has {n} items; at most {max} are allowed"),
        ));
    }
    if let Some(min) = schema["minItems"].as_u64()
        && n < min
    {
        out.push(issue(path, format!("must have at least {min} items")));
    }
    for (i, item) in items.iter().enumerate() {
        walk(&schema["items"], item, &format!("{path}[{i}]"), out);
    }
    match schema["x-kubernetes-list-type"].as_str() {
        Some("set") => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    out.push(issue(
                        &format!("{path}[{i}]"),
                        format!("duplicate value {item}: the list is a set"),
                    ));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                .as_array()
                .map(|k| k.iter().filter_map(Json::as_str).collect())
                .unwrap_or_default();
            let key_of =
                |item: &Json| -> Vec<Json> { keys.iter().map(|k| item[*k].clone()).collect() };
            for (i, item) in items.iter().enumerate() {
                let key = key_of(item);
                if items[..i].iter().any(|other| key_of(other) == key) {
                    out.push(issue(
                        &format!("{path}[{i}]"),
                        format!(
                            "duplicate entry: another entry has the same {}",
                            keys.join(" and ")
                        ),
                    ));
                }
            }
        }
        _ => {}
    }
}

fn object_rules(
    schema: &Json,
    map: &serde_json::Map<String, Json>,
    path: &str,
    out: &mut Vec<SchemaIssue>,
) {
    for key in schema["required"].as_array().into_iter().flatten() {
        if let Some(k) = key.as_str()
            && !map.contains_key(k)
        {
            out.push(issue(path, format!("`{k}` is required")));
        }
    }
    let props = schema["properties"].as_object();
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
    for (k, v) in map {
        let child = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match props.and_then(|p| p.get(k)) {
            Some(s) => walk(s, v, &child, out),
            None => match schema.get("additionalProperties").filter(|a| a.is_object()) {
                Some(add) => walk(add, v, &child, out),
                None if preserve || props.is_none() => {}
                None => out.push(unknown(&child, schema)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: &str, spec: Json) -> Vec<SchemaIssue> {
        let value = serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": kind, "spec": spec});
        validate(Channel::Standard, kind, "v1", &value).expect("the CRDs have the kind")
    }

    #[test]
    fn the_committed_schema_holds_every_kind_in_both_channels() {
        for channel in [Channel::Standard, Channel::Experimental] {
            for kind in [
                "HTTPRoute",
                "GRPCRoute",
                "Gateway",
                "GatewayClass",
                "ReferenceGrant",
            ] {
                assert!(schema_for(channel, kind, "v1").is_some(), "{kind}");
            }
        }
        assert!(schema_for(Channel::Standard, "HTTPRoute", "v1beta1").is_some());
        assert!(schema_for(Channel::Standard, "GRPCRoute", "v1beta1").is_none());
    }

    #[test]
    fn types_enums_patterns_and_unknown_fields_are_refused() {
        let found = check(
            "HTTPRoute",
            serde_json::json!({"rules": [{"matches": [{"path": {"type": "Prefix", "value": "/"}}],
                "backendRefs": [{"name": "a", "port": 70000, "wieght": 1}]}],
                "hostnames": ["Bad_Host"]}),
        );
        let paths: Vec<&str> = found.iter().map(|i| i.path.as_str()).collect();
        assert!(
            paths.contains(&"spec.rules[0].matches[0].path.type"),
            "{found:#?}"
        );
        assert!(
            paths.contains(&"spec.rules[0].backendRefs[0].port"),
            "{found:#?}"
        );
        assert!(paths.contains(&"spec.hostnames[0]"), "{found:#?}");
        let typo = found
            .iter()
            .find(|i| i.path == "spec.rules[0].backendRefs[0].wieght")
            .expect("the typo is an unknown field");
        assert!(typo.unknown_field && typo.allowed.iter().any(|a| a == "weight"));
    }

    #[test]
    fn the_experimental_channel_has_retry_and_the_standard_one_does_not() {
        let spec = serde_json::json!({"rules": [{"retry": {"attempts": 2}}]});
        assert!(
            check("HTTPRoute", spec.clone())
                .iter()
                .any(|i| i.unknown_field)
        );
        let value = serde_json::json!({"spec": spec});
        let found = validate(Channel::Experimental, "HTTPRoute", "v1", &value).expect("kind");
        assert!(found.is_empty(), "{found:#?}");
    }
}
