//! Reading the parts of a resource the model keeps as verbatim YAML (traffic policies, TCP
//! and TLS routes, workload selectors), with the field path of every value for diagnostics.

use super::super::lines::{push_index, push_key};
use super::super::model::Opaque;
use super::super::{Resource, codes};
use super::Checker;

/// A YAML value and the field path it stands at.
#[derive(Clone, Copy)]
pub(super) struct At<'v, 'p> {
    pub value: &'v Opaque,
    pub path: &'p str,
}

/// An owned path with its value, for children.
pub(super) struct Field<'v> {
    pub value: &'v Opaque,
    pub path: String,
}

impl<'v> Field<'v> {
    pub fn at(&self) -> At<'v, '_> {
        At {
            value: self.value,
            path: &self.path,
        }
    }
}

impl<'v> At<'v, '_> {
    /// The child `key`, when present and not null.
    pub fn get(&self, key: &str) -> Option<Field<'v>> {
        self.value
            .get(key)
            .filter(|v| !v.is_null())
            .map(|value| Field {
                value,
                path: push_key(self.path, key),
            })
    }

    /// Whether the child `key` is present and not null.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The child `key` as a string, if it is one.
    pub fn str(&self, key: &str) -> Option<&'v str> {
        self.value.get(key).and_then(Opaque::as_str)
    }

    /// The child `key` as a string, or `""`.
    pub fn str_or_empty(&self, key: &str) -> &'v str {
        self.str(key).unwrap_or("")
    }

    /// The child `key` as a number, if it is one.
    pub fn num(&self, key: &str) -> Option<f64> {
        self.value.get(key).and_then(Opaque::as_f64)
    }

    /// The child `key` as a boolean, if it is one.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.value.get(key).and_then(Opaque::as_bool)
    }

    /// The items of the sequence `key`, with their paths.
    pub fn items(&self, key: &str) -> Vec<Field<'v>> {
        let base = push_key(self.path, key);
        self.value
            .get(key)
            .and_then(Opaque::as_sequence)
            .map(|items| {
                items
                    .iter()
                    .enumerate()
                    .map(|(i, value)| Field {
                        value,
                        path: push_index(&base, i),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The string items of the sequence `key`.
    pub fn strings(&self, key: &str) -> Vec<&'v str> {
        self.value
            .get(key)
            .and_then(Opaque::as_sequence)
            .map(|items| items.iter().filter_map(Opaque::as_str).collect())
            .unwrap_or_default()
    }

    /// The `(key, value)` pairs of the mapping `key`, keys as strings.
    pub fn entries(&self, key: &str) -> Vec<(String, Field<'v>)> {
        let base = push_key(self.path, key);
        self.value
            .get(key)
            .and_then(Opaque::as_mapping)
            .map(|map| {
                map.iter()
                    .map(|(k, value)| {
                        let k = match k {
                            Opaque::String(s) => s.clone(),
                            other => yaml_serde::to_string(other)
                                .map(|t| t.trim_end().to_owned())
                                .unwrap_or_default(),
                        };
                        let path = push_key(&base, &k);
                        (k, Field { value, path })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Checker<'_> {
    /// A string field of an opaque part; reports a value of another type (the API server
    /// refuses it against the CRD's schema).
    pub(super) fn opaque_str<'v>(
        &mut self,
        r: &Resource,
        at: At<'v, '_>,
        key: &str,
    ) -> Option<&'v str> {
        let field = at.get(key)?;
        match field.value.as_str() {
            Some(s) => Some(s),
            None => {
                self.refuse(
                    codes::SCHEMA,
                    r,
                    &field.path,
                    format!("`{key}` must be a string"),
                );
                None
            }
        }
    }

    /// An integer field of an opaque part; reports a value of another type.
    pub(super) fn opaque_int(&mut self, r: &Resource, at: At<'_, '_>, key: &str) -> Option<i64> {
        let field = at.get(key)?;
        match field.value.as_i64() {
            Some(n) => Some(n),
            None => {
                self.refuse(
                    codes::SCHEMA,
                    r,
                    &field.path,
                    format!("`{key}` must be an integer"),
                );
                None
            }
        }
    }

    /// A string field whose value must be one of the CRD's enum values.
    pub(super) fn opaque_enum<'v>(
        &mut self,
        r: &Resource,
        at: At<'v, '_>,
        key: &str,
        allowed: &[&str],
    ) -> Option<&'v str> {
        let value = self.opaque_str(r, at, key)?;
        if !allowed.contains(&value) {
            self.enum_error(r, &push_key(at.path, key), value, allowed);
            return None;
        }
        Some(value)
    }

    /// A value outside the CRD's enum (`kubectl apply` refuses it).
    pub(super) fn enum_error(&mut self, r: &Resource, field: &str, value: &str, allowed: &[&str]) {
        self.error(
            codes::SCHEMA,
            r,
            field,
            format!("`{value}` is not a value Istio's schema allows here"),
            Some(format!("use one of {}", allowed.join(", "))),
        );
    }
}
