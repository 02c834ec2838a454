//! From a destination to the shared upstream it names: the cluster (host, subset, port),
//! its endpoints from the ServiceEntries and the policy its DestinationRule gives it.

use std::collections::HashMap;
use std::sync::Arc;

use super::policy::{ClusterPolicy, PolicyError};
use super::{EndpointAddr, Upstream};
use crate::config::ConfigSet;
use crate::config::hosts::{fqdn, labels_contain};
use crate::config::model::Destination;

/// Port used for a destination without `port.number` and no ServiceEntry port.
pub const DEFAULT_PORT: u16 = 80;

/// Resolves destinations to shared upstreams (one per host+subset+port, so round robin is
/// shared between routes that name the same destination).
pub(super) struct UpstreamResolver<'a> {
    pub set: &'a ConfigSet,
    pub cache: HashMap<(String, Option<String>, Option<u32>), Arc<Upstream>>,
}

impl UpstreamResolver<'_> {
    /// The shared upstream for `dest`, written in a resource of `namespace`, with the
    /// cluster policy its DestinationRule gives it.
    pub(super) fn upstream(
        &mut self,
        dest: &Destination,
        namespace: &str,
    ) -> Result<Arc<Upstream>, PolicyError> {
        let host = fqdn(&dest.host, namespace);
        let port = dest.port.as_ref().and_then(|p| p.number);
        let key = (host.clone(), dest.subset.clone(), port);
        if let Some(u) = self.cache.get(&key) {
            return Ok(Arc::clone(u));
        }
        // The cluster's port: the destination's, else the service's first (Istio's
        // GetDestinationCluster with a single-port service).
        let service_port = port.or_else(|| {
            self.set
                .service_entry_for(&host)
                .and_then(|(_, se)| se.spec.ports.first().map(|p| p.number))
        });
        let policy =
            ClusterPolicy::resolve(self.set, &host, dest.subset.as_deref(), service_port, port)?;
        let endpoints =
            resolve_endpoints(self.set, &host, &dest.host, dest.subset.as_deref(), port);
        let mut label = dest.host.clone();
        if let Some(p) = port {
            label.push_str(&format!(":{p}"));
        }
        if let Some(s) = &dest.subset {
            label.push_str(&format!("/{s}"));
        }
        let upstream = Arc::new(Upstream::with_policy(
            dest.host.clone(),
            dest.subset.clone(),
            port.and_then(|p| u16::try_from(p).ok()),
            label,
            endpoints,
            policy,
        ));
        self.cache.insert(key, Arc::clone(&upstream));
        Ok(upstream)
    }
}

/// Endpoints for a destination: the ServiceEntry endpoints whose labels contain the subset's
/// labels, on the ServiceEntry port matching `port`; with no ServiceEntry, the host itself
/// (an IP or a DNS name) on `port` (80 if absent).
pub fn resolve_endpoints(
    set: &ConfigSet,
    host_fqdn: &str,
    host_as_written: &str,
    subset: Option<&str>,
    port: Option<u32>,
) -> Vec<EndpointAddr> {
    let selector = subset.and_then(|s| set.subset_labels(host_fqdn, s));
    let Some((_, se)) = set.service_entry_for(host_fqdn) else {
        let port = port
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(DEFAULT_PORT);
        return vec![address(host_as_written, port)];
    };
    let se_port = match port {
        Some(n) => se.spec.ports.iter().find(|p| p.number == n),
        None => se.spec.ports.first(),
    };
    let service_port = port.or(se_port.map(|p| p.number));
    if se.spec.endpoints.is_empty() {
        // A DNS ServiceEntry without endpoints: the host itself is the address.
        let p = service_port
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(DEFAULT_PORT);
        return vec![address(host_as_written, p)];
    }
    se.spec
        .endpoints
        .iter()
        .filter(|ep| selector.is_none_or(|sel| labels_contain(&ep.labels, sel)))
        .filter_map(|ep| {
            let addr = ep.address.as_deref()?;
            let p = se_port
                .and_then(|sp| ep.ports.get(&sp.name).copied().or(sp.target_port))
                .or(service_port)?;
            Some(address(addr, u16::try_from(p).ok()?))
        })
        .collect()
}

fn address(host: &str, port: u16) -> EndpointAddr {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => EndpointAddr::Socket(std::net::SocketAddr::new(ip, port)),
        Err(_) => EndpointAddr::Dns {
            host: host.to_owned(),
            port,
        },
    }
}
