//! The Traffic panel: a live table of exchanges (fast with 100,000 rows), a filter, pause,
//! and the selected exchange's request, both responses side by side with the differences
//! highlighted, its route trace, and "copy as curl".

use std::collections::VecDeque;
use std::io::Read as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_extras::{Column, TableBuilder};

use crate::analysis::AnalysisSnapshot;
use crate::analysis::diff::{self, BodyComparison, ResponseDiff};
use crate::capture::{CapturedBody, CapturedResponse, Exchange, ShadowOutcome, UpstreamOutcome};
use crate::routing::RouteOrigin;

/// Most rows the table keeps; older ones leave as new ones arrive.
pub const MAX_ROWS: usize = 100_000;
/// Bodies larger than this are shown cut, to keep the detail view responsive.
const MAX_SHOWN_BODY: usize = 256 * 1024;

/// The filter over the table.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TrafficFilter {
    /// Method, exact (case-insensitive); empty: any.
    pub method: String,
    /// Text the path must contain; empty: any.
    pub path: String,
    /// Status: `200`, `5xx`, or empty for any (the primary's or any shadow's).
    pub status: String,
    /// Route label text the route must contain; empty: any.
    pub route: String,
    /// Only exchanges where a shadow's response differs from the primary's in a real
    /// difference (noise alone does not count).
    pub differs_only: bool,
}

impl TrafficFilter {
    fn is_empty(&self) -> bool {
        *self == TrafficFilter::default()
    }

    /// True when `e` passes; `differs` says whether analysis found a difference.
    pub fn matches(&self, e: &Exchange, differs: impl Fn(u64) -> bool) -> bool {
        if !self.method.is_empty()
            && !e
                .request
                .method
                .as_str()
                .eq_ignore_ascii_case(self.method.trim())
        {
            return false;
        }
        if !self.path.is_empty() && !e.request.uri.contains(self.path.trim()) {
            return false;
        }
        if !self.route.is_empty() && !route_label(e).contains(self.route.trim()) {
            return false;
        }
        if !self.status.trim().is_empty() {
            let want = self.status.trim().to_ascii_lowercase();
            let statuses = std::iter::once(primary_status(e))
                .chain(e.shadows.iter().map(|s| match &s.outcome {
                    ShadowOutcome::Sent(o) => o.status().map(|s| s.as_u16()),
                    ShadowOutcome::Skipped(_) => None,
                }))
                .flatten();
            let hit = |code: u16| match want.strip_suffix("xx") {
                Some(class) => class.parse::<u16>().is_ok_and(|c| code / 100 == c),
                None => want.parse::<u16>().is_ok_and(|w| w == code),
            };
            if !statuses.into_iter().any(hit) {
                return false;
            }
        }
        if self.differs_only && !differs(e.id) {
            return false;
        }
        true
    }
}

/// The analysis writes `200→500`; the bundled font has no arrow glyph, so show `200->500`.
pub fn plain_arrows(text: &str) -> String {
    text.replace('→', "->")
}

fn primary_status(e: &Exchange) -> Option<u16> {
    e.primary
        .as_ref()
        .and_then(|p| p.outcome.status())
        .map(|s| s.as_u16())
}

/// `namespace/name:route` of an exchange, or `(no route)`.
pub fn route_label(e: &Exchange) -> String {
    match &e.trace {
        Some(t) => match &t.route_name {
            Some(name) => format!("{}:{name}", t.virtual_service),
            None => format!("{}:http[{}]", t.virtual_service, t.route_index),
        },
        None => "(no route)".to_owned(),
    }
}

