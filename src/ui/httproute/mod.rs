//! The HTTPRoute editor: parents (a Service for the mesh, or a Gateway), host names, and
//! the rules with their matches, weighted backends, mirror filters with their percentage,
//! timeouts and retry (`policy`). Diagnostics show next to their fields, as in the VirtualService
//! form; the rest of an HTTPRoute (rewrites, redirects, header modifiers) is kept as it is
//! and edited in the YAML tab.

use crate::config::gateway::model::{
    BackendObjectReference, Fraction, HttpBackendRef, HttpPathMatch, HttpRouteFilter,
    HttpRouteMatch, HttpRouteResource, HttpRouteRule, HttpRouteSpec, ParentReference,
    RequestMirrorFilter, ValueMatch,
};
use crate::config::model::ObjectMeta;

mod policy;

use super::form::{self, Diags, index_path, key_path};
use super::routes::{apply_list_edit, list_buttons};

/// The form of one HTTPRoute; true when it changed.
pub fn http_route_ui(ui: &mut egui::Ui, route: &mut HttpRouteResource, diags: &Diags) -> bool {
    let mut changed = false;
    ui.horizontal(|ui| {
        changed |= form::optional_text_field(ui, "name", &mut route.metadata.name, 160.0);
        changed |= form::optional_text_field(ui, "namespace", &mut route.metadata.namespace, 120.0);
    });
    diags.under_ui(ui, "metadata");
    changed |= parents_ui(ui, &mut route.spec, diags);
    ui.add_space(6.0);
    ui.horizontal(|ui| {
        ui.heading("Rules");
        ui.label("(Gateway API precedence decides, not the order: exact path, longest prefix, method, most headers, most query parameters)");
    });
    diags.exact_ui(ui, "spec.rules");
    let len = route.spec.rules.len();
    let mut edit = None;
    for (i, rule) in route.spec.rules.iter_mut().enumerate() {
        let path = index_path("spec", "rules", i);
        let title = match &rule.name {
            Some(name) => format!("Rule {i}: {name}"),
            None => format!("Rule {i}"),
        };
        let title = if diags.any_under(&path) {
            egui::RichText::new(format!("{title} (has problems)")).color(ui.visuals().warn_fg_color)
        } else {
            egui::RichText::new(title)
        };
        egui::CollapsingHeader::new(title)
            .id_salt(("rule", i))
            .default_open(true)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    changed |= form::optional_text_field(ui, "rule name", &mut rule.name, 180.0);
                    if let Some(e) = list_buttons(ui, "this rule", i, len) {
                        edit = Some(e);
                    }
                });
                changed |= rule_ui(ui, rule, &path, diags);
            });
    }
    if let Some(e) = edit {
        apply_list_edit(&mut route.spec.rules, e);
        changed = true;
    }
    if ui.button("Add rule").clicked() {
        let backend = first_backend(&route.spec);
        route.spec.rules.push(HttpRouteRule {
            backend_refs: vec![backend],
            ..HttpRouteRule::default()
        });
        changed = true;
    }
    changed
}

/// A backend like the route's first one (or the parent Service), for new rules.
fn first_backend(spec: &HttpRouteSpec) -> HttpBackendRef {
    spec.rules
        .iter()
        .flat_map(|r| r.backend_refs.first())
        .next()
        .cloned()
        .map(|b| HttpBackendRef {
            weight: None,
            filters: Vec::new(),
            ..b
        })
        .unwrap_or_else(|| HttpBackendRef {
            backend: BackendObjectReference {
                name: spec
                    .parent_refs
                    .first()
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                port: spec.parent_refs.first().and_then(|p| p.port).or(Some(80)),
                ..BackendObjectReference::default()
            },
            ..HttpBackendRef::default()
        })
}

/// What a parentRef names, as the picker says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParentKind {
    Service,
    Gateway,
}

