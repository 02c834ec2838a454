//! Host lookups across resources: which ServiceEntry defines a host, which DestinationRules
//! apply to it, what a subset selects. `check` and the route table both ask these, so they
//! answer from one place.

use super::hosts::{fqdn, host_matches};
use super::model::{Delegate, DestinationRule, OrderedMap, ServiceEntry, Subset, VirtualService};
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

/// Why a route's `delegate` cannot be used; Istio then skips the root route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelegateProblem {
    /// No VirtualService of that name and namespace.
    #[error("delegate VirtualService {0} not found")]
    NotFound(String),
    /// The VirtualService has hosts, so it is a root, not a delegate.
    #[error("{0} has hosts, so it is a root VirtualService, not a delegate")]
    HasHosts(String),
    /// Its `exportTo` hides it from the root's namespace.
    #[error("delegate {0} is not exported to namespace {1}")]
    NotExported(String, String),
}

impl ConfigSet {
    /// The delegate VirtualService `name` in `namespace` (the root's, when absent) that a
    /// route of a root in `root_namespace` names, as Istio looks it up
    /// (`virtualservice_controller.go` `mergeVirtualServices`): it must exist, have no hosts,
    /// and be exported to the root's namespace.
    pub fn delegate_for<'a>(
        &'a self,
        delegate: &Delegate,
        root_namespace: &str,
    ) -> Result<(&'a Resource, &'a VirtualService), DelegateProblem> {
        let name = delegate.name.as_deref().unwrap_or_default();
        let ns = delegate.namespace.as_deref().unwrap_or(root_namespace);
        let qualified = format!("{ns}/{name}");
        let (resource, vs) = self
            .virtual_services()
            .find(|(_, d)| {
                d.metadata.name.as_deref() == Some(name) && d.metadata.namespace_or_default() == ns
            })
            .ok_or_else(|| DelegateProblem::NotFound(qualified.clone()))?;
        if !vs.spec.hosts.is_empty() {
            return Err(DelegateProblem::HasHosts(qualified));
        }
        let exported = vs.spec.export_to.is_empty()
            || vs
                .spec
                .export_to
                .iter()
                .any(|e| e == "*" || e == root_namespace || (e == "." && ns == root_namespace));
        if !exported {
            return Err(DelegateProblem::NotExported(
                qualified,
                root_namespace.to_owned(),
            ));
        }
        Ok((resource, vs))
    }
}