/// `200 12.3 ms`, `refused 1.0 ms`, or `skipped: not_sampled`.
fn outcome_text(outcome: &UpstreamOutcome) -> String {
    match outcome {
        UpstreamOutcome::Response(r) => format!("{} {:.1} ms", r.status.as_u16(), ms(r.total)),
        UpstreamOutcome::Failed(f) => format!("{} {:.1} ms", f.kind.as_str(), ms(f.elapsed)),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn shadow_text(s: &crate::capture::ShadowRecord) -> String {
    match &s.outcome {
        ShadowOutcome::Skipped(r) => format!("skipped: {}", r.as_str()),
        ShadowOutcome::Sent(o) => outcome_text(o),
    }
}

/// State of the Traffic panel that lives across frames: the rows, the filter, the selection.
pub struct TrafficPanel {
    /// Rows in arrival order; `evicted` rows have left the front.
    rows: VecDeque<Arc<Exchange>>,
    evicted: usize,
    /// Absolute sequence numbers (`evicted + position`) of the rows that pass the filter.
    filtered: Vec<usize>,
    filter_dirty: bool,
    last_filter_run: Option<Instant>,
    /// The filter.
    pub filter: TrafficFilter,
    /// While paused, new exchanges wait in the subscription instead of entering the table.
    pub paused: bool,
    /// Keep the newest row in view; selecting a row turns it off so the row stays put.
    pub follow: bool,
    /// Selected exchange id.
    pub selected: Option<u64>,
    /// Select the exchange with this `x-request-id` when it arrives (Send request).
    pub select_request_id: Option<String>,
    /// Which shadow of the selected exchange is compared.
    pub shadow_index: usize,
    /// Scroll the table to the selection on the next frame, placed like this (`None`: just
    /// into view).
    scroll_to_selected: Option<Option<egui::Align>>,
    detail: Option<Detail>,
}

impl Default for TrafficPanel {
    fn default() -> Self {
        Self {
            rows: VecDeque::new(),
            evicted: 0,
            filtered: Vec::new(),
            filter_dirty: false,
            last_filter_run: None,
            filter: TrafficFilter::default(),
            paused: false,
            follow: true,
            selected: None,
            select_request_id: None,
            shadow_index: 0,
            scroll_to_selected: None,
            detail: None,
        }
    }
}

impl std::fmt::Debug for TrafficPanel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficPanel")
            .field("rows", &self.rows.len())
            .field("filter", &self.filter)
            .field("paused", &self.paused)
            .field("selected", &self.selected)
            .finish_non_exhaustive()
    }
}

/// The computed detail of the selected exchange (diffing is too costly to redo per frame).
struct Detail {
    exchange: Arc<Exchange>,
    shadow_index: usize,
    diff: Result<ResponseDiff, String>,
    /// How the analysis counts this shadow's differences, when it has them.
    verdicts: Option<DetailVerdicts>,
    primary_body: String,
    shadow_body: String,
    line_diff: Vec<(similar::ChangeTag, String)>,
}

impl TrafficPanel {
    /// Adds exchanges that arrived since the last frame (unless paused).
    pub fn push(
        &mut self,
        exchanges: impl IntoIterator<Item = Arc<Exchange>>,
        snapshot: Option<&AnalysisSnapshot>,
    ) {
        for e in exchanges {
            if let Some(want) = &self.select_request_id
                && e.request_id == *want
            {
                self.selected = Some(e.id);
                self.select_request_id = None;
                self.scroll_to_selected = Some(Some(egui::Align::Center));
                self.follow = false;
            }
            let seq = self.evicted + self.rows.len();
            let differs = |id| differs(snapshot, id);
            if !self.filter_dirty && self.filter.matches(&e, differs) {
                self.filtered.push(seq);
            }
            self.rows.push_back(e);
            if self.rows.len() > MAX_ROWS {
                self.rows.pop_front();
                self.evicted += 1;
            }
        }
        // Drop filtered entries that pointed at evicted rows.
        let first = self.evicted;
        let cut = self.filtered.partition_point(|&s| s < first);
        if cut > 0 {
            self.filtered.drain(..cut);
        }
    }

    /// Number of rows kept.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no exchange has arrived yet.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Number of rows passing the filter.
    pub fn shown(&self) -> usize {
        self.filtered.len()
    }

    /// The exchanges the filter shows, oldest first.
    pub fn shown_exchanges(&self) -> Vec<Arc<Exchange>> {
        self.filtered
            .iter()
            .filter_map(|&s| self.row(s).cloned())
            .collect()
    }

    /// Forgets every row.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.filtered.clear();
        self.evicted = 0;
        self.selected = None;
        self.detail = None;
    }

    /// The kept exchange with this id.
    pub fn find(&self, id: u64) -> Option<&Arc<Exchange>> {
        // Ids grow with arrival in most cases, so search from the back.
        self.rows.iter().rev().find(|e| e.id == id)
    }

    fn refilter(&mut self, snapshot: Option<&AnalysisSnapshot>) {
        let filter = &self.filter;
        self.filtered = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, e)| filter.matches(e, |id| differs(snapshot, id)))
            .map(|(i, _)| self.evicted + i)
            .collect();
        self.filter_dirty = false;
        self.last_filter_run = Some(Instant::now());
    }

    /// The newest kept exchange for which `pick` holds.
    pub fn newest_where(&self, pick: impl Fn(&Exchange) -> bool) -> Option<u64> {
        self.rows.iter().rev().find(|e| pick(e)).map(|e| e.id)
    }

    /// Scrolls the table to the selected row on the next frame (after a filter reset).
    pub fn reveal_selected(&mut self) {
        self.filter_dirty = true;
        self.scroll_to_selected = Some(Some(egui::Align::Center));
        self.follow = false;
    }

    fn row(&self, seq: usize) -> Option<&Arc<Exchange>> {
        self.rows.get(seq.checked_sub(self.evicted)?)
    }
}

