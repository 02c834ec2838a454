//! A destination's runtime state, shared by every worker: which endpoint a request goes to
//! (Envoy's load balancers), the circuit breakers' counts, and outlier detection's ejections.
//!
//! Envoy keeps a balancer per worker thread; the lab keeps one per destination, so a round
//! robin goes round once over all workers rather than once per worker.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::policy::{Balancer, ClusterPolicy, OutlierConfig};

/// The runtime state of one destination.
#[derive(Debug)]
pub struct ClusterState {
    rr: AtomicUsize,
    /// Active requests per endpoint (least request compares them).
    active: Box<[AtomicU32]>,
    /// Circuit breakers' counts.
    pub breakers: Breakers,
    outlier: Option<Mutex<Outlier>>,
    table: Option<HashTable>,
}

/// What the circuit breakers count, cluster-wide.
#[derive(Debug, Default)]
pub struct Breakers {
    /// Requests in flight to the destination.
    pub requests: AtomicU32,
    /// Requests waiting for a connection.
    pub pending: AtomicU32,
    /// Open connections to all of its endpoints.
    pub connections: AtomicU32,
    /// Retries outstanding.
    pub retries: AtomicU32,
    /// Woken when a connection or a request slot comes free (pending requests wait on it).
    pub freed: tokio::sync::Notify,
}

impl Breakers {
    /// Takes a slot under `limit`, or says there is none (Envoy's `canCreate`).
    pub fn try_take(counter: &AtomicU32, limit: u32) -> bool {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back a slot taken with [`Breakers::try_take`].
    pub fn give_back(counter: &AtomicU32) {
        let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

/// The endpoint a pick chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// Index into the destination's endpoints.
    pub index: usize,
    /// Endpoints the pick passed over because outlier detection had ejected them.
    pub ejected_skipped: usize,
    /// Fewer endpoints were available than the panic threshold: every endpoint was used.
    pub panic: bool,
}

/// Why no endpoint could be picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPick {
    /// The destination has none.
    NoEndpoints,
    /// Every one is ejected and the panic threshold is 0: Envoy's "no healthy upstream".
    AllEjected,
}

/// What a pick may look at: the request's hash, the endpoints this request tried already
/// (avoided when the retry policy says so, up to `attempts` picks), and a random source.
pub struct PickInput<'a> {
    /// The consistent hash of the request, if the destination hashes and the request has a key.
    pub hash: Option<u64>,
    /// Endpoints already tried by this request, to avoid.
    pub avoid: &'a [usize],
    /// Picks to try before taking the last one anyway.
    pub attempts: u32,
    /// Uniform random numbers.
    pub rng: &'a mut fastrand::Rng,
    /// The time now.
    pub now: Instant,
}

impl ClusterState {
    /// Fresh state for `endpoints` endpoints, their addresses as text for the hash tables.
    pub fn new(policy: &ClusterPolicy, addresses: &[String]) -> Self {
        let table = match policy.balancer {
            Balancer::RingHash(min) => Some(HashTable::ring(addresses, min)),
            Balancer::Maglev(size) => Some(HashTable::maglev(addresses, size)),
            _ => None,
        };
        Self {
            rr: AtomicUsize::new(fastrand::usize(..)),
            active: addresses.iter().map(|_| AtomicU32::new(0)).collect(),
            breakers: Breakers::default(),
            outlier: policy
                .outlier
                .map(|config| Mutex::new(Outlier::new(config, addresses.len()))),
            table,
        }
    }

