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
/// grow the table without bound (past it, new pairs are not asked).
const MAX_ENTRIES: usize = 4096;

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
                Some(Entry::Failed { .. }) => {}
                None if entries.values().map(HashMap::len).sum::<usize>() >= MAX_ENTRIES => {
                    return None;
                }
                None => {}
            }
        }
        let mut entries = self.entries.write();
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
        if self.requests.try_send(request).is_ok() {
            services.insert(service.to_owned(), Entry::Pending);
        }
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
