//! The engine's two small measures: when the app last looked at the view, and requests
//! per second from the proxy's growing counter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long after the app's last look the engine keeps refreshing the analysis for it.
const LOOKED_LATELY: Duration = Duration::from_secs(1);

/// When the app last read the view, so the analysis is refreshed only while it looks.
#[derive(Debug)]
pub(super) struct Demand {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl Default for Demand {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Demand {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) fn note(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    pub(super) fn recent(&self) -> bool {
        let last = self.last_ms.load(Ordering::Relaxed);
        self.now_ms().saturating_sub(last) <= LOOKED_LATELY.as_millis() as u64
    }
}

/// Measures requests per second from a growing counter.
#[derive(Debug, Default)]
pub(super) struct RateMeter {
    last: Option<(Instant, u64)>,
    rate: f64,
}

impl RateMeter {
    pub(super) fn update(&mut self, count: u64) -> f64 {
        let now = Instant::now();
        match self.last {
            Some((t, c)) if now.duration_since(t) >= Duration::from_millis(500) => {
                let dt = now.duration_since(t).as_secs_f64();
                self.rate = count.saturating_sub(c) as f64 / dt;
                self.last = Some((now, count));
            }
            Some(_) => {}
            None => self.last = Some((now, count)),
        }
        self.rate
    }
}
