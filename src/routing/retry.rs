//! A route's retry policy, compiled as Istio's `pilot/pkg/networking/core/route/retry/
//! retry.go` `ConvertPolicy` makes it, with Envoy's retry conditions and back-off.

use std::time::Duration;

use super::policy::{PolicyError, duration};
use crate::config::model::HttpRetry;
pub use crate::config::retry_on::RetryOn;

/// A route's retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub num_retries: u32,
    /// What is retried.
    pub on: RetryOn,
    /// Status codes `retriable-status-codes` retries.
    pub status_codes: Vec<u16>,
    /// Each attempt's timeout, from the moment it has a connection.
    pub per_try_timeout: Option<Duration>,
    /// A retry avoids endpoints already tried (`previous_hosts`).
    pub previous_hosts: bool,
    /// Picks per retry while looking for an endpoint not tried yet.
    pub host_selection_attempts: u32,
    /// Back-off base: retry n waits a uniform random time below `base · 2^(n-1)`, capped at
    /// ten times the base.
    pub base_interval: Duration,
}

impl RetryPolicy {
    /// Istio's default (retry.go `DefaultPolicy`): two retries on connect-failure,
    /// refused-stream, unavailable, cancelled and retriable-status-codes (with no codes:
    /// 503 is not retried since Istio 1.24), avoiding the endpoints tried, five picks.
    pub fn istio_default(consistent_hash: bool) -> Self {
        Self {
            num_retries: 2,
            on: RetryOn::CONNECT_FAILURE
                .union(RetryOn::REFUSED_STREAM)
                .union(RetryOn::GRPC_UNAVAILABLE)
                .union(RetryOn::GRPC_CANCELLED)
                .union(RetryOn::RETRIABLE_STATUS_CODES),
            status_codes: Vec::new(),
            per_try_timeout: None,
            // DefaultConsistentHashPolicy drops the previous-hosts predicate.
            previous_hosts: !consistent_hash,
            host_selection_attempts: 5,
            base_interval: Duration::from_millis(25),
        }
    }

    /// `ConvertPolicy`: `None` when retries are off (`attempts: 0`); `retries` absent gives
    /// the default.
    pub fn compile(
        retries: Option<&HttpRetry>,
        consistent_hash: bool,
    ) -> Result<Option<Self>, PolicyError> {
        let Some(r) = retries else {
            return Ok(Some(Self::istio_default(consistent_hash)));
        };
        let attempts = r.attempts.unwrap_or(0);
        if attempts <= 0 {
            return Ok(None);
        }
        let mut policy = Self::istio_default(consistent_hash);
        policy.num_retries = attempts.unsigned_abs();
        if let Some(text) = &r.retry_on {
            let (on, codes) = parse_retry_on(text)?;
            policy.on = on;
            policy.status_codes = codes;
        }
        if let Some(t) = &r.per_try_timeout {
            policy.per_try_timeout = Some(duration("perTryTimeout", t)?);
        }
        if let Some(ignore) = r.retry_ignore_previous_hosts {
            policy.previous_hosts = ignore;
        }
        if let Some(b) = &r.backoff {
            // Envoy rounds a base below 1 ms up to 1 ms.
            policy.base_interval = duration("backoff", b)?.max(Duration::from_millis(1));
        }
        Ok(Some(policy))
    }

    /// The most a retry waits: ten times the base (Istio never sets Envoy's max_interval).
    pub fn max_interval(&self) -> Duration {
        self.base_interval * 10
    }

    /// The back-off bound for retry `n` (1-based): Envoy's jittered exponential back-off
    /// draws a whole number of milliseconds below it.
    pub fn backoff_bound(&self, n: u32) -> Duration {
        let max = self.max_interval();
        let mut bound = self.base_interval;
        for _ in 1..n {
            bound = if bound < max / 2 { bound * 2 } else { max };
        }
        bound.min(max)
    }
}

/// Istio's `parseRetryOn`, with the unknown condition as a [`PolicyError`].
pub fn parse_retry_on(text: &str) -> Result<(RetryOn, Vec<u16>), PolicyError> {
    crate::config::retry_on::parse_retry_on(text).map_err(PolicyError::RetryOn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_on_splits_names_and_status_codes_as_istio() {
        // retry.go parseRetryOn: "503,reset" → retry_on "reset,retriable-status-codes", [503].
        let (on, codes) = parse_retry_on("503, reset").expect("valid");
        assert!(on.contains(RetryOn::RESET));
        assert!(on.contains(RetryOn::RETRIABLE_STATUS_CODES));
        assert_eq!(codes, [503]);
        assert!(parse_retry_on("5xx,nonsense").is_err());
    }

    #[test]
    fn the_default_policy_and_attempts_zero() {
        let d = RetryPolicy::compile(None, false)
            .expect("valid")
            .expect("retries on");
        assert_eq!(d.num_retries, 2);
        assert!(d.on.contains(RetryOn::CONNECT_FAILURE));
        assert!(
            !d.on.contains(RetryOn::FIVE_XX),
            "503 is not retried by default"
        );
        assert!(d.previous_hosts);
        let off = HttpRetry {
            attempts: Some(0),
            ..HttpRetry::default()
        };
        assert_eq!(
            RetryPolicy::compile(Some(&off), false).expect("valid"),
            None
        );
        let some = HttpRetry {
            attempts: Some(3),
            retry_on: Some("5xx".into()),
            ..HttpRetry::default()
        };
        let p = RetryPolicy::compile(Some(&some), false)
            .expect("valid")
            .expect("on");
        assert_eq!(p.num_retries, 3);
        assert!(p.on.contains(RetryOn::FIVE_XX));
        assert!(
            !p.on.contains(RetryOn::CONNECT_FAILURE),
            "retryOn replaces the conditions"
        );
    }

    #[test]
    fn backoff_bounds_double_up_to_ten_times_the_base() {
        // backoff_strategy.cc JitteredExponentialBackOffStrategy: 25, 50, 100, 200, 250, 250.
        let p = RetryPolicy::istio_default(false);
        let bounds: Vec<u128> = (1..=6).map(|n| p.backoff_bound(n).as_millis()).collect();
        assert_eq!(bounds, [25, 50, 100, 200, 250, 250]);
    }
}
