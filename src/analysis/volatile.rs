//! Volatile fields found from the primary itself: the lab sees the primary answer the same
//! request many times, so a field whose value changes between answers to identical
//! requests is not a function of the request (a timestamp, a random id), even when the
//! route has no baseline mirror.
//!
//! Identical requests are keyed by route, method, target (path and query), body, and the
//! request headers other than the per-request ones (tracing ids, `x-request-id`): a
//! different user, cookie or `accept-language` is a different request. The last primary
//! answer to each key is kept, in a bounded store; each new answer to a key is compared
//! with it (the same diff as primary against shadow, with the same ignore rules), and the
//! counts go per endpoint and field. Only answers with the same status are compared.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use super::diff::{self, FieldChange, PreparedResponse};
use super::ignore::{FieldPath, IgnoreRules};
use super::noise::MAX_FIELDS;
use super::verdict::FieldCounts;
use crate::capture::{CapturedRequest, CapturedResponse};

/// Most distinct requests whose last answer is kept (two generations of half each).
const MAX_KEPT_REQUESTS: usize = 4096;

/// Most bytes of kept answers (bodies and headers), all requests together.
const MAX_KEPT_BYTES: usize = 16 * 1024 * 1024;

/// A bigger answer is not kept: its request is not tracked.
const MAX_KEPT_ANSWER: usize = 256 * 1024;

/// Every answer of an endpoint is looked at until this many repeats were compared: enough
/// to tell a volatile field (4 changes in 4 already are) with room to spare.
const COMPARE_ALL_FIRST: u64 = 64;

/// ... or until this many answers were looked at, so that an endpoint whose requests never
/// repeat (ids from a large space, bodies that differ) stops costing anything.
const OBSERVE_ALL_FIRST: u64 = 1024;

/// After that, one answer of the endpoint in this many is looked at (its request keyed,
/// compared with the last answer kept for it, kept in its place); the others cost a count.
/// Evidence keeps coming, a field that starts changing later is still found, and the
/// analysis of the other answers is as cheap as without repeats.
const OBSERVE_ONE_IN: u64 = 64;

/// Request headers that differ between otherwise identical requests and say nothing about
/// the answer: request and trace ids (W3C, B3, Envoy, cloud load balancers), and framing.
const PER_REQUEST_HEADERS: &[&str] = &[
    "x-request-id",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-ot-span-context",
    "uber-trace-id",
    "x-cloud-trace-context",
    "x-amzn-trace-id",
    "grpc-trace-bin",
    "sw8",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-envoy-attempt-count",
    "x-forwarded-for",
    "x-forwarded-proto",
    "date",
    "content-length",
    // `mirrorlab replay` numbers its requests: a loop's rounds repeat the same request.
    crate::capture::REPLAY_HEADER,
];

/// Identity of a request for repeat detection: a hash of what makes two requests the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RequestKey(u64);

impl RequestKey {
    /// The key of `request` on the route at `route_slot`; `None` when its body was cut at
    /// the capture cap (two cut bodies may differ past the cut).
    pub(crate) fn of(route_slot: usize, request: &CapturedRequest) -> Option<Self> {
        if request.body.truncated {
            return None;
        }
        let mut h = KeyHash(u64::try_from(route_slot).unwrap_or(u64::MAX));
        h.bytes(request.method.as_str().as_bytes());
        h.bytes(request.uri.as_bytes());
        h.bytes(&request.body.bytes);
        // Summed per header, so header order does not matter; repeated headers keep
        // their own values each.
        let headers = request
            .headers
            .iter()
            .filter(|(name, _)| !PER_REQUEST_HEADERS.contains(&name.as_str()))
            .fold(0u64, |sum, (name, value)| {
                let mut e = KeyHash(0);
                e.bytes(name.as_str().as_bytes());
                e.bytes(value.as_bytes());
                sum.wrapping_add(e.0)
            });
        h.word(headers);
        Some(Self(h.0))
    }
}

/// A fast 64-bit hash (the multiply-rotate of rustc's FxHasher), eight bytes a step: a
/// key is computed for every exchange, and a rare collision only compares two different
/// requests' answers once.
struct KeyHash(u64);

impl KeyHash {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(Self::SEED);
    }

    /// The bytes, then their length (so `ab`,`c` and `a`,`bc` differ).
    fn bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        let mut w = [0u8; 8];
        for (d, b) in w.iter_mut().zip(chunks.remainder()) {
            *d = *b;
        }
        self.word(u64::from_le_bytes(w));
        self.word(bytes.len() as u64);
    }
}

/// The last answer kept for one request.
#[derive(Debug)]
struct Kept {
    answer: CapturedResponse,
    bytes: usize,
}

