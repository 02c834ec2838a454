//! The Routes panel: forms over the open config's VirtualServices, DestinationRules and
//! ServiceEntries, with each diagnostic next to its field and Apply blocked on errors.

use crate::config::IstioObject;
use crate::config::model::{
    Destination, DestinationRule, HttpMatchRequest, HttpMirrorPolicy, HttpRoute,
    HttpRouteDestination, Percent, ServiceEntry, ServicePort, Subset, VirtualService,
    WorkloadEntry,
};

use super::form::{self, Catalog, Diags, index_path, key_path};
use super::{Command, Document};

/// State of the Routes panel that lives across frames.
#[derive(Debug, Default)]
pub struct RoutesPanel {
    /// Index of the selected resource in the config.
    selected: usize,
    /// What the last "Convert" could not express, one line each.
    conversion_notes: Vec<String>,
}

/// The Routes panel for one frame.
pub struct RoutesView<'a> {
    /// Panel state.
    pub panel: &'a mut RoutesPanel,
    /// The open config.
    pub doc: &'a mut Document,
    /// Where the panel's commands go.
    pub commands: &'a mut Vec<Command>,
    /// True while the proxy runs (Apply hot-swaps it).
    pub proxy_running: bool,
}

/// A structural edit of a list, decided while drawing and done after.
pub(super) enum ListEdit {
    Remove(usize),
    Duplicate(usize),
    MoveUp(usize),
    MoveDown(usize),
}

pub(super) fn apply_list_edit<T: Clone>(list: &mut Vec<T>, edit: ListEdit) {
    match edit {
        ListEdit::Remove(i) if i < list.len() => {
            list.remove(i);
        }
        ListEdit::Duplicate(i) => {
            if let Some(item) = list.get(i).cloned() {
                list.insert(i + 1, item);
            }
        }
        ListEdit::MoveUp(i) if i > 0 && i < list.len() => list.swap(i - 1, i),
        ListEdit::MoveDown(i) if i + 1 < list.len() => list.swap(i, i + 1),
        _ => {}
    }
}

/// Remove / duplicate / move buttons for item `i` of `len`.
pub(super) fn list_buttons(
    ui: &mut egui::Ui,
    what: &str,
    i: usize,
    len: usize,
) -> Option<ListEdit> {
    let mut edit = None;
    if ui
        .add_enabled(i > 0, egui::Button::new("Up").small())
        .on_hover_text(format!("Move {what} up"))
        .clicked()
    {
        edit = Some(ListEdit::MoveUp(i));
    }
    if ui
        .add_enabled(i + 1 < len, egui::Button::new("Down").small())
        .on_hover_text(format!("Move {what} down"))
        .clicked()
    {
        edit = Some(ListEdit::MoveDown(i));
    }
    if ui
        .small_button("Duplicate")
        .on_hover_text(format!("Duplicate {what}"))
        .clicked()
    {
        edit = Some(ListEdit::Duplicate(i));
    }
    if ui
        .small_button("Remove")
        .on_hover_text(format!("Remove {what}"))
        .clicked()
    {
        edit = Some(ListEdit::Remove(i));
    }
    edit
}

