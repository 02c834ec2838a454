//! Cross-resource checks: subsets, hosts, routes, matchers, percentages. Each finding names
//! the file, line, resource and field path, and says how to fix it.

use std::collections::HashMap;

use super::headers::{HeaderOpError, HeaderOps};
use super::hosts::{fqdn, labels_contain};
use super::lines::push_key;
use super::matcher::{MatcherError, StringMatcher};
use super::mirror_headers::{
    MIRROR_REMOVE_HEADERS, MIRROR_SET_HEADERS, MirrorHeaderEdits, parse_remove, parse_set,
};
use super::model::{
    DestinationRule, HttpMatchRequest, HttpRoute, Percent, ServiceEntry, StringMatch,
    VirtualService,
};
use super::{ConfigSet, Diagnostic, Resource, Severity, codes, parse_duration};

/// Every finding of the checks, in resource order.
pub(super) fn check(set: &ConfigSet) -> Vec<Diagnostic> {
    let mut c = Checker {
        set,
        out: Vec::new(),
    };
    let mut claimed: HashMap<String, (&Resource, String)> = HashMap::new();
    for (r, vs) in set.virtual_services() {
        c.virtual_service(r, vs, &mut claimed);
    }
    for (r, dr) in set.destination_rules() {
        c.destination_rule(r, dr);
    }
    for (r, se) in set.service_entries() {
        c.service_entry(r, se);
    }
    c.out
        .into_iter()
        .map(Diagnostic::mark_from_checks)
        .collect()
}

struct Checker<'a> {
    set: &'a ConfigSet,
    out: Vec<Diagnostic>,
}

/// What a destination is called in messages.
#[derive(Clone, Copy)]
enum DestinationRole {
    Route,
    Mirror,
}

