//! The Dashboard panel: for one route or all, the primary and each shadow side by side —
//! rates, errors, percentiles, status codes — and plots over time.

use std::collections::BTreeMap;

use egui_plot::{
    Bar, BarChart, Corner, GridInput, GridMark, Legend, Line, Plot, PlotPoint, PlotPoints, Text,
};

use crate::analysis::{AnalysisSnapshot, RouteSnapshot, SideSnapshot};
use crate::capture::SkipReason;

/// Most seconds of history the plots show.
const PLOT_WINDOW_SECONDS: u64 = 120;
/// Fewest seconds the time axis spans, so a fresh run does not fill the plot with one point.
const MIN_PLOT_SECONDS: u64 = 20;

/// Seconds of history to show: from the oldest point (within the window) to now.
fn plot_span(sides: &[&SideSnapshot], now: u64) -> u64 {
    let oldest = sides
        .iter()
        .filter_map(|s| {
            s.series
                .iter()
                .find(|p| p.requests > 0)
                .map(|p| p.unix_second)
        })
        .min();
    span_from(oldest, now)
}

/// Seconds of history to show when the oldest point is at `oldest` (unix seconds).
pub(super) fn span_from(oldest: Option<u64>, now: u64) -> u64 {
    let oldest = oldest.unwrap_or(now);
    (now.saturating_sub(oldest) + 2).clamp(MIN_PLOT_SECONDS, PLOT_WINDOW_SECONDS)
}

/// State of the Dashboard panel that lives across frames.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DashboardPanel {
    /// Route label to show; `None` shows every route.
    pub route: Option<String>,
    /// Show the latency distribution as a CDF instead of a histogram.
    pub cdf: bool,
}

/// The Dashboard panel for one frame.
pub struct DashboardView<'a> {
    /// Panel state.
    pub panel: &'a mut DashboardPanel,
    /// The latest analysis.
    pub snapshot: &'a AnalysisSnapshot,
}

/// Colour of side `i` (0 is the primary), the same in every card and plot.
pub fn side_color(i: usize) -> egui::Color32 {
    const COLORS: [egui::Color32; 5] = [
        egui::Color32::from_rgb(66, 133, 244),
        egui::Color32::from_rgb(255, 152, 0),
        egui::Color32::from_rgb(46, 180, 110),
        egui::Color32::from_rgb(200, 90, 220),
        egui::Color32::from_rgb(230, 80, 80),
    ];
    COLORS[i % COLORS.len()]
}

impl DashboardView<'_> {
    /// Shows the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let routes = &self.snapshot.routes;
        ui.horizontal(|ui| {
            let l = ui.label("Route");
            let shown = self
                .panel
                .route
                .clone()
                .unwrap_or_else(|| "All routes".to_owned());
            egui::ComboBox::from_id_salt("dashboard-route")
                .selected_text(shown)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.panel.route, None, "All routes");
                    for r in routes.iter() {
                        ui.selectable_value(
                            &mut self.panel.route,
                            Some(r.label.clone()),
                            r.label.as_str(),
                        );
                    }
                })
                .response
                .labelled_by(l.id);
            ui.separator();
            ui.label(format!(
                "{} exchanges analysed, {} without a route",
                self.snapshot.exchanges, self.snapshot.unrouted
            ));
        });
        ui.separator();
        let shown: Vec<&RouteSnapshot> = routes
            .iter()
            .filter(|r| self.panel.route.as_ref().is_none_or(|l| *l == r.label))
            .collect();
        let now = self.snapshot.now_unix_second.unwrap_or(0);
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                for route in shown {
                    egui::CollapsingHeader::new(
                        egui::RichText::new(format!(
                            "{} — {} requests",
                            route.label, route.requests
                        ))
                        .strong(),
                    )
                    .id_salt(("dash-route", &route.label))
                    .default_open(true)
                    .show(ui, |ui| self.route_ui(ui, route, now));
                }
            });
    }

    fn route_ui(&mut self, ui: &mut egui::Ui, route: &RouteSnapshot, now: u64) {
        let sides: Vec<&SideSnapshot> = std::iter::once(&route.primary)
            .chain(route.mirrors.iter())
            .collect();
        // Cards: one column per side.
        ui.columns(sides.len().max(1), |cols| {
            for (i, (col, side)) in cols.iter_mut().zip(&sides).enumerate() {
                side_card(col, i, side, now);
            }
        });
        ui.add_space(6.0);

        let width = ui.available_width();
        let half = ((width - 12.0) / 2.0).max(200.0);
        let id = &route.label;
        ui.horizontal(|ui| {
            ui.vertical(|ui| {
                ui.strong("Latency percentiles (ms) over time");
                series_plot(ui, (id, "lat"), half, &sides, now, |p| {
                    [("p50", p.p50_ms), ("p99", p.p99_ms)]
                });
            });
            ui.vertical(|ui| {
                ui.strong("Requests per second");
                series_plot(ui, (id, "rate"), half, &sides, now, |p| {
                    [("rps", Some(p.requests as f64)), ("", None)]
                });
            });
        });
        ui.horizontal(|ui| {
            ui.vertical(|ui| {
                ui.strong("Error rate (%)");
                series_plot(ui, (id, "err"), half, &sides, now, |p| {
                    let rate = (p.requests > 0).then_some(p.error_rate * 100.0);
                    [("errors", rate), ("", None)]
                });
            });
            ui.vertical(|ui| {
                ui.horizontal(|ui| {
                    ui.strong("Latency distribution (ms)");
                    ui.selectable_value(&mut self.panel.cdf, false, "Histogram");
                    ui.selectable_value(&mut self.panel.cdf, true, "CDF");
                });
                distribution_plot(ui, (id, "dist"), half, &sides, self.panel.cdf);
            });
        });
        ui.horizontal(|ui| {
            ui.vertical(|ui| {
                ui.strong("Status codes");
                status_plot(ui, (id, "status"), half, &sides);
            });
            if !route.mirrors.is_empty() {
                ui.vertical(|ui| {
                    ui.strong("Mirrored against skipped, by reason");
                    skipped_plot(ui, (id, "skip"), half, &route.mirrors);
                });
            }
        });
        if super::endpoints::worth_showing(&route.upstream) {
            ui.add_space(6.0);
            super::endpoints::upstream_ui(ui, id, width, &route.upstream, now);
        }
    }
}

