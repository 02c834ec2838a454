//! Descriptors learnt by gRPC server reflection, per (endpoint, service): the analysis
//! asks for them the first time it sees a call it has no descriptors for, and the lab's
//! reflection task (lab/reflection.rs) answers, off the request path. What the task found,
//! descriptors or a failure, is remembered: a failure is asked again only after
//! [`ReflectionTable::retry_after`], never on every request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tokio::sync::mpsc;

use super::{DescriptorOrigin, GrpcDescriptors};

/// What the analysis asks the reflection task to find out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReflectionRequest {
    /// The primary's endpoint the call was sent to (`127.0.0.1:9091`).
    pub endpoint: String,
    /// The service the call's path names (`reviews.Reviews`).
    pub service: String,
    /// The destination label of the primary (`reviews/v1`): which cluster's TLS to speak.
    pub target: String,
}

/// What is known of one (endpoint, service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReflectionState {
    /// Asked; no answer yet.
    Pending,
    /// The server described the service.
    Ready(GrpcDescriptors),
    /// It did not, and why.
    Failed(String),
}

#[derive(Debug)]
enum Entry {
    Pending,
    Ready(GrpcDescriptors),
    Failed { why: String, at: Instant },
}

/// Most requests waiting for the reflection task; past that a call is asked again later.
const QUEUE: usize = 64;

/// Most (endpoint, service) pairs remembered: a client inventing service names cannot
/// grow the table without bound. When it is full, failures are forgotten to make room;
/// past that, new pairs are not asked.
const MAX_ENTRIES: usize = 4096;

/// Most services asked of one endpoint: a client inventing service names must not cost
/// the primary a reflection call for each (failures are forgotten first, as above).
const MAX_SERVICES_PER_ENDPOINT: usize = 64;

/// Descriptors learnt by server reflection, shared by the analysis (which asks and reads)
/// and the lab's reflection task (which answers).
pub struct ReflectionTable {
    /// endpoint → service → what is known.
    entries: RwLock<HashMap<String, HashMap<String, Entry>>>,
    requests: mpsc::Sender<ReflectionRequest>,
    retry_after: Duration,
}

impl std::fmt::Debug for ReflectionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReflectionTable")
            .field("endpoints", &self.entries.read().len())
            .field("retry_after", &self.retry_after)
            .finish_non_exhaustive()
    }
}

/// Room for one more pair at `endpoint`: failures are forgotten when the table, or the
/// endpoint's share of it, is full. False when there is still no room.
fn make_room(entries: &mut HashMap<String, HashMap<String, Entry>>, endpoint: &str) -> bool {
    let failed = |e: &Entry| matches!(e, Entry::Failed { .. });
    if entries.get(endpoint).map_or(0, HashMap::len) >= MAX_SERVICES_PER_ENDPOINT
        && let Some(services) = entries.get_mut(endpoint)
    {
        services.retain(|_, e| !failed(e));
        if services.len() >= MAX_SERVICES_PER_ENDPOINT {
            return false;
        }
    }
    if entries.values().map(HashMap::len).sum::<usize>() >= MAX_ENTRIES {
        for services in entries.values_mut() {
            services.retain(|_, e| !failed(e));
        }
        entries.retain(|_, services| !services.is_empty());
        return entries.values().map(HashMap::len).sum::<usize>() < MAX_ENTRIES;
    }
    true
}

impl ReflectionTable {
    /// A table whose failures are asked again after `retry_after`, and the queue of its
    /// requests for the reflection task.
    pub fn new(retry_after: Duration) -> (Arc<Self>, mpsc::Receiver<ReflectionRequest>) {
        let (requests, queue) = mpsc::channel(QUEUE);
        let table = Self {
            entries: RwLock::new(HashMap::new()),
            requests,
            retry_after,
        };
        (Arc::new(table), queue)
    }

    /// How long a failure is remembered before it is asked again.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// The descriptors of `service` at `endpoint` when reflection found them; otherwise
    /// asks the reflection task once (again after a failure's `retry_after`) and returns
    /// `None`. Never blocks: a full queue leaves the pair to be asked by a later call.
    pub fn pool_or_ask(
        &self,
        endpoint: &str,
        service: &str,
        target: &str,
    ) -> Option<prost_reflect::DescriptorPool> {
        {
            let entries = self.entries.read();
            match entries.get(endpoint).and_then(|s| s.get(service)) {
                Some(Entry::Ready(d)) => return Some(d.pool.clone()),
                Some(Entry::Pending) => return None,
                Some(Entry::Failed { at, .. }) if at.elapsed() < self.retry_after => return None,
                Some(Entry::Failed { .. }) | None => {}
            }
        }
        let mut entries = self.entries.write();
        if !entries
            .get(endpoint)
            .is_some_and(|s| s.contains_key(service))
            && !make_room(&mut entries, endpoint)
        {
            return None;
        }
        let services = entries.entry(endpoint.to_owned()).or_default();
        // Another caller may have asked between the two locks.
        match services.get(service) {
            Some(Entry::Ready(d)) => return Some(d.pool.clone()),
            Some(Entry::Pending) => return None,
            Some(Entry::Failed { at, .. }) if at.elapsed() < self.retry_after => return None,
            _ => {}
        }
        let request = ReflectionRequest {
            endpoint: endpoint.to_owned(),
            service: service.to_owned(),
            target: target.to_owned(),
        };
        let entry = match self.requests.try_send(request) {
            Ok(()) => Entry::Pending,
            // Remembered as a failure, so the pair is asked again after `retry_after`
            // instead of by every call until the queue drains.
            Err(_) => Entry::Failed {
                why: "not asked: the lab's reflection queue was full".to_owned(),
                at: Instant::now(),
            },
        };
        services.insert(service.to_owned(), entry);
        None
    }

