//! Statistics against known inputs: counts, status classes, error kinds, skips,
//! percentiles, shadow-minus-primary latency and the per-second series.

mod analysis_support;

use analysis_support::*;
use mirrorlab::analysis::{AnalysisSettings, Analyzer};
use mirrorlab::capture::{SkipReason, UpstreamErrorKind};

fn close(actual: f64, expected: f64) -> bool {
    // hdrhistogram keeps 3 significant figures: 0.1% plus rounding to whole microseconds.
    (actual - expected).abs() <= expected.abs() * 0.002 + 0.002
}

/// 100 exchanges over 10 seconds: primary total 1..=100 ms, ten of them 503; the mirror
/// answers 5 ms slower, except 5 skipped (not sampled) and 3 timeouts.
fn known_run() -> Analyzer {
    let mut a = Analyzer::new(AnalysisSettings::default());
    for i in 1..=100u64 {
        let status = if i % 10 == 0 { 503 } else { 200 };
        let primary = ok(response(status, "{}", i));
        let shadow = match i {
            1..=5 => skipped("reviews/v2", SkipReason::NotSampled),
            6..=8 => sent_failed("reviews/v2", UpstreamErrorKind::Timeout),
            _ => sent("reviews/v2", response(status, "{}", i + 5)),
        };
        a.ingest(&exchange(
            i,
            T0 + (i - 1) / 10,
            "/reviews/1",
            primary,
            vec![shadow],
        ));
    }
    a
}

#[test]
fn counts_statuses_errors_and_skips() {
    let snap = known_run().snapshot();
    assert_eq!(snap.exchanges, 100);
    assert_eq!(snap.routes.len(), 1);
    let route = &snap.routes[0];
    assert_eq!(route.label, "default/reviews:http[0]");
    assert_eq!(route.requests, 100);

    let p = &route.primary;
    assert_eq!(p.sent, 100);
    assert_eq!(p.status.codes.get(&200), Some(&90));
    assert_eq!(p.status.codes.get(&503), Some(&10));
    assert_eq!(p.status.class(2), 90);
    assert_eq!(p.status.class(5), 10);
    assert_eq!(p.targets.get("reviews/v1"), Some(&100));
    assert_eq!(p.error_count(), 0);

    assert_eq!(route.mirrors.len(), 1);
    let m = &route.mirrors[0];
    assert_eq!(m.label, "reviews/v2");
    assert!(!m.baseline);
    assert_eq!(m.sent, 95);
    assert_eq!(m.skipped.get(&SkipReason::NotSampled), Some(&5));
    assert_eq!(m.skipped_count(), 5);
    assert_eq!(m.errors.get(&UpstreamErrorKind::Timeout), Some(&3));
    assert_eq!(m.status.codes.values().sum::<u64>(), 92);
    assert_eq!(m.status.codes.get(&503), Some(&10)); // i = 10, 20, ..., 100 all answered
}

#[test]
fn percentiles_and_delta() {
    let snap = known_run().snapshot();
    let p = &snap.routes[0].primary;
    assert_eq!(p.total.count, 100);
    assert!(close(p.total.p50_ms, 50.0), "p50 {}", p.total.p50_ms);
    assert!(close(p.total.p90_ms, 90.0), "p90 {}", p.total.p90_ms);
    assert!(close(p.total.p99_ms, 99.0), "p99 {}", p.total.p99_ms);
    assert!(close(p.total.p999_ms, 100.0), "p999 {}", p.total.p999_ms);
    assert_eq!(p.total.max_ms, 100.0);
    assert!(close(p.total.mean_ms, 50.5), "mean {}", p.total.mean_ms);
    assert!(close(p.ttfb.max_ms, 50.0), "ttfb max {}", p.ttfb.max_ms);

    let m = &snap.routes[0].mirrors[0];
    assert!(close(m.total.max_ms, 105.0));
    assert!(
        close(m.total.p50_ms, 59.0) || close(m.total.p50_ms, 60.0),
        "{}",
        m.total.p50_ms
    );
    let d = m.delta.expect("paired requests give a delta");
    assert_eq!(d.count, 92);
    assert!(
        close(d.p50_ms, 5.0) && close(d.max_ms, 5.0) && close(d.min_ms, 5.0),
        "{d:?}"
    );
    assert_eq!(d.shadow_slower, 92);

    // the distribution covers every response and its CDF ends at 1
    let total: u64 = p.distribution.iter().map(|b| b.count).sum();
    assert_eq!(total, 100);
    assert!(
        p.distribution
            .last()
            .is_some_and(|b| (b.cumulative_fraction - 1.0).abs() < 1e-9)
    );
    assert!(
        p.distribution
            .windows(2)
            .all(|w| w[0].upper_ms <= w[1].upper_ms)
    );
}