/// True when the analysis found that a candidate's response to exchange `id` differs from
/// the primary's in a real difference (status or fields, after ignore rules; noise alone
/// does not count).
pub fn differs(snapshot: Option<&AnalysisSnapshot>, id: u64) -> bool {
    snapshot.is_some_and(|s| s.differs_really(id))
}

/// The Traffic panel for one frame.
pub struct TrafficView<'a> {
    /// Panel state.
    pub panel: &'a mut TrafficPanel,
    /// The latest analysis, for diff summaries and ignore rules.
    pub snapshot: Option<&'a AnalysisSnapshot>,
    /// The proxy's address, for "copy as curl".
    pub proxy: Option<&'a str>,
}

impl TrafficView<'_> {
    /// Shows the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.filter_bar(ui);
        // "Differs only" depends on analysis that lands after the row, so re-run it now and then.
        let stale = self.panel.filter.differs_only
            && self
                .panel
                .last_filter_run
                .is_none_or(|t| t.elapsed() > Duration::from_millis(500));
        if self.panel.filter_dirty || stale {
            self.panel.refilter(self.snapshot);
        }
        // With a row selected, at least 45% of the height: the detail is what a selected
        // row is for. Without one, the table gets the room.
        let detail_height = if self.panel.selected.is_some() {
            (ui.available_height() * 0.45).max(160.0)
        } else {
            40.0
        };
        egui::Panel::bottom("traffic-detail")
            .resizable(self.panel.selected.is_some())
            .min_size(detail_height)
            .max_size(if self.panel.selected.is_some() {
                f32::INFINITY
            } else {
                detail_height
            })
            .show(ui, |ui| self.detail_ui(ui));
        egui::CentralPanel::default().show(ui, |ui| self.table_ui(ui));
    }

    fn filter_bar(&mut self, ui: &mut egui::Ui) {
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
            ui.add(
                egui::TextEdit::singleline(&mut f.path)
                    .desired_width(140.0)
                    .hint_text("/reviews"),
            )
            .labelled_by(l.id);
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
            ui.label(format!(
                "{} of {} exchanges{}",
                self.panel.shown(),
                self.panel.len(),
                if self.panel.paused { " (paused)" } else { "" }
            ));
        });
        if self.panel.filter != before {
            self.panel.filter_dirty = true;
        }
    }

    fn table_ui(&mut self, ui: &mut egui::Ui) {
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
                        ui.label(time.format("%H:%M:%S%.3f").to_string())
                            .on_hover_text(format!("Exchange #{}", e.id));
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
                                t.route_name
                                    .clone()
                                    .unwrap_or_else(|| format!("http[{}]", t.route_index))
                            },
                        );
                        ui.label(short).on_hover_text(route_label(e));
                    });
                    row.col(|ui| {
                        let text = e.primary.as_ref().map_or_else(
                            || "404 (no route)".to_owned(),
                            |p| outcome_text(&p.outcome),
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

    fn detail_ui(&mut self, ui: &mut egui::Ui) {
        let Some(id) = self.panel.selected else {
            ui.weak("Select a row to see its request, both responses and their differences.");
            return;
        };
        let Some(exchange) = self.panel.find(id).cloned() else {
            ui.weak(format!("Exchange {id} is no longer kept."));
            return;
        };
        let fresh = self
            .panel
            .detail
            .as_ref()
            .is_none_or(|d| d.exchange.id != id || d.shadow_index != self.panel.shadow_index);
        if fresh {
            self.panel.detail = Some(compute_detail(
                exchange,
                self.panel.shadow_index,
                self.snapshot,
            ));
        }
        let Some(detail) = &self.panel.detail else {
            return;
        };
        let e = &detail.exchange;
        ui.horizontal(|ui| {
            // The number the Diffs tab's sample buttons name.
            ui.weak(format!("#{}", e.id))
                .on_hover_text("Exchange number, as the Diffs tab's samples name it");
            ui.strong(format!("{} {}", e.request.method, e.request.uri));
            ui.label(format!("Host: {}", e.request.authority));
            ui.label(format!("x-request-id: {}", e.request_id));
            if ui.button("Copy as curl").clicked() {
                ui.ctx().copy_text(curl_command(e, self.proxy));
            }
        });
        ui.horizontal(|ui| {
            ui.label("Route trace:");
            ui.label(trace_text(e));
        });
        if e.shadows.len() > 1 {
            ui.horizontal(|ui| {
                ui.label("Compare with shadow:");
                for (i, s) in e.shadows.iter().enumerate() {
                    ui.selectable_value(&mut self.panel.shadow_index, i, s.target.as_ref());
                }
            });
        }
        egui::ScrollArea::vertical()
            .id_salt("traffic-detail-scroll")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                egui::CollapsingHeader::new("Request")
                    .default_open(false)
                    .show(ui, |ui| {
                        headers_ui(ui, &e.request.headers, &[]);
                        let body = body_text(&e.request.body, &e.request.headers);
                        if !body.is_empty() {
                            ui.add(egui::Label::new(egui::RichText::new(body).monospace()).wrap());
                        }
                    });
                if let Some(sent) = &e.forwarded {
                    egui::CollapsingHeader::new(
                        "Sent upstream (after the route's rewrites and header operations)",
                    )
                    .default_open(false)
                    .show(ui, |ui| {
                        ui.monospace(format!(
                            "{} {}  Host: {}",
                            e.request.method, sent.uri, sent.authority
                        ));
                        headers_ui(ui, &sent.headers, &[]);
                    });
                }
                diff_summary_ui(ui, &detail.diff, detail.verdicts.as_ref());
                let primary = e.primary.as_ref().map(|p| (&p.target, &p.outcome));
                let shadow = e.shadows.get(detail.shadow_index);
                let changed_headers: Vec<String> = match &detail.diff {
                    Ok(d) => d
                        .headers
                        .iter()
                        .filter(|h| !h.ignored)
                        .map(|h| h.name.clone())
                        .collect(),
                    Err(_) => Vec::new(),
                };
                ui.columns(2, |cols| {
                    if let Some(col) = cols.get_mut(0) {
                        col.strong(match primary {
                            Some((target, _)) => format!("Primary: {target}"),
                            None => "Primary: none (no route matched)".to_owned(),
                        });
                        if let Some((_, outcome)) = primary {
                            response_head_ui(col, outcome, &changed_headers);
                        }
                        body_lines_ui(
                            col,
                            &detail.line_diff,
                            similar::ChangeTag::Delete,
                            &detail.primary_body,
                        );
                    }
                    if let Some(col) = cols.get_mut(1) {
                        match shadow {
                            Some(s) => {
                                col.strong(format!("Shadow: {}", s.target));
                                match &s.outcome {
                                    ShadowOutcome::Skipped(r) => {
                                        col.label(format!("Not sent: {}", r.as_str()));
                                    }
                                    ShadowOutcome::Sent(o) => {
                                        response_head_ui(col, o, &changed_headers)
                                    }
                                }
                                body_lines_ui(
                                    col,
                                    &detail.line_diff,
                                    similar::ChangeTag::Insert,
                                    &detail.shadow_body,
                                );
                            }
                            None => {
                                col.strong("Shadow: none");
                                col.label("The route has no mirror.");
                            }
                        }
                    }
                });
            });
    }
}

