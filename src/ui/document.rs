//! The open config: its path, the YAML that Save writes, the Istio resources loaded from
//! that YAML (what the forms edit), and whether there are unsaved edits.
//!
//! The YAML text is the source of truth. A form edit changes the resources, writes them
//! back to YAML and loads that YAML again, so the diagnostics (with line numbers) always
//! describe exactly what Save would write.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::{ConfigSet, Diagnostic, IstioObject, Resource, Severity, Source, codes};

use super::files::{self, SaveError};

/// Why a config could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Loading problems that mean the resources do not reflect the whole text, so a form
/// edit (which rewrites the text from the resources) would lose part of the file.
const TEXT_ONLY_CODES: [&str; 4] = [
    codes::READ_FAILED,
    codes::YAML_SYNTAX,
    codes::SCHEMA,
    codes::UNKNOWN_FIELD,
];

/// The open config.
#[derive(Debug)]
pub struct Document {
    path: Option<PathBuf>,
    text: String,
    config: ConfigSet,
    /// Edits since the document was created; compared with the saved and applied ones.
    revision: u64,
    saved_revision: u64,
    applied_revision: Option<u64>,
    /// Modification time of the file as we last read or wrote it.
    disk_mtime: Option<SystemTime>,
    /// What to call the document before it has a path.
    untitled_name: String,
    /// Comment lines the last form edit dropped with the fields it removed.
    comments_dropped: usize,
}

impl Default for Document {
    fn default() -> Self {
        Self::from_text(None, String::new())
    }
}

impl Document {
    fn from_text(path: Option<PathBuf>, text: String) -> Self {
        let mut doc = Self {
            path,
            text,
            config: ConfigSet::new(),
            revision: 0,
            saved_revision: 0,
            applied_revision: None,
            disk_mtime: None,
            untitled_name: "untitled.yaml".to_owned(),
            comments_dropped: 0,
        };
        doc.reload_config();
        doc
    }

    /// Reads a config file.
    pub fn load(path: &Path) -> Result<Self, OpenError> {
        let text = std::fs::read_to_string(path).map_err(|source| OpenError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut doc = Self::from_text(Some(path.to_path_buf()), text);
        doc.disk_mtime = files::modified_time(path);
        Ok(doc)
    }

    /// An unsaved document with this YAML (the built-in sample, a new file), called `name`
    /// until it is saved.
    pub fn untitled(name: &str, text: &str) -> Self {
        let mut doc = Self::from_text(None, text.to_owned());
        doc.untitled_name = name.to_owned();
        doc.reload_config();
        // Nothing of it is on disk yet.
        doc.revision = 1;
        doc
    }

    fn reload_config(&mut self) {
        let name = self.display_path();
        self.config = ConfigSet::load_str(&name, &self.text);
    }

    /// The file's path, if it has one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn display_path(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| self.untitled_name.clone(), |p| p.display().to_string())
    }

