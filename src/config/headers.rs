//! `headers.request` / `headers.response` (`set`, `add`, `remove`) compiled once, as Istio
//! translates them into an Envoy header parser: the builder `check` and the route table
//! share.
//!
//! Istio (`pilot/pkg/networking/core/route/route.go` `TranslateHeadersOperations`) turns
//! `set` into OVERWRITE_IF_EXISTS_OR_ADD and `add` into APPEND_IF_EXISTS_OR_ADD, sorted by
//! name, and drops pseudo-headers and `host`; a `:authority` or `host` entry in the request's
//! `set` (else `add`) becomes the route's host rewrite instead. Envoy's
//! `HeaderParser::evaluateHeaders` then applies every removal first, then every `set`, then
//! every `add`, and skips an empty value (Istio never sets `keep_empty_value`).

use http::{HeaderMap, HeaderName, HeaderValue};

use super::model::HeaderOperations;

/// A header operation Istio's translation or `http` refuses: which field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderOpError {
    /// Not a valid HTTP header name.
    #[error("`{name}` at {field} is not a valid HTTP header name")]
    Name {
        /// Field path, e.g. `headers.request.set.x-env`.
        field: String,
        /// The name as written.
        name: String,
    },
    /// Not a valid HTTP header value (control characters, a line break).
    #[error("the value of `{name}` at {field} is not a valid HTTP header value")]
    Value {
        /// Field path.
        field: String,
        /// The header name.
        name: String,
    },
}

/// One level of header operations, in Envoy's order: remove, then set, then add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderOps {
    /// Removed first.
    pub remove: Vec<HeaderName>,
    /// Then set, replacing every value of the name.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Then appended after any value already there.
    pub add: Vec<(HeaderName, HeaderValue)>,
}

/// What the request side of a `headers` block also says besides its operations: the
/// authority it sets (a `:authority` or `host` entry), which Istio turns into a host rewrite.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompiledHeaders {
    /// The operations on ordinary headers.
    pub ops: HeaderOps,
    /// `set[":authority"]` / `set.host`, else `add[...]`: the host rewrite.
    pub authority: Option<String>,
}

