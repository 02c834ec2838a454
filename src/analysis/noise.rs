//! Diff aggregates per route, endpoint, mirror destination and field path, and the
//! Diffy-style verdict that tells real differences from noise.
//!
//! When a route also mirrors to the primary's own destination (a baseline), every
//! difference between the primary and the baseline is noise: the same code gave two
//! different answers (timestamps, random ids, ...). A field is a real difference of a
//! candidate only where its difference rate against the candidate clearly exceeds its rate
//! against the baseline.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;

use super::ignore::{FieldPath, IgnoreRules};

/// Most field paths tracked per destination and endpoint; a response with unbounded keys
/// (ids as object keys) must not grow the table without bound.
const MAX_FIELDS: usize = 512;

/// When a field counts as a real difference (Diffy's defaults: relative 20%, absolute
/// 0.03%).
///
/// With `rate` the fraction of compared exchanges where the candidate differs from the
/// primary at a field and `noise` the same fraction for the baseline, the field is real when
/// `rate > noise`, `rate - noise > absolute` and `(rate - noise) / rate > relative`.
/// Without a baseline every difference is real.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NoiseThresholds {
    /// Share of the candidate's difference rate that noise may not explain (0.20 = 20%).
    pub relative: f64,
    /// Least excess of the candidate's rate over the noise rate (0.0003 = 0.03%).
    pub absolute: f64,
}

impl Default for NoiseThresholds {
    fn default() -> Self {
        Self {
            relative: 0.20,
            absolute: 0.0003,
        }
    }
}

impl NoiseThresholds {
    /// Verdict for a field with difference rate `rate` and noise rate `noise` (if known).
    pub fn verdict(&self, rate: f64, noise: Option<f64>) -> Verdict {
        let Some(noise) = noise else {
            return Verdict::Real;
        };
        let excess = rate - noise;
        if rate > noise && excess > self.absolute && excess / rate > self.relative {
            Verdict::Real
        } else {
            Verdict::Noise
        }
    }
}

/// Whether a field's differences matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The candidate differs here more than noise explains (or there is no baseline).
    Real,
    /// Explained by noise: the baseline differs from the primary here as often.
    Noise,
}

/// One row of the diff aggregates table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffAggregateRow {
    /// Route label (`default/reviews:http[0]`).
    pub route: String,
    /// Endpoint template (`GET /reviews/{id}`).
    pub endpoint: String,
    /// Mirror destination label; for a baseline row, the baseline destination(s).
    pub target: String,
    /// This row compares the primary with a baseline (its differences are the noise).
    pub baseline: bool,
    /// Where the responses differ.
    pub field: FieldPath,
    /// Exchanges that differ at `field`.
    pub differing: u64,
    /// Exchanges compared (both sides answered) for this endpoint and destination.
    pub compared: u64,
    /// `differing / compared`.
    pub rate: f64,
    /// Baseline exchanges that differ at `field`, when the route has a baseline.
    pub noise_differing: Option<u64>,
    /// Baseline exchanges compared.
    pub noise_compared: Option<u64>,
    /// `noise_differing / noise_compared`.
    pub noise_rate: Option<f64>,
    /// Real difference or noise.
    pub verdict: Verdict,
    /// A few exchange ids that differ here, oldest first.
    pub sample_exchange_ids: Vec<u64>,
}

/// Differences seen at one field path.
#[derive(Debug, Default, Clone)]
struct FieldCount {
    count: u64,
    samples: Vec<u64>,
}

/// Comparisons of one destination (or of the baselines) against the primary.
#[derive(Debug, Default)]
struct Comparisons {
    compared: u64,
    fields: HashMap<FieldPath, FieldCount>,
}

impl Comparisons {
    fn record(&mut self, paths: &[FieldPath], exchange_id: u64, samples: usize) {
        self.compared += 1;
        for p in paths {
            if !self.fields.contains_key(p) {
                if self.fields.len() >= MAX_FIELDS {
                    continue;
                }
                self.fields.insert(p.clone(), FieldCount::default());
            }
            let Some(entry) = self.fields.get_mut(p) else {
                continue; // inserted just above
            };
            entry.count += 1;
            if entry.samples.len() < samples {
                entry.samples.push(exchange_id);
            }
        }
    }

