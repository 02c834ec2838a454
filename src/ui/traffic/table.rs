//! The filter bar and the table of exchanges; the arrow keys move the selection, Enter
//! selects the newest shown row when none is, Escape clears the selection.

use egui_extras::{Column, TableBuilder};

use super::{TrafficFilter, TrafficView, outcome_text, plain_arrows, route_label, shadow_text};

impl TrafficView<'_> {
    pub(super) fn filter_bar(&mut self, ui: &mut egui::Ui) {
        let before = self.panel.filter.clone();
        ui.horizontal(|ui| {
            let f = &mut self.panel.filter;
            let l = ui.label("Method");
            ui.add(
                egui::TextEdit::singleline(&mut f.method)
                    .desired_width(60.0)
                    .hint_text("any"),
            )
            .labelled_by(l.id);
            let l = ui.label("Path contains");
            let path = ui
                .add(
                    egui::TextEdit::singleline(&mut f.path)
                        .desired_width(140.0)
                        .hint_text("/reviews"),
                )
                .labelled_by(l.id);
            if std::mem::take(&mut self.panel.focus_filter) {
                path.request_focus();
            }
            let l = ui.label("Status");
            ui.add(
                egui::TextEdit::singleline(&mut f.status)
                    .desired_width(50.0)
                    .hint_text("5xx"),
            )
            .labelled_by(l.id);
            let l = ui.label("Route");
            ui.add(
                egui::TextEdit::singleline(&mut f.route)
                    .desired_width(120.0)
                    .hint_text("any"),
            )
            .labelled_by(l.id);
            choice_ui(
                ui,
                "Action",
                &mut f.action,
                crate::routing::ActionKind::ALL
                    .iter()
                    .map(|a| a.as_str())
                    .chain([super::NO_ROUTE]),
            )
            .on_hover_text("What the route did: forwarded, or answered by the lab itself");
            choice_ui(
                ui,
                "Flag",
                &mut f.flag,
                crate::capture::ResponseFlags::all_names(),
            )
            .on_hover_text(
                "An Envoy response flag of the client's answer: UF connect failure, UC closed \
                 before the head, UT timeout, UH no healthy upstream, UPE protocol error, UO \
                 overflow, NR no route, FI fault abort, DI fault delay, URX retries spent",
            );
            ui.checkbox(&mut f.differs_only, "Differs only")
                .on_hover_text(
                    "Only exchanges where a shadow differs from the primary in a real difference \
                 (noise alone does not count; see the Diffs tab for why a field is noise)",
                );
            if !f.is_empty() && ui.small_button("Clear filter").clicked() {
                *f = TrafficFilter::default();
            }
            ui.separator();
            ui.checkbox(&mut self.panel.follow, "Follow newest")
                .on_hover_text("Keep the newest exchange in view (off while you look at a row)");
            let pause = if self.panel.paused { "Resume" } else { "Pause" };
            if ui.button(pause).clicked() {
                self.panel.paused = !self.panel.paused;
            }
            let (held, held_dropped) = self.panel.held();
            let paused = match (self.panel.paused, held_dropped) {
                (false, _) => String::new(),
                (true, 0) => format!(" (paused, {held} waiting)"),
                (true, n) => format!(" (paused, {held} waiting, {n} oldest not kept)"),
            };
            ui.label(format!(
                "{} of {} exchanges{paused}",
                self.panel.shown(),
                self.panel.len(),
            ));
        });
        if self.panel.filter != before {
            self.panel.filter_dirty = true;
        }
    }

    pub(super) fn table_ui(&mut self, ui: &mut egui::Ui) {
        self.keyboard(ui);
        let row_height = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
        let scroll_to = self.panel.scroll_to_selected.take().and_then(|align| {
            let sel = self.panel.selected;
            self.panel
                .filtered
                .iter()
                .position(|&s| self.panel.row(s).is_some_and(|e| Some(e.id) == sel))
                .map(|row| (row, align))
        });
        let mut clicked = None;
        // Cells are plain text: a click anywhere on a row selects it instead of starting a
        // text selection.
        ui.style_mut().interaction.selectable_labels = false;
        let mut table = TableBuilder::new(ui)
            .striped(true)
            .sense(egui::Sense::click())
            .column(Column::auto().at_least(90.0))
            .column(Column::auto().at_least(50.0))
            .column(Column::initial(220.0).at_least(80.0).clip(true))
            .column(Column::initial(170.0).at_least(60.0).clip(true))
            .column(Column::initial(120.0).at_least(60.0))
            .column(Column::initial(170.0).at_least(60.0).clip(true))
            .column(Column::remainder().at_least(80.0).clip(true));
        if let Some((row, align)) = scroll_to {
            table = table.scroll_to_row(row, align);
        } else if self.panel.follow && !self.panel.filtered.is_empty() {
            // Jump, not animate: rows arrive every frame, and an animation restarted each frame
            // toward a moving target lags behind it (or, at a few frames a second, never
            // leaves the top).
            table = table
                .animate_scrolling(false)
                .scroll_to_row(self.panel.filtered.len() - 1, Some(egui::Align::BOTTOM));
        }
        table
            .header(20.0, |mut header| {
                for title in [
                    "Time", "Method", "Path", "Route", "Primary", "Shadows", "Diff",
                ] {
                    header.col(|ui| {
                        ui.strong(title);
                    });
                }
            })
            .body(|body| {
                let n = self.panel.filtered.len();
                body.rows(row_height, n, |mut row| {
                    let Some(e) = self
                        .panel
                        .filtered
                        .get(row.index())
                        .and_then(|&s| self.panel.row(s))
                    else {
                        return;
                    };
                    row.set_selected(self.panel.selected == Some(e.id));
                    let time: chrono::DateTime<chrono::Local> = e.started_at.into();
                    row.col(|ui| {
                        let at = time.format("%H:%M:%S%.3f").to_string();
                        match e.request.headers.get(crate::capture::REPLAY_HEADER) {
                            Some(from) => {
                                ui.label(format!("{at} replay")).on_hover_text(format!(
                                    "Exchange #{}, replayed: request {} of the traffic file",
                                    e.id,
                                    String::from_utf8_lossy(from.as_bytes())
                                ));
                            }
                            None => {
                                ui.label(at).on_hover_text(format!("Exchange #{}", e.id));
                            }
                        }
                    });
                    row.col(|ui| {
                        ui.label(e.request.method.as_str());
                    });
                    row.col(|ui| {
                        ui.label(&e.request.uri);
                    });
                    row.col(|ui| {
                        let short = e.trace.as_ref().map_or_else(
                            || "(no route)".to_owned(),
                            |t| {
                                t.route_name.as_deref().map_or_else(
                                    || format!("http[{}]", t.route_index),
                                    str::to_owned,
                                )
                            },
                        );
                        ui.label(short).on_hover_text(route_label(e));
                    });
                    row.col(|ui| {
                        let text = e.primary.as_ref().map_or_else(
                            || "404 (no route)".to_owned(),
                            |p| match p.attempt_count() {
                                1 => outcome_text(&p.outcome),
                                n => format!("{} ({n} attempts)", outcome_text(&p.outcome)),
                            },
                        );
                        ui.label(text);
                    });
                    row.col(|ui| {
                        let text: Vec<String> = e.shadows.iter().map(shadow_text).collect();
                        ui.label(if text.is_empty() {
                            "-".to_owned()
                        } else {
                            text.join(" | ")
                        });
                    });
                    row.col(|ui| {
                        let text = self
                            .snapshot
                            .and_then(|s| s.diff_headline(e.id))
                            .map_or_else(
                                || {
                                    if e.shadows.is_empty() {
                                        "no mirror".to_owned()
                                    } else {
                                        "...".to_owned()
                                    }
                                },
                                |d| plain_arrows(&d),
                            );
                        ui.label(text);
                    });
                    if row.response().clicked() {
                        clicked = Some(e.id);
                    }
                });
            });
        if let Some(id) = clicked {
            self.panel.selected = Some(id);
            self.panel.shadow_index = 0;
            self.panel.follow = false;
            // The detail opens below and takes height from the table: keep the row in view.
            self.panel.scroll_to_selected = Some(None);
        }
    }

    /// Up and Down move the selection through the rows the filter shows, Enter selects the
    /// newest shown row, Escape clears the selection; not while a text field has the keys.
    fn keyboard(&mut self, ui: &egui::Ui) {
        if ui.ctx().egui_wants_keyboard_input() || self.panel.filtered.is_empty() {
            return;
        }
        let (up, down, enter, escape) = ui.input_mut(|i| {
            (
                i.consume_key(egui::Modifiers::NONE, egui::Key::ArrowUp),
                i.consume_key(egui::Modifiers::NONE, egui::Key::ArrowDown),
                i.consume_key(egui::Modifiers::NONE, egui::Key::Enter),
                i.consume_key(egui::Modifiers::NONE, egui::Key::Escape),
            )
        });
        if escape {
            self.panel.selected = None;
            return;
        }
        let last = self.panel.filtered.len() - 1;
        let at = self.panel.selected.and_then(|id| {
            self.panel
                .filtered
                .iter()
                .position(|&s| self.panel.row(s).is_some_and(|e| e.id == id))
        });
        let to = match (at, up, down, enter) {
            (Some(i), true, _, _) => Some(i.saturating_sub(1)),
            (Some(i), _, true, _) => Some((i + 1).min(last)),
            (None, true, _, _) | (None, _, true, _) | (None, _, _, true) => Some(last),
            _ => None,
        };
        let Some(to) = to.filter(|&to| Some(to) != at) else {
            return;
        };
        if let Some(e) = self.panel.filtered.get(to).and_then(|&s| self.panel.row(s)) {
            self.panel.selected = Some(e.id);
            self.panel.shadow_index = 0;
            self.panel.follow = false;
            self.panel.scroll_to_selected = Some(None);
        }
    }
}

/// A labelled choice among `options`, empty meaning any.
fn choice_ui(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut String,
    options: impl Iterator<Item = &'static str>,
) -> egui::Response {
    let l = ui.label(label);
    let shown = if value.is_empty() {
        "any"
    } else {
        value.as_str()
    }
    .to_owned();
    egui::ComboBox::from_id_salt(("traffic-choice", label))
        .selected_text(shown)
        .show_ui(ui, |ui| {
            ui.selectable_value(value, String::new(), "any");
            for o in options {
                ui.selectable_value(value, o.to_owned(), o);
            }
        })
        .response
        .labelled_by(l.id)
}
