//! The Diffs panel: where shadow responses differ from the primary's, per route, endpoint
//! and field — sortable — with a button that ignores a field by writing the annotation.

use crate::analysis::{AnalysisSnapshot, DiffAggregateRow, Verdict};

use super::Command;

/// Column the table is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum SortBy {
    /// Route, endpoint, field.
    Endpoint,
    /// Field path.
    Field,
    /// Differing count.
    Count,
    /// Difference rate.
    #[default]
    Rate,
    /// Noise rate.
    Noise,
    /// Verdict (real first).
    Verdict,
}

/// State of the Diffs panel that lives across frames.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DiffsPanel {
    /// Sort column.
    pub sort: SortBy,
    /// Sort ascending instead of descending.
    pub ascending: bool,
    /// Hide rows judged as noise.
    pub real_only: bool,
    /// Hide baseline rows (the primary compared with itself).
    pub hide_baselines: bool,
}

/// The Diffs panel for one frame.
pub struct DiffsView<'a> {
    /// Panel state.
    pub panel: &'a mut DiffsPanel,
    /// The latest analysis.
    pub snapshot: &'a AnalysisSnapshot,
    /// Where the panel's commands go.
    pub commands: &'a mut Vec<Command>,
}

/// `default/reviews:http[0]` → `default/reviews`.
pub fn virtual_service_of(route_label: &str) -> &str {
    route_label.split(':').next().unwrap_or(route_label)
}

/// Sorts rows by a column.
pub fn sort_rows(rows: &mut [&DiffAggregateRow], sort: SortBy, ascending: bool) {
    use std::cmp::Ordering;
    let f = |x: f64, y: f64| x.partial_cmp(&y).unwrap_or(Ordering::Equal);
    rows.sort_by(|a, b| {
        let o = match sort {
            SortBy::Endpoint => {
                (&a.route, &a.endpoint, &a.target).cmp(&(&b.route, &b.endpoint, &b.target))
            }
            SortBy::Field => a.field.cmp(&b.field),
            SortBy::Count => a.differing.cmp(&b.differing),
            SortBy::Rate => f(a.rate, b.rate),
            SortBy::Noise => f(a.noise_rate.unwrap_or(-1.0), b.noise_rate.unwrap_or(-1.0)),
            SortBy::Verdict => a.verdict.cmp(&b.verdict).reverse(),
        };
        if ascending { o } else { o.reverse() }
    });
}

