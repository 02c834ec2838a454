//! Host lookups across resources: which ServiceEntry defines a host, which DestinationRules
//! apply to it, what a subset selects. `check` and the route table both ask these, so they
//! answer from one place.

use super::hosts::{fqdn, host_matches};
use super::model::{DestinationRule, OrderedMap, ServiceEntry, Subset};
use super::{ConfigSet, Resource};

impl ConfigSet {
    /// The first ServiceEntry one of whose hosts matches `host_fqdn` (a normalized name, see
    /// [`fqdn`]), as a sidecar finds the service behind a destination host.
    pub fn service_entry_for(&self, host_fqdn: &str) -> Option<(&Resource, &ServiceEntry)> {
        self.service_entries().find(|(_, se)| {
            se.spec
                .hosts
                .iter()
                .any(|h| host_matches(&fqdn(h, se.metadata.namespace_or_default()), host_fqdn))
        })
    }

    /// Every DestinationRule whose host is `host_fqdn`, in load order.
    pub fn destination_rules_for<'a, 'h>(
        &'a self,
        host_fqdn: &'h str,
    ) -> impl Iterator<Item = (&'a Resource, &'a DestinationRule)> + use<'a, 'h> {
        self.destination_rules().filter(move |(_, dr)| {
            fqdn(&dr.spec.host, dr.metadata.namespace_or_default()) == host_fqdn
        })
    }

    /// The subset `name` of host `host_fqdn`: the first DestinationRule for the host that
    /// defines it. `None` when no rule does (the checks report that as IST0101).
    pub fn subset_for<'a>(&'a self, host_fqdn: &str, name: &str) -> Option<&'a Subset> {
        self.destination_rules_for(host_fqdn)
            .flat_map(|(_, dr)| dr.spec.subsets.iter())
            .find(|s| s.name == name)
    }

    /// The labels subset `name` of `host_fqdn` selects, if the subset exists.
    pub fn subset_labels(&self, host_fqdn: &str, name: &str) -> Option<&OrderedMap<String>> {
        self.subset_for(host_fqdn, name).map(|s| &s.labels)
    }
}
