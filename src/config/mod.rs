//! Istio resources: serde model, multi-document loading with line numbers, validation
//! diagnostics.
//!
//! A [`ConfigSet`] is what `istioctl analyze a.yaml b.yaml` sees: every VirtualService,
//! DestinationRule and ServiceEntry of several files, in order, each with the file and line it
//! came from, plus the diagnostics found while loading and checking them.

pub mod comments;
mod diagnostic;
pub mod duration;
pub mod gateway;
pub mod grpc;
pub mod headers;
pub mod hosts;
pub mod lines;
mod load;
pub mod lookup;
pub mod matcher;
pub mod mirror_headers;
pub mod model;
pub mod names;
pub mod policy;
pub mod protocol;
mod raw;
pub mod re2;
pub mod retry_on;
pub mod tls;
mod validate;

use std::fmt;
use std::path::PathBuf;

pub use diagnostic::{Diagnostic, Severity, codes};
pub use duration::{DurationError, parse_duration};
use lines::{DocumentIndex, push_index, push_key};
use load::join_prefix;
use model::{DestinationRule, Opaque, ServiceEntry, VirtualService};

/// API versions of `networking.istio.io` the lab loads.
pub const SUPPORTED_API_VERSIONS: [&str; 3] = [
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];

/// The kinds the lab reads.
const KNOWN_KINDS: [&str; 3] = ["VirtualService", "DestinationRule", "ServiceEntry"];

/// One loaded document of a kind the lab knows, or kept verbatim when it does not.
#[derive(Debug, Clone, PartialEq)]
pub enum IstioObject {
    /// A VirtualService.
    VirtualService(Box<VirtualService>),
    /// A DestinationRule.
    DestinationRule(Box<DestinationRule>),
    /// A ServiceEntry.
    ServiceEntry(Box<ServiceEntry>),
    /// A Gateway API resource: HTTPRoute, GRPCRoute, Gateway, GatewayClass, ReferenceGrant.
    GatewayApi(Box<gateway::GatewayApiObject>),
    /// Any other kind: ignored by the lab (with a warning) but written back unchanged.
    Other(Opaque),
}

impl IstioObject {
    /// The resource's kind, e.g. `VirtualService`.
    pub fn kind(&self) -> &str {
        match self {
            IstioObject::VirtualService(r) => &r.kind,
            IstioObject::DestinationRule(r) => &r.kind,
            IstioObject::ServiceEntry(r) => &r.kind,
            IstioObject::GatewayApi(r) => r.kind(),
            IstioObject::Other(v) => v.get("kind").and_then(Opaque::as_str).unwrap_or("?"),
        }
    }

    /// `namespace/name`, the namespace defaulting to `default`.
    pub fn qualified_name(&self) -> String {
        let meta = match self {
            IstioObject::VirtualService(r) => &r.metadata,
            IstioObject::DestinationRule(r) => &r.metadata,
            IstioObject::ServiceEntry(r) => &r.metadata,
            IstioObject::GatewayApi(r) => r.metadata(),
            IstioObject::Other(v) => {
                let meta = v.get("metadata");
                let get = |k: &str| {
                    meta.and_then(|m| m.get(k))
                        .and_then(Opaque::as_str)
                        .map(str::to_owned)
                };
                return format!(
                    "{}/{}",
                    get("namespace").unwrap_or_else(|| "default".into()),
                    get("name").unwrap_or_default()
                );
            }
        };
        format!(
            "{}/{}",
            meta.namespace_or_default(),
            meta.name.as_deref().unwrap_or_default()
        )
    }

    /// The resource as a YAML value, to write it back.
    pub fn to_value(&self) -> Result<Opaque, yaml_serde::Error> {
        match self {
            IstioObject::VirtualService(r) => yaml_serde::to_value(&**r),
            IstioObject::DestinationRule(r) => yaml_serde::to_value(&**r),
            IstioObject::ServiceEntry(r) => yaml_serde::to_value(&**r),
            IstioObject::GatewayApi(r) => r.to_value(),
            IstioObject::Other(v) => Ok(v.clone()),
        }
    }
}

/// Where a resource came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Index of the file in [`ConfigSet::files`].
    pub file: usize,
    /// Index of the YAML document in that file.
    pub document: usize,
    /// Line where the resource starts, 1-based.
    pub line: usize,
    /// Field path prefix of the resource inside its document: empty, or `items[3]` for an
    /// entry of a `kind: List`.
    pub path_prefix: String,
}

/// One resource with its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// Where it came from.
    pub source: Source,
    /// The resource itself.
    pub object: IstioObject,
}

impl Resource {
    /// `Kind namespace/name`, as diagnostics name a resource.
    pub fn display_name(&self) -> String {
        format!("{} {}", self.object.kind(), self.object.qualified_name())
    }
}

/// One loaded file: its name as given, its text and its document index.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user gave it (or the name passed to [`ConfigSet::load_str`]).
    pub name: String,
    /// The file's text.
    pub text: String,
    documents: Vec<DocumentIndex>,
}

/// Everything loaded from one or more files: resources in order, and diagnostics.
#[derive(Debug, Clone, Default)]
pub struct ConfigSet {
    files: Vec<SourceFile>,
    resources: Vec<Resource>,
    diagnostics: Vec<Diagnostic>,
}

