//! The VirtualService editor: hosts, gateways, and each HTTP route's matches, action,
//! destinations and policies.

use crate::config::model::{
    Destination, HttpMatchRequest, HttpRoute, HttpRouteDestination, VirtualService,
};

use super::super::form::{self, Catalog, Diags, index_path, key_path};
use super::mirror::mirror_ui;
use super::route_action::{
    RouteAction, action_picker_ui, delegate_ui, direct_response_ui, redirect_ui,
};
use super::route_filters::{cors_ui, fault_ui, headers_ui, rewrite_ui};
use super::widgets::{apply_list_edit, hosts_ui, list_buttons, metadata_ui, string_list_ui};

pub(super) fn virtual_service_ui(
    ui: &mut egui::Ui,
    vs: &mut VirtualService,
    catalog: &Catalog,
    diags: &Diags,
) -> bool {
    let mut changed = metadata_ui(ui, &mut vs.metadata, diags);
    changed |= hosts_ui(ui, "Hosts", &mut vs.spec.hosts, "spec.hosts", diags);
    changed |= string_list_ui(
        ui,
        "Gateways (none: the mesh's sidecars, as `mesh`)",
        "gateway",
        &mut vs.spec.gateways,
        "spec.gateways",
        diags,
        "mesh",
    );
    ui.add_space(6.0);
    let default_host = vs.spec.hosts.first().cloned().unwrap_or_default();
    ui.horizontal(|ui| {
        ui.heading("HTTP routes");
        ui.label("(tried in order; the first match wins)");
    });
    diags.exact_ui(ui, "spec.http");
    let len = vs.spec.http.len();
    let mut edit = None;
    for (i, route) in vs.spec.http.iter_mut().enumerate() {
        let path = index_path("spec", "http", i);
        let title = match &route.name {
            Some(name) => format!("Route {i}: {name}"),
            None => format!("Route {i}"),
        };
        let title = if diags.any_under(&path) {
            egui::RichText::new(format!("{title} (has problems)")).color(ui.visuals().warn_fg_color)
        } else {
            egui::RichText::new(title)
        };
        egui::CollapsingHeader::new(title)
            .id_salt(("route", i))
            .default_open(true)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    changed |= form::optional_text_field(ui, "route name", &mut route.name, 180.0);
                    if let Some(e) = list_buttons(ui, "this route", i, len) {
                        edit = Some(e);
                    }
                });
                changed |= route_ui(ui, route, &path, &default_host, catalog, diags);
            });
    }
    if let Some(e) = edit {
        apply_list_edit(&mut vs.spec.http, e);
        changed = true;
    }
    if ui.button("Add route").clicked() {
        let host = vs.spec.hosts.first().cloned().unwrap_or_default();
        vs.spec.http.push(HttpRoute {
            route: vec![HttpRouteDestination {
                destination: Destination {
                    host,
                    ..Destination::default()
                },
                ..HttpRouteDestination::default()
            }],
            ..HttpRoute::default()
        });
        changed = true;
    }
    changed
}

fn route_ui(
    ui: &mut egui::Ui,
    route: &mut HttpRoute,
    path: &str,
    default_host: &str,
    catalog: &Catalog,
    diags: &Diags,
) -> bool {
    diags.exact_ui(ui, path);
    let mut changed = matches_ui(ui, route, path, diags);
    ui.add_space(4.0);
    changed |= action_picker_ui(ui, route, default_host, path, diags);
    let action = RouteAction::of(route);
    ui.indent(("action", path), |ui| {
        if let Some(r) = &mut route.redirect {
            changed |= redirect_ui(ui, r, path, diags);
        } else if let Some(d) = &mut route.direct_response {
            changed |= direct_response_ui(ui, d, path, diags);
        } else if let Some(d) = &mut route.delegate {
            changed |= delegate_ui(ui, d, path, diags);
        } else {
            changed |= destinations_ui(ui, route, path, catalog, diags);
        }
    });
    let forwards = matches!(action, RouteAction::Forward | RouteAction::Delegate);
    if forwards {
        ui.add_space(4.0);
        changed |= rewrite_ui(ui, &mut route.rewrite, path, diags);
    }
    changed |= headers_ui(ui, "headers", &mut route.headers, path, diags);
    if forwards {
        ui.add_space(4.0);
        changed |= fault_ui(ui, &mut route.fault, path, diags);
    }
    changed |= cors_ui(ui, &mut route.cors_policy, path, diags);
    if action == RouteAction::Forward {
        changed |= timeout_ui(ui, route, path, diags);
        ui.add_space(4.0);
        changed |= super::super::policy_form::retries_ui(ui, &mut route.retries, path, diags);
    }
    if forwards {
        ui.add_space(4.0);
        changed |= mirror_ui(ui, route, path, catalog, diags);
    }
    changed
}

/// The route's match blocks.
fn matches_ui(ui: &mut egui::Ui, route: &mut HttpRoute, path: &str, diags: &Diags) -> bool {
    let mut changed = false;
    ui.strong("Match (blocks are OR'd; fields in a block are AND'd)");
    let mut edit = None;
    let len = route.matches.len();
    if len == 0 {
        ui.label("No match blocks: this route takes every request.");
    }
    for (j, block) in route.matches.iter_mut().enumerate() {
        let bpath = index_path(path, "match", j);
        ui.group(|ui| {
            ui.horizontal(|ui| {
                ui.label(format!("Match block {j}"));
                if let Some(e) = list_buttons(ui, "this match block", j, len) {
                    edit = Some(e);
                }
            });
            changed |= match_block_ui(ui, block, &bpath, diags);
        });
    }
    if let Some(e) = edit {
        apply_list_edit(&mut route.matches, e);
        changed = true;
    }
    if ui.small_button("Add match block").clicked() {
        route.matches.push(HttpMatchRequest::default());
        changed = true;
    }
    diags.exact_ui(ui, &key_path(path, "match"));
    changed
}

