//! The YAML panel: exactly what Save will write.

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
        let _ = &self.panel;
        let label = ui.label("This is what Save writes.");
        let mut text = self.doc.yaml().to_owned();
        egui::ScrollArea::both().show(ui, |ui| {
            ui.add(
                egui::TextEdit::multiline(&mut text)
                    .code_editor()
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(label.id);
        });
        self.doc.set_yaml(text);
    }
}
