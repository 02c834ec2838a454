//! Analysis throughput: how much CPU the analysis task needs for 5,000 exchanges a second
//! with 2 KiB JSON bodies (the issue's bar: less than one core).
//!
//! `cargo bench --bench analysis` prints, per scenario, exchanges per second on one thread,
//! CPU time per exchange, and the share of a core that 5,000 exchanges a second would take.
//! Snapshots are taken at the app's 30 Hz rate (every 167 exchanges at 5,000/s) and counted.
//! An optional argument sets the number of exchanges per scenario (default 50,000).
//!
//! Without a release build of every dependency, optimise just this crate on top of the
//! warm dev build (dependencies stay at the dev profile's opt-level 1, so the figure is
//! conservative):
//! `cargo bench --profile dev --config 'profile.dev.package.mirrorlab.opt-level=3' --bench analysis`
//!
//! The 500 distinct requests repeat a hundred times each, so the primary's repeats are
//! compared as they are for live traffic (every answer for an endpoint's first 64 repeats,
//! then one answer in 64).
//!
//! Figures on the 2-core lab machine (shared with other builds, so take the median of
//! several runs, interleaved with the code compared against), 2,147-byte JSON bodies, with
//! `cargo bench --bench analysis` (release): one candidate mirror 26 µs CPU per exchange
//! (13% of a core at 5,000/s); a candidate plus a baseline mirror 40 µs (20% of a core).
//! (Before volatile fields and reorders, at the same time on the same machine: 27 µs and
//! 47 µs at main's e51d4af, 24 µs and 42 µs at 6e99cf4; with the dev-profile command above,
//! 6e99cf4 ran at 30 µs and 51 µs.)

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use mirrorlab::analysis::{AnalysisSettings, Analyzer};
use mirrorlab::capture::{
    CapturedBody, CapturedRequest, CapturedResponse, Exchange, PrimaryRecord, ShadowOutcome,
    ShadowRecord, UpstreamOutcome,
};
use mirrorlab::routing::RouteTrace;

const TARGET_RATE: f64 = 5000.0;
const SNAPSHOT_EVERY: u64 = 167; // 30 Hz at 5,000 exchanges/s

/// CPU time this thread has used, from Linux's schedstat (nanoseconds on CPU); `None`
/// elsewhere, in which case wall time stands in.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// A ~2 KiB JSON document: a review page with nested objects and arrays. `variant`
/// changes one rating, `nonce` a random field, as real candidates and noise do.
fn review_json(id: u64, variant: u64, nonce: u64) -> Bytes {
    let reviews: Vec<String> = (0..12)
        .map(|i| {
            format!(
                r#"{{"reviewer":"reviewer-{i}","rating":{{"stars":{},"color":"black"}},"text":"An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!","helpful":{}}}"#,
                if i == 0 { 4 + variant } else { 5 },
                i * 3
            )
        })
        .collect();
    Bytes::from(format!(
        r#"{{"id":{id},"podname":"reviews-v1-7d9f","clustername":"null","nonce":"{nonce:016x}","generatedAt":"2026-01-01T00:00:{:02}Z","reviews":[{}]}}"#,
        nonce % 60,
        reviews.join(",")
    ))
}

fn resp(body: Bytes, ms: u64) -> CapturedResponse {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::DATE,
        http::HeaderValue::from_static("Thu, 01 Jan 2026 00:00:00 GMT"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&body.len().to_string()) {
        headers.insert(http::header::CONTENT_LENGTH, v);
    }
    CapturedResponse {
        trailers: None,
        status: http::StatusCode::OK,
        headers,
        body: CapturedBody {
            total_len: body.len() as u64,
            bytes: body,
            truncated: false,
        },
        ttfb: Duration::from_micros(ms * 700),
        total: Duration::from_millis(ms),
        version: http::Version::HTTP_11,
    }
}

