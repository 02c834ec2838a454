//! Who is asking: the client workload the lab's sidecar belongs to (or the gateway the lab
//! acts as). Istio prunes match blocks by it when it builds a proxy's routes
//! (`route.go` `sourceMatchHTTP`), so the route table is compiled for one workload.

use crate::config::model::{HttpMatchRequest, OrderedMap, VirtualService};

/// The gateway name a sidecar's routes are built for.
pub const MESH: &str = "mesh";

/// The lab's client workload: its labels and namespace, or the gateway the lab acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Labels of the client workload (`sourceLabels` must be a subset of them).
    pub labels: OrderedMap<String>,
    /// Namespace of the client workload (`sourceNamespace` must equal it).
    pub namespace: String,
    /// `namespace/name` of the Gateway the lab acts as; `None`: the lab is a sidecar
    /// (gateway `mesh`).
    pub gateway: Option<String>,
}

impl Default for Workload {
    /// A workload with no labels in namespace `default`, inside the mesh.
    fn default() -> Self {
        Self {
            labels: OrderedMap::default(),
            namespace: "default".to_owned(),
            gateway: None,
        }
    }
}

/// A workload setting that does not parse: what and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// A label that is not `key=value`.
    #[error("`{0}` is not KEY=VALUE; write the labels as app=productpage,version=v1")]
    Label(String),
    /// A gateway that is not `namespace/name`.
    #[error("`{0}` is not NAMESPACE/NAME; write e.g. istio-system/my-gateway")]
    Gateway(String),
}

impl Workload {
    /// Parses the lab's workload settings as `mirrorlab run` and the app take them:
    /// labels `k=v,k=v`, a namespace (empty: `default`), a gateway `ns/name` (empty: none,
    /// the lab is a sidecar).
    pub fn parse(labels: &str, namespace: &str, gateway: &str) -> Result<Self, WorkloadError> {
        Ok(Self {
            labels: parse_labels(labels)?,
            namespace: match namespace.trim() {
                "" => "default".to_owned(),
                ns => ns.to_owned(),
            },
            gateway: parse_gateway(gateway)?,
        })
    }

    /// The gateway name the proxy's routes are built for: `mesh`, or `namespace/name`.
    pub fn gateway_name(&self) -> &str {
        self.gateway.as_deref().unwrap_or(MESH)
    }

    /// Whether a gateway reference written in a resource of `namespace` names this proxy:
    /// `mesh`, `namespace/name`, or a bare `name` in the resource's own namespace.
    fn is_named_by(&self, reference: &str, namespace: &str) -> bool {
        match &self.gateway {
            None => reference == MESH,
            Some(own) => {
                if reference == MESH {
                    return false;
                }
                match reference.split_once('/') {
                    Some((ns, name)) => {
                        let ns = if ns == "." { namespace } else { ns };
                        own.split_once('/') == Some((ns, name))
                    }
                    None => own.split_once('/') == Some((namespace, reference)),
                }
            }
        }
    }

    /// Whether a VirtualService's routes apply to this proxy: `spec.gateways` absent means
    /// `mesh`. `None` when they do; else why not, for the trace.
    pub fn passes_over(&self, vs: &VirtualService) -> Option<String> {
        let namespace = vs.metadata.namespace_or_default();
        let gateways: Vec<&str> = if vs.spec.gateways.is_empty() {
            vec![MESH]
        } else {
            vs.spec.gateways.iter().map(String::as_str).collect()
        };
        if gateways.iter().any(|g| self.is_named_by(g, namespace)) {
            return None;
        }
        Some(format!(
            "VirtualService {namespace}/{} applies to gateways {} and the lab acts as {}",
            vs.metadata.name.as_deref().unwrap_or_default(),
            gateways.join(", "),
            match &self.gateway {
                None => "a sidecar (mesh)".to_owned(),
                Some(g) => format!("gateway {g}"),
            }
        ))
    }

    /// Istio's `sourceMatchHTTP`: a block with `gateways` applies when one names this proxy
    /// (its `sourceLabels` and `sourceNamespace` are then not looked at); otherwise when its
    /// `sourceLabels` are a subset of the workload's and its `sourceNamespace` is the
    /// workload's.
    pub fn block_applies(&self, block: &HttpMatchRequest, namespace: &str) -> bool {
        if !block.gateways.is_empty() {
            return block
                .gateways
                .iter()
                .any(|g| self.is_named_by(g, namespace));
        }
        block
            .source_labels
            .iter()
            .all(|(k, v)| self.labels.get(k) == Some(v))
            && block
                .source_namespace
                .as_deref()
                .is_none_or(|ns| ns.is_empty() || ns == self.namespace)
    }
}

/// `app=productpage,version=v1`, in the order given.
pub fn parse_labels(text: &str) -> Result<OrderedMap<String>, WorkloadError> {
    let mut labels = OrderedMap::default();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                labels.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            _ => return Err(WorkloadError::Label(pair.to_owned())),
        }
    }
    Ok(labels)
}

/// `namespace/name`, or nothing for an empty text.
pub fn parse_gateway(text: &str) -> Result<Option<String>, WorkloadError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(Some(text.to_owned()))
        }
        _ => Err(WorkloadError::Gateway(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(yaml: &str) -> HttpMatchRequest {
        yaml_serde::from_str(yaml).expect("valid test YAML")
    }

    #[test]
    fn source_labels_and_namespace_are_tested_against_the_workload() {
        let mut w = Workload::default();
        let canary = block("sourceLabels: {app: productpage}");
        assert!(!w.block_applies(&canary, "default"));
        w.labels.insert("app".into(), "productpage".into());
        w.labels.insert("version".into(), "v1".into());
        assert!(
            w.block_applies(&canary, "default"),
            "a subset of the workload's labels"
        );
        assert!(!w.block_applies(&block("sourceNamespace: prod"), "default"));
        assert!(w.block_applies(&block("sourceNamespace: default"), "default"));
    }

    #[test]
    fn match_gateways_win_over_source_labels() {
        // route.go sourceMatchHTTP: with gateways set, sourceLabels are not checked.
        let w = Workload::default();
        assert!(w.block_applies(
            &block("gateways: [mesh]\nsourceLabels: {app: x}"),
            "default"
        ));
        assert!(!w.block_applies(&block("gateways: [my-gw]"), "default"));
        let gw = Workload {
            gateway: Some("istio-system/my-gw".into()),
            ..Workload::default()
        };
        assert!(gw.block_applies(&block("gateways: [istio-system/my-gw]"), "default"));
        assert!(gw.block_applies(&block("gateways: [my-gw]"), "istio-system"));
        assert!(!gw.block_applies(&block("gateways: [mesh]"), "default"));
    }

    #[test]
    fn settings_parse_or_say_how_to_write_them() {
        let w = Workload::parse("app=productpage, version=v1", "", "").expect("valid");
        assert_eq!(w.labels.get("version").map(String::as_str), Some("v1"));
        assert_eq!(w.namespace, "default");
        assert_eq!(w.gateway, None);
        assert!(
            Workload::parse("app", "", "")
                .unwrap_err()
                .to_string()
                .contains("KEY=VALUE")
        );
        assert!(
            Workload::parse("", "", "gw")
                .unwrap_err()
                .to_string()
                .contains("NAMESPACE/NAME")
        );
        let gw = Workload::parse("", "", "istio-system/ingress").expect("valid");
        assert_eq!(gw.gateway.as_deref(), Some("istio-system/ingress"));
    }
}