fn parents_ui(ui: &mut egui::Ui, spec: &mut HttpRouteSpec, diags: &Diags) -> bool {
    let mut changed = false;
    ui.strong("Parents (a Service: the mesh's traffic to it; a Gateway: traffic through it)");
    let mut remove = None;
    for (i, p) in spec.parent_refs.iter_mut().enumerate() {
        let path = index_path("spec", "parentRefs", i);
        ui.horizontal(|ui| {
            let mut kind = if p.is_service() {
                ParentKind::Service
            } else {
                ParentKind::Gateway
            };
            let before = kind;
            let l = ui.label(format!("parent {i} kind"));
            egui::ComboBox::from_id_salt(("parent kind", i))
                .selected_text(if kind == ParentKind::Service {
                    "Service"
                } else {
                    "Gateway"
                })
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut kind, ParentKind::Service, "Service");
                    ui.selectable_value(&mut kind, ParentKind::Gateway, "Gateway");
                })
                .response
                .labelled_by(l.id);
            if kind != before {
                (p.group, p.kind) = match kind {
                    ParentKind::Service => (Some(String::new()), Some("Service".to_owned())),
                    ParentKind::Gateway => (None, None),
                };
                changed = true;
            }
            changed |= form::text_field(ui, &format!("parent {i} name"), &mut p.name, 140.0);
            changed |= form::optional_text_field(
                ui,
                &format!("parent {i} namespace"),
                &mut p.namespace,
                100.0,
            );
            changed |= form::optional_u32_field(
                ui,
                &format!("parent {i} port"),
                &mut p.port,
                80,
                1..=65535,
            );
            if ui
                .small_button("Remove")
                .on_hover_text("Remove this parent")
                .clicked()
            {
                remove = Some(i);
            }
        });
        diags.under_ui(ui, &path);
    }
    if let Some(i) = remove {
        spec.parent_refs.remove(i);
        changed = true;
    }
    if ui.small_button("Add parent").clicked() {
        spec.parent_refs.push(ParentReference {
            group: Some(String::new()),
            kind: Some("Service".to_owned()),
            ..ParentReference::default()
        });
        changed = true;
    }
    if spec.parent_refs.iter().any(|p| !p.is_service()) || !spec.hostnames.is_empty() {
        changed |= hostnames_ui(ui, &mut spec.hostnames, diags);
    }
    diags.exact_ui(ui, "spec.parentRefs");
    changed
}

fn hostnames_ui(ui: &mut egui::Ui, hosts: &mut Vec<String>, diags: &Diags) -> bool {
    let mut changed = false;
    let mut remove = None;
    ui.label("Host names (Gateways only; a Service parent ignores them)");
    for (i, host) in hosts.iter_mut().enumerate() {
        ui.horizontal(|ui| {
            ui.add_space(12.0);
            changed |= form::text_field(ui, &format!("hostname {}", i + 1), host, 240.0);
            if ui
                .small_button("Remove")
                .on_hover_text("Remove this host name")
                .clicked()
            {
                remove = Some(i);
            }
        });
        diags.under_ui(ui, &index_path("spec", "hostnames", i));
    }
    if let Some(i) = remove {
        hosts.remove(i);
        changed = true;
    }
    if ui.small_button("Add host name").clicked() {
        hosts.push(String::new());
        changed = true;
    }
    changed
}

