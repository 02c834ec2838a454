//! Loading: files and strings into documents, each document into a typed resource or
//! a diagnostic that says what and where (unknown kinds and fields, complex keys, type
//! errors), Istio's kinds and the Gateway API's apart.

use std::path::Path;

use super::*;

impl ConfigSet {
    /// Reads one file and adds its resources (no cross-resource checks until `validate`).
    pub(super) fn add_file(&mut self, path: &Path) {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => self.add_str(&name, &text),
            Err(e) => self.diagnostics.push(Diagnostic::error(
                codes::READ_FAILED,
                format!("cannot read the file: {e}"),
                name,
                0,
            )),
        }
    }

    /// Parses one text and adds its resources.
    pub(super) fn add_str(&mut self, name: &str, text: &str) {
        let file = self.files.len();
        let documents = match lines::index_documents(text) {
            Ok(docs) => docs,
            Err(e) => {
                self.diagnostics.push(
                    Diagnostic::error(
                        codes::YAML_SYNTAX,
                        format!("YAML syntax error: {} (column {})", e.message, e.column),
                        name.to_owned(),
                        e.line,
                    )
                    .with_help("fix the YAML syntax; nothing in this file was loaded"),
                );
                self.files.push(SourceFile {
                    name: name.to_owned(),
                    text: text.to_owned(),
                    documents: Vec::new(),
                });
                return;
            }
        };
        let line_starts: Vec<usize> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        for (doc_index, doc) in documents.iter().enumerate() {
            if !doc.has_content {
                continue;
            }
            let from = line_starts
                .get(doc.start_line.saturating_sub(1))
                .copied()
                .unwrap_or(text.len());
            let to = line_starts
                .get(doc.end_line.saturating_sub(1))
                .copied()
                .unwrap_or(text.len());
            let slice = text.get(from..to.max(from)).unwrap_or_default();
            // `<<: *base` merge keys are YAML 1.1 that kubectl accepts; resolve them before
            // the typed model sees them (written back, the merged fields appear in full).
            let parsed = yaml_serde::from_str::<Opaque>(slice).and_then(|mut v| {
                v.apply_merge()?;
                Ok(v)
            });
            let value: Opaque = match parsed {
                Ok(v) => v,
                Err(e) => {
                    let line = e.location().map_or(doc.start_line, |l| {
                        text_line_of_yaml_line(slice, l.line()) + doc.start_line - 1
                    });
                    self.diagnostics.push(Diagnostic::error(
                        codes::YAML_SYNTAX,
                        format!("YAML error: {}", strip_location(&e.to_string())),
                        name.to_owned(),
                        line,
                    ));
                    continue;
                }
            };
            self.add_document(name, file, doc_index, doc, value);
        }
        self.files.push(SourceFile {
            name: name.to_owned(),
            text: text.to_owned(),
            documents,
        });
    }

    fn add_document(
        &mut self,
        name: &str,
        file: usize,
        doc_index: usize,
        doc: &DocumentIndex,
        value: Opaque,
    ) {
        if value.is_null() {
            return;
        }
        let kind = value.get("kind").and_then(Opaque::as_str);
        if kind == Some("List") {
            match value.get("items") {
                Some(Opaque::Sequence(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        let prefix = push_index("items", i);
                        let source = Source {
                            file,
                            document: doc_index,
                            line: doc.line_of(&prefix),
                            path_prefix: prefix,
                        };
                        self.add_object(name, doc, source, item.clone());
                    }
                }
                Some(Opaque::Null) | None => {}
                Some(_) => self.diagnostics.push(Diagnostic::error(
                    codes::SCHEMA,
                    "`items` of a kind: List must be a sequence of resources".to_owned(),
                    name.to_owned(),
                    doc.line_of("items"),
                )),
            }
            return;
        }
        let source = Source {
            file,
            document: doc_index,
            line: doc.start_line_of_content(),
            path_prefix: String::new(),
        };
        self.add_object(name, doc, source, value);
    }

    fn add_object(&mut self, name: &str, doc: &DocumentIndex, source: Source, value: Opaque) {
        let kind = value
            .get("kind")
            .and_then(Opaque::as_str)
            .map(str::to_owned);
        let api_version = value
            .get("apiVersion")
            .and_then(Opaque::as_str)
            .map(str::to_owned);
        let resource_label = {
            let meta = value.get("metadata");
            let get = |k: &str| meta.and_then(|m| m.get(k)).and_then(Opaque::as_str);
            format!(
                "{} {}/{}",
                kind.as_deref().unwrap_or("?"),
                get("namespace").unwrap_or("default"),
                get("name").unwrap_or_default()
            )
        };
        if let Some((path, what)) = complex_key(&value, String::new()) {
            // A YAML-only construct (`? [a, b]: x`): no Kubernetes object can hold it, and the
            // lab could not write the document back, so it is refused here.
            let full = join_prefix(&source.path_prefix, &path);
            self.diagnostics.push(
                Diagnostic::error(
                    codes::SCHEMA,
                    format!(
                        "a mapping key {} is a {what}; Kubernetes resources are JSON objects, whose keys are strings",
                        if path.is_empty() { "at the top level".to_owned() } else { format!("under `{path}`") }
                    ),
                    name.to_owned(),
                    doc.line_of(&full),
                )
                .with_resource(resource_label)
                .with_field(path)
                .with_help("write the key as a plain string"),
            );
            return;
        }
        if gateway::is_gateway_kind(kind.as_deref(), api_version.as_deref()) {
            self.add_gateway_api(name, doc, source, &resource_label, &value);
            return;
        }
        let known = kind.as_deref().is_some_and(|k| KNOWN_KINDS.contains(&k));
        let istio_group = api_version
            .as_deref()
            .is_some_and(|v| v.starts_with("networking.istio.io/"));
        if known && api_version.is_none() {
            self.diagnostics.push(
                Diagnostic::error(
                    codes::API_VERSION,
                    format!("{} has no apiVersion", kind.as_deref().unwrap_or_default()),
                    name.to_owned(),
                    source.line,
                )
                .with_resource(resource_label)
                .with_field("apiVersion")
                .with_help("add `apiVersion: networking.istio.io/v1`"),
            );
            return;
        }
        if !known || !istio_group {
            let what = match (&kind, &api_version) {
                (Some(k), Some(v)) => format!("kind {k} ({v})"),
                (Some(k), None) => format!("kind {k} (no apiVersion)"),
                (None, _) => "a document without `kind`".to_owned(),
            };
            let typo = kind
                .as_deref()
                .filter(|_| istio_group)
                .and_then(|k| did_you_mean(k, &KNOWN_KINDS.map(str::to_owned)).map(str::to_owned));
            let help = match typo {
                Some(k) => format!("did you mean `kind: {k}`?"),
                None => "the lab reads VirtualService, DestinationRule and ServiceEntry of networking.istio.io; other documents are kept and written back unchanged".to_owned(),
            };
            // Gateways and Services are what VirtualServices refer to: `check` reads them
            // to resolve those references (as `istioctl analyze` does), nothing else does.
            let referenced = matches!(
                (kind.as_deref(), api_version.as_deref()),
                (Some("Service"), Some("v1"))
            ) || (kind.as_deref() == Some("Gateway")
                && api_version.as_deref().is_some_and(|v| {
                    v.starts_with("networking.istio.io/")
                        || v.starts_with("gateway.networking.k8s.io/")
                }));
            let (severity, message) = if referenced {
                (
                    Severity::Info,
                    format!(
                        "{what} is read only to check references to it; the lab does not act on it"
                    ),
                )
            } else {
                (
                    Severity::Warning,
                    format!("{what} is not one the lab uses; it is ignored"),
                )
            };
            self.diagnostics.push(
                Diagnostic::new(
                    severity,
                    codes::UNKNOWN_KIND,
                    message,
                    name.to_owned(),
                    source.line,
                )
                .with_resource(resource_label)
                .with_field(if kind.is_some() { "kind" } else { "" })
                .with_help(help),
            );
            self.resources.push(Resource {
                source,
                object: IstioObject::Other(value),
            });
            return;
        }
        if let Some(v) = api_version.as_deref()
            && !SUPPORTED_API_VERSIONS.contains(&v)
        {
            self.diagnostics.push(
                Diagnostic::error(
                    codes::API_VERSION,
                    format!("unsupported apiVersion `{v}`"),
                    name.to_owned(),
                    doc.line_of(&push_key(&source.path_prefix, "apiVersion")),
                )
                .with_resource(resource_label)
                .with_field("apiVersion")
                .with_help(format!("use one of {}", SUPPORTED_API_VERSIONS.join(", "))),
            );
            return;
        }
        if kind.as_deref() == Some("VirtualService") {
            self.diagnostics.extend(
                raw::null_string_matches(&value).into_iter().map(|path| {
                    raw::null_match_diagnostic(name, doc, &source, &resource_label, path)
                }),
            );
        }
        let parsed = match kind.as_deref() {
            Some("VirtualService") => {
                typed(value).map(|r| IstioObject::VirtualService(Box::new(r)))
            }
            Some("DestinationRule") => {
                typed(value).map(|r| IstioObject::DestinationRule(Box::new(r)))
            }
            _ => typed(value).map(|r| IstioObject::ServiceEntry(Box::new(r))),
        };
        match parsed {
            Ok(object) => self.resources.push(Resource { source, object }),
            Err(e) => {
                let full_path = join_prefix(&source.path_prefix, &e.path);
                let mut d =
                    Diagnostic::error(e.code, e.message, name.to_owned(), doc.line_of(&full_path))
                        .with_resource(resource_label)
                        .with_field(e.path);
                if let Some(help) = e.help {
                    d = d.with_help(help);
                }
                self.diagnostics.push(d);
            }
        }
    }

    /// Loads a Gateway API document after its CRD's structural schema, or says why not.
    fn add_gateway_api(
        &mut self,
        name: &str,
        doc: &DocumentIndex,
        source: Source,
        resource_label: &str,
        value: &Opaque,
    ) {
        let kind = value
            .get("kind")
            .and_then(Opaque::as_str)
            .unwrap_or_default();
        let api_version = value
            .get("apiVersion")
            .and_then(Opaque::as_str)
            .unwrap_or_default();
        let problems = match gateway::load(kind, api_version, value) {
            Ok(object) => {
                self.resources.push(Resource {
                    source,
                    object: IstioObject::GatewayApi(Box::new(object)),
                });
                return;
            }
            Err(problem) => problem,
        };
        let at = |path: &str| doc.line_of(&join_prefix(&source.path_prefix, path));
        match problems {
            gateway::LoadProblem::Version(v) => self.diagnostics.push(
                Diagnostic::error(
                    codes::API_VERSION,
                    format!("the Gateway API CRDs have no {kind} {v}"),
                    name.to_owned(),
                    at("apiVersion"),
                )
                .with_resource(resource_label)
                .with_field("apiVersion")
                .with_help("use gateway.networking.k8s.io/v1"),
            ),
            gateway::LoadProblem::Schema(issues) => {
                for i in issues {
                    let code = if i.unknown_field {
                        codes::UNKNOWN_FIELD
                    } else {
                        codes::SCHEMA
                    };
                    let field = i.path.rsplit('.').next().unwrap_or(&i.path).to_owned();
                    let help = i
                        .unknown_field
                        .then(|| match did_you_mean(&field, &i.allowed) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("fields allowed here: {}", i.allowed.join(", ")),
                        });
                    let message = if i.unknown_field {
                        i.message
                    } else {
                        format!("{}: {}", i.path, i.message)
                    };
                    let mut d = Diagnostic::error(code, message, name.to_owned(), at(&i.path))
                        .with_resource(resource_label)
                        .with_field(i.path);
                    if let Some(h) = help {
                        d = d.with_help(h);
                    }
                    self.diagnostics.push(d);
                }
            }
            gateway::LoadProblem::Typed(message) => self.diagnostics.push(
                Diagnostic::error(codes::SCHEMA, message, name.to_owned(), source.line)
                    .with_resource(resource_label),
            ),
        }
    }
}