fn compute_detail(
    exchange: Arc<Exchange>,
    shadow_index: usize,
    snapshot: Option<&AnalysisSnapshot>,
) -> Detail {
    let rules = snapshot
        .map(|s| s.rules_for(exchange.trace.as_ref().map(|t| t.virtual_service.as_str())))
        .unwrap_or_else(crate::analysis::IgnoreRules::with_default_headers);
    let diff = if exchange.shadows.is_empty() {
        Err("The route has no mirror, so there is nothing to compare.".to_owned())
    } else {
        diff::diff_exchange(&exchange, shadow_index, &rules).map_err(|e| e.to_string())
    };
    let verdicts = snapshot.and_then(|s| {
        let shadow = s.diff_summary(exchange.id)?.shadows.get(shadow_index)?;
        Some(DetailVerdicts {
            headline: shadow.text(&s.verdicts),
            noise: shadow
                .classified_fields(&s.verdicts)
                .into_iter()
                .filter(|(_, class)| *class == crate::analysis::FieldClass::Noise)
                .map(|(field, _)| field.to_string())
                .collect(),
        })
    });
    let primary_body = exchange
        .primary
        .as_ref()
        .and_then(|p| response_of(&p.outcome))
        .map(|r| body_text(&r.body, &r.headers))
        .unwrap_or_default();
    let shadow_body = exchange
        .shadows
        .get(shadow_index)
        .and_then(|s| match &s.outcome {
            ShadowOutcome::Sent(o) => response_of(o),
            ShadowOutcome::Skipped(_) => None,
        })
        .map(|r| body_text(&r.body, &r.headers))
        .unwrap_or_default();
    let line_diff = similar::TextDiff::from_lines(&primary_body, &shadow_body)
        .iter_all_changes()
        .map(|c| (c.tag(), c.value().trim_end_matches('\n').to_owned()))
        .collect();
    Detail {
        exchange,
        shadow_index,
        diff,
        verdicts,
        primary_body,
        shadow_body,
        line_diff,
    }
}

