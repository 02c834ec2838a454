//! Where a request's two halves (the client's body and the primary's answer) are delivered.
//!
//! A request with a shadow to send needs a task: the copy waits for the whole body and runs
//! beside the primary. A request with none (not sampled, a route without mirrors, or every
//! shadow slot taken when it arrived) needs
//! no task at all: its exchange is complete when both halves have arrived, and whichever
//! arrives second publishes it. That spares a task spawn, its wake-ups and two channels per
//! request, which was a tenth of the proxy's work in the routing-only case.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;
use std::time::SystemTime;

use tokio::sync::oneshot;

use crate::capture::{
    Attempt, CapturedRequest, Exchange, ForwardedRequest, PrimaryRecord, ResponseFlags,
    ShadowOutcome, ShadowRecord, SkipReason, UpstreamErrorKind, UpstreamFailure, UpstreamOutcome,
};
use crate::routing::{MirrorPolicy, RouteTrace};

use super::Shared;
use super::body::RequestBodyCopy;

/// A half of an exchange that can be delivered, and what stands in for it when the part
/// that should deliver it is dropped first.
pub(crate) trait Half: Sized {
    /// Stored in its place in `state`.
    fn store(self, state: &mut JoinState);
    /// What the exchange records when this half never came.
    fn missing(started_at: SystemTime) -> Self;
}

impl Half for RequestBodyCopy {
    fn store(self, state: &mut JoinState) {
        state.body = Some(self);
    }

    fn missing(_: SystemTime) -> Self {
        // Not complete: a body that never ended is not a body shadows could get.
        RequestBodyCopy::default()
    }
}

/// The primary's outcome, and what retries changed of the record made before the first
/// attempt: the endpoint that answered last, every attempt, the flags they set.
#[derive(Debug)]
pub(crate) struct PrimaryOutcome {
    pub(crate) outcome: UpstreamOutcome,
    /// `None` for a single attempt on the endpoint first picked (the common case).
    pub(crate) retried: Option<Box<Retried>>,
}

/// What retries changed.
#[derive(Debug)]
pub(crate) struct Retried {
    pub(crate) endpoint: Arc<str>,
    pub(crate) attempts: Vec<Attempt>,
    pub(crate) flags: ResponseFlags,
}

impl From<UpstreamOutcome> for PrimaryOutcome {
    fn from(outcome: UpstreamOutcome) -> Self {
        Self {
            outcome,
            retried: None,
        }
    }
}

impl Half for PrimaryOutcome {
    fn store(self, state: &mut JoinState) {
        state.primary = Some(self);
    }

    fn missing(started_at: SystemTime) -> Self {
        UpstreamOutcome::Failed(UpstreamFailure {
            kind: UpstreamErrorKind::Other,
            detail: "the proxy stopped before the primary answered".to_owned(),
            elapsed: started_at.elapsed().unwrap_or_default(),
            partial: None,
        })
        .into()
    }
}

/// Where one half goes: the exchange task's channel, or the join of a request without
/// shadows. Dropped unsent, a join gets [`Half::missing`] (a channel's receiver sees the
/// sender gone and does the same).
pub(crate) struct Deliver<T: Half>(Option<Target<T>>);

enum Target<T> {
    Channel(oneshot::Sender<T>),
    Join(Arc<ExchangeJoin>),
}

impl<T: Half> std::fmt::Debug for Deliver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Some(Target::Channel(_)) => "Deliver::Channel",
            Some(Target::Join(_)) => "Deliver::Join",
            None => "Deliver::Sent",
        })
    }
}

impl<T: Half> Deliver<T> {
    pub(crate) fn channel(sender: oneshot::Sender<T>) -> Self {
        Self(Some(Target::Channel(sender)))
    }

    pub(super) fn join(join: &Arc<ExchangeJoin>) -> Self {
        Self(Some(Target::Join(Arc::clone(join))))
    }

    /// Delivers `value`.
    pub(crate) fn send(mut self, value: T) {
        match self.0.take() {
            // The exchange task is gone only when the lab is shutting down.
            Some(Target::Channel(sender)) => drop(sender.send(value)),
            Some(Target::Join(join)) => join.put(value),
            None => {}
        }
    }
}

impl<T: Half> Drop for Deliver<T> {
    fn drop(&mut self) {
        if let Some(Target::Join(join)) = self.0.take() {
            let missing = T::missing(join.started_at);
            join.put(missing);
        }
    }
}

