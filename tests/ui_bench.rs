//! UI frame cost with the load the issue names: the Dashboard over two minutes of 5,000
//! requests a second, and the Traffic table with 100,000 rows. Prints figures; run with
//! `cargo test --test ui_bench -- --ignored --nocapture` (debug builds give pessimistic
//! numbers; `--release` gives the real ones).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use egui_kittest::Harness;
use mirrorlab::analysis::{AnalysisSettings, Analyzer};
use mirrorlab::capture::{
    CapturedBody, CapturedRequest, CapturedResponse, Exchange, PrimaryRecord, ShadowOutcome,
    ShadowRecord, UpstreamOutcome,
};
use mirrorlab::routing::RouteTrace;
use mirrorlab::ui::dashboard::{DashboardPanel, DashboardView};
use mirrorlab::ui::traffic::{TrafficPanel, TrafficView};

fn response(status: u16, ms: u64, body: &str) -> CapturedResponse {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    CapturedResponse {
        trailers: None,
        status: http::StatusCode::from_u16(status).unwrap(),
        headers,
        body: CapturedBody {
            bytes: Bytes::from(body.to_owned()),
            total_len: body.len() as u64,
            truncated: false,
        },
        ttfb: Duration::from_millis(ms),
        total: Duration::from_millis(ms + 1),
        version: http::Version::HTTP_11,
    }
}

fn exchange(id: u64, at: SystemTime) -> Exchange {
    let product = id % 50;
    let shadow_status = if id.is_multiple_of(97) { 500 } else { 200 };
    Exchange {
        tunnel: None,
        id,
        request_id: format!("req-{id}"),
        started_at: at,
        trace: Some(RouteTrace {
            virtual_service: "default/reviews-vs".into(),
            route_index: 0,
            route_name: Some("reviews-v1-mirrored".into()),
            match_index: None,
            match_summary: "any request".into(),
            ..Default::default()
        }),
        request: CapturedRequest {
            method: http::Method::GET,
            uri: format!("/reviews/{product}"),
            authority: "reviews".to_owned(),
            version: http::Version::HTTP_11,
            headers: http::HeaderMap::new(),
            body: CapturedBody::default(),
        },
        primary: Some(PrimaryRecord {
            target: Arc::from("reviews/v1"),
            endpoint: "127.0.0.1:9081".into(),
            attempts: Vec::new(),
            outcome: UpstreamOutcome::Response(response(
                200,
                3 + id % 7,
                &format!(r#"{{"id":{product},"rating":4}}"#),
            )),
        }),
        forwarded: None,
        flags: Default::default(),
        shadows: vec![ShadowRecord {
            target: Arc::from("reviews-v2/v2"),
            endpoint: Some("127.0.0.1:9082".into()),
            outcome: ShadowOutcome::Sent(UpstreamOutcome::Response(response(
                shadow_status,
                30 + id % 11,
                &format!(r#"{{"id":{product},"rating":{},"stars":5}}"#, 4 + id % 2),
            ))),
        }],
    }
}

fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        p(0.5),
        p(0.9),
        p(1.0)
    )
}