impl ConfigSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads and checks several files together; unreadable files become error diagnostics.
    pub fn load_files(paths: &[PathBuf]) -> Self {
        let mut set = Self::new();
        for path in paths {
            set.add_file(path);
        }
        set.validate();
        set
    }

    /// Loads and checks one in-memory text, `file_name` naming it in diagnostics.
    pub fn load_str(file_name: &str, text: &str) -> Self {
        let mut set = Self::new();
        set.add_str(file_name, text);
        set.validate();
        set
    }

    /// Loads and checks several in-memory texts together, as (file name, text) pairs.
    pub fn load_strs<'a>(texts: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut set = Self::new();
        for (name, text) in texts {
            set.add_str(name, text);
        }
        set.validate();
        set
    }

    /// Runs the cross-resource checks (subsets, hosts, routes) and appends their diagnostics.
    fn validate(&mut self) {
        let found = validate::check(self);
        self.diagnostics.extend(found);
    }

    /// Files in load order.
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    /// Resources in load order (files in the order given, documents in file order).
    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    /// Mutable resources, for editors; call [`ConfigSet::recheck`] after changing them.
    pub fn resources_mut(&mut self) -> &mut Vec<Resource> {
        &mut self.resources
    }

    /// Every diagnostic, loading ones first, then checks, in file order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// Re-runs the cross-resource checks after an edit; loading diagnostics are kept.
    pub fn recheck(&mut self) {
        self.diagnostics.retain(|d| !d.from_checks);
        self.validate();
    }

    /// VirtualServices in load order.
    pub fn virtual_services(&self) -> impl Iterator<Item = (&Resource, &VirtualService)> {
        self.resources.iter().filter_map(|r| match &r.object {
            IstioObject::VirtualService(vs) => Some((r, &**vs)),
            _ => None,
        })
    }

    /// DestinationRules in load order.
    pub fn destination_rules(&self) -> impl Iterator<Item = (&Resource, &DestinationRule)> {
        self.resources.iter().filter_map(|r| match &r.object {
            IstioObject::DestinationRule(dr) => Some((r, &**dr)),
            _ => None,
        })
    }

    /// ServiceEntries in load order.
    pub fn service_entries(&self) -> impl Iterator<Item = (&Resource, &ServiceEntry)> {
        self.resources.iter().filter_map(|r| match &r.object {
            IstioObject::ServiceEntry(se) => Some((r, &**se)),
            _ => None,
        })
    }

    /// Gateway API resources (routes, Gateways, classes, grants) in load order.
    pub fn gateway_api(&self) -> impl Iterator<Item = (&Resource, &gateway::GatewayApiObject)> {
        self.resources.iter().filter_map(|r| match &r.object {
            IstioObject::GatewayApi(g) => Some((r, &**g)),
            _ => None,
        })
    }

    /// The VirtualServices Istio makes of the files' HTTPRoutes and GRPCRoutes, and what it
    /// would report about them.
    pub fn gateway_routes(&self) -> gateway::convert::Conversion {
        gateway::convert_all(self)
    }

    /// The file name of a resource.
    pub fn file_name(&self, resource: &Resource) -> &str {
        self.files
            .get(resource.source.file)
            .map_or("?", |f| f.name.as_str())
    }

    /// The line of `field_path` (relative to the resource, e.g. `spec.http[0].mirror`) in the
    /// resource's file, or of its nearest ancestor; the resource's line when unknown.
    pub fn line_of(&self, resource: &Resource, field_path: &str) -> usize {
        let full = join_prefix(&resource.source.path_prefix, field_path);
        self.files
            .get(resource.source.file)
            .and_then(|f| f.documents.get(resource.source.document))
            .map_or(resource.source.line, |d| {
                let line = d.line_of(&full);
                line.max(resource.source.line)
            })
    }

    /// Serialises the resources that came from file `file` back to multi-document YAML, in
    /// their original order (entries of a `kind: List` become documents of their own).
    pub fn to_yaml_string(&self, file: usize) -> Result<String, ConfigError> {
        let name = self
            .files
            .get(file)
            .map_or_else(|| format!("#{file}"), |f| f.name.clone());
        let mut out = String::new();
        for r in self.resources.iter().filter(|r| r.source.file == file) {
            let value = r.object.to_value().map_err(|e| ConfigError::Serialize {
                file: name.clone(),
                resource: r.display_name(),
                message: e.to_string(),
            })?;
            let text = yaml_serde::to_string(&value).map_err(|e| ConfigError::Serialize {
                file: name.clone(),
                resource: r.display_name(),
                message: e.to_string(),
            })?;
            if !out.is_empty() {
                out.push_str("---\n");
            }
            out.push_str(&text);
        }
        Ok(out)
    }
}

/// The 1-based line of `text`, counted by `\n` as editors count, where the YAML parser's
/// 1-based `yaml_line` is. The parser (YAML 1.1) also breaks lines at U+0085, U+2028 and
/// U+2029, which editors show inside a line.
fn text_line_of_yaml_line(text: &str, yaml_line: usize) -> usize {
    let mut yaml = 1;
    let mut line = 1;
    for c in text.chars() {
        if yaml >= yaml_line {
            break;
        }
        match c {
            '\n' => {
                yaml += 1;
                line += 1;
            }
            '\u{85}' | '\u{2028}' | '\u{2029}' => yaml += 1,
            _ => {}
        }
    }
    line
}

/// Failures of the config layer that are not diagnostics of the user's YAML.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A resource could not be written back as YAML.
    #[error("cannot write {resource} of {file} as YAML: {message}")]
    Serialize {
        /// File name.
        file: String,
        /// `Kind namespace/name`.
        resource: String,
        /// What the serializer said.
        message: String,
    },
}

impl fmt::Display for IstioObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.qualified_name())
    }
}
