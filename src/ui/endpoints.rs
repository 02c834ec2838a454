//! The Dashboard's upstream section of a route: the primary's attempts per endpoint (what
//! the balancer, the retries and outlier detection did), with each ejection on the plot.

use egui_plot::{Corner, Legend, Line, MarkerShape, Plot, PlotPoints, Points};

use crate::analysis::{EndpointSnapshot, UpstreamSnapshot};

/// Colour of endpoint `i`: apart from the sides' colours, which mean primary and shadows.
fn endpoint_color(i: usize) -> egui::Color32 {
    const COLORS: [egui::Color32; 6] = [
        egui::Color32::from_rgb(0, 150, 170),
        egui::Color32::from_rgb(150, 110, 60),
        egui::Color32::from_rgb(120, 120, 220),
        egui::Color32::from_rgb(170, 170, 40),
        egui::Color32::from_rgb(220, 120, 160),
        egui::Color32::from_rgb(90, 160, 90),
    ];
    COLORS[i % COLORS.len()]
}

/// Colour of the ejection markers.
const EJECTED: egui::Color32 = egui::Color32::from_rgb(220, 50, 50);

/// The one-line summary above the table: attempts, retries, picks that passed over an
/// ejected endpoint.
pub fn summary_text(upstream: &UpstreamSnapshot) -> String {
    let mut text = format!(
        "{} upstream attempts, {} requests retried",
        upstream.attempts, upstream.retried
    );
    if upstream.skipped_ejected > 0 {
        text.push_str(&format!(
            ", {} picks passed over an ejected endpoint",
            upstream.skipped_ejected
        ));
    }
    text
}

/// When the endpoint was last ejected, in seconds before `now`.
fn last_ejection(e: &EndpointSnapshot, now: u64) -> Option<u64> {
    e.series
        .iter()
        .rev()
        .find(|s| s.ejections > 0)
        .map(|s| now.saturating_sub(s.unix_second))
}

/// Whether the section is worth showing: more than one endpoint, or a retry or an ejection.
pub fn worth_showing(upstream: &UpstreamSnapshot) -> bool {
    upstream.endpoints.len() > 1
        || upstream.retried > 0
        || upstream.endpoints.iter().any(|e| e.ejections > 0)
}

/// The section: summary, per-endpoint table, attempts per second with ejections marked.
pub fn upstream_ui(ui: &mut egui::Ui, id: &str, width: f32, upstream: &UpstreamSnapshot, now: u64) {
    ui.strong("Upstream endpoints (primary)");
    ui.label(summary_text(upstream));
    egui::Grid::new(("endpoints", id))
        .striped(true)
        .num_columns(5)
        .show(ui, |ui| {
            for h in [
                "Endpoint",
                "Attempts",
                "Failed or 5xx",
                "Ejections",
                "Last ejected",
            ] {
                ui.strong(h);
            }
            ui.end_row();
            for (i, e) in upstream.endpoints.iter().enumerate() {
                ui.colored_label(endpoint_color(i), &e.endpoint);
                ui.label(e.attempts.to_string());
                ui.label(e.failures.to_string());
                ui.label(e.ejections.to_string());
                ui.label(match last_ejection(e, now) {
                    Some(ago) => format!("{ago} s ago"),
                    None if e.ejections > 0 => "over 10 min ago".to_owned(),
                    None => "never".to_owned(),
                });
                ui.end_row();
            }
        });
    attempts_plot(ui, id, width, upstream, now);
}

fn attempts_plot(ui: &mut egui::Ui, id: &str, width: f32, upstream: &UpstreamSnapshot, now: u64) {
    let oldest = (upstream.endpoints.iter())
        .filter_map(|e| e.series.first().map(|s| s.unix_second))
        .min();
    let span = super::dashboard::span_from(oldest, now);
    let from = now.saturating_sub(span);
    Plot::new(("endpoint-attempts", id))
        .width(width)
        .height(150.0)
        .legend(Legend::default().position(Corner::LeftTop))
        .include_y(0.0)
        .include_x(-(span as f64))
        .include_x(0.0)
        .x_axis_label("seconds ago")
        .y_axis_label("attempts per second")
        .allow_scroll(false)
        .show(ui, |plot| {
            let mut ejections = Vec::new();
            for (i, e) in upstream.endpoints.iter().enumerate() {
                let seconds = e
                    .series
                    .iter()
                    // The current second is still filling, as in the other plots.
                    .filter(|s| s.unix_second >= from && s.unix_second < now);
                let mut xy = Vec::new();
                for s in seconds {
                    let x = s.unix_second as f64 - now as f64;
                    xy.push([x, s.attempts as f64]);
                    if s.ejections > 0 {
                        ejections.push([x, s.attempts as f64]);
                    }
                }
                plot.line(
                    Line::new(e.endpoint.clone(), PlotPoints::from(xy)).color(endpoint_color(i)),
                );
            }
            if !ejections.is_empty() {
                plot.points(
                    Points::new("ejected", PlotPoints::from(ejections))
                        .shape(MarkerShape::Cross)
                        .radius(6.0)
                        .color(EJECTED),
                );
            }
        });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::analysis::EndpointSecond;

    fn endpoint(name: &str, seconds: &[(u64, u64)]) -> EndpointSnapshot {
        let series: Vec<EndpointSecond> = seconds
            .iter()
            .map(|&(unix_second, ejections)| EndpointSecond {
                unix_second,
                attempts: 1,
                failures: ejections,
                ejections,
            })
            .collect();
        EndpointSnapshot {
            endpoint: name.to_owned(),
            attempts: series.len() as u64,
            failures: seconds.iter().map(|s| s.1).sum(),
            ejections: seconds.iter().map(|s| s.1).sum(),
            series: Arc::from(series),
        }
    }

    #[test]
    fn the_summary_and_the_last_ejection_say_what_happened() {
        let upstream = UpstreamSnapshot {
            attempts: 12,
            retried: 2,
            skipped_ejected: 8,
            endpoints: vec![
                endpoint("a", &[(100, 0), (103, 1), (104, 0)]),
                endpoint("b", &[]),
            ],
        };
        assert_eq!(
            summary_text(&upstream),
            "12 upstream attempts, 2 requests retried, 8 picks passed over an ejected endpoint"
        );
        assert_eq!(last_ejection(&upstream.endpoints[0], 110), Some(7));
        assert_eq!(last_ejection(&upstream.endpoints[1], 110), None);
        assert!(worth_showing(&upstream));
        let single = UpstreamSnapshot {
            attempts: 3,
            retried: 0,
            skipped_ejected: 0,
            endpoints: vec![endpoint("a", &[(100, 0)])],
        };
        assert!(
            !worth_showing(&single),
            "one endpoint, nothing retried: nothing to show"
        );
    }
}
