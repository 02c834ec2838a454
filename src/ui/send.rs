//! Small windows: the "Send request" form and the settings.

use super::State;
use crate::lab::control::{OneRequest, SendOutcome};

/// The Send request form; returns true when the user pressed Send.
pub fn send_form_ui(
    ui: &mut egui::Ui,
    request: &mut OneRequest,
    hosts: &[String],
    last: Option<&SendOutcome>,
) -> bool {
    let mut send = false;
    egui::Grid::new("send-form").num_columns(2).show(ui, |ui| {
        let l = ui.label("Method");
        egui::ComboBox::from_id_salt("send-method")
            .selected_text(request.method.clone())
            .show_ui(ui, |ui| {
                for m in ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] {
                    ui.selectable_value(&mut request.method, m.to_owned(), m);
                }
            })
            .response
            .labelled_by(l.id);
        ui.end_row();
        let l = ui.label("Host");
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut request.host)
                    .hint_text(hosts.first().map_or("reviews", String::as_str))
                    .desired_width(200.0),
            )
            .labelled_by(l.id);
            for h in hosts.iter().take(4) {
                if ui.small_button(h).on_hover_text("Use this host").clicked() {
                    request.host = h.clone();
                }
            }
        });
        ui.end_row();
        let l = ui.label("Path");
        ui.add(egui::TextEdit::singleline(&mut request.path).desired_width(320.0))
            .labelled_by(l.id);
        ui.end_row();
        let l = ui.label("Headers");
        ui.add(
            egui::TextEdit::multiline(&mut request.headers)
                .hint_text("user-agent: testing\nx-debug: 1")
                .desired_rows(3)
                .desired_width(320.0),
        )
        .labelled_by(l.id);
        ui.end_row();
        let l = ui.label("Body");
        ui.add(
            egui::TextEdit::multiline(&mut request.body)
                .desired_rows(4)
                .desired_width(320.0)
                .code_editor(),
        )
        .labelled_by(l.id);
        ui.end_row();
    });
    ui.horizontal(|ui| {
        if ui
            .button("Send")
            .on_hover_text("Send through the proxy; the exchange is selected in Traffic")
            .clicked()
        {
            send = true;
        }
        match last {
            Some(SendOutcome::Answered { status, .. }) => {
                ui.label(format!("Last answer: {status}"));
            }
            Some(SendOutcome::Failed(why)) => {
                ui.colored_label(ui.visuals().error_fg_color, why);
            }
            None => {}
        }
    });
    send
}

/// What the settings window asks for now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct SettingsRequest {
    /// Use the ignore rules in the running analysis.
    pub apply_ignore_rules: bool,
    /// Recompile the routes for the client workload and swap them into the proxy.
    pub apply_workload: bool,
    /// Pick the gRPC descriptors file with a file dialog.
    pub browse_grpc_descriptors: bool,
    /// Use the gRPC descriptors setting in the running lab.
    pub apply_grpc_descriptors: bool,
}

/// Whether the gRPC descriptors file typed in the settings loads: checked when the path
/// changes, not every frame.
#[derive(Debug, Default)]
pub struct DescriptorsCheck {
    /// The path the result is of.
    checked: Option<String>,
    /// The services it defines, or why it does not load; `None` for an empty path.
    result: Option<Result<String, String>>,
}

impl DescriptorsCheck {
    /// The check of `path`, loading the file when the path is not the one last checked.
    pub fn of(&mut self, path: &str) -> Option<&Result<String, String>> {
        let path = path.trim();
        if self.checked.as_deref() != Some(path) {
            self.result = (!path.is_empty()).then(|| {
                crate::analysis::descriptors::GrpcDescriptors::setting(std::path::Path::new(path))
                    .map(|d| match d.services().as_slice() {
                        [] => "loads, but defines no service".to_owned(),
                        services => format!("defines {}", services.join(", ")),
                    })
            });
            self.checked = Some(path.to_owned());
        }
        self.result.as_ref()
    }
}

