//! The Compare sessions… window: two saved sessions' reports side by side, per route and
//! field, as `mirrorlab compare` prints them ("is v3 closer to v1 than v2 was?").

use crate::replay::compare::CompareRow;

/// The window's state between frames.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompareForm {
    /// Session A, as typed or picked.
    pub a: String,
    /// Session B.
    pub b: String,
    /// The last comparison, or why it failed.
    pub result: Option<Result<Vec<CompareRow>, String>>,
    /// A comparison is on its way.
    pub waiting: bool,
}

/// What the window asks for this frame.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareAction {
    /// Pick session A.
    BrowseA,
    /// Pick session B.
    BrowseB,
    /// Compare them.
    Compare,
}

impl CompareForm {
    /// The window's contents.
    pub fn ui(&mut self, ui: &mut egui::Ui) -> Option<CompareAction> {
        let mut action = None;
        egui::Grid::new("compare-form")
            .num_columns(2)
            .show(ui, |ui| {
                for (name, path, browse) in [
                    ("Session A", &mut self.a, CompareAction::BrowseA),
                    ("Session B", &mut self.b, CompareAction::BrowseB),
                ] {
                    let label = ui.label(name);
                    ui.horizontal(|ui| {
                        ui.add(egui::TextEdit::singleline(path).desired_width(300.0))
                            .labelled_by(label.id);
                        if ui
                            .add(egui::Button::new("Browse…"))
                            .on_hover_text(format!("Pick {name}"))
                            .clicked()
                        {
                            action = Some(browse);
                        }
                    });
                    ui.end_row();
                }
            });
        let ready = !self.a.trim().is_empty() && !self.b.trim().is_empty() && !self.waiting;
        if ui
            .add_enabled(ready, egui::Button::new("Compare"))
            .clicked()
        {
            action = Some(CompareAction::Compare);
        }
        match &self.result {
            None => {}
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            Some(Ok(rows)) => rows_ui(ui, rows),
        }
        action
    }
}

fn rows_ui(ui: &mut egui::Ui, rows: &[CompareRow]) {
    egui::ScrollArea::both().max_height(480.0).show(ui, |ui| {
        egui::Grid::new("compare-rows")
            .striped(true)
            .num_columns(4)
            .show(ui, |ui| {
                ui.strong("");
                ui.strong("A");
                ui.strong("B");
                ui.strong("B - A");
                ui.end_row();
                let mut section = "";
                for row in rows {
                    if row.section != section {
                        section = &row.section;
                        ui.strong(section);
                        ui.end_row();
                    }
                    ui.label(format!("  {}", row.what.trim_start()));
                    ui.label(&row.a);
                    ui.label(&row.b);
                    ui.label(&row.change);
                    ui.end_row();
                }
            });
    });
}