fn rule_ui(ui: &mut egui::Ui, rule: &mut HttpRouteRule, path: &str, diags: &Diags) -> bool {
    let mut changed = false;
    diags.exact_ui(ui, path);
    ui.strong("Matches (OR'd; the conditions of one match are AND'd)");
    if rule.matches.is_empty() {
        ui.label("No matches: PathPrefix / (every request).");
    }
    let len = rule.matches.len();
    let mut edit = None;
    for (j, m) in rule.matches.iter_mut().enumerate() {
        let mpath = index_path(path, "matches", j);
        ui.group(|ui| {
            ui.horizontal(|ui| {
                ui.label(format!("Match {j}"));
                if let Some(e) = list_buttons(ui, "this match", j, len) {
                    edit = Some(e);
                }
            });
            changed |= match_ui(ui, m, &mpath, diags);
        });
    }
    if let Some(e) = edit {
        apply_list_edit(&mut rule.matches, e);
        changed = true;
    }
    if ui.small_button("Add match").clicked() {
        rule.matches.push(HttpRouteMatch {
            path: Some(HttpPathMatch {
                match_type: Some("PathPrefix".to_owned()),
                value: Some("/".to_owned()),
            }),
            ..HttpRouteMatch::default()
        });
        changed = true;
    }
    ui.add_space(4.0);
    changed |= backends_ui(ui, rule, path, diags);
    ui.add_space(4.0);
    changed |= mirrors_ui(ui, rule, path, diags);
    changed |= policy::timeouts_ui(ui, rule, path, diags);
    changed |= policy::retry_ui(ui, rule, path, diags);
    let other = rule
        .filters
        .iter()
        .filter(|f| f.request_mirror.is_none())
        .count();
    if other > 0 {
        ui.weak(format!("{other} other filter(s) (rewrites, redirects, header modifiers): kept as written; edit them in the YAML tab."));
    }
    diags.under_ui(ui, &key_path(path, "filters"));
    changed
}

fn match_ui(ui: &mut egui::Ui, m: &mut HttpRouteMatch, path: &str, diags: &Diags) -> bool {
    let mut changed = false;
    ui.horizontal(|ui| {
        // Drawn from a copy, written back only when edited: an absent path (the CRD's
        // PathPrefix `/`) stays absent in the YAML.
        let written = m.path.clone().unwrap_or_default();
        let mut kind = written
            .match_type
            .clone()
            .unwrap_or_else(|| "PathPrefix".to_owned());
        let mut value = written.value.clone().unwrap_or_else(|| "/".to_owned());
        let l = ui.label("path");
        let mut edited = false;
        egui::ComboBox::from_id_salt(ui.scope_id().with(path))
            .selected_text(kind.clone())
            .show_ui(ui, |ui| {
                for k in ["Exact", "PathPrefix", "RegularExpression"] {
                    edited |= ui.selectable_value(&mut kind, k.to_owned(), k).changed();
                }
            })
            .response
            .labelled_by(l.id);
        edited |= ui
            .add(egui::TextEdit::singleline(&mut value).desired_width(200.0))
            .labelled_by(l.id)
            .changed();
        if edited {
            m.path = Some(HttpPathMatch {
                match_type: Some(kind),
                value: Some(value),
            });
            changed = true;
        }
        changed |= form::optional_text_field(ui, "method", &mut m.method, 70.0);
    });
    diags.under_ui(ui, &key_path(path, "path"));
    diags.under_ui(ui, &key_path(path, "method"));
    changed |= value_rows_ui(
        ui,
        "header",
        &mut m.headers,
        &key_path(path, "headers"),
        diags,
    );
    changed |= value_rows_ui(
        ui,
        "query parameter",
        &mut m.query_params,
        &key_path(path, "queryParams"),
        diags,
    );
    changed
}

