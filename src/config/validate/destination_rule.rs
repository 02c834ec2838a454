//! A DestinationRule's own rules (istio/istio `ValidateDestinationRule`, `validateSubset`,
//! `validateWorkloadSelector`, `validateExportTo`): host, subsets, exportTo, workload
//! selector. Traffic policies are in `traffic_policy`.

use super::super::hosts::{fqdn, labels_contain};
use super::super::model::{DestinationRule, Opaque};
use super::super::names::{is_dns1123_label, validate_export_to};
use super::super::{Resource, codes};
use super::Checker;
use super::opaque::At;

impl Checker<'_> {
    pub(super) fn destination_rule(&mut self, r: &Resource, dr: &DestinationRule) {
        let ns = dr.metadata.namespace_or_default();
        self.refused_annotations(r, &dr.metadata);
        if dr.spec.host.trim().is_empty() {
            self.error(
                codes::MISSING_RESOURCE_HOST,
                r,
                "spec.host",
                "DestinationRule has no host".into(),
                Some("add `host: reviews-v2` (the service whose subsets this defines)".into()),
            );
        } else {
            self.host_name(r, "spec.host", "host", &dr.spec.host);
        }
        if let Some(tp) = &dr.spec.traffic_policy {
            self.traffic_policy(r, "spec.trafficPolicy", tp, ns);
        }
        self.subsets(r, dr);
        let with_selector = dr.spec.workload_selector.is_some();
        for e in validate_export_to(ns, &dr.spec.export_to, false, with_selector) {
            self.refuse(codes::INVALID_EXPORT_TO, r, "spec.exportTo", e.to_string());
        }
        if let Some(selector) = &dr.spec.workload_selector {
            self.workload_selector(r, "spec.workloadSelector", selector, "matchLabels");
        }
    }

    fn subsets(&mut self, r: &Resource, dr: &DestinationRule) {
        let ns = dr.metadata.namespace_or_default();
        let host = fqdn(&dr.spec.host, ns);
        let entry = self.set.service_entry_for(&host);
        let mut seen: Vec<&str> = Vec::new();
        for (s, subset) in dr.spec.subsets.iter().enumerate() {
            let field = format!("spec.subsets[{s}]");
            if seen.contains(&subset.name.as_str()) {
                self.error(
                    codes::DUPLICATE_SUBSET,
                    r,
                    &format!("{field}.name"),
                    format!("subset `{}` is defined twice", subset.name),
                    Some("subset names must be unique within a DestinationRule".into()),
                );
            }
            seen.push(&subset.name);
            if subset.name.is_empty() {
                self.error(
                    codes::INVALID_NAME,
                    r,
                    &field,
                    "subset has no name; Istio requires one".into(),
                    Some("add `name: v1`".into()),
                );
            } else if !is_dns1123_label(&subset.name) {
                self.refuse(
                    codes::INVALID_NAME,
                    r,
                    &format!("{field}.name"),
                    format!("subset name `{}` is invalid: Istio requires a DNS label (letters, digits and `-`, at most 63)", subset.name),
                );
            }
            self.labels(r, &format!("{field}.labels"), super::pairs(&subset.labels));
            if let Some(tp) = &subset.traffic_policy {
                self.traffic_policy(r, &format!("{field}.trafficPolicy"), tp, ns);
            }
            if let Some((se_r, se)) = entry
                && !se.spec.endpoints.is_empty()
                && !se
                    .spec
                    .endpoints
                    .iter()
                    .any(|ep| labels_contain(&ep.labels, &subset.labels))
            {
                let labels: Vec<String> = subset
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                self.warning(
                    codes::SUBSET_WITHOUT_ENDPOINTS,
                    r,
                    &format!("{field}.labels"),
                    format!(
                        "subset `{}` selects {{{}}}, but no endpoint of {} has those labels, so the lab cannot reach it",
                        subset.name,
                        labels.join(", "),
                        se_r.display_name()
                    ),
                    Some("add an endpoint with these labels to the ServiceEntry, or fix the subset's labels".into()),
                );
            }
        }
    }

    /// A workload selector's labels (`matchLabels` for a DestinationRule, `labels` for a
    /// ServiceEntry): no empty key and no `*` (the CRD's CEL rules too); none at all is
    /// accepted with a warning. Returns whether it has errors.
    pub(super) fn workload_selector(
        &mut self,
        r: &Resource,
        path: &str,
        selector: &Opaque,
        key: &str,
    ) -> bool {
        let at = At {
            value: selector,
            path,
        };
        let labels = at.entries(key);
        let mut bad = false;
        for (k, v) in &labels {
            let value = v.value.as_str().unwrap_or("");
            if k.is_empty() {
                bad = true;
                self.refuse(
                    codes::INVALID_LABELS,
                    r,
                    &v.path,
                    "a workload selector label key cannot be empty",
                );
            }
            if k.contains('*') || value.contains('*') {
                bad = true;
                self.refuse(
                    codes::INVALID_LABELS,
                    r,
                    &v.path,
                    format!("wildcards are not supported in a workload selector: `{k}={value}`"),
                );
            }
        }
        if labels.is_empty() {
            self.warning(
                codes::ISTIO_WARNING,
                r,
                path,
                "workload selector has no labels, so it selects every workload of the namespace"
                    .into(),
                Some(format!("add `{key}: {{app: ...}}`")),
            );
        }
        bad
    }
}
