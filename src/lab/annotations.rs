//! The lab-only annotations of a config's routes, read for the analysis: a
//! VirtualService's (or HTTPRoute's, GRPCRoute's) `mirrorlab.dev/diff-ignore` rules and
//! `mirrorlab.dev/grpc-descriptors` file. Istio ignores both.

use std::path::{Path, PathBuf};

use crate::analysis::descriptors::{DescriptorOrigin, GrpcDescriptors};
use crate::analysis::{DIFF_IGNORE_ANNOTATION, GRPC_DESCRIPTORS_ANNOTATION, IgnoreRules};
use crate::config::ConfigSet;
use crate::config::gateway::GatewayApiObject;
use crate::config::model::ObjectMeta;

/// What the annotations say.
#[derive(Debug, Default)]
pub(super) struct Annotated {
    /// Rules per route object (`namespace/name`).
    pub rules: Vec<(String, IgnoreRules)>,
    /// Annotations not in force, each with its file, line and why.
    pub problems: Vec<String>,
    /// VirtualServices, HTTPRoutes and GRPCRoutes in the config.
    pub route_objects: usize,
}

/// Reads the annotations of `set`'s route objects; `file` names the config (a descriptor
/// file is found relative to its directory).
pub(super) fn read(set: &ConfigSet, file: &str) -> Annotated {
    let mut annotated = Annotated::default();
    // HTTPRoutes and GRPCRoutes carry the annotations too: the trace names them as it
    // names VirtualServices (`namespace/name`).
    let route_objects = set.gateway_api().filter(|(_, o)| {
        matches!(
            o,
            GatewayApiObject::HttpRoute(_) | GatewayApiObject::GrpcRoute(_)
        )
    });
    let objects = set
        .virtual_services()
        .map(|(r, vs)| (r, &vs.metadata))
        .chain(route_objects.map(|(r, o)| (r, o.metadata())));
    for (resource, metadata) in objects {
        annotated.route_objects += 1;
        let name = resource.object.qualified_name();
        let line = resource.source.line;
        let mut problem = |annotation: &str, err: String| {
            annotated.problems.push(format!(
                "{file}:{line}: {name}: annotation {annotation} ignored: {err}"
            ));
        };
        let mut rules = match metadata.annotations.get(DIFF_IGNORE_ANNOTATION) {
            Some(text) => match IgnoreRules::parse(text) {
                Ok(rules) => Some(rules),
                Err(err) => {
                    problem(DIFF_IGNORE_ANNOTATION, err.to_string());
                    None
                }
            },
            None => None,
        };
        if let Some(path) = descriptors_path(metadata) {
            let path = relative_to(file, path);
            let origin = DescriptorOrigin::Annotation {
                file: path.display().to_string(),
            };
            match GrpcDescriptors::load(&path, origin) {
                Ok(loaded) => rules.get_or_insert_with(IgnoreRules::none).grpc = Some(loaded),
                Err(err) => problem(GRPC_DESCRIPTORS_ANNOTATION, err),
            }
        }
        if let Some(rules) = rules {
            annotated.rules.push((name, rules));
        }
    }
    annotated
}

fn descriptors_path(metadata: &ObjectMeta) -> Option<&str> {
    metadata
        .annotations
        .get(GRPC_DESCRIPTORS_ANNOTATION)
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
}

/// `path` as written in the annotation, relative to the config file's directory.
fn relative_to(file: &str, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match Path::new(file).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(path),
        _ => path.to_path_buf(),
    }
}
