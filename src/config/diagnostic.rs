//! Diagnostics: what is wrong (or suspicious) in a config, where, and how to fix it.

use std::fmt;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The config cannot be used (the route table refuses to compile).
    Error,
    /// The config works but probably not as meant.
    Warning,
    /// Worth knowing; never fails `check`. What only the cluster can tell is said as info.
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
/// `ML` codes are the lab's: `ML00xx` loading, `ML01xx` what Istio's admission validation
/// refuses (istioctl analyze reports each as IST0106), `ML02xx` advice, `ML03xx` what the lab
/// does not simulate, `ML04xx` what only the cluster can tell, `ML05xx` Gateway API routes. docs/CHECK.md lists every code
/// with its Istio source.
pub mod codes {
    /// A reference to something the files do not define: a subset, a gateway, a port
    /// (Istio's ReferencedResourceNotFound).
    pub const REFERENCED_RESOURCE_NOT_FOUND: &str = "IST0101";
    /// Two VirtualServices bound to the mesh define one host (Istio's
    /// ConflictingMeshGatewayVirtualServiceHosts).
    pub const CONFLICTING_MESH_HOSTS: &str = "IST0109";
    /// A destination of a service with several ports names none (Istio's
    /// VirtualServiceDestinationPortSelectorRequired).
    pub const PORT_SELECTOR_REQUIRED: &str = "IST0112";
    /// A server without caCertificates at the destination level (Istio's
    /// NoServerCertificateVerificationDestinationLevel).
    pub const NO_SERVER_CERT_VERIFICATION: &str = "IST0128";
    /// A server without caCertificates at a port level (Istio's
    /// NoServerCertificateVerificationPortLevel).
    pub const NO_SERVER_CERT_VERIFICATION_PORT: &str = "IST0129";
    /// A route that can never match (Istio's VirtualServiceUnreachableRule).
    pub const UNREACHABLE_RULE: &str = "IST0130";
    /// A match block that an earlier one already covers (Istio's
    /// VirtualServiceIneffectiveMatch).
    pub const INEFFECTIVE_MATCH: &str = "IST0131";
    /// A VirtualService host its Gateway does not serve (Istio's
    /// VirtualServiceHostNotFoundInGateway).
    pub const HOST_NOT_IN_GATEWAY: &str = "IST0132";
    /// A subset on an ingress route that ingress requests ignore (Istio's
    /// IngressRouteRulesNotAffected).
    pub const INGRESS_ROUTE_RULES_NOT_AFFECTED: &str = "IST0140";
    /// A reference to a Gateway generated from a Kubernetes Gateway (Istio's
    /// ReferencedInternalGateway).
    pub const REFERENCED_INTERNAL_GATEWAY: &str = "IST0165";
    /// ServiceEntries giving one host and port different protocols (Istio's
    /// ConflictingServiceEntryProtocol).
    pub const CONFLICTING_SERVICE_ENTRY_PROTOCOL: &str = "IST0177";
    /// A file could not be read.
    pub const READ_FAILED: &str = "ML0001";
    /// YAML syntax error.
    pub const YAML_SYNTAX: &str = "ML0002";
    /// A field has the wrong type, a value outside its schema, or a required field is missing.
    pub const SCHEMA: &str = "ML0003";
    /// A field the schema does not have.
    pub const UNKNOWN_FIELD: &str = "ML0004";
    /// A document of a kind the lab does not use.
    pub const UNKNOWN_KIND: &str = "ML0005";
    /// A networking.istio.io apiVersion the lab does not know.
    pub const API_VERSION: &str = "ML0006";
    /// `mirror` and `mirrors` in one route.
    pub const MIRROR_AND_MIRRORS: &str = "ML0101";
    /// A percentage outside its range.
    pub const PERCENTAGE_RANGE: &str = "ML0102";
    /// A regex RE2 refuses, or longer than Istio allows.
    pub const INVALID_REGEX: &str = "ML0103";
    /// A destination without `host`.
    pub const MISSING_HOST: &str = "ML0104";
    /// A string match with more than one of exact/prefix/regex, or an empty one.
    pub const INVALID_MATCH: &str = "ML0105";
    /// A port number outside 1..=65535.
    pub const PORT_RANGE: &str = "ML0106";
    /// A DestinationRule or ServiceEntry without a host.
    pub const MISSING_RESOURCE_HOST: &str = "ML0107";
    /// A duplicate subset name in one DestinationRule.
    pub const DUPLICATE_SUBSET: &str = "ML0108";
    /// A route with nowhere to go (no route, redirect or directResponse).
    pub const NO_DESTINATION: &str = "ML0109";
    /// A malformed `mirrorlab.dev/` mirror header annotation.
    pub const INVALID_ANNOTATION: &str = "ML0110";
    /// A host name Istio refuses (syntax, misplaced wildcard, `*` where not allowed).
    pub const INVALID_HOST: &str = "ML0111";
    /// One VirtualService lists overlapping hosts.
    pub const DUPLICATE_HOST: &str = "ML0112";
    /// A duration Istio refuses (syntax, under 1 ms, finer than 1 ms).
    pub const INVALID_DURATION: &str = "ML0113";
    /// A header name or value Istio refuses.
    pub const INVALID_HEADER: &str = "ML0114";
    /// Route actions that cannot go together (route and redirect, a root route's delegate
    /// and route, ...).
    pub const ROUTE_ACTION_CONFLICT: &str = "ML0115";
    /// A delegate VirtualService (no hosts) with what only a root may have.
    pub const DELEGATE_RULE: &str = "ML0116";
    /// A name Istio refuses (subset, port, namespace, gateway names).
    pub const INVALID_NAME: &str = "ML0117";
    /// Labels or a workload selector Istio refuses.
    pub const INVALID_LABELS: &str = "ML0118";
    /// Several destinations whose weights add up to 0.
    pub const ZERO_TOTAL_WEIGHT: &str = "ML0119";
    /// A retry policy Istio refuses.
    pub const INVALID_RETRIES: &str = "ML0120";
    /// A fault injection Istio refuses.
    pub const INVALID_FAULT: &str = "ML0121";
    /// A redirect Istio refuses.
    pub const INVALID_REDIRECT: &str = "ML0122";
    /// A direct response Istio refuses.
    pub const INVALID_DIRECT_RESPONSE: &str = "ML0123";
    /// A rewrite Istio refuses.
    pub const INVALID_REWRITE: &str = "ML0124";
    /// A CORS policy Istio refuses.
    pub const INVALID_CORS: &str = "ML0125";
    /// An `exportTo` list Istio refuses.
    pub const INVALID_EXPORT_TO: &str = "ML0126";
    /// A DestinationRule traffic policy Istio refuses.
    pub const INVALID_TRAFFIC_POLICY: &str = "ML0127";
    /// A ServiceEntry Istio refuses (resolution, endpoints, addresses, ports).
    pub const INVALID_SERVICE_ENTRY: &str = "ML0128";
    /// A TCP or TLS route Istio refuses.
    pub const INVALID_TCP_TLS_ROUTE: &str = "ML0129";
    /// An annotation Istio's webhook refuses on these kinds.
    pub const REFUSED_ANNOTATION: &str = "ML0130";
    /// A VirtualService with hosts and no http, tcp or tls route.
    pub const NO_ROUTES: &str = "ML0131";
    /// A deprecated field.
    pub const DEPRECATED_FIELD: &str = "ML0201";
    /// A header matcher key with uppercase letters (it works; lower case is the convention).
    pub const UPPERCASE_HEADER: &str = "ML0202";
    /// Route weights do not add up to 100.
    pub const WEIGHT_SUM: &str = "ML0203";
    /// A VirtualService whose routes are all tcp/tls, which the lab does not simulate.
    pub const NO_HTTP_ROUTES: &str = "ML0204";
    /// A subset whose labels select no ServiceEntry endpoint.
    pub const SUBSET_WITHOUT_ENDPOINTS: &str = "ML0206";
    /// A route-scoped `mirrorlab.dev/` annotation names a route the VirtualService lacks.
    pub const ANNOTATION_UNKNOWN_ROUTE: &str = "ML0207";
    /// A route's `delegate` names no usable delegate VirtualService (Istio skips the route).
    pub const DELEGATE_UNUSABLE: &str = "ML0208";
    /// A route after one whose match block has no condition, which Istio does not flag.
    pub const AFTER_MATCH_EVERYTHING: &str = "ML0209";
    /// Something Istio's validation accepts with a warning.
    pub const ISTIO_WARNING: &str = "ML0210";
    /// A VirtualService without hosts (a delegate) that no root VirtualService delegates to.
    pub const UNUSED_DELEGATE: &str = "ML0211";
    /// A feature the lab loads but does not act on.
    pub const NOT_SIMULATED: &str = "ML0301";
    /// A VirtualService bound only to gateways: not the sidecar traffic the lab plays.
    pub const GATEWAY_ONLY: &str = "ML0302";
    /// A destination host no ServiceEntry or Service in the files defines; only the cluster
    /// knows whether a Kubernetes Service has that name.
    pub const HOST_LEFT_TO_CLUSTER: &str = "ML0401";
    /// A DestinationRule host no ServiceEntry or Service in the files defines (Istio's
    /// UnknownDestinationRuleHost when the cluster has none either).
    pub const DESTINATION_RULE_HOST_LEFT_TO_CLUSTER: &str = "ML0402";
    /// A ServiceEntry without addresses for a TCP port; whether that matters depends on the
    /// mesh's address allocation (Istio's ServiceEntryAddressesRequired).
    pub const ADDRESSES_LEFT_TO_CLUSTER: &str = "ML0403";
    /// A route's parent Service no Service or ServiceEntry of the files defines (Istio's
    /// `parent service not found` unless the cluster has it).
    pub const PARENT_LEFT_TO_CLUSTER: &str = "ML0404";
    /// A Gateway whose GatewayClass is not in the files: whether Istio programs it depends
    /// on the class's controller.
    pub const GATEWAY_CLASS_LEFT_TO_CLUSTER: &str = "ML0405";
    /// A Gateway API resource a CEL rule of its CRD refuses (kubectl apply rejects it).
    pub const GATEWAY_API_CEL: &str = "ML0501";
    /// A backend reference Istio cannot resolve (the route's ResolvedRefs=False).
    pub const GATEWAY_API_UNRESOLVED_REF: &str = "ML0502";
    /// A parent reference Istio does not accept (the route's Accepted=False).
    pub const GATEWAY_API_NOT_ACCEPTED: &str = "ML0503";
    /// A filter Istio cannot translate (the route is dropped).
    pub const GATEWAY_API_INVALID_FILTER: &str = "ML0504";
    /// A field only the experimental channel's CRDs have.
    pub const GATEWAY_API_EXPERIMENTAL: &str = "ML0505";
    /// A parent Istio does not program: another controller's Gateway or parent kind.
    pub const GATEWAY_API_NOT_ISTIO: &str = "ML0506";
    /// A route bound only to Gateways: not the sidecar traffic the lab plays.
    pub const GATEWAY_API_GATEWAY_ONLY: &str = "ML0507";
    /// Where Istio's translation of a route differs from what the Gateway API spec says.
    pub const GATEWAY_API_TRANSLATION: &str = "ML0508";
    /// A VirtualService and an HTTPRoute (or GRPCRoute) that route one mesh host.
    pub const GATEWAY_API_AND_VIRTUAL_SERVICE: &str = "ML0509";
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

    /// An info.
    pub fn info(code: &'static str, message: String, file: String, line: usize) -> Self {
        Self::new(Severity::Info, code, message, file, line)
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