fn response_of(outcome: &UpstreamOutcome) -> Option<&CapturedResponse> {
    match outcome {
        UpstreamOutcome::Response(r) => Some(r),
        UpstreamOutcome::Failed(f) => f.partial.as_ref(),
    }
}

/// The route trace as a sentence: `VirtualService default/reviews, route 0, match block 1:
/// header user-agent ~ .*testing.*; forward`, then what was done on the way.
pub fn trace_text(e: &Exchange) -> String {
    match &e.trace {
        Some(t) => {
            // A Gateway API route has rules and matches where a VirtualService has routes
            // and match blocks.
            let gateway = matches!(t.origin, RouteOrigin::GatewayRoute { .. });
            let (rule, match_) = if gateway {
                ("rule", "match")
            } else {
                ("route", "match block")
            };
            let route = match &t.route_name {
                Some(n) => format!("{rule} {} ({n})", t.route_index),
                None => format!("{rule} {}", t.route_index),
            };
            let block = match t.match_index {
                Some(i) => format!(", {match_} {i}"),
                None => String::new(),
            };
            let origin = match &t.origin {
                RouteOrigin::VirtualService => format!("VirtualService {}", t.virtual_service),
                RouteOrigin::GatewayRoute { kind, route } => format!("{kind} {route}"),
                RouteOrigin::Delegate {
                    virtual_service,
                    route_index,
                } => format!(
                    "VirtualService {}, delegated to {virtual_service} route {route_index}",
                    t.virtual_service
                ),
                RouteOrigin::DefaultRoute { service_entry } => format!(
                    "no VirtualService: the default route of {} (ServiceEntry {service_entry})",
                    t.virtual_service
                ),
            };
            let mut text = format!(
                "{origin}, {route}{block}: {}; {}",
                t.match_summary,
                t.action.as_str().replace('_', " ")
            );
            for step in &t.steps {
                text.push_str("; ");
                text.push_str(step);
            }
            if !e.flags.is_empty() {
                text.push_str(&format!("; response flags {}", e.flags));
            }
            text
        }
        None => "no route matched (the client got a 404 from the lab, response flag NR)".to_owned(),
    }
}

/// The analysis' view of one shadow's differences: its summary, and the fields that are
/// noise (`status`, `header:NAME`, `body` or a JSON field path with `*`).
struct DetailVerdicts {
    headline: String,
    noise: Vec<String>,
}

/// Most characters of a value shown on a difference line (a reordered array is shown
/// whole otherwise).
const MAX_SHOWN_VALUE: usize = 120;