    /// The file name for titles, `untitled.yaml` before the first save.
    pub fn display_name(&self) -> String {
        self.path.as_deref().and_then(Path::file_name).map_or_else(
            || self.untitled_name.clone(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// True when there are edits that are not on disk.
    pub fn is_dirty(&self) -> bool {
        self.revision != self.saved_revision
    }

    /// The YAML that Save writes.
    pub fn yaml(&self) -> &str {
        &self.text
    }

    /// The resources and diagnostics loaded from [`Document::yaml`].
    pub fn config(&self) -> &ConfigSet {
        &self.config
    }

    /// Replaces the YAML text (an edit in the YAML panel).
    pub fn set_yaml(&mut self, text: String) {
        if text != self.text {
            self.text = text;
            self.revision += 1;
            self.reload_config();
        }
    }

    /// True when the YAML has comment lines.
    pub fn has_comments(&self) -> bool {
        self.text.lines().any(|l| l.trim_start().starts_with('#'))
    }

    /// Comment lines the last form edit dropped because it removed the fields they were
    /// written for.
    pub fn comments_dropped(&self) -> usize {
        self.comments_dropped
    }

    /// Why the form editor cannot edit the file now (the text does not load completely).
    pub fn form_blocker(&self) -> Option<String> {
        let problems: Vec<&Diagnostic> = self
            .config
            .diagnostics()
            .iter()
            .filter(|d| d.severity == Severity::Error && TEXT_ONLY_CODES.contains(&d.code))
            .collect();
        if problems.is_empty() {
            return None;
        }
        let first = problems
            .iter()
            .map(|d| format!("line {}: {}", d.line, d.message))
            .collect::<Vec<_>>()
            .join("; ");
        Some(format!(
            "Part of the YAML does not load ({first}), and editing in the form would drop it."
        ))
    }

    /// Edits resource `index` in place; call [`Document::model_edited`] when it changed.
    pub fn edit_resource<R>(
        &mut self,
        index: usize,
        edit: impl FnOnce(&mut Resource) -> R,
    ) -> Option<R> {
        self.config.resources_mut().get_mut(index).map(edit)
    }

    /// Writes the edited resources back to YAML, with the file's comments beside the
    /// fields they were written for, and reloads them (fresh diagnostics and line numbers).
    pub fn model_edited(&mut self) {
        match self.config.to_yaml_string(0) {
            Ok(text) => {
                let carried = crate::config::comments::carry_comments(&self.text, &text);
                self.comments_dropped = carried.dropped;
                self.text = carried.text;
                self.revision += 1;
                self.reload_config();
            }
            // The resources came from YAML and are plain data; if one cannot be written the
            // text stays as it was, and the reload below throws the failed edit away.
            Err(e) => {
                tracing::warn!("form edit not applied: {e}");
                self.reload_config();
            }
        }
    }

    /// Appends a resource and returns its index.
    pub fn add_resource(&mut self, object: IstioObject) -> usize {
        let resources = self.config.resources_mut();
        let document = resources.len();
        resources.push(Resource {
            source: Source {
                file: 0,
                document,
                line: 0,
                path_prefix: String::new(),
            },
            object,
        });
        // An empty file has no entry in the set's file list; write the text directly then.
        if self.text.trim().is_empty() {
            self.text = self.config.to_yaml_string(0).unwrap_or_default();
            self.revision += 1;
            self.reload_config();
        } else {
            self.model_edited();
        }
        self.config.resources().len().saturating_sub(1)
    }

    /// Replaces resource `index` with `objects` (in its place, in order).
    pub fn replace_resource(&mut self, index: usize, objects: Vec<IstioObject>) {
        let resources = self.config.resources_mut();
        if index >= resources.len() {
            return;
        }
        let source = resources[index].source.clone();
        let new: Vec<Resource> = objects
            .into_iter()
            .map(|object| Resource {
                source: source.clone(),
                object,
            })
            .collect();
        resources.splice(index..=index, new);
        self.model_edited();
    }

    /// Removes resource `index`.
    pub fn remove_resource(&mut self, index: usize) {
        let resources = self.config.resources_mut();
        if index < resources.len() {
            resources.remove(index);
            self.model_edited();
        }
    }

    /// Short summary for the status line.
    pub fn summary(&self) -> String {
        let (errors, warnings) = self.problem_counts();
        format!(
            "{} resources, {errors} errors, {warnings} warnings",
            self.config.resources().len()
        )
    }

    /// Errors and warnings in the config.
    pub fn problem_counts(&self) -> (usize, usize) {
        let count = |s| {
            self.config
                .diagnostics()
                .iter()
                .filter(|d| d.severity == s)
                .count()
        };
        (count(Severity::Error), count(Severity::Warning))
    }

    /// VirtualService hosts of the config, in order, then the Services HTTPRoutes bind to
    /// (what a client addresses: `reviews`, or `reviews.prod` in another namespace).
    pub fn hosts(&self) -> Vec<String> {
        use crate::config::gateway::GatewayApiObject;
        let routed = self.config.gateway_api().flat_map(|(_, o)| {
            let (namespace, parents) = match o {
                GatewayApiObject::HttpRoute(r) => {
                    (r.metadata.namespace_or_default(), &r.spec.parent_refs)
                }
                GatewayApiObject::GrpcRoute(r) => {
                    (r.metadata.namespace_or_default(), &r.spec.parent_refs)
                }
                _ => return Vec::new(),
            };
            parents
                .iter()
                .filter(|p| p.is_service())
                .map(|p| match p.namespace.as_deref().unwrap_or(namespace) {
                    "default" => p.name.clone(),
                    ns => format!("{}.{ns}", p.name),
                })
                .collect()
        });
        let mut hosts: Vec<String> = self
            .config
            .virtual_services()
            .flat_map(|(_, vs)| vs.spec.hosts.iter().cloned())
            .collect();
        for h in routed {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
        hosts
    }

    /// The edit count: each edit gives the document a new revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Notes that `revision` (as [`Document::revision`] gave it) runs in the proxy.
    pub fn mark_applied_revision(&mut self, revision: u64) {
        self.applied_revision = Some(revision);
    }

    /// True when the proxy runs an older revision than the one shown.
    pub fn applied_is_stale(&self) -> bool {
        self.applied_revision.is_some_and(|r| r != self.revision)
    }

    /// Writes the config to `path` atomically and makes `path` the document's path.
    pub fn save_as(&mut self, path: &Path) -> Result<(), SaveError> {
        files::save_atomically(path, &self.text)?;
        let renamed = self.path.as_deref() != Some(path);
        self.path = Some(path.to_path_buf());
        self.saved_revision = self.revision;
        self.disk_mtime = files::modified_time(path);
        if renamed {
            // Diagnostics name the file; give them the new name.
            self.reload_config();
        }
        Ok(())
    }

    /// True when the file's modification time moved since we read or wrote it.
    pub fn changed_on_disk(&self) -> bool {
        match &self.path {
            Some(path) => files::modified_time(path) != self.disk_mtime,
            None => false,
        }
    }

    /// The user keeps their version: stop reporting the current disk version as a change.
    pub fn accept_disk_version(&mut self) {
        if let Some(path) = &self.path {
            self.disk_mtime = files::modified_time(path);
        }
        // The disk no longer holds what we have, so our copy counts as unsaved.
        self.revision += 1;
    }

    /// Defines subset `subset` (selecting `version: subset`) for `host`: in the host's
    /// DestinationRule, or in a new one when it has none.
    pub fn define_subset(&mut self, host: &str, subset: &str) {
        let mut labels = crate::config::model::OrderedMap::new();
        labels.insert("version".to_owned(), subset.to_owned());
        let new = crate::config::model::Subset {
            name: subset.to_owned(),
            labels,
            ..Default::default()
        };
        let existing = self
            .config
            .resources_mut()
            .iter_mut()
            .find_map(|r| match &mut r.object {
                IstioObject::DestinationRule(dr) if super::form::same_host(&dr.spec.host, host) => {
                    Some(dr)
                }
                _ => None,
            });
        match existing {
            Some(dr) => {
                if !dr.spec.subsets.iter().any(|s| s.name == subset) {
                    dr.spec.subsets.push(new);
                }
                self.model_edited();
            }
            None => {
                let short = host.split('.').next().unwrap_or(host);
                let dr = crate::config::model::DestinationRule {
                    api_version: "networking.istio.io/v1".to_owned(),
                    kind: "DestinationRule".to_owned(),
                    metadata: crate::config::model::ObjectMeta {
                        name: Some(format!("{short}-dr")),
                        ..Default::default()
                    },
                    spec: crate::config::model::DestinationRuleSpec {
                        host: host.to_owned(),
                        subsets: vec![new],
                        ..Default::default()
                    },
                    status: None,
                };
                self.add_resource(IstioObject::DestinationRule(Box::new(dr)));
            }
        }
    }

    /// Adds `rule` to the `mirrorlab.dev/diff-ignore` annotation of the VirtualService (or
    /// HTTPRoute, GRPCRoute) `namespace/name`; returns the annotation's new value.
    pub fn add_ignore_rule(&mut self, virtual_service: &str, rule: &str) -> Option<String> {
        let key = crate::analysis::DIFF_IGNORE_ANNOTATION;
        let mut value = None;
        for r in self.config.resources_mut() {
            if r.object.qualified_name() != virtual_service {
                continue;
            }
            let metadata = match &mut r.object {
                IstioObject::VirtualService(vs) => Some(&mut vs.metadata),
                IstioObject::GatewayApi(g) => Some(g.metadata_mut()),
                _ => None,
            };
            if let Some(metadata) = metadata {
                let current = metadata.annotations.get(key).cloned().unwrap_or_default();
                let present = current.split([',', '\n']).any(|e| e.trim() == rule);
                let new = if present {
                    current
                } else if current.trim().is_empty() {
                    rule.to_owned()
                } else {
                    format!("{}, {rule}", current.trim_end())
                };
                metadata.annotations.insert(key.to_owned(), new.clone());
                value = Some(new);
            }
        }
        if value.is_some() {
            self.model_edited();
        }
        value
    }

    /// `(namespace/name, annotation)` of every VirtualService with diff ignore rules.
    pub fn ignore_annotations(&self) -> Vec<(String, String)> {
        let key = crate::analysis::DIFF_IGNORE_ANNOTATION;
        self.config
            .virtual_services()
            .filter_map(|(r, vs)| {
                vs.metadata
                    .annotations
                    .get(key)
                    .map(|v| (r.object.qualified_name(), v.clone()))
            })
            .collect()
    }
}

/// Route resource `index` of `set` in the other API: a VirtualService as an HTTPRoute, an
/// HTTPRoute or GRPCRoute as the VirtualServices Istio makes of it; and what the other API
/// cannot express, one line each. Nothing when the resource is not a route.
pub fn convert_resource(set: &ConfigSet, index: usize) -> (Vec<IstioObject>, Vec<String>) {
    use crate::config::gateway::{self, GatewayApiObject};
    let Some(resource) = set.resources().get(index) else {
        return (Vec::new(), Vec::new());
    };
    match &resource.object {
        IstioObject::VirtualService(vs) => {
            let (route, limits) = gateway::from_virtual_service::http_route_for(set, vs);
            (
                route
                    .map(|r| IstioObject::GatewayApi(Box::new(GatewayApiObject::HttpRoute(r))))
                    .into_iter()
                    .collect(),
                limits.iter().map(ToString::to_string).collect(),
            )
        }
        IstioObject::GatewayApi(_) => {
            let conversion = set.gateway_routes();
            let (services, limits) = gateway::to_virtual_service::virtual_services_for(
                set,
                &conversion,
                resource.source.file,
            );
            let objects = services
                .into_iter()
                .filter(|(at, _)| *at == index)
                .map(|(_, vs)| IstioObject::VirtualService(Box::new(vs)))
                .collect();
            (objects, limits.iter().map(ToString::to_string).collect())
        }
        _ => (Vec::new(), Vec::new()),
    }
}
