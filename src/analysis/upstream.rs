//! The primary's upstream side of a route, attempt by attempt: how many attempts the
//! requests took (retries), and per endpoint how often it was tried, how often it failed
//! and when outlier detection ejected it, second by second for the dashboard.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Serialize;

use super::stats::SERIES_WINDOW_SECONDS;
use crate::capture::{AttemptOutcome, PrimaryRecord, UpstreamOutcome};

/// Most endpoints tracked per route; attempts on others are counted under
/// [`OTHER_UPSTREAM_ENDPOINTS`].
const MAX_ENDPOINTS: usize = 256;

/// Row name for endpoints beyond the tracked ones.
pub const OTHER_UPSTREAM_ENDPOINTS: &str = "(other endpoints)";

/// One second of an endpoint's attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EndpointSecond {
    /// Unix time of the second (attempts are placed by their request's start).
    pub unix_second: u64,
    /// Attempts sent to the endpoint.
    pub attempts: u64,
    /// Of those, attempts that failed or got a 5xx.
    pub failures: u64,
    /// Times outlier detection ejected the endpoint.
    pub ejections: u64,
}

/// What the route's requests did to one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointSnapshot {
    /// `address:port`.
    pub endpoint: String,
    /// Attempts sent to it.
    pub attempts: u64,
    /// Attempts that failed or got a 5xx.
    pub failures: u64,
    /// Times outlier detection ejected it.
    pub ejections: u64,
    /// The seconds of the last ten minutes that saw an attempt, oldest first.
    pub series: Arc<[EndpointSecond]>,
}

/// The primary's attempts on one route.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpstreamSnapshot {
    /// Upstream attempts, retries included.
    pub attempts: u64,
    /// Requests that took more than one attempt.
    pub retried: u64,
    /// Picks that passed over an ejected endpoint.
    pub skipped_ejected: u64,
    /// Per endpoint, in order of first attempt.
    pub endpoints: Vec<EndpointSnapshot>,
}

#[derive(Debug)]
struct EndpointAccumulator {
    endpoint: String,
    attempts: u64,
    failures: u64,
    ejections: u64,
    seconds: VecDeque<EndpointSecond>,
}

impl EndpointAccumulator {
    fn record(&mut self, second: u64, failed: bool, ejected: bool) {
        self.attempts += 1;
        self.failures += u64::from(failed);
        self.ejections += u64::from(ejected);
        let slot = match self
            .seconds
            .iter_mut()
            .rev()
            .find(|s| s.unix_second == second)
        {
            Some(slot) => slot,
            None => {
                // Out-of-order seconds (a slow request finishing late) go in their place.
                let at = self
                    .seconds
                    .iter()
                    .rposition(|s| s.unix_second < second)
                    .map_or(0, |i| i + 1);
                self.seconds.insert(
                    at,
                    EndpointSecond {
                        unix_second: second,
                        attempts: 0,
                        failures: 0,
                        ejections: 0,
                    },
                );
                let newest = self.seconds.back().map_or(second, |s| s.unix_second);
                while self
                    .seconds
                    .front()
                    .is_some_and(|s| s.unix_second + SERIES_WINDOW_SECONDS <= newest)
                {
                    self.seconds.pop_front();
                }
                match self.seconds.iter_mut().find(|s| s.unix_second == second) {
                    Some(slot) => slot,
                    None => return, // older than the window
                }
            }
        };
        slot.attempts += 1;
        slot.failures += u64::from(failed);
        slot.ejections += u64::from(ejected);
    }
}

/// Accumulates a route's primary attempts.
#[derive(Debug, Default)]
pub(super) struct UpstreamAccumulator {
    attempts: u64,
    retried: u64,
    skipped_ejected: u64,
    endpoints: Vec<EndpointAccumulator>,
}

