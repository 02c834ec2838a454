//! Where finished exchanges go: a ring buffer bounded in count and bytes (the UI's traffic
//! table reads it) and bounded channels to subscribers (the analysis task).
//!
//! Publishing never waits: the store evicts its oldest records, and a subscriber whose
//! channel is full misses the exchange, which is counted as a dropped capture.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};

use tokio::sync::mpsc;

use super::Exchange;

/// Limits of the capture ring buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreBounds {
    /// Most exchanges kept.
    pub max_exchanges: usize,
    /// Most bytes kept (approximate, see [`Exchange::approx_bytes`]).
    pub max_bytes: usize,
}

impl Default for StoreBounds {
    fn default() -> Self {
        Self {
            max_exchanges: 20_000,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Default)]
struct Ring {
    exchanges: VecDeque<(Arc<Exchange>, usize)>,
    bytes: usize,
    evicted: u64,
}

/// The ring buffer of recent exchanges, oldest first.
#[derive(Debug)]
pub struct CaptureStore {
    bounds: StoreBounds,
    ring: Mutex<Ring>,
}

impl CaptureStore {
    /// An empty store with the given bounds.
    pub fn new(bounds: StoreBounds) -> Self {
        Self {
            bounds,
            ring: Mutex::new(Ring::default()),
        }
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock()
    }

    /// Adds an exchange, evicting the oldest ones until both bounds hold again.
    pub fn push(&self, exchange: Arc<Exchange>) {
        let size = exchange.approx_bytes();
        let mut ring = self.ring();
        ring.exchanges.push_back((exchange, size));
        ring.bytes += size;
        while ring.exchanges.len() > self.bounds.max_exchanges
            || (ring.bytes > self.bounds.max_bytes && ring.exchanges.len() > 1)
        {
            match ring.exchanges.pop_front() {
                Some((_, evicted_size)) => {
                    ring.bytes -= evicted_size;
                    ring.evicted += 1;
                }
                None => break,
            }
        }
    }

    /// How many exchanges are kept now.
    pub fn len(&self) -> usize {
        self.ring().exchanges.len()
    }

    /// True when no exchange is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate bytes kept now.
    pub fn bytes(&self) -> usize {
        self.ring().bytes
    }

    /// How many exchanges were evicted to keep within the bounds since start or `clear`.
    pub fn evicted(&self) -> u64 {
        self.ring().evicted
    }

    /// The bounds this store keeps.
    pub fn bounds(&self) -> StoreBounds {
        self.bounds
    }

    /// Up to `limit` most recent exchanges, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<Arc<Exchange>> {
        let ring = self.ring();
        let skip = ring.exchanges.len().saturating_sub(limit);
        ring.exchanges
            .iter()
            .skip(skip)
            .map(|(e, _)| Arc::clone(e))
            .collect()
    }

    /// Kept exchanges whose id is greater than `after_id`, oldest first (incremental reads).
    pub fn since(&self, after_id: u64) -> Vec<Arc<Exchange>> {
        // Exchanges finish out of order (a slow shadow holds one back), so filter by id
        // rather than by position.
        let mut out: Vec<Arc<Exchange>> = self
            .ring()
            .exchanges
            .iter()
            .filter(|(e, _)| e.id > after_id)
            .map(|(e, _)| Arc::clone(e))
            .collect();
        out.sort_by_key(|e| e.id);
        out
    }

    /// The exchange with this id, if it is still kept.
    pub fn get(&self, id: u64) -> Option<Arc<Exchange>> {
        self.ring()
            .exchanges
            .iter()
            .find(|(e, _)| e.id == id)
            .map(|(e, _)| Arc::clone(e))
    }

    /// Forgets every kept exchange.
    pub fn clear(&self) {
        let mut ring = self.ring();
        ring.exchanges.clear();
        ring.bytes = 0;
        ring.evicted = 0;
    }
}

/// Fans finished exchanges out to the store and to subscribers, never blocking.
#[derive(Debug)]
pub struct CaptureHub {
    store: CaptureStore,
    subscribers: Mutex<Vec<mpsc::Sender<Arc<Exchange>>>>,
    dropped: AtomicU64,
    published: AtomicU64,
}

