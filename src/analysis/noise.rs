//! Diff aggregates per route, endpoint, mirror destination and field path, judged real
//! or noise by the rules of [`verdict`](super::verdict) from three sources: the candidate
//! against the primary, the baseline against the primary (a route that also mirrors to
//! the primary's own destination), and the primary against its own earlier answers to
//! identical requests ([`volatile`](super::volatile)).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;

use super::diff::FieldChange;
use super::ignore::{FieldPath, IgnoreRules};
use super::summary::{FieldClass, FieldRefs, FieldVerdict, VerdictTable};
use super::verdict::{
    FieldCounts, FieldEvidence, NoiseThresholds, Verdict, VerdictEvidence, ratio,
};
use super::volatile::RepeatCounts;

/// Most field paths tracked per destination and endpoint; a response with unbounded keys
/// (ids as object keys) must not grow the table without bound.
pub(crate) const MAX_FIELDS: usize = 512;

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
    /// Of which the shadow changed the field's type or presence, not only its value.
    pub shape_differing: u64,
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
    /// The primary's answers to repeated identical requests compared at this endpoint,
    /// when there were any.
    pub repeats: Option<u64>,
    /// Of which the primary's own answer changed at `field`.
    pub repeats_changed: Option<u64>,
    /// Real difference or noise.
    pub verdict: Verdict,
    /// The rule that made the verdict, with its figures.
    pub evidence: VerdictEvidence,
    /// A few exchange ids that differ here, oldest first.
    pub sample_exchange_ids: Vec<u64>,
}

/// Differences seen at one field path.
#[derive(Debug, Default, Clone)]
struct FieldCount {
    count: u64,
    /// Of which changed the place's type or presence.
    shape: u64,
    samples: Vec<u64>,
    /// An ignore rule now covers the field: it keeps its index (summaries point at it)
    /// but counts nowhere.
    ignored: bool,
}

/// Bit of a [`FieldRefs`] entry saying the difference changed the field's shape.
pub(crate) const SHAPE_BIT: u16 = 0x8000;

/// Comparisons of one destination (or of the baselines) against the primary. Fields keep
/// the index they were first seen at, for the per-exchange summaries.
#[derive(Debug)]
struct Comparisons {
    /// Where this comparison's verdicts go in the [`VerdictTable`].
    slot: u32,
    compared: u64,
    fields: Vec<(FieldPath, FieldCount)>,
    index: HashMap<FieldPath, u16>,
}

impl Comparisons {
    fn new(next_slot: &mut u32) -> Self {
        let slot = *next_slot;
        *next_slot = next_slot.saturating_add(1);
        Self {
            slot,
            compared: 0,
            fields: Vec::new(),
            index: HashMap::new(),
        }
    }

    fn record(&mut self, changes: &[FieldChange], exchange_id: u64, samples: usize) -> FieldRefs {
        self.compared += 1;
        // On the stack for the usual handful of fields.
        let (mut small, mut large) = ([0u16; 16], Vec::new());
        let refs: &mut [u16] = if changes.len() <= small.len() {
            &mut small
        } else {
            large.resize(changes.len(), 0);
            &mut large
        };
        let mut n = 0;
        for c in changes {
            let i = match self.index.get(&c.path) {
                Some(i) => *i,
                None if self.fields.len() >= MAX_FIELDS => continue,
                None => {
                    // Below MAX_FIELDS, well inside the bits SHAPE_BIT leaves.
                    let i = u16::try_from(self.fields.len()).unwrap_or(u16::MAX);
                    self.fields.push((c.path.clone(), FieldCount::default()));
                    self.index.insert(c.path.clone(), i);
                    i
                }
            };
            let Some((_, entry)) = self.fields.get_mut(usize::from(i)) else {
                continue; // indexed above
            };
            entry.ignored = false;
            entry.count += 1;
            entry.shape += u64::from(c.shape);
            if entry.samples.len() < samples {
                entry.samples.push(exchange_id);
            }
            if let Some(r) = refs.get_mut(n) {
                *r = if c.shape { i | SHAPE_BIT } else { i };
                n += 1;
            }
        }
        FieldRefs::new(self.slot, refs.get(..n).unwrap_or(&[]))
    }

    fn counts(&self, field: &FieldPath) -> FieldCounts {
        let f = self
            .index
            .get(field)
            .and_then(|i| self.fields.get(usize::from(*i)))
            .map(|(_, f)| f);
        FieldCounts {
            compared: self.compared,
            differing: f.map_or(0, |f| f.count),
            shape: f.map_or(0, |f| f.shape),
        }
    }

    fn forget_ignored(&mut self, rules: &IgnoreRules) {
        for (field, f) in &mut self.fields {
            if rules.ignores(field) {
                *f = FieldCount {
                    ignored: true,
                    ..FieldCount::default()
                };
            }
        }
    }

    /// The fields still counted, with their index.
    fn counted(&self) -> impl Iterator<Item = (&FieldPath, &FieldCount)> {
        self.fields
            .iter()
            .filter(|(_, f)| !f.ignored && f.count > 0)
            .map(|(p, f)| (p, f))
    }
}