impl Kept {
    fn new(r: &CapturedResponse) -> Self {
        let headers: usize = r
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        Self {
            // Kept for as long as the request may repeat: its headers are copied, its
            // body shares the capture's bytes.
            answer: r.clone(),
            bytes: r.body.bytes.len() + headers,
        }
    }
}

/// A [`RequestKey`] is a hash already: the maps use it as it is.
#[derive(Debug, Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (RequestKey's derived Hash); fold anything else in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One generation of kept answers.
#[derive(Debug, Default)]
struct Generation {
    answers: HashMap<RequestKey, Kept, std::hash::BuildHasherDefault<KeyHasher>>,
    bytes: usize,
}

impl Generation {
    fn insert(&mut self, key: RequestKey, kept: Kept) {
        self.bytes += kept.bytes;
        if let Some(old) = self.answers.insert(key, kept) {
            self.bytes -= old.bytes;
        }
    }

    fn remove(&mut self, key: &RequestKey) -> Option<Kept> {
        let kept = self.answers.remove(key)?;
        self.bytes -= kept.bytes;
        Some(kept)
    }
}

/// The last primary answer per request, bounded in count and bytes: two generations, the
/// older dropped whole when the newer fills up, and an answer found in the older moved to
/// the newer (least recently used requests leave first, at O(1) per answer).
#[derive(Debug, Default)]
pub(crate) struct PrimaryAnswers {
    current: Generation,
    previous: Generation,
}

impl PrimaryAnswers {
    /// Takes the last answer to `key` out of the store.
    fn take(&mut self, key: &RequestKey) -> Option<Kept> {
        self.current
            .remove(key)
            .or_else(|| self.previous.remove(key))
    }

    /// Keeps `kept` as the last answer to `key`.
    fn keep(&mut self, key: RequestKey, kept: Kept) {
        if self.current.answers.len() >= MAX_KEPT_REQUESTS / 2
            || self.current.bytes + kept.bytes > MAX_KEPT_BYTES / 2
        {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, kept);
    }

    /// Requests whose answer is kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.answers.len() + self.previous.answers.len()
    }

    /// Bytes of the answers kept.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.current.bytes + self.previous.bytes
    }

    /// Takes the primary's `answer` to `request` on the route at `route_slot` into account,
    /// when `counts` says this answer is to be looked at: compares it with the last answer
    /// kept for the same request, and keeps it in its place.
    ///
    /// (Keeping the parsed body as well, to spare the earlier answer's parse, measured
    /// slower on the analysis benchmark: the documents held cost more than the parses.)
    pub(crate) fn observe(
        &mut self,
        route_slot: usize,
        request: &CapturedRequest,
        answer: &PreparedResponse<'_>,
        counts: &mut RepeatCounts,
        rules: &IgnoreRules,
    ) {
        counts.observed += 1;
        let warming_up =
            counts.compared < COMPARE_ALL_FIRST && counts.observed <= OBSERVE_ALL_FIRST;
        if !warming_up && !counts.observed.is_multiple_of(OBSERVE_ONE_IN) {
            return;
        }
        let Some(key) = RequestKey::of(route_slot, request) else {
            return;
        };
        let response = answer.response();
        if let Some(last) = self.take(&key)
            && last.answer.status == response.status
        {
            // Read as the new answer is (the same method, the same descriptors), or a
            // message by name would differ from itself by number.
            let before = PreparedResponse::new(&last.answer, "earlier primary")
                .for_method(answer.method())
                .with_descriptors(answer.descriptors());
            let d = diff::diff_prepared(&before, answer, rules, diff::Detail::Paths);
            counts.record(&d.field_changes());
        }
        let kept = Kept::new(response);
        if kept.bytes <= MAX_KEPT_ANSWER {
            self.keep(key, kept);
        }
    }
}

/// How a field changed over the primary's repeats.
#[derive(Debug, Default, Clone, Copy)]
struct RepeatField {
    changed: u64,
    shape: u64,
}

/// The primary's repeats at one endpoint: how many were compared and what changed.
#[derive(Debug, Default)]
pub(crate) struct RepeatCounts {
    /// Answers of the endpoint seen (looked at or not).
    observed: u64,
    /// Of which compared with the earlier answer.
    compared: u64,
    fields: HashMap<FieldPath, RepeatField>,
}

impl RepeatCounts {
    fn record(&mut self, changes: &[FieldChange]) {
        self.compared += 1;
        for c in changes {
            if !self.fields.contains_key(&c.path) && self.fields.len() >= MAX_FIELDS {
                continue;
            }
            let field = match self.fields.get_mut(&c.path) {
                Some(f) => f,
                None => self.fields.entry(c.path.clone()).or_default(),
            };
            field.changed += 1;
            field.shape += u64::from(c.shape);
        }
    }