    /// Picks an endpoint as Envoy's balancer does, passing over ejected endpoints unless the
    /// destination is in panic, and avoiding the ones to avoid for up to `attempts` picks
    /// (`ZoneAwareLoadBalancerBase::chooseHost`: the last pick stands if all are avoided).
    pub fn pick(&self, policy: &ClusterPolicy, input: PickInput<'_>) -> Result<Pick, NoPick> {
        let n = self.active.len();
        if n == 0 {
            return Err(NoPick::NoEndpoints);
        }
        // No outlier detection, nothing is ever ejected: no list to build per pick.
        let ejected = (self.outlier.as_ref()).map(|o| o.lock().ejected(input.now));
        let healthy = n - ejected
            .as_ref()
            .map_or(0, |e| e.iter().filter(|e| **e).count());
        let panic = policy.outlier.is_some()
            && u64::try_from(healthy * 100).unwrap_or(u64::MAX)
                < u64::from(policy.panic_threshold) * u64::try_from(n).unwrap_or(u64::MAX);
        if healthy == 0 && !panic {
            return Err(NoPick::AllEjected);
        }
        let usable = |i: usize| {
            panic || !(ejected.as_ref()).is_some_and(|e| e.get(i).copied().unwrap_or(false))
        };
        let mut last = None;
        for _ in 0..input.attempts.max(1) {
            let i = self.choose(policy, input.hash, &usable, input.rng);
            last = Some(i);
            if !input.avoid.contains(&i) {
                break;
            }
        }
        let index = last.unwrap_or(0);
        Ok(Pick {
            index,
            ejected_skipped: if panic { 0 } else { n - healthy },
            panic,
        })
    }

    /// One draw of the balancer among the usable endpoints.
    fn choose(
        &self,
        policy: &ClusterPolicy,
        hash: Option<u64>,
        usable: &dyn Fn(usize) -> bool,
        rng: &mut fastrand::Rng,
    ) -> usize {
        let candidates: Vec<usize> = (0..self.active.len()).filter(|i| usable(*i)).collect();
        let count = candidates.len().max(1);
        let at = |k: usize| candidates.get(k % count).copied().unwrap_or(0);
        match policy.balancer {
            Balancer::RoundRobin => at(self.rr.fetch_add(1, Ordering::Relaxed)),
            Balancer::Random => at(rng.usize(..count)),
            Balancer::LeastRequest => {
                // Two choices with replacement; the second wins only with strictly fewer.
                let first = at(rng.usize(..count));
                let second = at(rng.usize(..count));
                if self.active_on(second) < self.active_on(first) {
                    second
                } else {
                    first
                }
            }
            Balancer::RingHash(_) | Balancer::Maglev(_) => {
                // No key (an absent header, no cookie to make): a random pick, as Envoy's
                // thread-aware balancer takes a random hash.
                let h = hash.unwrap_or_else(|| rng.u64(..));
                self.table
                    .as_ref()
                    .map(|t| t.lookup(h, usable))
                    .unwrap_or_else(|| at(rng.usize(..count)))
            }
        }
    }

    fn active_on(&self, i: usize) -> u32 {
        self.active.get(i).map_or(0, |a| a.load(Ordering::Relaxed))
    }

    /// Counts a request active on endpoint `i` until the guard drops.
    pub fn start(&self, i: usize) -> ActiveGuard<'_> {
        if let Some(a) = self.active.get(i) {
            a.fetch_add(1, Ordering::Relaxed);
        }
        ActiveGuard { state: self, i }
    }

    /// Which endpoints are ejected now (un-ejecting those whose time is up).
    fn ejected(&self, now: Instant) -> Vec<bool> {
        match &self.outlier {
            None => vec![false; self.active.len()],
            Some(o) => o.lock().ejected(now),
        }
    }

    /// Tells outlier detection how an attempt on endpoint `i` ended. True when that
    /// ejected the endpoint.
    pub fn report(&self, i: usize, result: AttemptResult, now: Instant) -> bool {
        match &self.outlier {
            None => false,
            Some(o) => o.lock().report(i, result, now),
        }
    }

    /// Endpoints ejected now, for the dashboard.
    pub fn ejected_now(&self, now: Instant) -> Vec<usize> {
        self.ejected(now)
            .iter()
            .enumerate()
            .filter(|(_, e)| **e)
            .map(|(i, _)| i)
            .collect()
    }
}

