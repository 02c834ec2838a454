//! Figures, not pass/fail: what the proxy adds to a request, and how many requests a second
//! it mirrors and captures. Run with
//! `cargo test --release --test proxy_bench -- --ignored --nocapture`
//! (a debug build gives pessimistic numbers: the crate itself is not optimised).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Mesh, client};
use hdrhistogram::Histogram;

/// Sequential GETs to `url`, returning latency percentiles in microseconds.
async fn latency(url: &str, host: Option<&str>, n: usize) -> Histogram<u64> {
    let http = client();
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    for _ in 0..n {
        let mut request = http.get(url);
        if let Some(host) = host {
            request = request.header("host", host);
        }
        let sent = Instant::now();
        let response = request.send().await.expect("answer");
        response.bytes().await.expect("body");
        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        histogram.record(micros).expect("record");
    }
    histogram
}

fn line(name: &str, h: &Histogram<u64>) {
    println!(
        "{name:<28} p50 {:>6} us  p90 {:>6} us  p99 {:>6} us  max {:>6} us",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.max()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures, run with --ignored --nocapture"]
async fn proxy_overhead_and_mirrored_throughput() {
    let mesh = Mesh::start().await;
    let lab = common::start_lab(&mesh.yaml(common::TO_V1_MIRRORED), Some(1));
    let direct = format!("http://{}/reviews/1", mesh.v1.addr);
    let proxied = format!("http://{}/reviews/1", lab.local_addr());

    // Warm both paths (connection pools, allocator).
    latency(&direct, None, 200).await;
    latency(&proxied, Some("reviews"), 200).await;
    let n = 2000;
    line("direct to upstream", &latency(&direct, None, n).await);
    line(
        "through proxy, mirrored",
        &latency(&proxied, Some("reviews"), n).await,
    );

    // Throughput: 32 clients for 5 s, every request mirrored and captured.
    let http = client();
    let stop_at = Instant::now() + Duration::from_secs(5);
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let before = lab.counters();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..32 {
        let (http, url, done) = (http.clone(), proxied.clone(), Arc::clone(&done));
        workers.push(tokio::spawn(async move {
            while Instant::now() < stop_at {
                let response = http
                    .get(&url)
                    .header("host", "reviews")
                    .send()
                    .await
                    .expect("answer");
                response.bytes().await.expect("body");
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = lab.counters();
    let requests = after.requests - before.requests;
    println!(
        "32 clients, 5 s: {:.0} requests/s through the proxy, {} mirrored, {} skipped (no slot), {} captures dropped",
        requests as f64 / elapsed,
        after.mirrored - before.mirrored,
        after.skipped_no_slot - before.skipped_no_slot,
        after.captures_dropped - before.captures_dropped,
    );
    let snapshot = lab.shutdown(Duration::from_secs(10)).await;
    println!("analysed exchanges: {}", snapshot.exchanges);
}
