//! Latency histograms, status and error counts, and the per-second time series of one side
//! (the primary or one mirror destination) of one route.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::capture::{SkipReason, UpstreamErrorKind};

/// Highest latency the histograms resolve, in microseconds (one hour); longer values are
/// recorded as one hour rather than dropped.
const HIGHEST_MICROS: u64 = 3_600_000_000;

/// Significant figures of the run-long histograms: 0.1% resolution.
const SIGFIG: u8 = 3;

/// Significant figures of the per-second histograms: 1% is plenty for a plot and keeps
/// the open seconds small.
const SERIES_SIGFIG: u8 = 2;

/// How many seconds after a second ends its histogram stays open for exchanges that finish
/// late (an exchange is emitted only when its slowest shadow is done).
const SERIES_OPEN_SECONDS: u64 = 15;

/// Length of the sliding window of the time series.
pub const SERIES_WINDOW_SECONDS: u64 = 600;

/// A run-long latency histogram in microseconds, with the exact maximum kept aside.
#[derive(Debug, Clone)]
pub(crate) struct LatencyHistogram {
    hist: Histogram<u64>,
    max_micros: u64,
    sum_micros: u128,
}

/// Builds a bounded histogram; the bounds are constants, so failure is a programming error
/// that falls back to an auto-resizing histogram rather than panicking.
fn bounded_histogram<T: hdrhistogram::Counter>(sigfig: u8) -> Histogram<T> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, sigfig)
        .or_else(|_| Histogram::new(sigfig))
        .unwrap_or_else(|_| {
            // sigfig is 2 or 3 here, which hdrhistogram always accepts.
            unreachable!("hdrhistogram rejected sigfig {sigfig}")
        })
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            hist: bounded_histogram(SIGFIG),
            max_micros: 0,
            sum_micros: 0,
        }
    }
}

/// Saturating conversion of a duration to whole microseconds.
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Microseconds to milliseconds for display.
pub(crate) fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl LatencyHistogram {
    /// Records one latency.
    pub(crate) fn record(&mut self, d: Duration) {
        let us = micros(d).min(HIGHEST_MICROS);
        self.hist.saturating_record(us);
        self.max_micros = self.max_micros.max(us);
        self.sum_micros += u128::from(us);
    }

    /// Percentiles and maximum.
    pub(crate) fn summary(&self) -> LatencySummary {
        let count = self.hist.len();
        if count == 0 {
            return LatencySummary::default();
        }
        let q = |q: f64| ms(self.hist.value_at_quantile(q).min(self.max_micros));
        LatencySummary {
            count,
            mean_ms: ms(u64::try_from(self.sum_micros / u128::from(count)).unwrap_or(u64::MAX)),
            p50_ms: q(0.50),
            p90_ms: q(0.90),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: ms(self.max_micros),
        }
    }

    /// Buckets for a histogram or CDF plot: log-spaced, from 100 µs up to the maximum.
    pub(crate) fn distribution(&self) -> Vec<DistributionBucket> {
        if self.hist.is_empty() {
            return Vec::new();
        }
        let total = self.hist.len() as f64;
        let mut out = Vec::new();
        let mut cumulative = 0u64;
        let mut lower = 0u64;
        // Factor 1.25: about 10 buckets per decade, enough for a smooth CDF.
        for v in self.hist.iter_log(100, 1.25) {
            let upper = v.value_iterated_to();
            let count = v.count_since_last_iteration();
            cumulative += count;
            out.push(DistributionBucket {
                lower_ms: ms(lower),
                upper_ms: ms(upper),
                count,
                cumulative_fraction: cumulative as f64 / total,
            });
            lower = upper;
        }
        out
    }
}

/// Latency percentiles of one side, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Number of recorded latencies.
    pub count: u64,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest value seen (exact).
    pub max_ms: f64,
}

/// One bucket of a latency distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DistributionBucket {
    /// Lower bound (exclusive, except for the first bucket).
    pub lower_ms: f64,
    /// Upper bound (inclusive).
    pub upper_ms: f64,
    /// Latencies in this bucket.
    pub count: u64,
    /// Fraction of all latencies at or below `upper_ms`: the CDF.
    pub cumulative_fraction: f64,
}

/// Shadow-minus-primary latency of paired requests. hdrhistogram only holds non-negative
/// values, so slower and faster shadows are kept apart and merged when read.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeltaHistogram {
    slower: LatencyHistogram,
    faster: LatencyHistogram,
    sum_micros: i128,
}

impl DeltaHistogram {
    /// Records `shadow - primary`.
    pub(crate) fn record(&mut self, shadow: Duration, primary: Duration) {
        if shadow >= primary {
            let d = shadow - primary;
            self.slower.record(d);
            self.sum_micros += i128::from(micros(d));
        } else {
            let d = primary - shadow;
            self.faster.record(d);
            self.sum_micros -= i128::from(micros(d));
        }
    }