impl RoutesView<'_> {
    /// Shows the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        if self.doc.path().is_none() && self.doc.yaml().trim().is_empty() {
            self.welcome_ui(ui);
            return;
        }
        if let Some(problem) = self.doc.form_blocker() {
            ui.heading("The form editor cannot show this file yet");
            ui.label(problem);
            ui.label("Fix it in the YAML tab; the form comes back as soon as the YAML loads.");
            self.all_diagnostics_ui(ui);
            if ui.button("Open the YAML tab").clicked() {
                self.commands.push(Command::ShowTab(super::Tab::Yaml));
            }
            return;
        }
        self.apply_bar(ui);
        if self.doc.has_comments() || self.doc.comments_dropped() > 0 {
            let dropped = match self.doc.comments_dropped() {
                0 => String::new(),
                1 => " The last edit removed a field and its comment.".to_owned(),
                n => format!(" The last edit removed fields and their {n} comment lines."),
            };
            ui.weak(format!(
                "Editing here rewrites the YAML from the form; comments stay beside their \
                 fields.{dropped}"
            ));
        }
        ui.separator();
        egui::Panel::left("resources")
            .resizable(true)
            .default_size(240.0)
            .show(ui, |ui| self.resource_list(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical()
                .auto_shrink([false, false])
                .show(ui, |ui| self.resource_form(ui));
        });
    }

    /// What a first run shows: the ways in, one click each.
    fn welcome_ui(&mut self, ui: &mut egui::Ui) {
        ui.add_space(24.0);
        ui.heading("Welcome to mirrorlab");
        ui.label(
            "Watch Istio traffic mirroring on your machine: the primary and its shadow side by \
             side, with latency, errors and where their responses differ.",
        );
        ui.add_space(12.0);
        if ui
            .button("Start demo")
            .on_hover_text(
                "Sample config, demo services, proxy and traffic: live plots in one click",
            )
            .clicked()
        {
            self.commands.push(Command::StartDemo);
        }
        ui.label(
            "Starts demo reviews services, the proxy on the listen address, and generated traffic.",
        );
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            if ui.button("Open a config...").clicked() {
                self.commands.push(Command::OpenDialog);
            }
            ui.label("or drop a VirtualService YAML file on this window.");
        });
        ui.add_space(8.0);
        if ui.button("Start from the sample config").clicked() {
            self.commands.push(Command::NewFromSample);
        }
        if ui.button("Start from a new VirtualService").clicked() {
            self.panel.selected = self
                .doc
                .add_resource(IstioObject::VirtualService(Box::new(new_virtual_service())));
        }
    }

    fn all_diagnostics_ui(&self, ui: &mut egui::Ui) {
        for d in self.doc.config().diagnostics() {
            form::diagnostic_ui(ui, d);
        }
    }

    fn apply_bar(&mut self, ui: &mut egui::Ui) {
        let errors: Vec<String> = self
            .doc
            .config()
            .diagnostics()
            .iter()
            .filter(|d| d.severity == crate::config::Severity::Error)
            .map(|d| {
                let where_ = d.field_path.as_deref().unwrap_or("");
                format!("line {}: {} {where_}", d.line, d.message)
            })
            .collect();
        ui.horizontal(|ui| {
            let label = if self.proxy_running {
                "Apply to running proxy"
            } else {
                // Apply on a stopped proxy starts it with these routes.
                "Apply and start proxy"
            };
            let button = ui.add_enabled(errors.is_empty(), egui::Button::new(label));
            if errors.is_empty() {
                if button
                    .on_hover_text("Compile the routes and hot-swap them into the proxy")
                    .clicked()
                {
                    self.commands.push(Command::Apply);
                }
            } else {
                let why = format!(
                    "Apply is blocked by {} error{}:\n{}",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" },
                    errors.join("\n")
                );
                button.on_disabled_hover_text(why.clone());
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!(
                        "Apply is blocked: {} error{} (shown next to their fields)",
                        errors.len(),
                        if errors.len() == 1 { "" } else { "s" }
                    ),
                )
                .on_hover_text(why);
            }
            if self.doc.applied_is_stale() && errors.is_empty() && self.proxy_running {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    "The proxy runs an older version of these routes",
                );
            }
        });
    }

    fn resource_list(&mut self, ui: &mut egui::Ui) {
        let diags = self.doc.config().diagnostics().to_vec();
        let mut add: Option<IstioObject> = None;
        egui::ScrollArea::vertical().show(ui, |ui| {
            for (i, r) in self.doc.config().resources().iter().enumerate() {
                let name = r.display_name();
                let errors = diags
                    .iter()
                    .filter(|d| {
                        d.resource.as_deref() == Some(name.as_str())
                            && d.severity == crate::config::Severity::Error
                    })
                    .count();
                let text = if errors > 0 && self.panel.selected != i {
                    egui::RichText::new(format!("{name} ({errors} error{})", plural(errors)))
                        .color(ui.visuals().error_fg_color)
                } else if errors > 0 {
                    // Red on the selection colour does not read; the count says it.
                    egui::RichText::new(format!("{name} ({errors} error{})", plural(errors)))
                } else {
                    egui::RichText::new(name)
                };
                if ui
                    .selectable_label(self.panel.selected == i, text)
                    .clicked()
                {
                    self.panel.selected = i;
                    // The notes were about the resource converted, not this one.
                    self.panel.conversion_notes.clear();
                }
            }
            ui.separator();
            if ui.button("Add VirtualService").clicked() {
                add = Some(IstioObject::VirtualService(Box::new(new_virtual_service())));
            }
            if ui.button("Add DestinationRule").clicked() {
                add = Some(IstioObject::DestinationRule(Box::new(
                    new_destination_rule(),
                )));
            }
            if ui.button("Add ServiceEntry").clicked() {
                add = Some(IstioObject::ServiceEntry(Box::new(new_service_entry())));
            }
            if ui.button("Add HTTPRoute").clicked() {
                add = Some(IstioObject::GatewayApi(Box::new(
                    crate::config::gateway::GatewayApiObject::HttpRoute(
                        super::httproute::new_http_route(),
                    ),
                )));
            }
        });
        if let Some(object) = add {
            self.panel.selected = self.doc.add_resource(object);
            self.panel.conversion_notes.clear();
        }
    }

    fn resource_form(&mut self, ui: &mut egui::Ui) {
        let catalog = Catalog::from_config(self.doc.config());
        let all_diags = self.doc.config().diagnostics().to_vec();
        let count = self.doc.config().resources().len();
        if count == 0 {
            ui.label("The file has no resources yet: add a VirtualService on the left.");
            return;
        }
        self.panel.selected = self.panel.selected.min(count - 1);
        let index = self.panel.selected;
        let mut remove = false;
        let mut convert = false;
        for note in &self.panel.conversion_notes {
            ui.colored_label(ui.visuals().warn_fg_color, format!("Not converted: {note}"));
        }
        let changed = self.doc.edit_resource(index, |resource| {
            let diags = Diags::for_resource(&all_diags, &resource.display_name());
            let mut changed = false;
            ui.horizontal(|ui| {
                ui.heading(resource.display_name());
                if ui.small_button("Remove resource").clicked() {
                    remove = true;
                }
                let target = match &resource.object {
                    IstioObject::VirtualService(_) => Some("Convert to HTTPRoute"),
                    IstioObject::GatewayApi(g)
                        if matches!(
                            **g,
                            crate::config::gateway::GatewayApiObject::HttpRoute(_)
                                | crate::config::gateway::GatewayApiObject::GrpcRoute(_)
                        ) =>
                    {
                        Some("Convert to VirtualService")
                    }
                    _ => None,
                };
                if let Some(label) = target
                    && ui
                        .small_button(label)
                        .on_hover_text("Write this route in the other API; what it cannot express is listed above the form")
                        .clicked()
                {
                    convert = true;
                }
            });
            match &mut resource.object {
                IstioObject::VirtualService(vs) => {
                    changed |= virtual_service_ui(ui, vs, &catalog, &diags);
                }
                IstioObject::DestinationRule(dr) => {
                    changed |= destination_rule_ui(ui, dr, &diags);
                }
                IstioObject::ServiceEntry(se) => changed |= service_entry_ui(ui, se, &diags),
                IstioObject::GatewayApi(g) => match &mut **g {
                    crate::config::gateway::GatewayApiObject::HttpRoute(r) => {
                        changed |= super::httproute::http_route_ui(ui, r, &diags);
                    }
                    _ => {
                        ui.label(
                            "The lab reads this Gateway API resource as it is; edit it in the YAML tab.",
                        );
                    }
                },
                IstioObject::Other(_) => {
                    ui.label(
                        "The lab does not use this kind; it is kept in the file as it is. \
                         Edit it in the YAML tab.",
                    );
                }
            }
            ui.separator();
            diags.rest_ui(ui);
            changed
        });
        if convert {
            self.convert(index);
        } else if remove {
            self.doc.remove_resource(index);
        } else if changed == Some(true) {
            self.doc.model_edited();
        }
        if let Some((host, subset)) = catalog.define_subset.take() {
            self.doc.define_subset(&host, &subset);
        }
    }
}