/// The weighted destinations of a forwarding route, each with its own headers.
fn destinations_ui(
    ui: &mut egui::Ui,
    route: &mut HttpRoute,
    path: &str,
    catalog: &Catalog,
    diags: &Diags,
) -> bool {
    let mut changed = false;
    ui.strong("Destinations");
    let mut remove = None;
    let total: u32 = route.route.iter().map(|d| d.weight.unwrap_or(0)).sum();
    let lone = route.route.len() == 1;
    for (k, dest) in route.route.iter_mut().enumerate() {
        let dpath = index_path(path, "route", k);
        ui.horizontal(|ui| {
            changed |= form::destination_ui(
                ui,
                &format!("destination {k}"),
                &mut dest.destination,
                &key_path(&dpath, "destination"),
                catalog,
                diags,
            );
        });
        ui.horizontal(|ui| {
            ui.add_space(12.0);
            let hint = if lone { 100 } else { 0 };
            changed |= form::optional_u32_field(ui, "weight", &mut dest.weight, hint, 0..=100);
            if ui
                .small_button("Remove")
                .on_hover_text("Remove this destination")
                .clicked()
            {
                remove = Some(k);
            }
        });
        ui.horizontal(|ui| {
            ui.add_space(12.0);
            ui.vertical(|ui| {
                changed |= headers_ui(
                    ui,
                    &format!("destination {k} headers"),
                    &mut dest.headers,
                    &dpath,
                    diags,
                );
            });
        });
        diags.under_ui(ui, &dpath);
    }
    if let Some(k) = remove {
        route.route.remove(k);
        changed = true;
    }
    ui.horizontal(|ui| {
        if ui.small_button("Add destination").clicked() {
            route.route.push(HttpRouteDestination::default());
            changed = true;
        }
        if route.route.len() > 1 || route.route.iter().any(|d| d.weight.is_some()) {
            let text = format!("weights sum: {total} of 100");
            if total == 100 {
                ui.label(text);
            } else {
                ui.colored_label(ui.visuals().warn_fg_color, text);
            }
        }
    });
    diags.exact_ui(ui, &key_path(path, "route"));
    changed
}

fn timeout_ui(ui: &mut egui::Ui, route: &mut HttpRoute, path: &str, diags: &Diags) -> bool {
    let mut changed = false;
    ui.add_space(4.0);
    ui.horizontal(|ui| {
        changed |= form::optional_text_field(ui, "timeout", &mut route.timeout, 70.0);
        ui.weak(
            "e.g. 2s or 500ms: the primary's whole answer must arrive by then (else 504, or a \
             cut body). Empty: no timeout, Istio's default.",
        );
    });
    diags.exact_ui(ui, &key_path(path, "timeout"));
    changed
}

fn match_block_ui(ui: &mut egui::Ui, m: &mut HttpMatchRequest, path: &str, diags: &Diags) -> bool {
    let mut changed = false;
    diags.exact_ui(ui, path);
    ui.horizontal(|ui| {
        changed |= form::optional_text_field(ui, "block name", &mut m.name, 120.0);
        let mut ignore = m.ignore_uri_case.unwrap_or(false);
        if ui.checkbox(&mut ignore, "ignoreUriCase").changed() {
            m.ignore_uri_case = ignore.then_some(true);
            changed = true;
        }
        changed |= form::optional_u32_field(ui, "match port", &mut m.port, 80, 1..=65535);
    });
    changed |= form::string_match_ui(ui, "uri", &mut m.uri, &key_path(path, "uri"), diags);
    changed |= form::string_match_ui(
        ui,
        "method",
        &mut m.method,
        &key_path(path, "method"),
        diags,
    );
    changed |= form::string_match_ui(
        ui,
        "authority",
        &mut m.authority,
        &key_path(path, "authority"),
        diags,
    );
    changed |= form::string_match_ui(
        ui,
        "scheme",
        &mut m.scheme,
        &key_path(path, "scheme"),
        diags,
    );
    changed |= form::match_rows_ui(
        ui,
        "header",
        &mut m.headers,
        &key_path(path, "headers"),
        diags,
    );
    changed |= form::match_rows_ui(
        ui,
        "query parameter",
        &mut m.query_params,
        &key_path(path, "queryParams"),
        diags,
    );
    changed |= form::match_rows_ui(
        ui,
        "without header",
        &mut m.without_headers,
        &key_path(path, "withoutHeaders"),
        diags,
    );
    diags.under_ui(ui, &key_path(path, "port"));
    diags.under_ui(ui, &key_path(path, "ignoreUriCase"));
    changed
}

pub(super) fn new_virtual_service() -> VirtualService {
    VirtualService {
        api_version: "networking.istio.io/v1".to_owned(),
        kind: "VirtualService".to_owned(),
        metadata: crate::config::model::ObjectMeta {
            name: Some("new-vs".to_owned()),
            ..Default::default()
        },
        spec: crate::config::model::VirtualServiceSpec {
            hosts: vec!["reviews".to_owned()],
            http: vec![HttpRoute {
                route: vec![HttpRouteDestination {
                    destination: Destination {
                        host: "reviews".to_owned(),
                        ..Destination::default()
                    },
                    ..HttpRouteDestination::default()
                }],
                ..HttpRoute::default()
            }],
            ..Default::default()
        },
        status: None,
    }
}
