//! Live counters the proxy keeps on the request path: plain atomics, read as a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::capture::SkipReason;

/// Counters updated by the proxy; cheap to bump from any task.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    requests: AtomicU64,
    no_route: AtomicU64,
    local_answers: AtomicU64,
    primary_errors: AtomicU64,
    retries: AtomicU64,
    mirrored: AtomicU64,
    skipped_not_sampled: AtomicU64,
    skipped_body_too_large: AtomicU64,
    skipped_no_slot: AtomicU64,
    skipped_request_incomplete: AtomicU64,
    shadow_errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl ProxyCounters {
    pub(crate) fn request(&self) {
        bump(&self.requests);
    }

    pub(crate) fn no_route(&self) {
        bump(&self.no_route);
    }

    pub(crate) fn local_answer(&self) {
        bump(&self.local_answers);
    }

    pub(crate) fn primary_error(&self) {
        bump(&self.primary_errors);
    }

    pub(crate) fn retry(&self) {
        bump(&self.retries);
    }

    pub(crate) fn mirrored(&self) {
        bump(&self.mirrored);
    }

    pub(crate) fn shadow_error(&self) {
        bump(&self.shadow_errors);
    }

    pub(crate) fn skipped(&self, reason: SkipReason) {
        bump(match reason {
            SkipReason::NotSampled => &self.skipped_not_sampled,
            SkipReason::BodyTooLarge => &self.skipped_body_too_large,
            SkipReason::NoSlot => &self.skipped_no_slot,
            SkipReason::RequestIncomplete => &self.skipped_request_incomplete,
        });
    }

    /// The counters as plain numbers; `captures_dropped` comes from the capture hub.
    pub fn snapshot(&self, captures_dropped: u64, shadows_in_flight: u64) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            requests: get(&self.requests),
            no_route: get(&self.no_route),
            local_answers: get(&self.local_answers),
            primary_errors: get(&self.primary_errors),
            retries: get(&self.retries),
            mirrored: get(&self.mirrored),
            skipped_not_sampled: get(&self.skipped_not_sampled),
            skipped_body_too_large: get(&self.skipped_body_too_large),
            skipped_no_slot: get(&self.skipped_no_slot),
            skipped_request_incomplete: get(&self.skipped_request_incomplete),
            shadow_errors: get(&self.shadow_errors),
            shadows_in_flight,
            captures_dropped,
        }
    }
}

/// A point-in-time copy of the proxy's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CounterSnapshot {
    /// Requests received.
    pub requests: u64,
    /// Requests answered 404 because no VirtualService or route matched.
    pub no_route: u64,
    /// Requests the lab answered itself, as the sidecar would: a redirect, a direct
    /// response, a fault abort, a CORS preflight.
    pub local_answers: u64,
    /// Requests whose primary failed (the client got 502/503/504).
    pub primary_errors: u64,
    /// Retries of the primary (attempts after the first).
    pub retries: u64,
    /// Shadow copies sent.
    pub mirrored: u64,
    /// Mirrors skipped because the percentage draw said no.
    pub skipped_not_sampled: u64,
    /// Mirrors skipped because the body was above the mirror buffer limit.
    pub skipped_body_too_large: u64,
    /// Mirrors skipped because too many shadows were in flight.
    pub skipped_no_slot: u64,
    /// Mirrors skipped because the request body never arrived in full.
    pub skipped_request_incomplete: u64,
    /// Shadow copies that failed (refused, reset, timeout, ...).
    pub shadow_errors: u64,
    /// Shadow copies in flight right now.
    pub shadows_in_flight: u64,
    /// Finished exchanges a subscriber missed because its channel was full.
    pub captures_dropped: u64,
}

impl CounterSnapshot {
    /// Mirrors skipped for any reason.
    pub fn skipped(&self) -> u64 {
        self.skipped_not_sampled
            + self.skipped_body_too_large
            + self.skipped_no_slot
            + self.skipped_request_incomplete
    }

    /// How many mirrors were skipped for `reason`.
    pub fn skipped_for(&self, reason: SkipReason) -> u64 {
        match reason {
            SkipReason::NotSampled => self.skipped_not_sampled,
            SkipReason::BodyTooLarge => self.skipped_body_too_large,
            SkipReason::NoSlot => self.skipped_no_slot,
            SkipReason::RequestIncomplete => self.skipped_request_incomplete,
        }
    }
}

impl std::fmt::Display for CounterSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "requests {} (no route {}, answered locally {}, primary errors {}, retries {}), mirrored {}, skipped {} (not sampled {}, body too large {}, no slot {}, incomplete {}), shadow errors {}, captures dropped {}",
            self.requests,
            self.no_route,
            self.local_answers,
            self.primary_errors,
            self.retries,
            self.mirrored,
            self.skipped(),
            self.skipped_not_sampled,
            self.skipped_body_too_large,
            self.skipped_no_slot,
            self.skipped_request_incomplete,
            self.shadow_errors,
            self.captures_dropped
        )
    }
}