/// Header or query-parameter matches: name, Exact or RegularExpression, value.
fn value_rows_ui(
    ui: &mut egui::Ui,
    label: &str,
    rows: &mut Vec<ValueMatch>,
    path: &str,
    diags: &Diags,
) -> bool {
    let mut changed = false;
    let mut remove = None;
    for (i, row) in rows.iter_mut().enumerate() {
        ui.horizontal(|ui| {
            changed |= form::text_field(ui, &format!("{label} name"), &mut row.name, 120.0);
            let mut regex = row.is_regex();
            if ui.checkbox(&mut regex, format!("{label} regex")).changed() {
                row.match_type = regex.then(|| "RegularExpression".to_owned());
                changed = true;
            }
            changed |= form::text_field(ui, &format!("{label} value"), &mut row.value, 160.0);
            if ui
                .small_button("Remove")
                .on_hover_text(format!("Remove this {label} match"))
                .clicked()
            {
                remove = Some(i);
            }
        });
        diags.under_ui(ui, &index_path("", path, i));
    }
    if let Some(i) = remove {
        rows.remove(i);
        changed = true;
    }
    if ui.small_button(format!("Add {label} match")).clicked() {
        // A name the CRD accepts, so the file keeps loading while it is typed over.
        let name = if label == "header" {
            "x-header"
        } else {
            "param"
        };
        rows.push(ValueMatch {
            match_type: None,
            name: name.to_owned(),
            value: "value".to_owned(),
        });
        changed = true;
    }
    changed
}

fn backend_ui(ui: &mut egui::Ui, label: &str, b: &mut BackendObjectReference) -> bool {
    let mut changed = form::text_field(ui, &format!("{label} service"), &mut b.name, 160.0);
    changed |= form::optional_u32_field(ui, &format!("{label} port"), &mut b.port, 80, 1..=65535);
    changed
}

fn backends_ui(ui: &mut egui::Ui, rule: &mut HttpRouteRule, path: &str, diags: &Diags) -> bool {
    let mut changed = false;
    ui.strong("Backends (weights split in proportion; 0: none)");
    let total: u32 = rule.backend_refs.iter().map(HttpBackendRef::weight).sum();
    let mut remove = None;
    for (k, b) in rule.backend_refs.iter_mut().enumerate() {
        ui.horizontal(|ui| {
            changed |= backend_ui(ui, &format!("backend {k}"), &mut b.backend);
            changed |= form::optional_u32_field(
                ui,
                &format!("backend {k} weight"),
                &mut b.weight,
                1,
                0..=1_000_000,
            );
            if total > 0 {
                ui.weak(format!(
                    "{:.0}%",
                    100.0 * f64::from(b.weight()) / f64::from(total)
                ));
            }
            if ui
                .small_button("Remove")
                .on_hover_text("Remove this backend")
                .clicked()
            {
                remove = Some(k);
            }
        });
        diags.under_ui(ui, &index_path(path, "backendRefs", k));
    }
    if let Some(k) = remove {
        rule.backend_refs.remove(k);
        changed = true;
    }
    if ui.small_button("Add backend").clicked() {
        // Named like the first backend, so the file keeps loading while it is typed over.
        let name = rule
            .backend_refs
            .first()
            .map_or_else(|| "reviews".to_owned(), |b| b.backend.name.clone());
        rule.backend_refs.push(HttpBackendRef {
            backend: BackendObjectReference {
                name,
                port: Some(80),
                ..BackendObjectReference::default()
            },
            ..HttpBackendRef::default()
        });
        changed = true;
    }
    if total == 0 && rule.filters.iter().all(|f| f.request_redirect.is_none()) {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            "No backend with a weight: every request is answered 500.",
        );
    }
    diags.exact_ui(ui, &key_path(path, "backendRefs"));
    changed
}

