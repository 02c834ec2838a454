//! One HTTP route (istio/istio `validateHTTPRoute`, `validateHTTPRouteConflict`,
//! `validateHTTPRouteDestinations`): its matches, its action, its destinations and weights,
//! its mirrors and timeout, and what the lab does not simulate. The route's other parts
//! (headers, retries, fault, redirect, rewrite, CORS) are in `route_parts`.

use super::super::headers::{HeaderOpError, HeaderOps};
use super::super::model::{HeaderOperations, HttpRoute, Percent};
use super::super::{Resource, codes};
use super::virtual_service::Binding;
use super::{Checker, DestinationRole};

impl Checker<'_> {
    /// Warns about each part of a route that the mesh would act on and the lab does not, so
    /// the lab's answers would differ from the mesh's there: it says so rather than pass the
    /// requests on as if the field were absent without a word.
    fn not_simulated(&mut self, r: &Resource, base: &str, route: &HttpRoute) {
        let mut parts: Vec<(String, String)> = Vec::new();
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
    /// too. One builder for both: [`HeaderOps::compile`]. Where Istio's own rules already
    /// refused the field (`route_parts`), once is enough.
    fn check_header_operations(&mut self, r: &Resource, base: &str, route: &HttpRoute) {
        for (field, ops) in header_operations(base, route) {
            if let Err(err) = HeaderOps::compile(ops, &field) {
                let at = match &err {
                    HeaderOpError::Name { field, .. } | HeaderOpError::Value { field, .. } => {
                        field.clone()
                    }
                };
                let file = self.set.file_name(r).to_owned();
                let said = self
                    .out
                    .iter()
                    .any(|d| d.file == file && d.field_path.as_deref() == Some(at.as_str()));
                if !said {
                    self.error(codes::INVALID_HEADER, r, &at, err.to_string(), None);
                }
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

    pub(super) fn route(
        &mut self,
        r: &Resource,
        ns: &str,
        base: &str,
        route: &HttpRoute,
        binding: Binding,
    ) {
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
        self.route_conflicts(r, base, route, binding);
        self.delegate(r, ns, base, route);
        self.route_destinations(r, ns, base, route);
        self.route_mirrors(r, ns, base, route);
        if let Some(t) = &route.timeout {
            self.duration(r, &format!("{base}.timeout"), t);
        }
        self.route_parts(r, base, route);
        self.check_header_operations(r, base, route);
    }

    /// Actions that cannot go together, by the kind of route (`validateHTTPRouteConflict`).
    fn route_conflicts(&mut self, r: &Resource, base: &str, route: &HttpRoute, binding: Binding) {
        let field = |f: &str| format!("{base}.{f}");
        if route.delegate.is_some() && !binding.delegate {
            // A root route: it may only delegate.
            if route.redirect.is_some() {
                self.conflict(
                    r,
                    &field("redirect"),
                    "a route that delegates cannot also redirect",
                );
            }
            if !route.route.is_empty() {
                self.conflict(
                    r,
                    &field("route"),
                    "a route that delegates cannot also have `route` destinations",
                );
            }
            return;
        }
        if binding.delegate && route.delegate.is_some() {
            self.conflict(
                r,
                &field("delegate"),
                "a delegate VirtualService's route cannot delegate again",
            );
        }
        if route.redirect.is_some() {
            for (present, f) in [
                (!route.route.is_empty(), "route"),
                (route.fault.is_some(), "fault"),
                (route.rewrite.is_some(), "rewrite"),
                (route.direct_response.is_some(), "directResponse"),
            ] {
                if present {
                    self.conflict(
                        r,
                        &field(f),
                        &format!("a route cannot have both `redirect` and `{f}`"),
                    );
                }
            }
        } else if route.direct_response.is_some() {
            for (present, f) in [
                (!route.route.is_empty(), "route"),
                (route.fault.is_some(), "fault"),
                (route.rewrite.is_some(), "rewrite"),
            ] {
                if present {
                    self.conflict(
                        r,
                        &field(f),
                        &format!("a route cannot have both `directResponse` and `{f}`"),
                    );
                }
            }
        } else if route.route.is_empty() && binding.delegate && route.delegate.is_some() {
            self.refuse(
                codes::NO_DESTINATION,
                r,
                base,
                "route needs `route` destinations, a redirect or a directResponse",
            );
        }
    }

    fn conflict(&mut self, r: &Resource, field: &str, message: &str) {
        self.refuse(
            codes::ROUTE_ACTION_CONFLICT,
            r,
            field,
            format!("{message}; Istio refuses the route"),
        );
    }

    /// Each destination, and the weights: no weight is negative (the schema), several
    /// destinations may not add up to 0; other sums are advice, Istio normalizes them.
    fn route_destinations(&mut self, r: &Resource, ns: &str, base: &str, route: &HttpRoute) {
        for (k, d) in route.route.iter().enumerate() {
            let path = format!("{base}.route[{k}].destination");
            self.destination(r, ns, &path, &d.destination, DestinationRole::Route);
            if let Some(h) = &d.headers {
                self.header_operations(r, &format!("{base}.route[{k}].headers"), h);
            }
        }
        let any_weight = route.route.iter().any(|d| d.weight.is_some());
        if route.route.len() <= 1 && !any_weight {
            return;
        }
        let sum: u64 = route
            .route
            .iter()
            .map(|d| u64::from(d.weight.unwrap_or(0)))
            .sum();
        if sum == 0 && route.route.len() > 1 {
            self.error(
                codes::ZERO_TOTAL_WEIGHT,
                r,
                &format!("{base}.route"),
                "the destinations' weights add up to 0; Istio refuses a route whose traffic goes nowhere".into(),
                Some("give each destination its share, e.g. `weight: 90` and `weight: 10`".into()),
            );
        } else if sum != 100 {
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
                Some("Istio accepts it and splits traffic in proportion to the weights; make them add up to 100 so the split is what you read".into()),
            );
        }
    }

    fn route_mirrors(&mut self, r: &Resource, ns: &str, base: &str, route: &HttpRoute) {
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
                codes::DEPRECATED_FIELD,
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
    }

    pub(super) fn percent(&mut self, r: &Resource, field: &str, p: &Percent) {
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
}

/// Every `headers.request` and `headers.response` of a route, at route and destination
/// level, with its field path.
fn header_operations<'a>(base: &str, route: &'a HttpRoute) -> Vec<(String, &'a HeaderOperations)> {
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
