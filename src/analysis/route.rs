//! What the analyzer accumulates per route, and how one exchange is taken into it: the
//! primary's statistics, each mirror's statistics and diff, and the primary's repeats.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::diff::{self, PreparedResponse};
use super::endpoint::endpoint_template;
use super::ignore::IgnoreRules;
use super::noise::EndpointDiffs;
use super::stats::SideAccumulator;
use super::summary::{ExchangeDiffSummary, ShadowState, ShadowSummary};
use super::upstream::UpstreamAccumulator;
use super::volatile::PrimaryAnswers;
use super::{OTHER_ENDPOINTS, RouteKey};
use crate::capture::{CapturedResponse, Exchange, ShadowOutcome, ShadowRecord, UpstreamOutcome};
use crate::routing::ActionKind;

/// Most endpoint templates tracked per route; the rest are counted under
/// [`OTHER_ENDPOINTS`] so an unbounded id space cannot exhaust memory.
const MAX_ENDPOINTS_PER_ROUTE: usize = 1000;

/// What one exchange's analysis needs beyond its route.
pub(crate) struct IngestContext<'a> {
    /// The ignore rules of the exchange's VirtualService.
    pub rules: &'a IgnoreRules,
    /// The descriptors to read its gRPC messages with, if any.
    pub descriptors: Option<&'a prost_reflect::DescriptorPool>,
    /// Sample exchange ids kept per field.
    pub samples: usize,
    /// The next free slot of the verdict table.
    pub next_slot: &'a mut u32,
    /// The primary's last answer per request.
    pub answers: &'a mut PrimaryAnswers,
    /// The route's index, part of a request's identity.
    pub route_slot: usize,
    /// Unix second the exchange started.
    pub second: u64,
}

/// Accumulated state of one route.
#[derive(Debug)]
pub(crate) struct RouteAccumulator {
    pub key: RouteKey,
    pub requests: u64,
    pub primary: SideAccumulator,
    /// Mirror sides in order of first appearance, with the baseline mark of the last record.
    pub mirrors: Vec<(Arc<str>, bool, SideAccumulator)>,
    pub endpoints: HashMap<String, EndpointDiffs, foldhash::fast::RandomState>,
    /// Exchanges by what answered them (forwarded, or the lab's own answer).
    pub actions: BTreeMap<ActionKind, u64>,
    /// Exchanges by Envoy's response flags; unflagged ones not counted.
    pub response_flags: BTreeMap<String, u64>,
    /// The primary's attempts per endpoint.
    pub upstream: UpstreamAccumulator,
}

/// Counts one answer from `target`, copying its name only the first time.
fn count_target(targets: &mut BTreeMap<String, u64>, target: &str) {
    match targets.get_mut(target) {
        Some(n) => *n += 1,
        None => {
            targets.insert(target.to_owned(), 1);
        }
    }
}

impl RouteAccumulator {
    pub(crate) fn new(key: RouteKey) -> Self {
        Self {
            key,
            requests: 0,
            primary: SideAccumulator::default(),
            mirrors: Vec::new(),
            endpoints: HashMap::default(),
            actions: BTreeMap::new(),
            response_flags: BTreeMap::new(),
            upstream: UpstreamAccumulator::default(),
        }
    }

    /// Takes one routed exchange into account and returns its diff summary.
    pub(crate) fn ingest(
        &mut self,
        exchange: &Exchange,
        cx: &mut IngestContext<'_>,
    ) -> ExchangeDiffSummary {
        self.requests += 1;
        if let Some(trace) = &exchange.trace {
            *self.actions.entry(trace.action).or_default() += 1;
        }
        if !exchange.flags.is_empty() {
            *self
                .response_flags
                .entry(exchange.flags.to_string())
                .or_default() += 1;
        }
        let primary_response = self.record_primary(exchange, cx.second);
        // The endpoint keys the mirror diffs and volatile fields: a route that never
        // mirrored needs none.
        let endpoint = if exchange.shadows.is_empty() && self.mirrors.is_empty() {
            String::new()
        } else {
            self.endpoint_of(exchange)
        };
        let path = Some(exchange.request.uri.as_str());
        let prepared_primary = primary_response.map(|r| {
            PreparedResponse::new(r, "primary")
                .for_method(path)
                .with_descriptors(cx.descriptors)
        });
        let mut shadows = Vec::with_capacity(exchange.shadows.len());
        for record in &exchange.shadows {
            let baseline = exchange
                .primary
                .as_ref()
                .is_some_and(|p| p.target == record.target);
            let state = self.record_shadow(
                record,
                baseline,
                prepared_primary.as_ref(),
                &endpoint,
                exchange.id,
                cx,
            );
            shadows.push(ShadowSummary {
                target: Arc::clone(&record.target),
                baseline,
                state,
            });
        }
        // Only routes that mirror need to know which fields are volatile.
        if !self.mirrors.is_empty()
            && let Some(prepared) = &prepared_primary
        {
            let endpoint = self.endpoints.entry(endpoint).or_default();
            cx.answers.observe(
                cx.route_slot,
                &exchange.request,
                prepared,
                &mut endpoint.repeats,
                cx.rules,
            );
        }
        ExchangeDiffSummary {
            exchange_id: exchange.id,
            shadows,
        }
    }