/// A request without shadows, waiting for its body and its primary's answer.
pub(super) struct ExchangeJoin {
    shared: Arc<Shared>,
    /// A copy of the record's, for the halves that never came once the record is gone.
    started_at: SystemTime,
    /// Which mirrors drew a copy; with `no_slot`, those were skipped for want of a slot.
    sampled: Vec<bool>,
    no_slot: bool,
    state: Mutex<JoinState>,
}

/// The record so far; published once both halves are in.
pub(crate) struct JoinState {
    record: Option<ExchangeRecord>,
    body: Option<RequestBodyCopy>,
    primary: Option<PrimaryOutcome>,
}

/// What is known of a routed request before its body and its primary's answer arrive:
/// the part of its [`Exchange`] both the exchange task and the join start from.
pub(super) struct ExchangeRecord {
    pub(super) id: u64,
    pub(super) request_id: String,
    pub(super) started_at: SystemTime,
    pub(super) trace: RouteTrace,
    pub(super) request: CapturedRequest,
    pub(super) primary_target: Arc<str>,
    pub(super) primary_endpoint: Arc<str>,
    pub(super) mirrors: Arc<[MirrorPolicy]>,
    /// What the primary was sent, when the route changed the request.
    pub(super) forwarded: Option<Arc<ForwardedRequest>>,
    /// Flags the filters set before the router (`DI`).
    pub(super) flags: ResponseFlags,
}

impl ExchangeRecord {
    /// The finished exchange, with the primary's outcome and one record per mirror.
    pub(super) fn finish(self, primary: PrimaryOutcome, shadows: Vec<ShadowRecord>) -> Exchange {
        let PrimaryOutcome { outcome, retried } = primary;
        let mut flags = match &outcome {
            UpstreamOutcome::Failed(failure) => self.flags.union(failure.kind.response_flag()),
            UpstreamOutcome::Response(_) => self.flags,
        };
        let (endpoint, attempts) = match retried {
            Some(r) => {
                flags = flags.union(r.flags);
                (r.endpoint, r.attempts)
            }
            None => (self.primary_endpoint, Vec::new()),
        };
        Exchange {
            tunnel: None,
            id: self.id,
            request_id: self.request_id,
            started_at: self.started_at,
            trace: Some(self.trace),
            request: self.request,
            primary: Some(PrimaryRecord {
                target: self.primary_target,
                endpoint,
                attempts,
                outcome,
            }),
            forwarded: self.forwarded,
            shadows,
            flags,
        }
    }
}

/// The record of a mirror that sent no copy, and why.
pub(super) fn skipped(target: Arc<str>, reason: SkipReason) -> ShadowRecord {
    ShadowRecord {
        target,
        endpoint: None,
        outcome: ShadowOutcome::Skipped(reason),
    }
}

impl ExchangeJoin {
    /// A join for `record`; counts it in flight until it is published. `sampled` says which
    /// mirrors drew a copy (none, unless `no_slot`: every shadow slot was taken).
    pub(super) fn new(
        shared: Arc<Shared>,
        record: ExchangeRecord,
        sampled: Vec<bool>,
        no_slot: bool,
    ) -> Arc<Self> {
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        Arc::new(Self {
            shared,
            started_at: record.started_at,
            sampled,
            no_slot,
            state: Mutex::new(JoinState {
                record: Some(record),
                body: None,
                primary: None,
            }),
        })
    }

    fn put<T: Half>(&self, value: T) {
        // Only whole values are stored: a panic elsewhere leaves nothing torn.
        let mut state = self.state.lock();
        value.store(&mut state);
        if state.body.is_some() && state.primary.is_some() {
            self.publish(&mut state);
        }
    }

    /// Publishes the exchange once both halves are in: the body captured, one skipped
    /// record per mirror. Made and published where its parts lie: taken out of the state
    /// and handed back, they were copied several more times for every request.
    fn publish(&self, state: &mut JoinState) {
        let (Some(mut record), Some(body), Some(primary)) =
            (state.record.take(), state.body.take(), state.primary.take())
        else {
            return;
        };
        let shared = &self.shared;
        record.request.body = body.captured(shared.settings.capture_body_cap);
        let shadows = record
            .mirrors
            .iter()
            .enumerate()
            .map(|(i, policy)| {
                let reason = if self.no_slot && self.sampled.get(i).copied().unwrap_or(false) {
                    SkipReason::NoSlot
                } else {
                    SkipReason::NotSampled
                };
                shared.counters.skipped(reason);
                skipped(Arc::clone(&policy.upstream.label), reason)
            })
            .collect();
        shared.publish(record.finish(primary, shadows));
    }
}