#[test]
fn negative_delta_when_shadow_is_faster() {
    let mut a = Analyzer::new(AnalysisSettings::default());
    // shadow faster by 10 ms in 3 of 4, slower by 20 ms in 1
    for (i, (p, s)) in [(50, 40), (60, 50), (70, 60), (30, 50)]
        .into_iter()
        .enumerate()
    {
        a.ingest(&exchange(
            i as u64,
            T0,
            "/",
            ok(response(200, "{}", p)),
            vec![sent("reviews/v2", response(200, "{}", s))],
        ));
    }
    let d = a.snapshot().routes[0].mirrors[0].delta.expect("paired");
    assert!(close(d.min_ms, -10.0), "{d:?}");
    assert!(close(d.p50_ms, -10.0), "{d:?}");
    assert!(close(d.max_ms, 20.0), "{d:?}");
    assert!(close(d.mean_ms, -2.5), "{d:?}");
    assert_eq!(d.shadow_slower, 1);
}

#[test]
fn time_series_per_second() {
    let snap = known_run().snapshot();
    let series = &snap.routes[0].primary.series;
    assert_eq!(
        series.len(),
        10,
        "one point per second from the first to the newest"
    );
    assert_eq!(series[0].unix_second, T0);
    assert!(series.iter().all(|p| p.requests == 10));
    // one 503 per second (i = 10, 20, ...)
    assert!(series.iter().all(|p| (p.error_rate - 0.1).abs() < 1e-9));
    // second 0 holds totals 1..=10 ms
    let p50 = series[0].p50_ms.expect("responses in second 0");
    assert!((4.9..=5.1).contains(&p50), "{p50}");
    let max = series[9].max_ms.expect("responses in second 9");
    assert!((99.0..=101.0).contains(&max), "{max}");

    // mirror: second 0 has 5 skipped (not in the series), 3 timeouts, a 200 and a 503
    let m = &snap.routes[0].mirrors[0].series;
    assert_eq!(m[0].requests, 5);
    assert!((m[0].error_rate - 0.8).abs() < 1e-9, "{}", m[0].error_rate);
}

#[test]
fn series_window_slides_and_fills_gaps() {
    let mut a = Analyzer::new(AnalysisSettings::default());
    a.ingest(&exchange(1, T0, "/", ok(response(200, "{}", 10)), vec![]));
    a.ingest(&exchange(
        2,
        T0 + 3,
        "/",
        ok(response(200, "{}", 10)),
        vec![],
    ));
    let s = a.snapshot();
    let pts = &s.routes[0].primary.series;
    assert_eq!(
        pts.iter().map(|p| p.requests).collect::<Vec<_>>(),
        vec![1, 0, 0, 1]
    );
    assert_eq!(pts[1].p50_ms, None);

    // 20 minutes later the first two points have left the 10-minute window
    a.ingest(&exchange(
        3,
        T0 + 1200,
        "/",
        ok(response(200, "{}", 10)),
        vec![],
    ));
    let s = a.snapshot();
    let pts = &s.routes[0].primary.series;
    assert_eq!(pts.len(), 1);
    assert_eq!(pts[0].unix_second, T0 + 1200);
    // a late exchange older than the window is counted in totals but not plotted
    a.ingest(&exchange(
        4,
        T0 + 1,
        "/",
        ok(response(200, "{}", 10)),
        vec![],
    ));
    let s = a.snapshot();
    assert_eq!(s.routes[0].primary.sent, 4);
    assert_eq!(
        s.routes[0]
            .primary
            .series
            .iter()
            .map(|p| p.requests)
            .sum::<u64>(),
        1
    );
    // snapshot_at moves the end of the window forward even without traffic
    let later = a.snapshot_at(at(T0 + 1210));
    assert_eq!(later.routes[0].primary.series.len(), 11);
}