    /// What is known of `service` at `endpoint`, without asking anything.
    pub fn state(&self, endpoint: &str, service: &str) -> Option<ReflectionState> {
        let entries = self.entries.read();
        Some(match entries.get(endpoint)?.get(service)? {
            Entry::Pending => ReflectionState::Pending,
            Entry::Ready(d) => ReflectionState::Ready(d.clone()),
            Entry::Failed { why, .. } => ReflectionState::Failed(why.clone()),
        })
    }

    /// The reflection task's answer for `request`: the service's descriptors, or why
    /// there are none.
    pub fn answer(
        &self,
        request: &ReflectionRequest,
        found: Result<prost_reflect::DescriptorPool, String>,
    ) {
        let entry = match found {
            Ok(pool) => Entry::Ready(GrpcDescriptors {
                pool,
                origin: DescriptorOrigin::Reflection {
                    endpoint: request.endpoint.clone(),
                    service: request.service.clone(),
                },
            }),
            Err(why) => Entry::Failed {
                why,
                at: Instant::now(),
            },
        };
        self.entries
            .write()
            .entry(request.endpoint.clone())
            .or_default()
            .insert(request.service.clone(), entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_services_are_bounded_per_endpoint_and_failures_make_room() {
        let (table, mut queue) = ReflectionTable::new(Duration::from_secs(60));
        let endpoint = "127.0.0.1:1";
        for i in 0..MAX_SERVICES_PER_ENDPOINT + 10 {
            table.pool_or_ask(endpoint, &format!("made.Up{i}"), "a/v1");
        }
        // The queue holds 64: every pair past it is remembered as a failure, not retried
        // by each call.
        let mut asked = Vec::new();
        while let Ok(request) = queue.try_recv() {
            asked.push(request);
        }
        assert_eq!(asked.len(), QUEUE.min(MAX_SERVICES_PER_ENDPOINT));
        assert!(
            table.entries.read()[endpoint].len() <= MAX_SERVICES_PER_ENDPOINT,
            "one endpoint's share is bounded"
        );
        // The primary answers UNIMPLEMENTED for each: failures, which make room for a
        // real service asked later.
        for request in &asked {
            table.answer(request, Err("UNIMPLEMENTED".to_owned()));
        }
        assert!(
            table
                .pool_or_ask(endpoint, "reviews.Reviews", "a/v1")
                .is_none()
        );
        let real = queue.try_recv().expect("a real service is still asked");
        assert_eq!(real.service, "reviews.Reviews");
    }

    #[test]
    fn a_pair_the_full_queue_turned_away_says_so_and_is_asked_later() {
        let (table, mut queue) = ReflectionTable::new(Duration::from_millis(30));
        for i in 0..QUEUE {
            table.pool_or_ask(&format!("127.0.0.1:{}", i + 1), "a.S", "a/v1");
        }
        table.pool_or_ask("127.0.0.1:9999", "a.S", "a/v1");
        match table.state("127.0.0.1:9999", "a.S") {
            Some(ReflectionState::Failed(why)) => assert!(why.contains("queue was full"), "{why}"),
            other => panic!("turned away, and the state says so: {other:?}"),
        }
        while queue.try_recv().is_ok() {}
        std::thread::sleep(Duration::from_millis(40));
        table.pool_or_ask("127.0.0.1:9999", "a.S", "a/v1");
        assert_eq!(
            queue
                .try_recv()
                .expect("asked once the interval passed")
                .endpoint,
            "127.0.0.1:9999"
        );
    }

    #[test]
    fn a_pair_is_asked_once_and_a_failure_only_after_the_retry_interval() {
        let (table, mut queue) = ReflectionTable::new(Duration::from_millis(50));
        for _ in 0..5 {
            assert!(table.pool_or_ask("127.0.0.1:1", "a.S", "a/v1").is_none());
        }
        let asked = queue.try_recv().expect("asked once");
        assert_eq!(asked.service, "a.S");
        assert!(queue.try_recv().is_err(), "not asked twice while pending");
        assert_eq!(
            table.state("127.0.0.1:1", "a.S"),
            Some(ReflectionState::Pending)
        );

        table.answer(&asked, Err("refused".to_owned()));
        assert!(table.pool_or_ask("127.0.0.1:1", "a.S", "a/v1").is_none());
        assert!(
            queue.try_recv().is_err(),
            "a fresh failure is not asked again"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert!(table.pool_or_ask("127.0.0.1:1", "a.S", "a/v1").is_none());
        let again = queue
            .try_recv()
            .expect("asked again after the retry interval");

        table.answer(&again, Ok(prost_reflect::DescriptorPool::new()));
        assert!(table.pool_or_ask("127.0.0.1:1", "a.S", "a/v1").is_some());
        assert!(matches!(
            table.state("127.0.0.1:1", "a.S"),
            Some(ReflectionState::Ready(GrpcDescriptors {
                origin: DescriptorOrigin::Reflection { .. },
                ..
            }))
        ));
        assert_eq!(
            table.state("127.0.0.1:1", "b.S"),
            None,
            "another service is its own pair"
        );
    }
}
