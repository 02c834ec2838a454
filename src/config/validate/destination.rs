//! A destination of a route or a mirror (istio/istio `validateDestination`,
//! `validateSubsetName`, `validatePortSelector`), and the subset it names
//! (`istioctl analyze`'s DestinationRuleAnalyzer, IST0101).

use super::super::hosts::fqdn;
use super::super::model::{Destination, DestinationRule};
use super::super::names::is_dns1123_label;
use super::super::{Resource, codes};
use super::{Checker, DestinationRole};

impl Checker<'_> {
    pub(super) fn destination(
        &mut self,
        r: &Resource,
        ns: &str,
        path: &str,
        d: &Destination,
        role: DestinationRole,
    ) {
        let what = match role {
            DestinationRole::Route => "route destination",
            DestinationRole::Mirror => "mirror",
        };
        if d.host.trim().is_empty() {
            self.error(
                codes::MISSING_HOST,
                r,
                &format!("{path}.host"),
                format!("{what} has no host"),
                Some("add `host: reviews-v2` (a service name or an FQDN)".into()),
            );
            return;
        }
        let host_field = format!("{path}.host");
        if d.host == "*" {
            self.error(
                codes::INVALID_HOST,
                r,
                &host_field,
                format!("{what} host `*` is invalid; a destination names one service"),
                None,
            );
        } else {
            self.host_name(r, &host_field, &format!("{what} host"), &d.host);
        }
        if let Some(port) = &d.port {
            match port.number {
                Some(p) if (1..=65535).contains(&p) => {}
                Some(p) => self.error(
                    codes::PORT_RANGE,
                    r,
                    &format!("{path}.port.number"),
                    format!("port {p} is outside 1..65535"),
                    None,
                ),
                None => self.error(
                    codes::PORT_RANGE,
                    r,
                    &format!("{path}.port"),
                    "`port` has no `number`; Istio requires a port number in 1..65535".into(),
                    Some("write `port: {number: 9080}`, or drop `port`".into()),
                ),
            }
        }
        // An empty subset is no subset, as in Istio.
        let Some(subset) = d.subset.as_deref().filter(|s| !s.is_empty()) else {
            return;
        };
        if !is_dns1123_label(subset) {
            self.error(
                codes::INVALID_NAME,
                r,
                &format!("{path}.subset"),
                format!("subset name `{subset}` is invalid: Istio requires a DNS label (letters, digits and `-`, at most 63)"),
                None,
            );
            return;
        }
        self.subset_reference(r, ns, path, d, subset, role);
    }

    /// IST0101 when no DestinationRule for the host defines the subset.
    fn subset_reference(
        &mut self,
        r: &Resource,
        ns: &str,
        path: &str,
        d: &Destination,
        subset: &str,
        role: DestinationRole,
    ) {
        let what = match role {
            DestinationRole::Route => "route destination",
            DestinationRole::Mirror => "mirror",
        };
        let host = fqdn(&d.host, ns);
        let rules: Vec<(&Resource, &DestinationRule)> =
            self.set.destination_rules_for(&host).collect();
        if rules
            .iter()
            .any(|(_, dr)| dr.spec.subsets.iter().any(|s| s.name == subset))
        {
            return;
        }
        let existing: Vec<String> = rules
            .iter()
            .flat_map(|(_, dr)| dr.spec.subsets.iter().map(|s| s.name.clone()))
            .collect();
        let message = if rules.is_empty() {
            format!(
                "{what} names subset `{subset}` of host `{}`, but no DestinationRule for that host exists",
                d.host
            )
        } else {
            format!(
                "{what} names subset `{subset}` of host `{}`, but its DestinationRule defines only {}",
                d.host,
                if existing.is_empty() {
                    "no subsets".to_owned()
                } else {
                    existing
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )
        };
        let consequence = match role {
            DestinationRole::Mirror => {
                "Istio accepts this YAML but the shadow never receives a copy"
            }
            DestinationRole::Route => "Istio accepts this YAML but the requests fail with 503",
        };
        let close = existing.iter().find(|e| {
            // Subset names are short (v1, v2): only a case slip or a typo in a longer name
            // is a likely mistake, never another version.
            strsim::levenshtein(&e.to_ascii_lowercase(), &subset.to_ascii_lowercase())
                <= e.len() / 4
        });
        let help = match close {
            Some(close) => format!("{consequence}. Did you mean subset `{close}`?"),
            None => format!(
                "{consequence}. Define the subset, e.g.\n              apiVersion: networking.istio.io/v1\n              kind: DestinationRule\n              metadata: {{name: {name}}}\n              spec:\n                host: {host_w}\n                subsets:\n                - name: {subset}\n                  labels: {{version: {subset}}}",
                name = d.host.split('.').next().unwrap_or(&d.host),
                host_w = d.host,
            ),
        };
        self.error(
            codes::REFERENCED_RESOURCE_NOT_FOUND,
            r,
            &format!("{path}.subset"),
            message,
            Some(help),
        );
    }
}