impl RoutesView<'_> {
    /// Replaces route resource `index` with its form in the other API, and keeps what could
    /// not be expressed for the panel to show.
    fn convert(&mut self, index: usize) {
        let (objects, notes) = super::document::convert_resource(self.doc.config(), index);
        self.panel.conversion_notes = notes;
        if !objects.is_empty() {
            self.doc.replace_resource(index, objects);
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn metadata_ui(
    ui: &mut egui::Ui,
    meta: &mut crate::config::model::ObjectMeta,
    diags: &Diags,
) -> bool {
    let mut changed = false;
    ui.horizontal(|ui| {
        changed |= form::optional_text_field(ui, "name", &mut meta.name, 160.0);
        changed |= form::optional_text_field(ui, "namespace", &mut meta.namespace, 120.0);
    });
    diags.under_ui(ui, "metadata");
    changed
}

fn hosts_ui(
    ui: &mut egui::Ui,
    label: &str,
    hosts: &mut Vec<String>,
    path: &str,
    diags: &Diags,
) -> bool {
    let mut changed = false;
    let mut remove = None;
    ui.label(label);
    for (i, host) in hosts.iter_mut().enumerate() {
        ui.horizontal(|ui| {
            ui.add_space(12.0);
            changed |= form::text_field(ui, &format!("host {}", i + 1), host, 260.0);
            if ui
                .small_button("Remove")
                .on_hover_text("Remove this host")
                .clicked()
            {
                remove = Some(i);
            }
        });
        diags.under_ui(ui, &form::index_path("", path, i));
    }
    if ui.small_button("Add host").clicked() {
        hosts.push(String::new());
        changed = true;
    }
    if let Some(i) = remove {
        hosts.remove(i);
        changed = true;
    }
    diags.exact_ui(ui, path);
    changed
}

fn virtual_service_ui(
    ui: &mut egui::Ui,
    vs: &mut VirtualService,
    catalog: &Catalog,
    diags: &Diags,
) -> bool {
    let mut changed = metadata_ui(ui, &mut vs.metadata, diags);
    changed |= hosts_ui(ui, "Hosts", &mut vs.spec.hosts, "spec.hosts", diags);
    ui.add_space(6.0);
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
                changed |= route_ui(ui, route, &path, catalog, diags);
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
    catalog: &Catalog,
    diags: &Diags,
) -> bool {
    let mut changed = false;
    diags.exact_ui(ui, path);

    // Match blocks.
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

    // Weighted destinations.
    ui.add_space(4.0);
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

    ui.add_space(4.0);
    ui.horizontal(|ui| {
        changed |= form::optional_text_field(ui, "timeout", &mut route.timeout, 70.0);
        ui.weak(
            "e.g. 2s or 500ms: the primary's whole answer must arrive by then (else 504, or a \
             cut body). Empty: no timeout, Istio's default.",
        );
    });
    diags.exact_ui(ui, &key_path(path, "timeout"));

    ui.add_space(4.0);
    changed |= super::policy_form::retries_ui(ui, &mut route.retries, path, diags);

    ui.add_space(4.0);
    changed |= mirror_ui(ui, route, path, catalog, diags);
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

/// How a route mirrors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MirrorMode {
    None,
    Single,
    Several,
}

fn mirror_ui(
    ui: &mut egui::Ui,
    route: &mut HttpRoute,
    path: &str,
    catalog: &Catalog,
    diags: &Diags,
) -> bool {
    let mut changed = false;
    let mode = if route.mirror.is_some() {
        MirrorMode::Single
    } else if !route.mirrors.is_empty() {
        MirrorMode::Several
    } else {
        MirrorMode::None
    };
    let mut new_mode = mode;
    ui.horizontal(|ui| {
        ui.strong("Mirroring");
        ui.radio_value(&mut new_mode, MirrorMode::None, "off");
        ui.radio_value(&mut new_mode, MirrorMode::Single, "mirror");
        ui.radio_value(&mut new_mode, MirrorMode::Several, "mirrors (several)");
    });
    if new_mode != mode {
        changed = true;
        let first = route
            .mirror
            .take()
            .map(|d| (d, route.mirror_percentage.take()))
            .or_else(|| {
                (!route.mirrors.is_empty()).then(|| {
                    let m = route.mirrors.remove(0);
                    (m.destination, m.percentage)
                })
            });
        route.mirrors.clear();
        let (dest, pct) = first.unwrap_or_else(|| (default_mirror(route, catalog), None));
        match new_mode {
            MirrorMode::None => route.mirror_percentage = None,
            MirrorMode::Single => {
                route.mirror = Some(dest);
                route.mirror_percentage = pct;
            }
            MirrorMode::Several => route.mirrors.push(HttpMirrorPolicy {
                destination: dest,
                percentage: pct,
            }),
        }
    }
    if let Some(mirror) = &mut route.mirror {
        changed |= form::destination_ui(
            ui,
            "mirror",
            mirror,
            &key_path(path, "mirror"),
            catalog,
            diags,
        );
        changed |= percentage_option_ui(ui, "Mirror percentage", &mut route.mirror_percentage);
        diags.under_ui(ui, &key_path(path, "mirrorPercentage"));
    }
    if !route.mirrors.is_empty() {
        let mut remove = None;
        for (k, m) in route.mirrors.iter_mut().enumerate() {
            let mpath = index_path(path, "mirrors", k);
            changed |= form::destination_ui(
                ui,
                &format!("mirror {k}"),
                &mut m.destination,
                &key_path(&mpath, "destination"),
                catalog,
                diags,
            );
            ui.horizontal(|ui| {
                changed |=
                    percentage_option_ui(ui, &format!("Mirror {k} percentage"), &mut m.percentage);
                if ui
                    .small_button("Remove")
                    .on_hover_text("Remove this mirror")
                    .clicked()
                {
                    remove = Some(k);
                }
            });
            diags.under_ui(ui, &mpath);
        }
        if let Some(k) = remove {
            route.mirrors.remove(k);
            changed = true;
        }
        if ui.small_button("Add mirror").clicked() {
            route.mirrors.push(HttpMirrorPolicy {
                destination: default_mirror(route, catalog),
                percentage: None,
            });
            changed = true;
        }
    }
    if let Some(old) = route.mirror_percent.or(route.mirror_percent_legacy) {
        ui.horizontal(|ui| {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("mirrorPercent: {old} is deprecated"),
            );
            if ui.small_button("Convert to mirrorPercentage").clicked() {
                route.mirror_percentage = Some(Percent {
                    value: f64::from(old),
                });
                route.mirror_percent = None;
                route.mirror_percent_legacy = None;
                changed = true;
            }
        });
    }
    diags.under_ui(ui, &key_path(path, "mirrorPercent"));
    diags.under_ui(ui, &key_path(path, "mirror"));
    diags.exact_ui(ui, &key_path(path, "mirrors"));
    changed
}

/// A percentage that may be absent (absent means 100%).
fn percentage_option_ui(ui: &mut egui::Ui, label: &str, pct: &mut Option<Percent>) -> bool {
    let mut value = pct.as_ref().map_or(100.0, |p| p.value);
    let mut changed = false;
    ui.horizontal(|ui| {
        if form::percentage_ui(ui, label, &mut value) {
            *pct = Some(Percent { value });
            changed = true;
        }
        if pct.is_none() {
            ui.weak("(not set: 100%)");
        } else if ui
            .small_button("Unset")
            .on_hover_text("Remove the percentage: Istio then mirrors 100%")
            .clicked()
        {
            *pct = None;
            changed = true;
        }
    });
    changed
}

/// A sensible first mirror target: another subset of the primary's host, else the host.
fn default_mirror(route: &HttpRoute, catalog: &Catalog) -> Destination {
    let primary = route
        .route
        .first()
        .map(|d| d.destination.clone())
        .unwrap_or_default();
    let other_subset = catalog
        .subsets_of(&primary.host)
        .into_iter()
        .find(|s| Some(s) != primary.subset.as_ref());
    Destination {
        host: primary.host,
        subset: other_subset,
        port: primary.port,
    }
}

fn destination_rule_ui(ui: &mut egui::Ui, dr: &mut DestinationRule, diags: &Diags) -> bool {
    let mut changed = metadata_ui(ui, &mut dr.metadata, diags);
    ui.horizontal(|ui| {
        changed |= form::text_field(ui, "rule host", &mut dr.spec.host, 260.0);
    });
    diags.under_ui(ui, "spec.host");
    changed |= super::policy_form::traffic_policy_ui(
        ui,
        "Traffic policy of every subset",
        &mut dr.spec.traffic_policy,
        "spec",
        diags,
    );
    ui.heading("Subsets");
    let mut remove = None;
    for (i, subset) in dr.spec.subsets.iter_mut().enumerate() {
        let path = index_path("spec", "subsets", i);
        ui.group(|ui| {
            ui.horizontal(|ui| {
                changed |= form::text_field(ui, "subset name", &mut subset.name, 120.0);
                if ui
                    .small_button("Remove")
                    .on_hover_text("Remove this subset")
                    .clicked()
                {
                    remove = Some(i);
                }
            });
            ui.label("Endpoint labels the subset selects:");
            changed |= form::label_rows_ui(
                ui,
                "label",
                &mut subset.labels,
                &key_path(&path, "labels"),
                diags,
            );
            changed |= {
                let title = format!(
                    "Traffic policy of subset {} (each part set here replaces the rule's)",
                    subset.name
                );
                super::policy_form::traffic_policy_ui(
                    ui,
                    &title,
                    &mut subset.traffic_policy,
                    &path,
                    diags,
                )
            };
            diags.under_ui(ui, &path);
        });
    }
    if let Some(i) = remove {
        dr.spec.subsets.remove(i);
        changed = true;
    }
    if ui.button("Add subset").clicked() {
        let n = dr.spec.subsets.len() + 1;
        let mut labels = crate::config::model::OrderedMap::new();
        labels.insert("version".to_owned(), format!("v{n}"));
        dr.spec.subsets.push(Subset {
            name: format!("v{n}"),
            labels,
            ..Subset::default()
        });
        changed = true;
    }
    changed
}

fn service_entry_ui(ui: &mut egui::Ui, se: &mut ServiceEntry, diags: &Diags) -> bool {
    let mut changed = metadata_ui(ui, &mut se.metadata, diags);
    changed |= hosts_ui(ui, "Hosts", &mut se.spec.hosts, "spec.hosts", diags);
    ui.heading("Ports");
    let mut remove = None;
    for (i, port) in se.spec.ports.iter_mut().enumerate() {
        let path = index_path("spec", "ports", i);
        ui.horizontal(|ui| {
            let l = ui.label("port number");
            changed |= ui
                .add(egui::DragValue::new(&mut port.number).range(1..=65535))
                .labelled_by(l.id)
                .changed();
            changed |= form::text_field(ui, "port name", &mut port.name, 80.0);
            changed |= form::optional_text_field(ui, "protocol", &mut port.protocol, 70.0);
            if ui
                .small_button("Remove")
                .on_hover_text("Remove this port")
                .clicked()
            {
                remove = Some(i);
            }
        });
        diags.under_ui(ui, &path);
    }
    if let Some(i) = remove {
        se.spec.ports.remove(i);
        changed = true;
    }
    if ui.small_button("Add port").clicked() {
        se.spec.ports.push(ServicePort {
            number: 9080,
            protocol: Some("HTTP".to_owned()),
            name: "http".to_owned(),
            target_port: None,
        });
        changed = true;
    }
    ui.heading("Endpoints");
    let port_names: Vec<String> = se.spec.ports.iter().map(|p| p.name.clone()).collect();
    let mut remove = None;
    for (i, ep) in se.spec.endpoints.iter_mut().enumerate() {
        let path = index_path("spec", "endpoints", i);
        ui.group(|ui| {
            ui.horizontal(|ui| {
                changed |= form::optional_text_field(ui, "address", &mut ep.address, 140.0);
                for name in &port_names {
                    let mut port = ep.ports.get(name).copied();
                    if form::optional_u32_field(
                        ui,
                        &format!("{name} port"),
                        &mut port,
                        9080,
                        1..=65535,
                    ) {
                        match port {
                            Some(p) => {
                                ep.ports.insert(name.clone(), p);
                            }
                            None => {
                                ep.ports.shift_remove(name);
                            }
                        }
                        changed = true;
                    }
                }
                if ui
                    .small_button("Remove")
                    .on_hover_text("Remove this endpoint")
                    .clicked()
                {
                    remove = Some(i);
                }
            });
            changed |= form::label_rows_ui(
                ui,
                "label",
                &mut ep.labels,
                &key_path(&path, "labels"),
                diags,
            );
            diags.under_ui(ui, &path);
        });
    }
    if let Some(i) = remove {
        se.spec.endpoints.remove(i);
        changed = true;
    }
    if ui.small_button("Add endpoint").clicked() {
        let mut ports = crate::config::model::OrderedMap::new();
        if let Some(name) = port_names.first() {
            ports.insert(name.clone(), 9081);
        }
        se.spec.endpoints.push(WorkloadEntry {
            address: Some("127.0.0.1".to_owned()),
            ports,
            ..WorkloadEntry::default()
        });
        changed = true;
    }
    changed
}

fn new_virtual_service() -> VirtualService {
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

fn new_destination_rule() -> DestinationRule {
    DestinationRule {
        api_version: "networking.istio.io/v1".to_owned(),
        kind: "DestinationRule".to_owned(),
        metadata: crate::config::model::ObjectMeta {
            name: Some("new-dr".to_owned()),
            ..Default::default()
        },
        spec: crate::config::model::DestinationRuleSpec {
            host: "reviews".to_owned(),
            ..Default::default()
        },
        status: None,
    }
}

fn new_service_entry() -> ServiceEntry {
    ServiceEntry {
        api_version: "networking.istio.io/v1".to_owned(),
        kind: "ServiceEntry".to_owned(),
        metadata: crate::config::model::ObjectMeta {
            name: Some("new-se".to_owned()),
            ..Default::default()
        },
        spec: crate::config::model::ServiceEntrySpec {
            hosts: vec!["reviews".to_owned()],
            ports: vec![ServicePort {
                number: 9080,
                protocol: Some("HTTP".to_owned()),
                name: "http".to_owned(),
                target_port: None,
            }],
            location: Some("MESH_INTERNAL".to_owned()),
            resolution: Some("STATIC".to_owned()),
            ..Default::default()
        },
        status: None,
    }
}
