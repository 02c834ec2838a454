//! The Diffs panel: where shadow responses differ from the primary's, per route, endpoint
//! and field — sortable — with why each verdict was reached, and a button that ignores a
//! field by writing the annotation (offered first for the fields found volatile).

use crate::analysis::{
    AnalysisSnapshot, DiffAggregateRow, VOLATILE_SHARE, Verdict, VerdictEvidence,
};

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
            "A volatile field (its value changes between two answers of the same version: \
             the baseline's, or the primary's own to the same request) is noise unless the \
             shadow changes its type or presence. Ignore writes the field into the \
             VirtualService's mirrorlab.dev/diff-ignore annotation (save the file to keep it) \
             and applies it to the running analysis.",
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
            .column(egui_extras::Column::initial(110.0).clip(true))
            .column(egui_extras::Column::initial(130.0).clip(true))
            .column(egui_extras::Column::initial(95.0).clip(true))
            .column(egui_extras::Column::initial(180.0).clip(true))
            // `12345 / 12345` on one line.
            .column(egui_extras::Column::initial(84.0))
            .column(egui_extras::Column::auto())
            .column(egui_extras::Column::auto())
            .column(egui_extras::Column::auto())
            // The reason, in a sentence of up to about sixty characters (the figures in its
            // hover).
            .column(egui_extras::Column::initial(350.0).clip(true))
            .column(egui_extras::Column::initial(64.0))
            // Three sample buttons of up to six digits each.
            .column(egui_extras::Column::remainder().clip(true))
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
                    ("Why", None),
                    ("", None),
                    ("Sample exchanges", None),
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
                    if let Some(r) = rows.get(row.index()) {
                        row_ui(&mut row, r, self.commands);
                    }
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

/// One row of the table.
fn row_ui(
    row: &mut egui_extras::TableRow<'_, '_>,
    r: &DiffAggregateRow,
    commands: &mut Vec<Command>,
) {
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
                "A baseline is a second mirror to the primary's own version \
                 (see sample-configs/reviews-mirrors-baseline.yaml). Without \
                 one, the primary's own answers to repeated identical requests \
                 still show which fields are volatile; any other difference \
                 counts as real.",
            );
        }
    });
    row.col(|ui| verdict_ui(ui, r));
    row.col(|ui| {
        let why = why_text(r);
        if r.verdict == Verdict::Noise {
            ui.weak(why)
        } else {
            ui.label(why)
        }
        .on_hover_text(evidence_details(r));
    });
    row.col(|ui| {
        if ignore_button(ui, r).clicked() {
            commands.push(Command::IgnoreField {
                virtual_service: virtual_service_of(&r.route).to_owned(),
                rule: r.field.to_string(),
            });
        }
    });
    row.col(|ui| {
        ui.horizontal(|ui| {
            for id in r.sample_exchange_ids.iter().take(3) {
                if ui
                    .small_button(format!("#{id}"))
                    .on_hover_text("Show this exchange in Traffic")
                    .clicked()
                {
                    commands.push(Command::ShowExchange(*id));
                }
            }
        });
    });
}

/// `real` or `noise`, with the rule that made it in the hover.
fn verdict_ui(ui: &mut egui::Ui, r: &DiffAggregateRow) {
    match r.verdict {
        Verdict::Real => {
            ui.colored_label(ui.visuals().warn_fg_color, "real")
                .on_hover_text(format!("Real: {}", r.evidence.describe()));
        }
        Verdict::Noise => {
            ui.weak("noise")
                .on_hover_text(format!("Noise: {}", r.evidence.describe()));
        }
    }
}

/// The Why column: the evidence in a few words; for a real difference without a baseline,
/// how steady the primary's own repeats were there.
fn why_text(r: &DiffAggregateRow) -> String {
    match (&r.evidence, r.repeats, r.repeats_changed) {
        (VerdictEvidence::NoBaseline, Some(repeats), Some(0)) => {
            format!("no baseline; primary's own value steady in {repeats} repeats")
        }
        (VerdictEvidence::NoBaseline, Some(repeats), Some(changed)) => {
            format!("no baseline; primary's own value changed in {changed} of {repeats} repeats")
        }
        (evidence, _, _) => evidence.describe(),
    }
}

/// The figures behind a verdict, for the Why column's hover.
fn evidence_details(r: &DiffAggregateRow) -> String {
    let mut lines = vec![format!(
        "The shadow differs here in {} of {} exchanges ({} in type or presence).",
        r.differing, r.compared, r.shape_differing
    )];
    if let (Some(n), Some(c)) = (r.noise_differing, r.noise_compared) {
        lines.push(format!("The baseline differs here in {n} of {c}."));
    }
    if let (Some(changed), Some(repeats)) = (r.repeats_changed, r.repeats) {
        lines.push(format!(
            "The primary's own answer changed here in {changed} of {repeats} repeated requests."
        ));
    }
    if let Some(v) = r.evidence.volatility() {
        lines.push(format!(
            "Volatile: {} (at least {:.0} % with 95 % confidence); a change of its value is \
             noise, a change of its type or presence is not.",
            v.describe(),
            VOLATILE_SHARE * 100.0
        ));
    }
    lines.join("\n")
}

/// The row's Ignore button: prominent for a volatile field (its values are noise, and
/// ignoring it is the usual fix), small otherwise.
fn ignore_button(ui: &mut egui::Ui, r: &DiffAggregateRow) -> egui::Response {
    let vs = virtual_service_of(&r.route);
    match r.evidence.volatility() {
        Some(v) if !r.baseline => ui
            .add(
                egui::Button::new(egui::RichText::new("Ignore").strong())
                    .fill(ui.visuals().selection.bg_fill),
            )
            .on_hover_text(format!(
                "{} is volatile ({}). Ignore it for VirtualService {vs}",
                r.field,
                v.describe()
            )),
        _ => ui
            .small_button("Ignore")
            .on_hover_text(format!("Ignore {} for VirtualService {vs}", r.field)),
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