    /// The primary's statistics; its response when it gave a complete one (the lab's own
    /// answers are counted, never compared).
    fn record_primary<'e>(
        &mut self,
        exchange: &'e Exchange,
        second: u64,
    ) -> Option<&'e CapturedResponse> {
        let p = exchange.primary.as_ref()?;
        // The lab's own answers (a redirect, an abort) took no upstream time: their status
        // counts, their latency would only pull the primary's percentiles towards zero.
        let local = exchange
            .trace
            .as_ref()
            .is_some_and(|t| t.action != ActionKind::Forward);
        if !local {
            self.upstream.record(p, second);
        }
        let side = &mut self.primary;
        side.sent += 1;
        count_target(&mut side.targets, &p.target);
        match &p.outcome {
            UpstreamOutcome::Response(r) if local => {
                side.status.record(r.status.as_u16());
                side.series.record(second, None, r.is_error());
                None
            }
            UpstreamOutcome::Response(r) => {
                side.status.record(r.status.as_u16());
                side.ttfb.record(r.ttfb);
                side.total.record(r.total);
                side.series.record(second, Some(r.total), r.is_error());
                Some(r)
            }
            UpstreamOutcome::Failed(f) => {
                *side.errors.entry(f.kind).or_default() += 1;
                side.series.record(second, None, true);
                None
            }
        }
    }

    /// The exchange's endpoint template, or [`OTHER_ENDPOINTS`] past the bound.
    fn endpoint_of(&self, exchange: &Exchange) -> String {
        let e = endpoint_template(exchange.request.method.as_str(), &exchange.request.uri);
        if self.endpoints.len() < MAX_ENDPOINTS_PER_ROUTE || self.endpoints.contains_key(&e) {
            e
        } else {
            OTHER_ENDPOINTS.to_owned()
        }
    }

    /// One mirror record: its side's statistics and, when both answered, its diff.
    fn record_shadow(
        &mut self,
        record: &ShadowRecord,
        baseline: bool,
        primary: Option<&PreparedResponse<'_>>,
        endpoint: &str,
        exchange_id: u64,
        cx: &mut IngestContext<'_>,
    ) -> ShadowState {
        let i = match self
            .mirrors
            .iter()
            .position(|(t, _, _)| *t == record.target)
        {
            Some(i) => i,
            None => {
                self.mirrors.push((
                    Arc::clone(&record.target),
                    baseline,
                    SideAccumulator::default(),
                ));
                self.mirrors.len() - 1
            }
        };
        let Some((_, side_baseline, side)) = self.mirrors.get_mut(i) else {
            return ShadowState::PrimaryFailed; // found or pushed just above
        };
        *side_baseline = baseline;
        let r = match &record.outcome {
            ShadowOutcome::Skipped(reason) => {
                *side.skipped.entry(*reason).or_default() += 1;
                return ShadowState::Skipped(*reason);
            }
            ShadowOutcome::Sent(UpstreamOutcome::Failed(f)) => {
                side.sent += 1;
                *side.errors.entry(f.kind).or_default() += 1;
                side.series.record(cx.second, None, true);
                return ShadowState::Failed(f.kind);
            }
            ShadowOutcome::Sent(UpstreamOutcome::Response(r)) => r,
        };
        side.sent += 1;
        count_target(&mut side.targets, &record.target);
        side.status.record(r.status.as_u16());
        side.ttfb.record(r.ttfb);
        side.total.record(r.total);
        side.series.record(cx.second, Some(r.total), r.is_error());
        let Some(prepared) = primary else {
            return ShadowState::PrimaryFailed;
        };
        side.delta.record(r.total, prepared.response().total);
        let d = diff::diff_prepared(
            prepared,
            &PreparedResponse::new(r, "shadow")
                .for_method(prepared.method())
                .with_descriptors(prepared.descriptors()),
            cx.rules,
            diff::Detail::Paths,
        );
        let mut changes = d.field_changes();
        if d.status.is_some_and(|s| !s.ignored) {
            // An answer with another status (an error page) has other fields: their
            // presence and types follow from the status, which is its own difference.
            for c in &mut changes {
                c.shape = false;
            }
        }
        let diffs = match self.endpoints.get_mut(endpoint) {
            Some(e) => e,
            None => self.endpoints.entry(endpoint.to_owned()).or_default(),
        };
        let fields = diffs.record(
            &record.target,
            baseline,
            &changes,
            exchange_id,
            cx.samples,
            cx.next_slot,
        );
        ShadowState::Compared {
            status: d
                .status
                .filter(|s| !s.ignored)
                .map(|s| (s.primary, s.shadow)),
            differing_fields: u32::try_from(changes.len()).unwrap_or(u32::MAX),
            fields,
        }
    }
}