impl DiffsView<'_> {
    /// Shows the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.panel.real_only, "Real differences only");
            ui.checkbox(&mut self.panel.hide_baselines, "Hide baseline rows");
            ui.separator();
            ui.label(format!(
                "Noise thresholds: relative {:.0} %, absolute {:.2} %",
                self.snapshot.thresholds.relative * 100.0,
                self.snapshot.thresholds.absolute * 100.0
            ));
        });
        ui.weak(
            "Ignore writes the field into the VirtualService's mirrorlab.dev/diff-ignore \
             annotation (save the file to keep it) and applies it to the running analysis.",
        );
        let mut rows: Vec<&DiffAggregateRow> = self
            .snapshot
            .diffs
            .iter()
            .filter(|r| !self.panel.real_only || r.verdict == Verdict::Real)
            .filter(|r| !self.panel.hide_baselines || !r.baseline)
            .collect();
        sort_rows(&mut rows, self.panel.sort, self.panel.ascending);
        if rows.is_empty() {
            ui.add_space(8.0);
            ui.label(if self.snapshot.diffs.is_empty() {
                "No differences yet: every compared shadow response matched its primary."
            } else {
                "No rows pass the filters above."
            });
            return;
        }
        let mut sort_clicked = None;
        let row_height = ui.text_style_height(&egui::TextStyle::Body) + 6.0;
        egui_extras::TableBuilder::new(ui)
            .striped(true)
            .column(egui_extras::Column::initial(150.0).clip(true))
            .column(egui_extras::Column::initial(160.0).clip(true))
            .column(egui_extras::Column::initial(110.0).clip(true))
            .column(egui_extras::Column::initial(230.0).clip(true))
            .column(egui_extras::Column::auto())
            .column(egui_extras::Column::auto())
            .column(egui_extras::Column::auto())
            .column(egui_extras::Column::auto())
            // Four sample buttons of up to six digits each.
            .column(egui_extras::Column::initial(240.0).clip(true))
            .column(egui_extras::Column::remainder())
            .header(22.0, |mut h| {
                let cols = [
                    ("Route", Some(SortBy::Endpoint)),
                    ("Endpoint", Some(SortBy::Endpoint)),
                    ("Shadow", None),
                    ("Field", Some(SortBy::Field)),
                    ("Count", Some(SortBy::Count)),
                    ("Rate", Some(SortBy::Rate)),
                    ("Noise rate", Some(SortBy::Noise)),
                    ("Verdict", Some(SortBy::Verdict)),
                    ("Sample exchanges", None),
                    ("", None),
                ];
                for (title, sort) in cols {
                    h.col(|ui| match sort {
                        Some(s) => {
                            let arrow = if self.panel.sort == s {
                                if self.panel.ascending { " ^" } else { " v" }
                            } else {
                                ""
                            };
                            if ui
                                .button(format!("{title}{arrow}"))
                                .on_hover_text(format!("Sort by {title}"))
                                .clicked()
                            {
                                sort_clicked = Some(s);
                            }
                        }
                        None => {
                            ui.strong(title);
                        }
                    });
                }
            })
            .body(|body| {
                body.rows(row_height, rows.len(), |mut row| {
                    let Some(r) = rows.get(row.index()) else {
                        return;
                    };
                    row.col(|ui| {
                        // The route's own name fits the column; the VirtualService is in the
                        // hover (and is usually the only one).
                        let short = r.route.split_once(':').map_or(r.route.as_str(), |(_, n)| n);
                        ui.label(short).on_hover_text(&r.route);
                    });
                    row.col(|ui| {
                        ui.label(&r.endpoint);
                    });
                    row.col(|ui| {
                        ui.label(if r.baseline {
                            format!("{} (baseline)", r.target)
                        } else {
                            r.target.clone()
                        });
                    });
                    row.col(|ui| {
                        ui.monospace(r.field.to_string());
                    });
                    row.col(|ui| {
                        ui.label(format!("{} / {}", r.differing, r.compared));
                    });
                    row.col(|ui| {
                        ui.label(format!("{:.2} %", r.rate * 100.0));
                    });
                    row.col(|ui| match r.noise_rate {
                        Some(n) => {
                            ui.label(format!("{:.2} %", n * 100.0)).on_hover_text(
                                "How often the baseline (a second copy of the primary's version) \
                                 differs from the primary here",
                            );
                        }
                        None => {
                            ui.weak("no baseline").on_hover_text(
                                "Noise is measured with a baseline: a second mirror to the \
                                 primary's own version (see \
                                 sample-configs/reviews-mirrors-baseline.yaml). Without one, \
                                 every difference counts as real.",
                            );
                        }
                    });
                    row.col(|ui| match r.verdict {
                        Verdict::Real => {
                            ui.colored_label(ui.visuals().warn_fg_color, "real")
                                .on_hover_text(
                                    "The shadow differs here more often than noise explains \
                                     (or there is no baseline to tell)",
                                );
                        }
                        Verdict::Noise => {
                            ui.weak("noise").on_hover_text(
                                "The baseline differs from the primary here as often: \
                                 likely per-pod or per-request values",
                            );
                        }
                    });
                    row.col(|ui| {
                        ui.horizontal(|ui| {
                            for id in r.sample_exchange_ids.iter().take(4) {
                                if ui
                                    .small_button(format!("#{id}"))
                                    .on_hover_text("Show this exchange in Traffic")
                                    .clicked()
                                {
                                    self.commands.push(Command::ShowExchange(*id));
                                }
                            }
                        });
                    });
                    row.col(|ui| {
                        if ui
                            .small_button("Ignore")
                            .on_hover_text(format!(
                                "Ignore {} for VirtualService {}",
                                r.field,
                                virtual_service_of(&r.route)
                            ))
                            .clicked()
                        {
                            self.commands.push(Command::IgnoreField {
                                virtual_service: virtual_service_of(&r.route).to_owned(),
                                rule: r.field.to_string(),
                            });
                        }
                    });
                });
            });
        if let Some(s) = sort_clicked {
            if self.panel.sort == s {
                self.panel.ascending = !self.panel.ascending;
            } else {
                self.panel.sort = s;
                self.panel.ascending = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_name_their_virtual_service() {
        assert_eq!(
            virtual_service_of("default/reviews:http[0]"),
            "default/reviews"
        );
        assert_eq!(
            virtual_service_of("default/reviews:canary"),
            "default/reviews"
        );
    }
}