impl CaptureHub {
    /// A hub with an empty store of the given bounds and no subscribers.
    pub fn new(bounds: StoreBounds) -> Self {
        Self {
            store: CaptureStore::new(bounds),
            subscribers: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            published: AtomicU64::new(0),
        }
    }

    /// The ring buffer of recent exchanges.
    pub fn store(&self) -> &CaptureStore {
        &self.store
    }

    /// A new subscription: every exchange published from now on, as long as the receiver
    /// keeps up; when its `capacity` is full, exchanges are dropped and counted.
    pub fn subscribe(&self, capacity: usize) -> mpsc::Receiver<Arc<Exchange>> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.subscribers.lock().push(tx);
        rx
    }

    /// Stores the exchange and offers it to every subscriber without waiting.
    pub fn publish(&self, exchange: Exchange) {
        let exchange = Arc::new(exchange);
        self.published.fetch_add(1, Ordering::Relaxed);
        self.store.push(Arc::clone(&exchange));
        let mut subscribers = self.subscribers.lock();
        subscribers.retain(|tx| match tx.try_send(Arc::clone(&exchange)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    /// Exchanges a subscriber missed because its channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Exchanges published since start.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use bytes::Bytes;

    use super::*;
    use crate::capture::{CapturedBody, CapturedRequest};

    fn exchange(id: u64, body_len: usize) -> Exchange {
        Exchange {
            tunnel: None,
            id,
            request_id: format!("req-{id}"),
            started_at: SystemTime::now(),
            trace: None,
            request: CapturedRequest {
                method: http::Method::GET,
                uri: "/reviews/1".to_owned(),
                authority: "reviews".to_owned(),
                version: http::Version::HTTP_11,
                headers: http::HeaderMap::new(),
                body: CapturedBody {
                    bytes: Bytes::from(vec![b'x'; body_len]),
                    total_len: body_len as u64,
                    truncated: false,
                },
            },
            primary: None,
            shadows: Vec::new(),
            forwarded: None,
            flags: Default::default(),
        }
    }

    #[test]
    fn store_keeps_the_newest_within_the_count_bound() {
        let store = CaptureStore::new(StoreBounds {
            max_exchanges: 3,
            max_bytes: usize::MAX,
        });
        for id in 1..=5 {
            store.push(Arc::new(exchange(id, 0)));
        }
        let ids: Vec<u64> = store.recent(10).iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![3, 4, 5]);
        assert_eq!(store.evicted(), 2);
        assert!(store.get(1).is_none());
        assert_eq!(store.get(4).map(|e| e.id), Some(4));
    }

    #[test]
    fn store_keeps_within_the_byte_bound() {
        let one = exchange(0, 10_000).approx_bytes();
        let store = CaptureStore::new(StoreBounds {
            max_exchanges: 1000,
            max_bytes: one * 2 + one / 2,
        });
        for id in 1..=10 {
            store.push(Arc::new(exchange(id, 10_000)));
        }
        assert_eq!(store.len(), 2);
        assert!(store.bytes() <= one * 2 + one / 2);
    }

    #[test]
    fn since_returns_later_ids_even_when_they_finished_out_of_order() {
        let store = CaptureStore::new(StoreBounds::default());
        for id in [1, 3, 2, 5, 4] {
            store.push(Arc::new(exchange(id, 0)));
        }
        let ids: Vec<u64> = store.since(2).iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![3, 4, 5]);
    }

    #[tokio::test]
    async fn a_full_subscriber_drops_and_counts_instead_of_blocking() {
        let hub = CaptureHub::new(StoreBounds::default());
        let mut rx = hub.subscribe(2);
        for id in 1..=5 {
            hub.publish(exchange(id, 0));
        }
        assert_eq!(hub.dropped(), 3);
        assert_eq!(hub.store().len(), 5);
        assert_eq!(rx.recv().await.map(|e| e.id), Some(1));
        assert_eq!(rx.recv().await.map(|e| e.id), Some(2));
        drop(rx);
        hub.publish(exchange(6, 0));
        assert_eq!(
            hub.dropped(),
            3,
            "a closed subscriber is forgotten, not counted"
        );
    }
}
