//! The Traffic panel: a live table of exchanges (fast with 100,000 rows), a filter, pause,
//! and the selected exchange's request, both responses side by side with the differences
//! highlighted, its route trace, and "copy as curl". This file is the model (rows, filter,
//! selection, bounds); `table.rs` draws the filter bar and the table, `detail.rs` the
//! selected exchange, whose comparison the engine computes.

mod detail;
mod pipeline;
mod table;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::analysis::AnalysisSnapshot;
use crate::capture::{Exchange, ShadowOutcome, UpstreamOutcome};
use crate::lab::control::Comparison;

pub use detail::{curl_command, trace_text};

/// Most rows the table keeps; older ones leave as new ones arrive.
pub const MAX_ROWS: usize = 100_000;
/// Most bytes of exchanges the table keeps (by [`Exchange::approx_bytes`]), as the capture
/// ring bounds its own: a few large bodies must not hold what 100,000 small ones would.
pub const MAX_ROW_BYTES: usize = 256 * 1024 * 1024;

/// How much the table keeps, and how much may wait while it is paused (each bound alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowBounds {
    /// Most rows.
    pub max_rows: usize,
    /// Most bytes of rows.
    pub max_bytes: usize,
}

impl Default for RowBounds {
    fn default() -> Self {
        Self {
            max_rows: MAX_ROWS,
            max_bytes: MAX_ROW_BYTES,
        }
    }
}

/// Exchanges in arrival order, bounded in count and bytes; the oldest leave first.
#[derive(Debug, Default)]
struct BoundedRows {
    rows: VecDeque<Arc<Exchange>>,
    bytes: usize,
}

impl BoundedRows {
    /// Adds `e`; returns how many of the oldest left to keep the bounds.
    fn push(&mut self, e: Arc<Exchange>, bounds: RowBounds) -> usize {
        self.bytes += e.approx_bytes();
        self.rows.push_back(e);
        let mut left = 0;
        while self.rows.len() > bounds.max_rows
            || (self.bytes > bounds.max_bytes && self.rows.len() > 1)
        {
            let Some(old) = self.rows.pop_front() else {
                break;
            };
            self.bytes = self.bytes.saturating_sub(old.approx_bytes());
            left += 1;
        }
        left
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.bytes = 0;
    }
}

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
    /// The route action (`forward`, `redirect`, ..., or [`NO_ROUTE`]); empty: any.
    pub action: String,
    /// An Envoy response flag the client's answer carries (`UF`, `URX`, ...); empty: any.
    pub flag: String,
}

/// The action filter's name for exchanges no route matched.
pub const NO_ROUTE: &str = "no route";

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
        if !self.action.is_empty() {
            let action = e.trace.as_ref().map_or(NO_ROUTE, |t| t.action.as_str());
            if action != self.action {
                return false;
            }
        }
        if !self.flag.is_empty() && !e.flags.names().any(|n| n == self.flag) {
            return false;
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

/// `200 12.3 ms`, `200 grpc 13 40.1 ms` (a gRPC error in a 200), `refused 1.0 ms`, or
/// `skipped: not_sampled`.
fn outcome_text(outcome: &UpstreamOutcome) -> String {
    match outcome {
        UpstreamOutcome::Response(r) => match r.grpc_status().filter(|code| *code != 0) {
            Some(code) => format!("{} grpc {code} {:.1} ms", r.status.as_u16(), ms(r.total)),
            None => format!("{} {:.1} ms", r.status.as_u16(), ms(r.total)),
        },
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
    rows: BoundedRows,
    evicted: usize,
    bounds: RowBounds,
    /// Exchanges that arrived while paused, bounded as the rows are; they enter the table
    /// on Resume. `held_dropped` counts the oldest ones that left to keep the bound.
    held: BoundedRows,
    held_dropped: u64,
    /// Absolute sequence numbers (`evicted + position`) of the rows that pass the filter.
    filtered: Vec<usize>,
    filter_dirty: bool,
    last_filter_run: Option<Instant>,
    /// The filter.
    pub filter: TrafficFilter,
    /// While paused, new exchanges wait aside instead of entering the table.
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
    /// The engine's comparison of the selected exchange, once it arrived.
    comparison: Option<Arc<Comparison>>,
    /// The `(exchange, shadow)` last asked of the engine.
    asked: Option<(u64, usize)>,
    /// A comparison that waits for gRPC server reflection is asked again at this time, so
    /// the messages show by name once the descriptors are in; and how many more times.
    reflection_recheck: Option<(Instant, u8)>,
    /// Put the keyboard focus in the filter on the next frame (Ctrl+F).
    focus_filter: bool,
    /// The difference of the detail view the keyboard is at (F7 moves it).
    difference_at: Option<usize>,
    /// Scroll the detail to `difference_at` on the next frame.
    scroll_to_difference: bool,
}

impl Default for TrafficPanel {
    fn default() -> Self {
        Self::with_bounds(RowBounds::default())
    }
}

impl TrafficPanel {
    /// An empty panel keeping at most `bounds` of rows.
    pub fn with_bounds(bounds: RowBounds) -> Self {
        Self {
            rows: BoundedRows::default(),
            evicted: 0,
            bounds,
            held: BoundedRows::default(),
            held_dropped: 0,
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
            comparison: None,
            asked: None,
            reflection_recheck: None,
            focus_filter: false,
            difference_at: None,
            scroll_to_difference: false,
        }
    }
}

impl std::fmt::Debug for TrafficPanel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficPanel")
            .field("rows", &self.rows.rows.len())
            .field("filter", &self.filter)
            .field("paused", &self.paused)
            .field("selected", &self.selected)
            .finish_non_exhaustive()
    }
}