/// The path of the first mapping key that is itself a mapping or a sequence, and which.
fn complex_key(value: &Opaque, path: String) -> Option<(String, &'static str)> {
    match value {
        Opaque::Mapping(map) => map.iter().find_map(|(k, v)| {
            let what = match k {
                Opaque::Mapping(_) => Some("mapping"),
                Opaque::Sequence(_) => Some("sequence"),
                Opaque::Tagged(_) => Some("tagged value"),
                _ => None,
            };
            match what {
                Some(what) => Some((path.clone(), what)),
                None => {
                    let key = match k {
                        Opaque::String(s) => s.clone(),
                        other => yaml_serde::to_string(other)
                            .map(|t| t.trim_end().to_owned())
                            .unwrap_or_default(),
                    };
                    complex_key(v, push_key(&path, &key))
                }
            }
        }),
        Opaque::Sequence(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| complex_key(v, push_index(&path, i))),
        Opaque::Tagged(tagged) => complex_key(&tagged.value, path),
        _ => None,
    }
}

impl DocumentIndex {
    /// Line of the document's first node (skipping a leading `---` and comments).
    fn start_line_of_content(&self) -> usize {
        self.exact_line_of("").unwrap_or(self.start_line)
    }
}

/// `items[3]` + `spec.http` → `items[3].spec.http`.
pub(super) fn join_prefix(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

/// Drops yaml_serde's " at line L column C" suffix: we print the line ourselves.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// A typed-deserialisation failure: message, field path and help.
struct TypedError {
    code: &'static str,
    message: String,
    path: String,
    help: Option<String>,
}

/// Deserialises a resource, turning serde's error into a path-located diagnostic with a
/// "did you mean" for unknown fields.
fn typed<T: serde::de::DeserializeOwned>(value: Opaque) -> Result<T, TypedError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = String::new();
        for seg in e.path().iter() {
            path = match seg {
                serde_path_to_error::Segment::Seq { index } => push_index(&path, *index),
                serde_path_to_error::Segment::Map { key } => push_key(&path, key),
                serde_path_to_error::Segment::Enum { variant } => push_key(&path, variant),
                serde_path_to_error::Segment::Unknown => path,
            };
        }
        let inner = strip_location(&e.into_inner().to_string());
        match parse_unknown_field(&inner) {
            Some((field, expected)) => {
                let suggestion = did_you_mean(&field, &expected);
                let help = match suggestion {
                    _ if misplaced_mirror_percentage(&path, &field) => format!(
                        "`{field}` belongs to the route, next to `mirror`, not inside it: move it two spaces left"
                    ),
                    Some(s) => format!("did you mean `{s}`?"),
                    None if expected.is_empty() => "remove the field".to_owned(),
                    None => format!(
                        "remove it; fields allowed here: {}",
                        expected
                            .iter()
                            .map(|f| format!("`{f}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                TypedError {
                    code: codes::UNKNOWN_FIELD,
                    message: format!("unknown field `{field}` (kubectl apply rejects it too)"),
                    path,
                    help: Some(help),
                }
            }
            None => TypedError {
                code: codes::SCHEMA,
                message: inner,
                path,
                help: None,
            },
        }
    })
}

/// The mistake some mirroring guides print: `mirrorPercentage` nested inside `mirror`.
fn misplaced_mirror_percentage(path: &str, field: &str) -> bool {
    matches!(
        field,
        "mirrorPercentage" | "mirrorPercent" | "mirror_percent"
    ) && path
        .strip_suffix(field)
        .is_some_and(|parent| parent.ends_with(".mirror."))
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`", or
/// "there are no fields") into the field and the allowed names.
fn parse_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let end = rest.find('`')?;
    let field = rest[..end].to_owned();
    let expected = rest[end + 1..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((field, expected))
}

/// The closest allowed name, if close enough to be a typo (case-insensitive edit distance).
fn did_you_mean<'a>(field: &str, candidates: &'a [String]) -> Option<&'a str> {
    let lower = field.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_message_is_parsed() {
        let (f, e) =
            parse_unknown_field("unknown field `mirorr`, expected one of `name`, `mirror`")
                .unwrap();
        assert_eq!(f, "mirorr");
        assert_eq!(e, vec!["name", "mirror"]);
        assert_eq!(did_you_mean("mirorr", &e), Some("mirror"));
        assert_eq!(did_you_mean("zzzzzzzz", &e), None);
    }

    #[test]
    fn join_prefix_handles_lists() {
        assert_eq!(join_prefix("items[2]", "spec.http"), "items[2].spec.http");
        assert_eq!(join_prefix("", "spec"), "spec");
        assert_eq!(join_prefix("items[2]", ""), "items[2]");
    }
}