    /// Signed value at quantile `q` of the merged distribution, in microseconds.
    fn quantile(&self, q: f64) -> i64 {
        let n_fast = self.faster.hist.len();
        let n_slow = self.slower.hist.len();
        let n = n_fast + n_slow;
        // Rank in 1..=n of the value at quantile q, in the merged order: the fastest
        // shadows (most negative) first, then the slower ones ascending.
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        if rank <= n_fast {
            let from_top = n_fast - rank + 1;
            let qf = from_top as f64 / n_fast as f64;
            let v = self
                .faster
                .hist
                .value_at_quantile(qf)
                .min(self.faster.max_micros);
            -i64::try_from(v).unwrap_or(i64::MAX)
        } else {
            let qs = (rank - n_fast) as f64 / n_slow as f64;
            let v = self
                .slower
                .hist
                .value_at_quantile(qs)
                .min(self.slower.max_micros);
            i64::try_from(v).unwrap_or(i64::MAX)
        }
    }

    /// Summary of the signed distribution; `None` when nothing was paired.
    pub(crate) fn summary(&self) -> Option<DeltaSummary> {
        let n = self.faster.hist.len() + self.slower.hist.len();
        if n == 0 {
            return None;
        }
        let sms = |us: i64| us as f64 / 1000.0;
        let min = if self.faster.hist.is_empty() {
            self.slower.hist.min() as i64
        } else {
            -(self.faster.max_micros as i64)
        };
        let max = if self.slower.hist.is_empty() {
            -(self.faster.hist.min() as i64)
        } else {
            self.slower.max_micros as i64
        };
        Some(DeltaSummary {
            count: n,
            mean_ms: self.sum_micros as f64 / n as f64 / 1000.0,
            min_ms: sms(min),
            p50_ms: sms(self.quantile(0.50)),
            p90_ms: sms(self.quantile(0.90)),
            p99_ms: sms(self.quantile(0.99)),
            max_ms: sms(max),
            shadow_slower: self.slower.hist.len(),
        })
    }
}

/// Shadow-minus-primary total latency of the requests both answered, in milliseconds
/// (positive: the shadow was slower).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct DeltaSummary {
    /// Paired requests.
    pub count: u64,
    /// Mean difference.
    pub mean_ms: f64,
    /// Most negative difference (shadow fastest relative to the primary).
    pub min_ms: f64,
    /// Median difference.
    pub p50_ms: f64,
    /// 90th percentile difference.
    pub p90_ms: f64,
    /// 99th percentile difference.
    pub p99_ms: f64,
    /// Largest difference.
    pub max_ms: f64,
    /// How many paired requests the shadow answered no faster than the primary.
    pub shadow_slower: u64,
}

/// One second of the time series being accumulated.
#[derive(Debug)]
struct SeriesSecond {
    /// Unix second.
    second: u64,
    requests: u64,
    errors: u64,
    /// Latencies of the second while it is open; `None` once closed.
    hist: Option<Histogram<u32>>,
    /// Percentiles fixed when the second closed.
    closed: Option<(f64, f64, f64, f64)>,
}

impl SeriesSecond {
    fn percentiles(&self) -> Option<(f64, f64, f64, f64)> {
        if let Some(p) = self.closed {
            return Some(p);
        }
        self.hist.as_ref().and_then(hist_percentiles)
    }
}

/// p50, p90, p99 and max of a per-second histogram, in milliseconds.
fn hist_percentiles(h: &Histogram<u32>) -> Option<(f64, f64, f64, f64)> {
    if h.is_empty() {
        return None;
    }
    Some((
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
    ))
}

/// Per-second request rate, latency percentiles and error rate over a sliding window.
#[derive(Debug, Default)]
pub(crate) struct TimeSeries {
    seconds: VecDeque<SeriesSecond>,
    /// Histograms of closed seconds, kept for reuse so steady traffic allocates nothing.
    spare: Vec<Histogram<u32>>,
}

impl TimeSeries {
    /// Records one request that started in unix second `second`; `latency` is `None` for
    /// requests that got no response.
    pub(crate) fn record(&mut self, second: u64, latency: Option<Duration>, error: bool) {
        let newest = self.seconds.back().map_or(second, |s| s.second);
        if second + SERIES_WINDOW_SECONDS <= newest {
            return; // older than the window
        }
        let idx = match self.seconds.binary_search_by_key(&second, |s| s.second) {
            Ok(i) => i,
            Err(i) => {
                // A second that is already past its open period gets counts only: its
                // percentiles would be built from late stragglers alone.
                let hist = (second + SERIES_OPEN_SECONDS > newest).then(|| {
                    self.spare
                        .pop()
                        .unwrap_or_else(|| bounded_histogram(SERIES_SIGFIG))
                });
                self.seconds.insert(
                    i,
                    SeriesSecond {
                        second,
                        requests: 0,
                        errors: 0,
                        hist,
                        closed: None,
                    },
                );
                i
            }
        };
        if let Some(s) = self.seconds.get_mut(idx) {
            s.requests += 1;
            if error {
                s.errors += 1;
            }
            if let (Some(h), Some(l)) = (s.hist.as_mut(), latency) {
                h.saturating_record(micros(l).min(HIGHEST_MICROS));
            }
        }
        self.age(second.max(newest));
    }