fn shown_value(v: &Option<serde_json::Value>) -> String {
    let Some(v) = v else {
        return "(absent)".to_owned();
    };
    let text = v.to_string();
    match text.char_indices().nth(MAX_SHOWN_VALUE) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

fn diff_summary_ui(
    ui: &mut egui::Ui,
    diff: &Result<ResponseDiff, String>,
    verdicts: Option<&DetailVerdicts>,
) {
    // A line at a field the analysis calls noise is shown weak, and says so.
    let line = |ui: &mut egui::Ui, field: &str, text: String| {
        if verdicts.is_some_and(|v| v.noise.iter().any(|n| n == field)) {
            ui.weak(format!("{text}  (noise)"));
        } else {
            ui.label(text);
        }
    };
    match diff {
        Err(why) => {
            ui.label(format!("Not compared: {why}"));
        }
        Ok(d) if d.is_same() => {
            ui.colored_label(
                egui::Color32::from_rgb(80, 180, 100),
                "Responses are the same (after ignore rules).",
            );
        }
        Ok(d) => {
            let headline = verdicts.map_or_else(|| d.summary(), |v| v.headline.clone());
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("Differences: {}", plain_arrows(&headline)),
            );
            if let Some(s) = d.status.filter(|s| !s.ignored) {
                line(
                    ui,
                    "status",
                    format!("status: {} -> {}", s.primary, s.shadow),
                );
            }
            for h in d.headers.iter().filter(|h| !h.ignored) {
                line(
                    ui,
                    &format!("header:{}", h.name),
                    format!(
                        "header {} {}: {:?} -> {:?}",
                        h.name,
                        h.kind.as_str(),
                        h.primary,
                        h.shadow
                    ),
                );
            }
            if let BodyComparison::Json { differences } = &d.body.comparison {
                for j in differences.iter().filter(|j| !j.ignored).take(50) {
                    let (place, field) = if j.pointer.is_empty() {
                        ("/", "body")
                    } else {
                        (j.pointer.as_str(), j.field.as_str())
                    };
                    line(
                        ui,
                        field,
                        format!(
                            "body {place} {}: {} -> {}",
                            j.kind.as_str(),
                            shown_value(&j.primary),
                            shown_value(&j.shadow)
                        ),
                    );
                }
            }
            if d.body.truncated {
                ui.weak("A body was cut at the capture cap; only the captured part was compared.");
            }
        }
    }
}

fn response_head_ui(ui: &mut egui::Ui, outcome: &UpstreamOutcome, changed: &[String]) {
    match outcome {
        UpstreamOutcome::Response(r) => {
            ui.label(format!("{} in {:.1} ms", r.status, ms(r.total)));
            headers_ui(ui, &r.headers, changed);
        }
        UpstreamOutcome::Failed(f) => {
            ui.colored_label(
                ui.visuals().error_fg_color,
                format!(
                    "failed ({}) after {:.1} ms: {}",
                    f.kind.as_str(),
                    ms(f.elapsed),
                    f.detail
                ),
            );
        }
    }
}

fn headers_ui(ui: &mut egui::Ui, headers: &http::HeaderMap, changed: &[String]) {
    for (name, value) in headers {
        let text = format!("{}: {}", name, String::from_utf8_lossy(value.as_bytes()));
        if changed.iter().any(|c| c == name.as_str()) {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                egui::RichText::new(text).monospace(),
            );
        } else {
            ui.monospace(text);
        }
    }
}

/// A body's lines with the lines of the other side's diff marked: `mine` is the tag of the
/// lines only this side has.
fn body_lines_ui(
    ui: &mut egui::Ui,
    lines: &[(similar::ChangeTag, String)],
    mine: similar::ChangeTag,
    whole: &str,
) {
    if whole.is_empty() {
        ui.weak("(empty body)");
        return;
    }
    ui.add_space(4.0);
    let highlight = if mine == similar::ChangeTag::Delete {
        egui::Color32::from_rgba_unmultiplied(220, 60, 60, 60)
    } else {
        egui::Color32::from_rgba_unmultiplied(60, 200, 90, 60)
    };
    for (tag, text) in lines
        .iter()
        .filter(|(t, _)| *t == mine || *t == similar::ChangeTag::Equal)
    {
        let rich = egui::RichText::new(text).monospace();
        let rich = if *tag == mine {
            rich.background_color(highlight)
        } else {
            rich
        };
        // No wrapping: wrapped rows lose their leading spaces, and JSON needs its indent.
        ui.add(egui::Label::new(rich).extend());
    }
}

/// A body as text: decoded when compressed, pretty-printed when JSON, cut when huge.
pub fn body_text(body: &CapturedBody, headers: &http::HeaderMap) -> String {
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut decoded = Vec::new();
    let raw: &[u8] = &body.bytes;
    let bytes: &[u8] = match encoding.as_str() {
        "gzip" | "x-gzip" => {
            let ok = flate2::read::GzDecoder::new(raw)
                .take(MAX_SHOWN_BODY as u64)
                .read_to_end(&mut decoded)
                .is_ok();
            if ok { &decoded } else { raw }
        }
        "deflate" => {
            let ok = flate2::read::ZlibDecoder::new(raw)
                .take(MAX_SHOWN_BODY as u64)
                .read_to_end(&mut decoded)
                .is_ok();
            if ok { &decoded } else { raw }
        }
        "br" => {
            let ok = brotli::Decompressor::new(raw, 4096)
                .take(MAX_SHOWN_BODY as u64)
                .read_to_end(&mut decoded)
                .is_ok();
            if ok { &decoded } else { raw }
        }
        _ => raw,
    };
    let mut text = match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v) => serde_json::to_string_pretty(&v)
            .unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned()),
        Err(_) => match std::str::from_utf8(bytes) {
            Ok(s) => s.chars().take(MAX_SHOWN_BODY).collect(),
            Err(_) => format!("({} bytes of binary data)", bytes.len()),
        },
    };
    if body.truncated {
        text.push_str(&format!(
            "\n... (cut at the capture cap: {} of {} bytes captured)",
            body.bytes.len(),
            body.total_len
        ));
    }
    text
}