impl UpstreamAccumulator {
    /// Takes a forwarded primary into account; `second` is its request's start.
    pub(super) fn record(&mut self, primary: &PrimaryRecord, second: u64) {
        if primary.attempts.is_empty() {
            let failed = match &primary.outcome {
                UpstreamOutcome::Response(r) => r.status.is_server_error(),
                UpstreamOutcome::Failed(_) => true,
            };
            self.attempts += 1;
            self.endpoint(&primary.endpoint)
                .record(second, failed, false);
            return;
        }
        self.retried += u64::from(primary.attempts.len() > 1);
        for a in &primary.attempts {
            self.attempts += 1;
            self.skipped_ejected += a.skipped_ejected as u64;
            let failed = match a.outcome {
                AttemptOutcome::Status(s) => s.is_server_error(),
                AttemptOutcome::Failed(_) => true,
            };
            self.endpoint(&a.endpoint).record(second, failed, a.ejected);
        }
    }

    fn endpoint(&mut self, endpoint: &str) -> &mut EndpointAccumulator {
        let name = if self.endpoints.len() >= MAX_ENDPOINTS
            && !self.endpoints.iter().any(|e| e.endpoint == endpoint)
        {
            OTHER_UPSTREAM_ENDPOINTS
        } else {
            endpoint
        };
        let i = match self.endpoints.iter().position(|e| e.endpoint == name) {
            Some(i) => i,
            None => {
                self.endpoints.push(EndpointAccumulator {
                    endpoint: name.to_owned(),
                    attempts: 0,
                    failures: 0,
                    ejections: 0,
                    seconds: VecDeque::new(),
                });
                self.endpoints.len() - 1
            }
        };
        &mut self.endpoints[i]
    }

    /// The figures so far; endpoints in address order, so the dashboard's rows and colours
    /// and the report's list do not depend on which endpoint happened to be tried first.
    pub(super) fn snapshot(&self, now: Option<u64>) -> UpstreamSnapshot {
        let mut endpoints: Vec<EndpointSnapshot> = self
            .endpoints
            .iter()
            .map(|e| EndpointSnapshot {
                endpoint: e.endpoint.clone(),
                attempts: e.attempts,
                failures: e.failures,
                ejections: e.ejections,
                series: e
                    .seconds
                    .iter()
                    .filter(|s| now.is_none_or(|n| s.unix_second + SERIES_WINDOW_SECONDS > n))
                    .copied()
                    .collect(),
            })
            .collect();
        // The overflow row sorts after every address.
        endpoints.sort_by(|a, b| {
            let other = |e: &EndpointSnapshot| e.endpoint == OTHER_UPSTREAM_ENDPOINTS;
            (other(a), &a.endpoint).cmp(&(other(b), &b.endpoint))
        });
        UpstreamSnapshot {
            attempts: self.attempts,
            retried: self.retried,
            skipped_ejected: self.skipped_ejected,
            endpoints,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_stay_in_order_and_in_the_window() {
        let mut e = EndpointAccumulator {
            endpoint: "a".into(),
            attempts: 0,
            failures: 0,
            ejections: 0,
            seconds: VecDeque::new(),
        };
        e.record(100, false, false);
        e.record(102, true, true);
        e.record(101, false, false);
        e.record(102, false, false);
        let seconds: Vec<_> = e
            .seconds
            .iter()
            .map(|s| (s.unix_second, s.attempts))
            .collect();
        assert_eq!(seconds, [(100, 1), (101, 1), (102, 2)]);
        assert_eq!((e.attempts, e.failures, e.ejections), (4, 1, 1));
        e.record(100 + SERIES_WINDOW_SECONDS + 1, false, false);
        assert_eq!(e.seconds.front().map(|s| s.unix_second), Some(102));
        // A second older than the window is counted in the totals, not in the series.
        e.record(50, false, false);
        assert_eq!(e.seconds.front().map(|s| s.unix_second), Some(102));
        assert_eq!(e.attempts, 6);
    }
}