    /// Closes seconds that can no longer receive late exchanges and drops those that left
    /// the window.
    fn age(&mut self, newest: u64) {
        while self
            .seconds
            .front()
            .is_some_and(|s| s.second + SERIES_WINDOW_SECONDS <= newest)
        {
            if let Some(mut s) = self.seconds.pop_front()
                && let Some(mut h) = s.hist.take()
            {
                h.reset();
                self.spare.push(h);
            }
        }
        // Open seconds are the newest ones: walk back from the end, close those whose open
        // period is over, and stop at the first second closed earlier.
        for s in self.seconds.iter_mut().rev() {
            if s.second + SERIES_OPEN_SECONDS > newest {
                continue;
            }
            let Some(mut h) = s.hist.take() else {
                break;
            };
            s.closed = hist_percentiles(&h);
            h.reset();
            self.spare.push(h);
        }
    }

    /// Points ready to plot, one per second from the oldest second in the window up to
    /// `now_second`; seconds without requests are present with zero requests.
    pub(crate) fn points(&self, now_second: u64) -> Vec<SeriesPoint> {
        let Some(first) = self.seconds.front().map(|s| s.second) else {
            return Vec::new();
        };
        let start = first.max(now_second.saturating_sub(SERIES_WINDOW_SECONDS - 1));
        let mut out =
            Vec::with_capacity(usize::try_from(now_second.saturating_sub(start) + 1).unwrap_or(0));
        let mut it = self.seconds.iter().peekable();
        for t in start..=now_second {
            while it.peek().is_some_and(|s| s.second < t) {
                it.next();
            }
            let s = it.peek().filter(|s| s.second == t);
            let (requests, errors, pct) = match s {
                Some(s) => (s.requests, s.errors, s.percentiles()),
                None => (0, 0, None),
            };
            out.push(SeriesPoint {
                unix_second: t,
                requests,
                error_rate: if requests == 0 {
                    0.0
                } else {
                    errors as f64 / requests as f64
                },
                p50_ms: pct.map(|p| p.0),
                p90_ms: pct.map(|p| p.1),
                p99_ms: pct.map(|p| p.2),
                max_ms: pct.map(|p| p.3),
            });
        }
        out
    }
}

/// One second of a side's time series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SeriesPoint {
    /// Unix time of the second (requests are placed by when they started).
    pub unix_second: u64,
    /// Requests that started in this second: the rate in requests per second.
    pub requests: u64,
    /// Fraction of those requests that failed or got a 5xx.
    pub error_rate: f64,
    /// Median total latency of the second's responses.
    pub p50_ms: Option<f64>,
    /// 90th percentile total latency.
    pub p90_ms: Option<f64>,
    /// 99th percentile total latency.
    pub p99_ms: Option<f64>,
    /// Largest total latency.
    pub max_ms: Option<f64>,
}

/// Counts of status codes and classes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatusCounts {
    /// Count per status code.
    pub codes: BTreeMap<u16, u64>,
    /// Count per class: index 0 is 1xx, ..., index 4 is 5xx.
    pub classes: [u64; 5],
}

impl StatusCounts {
    /// Records one status code.
    pub(crate) fn record(&mut self, code: u16) {
        *self.codes.entry(code).or_default() += 1;
        if let Some(c) = usize::from(code / 100)
            .checked_sub(1)
            .and_then(|i| self.classes.get_mut(i))
        {
            *c += 1;
        }
    }

    /// Count of responses in class `class` (1 for 1xx ... 5 for 5xx).
    pub fn class(&self, class: u16) -> u64 {
        usize::from(class)
            .checked_sub(1)
            .and_then(|i| self.classes.get(i))
            .copied()
            .unwrap_or(0)
    }
}

/// Run-long statistics of one side of one route.
#[derive(Debug, Default)]
pub(crate) struct SideAccumulator {
    /// Requests sent to this side (for a mirror: copies sent).
    pub(crate) sent: u64,
    /// Copies not sent, by reason (mirrors only).
    pub(crate) skipped: BTreeMap<SkipReason, u64>,
    /// Complete responses by status.
    pub(crate) status: StatusCounts,
    /// Failures by kind.
    pub(crate) errors: BTreeMap<UpstreamErrorKind, u64>,
    /// Requests per destination label (the primary can be split by weight).
    pub(crate) targets: BTreeMap<String, u64>,
    pub(crate) ttfb: LatencyHistogram,
    pub(crate) total: LatencyHistogram,
    /// Shadow minus primary (mirrors only).
    pub(crate) delta: DeltaHistogram,
    /// Per-second series of this side.
    pub(crate) series: TimeSeries,
}