fn mirrors_ui(ui: &mut egui::Ui, rule: &mut HttpRouteRule, path: &str, diags: &Diags) -> bool {
    let mut changed = false;
    ui.strong("Mirroring (RequestMirror filters; each shadow drawn on its own)");
    let count = rule
        .filters
        .iter()
        .filter(|f| f.request_mirror.is_some())
        .count();
    let mut remove = None;
    let mut k = 0;
    for (i, f) in rule.filters.iter_mut().enumerate() {
        let Some(m) = &mut f.request_mirror else {
            continue;
        };
        let label = if count == 1 {
            "Mirror".to_owned()
        } else {
            format!("Mirror {k}")
        };
        ui.horizontal(|ui| {
            changed |= backend_ui(ui, &label.to_lowercase(), &mut m.backend_ref);
            if ui
                .small_button("Remove")
                .on_hover_text("Remove this mirror")
                .clicked()
            {
                remove = Some(i);
            }
        });
        changed |= mirror_share_ui(ui, &format!("{label} percentage"), m);
        diags.under_ui(ui, &index_path(path, "filters", i));
        k += 1;
    }
    if let Some(i) = remove {
        rule.filters.remove(i);
        changed = true;
    }
    if ui.small_button("Add mirror").clicked() {
        let backend_ref = rule
            .backend_refs
            .first()
            .map(|b| b.backend.clone())
            .unwrap_or_default();
        rule.filters.push(HttpRouteFilter {
            filter_type: "RequestMirror".to_owned(),
            request_mirror: Some(RequestMirrorFilter {
                backend_ref,
                percent: None,
                fraction: None,
            }),
            ..HttpRouteFilter::default()
        });
        changed = true;
    }
    changed
}

/// The mirrored share: absent is 100%; a whole percentage is written as `percent`, any
/// other as a `fraction` over 10,000 (GEP-3171).
fn mirror_share_ui(ui: &mut egui::Ui, label: &str, m: &mut RequestMirrorFilter) -> bool {
    let mut value = m.percentage().unwrap_or(100.0);
    let mut changed = false;
    ui.horizontal(|ui| {
        if form::percentage_ui(ui, label, &mut value) {
            set_share(m, value);
            changed = true;
        }
        if m.percent.is_none() && m.fraction.is_none() {
            ui.weak("(not set: 100%)");
        } else if ui
            .small_button("Unset")
            .on_hover_text("Remove the share: every request is mirrored")
            .clicked()
        {
            m.percent = None;
            m.fraction = None;
            changed = true;
        }
    });
    changed
}

/// Writes a percentage as `percent` when whole, else as a reduced fraction.
pub fn set_share(m: &mut RequestMirrorFilter, percent: f64) {
    let hundredths = (percent * 100.0).round() as u32;
    if hundredths.is_multiple_of(100) {
        m.percent = Some(hundredths / 100);
        m.fraction = None;
    } else {
        let (mut n, mut d) = (hundredths, 10_000);
        let (mut a, mut b) = (n, d);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        n /= a;
        d /= a;
        m.percent = None;
        m.fraction = Some(Fraction {
            numerator: n,
            denominator: Some(d),
        });
    }
}

/// A new HTTPRoute for the mesh's traffic to `reviews`, to v1.
pub fn new_http_route() -> HttpRouteResource {
    HttpRouteResource {
        api_version: "gateway.networking.k8s.io/v1".to_owned(),
        kind: "HTTPRoute".to_owned(),
        metadata: ObjectMeta {
            name: Some("new-route".to_owned()),
            ..ObjectMeta::default()
        },
        spec: HttpRouteSpec {
            parent_refs: vec![ParentReference {
                group: Some(String::new()),
                kind: Some("Service".to_owned()),
                name: "reviews".to_owned(),
                port: Some(9080),
                ..ParentReference::default()
            }],
            rules: vec![HttpRouteRule {
                backend_refs: vec![HttpBackendRef {
                    backend: BackendObjectReference {
                        name: "reviews-v1".to_owned(),
                        port: Some(9080),
                        ..BackendObjectReference::default()
                    },
                    ..HttpBackendRef::default()
                }],
                ..HttpRouteRule::default()
            }],
            ..HttpRouteSpec::default()
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_a_percent_when_whole_and_a_fraction_otherwise() {
        let mut m = RequestMirrorFilter::default();
        set_share(&mut m, 25.0);
        assert_eq!((m.percent, m.fraction.clone()), (Some(25), None));
        set_share(&mut m, 12.5);
        assert_eq!(m.percent, None);
        assert_eq!(
            m.fraction,
            Some(Fraction {
                numerator: 1,
                denominator: Some(8)
            })
        );
        assert_eq!(m.percentage(), Some(12.5));
    }
}
