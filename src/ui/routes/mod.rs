//! The Routes panel: forms over the open config's VirtualServices, DestinationRules,
//! ServiceEntries and HTTPRoutes, with each diagnostic next to its field and Apply blocked
//! on errors; a route converts between VirtualService and HTTPRoute.

mod destination_rule;
mod mirror;
mod route_action;
mod route_filters;
mod service_entry;
mod virtual_service;
mod widgets;

use crate::config::IstioObject;
use crate::config::gateway::GatewayApiObject;

use super::form::{self, Catalog, Diags};
use super::{Command, Document};
use destination_rule::{destination_rule_ui, new_destination_rule};
use service_entry::{new_service_entry, service_entry_ui};
use virtual_service::{new_virtual_service, virtual_service_ui};
pub(super) use widgets::{apply_list_edit, list_buttons};

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
                    GatewayApiObject::HttpRoute(super::httproute::new_http_route()),
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
                if let Some(label) = conversion_target(&resource.object)
                    && ui
                        .small_button(label)
                        .on_hover_text(
                            "Write this route in the other API; what it cannot express is \
                             listed above the form",
                        )
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
                    GatewayApiObject::HttpRoute(r) => {
                        changed |= super::httproute::http_route_ui(ui, r, &diags);
                    }
                    _ => {
                        ui.label(
                            "The lab reads this Gateway API resource as it is; edit it in the \
                             YAML tab.",
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

/// The "Convert to ..." button's label for a route resource.
fn conversion_target(object: &IstioObject) -> Option<&'static str> {
    match object {
        IstioObject::VirtualService(_) => Some("Convert to HTTPRoute"),
        IstioObject::GatewayApi(g)
            if matches!(
                **g,
                GatewayApiObject::HttpRoute(_) | GatewayApiObject::GrpcRoute(_)
            ) =>
        {
            Some("Convert to VirtualService")
        }
        _ => None,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