/// Requests per second over the last few complete seconds of a side's series.
pub fn recent_rps(side: &SideSnapshot, now: u64) -> f64 {
    const WINDOW: u64 = 3;
    // The current second is still filling; use the ones before it.
    let from = now.saturating_sub(WINDOW);
    let n: u64 = side
        .series
        .iter()
        .filter(|p| p.unix_second >= from && p.unix_second < now)
        .map(|p| p.requests)
        .sum();
    n as f64 / WINDOW as f64
}

fn side_card(ui: &mut egui::Ui, i: usize, side: &SideSnapshot, now: u64) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_min_width(ui.available_width());
        let title = if i == 0 {
            format!("Primary ({})", targets_text(side))
        } else if side.baseline {
            format!("Shadow {} (baseline)", side.label)
        } else {
            format!("Shadow {}", side.label)
        };
        ui.colored_label(side_color(i), egui::RichText::new(title).strong());
        let answered: u64 = side.status.classes.iter().sum();
        let errors = side.error_count() + side.status.class(5);
        let error_rate = if side.sent > 0 {
            errors as f64 / side.sent as f64 * 100.0
        } else {
            0.0
        };
        egui::Grid::new(("card", i, &side.label))
            .num_columns(2)
            .show(ui, |ui| {
                ui.label("requests/s");
                ui.strong(format!("{:.1}", recent_rps(side, now)));
                ui.end_row();
                ui.label("sent");
                ui.label(format!("{} ({answered} answered)", side.sent));
                ui.end_row();
                ui.label("error rate");
                ui.label(format!("{error_rate:.2} % ({errors})"));
                ui.end_row();
                ui.label("p50 / p90 / p99");
                ui.label(format!(
                    "{:.1} / {:.1} / {:.1} ms",
                    side.total.p50_ms, side.total.p90_ms, side.total.p99_ms
                ));
                ui.end_row();
                if let Some(delta) = &side.delta {
                    ui.label("vs primary (p50)");
                    ui.label(format!("{:+.1} ms", delta.p50_ms));
                    ui.end_row();
                }
                if i > 0 {
                    ui.label("skipped");
                    ui.label(skipped_text(&side.skipped));
                    ui.end_row();
                }
                if !side.errors.is_empty() {
                    ui.label("failures");
                    let text: Vec<String> = side
                        .errors
                        .iter()
                        .map(|(k, n)| format!("{}: {n}", k.as_str()))
                        .collect();
                    ui.label(text.join(", "));
                    ui.end_row();
                }
            });
    });
}

fn targets_text(side: &SideSnapshot) -> String {
    if side.targets.is_empty() {
        return "primary".to_owned();
    }
    side.targets.keys().cloned().collect::<Vec<_>>().join(", ")
}

