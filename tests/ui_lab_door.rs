//! The app reaches the engine only through the lab: a frame never waits for it (a stop
//! that drains a slow request runs while frames go on), pausing Traffic never costs a
//! capture, and a reloaded config's diff-ignore annotations replace the old ones (a removed
//! one takes its rules along, one that does not parse says so in the app).

mod ui_common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use egui_kittest::kittest::Queryable as _;
use http_body_util::Full;
use mirrorlab::ui::{Command, Tab};
use ui_common::{Upstream, app, mirror_config, runtime, send_requests, wait_until};

/// A server on 127.0.0.1 that answers every request after `delay`.
fn slow_upstream(rt: &tokio::runtime::Runtime, delay: Duration) -> SocketAddr {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        b"{\"slow\":true}",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[test]
fn a_frame_never_waits_for_the_engine_while_a_stop_drains_a_slow_request() {
    let rt = runtime();
    let slow = slow_upstream(&rt, Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slow.yaml");
    std::fs::write(&path, mirror_config(slow, slow)).unwrap();
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    let addr = h.state().lab.local_addr().expect("the proxy runs");
    // One request in flight through the proxy: Stop gives it the drain time.
    rt.spawn(async move {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let _ = client
            .get(format!("http://{addr}/reviews/1"))
            .header("host", "reviews")
            .send()
            .await;
    });
    assert!(wait_until(&mut h, 5, |app| app
        .lab
        .counters()
        .is_some_and(|c| c.requests == 1)));

    h.state_mut().push_command(Command::StopProxy);
    let began = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut frames = 0u32;
    h.step();
    while h.state().engine_busy() && began.elapsed() < Duration::from_secs(10) {
        let t = Instant::now();
        h.step();
        slowest = slowest.max(t.elapsed());
        frames += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let busy_for = began.elapsed();
    println!(
        "stop drained for {busy_for:?}: {frames} frames meanwhile, the slowest {slowest:?} \
         (app work in the last {:?})",
        h.state().last_frame_work()
    );
    assert!(
        busy_for >= Duration::from_millis(300),
        "the stop had a request to drain ({busy_for:?}), so a blocking frame would show"
    );
    assert!(frames >= 5, "frames went on while the engine worked");
    assert!(
        slowest < Duration::from_millis(250),
        "a frame waited for the engine: {slowest:?}"
    );
    h.run_ok();
    assert!(!h.state().lab.is_running());
    assert_eq!(
        h.state().notice().map(|n| n.text.as_str()),
        Some("Proxy stopped.")
    );
}

#[test]
fn pausing_traffic_holds_exchanges_aside_and_never_drops_a_capture() {
    let rt = runtime();
    let files = ui_common::mirror_files(&rt);
    let mut h = app(&rt, Some(&files.path));
    h.run_ok();
    let addr = h.state().lab.local_addr().expect("the proxy runs");
    h.state_mut().state.tab = Tab::Traffic;
    h.run_ok();
    send_requests(&rt, addr, 1);
    assert!(wait_until(&mut h, 10, |app| app.traffic.len() == 1));
    h.get_by_label("Pause").click();
    h.run_ok();
    send_requests(&rt, addr, 30);
    assert!(wait_until(&mut h, 10, |app| app.traffic.held().0 == 30));
    assert_eq!(
        h.state().traffic.len(),
        1,
        "paused: the table stays as it was"
    );
    h.get_by_label_contains("(paused, 30 waiting)");
    let counters = h.state().lab.counters().expect("running");
    assert_eq!(
        counters.captures_dropped, 0,
        "a pause is not a lost capture"
    );
    h.get_by_label("Resume").click();
    h.run_ok();
    assert_eq!(h.state().traffic.len(), 31);
}

const IGNORE_STARS: &str =
    "  name: reviews-vs\n  annotations:\n    mirrorlab.dev/diff-ignore: /stars\n";

#[test]
fn a_removed_annotation_takes_its_rules_along_and_a_bad_one_says_so() {
    let rt = runtime();
    let v1 = Upstream::start(&rt, None);
    let v2 = Upstream::start(&rt, Some(r#""stars":5"#));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.yaml");
    let plain = mirror_config(v1.addr, v2.addr);
    let with = |annotation: &str| plain.replacen("  name: reviews-vs\n", annotation, 1);
    std::fs::write(&path, with(IGNORE_STARS)).unwrap();
    let mut h = app(&rt, Some(&path));
    h.run_ok();
    let addr = h.state().lab.local_addr().expect("the proxy runs");
    let sent_and_analyzed = |h: &mut egui_kittest::Harness<'_, _>, n: u64| {
        send_requests(&rt, addr, 1);
        assert!(wait_until(h, 10, |app: &mirrorlab::ui::MirrorlabApp| app
            .lab
            .analysis()
            .exchanges
            == n));
        let app = h.state();
        let id = app.traffic.newest_where(|_| true);
        id.map(|id| app.lab.analysis().differs_really(id))
    };
    assert_eq!(
        sent_and_analyzed(&mut h, 1),
        Some(false),
        "/stars is ignored"
    );

    // The annotation removed on disk, the file reloaded: /stars counts again.
    std::fs::write(&path, &plain).unwrap();
    h.state_mut().push_command(Command::Reload);
    h.run_ok();
    assert!(h.state().lab.is_running());
    assert_eq!(
        sent_and_analyzed(&mut h, 2),
        Some(true),
        "the removed annotation's rule is gone"
    );

    // An annotation that does not parse: the app says so, and names it.
    let bad = "  name: reviews-vs\n  annotations:\n    mirrorlab.dev/diff-ignore: stars\n";
    std::fs::write(&path, with(bad)).unwrap();
    h.state_mut().push_command(Command::Reload);
    h.run_ok();
    assert_eq!(
        h.state().ignore_errors().len(),
        1,
        "{:?}",
        h.state().notice()
    );
    h.get_by_label_contains("Not in force:");
    let notice = h.state().notice().cloned().unwrap();
    assert!(
        notice.is_error
            && notice.text.contains("not in force")
            && notice.text.contains("mirrorlab.dev/diff-ignore"),
        "{}",
        notice.text
    );
}