    fn rate(&self, field: &FieldPath) -> (u64, f64) {
        let n = self.fields.get(field).map_or(0, |f| f.count);
        (n, ratio(n, self.compared))
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// The diffs of one endpoint of one route.
#[derive(Debug, Default)]
pub(crate) struct EndpointDiffs {
    /// Candidate destinations, by label.
    candidates: Vec<(Arc<str>, Comparisons)>,
    /// All baseline comparisons together, and the baseline destinations seen.
    baseline: Comparisons,
    baseline_targets: BTreeSet<Arc<str>>,
}

impl EndpointDiffs {
    /// Records one compared exchange.
    pub(crate) fn record(
        &mut self,
        target: &Arc<str>,
        baseline: bool,
        paths: &[FieldPath],
        exchange_id: u64,
        samples: usize,
    ) {
        if baseline {
            if !self.baseline_targets.contains(target) {
                self.baseline_targets.insert(Arc::clone(target));
            }
            self.baseline.record(paths, exchange_id, samples);
            return;
        }
        let comparisons = match self.candidates.iter().position(|(t, _)| t == target) {
            Some(i) => self.candidates.get_mut(i).map(|(_, c)| c),
            None => {
                self.candidates
                    .push((Arc::clone(target), Comparisons::default()));
                self.candidates.last_mut().map(|(_, c)| c)
            }
        };
        if let Some(c) = comparisons {
            c.record(paths, exchange_id, samples);
        }
    }

    /// Drops fields that `rules` now ignore.
    pub(crate) fn forget_ignored(&mut self, rules: &IgnoreRules) {
        for (_, c) in &mut self.candidates {
            c.fields.retain(|f, _| !rules.ignores(f));
        }
        self.baseline.fields.retain(|f, _| !rules.ignores(f));
    }

    /// Appends this endpoint's rows.
    pub(crate) fn rows(
        &self,
        route: &str,
        endpoint: &str,
        thresholds: &NoiseThresholds,
        out: &mut Vec<DiffAggregateRow>,
    ) {
        let has_baseline = self.baseline.compared > 0;
        for (target, c) in &self.candidates {
            for (field, f) in &c.fields {
                let rate = ratio(f.count, c.compared);
                let noise = has_baseline.then(|| self.baseline.rate(field));
                out.push(DiffAggregateRow {
                    route: route.to_owned(),
                    endpoint: endpoint.to_owned(),
                    target: target.to_string(),
                    baseline: false,
                    field: field.clone(),
                    differing: f.count,
                    compared: c.compared,
                    rate,
                    noise_differing: noise.map(|n| n.0),
                    noise_compared: has_baseline.then_some(self.baseline.compared),
                    noise_rate: noise.map(|n| n.1),
                    verdict: thresholds.verdict(rate, noise.map(|n| n.1)),
                    sample_exchange_ids: f.samples.clone(),
                });
            }
        }
        if has_baseline {
            let target = self
                .baseline_targets
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            for (field, f) in &self.baseline.fields {
                let rate = ratio(f.count, self.baseline.compared);
                out.push(DiffAggregateRow {
                    route: route.to_owned(),
                    endpoint: endpoint.to_owned(),
                    target: target.clone(),
                    baseline: true,
                    field: field.clone(),
                    differing: f.count,
                    compared: self.baseline.compared,
                    rate,
                    noise_differing: Some(f.count),
                    noise_compared: Some(self.baseline.compared),
                    noise_rate: Some(rate),
                    verdict: Verdict::Noise,
                    sample_exchange_ids: f.samples.clone(),
                });
            }
        }
    }
}

/// Table order: route, endpoint, candidates before baselines, destination, real before
/// noise, most frequent first, then field path.
pub(crate) fn sort_rows(rows: &mut [DiffAggregateRow]) {
    rows.sort_by(|a, b| {
        (&a.route, &a.endpoint, a.baseline, &a.target, a.verdict)
            .cmp(&(&b.route, &b.endpoint, b.baseline, &b.target, b.verdict))
            .then(b.differing.cmp(&a.differing))
            .then(a.field.cmp(&b.field))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_follows_thresholds() {
        let t = NoiseThresholds::default();
        assert_eq!(t.verdict(1.0, Some(1.0)), Verdict::Noise);
        assert_eq!(t.verdict(1.0, Some(0.0)), Verdict::Real);
        assert_eq!(t.verdict(0.5, Some(0.48)), Verdict::Noise); // 4% relative
        assert_eq!(t.verdict(0.5, Some(0.3)), Verdict::Real); // 40% relative
        assert_eq!(t.verdict(0.0002, Some(0.0)), Verdict::Noise); // under 0.03% absolute
        assert_eq!(t.verdict(0.0002, None), Verdict::Real);
    }
}
