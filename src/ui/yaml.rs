//! The YAML panel: exactly what Save writes. Editing it here reloads the forms; editing the
//! forms rewrites it.

use super::Document;

/// State of the YAML panel that lives across frames.
#[derive(Debug, Default)]
pub struct YamlPanel {}

/// The YAML panel for one frame.
pub struct YamlView<'a> {
    /// Panel state.
    pub panel: &'a mut YamlPanel,
    /// The open config.
    pub doc: &'a mut Document,
}

impl YamlView<'_> {
    /// Shows the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let label = ui.label(
            "This is what Save writes. Edit it here or in the Routes forms; each updates the other.",
        );
        let diagnostics = self.doc.config().diagnostics().to_vec();
        if !diagnostics.is_empty() {
            egui::CollapsingHeader::new(format!("{} diagnostics", diagnostics.len()))
                .default_open(true)
                .show(ui, |ui| {
                    for d in &diagnostics {
                        super::form::diagnostic_ui(ui, d);
                    }
                });
        }
        let _ = &self.panel;
        let mut text = self.doc.yaml().to_owned();
        let mut changed = false;
        egui::ScrollArea::both()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                changed = ui
                    .add(
                        egui::TextEdit::multiline(&mut text)
                            .code_editor()
                            .desired_rows(30)
                            .desired_width(f32::INFINITY),
                    )
                    .labelled_by(label.id)
                    .changed();
            });
        if changed {
            self.doc.set_yaml(text);
        }
    }
}