/// The settings window: proxy address, default host, the client workload, the lab-wide
/// mirror settings (Host suffix, header edits), diff ignore rules, gRPC descriptors.
pub fn settings_ui(
    ui: &mut egui::Ui,
    state: &mut State,
    descriptors: &mut DescriptorsCheck,
) -> SettingsRequest {
    let mut request = SettingsRequest::default();
    egui::Grid::new("settings").num_columns(2).show(ui, |ui| {
        let l = ui.label("Listen address");
        ui.add(egui::TextEdit::singleline(&mut state.listen_addr).desired_width(180.0))
            .labelled_by(l.id)
            .on_hover_text("Used at the next Start; 127.0.0.1 keeps the lab private");
        ui.end_row();
        let l = ui.label("Default host");
        ui.add(
            egui::TextEdit::singleline(&mut state.default_host)
                .hint_text("the config's first host")
                .desired_width(180.0),
        )
        .labelled_by(l.id)
        .on_hover_text("Where requests addressed to the proxy itself go");
        ui.end_row();
        ui.label("");
        ui.checkbox(
            &mut state.start_on_open,
            "Start the proxy when a config opens",
        )
        .on_hover_text(
            "Opening a valid config starts the proxy with it (or hot-swaps it into the running \
             one); off: wait for Start",
        );
        ui.end_row();
        let l = ui.label("Client labels");
        ui.add(
            egui::TextEdit::singleline(&mut state.source_labels)
                .hint_text("app=productpage,version=v1")
                .desired_width(260.0),
        )
        .labelled_by(l.id)
        .on_hover_text(
            "The workload whose sidecar the lab plays: match blocks with sourceLabels apply \
             when theirs are among these; used at the next Apply",
        );
        ui.end_row();
        let l = ui.label("Client namespace");
        ui.add(
            egui::TextEdit::singleline(&mut state.source_namespace)
                .hint_text("default")
                .desired_width(180.0),
        )
        .labelled_by(l.id)
        .on_hover_text("Tested by sourceNamespace; used at the next Apply");
        ui.end_row();
        let l = ui.label("Act as gateway");
        ui.add(
            egui::TextEdit::singleline(&mut state.gateway)
                .hint_text("empty: a sidecar (mesh)")
                .desired_width(180.0),
        )
        .labelled_by(l.id)
        .on_hover_text(
            "namespace/name of a Gateway: VirtualServices bound to it apply, those bound only \
             to mesh do not; used at the next Apply",
        );
        ui.end_row();
        ui.label("");
        ui.checkbox(
            &mut state.shadow_host_suffix,
            "Append -shadow to the Host of mirrored copies",
        )
        .on_hover_text(
            "As Envoy did by default and Istio before 1.28 (mirrorlab run --shadow-host-suffix); \
             used at the next Apply",
        );
        ui.end_row();
        let l = ui.label("Remove from mirrored copies");
        ui.add(
            egui::TextEdit::singleline(&mut state.mirror_remove_headers)
                .hint_text("authorization,cookie")
                .desired_width(260.0),
        )
        .labelled_by(l.id)
        .on_hover_text(
            "Header names removed from every shadow's copy, before each route's \
             mirrorlab.dev/mirror-remove-headers (mirrorlab run --mirror-remove-headers)",
        );
        ui.end_row();
        let l = ui.label("Set on mirrored copies");
        ui.add(
            egui::TextEdit::multiline(&mut state.mirror_set_headers)
                .hint_text("authorization: Bearer test-token")
                .desired_rows(2)
                .desired_width(260.0),
        )
        .labelled_by(l.id)
        .on_hover_text(
            "name: value per line, set on every shadow's copy after the removals \
             (mirrorlab run --mirror-set-header)",
        );
        ui.end_row();
        let l = ui.label("Ignore in diffs");
        ui.add(
            egui::TextEdit::multiline(&mut state.ignore_rules)
                .hint_text("/timestamp\nheader:x-trace-id\n/items/*/etag")
                .desired_rows(4)
                .desired_width(260.0),
        )
        .labelled_by(l.id)
        .on_hover_text(
            "For every route, on top of each VirtualService's annotation; used at the next Start",
        );
        ui.end_row();
        grpc_descriptors_row(ui, state, descriptors, &mut request);
    });
    let mirror = crate::routing::MirrorHeaders::lab_wide(
        &state.mirror_remove_headers,
        &state.mirror_set_headers,
    );
    let workload = crate::routing::Workload::parse(
        &state.source_labels,
        &state.source_namespace,
        &state.gateway,
    )
    .map_err(|e| e.to_string());
    match workload.and(mirror) {
        Err(e) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        Ok(_) => {
            request.apply_workload = ui
                .button("Apply client workload now")
                .on_hover_text(
                    "Rebuild the routes this workload's sidecar gets and swap them into the \
                     running proxy (a change to the mirror settings restarts it)",
                )
                .clicked();
        }
    }
    match crate::analysis::IgnoreRules::parse(&state.ignore_rules) {
        Err(e) => {
            ui.colored_label(ui.visuals().error_fg_color, e.to_string());
        }
        Ok(_) => {
            request.apply_ignore_rules = ui
                .button("Apply ignore rules now")
                .on_hover_text(
                    "Use these rules in the running analysis (diffs already counted stay)",
                )
                .clicked();
        }
    }
    request
}

/// The gRPC descriptors field: the file's path, Browse, and at the field whether it loads.
fn grpc_descriptors_row(
    ui: &mut egui::Ui,
    state: &mut State,
    descriptors: &mut DescriptorsCheck,
    request: &mut SettingsRequest,
) {
    let l = ui.label("gRPC descriptors");
    ui.vertical(|ui| {
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut state.grpc_descriptors)
                    .hint_text("reviews.pb (empty: annotations and server reflection)")
                    .desired_width(260.0),
            )
            .labelled_by(l.id)
            .on_hover_text(
                "A FileDescriptorSet (protoc --descriptor_set_out, buf build -o) that reads the \
                 gRPC messages of every route whose VirtualService has no \
                 mirrorlab.dev/grpc-descriptors annotation (the annotation wins); without one, \
                 the lab asks the primary by server reflection",
            );
            request.browse_grpc_descriptors = ui.button("Browse...").clicked();
        });
        match descriptors.of(&state.grpc_descriptors) {
            Some(Ok(services)) => {
                ui.weak(services.clone());
                request.apply_grpc_descriptors = ui
                    .button("Apply gRPC descriptors now")
                    .on_hover_text("Use this file in the running analysis")
                    .clicked();
            }
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e.clone());
            }
            None => {}
        }
    });
    ui.end_row();
}