fn is_internal(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

impl HeaderOps {
    /// Compiles one `HeaderOperations`; `field` is its path (`spec.http[0].headers.request`).
    pub fn compile(
        operations: &HeaderOperations,
        field: &str,
    ) -> Result<CompiledHeaders, HeaderOpError> {
        let name = |n: &str, at: &str| {
            HeaderName::from_bytes(n.as_bytes()).map_err(|_| HeaderOpError::Name {
                field: format!("{field}.{at}"),
                name: n.to_owned(),
            })
        };
        let pairs = |map: &super::model::OrderedMap<String>, at: &str| {
            let mut sorted: Vec<(&String, &String)> =
                map.iter().filter(|(k, _)| !is_internal(k)).collect();
            // Istio sorts each map by key before it hands it to Envoy.
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            let mut out = Vec::with_capacity(sorted.len());
            for (k, v) in sorted {
                if v.is_empty() {
                    // Envoy skips an empty value unless keep_empty_value, which Istio never sets.
                    continue;
                }
                let value = HeaderValue::from_str(v).map_err(|_| HeaderOpError::Value {
                    field: format!("{field}.{at}.{k}"),
                    name: k.clone(),
                })?;
                out.push((name(k, at)?, value));
            }
            Ok(out)
        };
        let authority_in = |map: &super::model::OrderedMap<String>| {
            map.iter()
                .find(|(k, v)| {
                    (k.as_str() == ":authority" || k.eq_ignore_ascii_case("host")) && !v.is_empty()
                })
                .map(|(_, v)| v.clone())
        };
        let mut remove = Vec::with_capacity(operations.remove.len());
        for n in operations.remove.iter().filter(|n| !is_internal(n)) {
            remove.push(name(n, "remove")?);
        }
        Ok(CompiledHeaders {
            ops: HeaderOps {
                remove,
                set: pairs(&operations.set, "set")?,
                add: pairs(&operations.add, "add")?,
            },
            authority: authority_in(&operations.set).or_else(|| authority_in(&operations.add)),
        })
    }

    /// True when the operations change nothing.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    /// These operations followed by `later`'s, as one Envoy header parser holds them when
    /// Istio appends a lone destination's operations after the route's: removals still come
    /// first, then every set (so `later`'s set of a name wins), then every add.
    pub fn then(&self, later: &HeaderOps) -> HeaderOps {
        let join = |a: &[(HeaderName, HeaderValue)], b: &[(HeaderName, HeaderValue)]| {
            a.iter().chain(b).cloned().collect()
        };
        HeaderOps {
            remove: self.remove.iter().chain(&later.remove).cloned().collect(),
            set: join(&self.set, &later.set),
            add: join(&self.add, &later.add),
        }
    }

    /// Applies the operations to `headers`, as Envoy's header parser does.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }

    /// One line per operation for the route trace: `request header x-env set`.
    pub fn describe(&self, side: &str) -> Vec<String> {
        let mut out = Vec::new();
        for name in &self.remove {
            out.push(format!("{side} header {name} removed"));
        }
        for (name, value) in &self.set {
            out.push(format!(
                "{side} header {name} set to {}",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        for (name, value) in &self.add {
            out.push(format!(
                "{side} header {name} added: {}",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(yaml: &str) -> CompiledHeaders {
        let operations: HeaderOperations = yaml_serde::from_str(yaml).expect("valid test YAML");
        HeaderOps::compile(&operations, "headers.request").expect("valid operations")
    }

    #[test]
    fn removals_then_sets_then_adds_as_envoys_header_parser() {
        // header_parser.cc evaluateHeaders: removes, then overwrites, then appends.
        let compiled = ops("set: {x-a: one}\nadd: {x-a: two}\nremove: [x-a, x-b]");
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("client"));
        headers.insert("x-b", HeaderValue::from_static("client"));
        compiled.ops.apply(&mut headers);
        let a: Vec<_> = headers.get_all("x-a").iter().collect();
        assert_eq!(a, ["one", "two"]);
        assert!(!headers.contains_key("x-b"));
    }

    #[test]
    fn empty_values_and_internal_headers_are_dropped_and_authority_becomes_a_rewrite() {
        let compiled = ops("set: {x-empty: '', ':authority': other, host: h2, x-ok: v}");
        assert_eq!(compiled.ops.set.len(), 1);
        assert_eq!(compiled.ops.set[0].0, "x-ok");
        assert_eq!(compiled.authority.as_deref(), Some("other"));
        let compiled = ops("add: {host: added}");
        assert_eq!(compiled.authority.as_deref(), Some("added"));
        assert!(compiled.ops.is_empty());
    }

    #[test]
    fn a_later_set_of_the_same_name_wins_within_one_parser() {
        let route = ops("set: {x-v: route}").ops;
        let destination = ops("set: {x-v: destination}").ops;
        let mut headers = HeaderMap::new();
        route.then(&destination).apply(&mut headers);
        assert_eq!(headers["x-v"], "destination");
    }

    #[test]
    fn bad_names_and_values_say_where() {
        let operations: HeaderOperations =
            yaml_serde::from_str("set: {'bad name': v}").expect("valid test YAML");
        let err = HeaderOps::compile(&operations, "spec.http[0].headers.request").unwrap_err();
        assert!(
            err.to_string().contains("spec.http[0].headers.request.set"),
            "{err}"
        );
        let operations: HeaderOperations =
            yaml_serde::from_str("set: {x-a: \"line\\nbreak\"}").expect("valid test YAML");
        assert!(matches!(
            HeaderOps::compile(&operations, "h").unwrap_err(),
            HeaderOpError::Value { .. }
        ));
    }
}