    /// Repeats compared, and how many changed at `field` (in any way, and in shape); `None`
    /// before the first repeat.
    pub(crate) fn counts(&self, field: &FieldPath) -> Option<FieldCounts> {
        (self.compared > 0).then(|| {
            let f = self.fields.get(field).copied().unwrap_or_default();
            FieldCounts {
                compared: self.compared,
                differing: f.changed,
                shape: f.shape,
            }
        })
    }

    /// Drops fields that `rules` now ignore.
    pub(crate) fn forget_ignored(&mut self, rules: &IgnoreRules) {
        self.fields.retain(|f, _| !rules.ignores(f));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CapturedBody;
    use std::time::Duration;

    fn request(uri: &str, headers: &[(&'static str, &str)]) -> CapturedRequest {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            if let Ok(v) = http::HeaderValue::from_str(v) {
                map.append(*k, v);
            }
        }
        CapturedRequest {
            method: http::Method::GET,
            uri: uri.to_owned(),
            authority: "reviews".to_owned(),
            version: http::Version::HTTP_11,
            headers: map,
            body: CapturedBody::default(),
        }
    }

    fn answer(body: String) -> CapturedResponse {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        CapturedResponse {
            trailers: None,
            status: http::StatusCode::OK,
            headers,
            body: CapturedBody {
                total_len: body.len() as u64,
                bytes: body.into(),
                truncated: false,
            },
            ttfb: Duration::from_millis(1),
            total: Duration::from_millis(2),
            version: http::Version::HTTP_11,
        }
    }

    #[test]
    fn identical_requests_share_a_key_whatever_their_trace_ids() {
        let key = |uri, headers| RequestKey::of(0, &request(uri, headers));
        let a = key("/r/1", &[("x-request-id", "a"), ("accept", "*/*")]);
        assert!(a.is_some());
        assert_eq!(a, key("/r/1", &[("accept", "*/*"), ("x-request-id", "b")]));
        assert_ne!(a, key("/r/2", &[("accept", "*/*")]));
        assert_ne!(a, key("/r/1", &[("accept", "*/*"), ("cookie", "user=ann")]));
        assert_ne!(a, RequestKey::of(1, &request("/r/1", &[("accept", "*/*")])));
        let mut cut = request("/r/1", &[]);
        cut.body.truncated = true;
        assert_eq!(RequestKey::of(0, &cut), None);
    }

    fn observe(store: &mut PrimaryAnswers, counts: &mut RepeatCounts, uri: &str, body: String) {
        let r = answer(body);
        let prepared = PreparedResponse::new(&r, "primary");
        store.observe(
            0,
            &request(uri, &[]),
            &prepared,
            counts,
            &IgnoreRules::none(),
        );
    }

    #[test]
    fn repeats_count_what_changed_and_the_store_stays_bounded() {
        let mut store = PrimaryAnswers::default();
        let mut counts = RepeatCounts::default();
        for i in 0..10u64 {
            observe(
                &mut store,
                &mut counts,
                "/r/1",
                format!(r#"{{"id":1,"at":{i}}}"#),
            );
        }
        let at = counts.counts(&FieldPath::Json("/at".into()));
        assert_eq!(at.map(|c| (c.compared, c.differing)), Some((9, 9)));
        assert_eq!(
            counts
                .counts(&FieldPath::Json("/id".into()))
                .map(|c| c.differing),
            Some(0)
        );
        // Many distinct requests, each looked at (a fresh endpoint each): the store keeps
        // the most recent within its bounds.
        for i in 0..(MAX_KEPT_REQUESTS as u64 * 3) {
            let mut fresh = RepeatCounts::default();
            observe(
                &mut store,
                &mut fresh,
                &format!("/s/{i}"),
                format!(r#"{{"id":{i}}}"#),
            );
            assert_eq!(fresh.compared, 0, "no request repeated");
        }
        assert!(store.len() <= MAX_KEPT_REQUESTS, "{}", store.len());
        assert!(store.bytes() <= MAX_KEPT_BYTES);
    }

    #[test]
    fn after_the_first_repeats_one_answer_in_sixty_four_is_looked_at() {
        let mut store = PrimaryAnswers::default();
        let mut counts = RepeatCounts::default();
        let n = COMPARE_ALL_FIRST + 1 + 10 * OBSERVE_ONE_IN;
        for i in 0..n {
            observe(&mut store, &mut counts, "/r/1", format!(r#"{{"at":{i}}}"#));
        }
        assert_eq!(counts.compared, COMPARE_ALL_FIRST + 10);
        assert_eq!(
            counts
                .counts(&FieldPath::Json("/at".into()))
                .map(|c| c.differing),
            Some(COMPARE_ALL_FIRST + 10)
        );
    }
}