fn exchanges(n: u64, with_baseline: bool) -> Vec<Exchange> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..n)
        .map(|i| {
            let id = i % 500;
            let mut shadows = vec![ShadowRecord {
                target: Arc::from("reviews/v2"),
                endpoint: Some("127.0.0.1:9082".into()),
                outcome: ShadowOutcome::Sent(UpstreamOutcome::Response(resp(
                    review_json(id, 1, rng.u64(..)),
                    rng.u64(5..40),
                ))),
            }];
            if with_baseline {
                shadows.push(ShadowRecord {
                    target: Arc::from("reviews/v1"),
                    endpoint: Some("127.0.0.1:9081".into()),
                    outcome: ShadowOutcome::Sent(UpstreamOutcome::Response(resp(
                        review_json(id, 0, rng.u64(..)),
                        rng.u64(5..40),
                    ))),
                });
            }
            Exchange {
                tunnel: None,
                id: i,
                request_id: format!("{i:032x}"),
                started_at: UNIX_EPOCH + Duration::from_micros(1_767_225_600_000_000 + i * 200),
                trace: Some(RouteTrace {
                    virtual_service: "default/reviews".into(),
                    route_index: 0,
                    route_name: None,
                    match_index: None,
                    match_summary: "".into(),
                    ..Default::default()
                }),
                request: CapturedRequest {
                    method: http::Method::GET,
                    uri: format!("/reviews/{id}"),
                    authority: "reviews".to_owned(),
                    version: http::Version::HTTP_11,
                    headers: http::HeaderMap::new(),
                    body: CapturedBody::default(),
                },
                primary: Some(PrimaryRecord {
                    target: Arc::from("reviews/v1"),
                    endpoint: "127.0.0.1:9081".into(),
                    attempts: Vec::new(),
                    outcome: UpstreamOutcome::Response(resp(
                        review_json(id, 0, rng.u64(..)),
                        rng.u64(5..40),
                    )),
                }),
                shadows,
                forwarded: None,
                flags: Default::default(),
            }
        })
        .collect()
}

fn run(name: &str, with_baseline: bool, n: u64) {
    let input = exchanges(n, with_baseline);
    let body_len = input
        .first()
        .and_then(|e| e.primary.as_ref())
        .and_then(|p| match &p.outcome {
            UpstreamOutcome::Response(r) => Some(r.body.bytes.len()),
            UpstreamOutcome::Failed(_) => None,
        })
        .unwrap_or(0);
    let mut analyzer = Analyzer::new(AnalysisSettings::default());
    // Warm-up pass so allocations of the first seconds are not counted.
    for e in input.iter().take(2000) {
        analyzer.ingest(e);
    }
    let mut analyzer = Analyzer::new(AnalysisSettings::default());
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    let mut snapshots = 0u64;
    for (i, e) in input.iter().enumerate() {
        analyzer.ingest(e);
        if (i as u64 + 1).is_multiple_of(SNAPSHOT_EVERY) {
            black_box(analyzer.snapshot_at(SystemTime::now()));
            snapshots += 1;
        }
    }
    let wall = t0.elapsed();
    let cpu = match (cpu0, thread_cpu()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => wall,
    };
    let per_exchange = cpu.as_secs_f64() / n as f64;
    let snap = analyzer.snapshot();
    println!(
        "{name}: {n} exchanges, {body_len} B bodies, {snapshots} snapshots: {:.0} exchanges/s on one thread, \
         {:.1} µs CPU per exchange, {:.1}% of a core at {TARGET_RATE:.0}/s ({} diff rows)",
        n as f64 / wall.as_secs_f64(),
        per_exchange * 1e6,
        per_exchange * TARGET_RATE * 100.0,
        snap.diffs.len(),
    );
}

fn main() {
    let n = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<u64>().ok())
        .unwrap_or(50_000);
    run("one candidate mirror", false, n);
    run("candidate + baseline mirror", true, n);
}
