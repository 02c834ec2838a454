//! The JSON report `mirrorlab run` writes at exit. Its shape is documented in
//! docs/REPORT.md and docs/report.schema.json; bump [`REPORT_SCHEMA_VERSION`] on any
//! change that is not a pure addition.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use crate::analysis::{
    AnalysisSnapshot, DeltaSummary, DiffAggregateRow, LatencySummary, NoiseThresholds,
    SideSnapshot, StatusCounts,
};

/// Version of the report's shape.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Serialising failed (not expected for this plain data).
    #[error("cannot serialise the report: {0}")]
    Json(#[from] serde_json::Error),
    /// The file could not be written.
    #[error(
        "cannot write the report to {path}: {source}; check the directory exists and is writable"
    )]
    Io {
        /// Where the report was to go.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Facts about the run that the analysis does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    /// The config file(s) the lab ran with.
    pub config: Vec<PathBuf>,
    /// Address the proxy listened on.
    pub listen: Option<String>,
    /// When the run started.
    pub started_at: SystemTime,
    /// When the run ended.
    pub ended_at: SystemTime,
    /// `--seed`, if given.
    pub seed: Option<u64>,
}

impl RunInfo {
    /// A run that started at `started_at` and ends now, with nothing else known.
    pub fn ending_now(started_at: SystemTime) -> Self {
        Self {
            config: Vec::new(),
            listen: None,
            started_at,
            ended_at: SystemTime::now(),
            seed: None,
        }
    }
}

/// The run section of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSection {
    /// Config files.
    pub config: Vec<String>,
    /// Listen address.
    pub listen: Option<String>,
    /// RFC 3339 start time (UTC).
    pub started_at: String,
    /// RFC 3339 end time (UTC).
    pub ended_at: String,
    /// Seconds between start and end.
    pub duration_seconds: f64,
    /// `--seed`, if given.
    pub seed: Option<u64>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Number of responses measured.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl From<&LatencySummary> for Latency {
    fn from(s: &LatencySummary) -> Self {
        Self {
            count: s.count,
            p50: s.p50_ms,
            p90: s.p90_ms,
            p99: s.p99_ms,
            p999: s.p999_ms,
            max: s.max_ms,
            mean: s.mean_ms,
        }
    }
}

/// Time to first byte and total time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyPair {
    /// Time to first byte.
    pub ttfb: Latency,
    /// Total time.
    pub total: Latency,
}

/// Status codes as the report writes them: string keys, as JSON objects need.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusSection {
    /// `"200": 17`.
    pub codes: BTreeMap<String, u64>,
    /// `"2xx": 17`.
    pub classes: BTreeMap<String, u64>,
}