#[test]
#[ignore = "benchmark: prints figures"]
fn ui_frame_cost_under_load() {
    const RPS: u64 = 5_000;
    const SECONDS: u64 = 120;
    let start = SystemTime::now() - Duration::from_secs(SECONDS);
    let mut analyzer = Analyzer::new(AnalysisSettings::default());
    let mut rows = Vec::with_capacity(100_000);
    let t = Instant::now();
    for i in 0..RPS * SECONDS {
        let at = start + Duration::from_micros(i * 1_000_000 / RPS);
        let e = exchange(i + 1, at);
        analyzer.ingest(&e);
        if i >= RPS * SECONDS - 100_000 {
            rows.push(Arc::new(e));
        }
    }
    println!(
        "setup: {} exchanges ingested in {:.1} s",
        RPS * SECONDS,
        t.elapsed().as_secs_f64()
    );
    let snapshot = analyzer.snapshot();

    // The Dashboard, 60 frames.
    let mut panel = DashboardPanel::default();
    let mut times = Vec::new();
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_ui(|ui| {
            let t = Instant::now();
            DashboardView {
                panel: &mut panel,
                snapshot: &snapshot,
            }
            .ui(ui);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        });
    h.run_steps(60);
    drop(h);
    println!("dashboard frame (2 min of 5,000 req/s): {}", stats(times));

    // The Traffic table with 100,000 rows; one second of new rows is added per frame
    // (5,000 at a time, the rate the issue names) and the oldest leave.
    let mut traffic = TrafficPanel::default();
    let t = Instant::now();
    traffic.push(rows.iter().cloned(), Some(&snapshot));
    println!(
        "traffic: 100,000 rows pushed in {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let mut next = RPS * SECONDS;
    let mut frame_times = Vec::new();
    let mut push_times = Vec::new();
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_ui(|ui| {
            let more: Vec<Arc<Exchange>> = (0..RPS / 10)
                .map(|k| Arc::new(exchange(next + k + 1, SystemTime::now())))
                .collect();
            next += RPS / 10;
            let t = Instant::now();
            traffic.push(more, Some(&snapshot));
            push_times.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            TrafficView {
                panel: &mut traffic,
                snapshot: Some(&snapshot),
                proxy: Some("127.0.0.1:15001"),
            }
            .ui(ui);
            frame_times.push(t.elapsed().as_secs_f64() * 1000.0);
        });
    h.run_steps(60);
    drop(h);
    println!(
        "traffic frame with 100,000 rows (+500 new rows a frame, 10 frames/s = 5,000 rows/s): {}",
        stats(frame_times)
    );
    println!("traffic: adding 500 rows: {}", stats(push_times));
    assert_eq!(traffic.len(), 100_000, "the table keeps its bound");
}

/// End to end: the real app with the lab running, generated traffic at 5,000 requests a
/// second through the proxy to two real upstreams, the Dashboard on screen. Prints the
/// request rate reached and how often the dashboard's numbers changed.
#[test]
#[ignore = "benchmark: prints figures"]
fn dashboard_refresh_rate_with_live_traffic() {
    #[path = "ui_common/mod.rs"]
    mod ui_common;
    let rt = ui_common::runtime();
    let v1 = ui_common::Upstream::start(&rt, None);
    let v2 = ui_common::Upstream::start(&rt, Some(r#""stars":5"#));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    std::fs::write(&path, ui_common::mirror_config(v1.addr, v2.addr)).unwrap();
    let mut h = ui_common::app(&rt, Some(&path));
    h.run_ok();
    h.state_mut()
        .push_command(mirrorlab::ui::Command::StartProxy);
    h.run_ok();
    h.state_mut().state.tab = mirrorlab::ui::Tab::Dashboard;
    let addr = h.state().lab.local_addr().expect("proxy runs");
    let generator = mirrorlab::demo::TrafficGenerator::start(
        rt.handle(),
        tokio_util::sync::CancellationToken::new(),
        mirrorlab::demo::TrafficSettings::new(addr, Some("reviews".to_owned()), 5_000.0),
    )
    .unwrap();

    // Step the app in real time for 10 s as eframe would: a frame whenever one is due.
    let start = Instant::now();
    let mut frames = Vec::new();
    let mut updates = 0u32;
    let mut last_seen = 0u64;
    while start.elapsed() < Duration::from_secs(10) {
        let t = Instant::now();
        h.step();
        frames.push(t.elapsed().as_secs_f64() * 1000.0);
        let seen = h.state().lab.analysis().exchanges;
        if seen != last_seen {
            updates += 1;
            last_seen = seen;
        }
        std::thread::sleep(Duration::from_millis(15));
    }
    let secs = start.elapsed().as_secs_f64();
    let stats_now = generator.stats();
    println!(
        "live: {:.0} req/s sent by the generator ({} ok, {} failed, {} ticks skipped), {:.0} exchanges/s analysed",
        stats_now.sent as f64 / secs,
        stats_now.ok,
        stats_now.failed,
        stats_now.skipped,
        last_seen as f64 / secs
    );
    println!(
        "live: {} frames in {secs:.1} s, dashboard numbers changed {:.1} times a second; frame {}",
        frames.len(),
        f64::from(updates) / secs,
        stats(frames)
    );
}