/// Counts a request active on an endpoint while alive.
#[derive(Debug)]
pub struct ActiveGuard<'a> {
    state: &'a ClusterState,
    i: usize,
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        if let Some(a) = self.state.active.get(self.i) {
            let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }
}

/// How an attempt ended, as outlier detection counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// An answer with this status.
    Status(u16),
    /// A connection failure, or a reset (Envoy's `LocalOriginConnectFailed`).
    ConnectFailed,
    /// A per-try or route timeout (`LocalOriginTimeout`).
    Timeout,
}

/// Outlier detection's per-endpoint counts and ejections
/// (`source/common/upstream/outlier_detection_impl.cc`).
#[derive(Debug)]
struct Outlier {
    config: OutlierConfig,
    /// When the detector started: sweeps happen at `started + k · interval`.
    started: Instant,
    hosts: Vec<HostMonitor>,
}

#[derive(Debug, Clone, Default)]
struct HostMonitor {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    consecutive_local: u32,
    /// Ejected until this sweep.
    ejected_until: Option<Instant>,
    /// Times ejected, for the back-off (decremented on sweeps while healthy).
    backoff: u32,
    last_unejected: Option<Instant>,
}

impl Outlier {
    fn new(config: OutlierConfig, hosts: usize) -> Self {
        Self {
            config,
            started: Instant::now(),
            hosts: vec![HostMonitor::default(); hosts],
        }
    }

    /// The first sweep at or after `t`: un-ejection happens only on the interval timer.
    fn next_sweep(&self, t: Instant) -> Instant {
        let interval = self.config.interval.max(Duration::from_millis(1));
        let since = t.saturating_duration_since(self.started);
        let ticks = since.as_nanos().div_ceil(interval.as_nanos());
        self.started + interval * u32::try_from(ticks).unwrap_or(u32::MAX)
    }

    fn ejected(&mut self, now: Instant) -> Vec<bool> {
        let interval = self.config.interval;
        for h in &mut self.hosts {
            if h.ejected_until.is_some_and(|until| now >= until) {
                h.ejected_until = None;
                h.last_unejected = Some(now);
                h.consecutive_5xx = 0;
                h.consecutive_gateway = 0;
                h.consecutive_local = 0;
            }
            // A healthy host's back-off shrinks by one per sweep after its last un-ejection.
            if h.ejected_until.is_none()
                && let Some(at) = h.last_unejected
                && h.backoff > 0
                && now.saturating_duration_since(at) >= interval
            {
                let sweeps =
                    now.saturating_duration_since(at).as_nanos() / interval.as_nanos().max(1);
                h.backoff = h
                    .backoff
                    .saturating_sub(u32::try_from(sweeps).unwrap_or(u32::MAX));
                h.last_unejected = Some(now);
            }
        }
        self.hosts
            .iter()
            .map(|h| h.ejected_until.is_some())
            .collect()
    }

    fn report(&mut self, i: usize, result: AttemptResult, now: Instant) -> bool {
        let config = self.config;
        let Some(h) = self.hosts.get_mut(i) else {
            return false;
        };
        if h.ejected_until.is_some() {
            return false;
        }
        // Without the split, a connection failure counts as 503 and a timeout as 504.
        let code = match (result, config.split_local_origin) {
            (AttemptResult::Status(c), _) => Some(c),
            (AttemptResult::ConnectFailed, false) => Some(503),
            (AttemptResult::Timeout, false) => Some(504),
            (_, true) => None,
        };
        let mut trip = false;
        match code {
            Some(c) if (500..600).contains(&c) => {
                h.consecutive_5xx += 1;
                if matches!(c, 502..=504) {
                    h.consecutive_gateway += 1;
                } else {
                    h.consecutive_gateway = 0;
                }
                trip |= config.consecutive_5xx == Some(h.consecutive_5xx);
                trip |= config.consecutive_gateway == Some(h.consecutive_gateway);
            }
            Some(_) => {
                h.consecutive_5xx = 0;
                h.consecutive_gateway = 0;
            }
            None => {
                h.consecutive_local += 1;
                trip |= config.consecutive_local_origin == Some(h.consecutive_local);
            }
        }
        if !trip {
            return false;
        }
        self.eject(i, now)
    }