/// The request as a curl command line: through the proxy at `proxy` when given (with the
/// original Host header), else straight to the host.
pub fn curl_command(e: &Exchange, proxy: Option<&str>) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut parts = vec!["curl".to_owned(), "-sS".to_owned()];
    if e.request.method != http::Method::GET {
        parts.push(format!("-X {}", e.request.method));
    }
    for (name, value) in &e.request.headers {
        if name == http::header::CONTENT_LENGTH {
            continue;
        }
        let header = format!("{}: {}", name, String::from_utf8_lossy(value.as_bytes()));
        parts.push(format!("-H {}", quote(&header)));
    }
    if !e.request.body.bytes.is_empty() {
        let body = String::from_utf8_lossy(&e.request.body.bytes);
        parts.push(format!("--data-binary {}", quote(&body)));
    }
    let has_host = e.request.headers.contains_key(http::header::HOST);
    match proxy {
        Some(proxy) => {
            if !has_host {
                parts.push(format!(
                    "-H {}",
                    quote(&format!("host: {}", e.request.authority))
                ));
            }
            parts.push(quote(&format!("http://{proxy}{}", e.request.uri)));
        }
        None => parts.push(quote(&format!(
            "http://{}{}",
            e.request.authority, e.request.uri
        ))),
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::capture::PrimaryRecord;

    fn exchange(method: http::Method, uri: &str, status: u16, body: &[u8]) -> Exchange {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::HOST,
            http::HeaderValue::from_static("reviews"),
        );
        headers.insert("user-agent", http::HeaderValue::from_static("it's me"));
        Exchange {
            id: 7,
            request_id: "r-7".to_owned(),
            started_at: std::time::SystemTime::now(),
            trace: None,
            request: crate::capture::CapturedRequest {
                method,
                uri: uri.to_owned(),
                authority: "reviews".to_owned(),
                version: http::Version::HTTP_11,
                headers,
                body: CapturedBody {
                    bytes: bytes::Bytes::copy_from_slice(body),
                    total_len: body.len() as u64,
                    truncated: false,
                },
            },
            primary: Some(PrimaryRecord {
                target: Arc::from("reviews/v1"),
                endpoint: "127.0.0.1:9081".to_owned(),
                attempts: Vec::new(),
                outcome: UpstreamOutcome::Response(CapturedResponse {
                    status: http::StatusCode::from_u16(status).unwrap(),
                    headers: http::HeaderMap::new(),
                    body: CapturedBody::default(),
                    ttfb: Duration::from_millis(1),
                    total: Duration::from_millis(2),
                    version: http::Version::HTTP_11,
                }),
            }),
            shadows: Vec::new(),
            forwarded: None,
            flags: Default::default(),
        }
    }

    #[test]
    fn copy_as_curl_goes_through_the_proxy_with_the_original_host_and_body() {
        let e = exchange(http::Method::POST, "/reviews/1?x=1", 200, b"{\"a\":1}");
        let curl = curl_command(&e, Some("127.0.0.1:15001"));
        assert_eq!(
            curl,
            "curl -sS -X POST -H 'host: reviews' -H 'user-agent: it'\\''s me' \
             --data-binary '{\"a\":1}' 'http://127.0.0.1:15001/reviews/1?x=1'"
        );
    }

    #[test]
    fn the_filter_matches_method_path_status_class_and_route() {
        let e = exchange(http::Method::GET, "/reviews/3", 503, b"");
        let none = |_| false;
        let f = |f: TrafficFilter| f.matches(&e, none);
        assert!(f(TrafficFilter::default()));
        assert!(f(TrafficFilter {
            method: "get".into(),
            ..Default::default()
        }));
        assert!(!f(TrafficFilter {
            method: "POST".into(),
            ..Default::default()
        }));
        assert!(f(TrafficFilter {
            path: "views/3".into(),
            ..Default::default()
        }));
        assert!(f(TrafficFilter {
            status: "5xx".into(),
            ..Default::default()
        }));
        assert!(f(TrafficFilter {
            status: "503".into(),
            ..Default::default()
        }));
        assert!(!f(TrafficFilter {
            status: "2xx".into(),
            ..Default::default()
        }));
        assert!(f(TrafficFilter {
            route: "no route".into(),
            ..Default::default()
        }));
        assert!(!f(TrafficFilter {
            differs_only: true,
            ..Default::default()
        }));
        assert!(
            TrafficFilter {
                differs_only: true,
                ..Default::default()
            }
            .matches(&e, |id| id == 7)
        );
    }

    #[test]
    fn bodies_are_decoded_and_pretty_printed() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(br#"{"b":[1,2],"a":"x"}"#).unwrap();
        let bytes = gz.finish().unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_ENCODING,
            http::HeaderValue::from_static("gzip"),
        );
        let body = CapturedBody {
            total_len: bytes.len() as u64,
            bytes: bytes::Bytes::from(bytes),
            truncated: false,
        };
        let text = body_text(&body, &headers);
        assert!(text.contains("\"b\": [\n    1,"), "{text}");
        let cut = CapturedBody {
            bytes: bytes::Bytes::from_static(b"hello"),
            total_len: 100,
            truncated: true,
        };
        assert!(
            body_text(&cut, &http::HeaderMap::new())
                .ends_with("(cut at the capture cap: 5 of 100 bytes captured)")
        );
    }

    /// Whether a row showing `path` is laid out (inside the table's visible part).
    fn row_shown(h: &egui_kittest::Harness<'_, TrafficPanel>, path: &str) -> bool {
        use egui_kittest::kittest::Queryable as _;
        h.query_by_label(path).is_some()
    }

    #[test]
    fn follow_newest_keeps_the_newest_row_in_view_while_rows_arrive() {
        let arriving = std::rc::Rc::new(std::cell::Cell::new(true));
        let flowing = std::rc::Rc::clone(&arriving);
        let mut next = 0u64;
        let mut arrive = move |panel: &mut TrafficPanel, n: u64| {
            let rows: Vec<_> = (0..n)
                .map(|_| {
                    let mut e = exchange(http::Method::GET, &format!("/row/{next}"), 200, b"");
                    e.id = next;
                    next += 1;
                    Arc::new(e)
                })
                .collect();
            panel.push(rows, None);
        };
        let mut h = egui_kittest::Harness::builder()
            .with_size(egui::vec2(1200.0, 700.0))
            .build_ui_state(
                move |ui, panel: &mut TrafficPanel| {
                    // A few exchanges every frame, as the demo's traffic brings them.
                    if flowing.get() {
                        arrive(panel, 3);
                    }
                    TrafficView {
                        panel,
                        snapshot: None,
                        proxy: None,
                    }
                    .ui(ui);
                },
                TrafficPanel::default(),
            );
        for round in 0..10 {
            for _ in 0..15 {
                h.step();
            }
            // A scroll lands in the frame after it is asked for: one frame without arrivals,
            // then the newest row must be on screen.
            arriving.set(false);
            h.step();
            arriving.set(true);
            let newest = h.state().len() as u64 - 1;
            assert!(
                row_shown(&h, &format!("/row/{newest}")),
                "round {round}: the newest row ({newest}) is not in view"
            );
        }
        assert!(!row_shown(&h, "/row/0"), "the oldest row scrolled away");

        // Selecting a row stops following: the row stays put as more arrive.
        let newest = h.state().len() as u64 - 1;
        let path = format!("/row/{newest}");
        {
            use egui_kittest::kittest::Queryable as _;
            h.get_by_label(&path).click();
        }
        for _ in 0..60 {
            h.step();
        }
        assert!(!h.state().follow);
        assert_eq!(h.state().selected, Some(newest));
        assert!(row_shown(&h, &path), "the selected row stays in view");
    }

    #[test]
    fn the_table_keeps_its_bound_and_its_filter_in_step() {
        let mut panel = TrafficPanel::default();
        panel.filter.method = "POST".to_owned();
        let rows = (0..MAX_ROWS + 10).map(|i| {
            let method = if i % 2 == 0 {
                http::Method::POST
            } else {
                http::Method::GET
            };
            let mut e = exchange(method, "/", 200, b"");
            e.id = i as u64;
            Arc::new(e)
        });
        panel.push(rows, None);
        assert_eq!(panel.len(), MAX_ROWS);
        assert_eq!(panel.shown(), MAX_ROWS / 2);
        assert!(panel.find(9).is_none(), "the oldest rows left");
        assert!(panel.find(10).is_some());
    }
}
