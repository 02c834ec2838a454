//! The checks of `mirrorlab check`: Istio's admission validation (istio/istio
//! `pkg/config/validation`), the CEL rules of its CRDs and the `istioctl analyze` analyzers
//! for VirtualService, DestinationRule and ServiceEntry. Each finding names the file, line,
//! resource and field path, says why in Istio's terms, and how to fix it.
//!
//! One file per seam: a VirtualService's own rules, its HTTP routes and their parts, match
//! blocks, destinations, unreachable routes, TCP/TLS routes; DestinationRules and their
//! traffic policies; ServiceEntries; and the analyzers that look across resources.

mod destination;
mod destination_rule;
mod load_balancer;
mod matches;
mod opaque;
mod references;
mod route;
mod route_parts;
mod service_entry;
mod services;
mod tcp_tls;
mod traffic_policy;
mod unreachable;
mod virtual_service;

use super::model::ObjectMeta;
use super::{ConfigSet, Diagnostic, Resource, Severity, codes};

/// Every finding of the checks, in resource order.
pub(super) fn check(set: &ConfigSet) -> Vec<Diagnostic> {
    let mut c = Checker {
        set,
        out: Vec::new(),
    };
    for (r, vs) in set.virtual_services() {
        c.virtual_service(r, vs);
    }
    for (r, dr) in set.destination_rules() {
        c.destination_rule(r, dr);
    }
    for (r, se) in set.service_entries() {
        c.service_entry(r, se);
    }
    c.references();
    let conversion = super::gateway::convert_all(set);
    c.out.extend(super::gateway::check(set, &conversion));
    c.out
        .into_iter()
        .map(Diagnostic::mark_from_checks)
        .collect()
}

struct Checker<'a> {
    set: &'a ConfigSet,
    out: Vec<Diagnostic>,
}

/// What a destination is called in messages.
#[derive(Clone, Copy)]
enum DestinationRole {
    Route,
    Mirror,
}

impl Checker<'_> {
    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        r: &Resource,
        field: &str,
        message: String,
        help: Option<String>,
    ) {
        let mut d = Diagnostic::new(
            severity,
            code,
            message,
            self.set.file_name(r).to_owned(),
            self.set.line_of(r, field),
        )
        .with_resource(r.display_name())
        .with_field(field);
        if let Some(h) = help {
            d = d.with_help(h);
        }
        self.out.push(d);
    }

    fn error(
        &mut self,
        code: &'static str,
        r: &Resource,
        field: &str,
        msg: String,
        help: Option<String>,
    ) {
        self.push(Severity::Error, code, r, field, msg, help);
    }

    fn warning(
        &mut self,
        code: &'static str,
        r: &Resource,
        field: &str,
        msg: String,
        help: Option<String>,
    ) {
        self.push(Severity::Warning, code, r, field, msg, help);
    }

    fn info(
        &mut self,
        code: &'static str,
        r: &Resource,
        field: &str,
        msg: String,
        help: Option<String>,
    ) {
        self.push(Severity::Info, code, r, field, msg, help);
    }

    /// An error without a fix-it hint: Istio's reason is the message.
    fn refuse(&mut self, code: &'static str, r: &Resource, field: &str, msg: impl Into<String>) {
        self.error(code, r, field, msg.into(), None);
    }

    /// Kubernetes labels (`labels.Instance.Validate`), each at `base.key`.
    fn labels<'l>(
        &mut self,
        r: &Resource,
        base: &str,
        labels: impl IntoIterator<Item = (&'l str, &'l str)>,
    ) {
        for (k, v) in labels {
            if let Err(e) = super::names::validate_label(k, v) {
                self.refuse(
                    codes::INVALID_LABELS,
                    r,
                    &super::lines::push_key(base, k),
                    e.to_string(),
                );
            }
        }
    }

    /// Annotations Istio's webhook refuses on every kind the lab reads (`validateMetadata`).
    fn refused_annotations(&mut self, r: &Resource, meta: &ObjectMeta) {
        const INTERNAL: [&str; 3] = [
            "internal.istio.io/webhook-always-reject",
            "internal.istio.io/parent-namespace",
            "internal.istio.io/parents",
        ];
        for key in meta.annotations.keys() {
            let field = super::lines::push_key("metadata.annotations", key);
            if key == "istio.io/dry-run" {
                self.refuse(
                    codes::REFUSED_ANNOTATION,
                    r,
                    &field,
                    "Istio supports the `istio.io/dry-run` annotation on AuthorizationPolicy only; remove it",
                );
            } else if INTERNAL.contains(&key.as_str()) {
                self.refuse(
                    codes::REFUSED_ANNOTATION,
                    r,
                    &field,
                    format!("`{key}` is an annotation Istio sets itself; its webhook refuses it on user resources"),
                );
            }
        }
    }
}

/// A label map as `(key, value)` string pairs.
fn pairs(map: &super::model::OrderedMap<String>) -> impl Iterator<Item = (&str, &str)> {
    map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// `field` of `base`, or of the resource when `base` is empty.
fn join(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_owned()
    } else {
        format!("{base}.{field}")
    }
}