impl From<&StatusCounts> for StatusSection {
    fn from(s: &StatusCounts) -> Self {
        Self {
            codes: s.codes.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
            classes: (1u16..=5)
                .map(|c| (format!("{c}xx"), s.class(c)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

/// The primary side of a route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrimarySection {
    /// Requests forwarded.
    pub sent: u64,
    /// Requests per destination (weighted routes split).
    pub destinations: BTreeMap<String, u64>,
    /// Complete responses by status.
    pub status: StatusSection,
    /// Failures by kind (`refused`, `reset`, `timeout`, `protocol`, `dns`, `other`).
    pub errors: BTreeMap<String, u64>,
    /// Latency of complete responses.
    pub latency_ms: LatencyPair,
    /// Upstream attempts, retries included.
    pub attempts: u64,
    /// Requests that took more than one attempt.
    pub retried: u64,
    /// Per endpoint tried, in order of first attempt.
    pub endpoints: Vec<EndpointSection>,
}

/// What a route's primary requests did to one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointSection {
    /// `address:port`.
    pub endpoint: String,
    /// Attempts sent to it.
    pub attempts: u64,
    /// Attempts that failed or got a 5xx.
    pub failures: u64,
    /// Times outlier detection ejected it.
    pub ejections: u64,
}

/// One mirror destination of a route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MirrorSection {
    /// Destination label.
    pub target: String,
    /// Goes to the primary's own destination (noise baseline).
    pub baseline: bool,
    /// Copies sent.
    pub sent: u64,
    /// Copies not sent, by reason (`not_sampled`, `body_too_large`, `no_slot`).
    pub skipped: BTreeMap<String, u64>,
    /// Complete responses by status.
    pub status: StatusSection,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// Latency of complete responses.
    pub latency_ms: LatencyPair,
    /// Shadow minus primary total time of paired responses.
    pub shadow_minus_primary_ms: Option<DeltaSummary>,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteSection {
    /// Route label, `namespace/name:route-name` or `namespace/name:http[i]`.
    pub route: String,
    /// `namespace/name` of the VirtualService.
    pub virtual_service: String,
    /// Index in `spec.http`.
    pub route_index: usize,
    /// `spec.http[i].name`.
    pub route_name: Option<String>,
    /// Requests that took this route.
    pub requests: u64,
    /// The primary.
    pub primary: PrimarySection,
    /// Mirror destinations.
    pub mirrors: Vec<MirrorSection>,
    /// Requests by what answered them (`forward`, `redirect`, `direct_response`,
    /// `fault_abort`, `cors_preflight`).
    pub actions: BTreeMap<String, u64>,
    /// Requests by Envoy's response flags (`UF`, `UT`, `DI,FI`, ...).
    pub response_flags: BTreeMap<String, u64>,
}

/// Totals over the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Totals {
    /// Exchanges seen.
    pub exchanges: u64,
    /// Exchanges that matched no route.
    pub unrouted: u64,
    /// Diff rows marked real.
    pub real_differences: usize,
    /// Diff rows marked noise.
    pub noise_differences: usize,
    /// Exchanges by how their candidates' differences count, as the Traffic list shows them.
    pub exchange_differences: ExchangeDifferences,
}

/// Exchanges counted by their candidate mirrors' differences, real and noise apart, by the
/// verdicts at the end of the run (the Traffic list's `1 differs, 2 noise`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExchangeDifferences {
    /// Exchange summaries these counts cover: the analysis keeps the most recent 100,000
    /// (by default), so this is less than `exchanges` only in a longer run.
    pub counted: u64,
    /// Of which at least one candidate mirror was compared with the primary.
    pub compared: u64,
    /// Of those, a candidate differs in at least one real difference.
    pub real: u64,
    /// Differences, all of them noise.
    pub noise_only: u64,
    /// No difference at all (after ignore rules).
    pub same: u64,
}

impl ExchangeDifferences {
    /// Counts the summaries of `snapshot`.
    pub fn of(snapshot: &AnalysisSnapshot) -> Self {
        let mut out = Self::default();
        for summary in snapshot.summaries.iter() {
            out.counted += 1;
            let splits: Vec<_> = summary
                .shadows
                .iter()
                .filter(|s| !s.baseline)
                .filter_map(|s| s.split(&snapshot.verdicts))
                .collect();
            if splits.is_empty() {
                continue;
            }
            out.compared += 1;
            if splits.iter().any(|s| s.real > 0) {
                out.real += 1;
            } else if splits.iter().any(|s| s.noise > 0) {
                out.noise_only += 1;
            } else {
                out.same += 1;
            }
        }
        out
    }
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Version of mirrorlab that wrote it.
    pub mirrorlab_version: String,
    /// The run.
    pub run: RunSection,
    /// Totals.
    pub totals: Totals,
    /// Per route.
    pub routes: Vec<RouteSection>,
    /// The thresholds that made the verdicts.
    pub noise_thresholds: NoiseThresholds,
    /// Global ignore rules, one entry per item, in annotation syntax.
    pub ignore_rules: Vec<String>,
    /// Extra rules per VirtualService (from its `mirrorlab.dev/diff-ignore` annotation).
    pub virtual_service_ignore_rules: BTreeMap<String, Vec<String>>,
    /// The diff aggregates.
    pub diffs: Vec<DiffAggregateRow>,
}

fn latency_pair(side: &SideSnapshot) -> LatencyPair {
    LatencyPair {
        ttfb: Latency::from(&side.ttfb),
        total: Latency::from(&side.total),
    }
}

impl Report {
    /// Builds the report from the final analysis snapshot.
    pub fn build(snapshot: &AnalysisSnapshot, run: &RunInfo) -> Self {
        let routes = snapshot
            .routes
            .iter()
            .map(|r| RouteSection {
                route: r.label.clone(),
                virtual_service: r.route.virtual_service.to_string(),
                route_index: r.route.route_index,
                route_name: r.route.route_name.as_deref().map(str::to_owned),
                requests: r.requests,
                primary: PrimarySection {
                    sent: r.primary.sent,
                    destinations: r.primary.targets.clone(),
                    status: StatusSection::from(&r.primary.status),
                    errors: r
                        .primary
                        .errors
                        .iter()
                        .map(|(k, n)| (k.as_str().to_owned(), *n))
                        .collect(),
                    latency_ms: latency_pair(&r.primary),
                    attempts: r.upstream.attempts,
                    retried: r.upstream.retried,
                    endpoints: r
                        .upstream
                        .endpoints
                        .iter()
                        .map(|e| EndpointSection {
                            endpoint: e.endpoint.clone(),
                            attempts: e.attempts,
                            failures: e.failures,
                            ejections: e.ejections,
                        })
                        .collect(),
                },
                mirrors: r
                    .mirrors
                    .iter()
                    .map(|m| MirrorSection {
                        target: m.label.clone(),
                        baseline: m.baseline,
                        sent: m.sent,
                        skipped: m
                            .skipped
                            .iter()
                            .map(|(k, n)| (k.as_str().to_owned(), *n))
                            .collect(),
                        status: StatusSection::from(&m.status),
                        errors: m
                            .errors
                            .iter()
                            .map(|(k, n)| (k.as_str().to_owned(), *n))
                            .collect(),
                        latency_ms: latency_pair(m),
                        shadow_minus_primary_ms: m.delta,
                    })
                    .collect(),
                actions: r
                    .actions
                    .iter()
                    .map(|(k, n)| (k.as_str().to_owned(), *n))
                    .collect(),
                response_flags: r.response_flags.clone(),
            })
            .collect();
        let diffs: Vec<DiffAggregateRow> = snapshot.diffs.to_vec();
        let real = diffs
            .iter()
            .filter(|d| d.verdict == crate::analysis::Verdict::Real)
            .count();
        Report {
            schema_version: REPORT_SCHEMA_VERSION,
            mirrorlab_version: env!("CARGO_PKG_VERSION").to_owned(),
            run: RunSection {
                config: run.config.iter().map(|p| p.display().to_string()).collect(),
                listen: run.listen.clone(),
                started_at: super::rfc3339(run.started_at),
                ended_at: super::rfc3339(run.ended_at),
                duration_seconds: run
                    .ended_at
                    .duration_since(run.started_at)
                    .map_or(0.0, |d| d.as_secs_f64()),
                seed: run.seed,
            },
            totals: Totals {
                exchanges: snapshot.exchanges,
                unrouted: snapshot.unrouted,
                real_differences: real,
                noise_differences: diffs.len() - real,
                exchange_differences: ExchangeDifferences::of(snapshot),
            },
            routes,
            noise_thresholds: snapshot.thresholds,
            ignore_rules: snapshot
                .ignore_rules
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            virtual_service_ignore_rules: snapshot
                .settings
                .virtual_service_rules
                .iter()
                .map(|(vs, rules)| {
                    let text = rules.to_string();
                    (vs.clone(), text.lines().map(str::to_owned).collect())
                })
                .collect(),
            diffs,
        }
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, ReportError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Writes the report as pretty-printed JSON to `path`.
    pub fn write_to(&self, path: &Path) -> Result<(), ReportError> {
        let json = self.to_json()?;
        std::fs::write(path, json + "\n").map_err(|source| ReportError::Io {
            path: path.to_owned(),
            source,
        })
    }
}
