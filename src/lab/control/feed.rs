//! The app's feed of finished exchanges: a queue the engine fills as exchanges finish and
//! the app empties once a frame, bounded in bytes as the capture ring is. The engine's
//! forwarding task always takes from its capture subscription, so the subscription never
//! fills while the app is busy or its Traffic tab paused, and no exchange is counted as a
//! dropped capture for it; when the app takes nothing for long (its window hidden), the
//! oldest waiting exchanges leave the feed and are counted apart.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::capture::Exchange;

/// How much may wait for the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedBounds {
    /// Most exchanges waiting.
    pub max_exchanges: usize,
    /// Most bytes waiting (by [`Exchange::approx_bytes`]).
    pub max_bytes: usize,
}

impl Default for FeedBounds {
    fn default() -> Self {
        Self {
            max_exchanges: 131_072,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Default)]
struct Waiting {
    exchanges: VecDeque<Arc<Exchange>>,
    bytes: usize,
    dropped: u64,
}

/// The queue between the engine's forwarding task and the app.
#[derive(Debug)]
pub(super) struct Feed {
    bounds: FeedBounds,
    waiting: Mutex<Waiting>,
}

impl Feed {
    pub(super) fn new(bounds: FeedBounds) -> Self {
        Self {
            bounds,
            waiting: Mutex::new(Waiting::default()),
        }
    }

    /// Adds finished exchanges, dropping the oldest waiting ones past the bounds.
    pub(super) fn push(&self, batch: impl IntoIterator<Item = Arc<Exchange>>) {
        let mut waiting = self.waiting.lock();
        for exchange in batch {
            waiting.bytes += exchange.approx_bytes();
            waiting.exchanges.push_back(exchange);
            while waiting.exchanges.len() > self.bounds.max_exchanges
                || (waiting.bytes > self.bounds.max_bytes && waiting.exchanges.len() > 1)
            {
                let Some(old) = waiting.exchanges.pop_front() else {
                    break;
                };
                waiting.bytes = waiting.bytes.saturating_sub(old.approx_bytes());
                waiting.dropped += 1;
            }
        }
    }

    /// Everything waiting, oldest first.
    pub(super) fn take(&self) -> Vec<Arc<Exchange>> {
        let mut waiting = self.waiting.lock();
        waiting.bytes = 0;
        waiting.exchanges.drain(..).collect()
    }

    /// Exchanges dropped so far because the app did not take them.
    pub(super) fn dropped(&self) -> u64 {
        self.waiting.lock().dropped
    }

    /// Forgets what waits (a new proxy run).
    pub(super) fn clear(&self) {
        let mut waiting = self.waiting.lock();
        waiting.exchanges.clear();
        waiting.bytes = 0;
    }
}