/// The diffs of one endpoint of one route.
#[derive(Debug, Default)]
pub(crate) struct EndpointDiffs {
    /// Candidate destinations, by label.
    candidates: Vec<(Arc<str>, Comparisons)>,
    /// All baseline comparisons together, and the baseline destinations seen.
    baseline: Option<Comparisons>,
    baseline_targets: BTreeSet<Arc<str>>,
    /// The primary against its own earlier answers to identical requests.
    pub(crate) repeats: RepeatCounts,
}

impl EndpointDiffs {
    /// Records one compared exchange; returns where its differences are counted.
    pub(crate) fn record(
        &mut self,
        target: &Arc<str>,
        baseline: bool,
        changes: &[FieldChange],
        exchange_id: u64,
        samples: usize,
        next_slot: &mut u32,
    ) -> FieldRefs {
        if baseline {
            if !self.baseline_targets.contains(target) {
                self.baseline_targets.insert(Arc::clone(target));
            }
            return self
                .baseline
                .get_or_insert_with(|| Comparisons::new(next_slot))
                .record(changes, exchange_id, samples);
        }
        let i = match self.candidates.iter().position(|(t, _)| t == target) {
            Some(i) => i,
            None => {
                self.candidates
                    .push((Arc::clone(target), Comparisons::new(next_slot)));
                self.candidates.len() - 1
            }
        };
        match self.candidates.get_mut(i) {
            Some((_, c)) => c.record(changes, exchange_id, samples),
            None => FieldRefs::default(), // found or pushed just above
        }
    }

    /// Drops fields that `rules` now ignore.
    pub(crate) fn forget_ignored(&mut self, rules: &IgnoreRules) {
        for (_, c) in &mut self.candidates {
            c.forget_ignored(rules);
        }
        if let Some(b) = &mut self.baseline {
            b.forget_ignored(rules);
        }
        self.repeats.forget_ignored(rules);
    }

    /// Appends this endpoint's rows, and how each of its fields counts to `table`.
    pub(crate) fn rows(
        &self,
        route: &str,
        endpoint: &str,
        thresholds: &NoiseThresholds,
        out: &mut Vec<DiffAggregateRow>,
        table: &mut VerdictTable,
    ) {
        let baseline = self.baseline.as_ref().filter(|b| b.compared > 0);
        for (target, c) in &self.candidates {
            let mut verdicts = Vec::with_capacity(c.fields.len());
            for (field, f) in &c.fields {
                if f.ignored || f.count == 0 {
                    verdicts.push(FieldVerdict::ignored(field.clone()));
                    continue;
                }
                let base = baseline.map(|b| b.counts(field));
                let repeats = self.repeats.counts(field);
                let judgement = FieldEvidence {
                    candidate: FieldCounts {
                        compared: c.compared,
                        differing: f.count,
                        shape: f.shape,
                    },
                    baseline: base,
                    repeats,
                    may_be_volatile: *field != FieldPath::Status,
                }
                .judge(thresholds);
                out.push(DiffAggregateRow {
                    route: route.to_owned(),
                    endpoint: endpoint.to_owned(),
                    target: target.to_string(),
                    baseline: false,
                    field: field.clone(),
                    differing: f.count,
                    shape_differing: f.shape,
                    compared: c.compared,
                    rate: ratio(f.count, c.compared),
                    noise_differing: base.map(|b| b.differing),
                    noise_compared: base.map(|b| b.compared),
                    noise_rate: base.map(|b| ratio(b.differing, b.compared)),
                    repeats: repeats.map(|r| r.compared),
                    repeats_changed: repeats.map(|r| r.differing),
                    verdict: judgement.verdict,
                    evidence: judgement.evidence,
                    sample_exchange_ids: f.samples.clone(),
                });
                verdicts.push(FieldVerdict {
                    field: field.clone(),
                    value: FieldClass::noise_if(judgement.value_noise),
                    shape: FieldClass::noise_if(judgement.shape_noise),
                });
            }
            table.set(c.slot, verdicts);
        }
        if let Some(b) = baseline {
            self.baseline_rows(b, route, endpoint, out, table);
        }
    }

    /// The baseline's own rows: all noise, by definition.
    fn baseline_rows(
        &self,
        b: &Comparisons,
        route: &str,
        endpoint: &str,
        out: &mut Vec<DiffAggregateRow>,
        table: &mut VerdictTable,
    ) {
        let target = self
            .baseline_targets
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        for (field, f) in b.counted() {
            let rate = ratio(f.count, b.compared);
            let repeats = self.repeats.counts(field);
            out.push(DiffAggregateRow {
                route: route.to_owned(),
                endpoint: endpoint.to_owned(),
                target: target.clone(),
                baseline: true,
                field: field.clone(),
                differing: f.count,
                shape_differing: f.shape,
                compared: b.compared,
                rate,
                noise_differing: Some(f.count),
                noise_compared: Some(b.compared),
                noise_rate: Some(rate),
                repeats: repeats.map(|r| r.compared),
                repeats_changed: repeats.map(|r| r.differing),
                verdict: Verdict::Noise,
                evidence: VerdictEvidence::BaselineRow,
                sample_exchange_ids: f.samples.clone(),
            });
        }
        table.set(
            b.slot,
            b.fields
                .iter()
                .map(|(field, f)| {
                    if f.ignored {
                        FieldVerdict::ignored(field.clone())
                    } else {
                        FieldVerdict {
                            field: field.clone(),
                            value: FieldClass::Noise,
                            shape: FieldClass::Noise,
                        }
                    }
                })
                .collect(),
        );
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
