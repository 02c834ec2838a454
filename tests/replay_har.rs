//! Replaying a HAR file through a lab in front of real upstreams on 127.0.0.1: every
//! request arrives, in order, at the original pace within wide margins (or faster when
//! asked), marked as replayed, and the report counts them.

mod common;
mod replay_support;

use std::time::{Duration, Instant};

use mirrorlab::export::{Report, RunInfo};
use mirrorlab::replay::{HostMap, Pace, ReplayOptions, RequestFilter, SourceOptions, load_traffic};
use replay_support::{HarRequest, har_json, replay_file, write};

fn options(pace: Pace, concurrency: usize) -> ReplayOptions {
    ReplayOptions {
        pace,
        concurrency,
        ..ReplayOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_har_replays_every_request_in_order_at_the_original_pace() {
    let mesh = common::Mesh::start().await;
    let lab = common::start_lab(&mesh.yaml(common::TO_V1_MIRRORED), Some(7));
    let dir = tempfile::tempdir().expect("temp dir");
    let requests: Vec<HarRequest> = (0..6u64)
        .map(|i| {
            let r = HarRequest::get(format!("http://reviews/reviews/{i}?n={i}"), i * 150);
            if i == 3 { r.post(r#"{"stars":5}"#) } else { r }
        })
        .collect();
    let path = write(dir.path(), "traffic.har", &har_json(&requests).to_string());

    let started = Instant::now();
    let progress = replay_file(
        &path,
        lab.local_addr(),
        SourceOptions::default(),
        options(Pace::Times(1.0), 8),
        Duration::from_secs(20),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(
        (progress.sent, progress.answered, progress.failed),
        (6, 6, 0)
    );
    assert!(progress.finished);
    // The last request is recorded 750 ms after the first; wide margins for a busy machine.
    assert!(
        took >= Duration::from_millis(700),
        "replayed too fast: {took:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "replayed too slowly: {took:?}"
    );

    let primary = mesh.v1.wait_for(6, Duration::from_secs(5)).await;
    let paths: Vec<String> = primary.iter().map(|r| r.uri.to_string()).collect();
    let expected: Vec<String> = (0..6).map(|i| format!("/reviews/{i}?n={i}")).collect();
    assert_eq!(paths, expected, "every request, in the recorded order");
    assert_eq!(primary[3].method, http::Method::POST);
    assert_eq!(&primary[3].body[..], br#"{"stars":5}"#);
    assert_eq!(primary[0].headers["host"], "reviews");
    assert_eq!(mesh.v2.wait_for(6, Duration::from_secs(5)).await.len(), 6);

    let exchanges = common::wait_for_exchanges(lab.captures(), 6, Duration::from_secs(5)).await;
    assert_eq!(exchanges.len(), 6);
    assert!(
        exchanges.iter().all(|e| e.replayed()),
        "every exchange is marked replayed"
    );
    let mut arrivals: Vec<_> = exchanges.iter().map(|e| e.started_at).collect();
    arrivals.sort();
    for pair in arrivals.windows(2) {
        let gap = pair[1].duration_since(pair[0]).unwrap_or_default();
        assert!(
            gap >= Duration::from_millis(90) && gap <= Duration::from_millis(900),
            "recorded 150 ms apart, arrived {gap:?} apart"
        );
    }

    let snapshot = lab.shutdown(Duration::from_secs(5)).await;
    let report = Report::build(
        &snapshot,
        &RunInfo::ending_now(std::time::SystemTime::now()),
    );
    assert_eq!(report.totals.exchanges, 6);
    assert_eq!(report.routes[0].requests, 6);
    assert_eq!(report.routes[0].primary.status.codes.get("200"), Some(&6));
    assert_eq!(report.routes[0].mirrors[0].sent, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speed_factor_and_max_speed_shorten_the_replay() {
    let mesh = common::Mesh::start().await;
    let lab = common::start_lab(&mesh.yaml(common::TO_V1_MIRRORED), Some(7));
    let dir = tempfile::tempdir().expect("temp dir");
    // Five requests a second apart: four seconds at the original pace.
    let slow: Vec<HarRequest> = (0..5u64)
        .map(|i| HarRequest::get(format!("http://reviews/slow/{i}"), i * 1000))
        .collect();
    let path = write(dir.path(), "slow.har", &har_json(&slow).to_string());
    let started = Instant::now();
    let progress = replay_file(
        &path,
        lab.local_addr(),
        SourceOptions::default(),
        options(Pace::Times(10.0), 8),
        Duration::from_secs(20),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(progress.answered, 5);
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(3),
        "4 s of traffic at 10× took {took:?}"
    );

    // Forty requests spread over 39 s, at max speed four at a time.
    let spread: Vec<HarRequest> = (0..40u64)
        .map(|i| HarRequest::get(format!("http://reviews/fast/{i}"), i * 1000))
        .collect();
    let path = write(dir.path(), "spread.har", &har_json(&spread).to_string());
    let started = Instant::now();
    let progress = replay_file(
        &path,
        lab.local_addr(),
        SourceOptions::default(),
        options(Pace::Max, 4),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!((progress.sent, progress.answered), (40, 40));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "max speed waited for the offsets"
    );
    assert_eq!(mesh.v1.wait_for(45, Duration::from_secs(5)).await.len(), 45);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_pick_requests_and_host_maps_readdress_them() {
    let mesh = common::Mesh::start().await;
    let lab = common::start_lab(&mesh.yaml(common::TO_V1_MIRRORED), Some(7));
    let dir = tempfile::tempdir().expect("temp dir");
    let recorded = [
        HarRequest::get("https://www.example.com/reviews/1", 0),
        HarRequest::get("https://www.example.com/reviews/2", 10).post("{}"),
        HarRequest::get("https://static.example.com/app.js", 20),
        HarRequest::get("https://www.example.com/ratings/3", 30),
        HarRequest::get("https://www.example.com/reviews/4#top", 40),
    ];
    let path = write(dir.path(), "site.har", &har_json(&recorded).to_string());
    let filter = RequestFilter::parse("host=*.example.com,method=GET,path=/reviews/*")
        .expect("filter parses");
    let hosts = HostMap::parse(&["www.example.com=reviews"]).expect("host map parses");
    let traffic = load_traffic(&path, &SourceOptions::default())
        .expect("loads")
        .select(&filter, &hosts);
    let kept: Vec<(&str, &str)> = traffic
        .requests
        .iter()
        .map(|r| (r.authority.as_str(), r.target.as_str()))
        .collect();
    assert_eq!(kept, [("reviews", "/reviews/1"), ("reviews", "/reviews/4")]);

    let requests: std::sync::Arc<[_]> = traffic.requests.into();
    let mut handle = mirrorlab::replay::ReplayHandle::start(
        &tokio::runtime::Handle::current(),
        lab.local_addr(),
        requests,
        // One at a time: at max speed, more would race each other to the upstream.
        options(Pace::Max, 1),
    );
    let progress = tokio::time::timeout(Duration::from_secs(10), handle.wait())
        .await
        .expect("in time");
    assert_eq!(progress.answered, 2);
    let paths: Vec<String> = mesh
        .v1
        .wait_for(2, Duration::from_secs(5))
        .await
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(paths, ["/reviews/1", "/reviews/4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_replay_sends_nothing_until_resumed_and_a_stopped_one_nothing_more() {
    let mesh = common::Mesh::start().await;
    let lab = common::start_lab(&mesh.yaml(common::TO_V1_MIRRORED), Some(7));
    let dir = tempfile::tempdir().expect("temp dir");
    let recorded: Vec<HarRequest> = (0..20u64)
        .map(|i| HarRequest::get(format!("http://reviews/p/{i}"), i * 100))
        .collect();
    let path = write(dir.path(), "paced.har", &har_json(&recorded).to_string());
    let traffic = load_traffic(&path, &SourceOptions::default()).expect("loads");
    let requests: std::sync::Arc<[_]> = traffic.requests.into();
    let mut handle = mirrorlab::replay::ReplayHandle::start(
        &tokio::runtime::Handle::current(),
        lab.local_addr(),
        requests,
        options(Pace::Times(1.0), 4),
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    handle.pause();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let at_pause = handle.progress();
    assert!(at_pause.paused);
    assert!(at_pause.sent >= 1 && at_pause.sent < 20, "{at_pause:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        handle.progress().sent,
        at_pause.sent,
        "nothing is sent while paused"
    );
    handle.resume();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let resumed = handle.progress().sent;
    assert!(
        resumed > at_pause.sent,
        "resumed: {resumed} after {}",
        at_pause.sent
    );
    handle.stop();
    let last = tokio::time::timeout(Duration::from_secs(10), handle.wait())
        .await
        .expect("a stopped replay ends");
    assert!(last.finished);
    assert!(last.sent < 20, "stopped before the end: {last:?}");
    assert_eq!(last.answered + last.failed, last.sent);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mesh.v1.received().len() as u64, last.sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rounds_of_a_looped_replay_are_repeats_of_the_same_requests() {
    let mesh = common::Mesh::start().await;
    let lab = common::start_lab(&mesh.yaml(common::TO_V1_MIRRORED), Some(7));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(
        dir.path(),
        "one.har",
        &har_json(&[HarRequest::get("http://reviews/reviews/1", 0)]).to_string(),
    );
    let progress = replay_file(
        &path,
        lab.local_addr(),
        SourceOptions::default(),
        ReplayOptions {
            rounds: Some(6),
            ..options(Pace::Max, 1)
        },
        Duration::from_secs(20),
    )
    .await;
    assert_eq!((progress.total, progress.answered), (Some(6), 6));
    let tags: Vec<String> = mesh
        .v1
        .wait_for(6, Duration::from_secs(5))
        .await
        .iter()
        .map(|r| {
            r.headers["x-mirrorlab-replay"]
                .to_str()
                .expect("ascii")
                .to_owned()
        })
        .collect();
    assert_eq!(tags, ["1", "2:1", "3:1", "4:1", "5:1", "6:1"]);
    common::wait_for_exchanges(lab.captures(), 6, Duration::from_secs(5)).await;
    let snapshot = lab.shutdown(Duration::from_secs(5)).await;
    let report = Report::build(
        &snapshot,
        &RunInfo::ending_now(std::time::SystemTime::now()),
    );
    let row = report
        .diffs
        .iter()
        .find(|d| d.field.to_string() == "/version")
        .expect("v2 answers another version");
    // The replay's numbering header is not part of what makes two requests the same: the
    // primary's answers to the six rounds are compared as repeats (five comparisons).
    assert_eq!(row.repeats, Some(5), "{row:?}");
    assert_eq!(row.repeats_changed, Some(0));
}