#[test]
fn unrouted_and_primary_failures() {
    let mut a = Analyzer::new(AnalysisSettings::default());
    let mut e = exchange(1, T0, "/", ok(response(200, "{}", 1)), vec![]);
    e.trace = None;
    e.primary = None;
    a.ingest(&e);
    a.ingest(&exchange(
        2,
        T0,
        "/",
        failure(UpstreamErrorKind::Refused, 1),
        vec![sent("reviews/v2", response(200, "{}", 3))],
    ));
    let s = a.snapshot();
    assert_eq!(s.exchanges, 2);
    assert_eq!(s.unrouted, 1);
    let r = &s.routes[0];
    assert_eq!(r.primary.errors.get(&UpstreamErrorKind::Refused), Some(&1));
    assert_eq!(r.primary.total.count, 0);
    assert_eq!(
        r.mirrors[0].delta, None,
        "no pair without a primary response"
    );
    assert_eq!(
        s.diff_headline(2),
        Some("primary failed; not compared".to_owned())
    );
}

#[test]
fn long_run_keeps_ten_minutes_and_late_exchanges_count() {
    let mut a = Analyzer::new(AnalysisSettings::default());
    for s in 0..700u64 {
        a.ingest(&exchange(
            s,
            T0 + s,
            "/",
            ok(response(200, "{}", 10 + s % 5)),
            vec![],
        ));
    }
    let snap = a.snapshot();
    let pts = &snap.routes[0].primary.series;
    assert_eq!(pts.len(), 600);
    assert_eq!(pts[0].unix_second, T0 + 100);
    assert!(pts.iter().all(|p| p.requests == 1 && p.p50_ms.is_some()));
    let before = pts[550];
    // second T0+650 closed long ago (newest is T0+699): counted, percentiles kept
    a.ingest(&exchange(
        9000,
        T0 + 650,
        "/",
        ok(response(500, "{}", 900)),
        vec![],
    ));
    let after = a.snapshot().routes[0].primary.series[550];
    assert_eq!(after.unix_second, T0 + 650);
    assert_eq!(after.requests, 2);
    assert_eq!(after.error_rate, 0.5);
    assert_eq!(after.max_ms, before.max_ms);
    // a second still open takes the late latency into its percentiles
    a.ingest(&exchange(
        9001,
        T0 + 695,
        "/",
        ok(response(200, "{}", 900)),
        vec![],
    ));
    let open = a.snapshot().routes[0].primary.series[595];
    assert_eq!(open.requests, 2);
    assert!(open.max_ms.is_some_and(|m| m > 800.0), "{open:?}");
}

#[test]
fn snapshot_crosses_threads_and_clear_forgets() {
    fn send_sync<T: Send + Sync + Clone>(_: &T) {}
    let mut a = known_run();
    let snap = a.snapshot();
    send_sync(&snap);
    let ui = std::thread::spawn(move || snap.routes[0].requests);
    assert_eq!(ui.join().ok(), Some(100));
    a.clear();
    let s = a.snapshot();
    assert_eq!((s.exchanges, s.routes.len(), s.summaries.len()), (0, 0, 0));
    assert!(
        s.ignore_rules.contains("header:date"),
        "settings survive Clear"
    );
}

/// Exchanges of several routes, interleaved: each counts on its own route, whether the
/// routes differ by VirtualService, by index or only by name.
#[test]
fn interleaved_routes_are_counted_apart() {
    let mut a = Analyzer::new(AnalysisSettings::default());
    let named = |name: &str| {
        let mut t = trace("default/reviews", 0);
        t.route_name = Some(name.into());
        t
    };
    let traces = [
        trace("default/reviews", 0),
        trace("default/reviews", 1),
        trace("default/ratings", 0),
        named("canary"),
    ];
    // Route i gets i + 1 exchanges, in runs and alternating.
    let order = [0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 1, 2, 3];
    for (id, &route) in order.iter().enumerate() {
        let mut e = exchange(
            id as u64,
            T0,
            "/reviews/1",
            ok(response(200, "{}", 5)),
            vec![sent("reviews/v2", response(200, "{}", 6))],
        );
        e.trace = Some(traces[route].clone());
        a.ingest(&e);
    }
    let snap = a.snapshot();
    let labels: Vec<(&str, u64)> = snap
        .routes
        .iter()
        .map(|r| (r.label.as_str(), r.requests))
        .collect();
    assert_eq!(snap.routes.len(), 4, "{labels:?}");
    let requests = |label: &str| {
        snap.routes
            .iter()
            .find(|r| r.label == label)
            .unwrap_or_else(|| {
                panic!(
                    "no route {label}: {:?}",
                    snap.routes.iter().map(|r| &r.label).collect::<Vec<_>>()
                )
            })
            .requests
    };
    assert_eq!(requests("default/reviews:http[0]"), 1);
    assert_eq!(requests("default/reviews:http[1]"), 3);
    assert_eq!(requests("default/ratings:http[0]"), 4);
    assert_eq!(requests("default/reviews:canary"), 5);
}
