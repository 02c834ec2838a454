//! Statistics, pairing and primary-versus-shadow diffs, computed off the request path.
//!
//! The lab's analysis task owns an [`Analyzer`], feeds it every finished
//! [`Exchange`](crate::capture::Exchange) with [`Analyzer::ingest`], and publishes
//! [`Analyzer::snapshot`] for the app (up to 30 times a second) and the headless report.

pub mod descriptors;
pub mod diff;
mod endpoint;
mod ignore;
mod noise;
mod route;
mod stats;
mod summary;
mod upstream;
mod verdict;
mod volatile;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::capture::{Exchange, SkipReason, UpstreamErrorKind};
use crate::routing::ActionKind;

pub use endpoint::endpoint_template;
pub use ignore::{
    DEFAULT_IGNORED_HEADERS, DIFF_IGNORE_ANNOTATION, FieldPath, GRPC_DESCRIPTORS_ANNOTATION,
    IgnoreRuleError, IgnoreRules, JsonPathPattern,
};
pub use noise::DiffAggregateRow;
pub use stats::{
    DeltaSummary, DistributionBucket, LatencySummary, SERIES_WINDOW_SECONDS, SeriesPoint,
    StatusCounts,
};
pub use summary::{
    DiffSplit, ExchangeDiffSummary, ExchangeSummaries, FieldClass, FieldRefs, FieldVerdict,
    ShadowState, ShadowSummary, VerdictTable,
};
pub use upstream::{EndpointSecond, EndpointSnapshot, OTHER_UPSTREAM_ENDPOINTS, UpstreamSnapshot};
pub use verdict::{
    NoiseThresholds, VOLATILE_SHARE, Verdict, VerdictEvidence, Volatility, wilson_lower_bound,
};

use descriptors::{GrpcDescriptors, ReflectionTable};
use route::{IngestContext, RouteAccumulator};
use stats::SideAccumulator;
use volatile::PrimaryAnswers;

/// What the analyzer is told at start (and may be told again at run time).
#[derive(Debug, Clone)]
pub struct AnalysisSettings {
    /// Rules for every route: by default the headers of [`DEFAULT_IGNORED_HEADERS`].
    pub ignore: IgnoreRules,
    /// Extra rules per VirtualService (`namespace/name`), from its
    /// [`DIFF_IGNORE_ANNOTATION`] annotation.
    pub virtual_service_rules: BTreeMap<String, IgnoreRules>,
    /// When a field counts as a real difference rather than noise.
    pub thresholds: NoiseThresholds,
    /// How many per-exchange diff summaries to keep for the traffic table.
    pub max_exchange_summaries: usize,
    /// How many sample exchange ids to keep per field path.
    pub samples_per_field: usize,
    /// The lab setting's gRPC descriptors, for every route whose VirtualService names
    /// none of its own (its annotation wins).
    pub grpc_descriptors: Option<GrpcDescriptors>,
    /// Descriptors learnt by gRPC server reflection, for calls with none of the above;
    /// `None`: reflection is off (sessions, tests).
    pub reflection: Option<Arc<ReflectionTable>>,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        Self {
            ignore: IgnoreRules::with_default_headers(),
            virtual_service_rules: BTreeMap::new(),
            thresholds: NoiseThresholds::default(),
            max_exchange_summaries: 100_000,
            samples_per_field: 5,
            grpc_descriptors: None,
            reflection: None,
        }
    }
}

impl AnalysisSettings {
    /// Adds the rules of a VirtualService's [`DIFF_IGNORE_ANNOTATION`] value.
    /// `virtual_service` is `namespace/name`, as in [`RouteTrace`](crate::routing::RouteTrace).
    pub fn add_annotation(
        &mut self,
        virtual_service: &str,
        annotation: &str,
    ) -> Result<(), IgnoreRuleError> {
        let rules = IgnoreRules::parse(annotation)?;
        self.virtual_service_rules
            .entry(virtual_service.to_owned())
            .or_default()
            .extend(&rules);
        Ok(())
    }

