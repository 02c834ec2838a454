//! Diagnostics: what is wrong (or suspicious) in a config, where, and how to fix it.

use std::fmt;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The config cannot be used (the route table refuses to compile).
    Error,
    /// The config works but probably not as meant.
    Warning,
    /// Worth knowing.
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// Diagnostic codes. `IST` codes are Istio's own (`istioctl analyze` prints the same);
/// `ML` codes are the lab's.
pub mod codes {
    /// A route or mirror references a subset no DestinationRule defines (Istio's
    /// ReferencedResourceNotFound).
    pub const REFERENCED_RESOURCE_NOT_FOUND: &str = "IST0101";
    /// A route can never match because an earlier route matches every request (Istio's
    /// VirtualServiceUnreachableRule).
    pub const UNREACHABLE_RULE: &str = "IST0130";
    /// A file could not be read.
    pub const READ_FAILED: &str = "ML0001";
    /// YAML syntax error.
    pub const YAML_SYNTAX: &str = "ML0002";
    /// A field has the wrong type or a required field is missing.
    pub const SCHEMA: &str = "ML0003";
    /// A field the schema does not have.
    pub const UNKNOWN_FIELD: &str = "ML0004";
    /// A document of a kind the lab does not use.
    pub const UNKNOWN_KIND: &str = "ML0005";
    /// A networking.istio.io apiVersion the lab does not know.
    pub const API_VERSION: &str = "ML0006";
    /// `mirror` and `mirrors` in one route.
    pub const MIRROR_AND_MIRRORS: &str = "ML0101";
    /// A percentage outside 0..=100.
    pub const PERCENTAGE_RANGE: &str = "ML0102";
    /// A regex that does not compile.
    pub const INVALID_REGEX: &str = "ML0103";
    /// A destination without `host`.
    pub const MISSING_HOST: &str = "ML0104";
    /// A string match with more than one of exact/prefix/regex, or a malformed value.
    pub const INVALID_MATCH: &str = "ML0105";
    /// A port number outside 1..=65535.
    pub const PORT_RANGE: &str = "ML0106";
    /// A VirtualService or DestinationRule without a usable host.
    pub const MISSING_RESOURCE_HOST: &str = "ML0107";
    /// A duplicate subset name in one DestinationRule.
    pub const DUPLICATE_SUBSET: &str = "ML0108";
    /// A route with nowhere to go (no route, redirect, directResponse or delegate).
    pub const NO_DESTINATION: &str = "ML0109";
    /// A malformed `mirrorlab.dev/` mirror header annotation.
    pub const INVALID_ANNOTATION: &str = "ML0110";
    /// `mirrorPercent` is deprecated.
    pub const DEPRECATED_MIRROR_PERCENT: &str = "ML0201";
    /// A header matcher key with uppercase letters never matches.
    pub const UPPERCASE_HEADER: &str = "ML0202";
    /// Route weights do not add up to 100.
    pub const WEIGHT_SUM: &str = "ML0203";
    /// A VirtualService without http routes.
    pub const NO_HTTP_ROUTES: &str = "ML0204";
    /// Two VirtualServices claim one host.
    pub const CONFLICTING_HOSTS: &str = "ML0205";
    /// A subset whose labels select no ServiceEntry endpoint.
    pub const SUBSET_WITHOUT_ENDPOINTS: &str = "ML0206";
    /// A route-scoped `mirrorlab.dev/` annotation names a route the VirtualService lacks.
    pub const ANNOTATION_UNKNOWN_ROUTE: &str = "ML0207";
    /// A route's `delegate` names no usable delegate VirtualService (Istio skips the route).
    pub const DELEGATE_UNUSABLE: &str = "ML0208";
    /// A feature the lab loads but does not act on.
    pub const NOT_SIMULATED: &str = "ML0301";
    /// A VirtualService bound only to gateways: not the sidecar traffic the lab plays.
    pub const GATEWAY_ONLY: &str = "ML0302";
}

/// One finding about a config, printed like a compiler message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error, warning or info.
    pub severity: Severity,
    /// `IST0101`, `ML0004`, ...
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// File name as given.
    pub file: String,
    /// 1-based line (0 when the whole file is meant).
    pub line: usize,
    /// `Kind namespace/name`, if the finding is about one resource.
    pub resource: Option<String>,
    /// Field path inside the resource, e.g. `spec.http[0].mirror.subset`.
    pub field_path: Option<String>,
    /// How to fix it.
    pub help: Option<String>,
    /// Set for findings of the cross-resource checks, which `recheck` recomputes.
    pub(crate) from_checks: bool,
}

impl Diagnostic {
    /// A diagnostic of any severity.
    pub fn new(
        severity: Severity,
        code: &'static str,
        message: String,
        file: String,
        line: usize,
    ) -> Self {
        Self {
            severity,
            code,
            message,
            file,
            line,
            resource: None,
            field_path: None,
            help: None,
            from_checks: false,
        }
    }

    /// An error.
    pub fn error(code: &'static str, message: String, file: String, line: usize) -> Self {
        Self::new(Severity::Error, code, message, file, line)
    }

    /// A warning.
    pub fn warning(code: &'static str, message: String, file: String, line: usize) -> Self {
        Self::new(Severity::Warning, code, message, file, line)
    }

    /// Names the resource (`Kind namespace/name`).
    #[must_use]
    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Names the field path.
    #[must_use]
    pub fn with_field(mut self, field_path: impl Into<String>) -> Self {
        let p = field_path.into();
        if !p.is_empty() {
            self.field_path = Some(p);
        }
        self
    }

    /// Adds a fix-it hint.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn mark_from_checks(mut self) -> Self {
        self.from_checks = true;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: ", self.file, self.line)?;
        } else {
            write!(f, "{}: ", self.file)?;
        }
        write!(f, "{}[{}]: {}", self.severity, self.code, self.message)?;
        if let Some(r) = &self.resource {
            write!(f, "\n    resource: {r}")?;
        }
        if let Some(p) = &self.field_path {
            write!(f, "\n    field:    {p}")?;
        }
        if let Some(h) = &self.help {
            write!(f, "\n    help:     {h}")?;
        }
        Ok(())
    }
}