    /// `ejectHost`: refused when it would take the ejected share above the maximum.
    fn eject(&mut self, i: usize, now: Instant) -> bool {
        let active = self
            .hosts
            .iter()
            .filter(|h| h.ejected_until.is_some())
            .count();
        let total = self.hosts.len().max(1);
        let allowed = (active + 1) * 100 <= total * self.config.max_ejection_percent as usize;
        let Some(h) = self.hosts.get_mut(i) else {
            return false;
        };
        h.consecutive_5xx = 0;
        h.consecutive_gateway = 0;
        h.consecutive_local = 0;
        if !allowed {
            return false;
        }
        h.backoff += 1;
        let time = (self.config.base_ejection * h.backoff).min(self.config.max_ejection);
        let until = now + time;
        let sweep = self.next_sweep(until);
        if let Some(h) = self.hosts.get_mut(i) {
            h.ejected_until = Some(sweep);
        }
        true
    }
}

/// A consistent-hash lookup table over the endpoints.
#[derive(Debug)]
enum HashTable {
    /// Ketama ring: sorted (hash, endpoint).
    Ring(Vec<(u64, usize)>),
    /// Maglev: slot → endpoint.
    Maglev(Vec<usize>),
}

impl HashTable {
    /// `RingHashLoadBalancer::Ring`: each endpoint's `address_i` hashes, equal weights.
    fn ring(addresses: &[String], min_size: u64) -> Self {
        let n = addresses.len().max(1) as u64;
        let size = min_size.max(n).min(8 * 1024 * 1024);
        let per_host = size.div_ceil(n);
        let mut ring = Vec::new();
        for (index, address) in addresses.iter().enumerate() {
            for i in 0..per_host {
                let key = format!("{address}_{i}");
                ring.push((xxhash_rust::xxh64::xxh64(key.as_bytes(), 0), index));
            }
        }
        ring.sort_unstable();
        HashTable::Ring(ring)
    }

    /// `MaglevTable`: each endpoint fills the next free slot of its permutation in turn.
    fn maglev(addresses: &[String], size: u64) -> Self {
        let m = size.max(1);
        let mut table = vec![usize::MAX; usize::try_from(m).unwrap_or(usize::MAX)];
        if addresses.is_empty() {
            return HashTable::Maglev(Vec::new());
        }
        let perms: Vec<(u64, u64)> = addresses
            .iter()
            .map(|a| {
                let offset = xxhash_rust::xxh64::xxh64(a.as_bytes(), 0) % m;
                let skip = xxhash_rust::xxh64::xxh64(a.as_bytes(), 1) % (m.max(2) - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0u64; addresses.len()];
        let mut filled = 0usize;
        while filled < table.len() {
            for (host, (offset, skip)) in perms.iter().enumerate() {
                loop {
                    let slot = (offset + next[host] * skip) % m;
                    next[host] += 1;
                    let slot = usize::try_from(slot).unwrap_or(0);
                    if table[slot] == usize::MAX {
                        table[slot] = host;
                        filled += 1;
                        break;
                    }
                }
                if filled == table.len() {
                    break;
                }
            }
        }
        HashTable::Maglev(table)
    }

    /// The endpoint for hash `h`, the next usable one when the hashed one is ejected.
    fn lookup(&self, h: u64, usable: &dyn Fn(usize) -> bool) -> usize {
        match self {
            HashTable::Ring(ring) => {
                if ring.is_empty() {
                    return 0;
                }
                let start = ring.partition_point(|(k, _)| *k < h) % ring.len();
                (0..ring.len())
                    .map(|k| ring[(start + k) % ring.len()].1)
                    .find(|i| usable(*i))
                    .unwrap_or(ring[start].1)
            }
            HashTable::Maglev(table) => {
                if table.is_empty() {
                    return 0;
                }
                let slot = usize::try_from(h % table.len() as u64).unwrap_or(0);
                (0..table.len())
                    .map(|k| table[(slot + k) % table.len()])
                    .find(|i| usable(*i))
                    .unwrap_or(table[slot])
            }
        }
    }
}

/// What a request offers a consistent hash (Envoy's `HashPolicyImpl::generateHash`).
#[derive(Debug, Clone, Copy)]
pub struct HashInput<'a> {
    /// Request headers.
    pub headers: &'a http::HeaderMap,
    /// The query string, if any.
    pub query: Option<&'a str>,
    /// The client's address.
    pub client: Option<std::net::SocketAddr>,
    /// The proxy's own address the client connected to.
    pub local: std::net::SocketAddr,
}

/// A request's hash, and the cookie to set on its answer when the hash was made from a
/// cookie the lab generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashOutcome {
    /// The hash; `None` when the request has no key (the pick is then random).
    pub hash: Option<u64>,
    /// A `Set-Cookie` value for the answer.
    pub set_cookie: Option<String>,
}