fn skipped_text(skipped: &BTreeMap<SkipReason, u64>) -> String {
    if skipped.is_empty() {
        return "none".to_owned();
    }
    skipped
        .iter()
        .map(|(r, n)| format!("{}: {n}", r.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn side_name(i: usize, side: &SideSnapshot) -> String {
    if i == 0 {
        "primary".to_owned()
    } else {
        format!("shadow {}", side.label)
    }
}

/// A time-series plot: up to two measures per side, x in seconds before now.
fn series_plot(
    ui: &mut egui::Ui,
    id: impl egui::AsIdSalt,
    width: f32,
    sides: &[&SideSnapshot],
    now: u64,
    measures: impl Fn(&crate::analysis::SeriesPoint) -> [(&'static str, Option<f64>); 2],
) {
    let span = plot_span(sides, now);
    let from = now.saturating_sub(span);
    Plot::new(id)
        .width(width)
        .y_grid_spacer(readable_y_marks)
        .height(150.0)
        .legend(Legend::default().position(Corner::LeftTop))
        .include_y(0.0)
        .include_x(-(span as f64))
        .include_x(0.0)
        .x_axis_label("seconds ago")
        .allow_scroll(false)
        .show(ui, |plot| {
            for (i, side) in sides.iter().enumerate() {
                let points: Vec<&crate::analysis::SeriesPoint> = side
                    .series
                    .iter()
                    .filter(|p| p.unix_second >= from && p.unix_second < now)
                    .collect();
                for (m, style) in [0usize, 1].into_iter().zip([
                    egui_plot::LineStyle::Solid,
                    egui_plot::LineStyle::dashed_dense(),
                ]) {
                    let mut name = "";
                    let xy: Vec<[f64; 2]> = points
                        .iter()
                        .filter_map(|p| {
                            let (n, v) = measures(p)[m];
                            name = n;
                            v.map(|v| [p.unix_second as f64 - now as f64, v])
                        })
                        .collect();
                    if xy.is_empty() || name.is_empty() {
                        continue;
                    }
                    plot.line(
                        Line::new(
                            format!("{} {name}", side_name(i, side)),
                            PlotPoints::from(xy),
                        )
                        .color(side_color(i))
                        .style(style),
                    );
                }
            }
        });
}

fn distribution_plot(
    ui: &mut egui::Ui,
    id: impl egui::AsIdSalt,
    width: f32,
    sides: &[&SideSnapshot],
    cdf: bool,
) {
    Plot::new(id)
        .width(width)
        .y_grid_spacer(readable_y_marks)
        .height(150.0)
        .legend(Legend::default().position(Corner::RightBottom))
        .include_y(0.0)
        .x_axis_label("ms")
        .allow_scroll(false)
        .show(ui, |plot| {
            for (i, side) in sides.iter().enumerate() {
                let total: u64 = side.distribution.iter().map(|b| b.count).sum();
                if total == 0 {
                    continue;
                }
                let xy: Vec<[f64; 2]> = if cdf {
                    side.distribution
                        .iter()
                        .map(|b| [b.upper_ms, b.cumulative_fraction * 100.0])
                        .collect()
                } else {
                    // Share of requests per ms of bucket width, so uneven buckets compare.
                    side.distribution
                        .iter()
                        .filter(|b| b.upper_ms > b.lower_ms)
                        .map(|b| {
                            let mid = (b.lower_ms + b.upper_ms) / 2.0;
                            let density =
                                b.count as f64 / total as f64 * 100.0 / (b.upper_ms - b.lower_ms);
                            [mid, density]
                        })
                        .collect()
                };
                plot.line(
                    Line::new(side_name(i, side), PlotPoints::from(xy))
                        .color(side_color(i))
                        .width(2.0),
                );
            }
        });
}

fn status_plot(ui: &mut egui::Ui, id: impl egui::AsIdSalt, width: f32, sides: &[&SideSnapshot]) {
    let codes: Vec<u16> = {
        let mut c: Vec<u16> = sides
            .iter()
            .flat_map(|s| s.status.codes.keys().copied())
            .collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    let n = sides.len().max(1);
    let tallest = sides
        .iter()
        .flat_map(|s| s.status.codes.values().copied())
        .max()
        .unwrap_or(0) as f64;
    let labels: Vec<String> = codes.iter().map(|c| format!("HTTP {c}")).collect();
    let categories = labels.len();
    let bar_labels = labels.clone();
    Plot::new(id)
        .width(width)
        .y_grid_spacer(readable_y_marks)
        .height(140.0)
        .legend(Legend::default().position(Corner::RightTop))
        .include_y(0.0)
        // Room above the tallest bar for its count.
        .include_y(tallest * 1.2)
        .allow_scroll(false)
        // Clear of the y axis's labels, which sit inside the plot's left edge.
        .include_x(-0.7)
        .include_x(categories as f64 - 0.4)
        .x_grid_spacer(move |input| category_marks(categories, &input))
        .x_axis_formatter(move |mark, _| category_label(&labels, mark.value))
        .show(ui, |plot| {
            for (i, side) in sides.iter().enumerate() {
                let name = side_name(i, side);
                let counts = codes
                    .iter()
                    .map(|code| side.status.codes.get(code).copied().unwrap_or(0));
                let slot = BarSlot {
                    index: i,
                    of: n,
                    width: 0.8 / n as f64,
                };
                bars_with_counts(
                    plot,
                    &name,
                    side_color(i),
                    slot,
                    bar_labels.iter().zip(counts),
                );
            }
        });
}

/// Where a side's bar sits within its category: side `index` of `of`, `width` wide.
#[derive(Debug, Clone, Copy)]
struct BarSlot {
    index: usize,
    of: usize,
    width: f64,
}

/// One bar per category for one side, each with its count written above it (a
/// 2% error bar is otherwise invisible next to a 98% one).
fn bars_with_counts<'l>(
    plot: &mut egui_plot::PlotUi<'_>,
    name: &str,
    color: egui::Color32,
    slot: BarSlot,
    counts: impl Iterator<Item = (&'l String, u64)>,
) {
    let mut bars = Vec::new();
    for (k, (label, count)) in counts.enumerate() {
        let x = k as f64 + (slot.index as f64 - (slot.of as f64 - 1.0) / 2.0) * slot.width;
        bars.push(
            Bar::new(x, count as f64)
                .width(slot.width * 0.95)
                .name(label),
        );
        if count > 0 {
            // Same name as the bars: the legend toggles both together.
            plot.text(
                Text::new(name, PlotPoint::new(x, count as f64), count.to_string())
                    .color(color)
                    .anchor(egui::Align2::CENTER_BOTTOM),
            );
        }
    }
    plot.bar_chart(BarChart::new(name, bars).color(color));
}

/// Fewest points between two labelled y marks: egui_plot fades labels closer than 30
/// points and drops those closer than 20, which left short plots with only "0".
const MIN_Y_LABEL_SPACING: f64 = 32.0;

/// Y grid marks at a round step (1, 2 or 5 times a power of ten) at least
/// [`MIN_Y_LABEL_SPACING`] points apart, so every mark gets a readable label.
fn readable_y_marks(input: GridInput) -> Vec<GridMark> {
    // egui_plot's base step is the value spanned by its minimum grid spacing of 8 points.
    let per_point = input.base_step_size / 8.0;
    let (lo, hi) = input.bounds;
    if !(per_point.is_finite() && per_point > 0.0 && lo.is_finite() && hi.is_finite() && hi > lo) {
        return Vec::new();
    }
    let min_step = per_point * MIN_Y_LABEL_SPACING;
    let mut magnitude = 10f64.powf(min_step.log10().floor());
    if !(magnitude.is_normal() && min_step.is_finite()) {
        // Ranges too small or too large for a step: no marks rather than a loop.
        return Vec::new();
    }
    let step = loop {
        if let Some(m) = [1.0, 2.0, 5.0]
            .into_iter()
            .find(|m| m * magnitude >= min_step)
        {
            break m * magnitude;
        }
        magnitude *= 10.0;
    };
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last)
        .map(|k| GridMark {
            value: k as f64 * step,
            step_size: step,
        })
        .collect()
}

/// Grid marks for a category axis: one at each category's index, so every bar group gets
/// its label however the plot is sized (the default spacer marks 0.5s or 2s as it sees fit).
fn category_marks(categories: usize, input: &GridInput) -> Vec<GridMark> {
    (0..categories)
        .map(|k| k as f64)
        .filter(|&x| x >= input.bounds.0 && x <= input.bounds.1)
        .map(|value| GridMark {
            value,
            step_size: 1.0,
        })
        .collect()
}

/// The label of the category at `value` on a category axis ("" between categories).
fn category_label(labels: &[String], value: f64) -> String {
    let k = value.round();
    if (value - k).abs() < 1e-6 && k >= 0.0 {
        labels.get(k as usize).cloned().unwrap_or_default()
    } else {
        String::new()
    }
}

fn skipped_plot(ui: &mut egui::Ui, id: impl egui::AsIdSalt, width: f32, mirrors: &[SideSnapshot]) {
    const REASONS: [SkipReason; 4] = [
        SkipReason::NotSampled,
        SkipReason::BodyTooLarge,
        SkipReason::NoSlot,
        SkipReason::RequestIncomplete,
    ];
    let labels: Vec<String> = std::iter::once("mirrored".to_owned())
        .chain(REASONS.iter().map(|r| r.as_str().to_owned()))
        .collect();
    // Axis labels on two lines ("request\nincomplete"): a label wider than its category's
    // slot is not drawn at all.
    let axis_labels: Vec<String> = labels
        .iter()
        .map(|l| l.replacen('_', "\n", 1).replace('_', " "))
        .collect();
    let categories = labels.len();
    let n = mirrors.len().max(1);
    let tallest = mirrors
        .iter()
        .flat_map(|s| std::iter::once(s.sent).chain(s.skipped.values().copied()))
        .max()
        .unwrap_or(0) as f64;
    let bar_labels = labels.clone();
    Plot::new(id)
        .width(width)
        .y_grid_spacer(readable_y_marks)
        .height(140.0)
        .legend(Legend::default().position(Corner::RightTop))
        .include_y(0.0)
        .include_y(tallest * 1.2)
        .allow_scroll(false)
        .include_x(-0.7)
        .include_x(categories as f64 - 0.4)
        .x_grid_spacer(move |input| category_marks(categories, &input))
        .x_axis_formatter(move |mark, _| category_label(&axis_labels, mark.value))
        .show(ui, |plot| {
            for (i, side) in mirrors.iter().enumerate() {
                let values = std::iter::once(side.sent).chain(
                    REASONS
                        .iter()
                        .map(|r| side.skipped.get(r).copied().unwrap_or(0)),
                );
                let name = format!("shadow {}", side.label);
                let slot = BarSlot {
                    index: i,
                    of: n,
                    width: 0.8 / n as f64,
                };
                bars_with_counts(
                    plot,
                    &name,
                    side_color(i + 1),
                    slot,
                    bar_labels.iter().zip(values),
                );
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn y_marks_are_round_and_far_enough_apart_to_be_labelled() {
        // 0..552 over 100 points: steps of 100 would be 18 points apart (unlabelled).
        let input = GridInput {
            bounds: (0.0, 552.0),
            base_step_size: 552.0 / 100.0 * 8.0,
        };
        let values: Vec<f64> = readable_y_marks(input).iter().map(|m| m.value).collect();
        assert_eq!(values, vec![0.0, 200.0, 400.0]);
        // Small values: 0..3 % over 110 points.
        let input = GridInput {
            bounds: (-0.1, 3.1),
            base_step_size: 3.2 / 110.0 * 8.0,
        };
        let values: Vec<f64> = readable_y_marks(input).iter().map(|m| m.value).collect();
        assert_eq!(values, vec![0.0, 1.0, 2.0, 3.0]);
        for m in readable_y_marks(GridInput {
            bounds: (0.0, 48.0),
            base_step_size: 48.0 / 105.0 * 8.0,
        }) {
            assert!(m.step_size / (48.0 / 105.0) >= MIN_Y_LABEL_SPACING);
        }
        // A degenerate plot gets no marks rather than a loop.
        assert!(
            readable_y_marks(GridInput {
                bounds: (0.0, 0.0),
                base_step_size: 0.0
            })
            .is_empty()
        );
    }

    #[test]
    fn every_status_code_gets_a_mark_and_its_label_however_wide_the_plot() {
        let labels: Vec<String> = ["HTTP 200", "HTTP 201", "HTTP 404", "HTTP 500", "HTTP 503"]
            .map(str::to_owned)
            .to_vec();
        // A narrow plot would get marks every 2 units from the default spacer; ours are 1 apart.
        let input = GridInput {
            bounds: (-0.9, 4.5),
            base_step_size: 0.7,
        };
        let marks = category_marks(labels.len(), &input);
        let shown: Vec<String> = marks
            .iter()
            .map(|m| category_label(&labels, m.value))
            .collect();
        assert_eq!(shown, labels);
        // Between categories and past the last one, no label.
        assert_eq!(category_label(&labels, 0.5), "");
        assert_eq!(category_label(&labels, 5.0), "");
        assert_eq!(category_label(&labels, -1.0), "");
        // Zoomed in: only the categories in view.
        let zoomed = GridInput {
            bounds: (1.5, 3.2),
            base_step_size: 0.01,
        };
        let values: Vec<f64> = category_marks(labels.len(), &zoomed)
            .iter()
            .map(|m| m.value)
            .collect();
        assert_eq!(values, vec![2.0, 3.0]);
    }
}