    /// The rules that apply to exchanges of `virtual_service`: the global ones plus its own,
    /// and the setting's gRPC descriptors when its annotation names none.
    pub fn rules_for(&self, virtual_service: Option<&str>) -> IgnoreRules {
        let mut rules = self.ignore.clone();
        if let Some(own) = virtual_service.and_then(|vs| self.virtual_service_rules.get(vs)) {
            rules.extend(own);
        }
        if rules.grpc.is_none() {
            rules.grpc.clone_from(&self.grpc_descriptors);
        }
        rules
    }

    /// The descriptors server reflection found for `exchange`'s service at its primary's
    /// endpoint; the first call for a pair asks for them (off the request path) and finds
    /// none yet.
    fn reflected(&self, exchange: &Exchange) -> Option<prost_reflect::DescriptorPool> {
        let table = self.reflection.as_ref()?;
        let (endpoint, service, target) = descriptors::reflection_key(exchange)?;
        table.pool_or_ask(endpoint, service, target)
    }

    /// How `exchange`'s gRPC messages are read now (`None`: not a gRPC call), for the
    /// Traffic detail; asks nothing.
    pub fn grpc_decode(&self, exchange: &Exchange) -> Option<descriptors::GrpcDecode> {
        let rules = self.rules_for(exchange.trace.as_ref().map(|t| &*t.virtual_service));
        descriptors::grpc_decode(exchange, rules.grpc.as_ref(), self.reflection.as_deref())
    }
}

/// Which route of the config an exchange took.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RouteKey {
    /// `namespace/name` of the VirtualService.
    pub virtual_service: Arc<str>,
    /// Index of the route in `spec.http`.
    pub route_index: usize,
    /// `spec.http[i].name`, if set.
    pub route_name: Option<Arc<str>>,
}

impl RouteKey {
    /// Display label: `default/reviews:canary` for a named route, `default/reviews:http[0]`
    /// otherwise.
    pub fn label(&self) -> String {
        match &self.route_name {
            Some(name) => format!("{}:{name}", self.virtual_service),
            None => format!("{}:http[{}]", self.virtual_service, self.route_index),
        }
    }
}

/// Statistics of one side of a route: the primary, or one mirror destination.
#[derive(Debug, Clone, Serialize)]
pub struct SideSnapshot {
    /// `primary`, or the mirror destination label (`reviews/v2`).
    pub label: String,
    /// For a mirror: it goes to the same destination as the primary (a baseline for noise).
    pub baseline: bool,
    /// Requests sent to this side (mirrors: copies sent).
    pub sent: u64,
    /// Copies not sent, by reason (mirrors only).
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Complete responses by status code and class.
    pub status: StatusCounts,
    /// Failed exchanges by kind.
    pub errors: BTreeMap<UpstreamErrorKind, u64>,
    /// Requests per destination label (the primary can be split by weight).
    pub targets: BTreeMap<String, u64>,
    /// Time to first byte of complete responses.
    pub ttfb: LatencySummary,
    /// Total time of complete responses.
    pub total: LatencySummary,
    /// Shadow minus primary total time of paired responses (mirrors only).
    pub delta: Option<DeltaSummary>,
    /// Distribution of total time, for a histogram or CDF plot.
    pub distribution: Arc<[DistributionBucket]>,
    /// One point per second over the last ten minutes.
    pub series: Arc<[SeriesPoint]>,
}