impl super::policy::HashKey {
    /// The request's hash under this key.
    pub fn hash_of(&self, input: &HashInput<'_>) -> HashOutcome {
        use super::policy::HashKey;
        match self {
            HashKey::Header(name) => {
                // All values, sorted, hashed as one list.
                let mut values: Vec<&[u8]> = input
                    .headers
                    .get_all(name)
                    .iter()
                    .map(|v| v.as_bytes())
                    .collect();
                if values.is_empty() {
                    return HashOutcome::default();
                }
                values.sort_unstable();
                HashOutcome {
                    hash: Some(hash(&values.concat())),
                    set_cookie: None,
                }
            }
            HashKey::Query(name) => HashOutcome {
                hash: input.query.and_then(|q| {
                    q.split('&').find_map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        (k == name).then(|| hash(v.as_bytes()))
                    })
                }),
                set_cookie: None,
            },
            HashKey::SourceIp => HashOutcome {
                hash: input.client.map(|c| hash(c.ip().to_string().as_bytes())),
                set_cookie: None,
            },
            HashKey::Cookie(cookie) => {
                if let Some(value) = cookie_value(input.headers, &cookie.name) {
                    return HashOutcome {
                        hash: Some(hash(value.as_bytes())),
                        set_cookie: None,
                    };
                }
                let Some(ttl) = cookie.ttl else {
                    return HashOutcome::default();
                };
                // router.h addDownstreamSetCookie: the value is the hash of the connection's
                // two addresses, in hex; the request hashes on it and the answer sets it.
                let addresses = format!(
                    "{}{}",
                    input.client.map(|c| c.to_string()).unwrap_or_default(),
                    input.local
                );
                let value = format!("{:016x}", hash(addresses.as_bytes()));
                let mut set = format!("{}=\"{value}\"", cookie.name);
                if !ttl.is_zero() {
                    set.push_str(&format!("; Max-Age={}", ttl.as_secs()));
                }
                if let Some(path) = &cookie.path {
                    set.push_str(&format!("; Path={path}"));
                }
                for attribute in &cookie.attributes {
                    set.push_str(&format!("; {attribute}"));
                }
                set.push_str("; HttpOnly");
                HashOutcome {
                    hash: Some(hash(value.as_bytes())),
                    set_cookie: Some(set),
                }
            }
        }
    }
}

/// The value of cookie `name`, surrounding quotes removed.
fn cookie_value<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.trim_matches('"'))
        })
}

/// xxHash64 of `bytes`, as Envoy's hash policies compute a request's hash.
pub fn hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh64::xxh64(bytes, 0)
}

#[cfg(test)]
#[path = "balancer_tests.rs"]
mod tests;