impl<'a> Checker<'a> {
    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        r: &Resource,
        field: &str,
        message: String,
        help: Option<String>,
    ) {
        let mut d = Diagnostic::new(
            severity,
            code,
            message,
            self.set.file_name(r).to_owned(),
            self.set.line_of(r, field),
        )
        .with_resource(r.display_name())
        .with_field(field);
        if let Some(h) = help {
            d = d.with_help(h);
        }
        self.out.push(d);
    }

    fn error(
        &mut self,
        code: &'static str,
        r: &Resource,
        field: &str,
        msg: String,
        help: Option<String>,
    ) {
        self.push(Severity::Error, code, r, field, msg, help);
    }

    fn warning(
        &mut self,
        code: &'static str,
        r: &Resource,
        field: &str,
        msg: String,
        help: Option<String>,
    ) {
        self.push(Severity::Warning, code, r, field, msg, help);
    }

    /// Whether some root route's `delegate` names `vs`.
    fn is_delegated_to(&self, vs: &VirtualService) -> bool {
        self.set.virtual_services().any(|(_, root)| {
            root.spec
                .http
                .iter()
                .filter_map(|h| h.delegate.as_ref())
                .any(|d| {
                    self.set
                        .delegate_for(d, root.metadata.namespace_or_default())
                        .is_ok_and(|(_, found)| std::ptr::eq(found, vs))
                })
        })
    }

    fn virtual_service(
        &mut self,
        r: &'a Resource,
        vs: &'a VirtualService,
        claimed: &mut HashMap<String, (&'a Resource, String)>,
    ) {
        let ns = vs.metadata.namespace_or_default();
        if vs.spec.hosts.is_empty() && !self.is_delegated_to(vs) {
            // Istio accepts a VirtualService without hosts: it is a delegate, whose routes
            // a root VirtualService takes in.
            self.warning(
                codes::MISSING_RESOURCE_HOST,
                r,
                "spec.hosts",
                "VirtualService has no hosts, so it is a delegate, and no VirtualService delegates to it: no request reaches its routes".into(),
                Some("add `hosts: [reviews]` (the service the routes are for), or name it in a root route's `delegate`".into()),
            );
        }
        for (i, host) in vs.spec.hosts.iter().enumerate() {
            let field = format!("spec.hosts[{i}]");
            let key = fqdn(host, ns);
            match claimed.get(&key) {
                Some((first, _)) if !std::ptr::eq(*first, r) => {
                    let first_at = format!(
                        "{}:{}",
                        self.set.file_name(first),
                        self.set.line_of(first, "spec.hosts")
                    );
                    self.warning(
                        codes::CONFLICTING_HOSTS,
                        r,
                        &field,
                        format!(
                            "host `{host}` is also claimed by {} ({first_at}); only one VirtualService per host takes effect",
                            first.display_name()
                        ),
                        Some("merge the routes into one VirtualService (istioctl analyze reports this as IST0109); the lab uses the one loaded first".into()),
                    );
                }
                Some(_) => {}
                None => {
                    claimed.insert(key, (r, field));
                }
            }
        }
        if vs.spec.http.is_empty() {
            let msg = if vs.spec.tcp.is_empty() && vs.spec.tls.is_empty() {
                "VirtualService has no http routes, so it routes nothing".to_owned()
            } else {
                "VirtualService has only tcp/tls routes, which the lab does not simulate".to_owned()
            };
            self.warning(
                codes::NO_HTTP_ROUTES,
                r,
                "spec.http",
                msg,
                Some("add an `http:` route with a destination".into()),
            );
        }
        if !vs.spec.gateways.is_empty() && !vs.spec.gateways.iter().any(|g| g == "mesh") {
            self.push(
                Severity::Info,
                codes::GATEWAY_ONLY,
                r,
                "spec.gateways",
                format!(
                    "this VirtualService applies only to gateway(s) {}, not to sidecars: the lab's traffic does not take its routes unless the lab acts as one of them",
                    vs.spec.gateways.join(", ")
                ),
                Some("add `mesh` to `gateways` for sidecar traffic, or run the lab with --gateway NAMESPACE/NAME".into()),
            );
        }
        self.mirror_header_annotations(r, vs);
        let mut catch_all: Option<usize> = None;
        for (i, route) in vs.spec.http.iter().enumerate() {
            let base = format!("spec.http[{i}]");
            if let Some(earlier) = catch_all {
                self.warning(
                    codes::UNREACHABLE_RULE,
                    r,
                    &base,
                    format!(
                        "route #{i}{} can never match: route #{earlier} before it matches every request",
                        route_name(route)
                    ),
                    Some(format!(
                        "move the catch-all route #{earlier} to the end of `http`, or give it a `match`"
                    )),
                );
            }
            if catch_all.is_none() && is_catch_all(route) {
                catch_all = Some(i);
            }
            self.route(r, ns, &base, route);
        }
    }

    /// Warns about each part of a route that the mesh would act on and the lab does not, so
    /// the lab's answers would differ from the mesh's there: it says so rather than pass the
    /// requests on as if the field were absent without a word.
    fn not_simulated(&mut self, r: &Resource, base: &str, route: &HttpRoute) {
        let mut parts: Vec<(String, String)> = Vec::new();
        if route.retries.is_some() {
            parts.push((
                format!("{base}.retries"),
                "`retries` is not simulated: a failed primary request is answered as it failed, not tried again".to_owned(),
            ));
        }
        if let Some(code) = route.redirect.as_ref().and_then(|r| r.redirect_code)
            && ![0, 301, 302, 303, 307, 308].contains(&code)
        {
            parts.push((
                format!("{base}.redirect.redirectCode"),
                format!("Istio translates no action for redirectCode {code} (only 301, 302, 303, 307 and 308), so Envoy refuses the route; the lab answers {code}"),
            ));
        }
        for (field, ops) in header_operations(base, route) {
            if ops
                .set
                .values()
                .chain(ops.add.values())
                .any(|v| v.contains('%'))
            {
                parts.push((
                    field,
                    "Envoy expands `%...%` in header values (request attributes such as %DOWNSTREAM_REMOTE_ADDRESS%); the lab sends the value as written".to_owned(),
                ));
            }
        }
        for (path, message) in parts {
            self.warning(codes::NOT_SIMULATED, r, &path, message, None);
        }
    }

    /// Header operations `http` refuses (names, values): the route table would refuse them
    /// too. One builder for both: [`HeaderOps::compile`].
    fn check_header_operations(&mut self, r: &Resource, base: &str, route: &HttpRoute) {
        for (field, ops) in header_operations(base, route) {
            if let Err(err) = HeaderOps::compile(ops, &field) {
                let at = match &err {
                    HeaderOpError::Name { field, .. } | HeaderOpError::Value { field, .. } => {
                        field.clone()
                    }
                };
                self.error(codes::INVALID_MATCH, r, &at, err.to_string(), None);
            }
        }
    }

    /// A route's `delegate`: Istio skips the route when the delegate cannot be used.
    fn delegate(&mut self, r: &Resource, ns: &str, base: &str, route: &HttpRoute) {
        let Some(delegate) = &route.delegate else {
            return;
        };
        if let Err(problem) = self.set.delegate_for(delegate, ns) {
            self.warning(
                codes::DELEGATE_UNUSABLE,
                r,
                &format!("{base}.delegate"),
                format!("{problem}: Istio skips this route"),
                Some("a delegate is a VirtualService without hosts, in the namespace given (or this one), exported to this namespace".into()),
            );
        }
    }

    fn route(&mut self, r: &Resource, ns: &str, base: &str, route: &HttpRoute) {
        for (j, m) in route.matches.iter().enumerate() {
            self.match_block(r, &format!("{base}.match[{j}]"), m);
        }
        let forwards = !route.route.is_empty();
        let other_action =
            route.redirect.is_some() || route.direct_response.is_some() || route.delegate.is_some();
        if !forwards && !other_action {
            self.error(
                codes::NO_DESTINATION,
                r,
                base,
                "route has no `route` destinations (nor a redirect, directResponse or delegate), so its requests go nowhere".into(),
                Some("add `route: [{destination: {host: ...}}]`".into()),
            );
        }
        self.not_simulated(r, base, route);
        self.check_header_operations(r, base, route);
        self.delegate(r, ns, base, route);
        for (k, d) in route.route.iter().enumerate() {
            let path = format!("{base}.route[{k}].destination");
            self.destination(r, ns, &path, &d.destination, DestinationRole::Route);
            if let Some(w) = d.weight
                && w > 100
            {
                self.error(
                    codes::PERCENTAGE_RANGE,
                    r,
                    &format!("{base}.route[{k}].weight"),
                    format!("weight {w} is above 100"),
                    Some("weights are percentages of the route's traffic, 0..=100".into()),
                );
            }
        }
        let any_weight = route.route.iter().any(|d| d.weight.is_some());
        if route.route.len() > 1 || any_weight {
            let sum: u64 = route
                .route
                .iter()
                .map(|d| u64::from(d.weight.unwrap_or(0)))
                .sum();
            if sum != 100 {
                let weights: Vec<String> = route
                    .route
                    .iter()
                    .map(|d| d.weight.map_or("-".to_owned(), |w| w.to_string()))
                    .collect();
                self.warning(
                    codes::WEIGHT_SUM,
                    r,
                    &format!("{base}.route"),
                    format!(
                        "route weights add up to {sum}, not 100 ({})",
                        weights.join(" + ")
                    ),
                    Some("Istio normalizes the weights; make them add up to 100 so the split is what you read".into()),
                );
            }
        }
        if let Some(m) = &route.mirror {
            self.destination(r, ns, &format!("{base}.mirror"), m, DestinationRole::Mirror);
        }
        if route.mirror.is_some() && !route.mirrors.is_empty() {
            self.error(
                codes::MIRROR_AND_MIRRORS,
                r,
                &format!("{base}.mirrors"),
                "route sets both `mirror` and `mirrors`; Istio rejects that".into(),
                Some("move the `mirror` destination into `mirrors` (with its percentage) and drop `mirror` and `mirrorPercentage`".into()),
            );
        }
        if let Some(p) = &route.mirror_percentage {
            self.percent(r, &format!("{base}.mirrorPercentage.value"), p);
        }
        for (name, value) in [
            ("mirrorPercent", route.mirror_percent),
            ("mirror_percent", route.mirror_percent_legacy),
        ] {
            let Some(v) = value else { continue };
            let field = format!("{base}.{name}");
            if v > 100 {
                self.error(
                    codes::PERCENTAGE_RANGE,
                    r,
                    &field,
                    format!("{name} {v} is outside 0..100"),
                    None,
                );
            }
            self.warning(
                codes::DEPRECATED_MIRROR_PERCENT,
                r,
                &field,
                format!("`{name}` is deprecated"),
                Some(format!("write `mirrorPercentage: {{value: {v}}}` instead")),
            );
        }
        for (k, m) in route.mirrors.iter().enumerate() {
            let path = format!("{base}.mirrors[{k}]");
            self.destination(
                r,
                ns,
                &format!("{path}.destination"),
                &m.destination,
                DestinationRole::Mirror,
            );
            if let Some(p) = &m.percentage {
                self.percent(r, &format!("{path}.percentage.value"), p);
            }
        }
        if let Some(Err(err)) = route.timeout.as_deref().map(parse_duration) {
            self.error(
                codes::SCHEMA,
                r,
                &format!("{base}.timeout"),
                err.to_string(),
                None,
            );
        }
        if let Some(fault) = &route.fault {
            if let Some(p) = fault.delay.as_ref().and_then(|d| d.percentage.as_ref()) {
                self.percent(r, &format!("{base}.fault.delay.percentage.value"), p);
            }
            if let Some(p) = fault.abort.as_ref().and_then(|a| a.percentage.as_ref()) {
                self.percent(r, &format!("{base}.fault.abort.percentage.value"), p);
            }
        }
    }

    fn percent(&mut self, r: &Resource, field: &str, p: &Percent) {
        if !(0.0..=100.0).contains(&p.value) {
            self.error(
                codes::PERCENTAGE_RANGE,
                r,
                field,
                format!("percentage {} is outside 0..100", p.value),
                Some("write a percentage such as 25.0 for a quarter of the requests".into()),
            );
        }
    }

    fn match_block(&mut self, r: &Resource, base: &str, m: &HttpMatchRequest) {
        for (name, sm) in [
            ("uri", &m.uri),
            ("scheme", &m.scheme),
            ("method", &m.method),
            ("authority", &m.authority),
        ] {
            if let Some(sm) = sm {
                self.string_match(r, &format!("{base}.{name}"), sm);
            }
        }
        for (map_name, map) in [
            ("headers", &m.headers),
            ("withoutHeaders", &m.without_headers),
        ] {
            for (key, sm) in map {
                let field = super::lines::push_key(&format!("{base}.{map_name}"), key);
                if key.chars().any(|c| c.is_ascii_uppercase()) {
                    self.warning(
                        codes::UPPERCASE_HEADER,
                        r,
                        &field,
                        format!("header name `{key}` has uppercase letters; Istio's validation rejects it and Envoy sees header names in lowercase"),
                        Some(format!("write `{}`", key.to_ascii_lowercase())),
                    );
                }
                self.presence_match(r, &field, sm);
            }
        }
        for (key, sm) in &m.query_params {
            let field = super::lines::push_key(&format!("{base}.queryParams"), key);
            self.presence_match(r, &field, sm);
        }
        if let Some(p) = m.port
            && !(1..=65535).contains(&p)
        {
            self.error(
                codes::PORT_RANGE,
                r,
                &format!("{base}.port"),
                format!("port {p} is outside 1..65535"),
                None,
            );
        }
    }

    /// A header or query parameter match, where `regex: "*"` means "present".
    fn presence_match(&mut self, r: &Resource, field: &str, sm: &StringMatch) {
        self.check_matcher(r, StringMatcher::compile_for_presence(sm, field));
    }

    fn string_match(&mut self, r: &Resource, field: &str, sm: &StringMatch) {
        self.check_matcher(r, StringMatcher::compile(sm, field));
    }

    /// Reports what the shared matcher builder refused.
    fn check_matcher(&mut self, r: &Resource, compiled: Result<StringMatcher, MatcherError>) {
        match compiled {
            Ok(_) => {}
            Err(MatcherError::Ambiguous { field }) => self.error(
                codes::INVALID_MATCH,
                r,
                &field,
                "sets more than one of exact, prefix and regex; Istio allows exactly one".into(),
                Some("keep one; to match several values use a regex such as `a|b`".into()),
            ),
            Err(MatcherError::InvalidRegex {
                field,
                regex,
                reason,
            }) => {
                let reason = reason.lines().last().unwrap_or_default().trim().to_owned();
                self.error(
                    codes::INVALID_REGEX,
                    r,
                    &field,
                    format!("invalid regex `{regex}`: {reason}"),
                    Some("Istio uses RE2 syntax (no look-around, no backreferences); the regex must match the whole value".into()),
                );
            }
        }
    }

    /// `mirrorlab.dev/mirror-remove-headers` and `-set-headers`, VirtualService-wide or
    /// keyed by a route name: well-formed, and naming a route that exists.
    fn mirror_header_annotations(&mut self, r: &Resource, vs: &VirtualService) {
        for (key, text) in &vs.metadata.annotations {
            let parsed = if key.starts_with(MIRROR_SET_HEADERS) {
                parse_set(key, text).map(|_| ())
            } else if key.starts_with(MIRROR_REMOVE_HEADERS) {
                parse_remove(key, text).map(|_| ())
            } else {
                continue;
            };
            if let Err(err) = parsed {
                self.error(
                    codes::INVALID_ANNOTATION,
                    r,
                    &push_key("metadata.annotations", key),
                    err.reason,
                    Some(format!(
                        "{MIRROR_REMOVE_HEADERS} takes names separated by commas; {MIRROR_SET_HEADERS} takes one `name: value` per line"
                    )),
                );
            }
        }
        for (key, route) in MirrorHeaderEdits::scoped_route_names(&vs.metadata.annotations) {
            if !vs
                .spec
                .http
                .iter()
                .any(|h| h.name.as_deref() == Some(route.as_str()))
            {
                self.warning(
                    codes::ANNOTATION_UNKNOWN_ROUTE,
                    r,
                    &push_key("metadata.annotations", &key),
                    format!(
                        "no http route is named `{route}`, so these header edits apply to nothing"
                    ),
                    Some(
                        "give the route `name: ...` or fix the name after the `.` in the key"
                            .into(),
                    ),
                );
            }
        }
    }

    fn destination(
        &mut self,
        r: &Resource,
        ns: &str,
        path: &str,
        d: &super::model::Destination,
        role: DestinationRole,
    ) {
        let what = match role {
            DestinationRole::Route => "route destination",
            DestinationRole::Mirror => "mirror",
        };
        if d.host.trim().is_empty() {
            self.error(
                codes::MISSING_HOST,
                r,
                &format!("{path}.host"),
                format!("{what} has no host"),
                Some("add `host: reviews-v2` (a service name, an FQDN or an IP)".into()),
            );
            return;
        }
        if let Some(p) = d.port.as_ref().and_then(|p| p.number)
            && !(1..=65535).contains(&p)
        {
            self.error(
                codes::PORT_RANGE,
                r,
                &format!("{path}.port.number"),
                format!("port {p} is outside 1..65535"),
                None,
            );
        }
        let Some(subset) = &d.subset else { return };
        let host = fqdn(&d.host, ns);
        let rules: Vec<(&Resource, &DestinationRule)> =
            self.set.destination_rules_for(&host).collect();
        if rules
            .iter()
            .any(|(_, dr)| dr.spec.subsets.iter().any(|s| &s.name == subset))
        {
            return;
        }
        let existing: Vec<String> = rules
            .iter()
            .flat_map(|(_, dr)| dr.spec.subsets.iter().map(|s| s.name.clone()))
            .collect();
        let message = if rules.is_empty() {
            format!(
                "{what} names subset `{subset}` of host `{}`, but no DestinationRule for that host exists",
                d.host
            )
        } else {
            format!(
                "{what} names subset `{subset}` of host `{}`, but its DestinationRule defines only {}",
                d.host,
                if existing.is_empty() {
                    "no subsets".to_owned()
                } else {
                    existing
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )
        };
        let consequence = match role {
            DestinationRole::Mirror => {
                "Istio accepts this YAML but the shadow never receives a copy"
            }
            DestinationRole::Route => "Istio accepts this YAML but the requests fail with 503",
        };
        if let Some(close) = existing.iter().find(|e| {
            // Subset names are short (v1, v2): only a case slip or a typo in a longer name
            // is a likely mistake, never another version.
            strsim::levenshtein(&e.to_ascii_lowercase(), &subset.to_ascii_lowercase())
                <= e.len() / 4
        }) {
            self.error(
                codes::REFERENCED_RESOURCE_NOT_FOUND,
                r,
                &format!("{path}.subset"),
                message,
                Some(format!("{consequence}. Did you mean subset `{close}`?")),
            );
            return;
        }
        let help = format!(
            "{consequence}. Define the subset, e.g.\n              apiVersion: networking.istio.io/v1\n              kind: DestinationRule\n              metadata: {{name: {name}}}\n              spec:\n                host: {host_w}\n                subsets:\n                - name: {subset}\n                  labels: {{version: {subset}}}",
            name = d.host.split('.').next().unwrap_or(&d.host),
            host_w = d.host,
        );
        self.error(
            codes::REFERENCED_RESOURCE_NOT_FOUND,
            r,
            &format!("{path}.subset"),
            message,
            Some(help),
        );
    }

    fn destination_rule(&mut self, r: &Resource, dr: &DestinationRule) {
        if dr.spec.host.trim().is_empty() {
            self.error(
                codes::MISSING_RESOURCE_HOST,
                r,
                "spec.host",
                "DestinationRule has no host".into(),
                Some("add `host: reviews-v2` (the service whose subsets this defines)".into()),
            );
            return;
        }
        let host = fqdn(&dr.spec.host, dr.metadata.namespace_or_default());
        let entry = self.set.service_entry_for(&host);
        let mut seen: Vec<&str> = Vec::new();
        for (s, subset) in dr.spec.subsets.iter().enumerate() {
            let field = format!("spec.subsets[{s}]");
            if subset.name.is_empty() {
                self.error(
                    codes::SCHEMA,
                    r,
                    &field,
                    "subset has no name".into(),
                    Some("add `name: v1`".into()),
                );
            } else if seen.contains(&subset.name.as_str()) {
                self.error(
                    codes::DUPLICATE_SUBSET,
                    r,
                    &format!("{field}.name"),
                    format!("subset `{}` is defined twice", subset.name),
                    Some("subset names must be unique within a DestinationRule".into()),
                );
            }
            seen.push(&subset.name);
            if let Some((se_r, se)) = entry
                && !se.spec.endpoints.is_empty()
                && !se
                    .spec
                    .endpoints
                    .iter()
                    .any(|ep| labels_contain(&ep.labels, &subset.labels))
            {
                let labels: Vec<String> = subset
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                self.warning(
                    codes::SUBSET_WITHOUT_ENDPOINTS,
                    r,
                    &format!("{field}.labels"),
                    format!(
                        "subset `{}` selects {{{}}}, but no endpoint of {} has those labels, so the lab cannot reach it",
                        subset.name,
                        labels.join(", "),
                        se_r.display_name()
                    ),
                    Some("add an endpoint with these labels to the ServiceEntry, or fix the subset's labels".into()),
                );
            }
        }
    }

    fn service_entry(&mut self, r: &Resource, se: &ServiceEntry) {
        if se.spec.hosts.is_empty() {
            self.error(
                codes::MISSING_RESOURCE_HOST,
                r,
                "spec.hosts",
                "ServiceEntry has no hosts".into(),
                Some("add `hosts: [reviews.default.svc.cluster.local]`".into()),
            );
        }
        for (i, p) in se.spec.ports.iter().enumerate() {
            if !(1..=65535).contains(&p.number) {
                self.error(
                    codes::PORT_RANGE,
                    r,
                    &format!("spec.ports[{i}].number"),
                    format!("port {} is outside 1..65535", p.number),
                    None,
                );
            }
        }
        for (i, ep) in se.spec.endpoints.iter().enumerate() {
            for (name, port) in &ep.ports {
                if !(1..=65535).contains(port) {
                    let field = super::lines::push_key(&format!("spec.endpoints[{i}].ports"), name);
                    self.error(
                        codes::PORT_RANGE,
                        r,
                        &field,
                        format!("port {port} is outside 1..65535"),
                        None,
                    );
                }
            }
            if ep.address.as_deref().is_none_or(str::is_empty) {
                self.error(
                    codes::SCHEMA,
                    r,
                    &format!("spec.endpoints[{i}]"),
                    "endpoint has no address".into(),
                    Some("add `address: 127.0.0.1`".into()),
                );
            }
        }
    }
}

/// Every `headers.request` and `headers.response` of a route, at route and destination
/// level, with its field path.
fn header_operations<'a>(
    base: &str,
    route: &'a HttpRoute,
) -> Vec<(String, &'a super::model::HeaderOperations)> {
    let levels = route
        .headers
        .iter()
        .map(|h| (format!("{base}.headers"), h))
        .chain(route.route.iter().enumerate().filter_map(|(k, d)| {
            d.headers
                .as_ref()
                .map(|h| (format!("{base}.route[{k}].headers"), h))
        }));
    let mut out = Vec::new();
    for (field, headers) in levels {
        for (side, ops) in [
            ("request", &headers.request),
            ("response", &headers.response),
        ] {
            if let Some(ops) = ops {
                out.push((format!("{field}.{side}"), ops));
            }
        }
    }
    out
}

/// ` (name)` for messages, or nothing.
fn route_name(route: &HttpRoute) -> String {
    route
        .name
        .as_ref()
        .map_or(String::new(), |n| format!(" ({n})"))
}

/// Whether a route matches every request: no `match`, or a block with no request condition.
fn is_catch_all(route: &HttpRoute) -> bool {
    route.matches.is_empty()
        || route.matches.iter().any(|m| {
            m.uri.is_none()
                && m.scheme.is_none()
                && m.method.is_none()
                && m.authority.is_none()
                && m.headers.is_empty()
                && m.without_headers.is_empty()
                && m.query_params.is_empty()
                && m.port.is_none()
                && m.source_labels.is_empty()
                && m.gateways.is_empty()
                && m.source_namespace.is_none()
        })
}