impl SideSnapshot {
    /// Failed exchanges of all kinds.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Copies not sent, all reasons.
    pub fn skipped_count(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// Statistics of one route.
#[derive(Debug, Clone, Serialize)]
pub struct RouteSnapshot {
    /// Which route.
    pub route: RouteKey,
    /// `RouteKey::label`.
    pub label: String,
    /// Exchanges that took this route.
    pub requests: u64,
    /// The primary side.
    pub primary: SideSnapshot,
    /// One side per mirror destination, in order of first appearance.
    pub mirrors: Vec<SideSnapshot>,
    /// Exchanges by what answered them: forwarded, or answered by the lab itself
    /// (redirect, direct response, fault abort, CORS preflight).
    pub actions: BTreeMap<ActionKind, u64>,
    /// Exchanges by Envoy's response flags (`UF`, `DI,FI`, ...); unflagged ones not counted.
    pub response_flags: BTreeMap<String, u64>,
    /// The primary's attempts: retries and what each endpoint went through.
    pub upstream: UpstreamSnapshot,
}

/// A plain-data view of everything analysed so far; cloning it is cheap (shared parts are
/// behind `Arc`), so the app can hold the latest one each frame.
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisSnapshot {
    /// Exchanges ingested.
    pub exchanges: u64,
    /// Exchanges that matched no route (the client got a 404 from the lab).
    pub unrouted: u64,
    /// Unix second the time series end at.
    pub now_unix_second: Option<u64>,
    /// Per-route statistics, in order of first appearance.
    pub routes: Arc<[RouteSnapshot]>,
    /// The diff aggregates table.
    pub diffs: Arc<[DiffAggregateRow]>,
    /// Thresholds the verdicts were made with.
    pub thresholds: NoiseThresholds,
    /// The global ignore rules in their text form.
    pub ignore_rules: Arc<str>,
    /// Per-exchange diff summaries, looked up with [`AnalysisSnapshot::diff_summary`].
    #[serde(skip)]
    pub summaries: ExchangeSummaries,
    /// How each field of `diffs` counts in an exchange, for reading `summaries`.
    #[serde(skip)]
    pub verdicts: Arc<VerdictTable>,
    /// The settings the analysis ran with (for [`AnalysisSnapshot::rules_for`]).
    #[serde(skip)]
    pub settings: Arc<AnalysisSettings>,
}

impl AnalysisSnapshot {
    /// Diff summary of one exchange, for the traffic table.
    pub fn diff_summary(&self, exchange_id: u64) -> Option<&ExchangeDiffSummary> {
        self.summaries.get(exchange_id)
    }

    /// The traffic table's cell for one exchange: `1 differs, 2 noise`, `same`, ...
    pub fn diff_headline(&self, exchange_id: u64) -> Option<String> {
        self.diff_summary(exchange_id)
            .map(|s| s.headline(&self.verdicts))
    }

    /// True when a candidate mirror of the exchange differs from the primary in a real
    /// difference (noise alone does not count).
    pub fn differs_really(&self, exchange_id: u64) -> bool {
        self.diff_summary(exchange_id)
            .is_some_and(|s| s.differs_really(&self.verdicts))
    }

    /// Rules to pass to [`diff::diff_exchange`] for an exchange of `virtual_service`.
    pub fn rules_for(&self, virtual_service: Option<&str>) -> IgnoreRules {
        self.settings.rules_for(virtual_service)
    }

    /// How `exchange`'s gRPC messages are read now: by name with descriptors from an
    /// annotation, the setting or server reflection, or schema-less (`None`: not gRPC).
    pub fn grpc_decode(&self, exchange: &Exchange) -> Option<descriptors::GrpcDecode> {
        self.settings.grpc_decode(exchange)
    }

    /// The descriptors to read `exchange`'s messages with now: its rules' (annotation,
    /// setting), else what server reflection found so far. Asks nothing.
    pub fn grpc_descriptors(&self, exchange: &Exchange) -> Option<GrpcDescriptors> {
        let rules = self.rules_for(exchange.trace.as_ref().map(|t| &*t.virtual_service));
        if rules.grpc.is_some() {
            return rules.grpc;
        }
        let table = self.settings.reflection.as_ref()?;
        let (endpoint, service, _) = descriptors::reflection_key(exchange)?;
        match table.state(endpoint, service)? {
            descriptors::ReflectionState::Ready(d) => Some(d),
            _ => None,
        }
    }

    /// Statistics of one route, by label.
    pub fn route(&self, label: &str) -> Option<&RouteSnapshot> {
        self.routes.iter().find(|r| r.label == label)
    }
}

/// Row name for endpoints beyond the most a route tracks (1,000).
pub const OTHER_ENDPOINTS: &str = "(other endpoints)";

/// Turns finished exchanges into statistics and diff aggregates.
#[derive(Debug)]
pub struct Analyzer {
    settings: Arc<AnalysisSettings>,
    /// Global plus per-VirtualService rules, resolved once per VirtualService.
    resolved_rules: HashMap<Arc<str>, IgnoreRules, foldhash::fast::RandomState>,
    exchanges: u64,
    unrouted: u64,
    newest_second: Option<u64>,
    routes: Vec<RouteAccumulator>,
    route_index: HashMap<RouteKey, usize>,
    /// The route of the last exchange ingested.
    last_route: Option<usize>,
    summaries: summary::SummaryStore,
    /// The next free slot of the verdict table (one per destination and endpoint).
    next_slot: u32,
    /// The primary's last answer per request, for its repeats.
    answers: PrimaryAnswers,
}

/// Unix second of a time (0 for times before the epoch).
fn unix_second(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Analyzer {
    /// A fresh analyzer.
    pub fn new(settings: AnalysisSettings) -> Self {
        let summaries = summary::SummaryStore::new(settings.max_exchange_summaries);
        Self {
            settings: Arc::new(settings),
            resolved_rules: HashMap::default(),
            exchanges: 0,
            unrouted: 0,
            newest_second: None,
            routes: Vec::new(),
            route_index: HashMap::new(),
            last_route: None,
            summaries,
            next_slot: 0,
            answers: PrimaryAnswers::default(),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &AnalysisSettings {
        &self.settings
    }

    /// Replaces the global ignore rules (the app's editor). Exchanges already ingested keep
    /// their counts, but fields the new rules ignore leave the aggregates at once.
    pub fn set_ignore_rules(&mut self, rules: IgnoreRules) {
        Arc::make_mut(&mut self.settings).ignore = rules;
        self.rules_changed();
    }

    /// Replaces the rules of one VirtualService (`namespace/name`), as from its annotation.
    pub fn set_virtual_service_rules(&mut self, virtual_service: &str, rules: IgnoreRules) {
        Arc::make_mut(&mut self.settings)
            .virtual_service_rules
            .insert(virtual_service.to_owned(), rules);
        self.rules_changed();
    }

    /// Replaces the rules of every VirtualService at once, as a reloaded config has them: a
    /// VirtualService whose annotation is gone loses its rules.
    pub fn replace_virtual_service_rules(&mut self, rules: BTreeMap<String, IgnoreRules>) {
        Arc::make_mut(&mut self.settings).virtual_service_rules = rules;
        self.rules_changed();
    }

    /// Replaces the lab setting's gRPC descriptors (`None`: no setting).
    pub fn set_grpc_descriptors(&mut self, descriptors: Option<GrpcDescriptors>) {
        Arc::make_mut(&mut self.settings).grpc_descriptors = descriptors;
        self.rules_changed();
    }

    /// Replaces the noise thresholds; verdicts are recomputed at the next snapshot.
    pub fn set_thresholds(&mut self, thresholds: NoiseThresholds) {
        Arc::make_mut(&mut self.settings).thresholds = thresholds;
    }

    fn rules_changed(&mut self) {
        self.resolved_rules.clear();
        for route in &mut self.routes {
            let rules = self.settings.rules_for(Some(&route.key.virtual_service));
            for e in route.endpoints.values_mut() {
                e.forget_ignored(&rules);
            }
        }
    }

    /// Forgets everything ingested (the app's Clear); settings stay.
    pub fn clear(&mut self) {
        *self = Self::new(AnalysisSettings::clone(&self.settings));
    }

    /// The index of `trace`'s route in `routes`, added when first seen.
    fn route_slot(&mut self, trace: &crate::routing::RouteTrace) -> usize {
        let key = RouteKey {
            virtual_service: trace.virtual_service.clone(),
            route_index: trace.route_index,
            route_name: trace.route_name.clone(),
        };
        if let Some(i) = self.route_index.get(&key) {
            return *i;
        }
        self.routes.push(RouteAccumulator::new(key.clone()));
        let i = self.routes.len() - 1;
        self.route_index.insert(key, i);
        i
    }

    /// Takes one finished exchange into account.
    pub fn ingest(&mut self, exchange: &Exchange) {
        self.exchanges += 1;
        let second = unix_second(exchange.started_at);
        self.newest_second = Some(self.newest_second.map_or(second, |n| n.max(second)));
        let Some(trace) = &exchange.trace else {
            self.unrouted += 1;
            return;
        };
        // Traffic mostly keeps to a route or a few: compare with the route of the previous
        // exchange before building a key to hash (two strings copied per exchange).
        let same_as_last = self.last_route.filter(|&i| {
            self.routes.get(i).is_some_and(|r| {
                r.key.route_index == trace.route_index
                    && r.key.virtual_service == trace.virtual_service
                    && r.key.route_name == trace.route_name
            })
        });
        let idx = match same_as_last {
            Some(i) => i,
            None => self.route_slot(trace),
        };
        self.last_route = Some(idx);
        let settings = &self.settings;
        let rules: &IgnoreRules = self
            .resolved_rules
            .entry(Arc::clone(&trace.virtual_service))
            .or_insert_with(|| settings.rules_for(Some(&trace.virtual_service)));
        // The annotation's or the setting's descriptors, else server reflection's.
        let reflected = match rules.grpc {
            Some(_) => None,
            None => self.settings.reflected(exchange),
        };
        let descriptors = rules.grpc.as_ref().map(|g| &g.pool).or(reflected.as_ref());
        let Some(route) = self.routes.get_mut(idx) else {
            return; // idx was just looked up or pushed
        };
        let mut cx = IngestContext {
            rules,
            descriptors,
            samples: self.settings.samples_per_field,
            next_slot: &mut self.next_slot,
            answers: &mut self.answers,
            route_slot: idx,
            second,
        };
        let summary = route.ingest(exchange, &mut cx);
        self.summaries.push(summary);
    }

    /// A snapshot whose time series end at the newest second seen in the traffic.
    pub fn snapshot(&self) -> AnalysisSnapshot {
        self.snapshot_ending(self.newest_second)
    }

    /// A snapshot whose time series end at `now` (the live app, so the plot keeps moving
    /// when traffic stops).
    pub fn snapshot_at(&self, now: SystemTime) -> AnalysisSnapshot {
        let now = unix_second(now);
        self.snapshot_ending(Some(self.newest_second.map_or(now, |n| n.max(now))))
    }

    fn snapshot_ending(&self, now: Option<u64>) -> AnalysisSnapshot {
        let side =
            |label: String, baseline: bool, acc: &SideAccumulator, mirror: bool| SideSnapshot {
                label,
                baseline,
                sent: acc.sent,
                skipped: acc.skipped.clone(),
                status: acc.status.clone(),
                errors: acc.errors.clone(),
                targets: acc.targets.clone(),
                ttfb: acc.ttfb.summary(),
                total: acc.total.summary(),
                delta: if mirror { acc.delta.summary() } else { None },
                distribution: acc.total.distribution().into(),
                series: now.map(|n| acc.series.points(n)).unwrap_or_default().into(),
            };
        let routes: Vec<RouteSnapshot> = self
            .routes
            .iter()
            .map(|r| RouteSnapshot {
                route: r.key.clone(),
                label: r.key.label(),
                requests: r.requests,
                primary: side("primary".to_owned(), false, &r.primary, false),
                mirrors: r
                    .mirrors
                    .iter()
                    .map(|(t, b, acc)| side(t.to_string(), *b, acc, true))
                    .collect(),
                actions: r.actions.clone(),
                response_flags: r.response_flags.clone(),
                upstream: r.upstream.snapshot(now),
            })
            .collect();
        let mut diffs = Vec::new();
        let mut verdicts = VerdictTable::default();
        for r in &self.routes {
            let label = r.key.label();
            for (endpoint, e) in &r.endpoints {
                e.rows(
                    &label,
                    endpoint,
                    &self.settings.thresholds,
                    &mut diffs,
                    &mut verdicts,
                );
            }
        }
        noise::sort_rows(&mut diffs);
        AnalysisSnapshot {
            exchanges: self.exchanges,
            unrouted: self.unrouted,
            now_unix_second: now,
            routes: routes.into(),
            diffs: diffs.into(),
            thresholds: self.settings.thresholds,
            ignore_rules: self.settings.ignore.to_string().into(),
            summaries: self.summaries.view(),
            verdicts: Arc::new(verdicts),
            settings: Arc::clone(&self.settings),
        }
    }
}
