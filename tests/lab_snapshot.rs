//! The analysis snapshot is built only while someone reads it; a read after a quiet spell
//! (a headless run reads it once, at the end) must still see every finished exchange.

mod common;

use std::time::{Duration, Instant};

use common::{Mesh, client};
use mirrorlab::lab::Lab;

async fn send(lab: &Lab, n: usize) {
    let http = client();
    let url = format!("http://{}/reviews/1", lab.local_addr());
    for _ in 0..n {
        let response = http
            .get(&url)
            .header("host", "reviews")
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 200);
        response.bytes().await.expect("body");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_read_after_traffic_and_repeated_reads_during_it_see_every_exchange() {
    let mesh = Mesh::start().await;
    let lab = common::start_lab(&mesh.yaml(common::TO_V1_MIRRORED), Some(3));

    send(&lab, 5).await;
    common::wait_for_exchanges(lab.captures(), 5, Duration::from_secs(10)).await;
    // Give the analysis task time to ingest them; nobody reads the snapshot meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        lab.analysis().exchanges,
        5,
        "the first read after a quiet spell is up to date"
    );

    // A reader that keeps looking (the UI) sees new traffic without building snapshots
    // itself: the analysis task refreshes them while it reads.
    send(&lab, 3).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = 0;
    while Instant::now() < deadline {
        seen = lab.analysis().exchanges;
        if seen == 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(seen, 8, "a regular reader sees the new exchanges");

    let last = lab.shutdown(Duration::from_secs(5)).await;
    assert_eq!(last.exchanges, 8);
}