impl TrafficPanel {
    /// Adds exchanges that arrived since the last frame; while paused they wait aside.
    pub fn push(
        &mut self,
        exchanges: impl IntoIterator<Item = Arc<Exchange>>,
        snapshot: Option<&AnalysisSnapshot>,
    ) {
        if self.paused {
            for e in exchanges {
                self.held_dropped += self.held.push(e, self.bounds) as u64;
            }
            return;
        }
        let held = std::mem::take(&mut self.held.rows);
        self.held.bytes = 0;
        self.add_rows(held.into_iter().chain(exchanges), snapshot);
    }

    fn add_rows(
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
            let seq = self.evicted + self.rows.rows.len();
            let differs = |id| differs(snapshot, id);
            if !self.filter_dirty && self.filter.matches(&e, differs) {
                self.filtered.push(seq);
            }
            self.evicted += self.rows.push(e, self.bounds);
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
        self.rows.rows.len()
    }

    /// Bytes of the rows kept (by [`Exchange::approx_bytes`]).
    pub fn bytes(&self) -> usize {
        self.rows.bytes
    }

    /// Exchanges waiting for Resume, and how many left that wait to keep its bound.
    pub fn held(&self) -> (usize, u64) {
        (self.held.rows.len(), self.held_dropped)
    }

    /// True when no exchange has arrived yet.
    pub fn is_empty(&self) -> bool {
        self.rows.rows.is_empty()
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
        self.held.clear();
        self.held_dropped = 0;
        self.filtered.clear();
        self.evicted = 0;
        self.selected = None;
        self.comparison = None;
        self.asked = None;
    }

    /// Puts the keyboard focus in the filter on the next frame.
    pub fn focus_filter(&mut self) {
        self.focus_filter = true;
    }

    /// The selected exchange and shadow, when the engine has not been asked to compare
    /// them yet; marks them asked.
    pub fn wanted_comparison(&mut self) -> Option<(Arc<Exchange>, usize)> {
        let id = self.selected?;
        let want = (id, self.shadow_index);
        let same = self.asked == Some(want);
        let again = same
            && self
                .reflection_recheck
                .is_some_and(|(at, _)| Instant::now() >= at);
        if same && !again {
            return None;
        }
        let exchange = Arc::clone(self.find(id)?);
        if !same {
            self.difference_at = None;
            self.reflection_recheck = None;
        }
        self.asked = Some(want);
        Some((exchange, self.shadow_index))
    }

    /// Takes the engine's comparison, if it is still of the selection.
    pub fn set_comparison(&mut self, comparison: Comparison) {
        if Some((comparison.exchange_id, comparison.shadow_index)) == self.asked {
            let pending = comparison.grpc_decode.as_ref().is_some_and(|d| d.pending());
            let left = self
                .reflection_recheck
                .map_or(REFLECTION_RECHECKS, |(_, left)| left);
            self.reflection_recheck =
                (pending && left > 0).then(|| (Instant::now() + REFLECTION_RECHECK, left - 1));
            self.comparison = Some(Arc::new(comparison));
        }
    }

    /// The comparison the detail shows, when it is of the selection.
    fn current_comparison(&self) -> Option<Arc<Comparison>> {
        let c = self.comparison.as_ref()?;
        (Some(c.exchange_id) == self.selected && c.shadow_index == self.shadow_index)
            .then(|| Arc::clone(c))
    }

    /// The kept exchange with this id.
    pub fn find(&self, id: u64) -> Option<&Arc<Exchange>> {
        // Ids grow with arrival in most cases, so search from the back.
        self.rows.rows.iter().rev().find(|e| e.id == id)
    }

    fn refilter(&mut self, snapshot: Option<&AnalysisSnapshot>) {
        let filter = &self.filter;
        self.filtered = self
            .rows
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
        self.rows.rows.iter().rev().find(|e| pick(e)).map(|e| e.id)
    }

    /// Scrolls the table to the selected row on the next frame (after a filter reset).
    pub fn reveal_selected(&mut self) {
        self.filter_dirty = true;
        self.scroll_to_selected = Some(Some(egui::Align::Center));
        self.follow = false;
    }

    fn row(&self, seq: usize) -> Option<&Arc<Exchange>> {
        self.rows.rows.get(seq.checked_sub(self.evicted)?)
    }
}

/// How soon a comparison waiting for server reflection is asked again, and at most how
/// many times (reflection gives up after 2 s; a pair not asked yet waits for traffic).
const REFLECTION_RECHECK: Duration = Duration::from_millis(500);
const REFLECTION_RECHECKS: u8 = 10;

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
}
