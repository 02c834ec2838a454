//! Replaying a GoReplay capture (buger/goreplay's `--output-file` format) through
//! `mirrorlab replay` in front of real upstreams: the requests (type 1) arrive in order at
//! the recorded pace, bodies intact (a chunked one de-chunked), responses (types 2 and 3)
//! are not sent, and the report counts them.

mod common;
mod replay_support;

use std::time::{Duration, Instant};

use mirrorlab::replay::{SourceOptions, TrafficFormat, load_traffic};
use replay_support::{gor_payload, mirrorlab, write};

const T0: u64 = 1_733_000_000_000_000_000;

/// Three requests 200 ms apart, each followed by its original response, and one replayed
/// response, as `gor --input-raw :80 --output-file` and a later replay leave them.
fn capture() -> String {
    let ms = 1_000_000;
    [
        gor_payload(1, "a1", T0, "GET /reviews/1 HTTP/1.1\r\nHost: reviews\r\nUser-Agent: curl/8\r\n\r\n"),
        gor_payload(2, "a1", T0 + 3 * ms, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"),
        gor_payload(
            1,
            "b2",
            T0 + 200 * ms,
            "POST /reviews HTTP/1.1\r\nHost: reviews\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"stars\":4}\n",
        ),
        gor_payload(2, "b2", T0 + 205 * ms, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
        gor_payload(
            1,
            "c3",
            T0 + 400 * ms,
            "PUT /reviews/3 HTTP/1.1\r\nHost: reviews\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        ),
        gor_payload(3, "c3", T0 + 410 * ms, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]
    .concat()
}

#[test]
fn a_gor_file_reads_as_its_requests_with_their_offsets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(dir.path(), "capture.gor", &capture());
    let traffic = load_traffic(&path, &SourceOptions::default()).expect("loads");
    assert_eq!(traffic.format, TrafficFormat::GoReplay);
    assert_eq!(
        traffic.not_requests, 3,
        "two original responses and a replayed one"
    );
    let seen: Vec<(String, String, u128, Vec<u8>)> = traffic
        .requests
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.target.clone(),
                r.offset.as_millis(),
                r.body.to_vec(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("GET".to_owned(), "/reviews/1".to_owned(), 0, Vec::new()),
            (
                "POST".to_owned(),
                "/reviews".to_owned(),
                200,
                b"{\"stars\":4}\n".to_vec()
            ),
            (
                "PUT".to_owned(),
                "/reviews/3".to_owned(),
                400,
                b"hello world".to_vec()
            ),
        ]
    );
    assert!(traffic.requests.iter().all(|r| r.authority == "reviews"));
    assert!(
        traffic.requests[2]
            .headers
            .get("transfer-encoding")
            .is_none(),
        "framing is the replaying client's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrorlab_replay_sends_a_gor_capture_at_its_pace_and_reports_it() {
    let mesh = common::Mesh::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(dir.path(), "lab.yaml", &mesh.yaml(common::TO_V1_MIRRORED));
    let traffic = write(dir.path(), "capture.gor", &capture());
    let started = Instant::now();
    let out = mirrorlab(["replay".as_ref(), traffic.as_os_str(), config.as_os_str()]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "replay failed: {stderr}");
    assert!(
        started.elapsed() >= Duration::from_millis(380),
        "the 400 ms capture took {:?}",
        started.elapsed()
    );
    assert!(stderr.contains("sent=3 answered=3 failed=0"), "{stderr}");

    let primary = mesh.v1.wait_for(3, Duration::from_secs(5)).await;
    let got: Vec<(String, String, Vec<u8>)> = primary
        .iter()
        .map(|r| (r.method.to_string(), r.uri.to_string(), r.body.to_vec()))
        .collect();
    assert_eq!(
        got,
        [
            ("GET".to_owned(), "/reviews/1".to_owned(), Vec::new()),
            (
                "POST".to_owned(),
                "/reviews".to_owned(),
                b"{\"stars\":4}\n".to_vec()
            ),
            (
                "PUT".to_owned(),
                "/reviews/3".to_owned(),
                b"hello world".to_vec()
            ),
        ]
    );
    let tags: Vec<&str> = primary
        .iter()
        .map(|r| r.headers["x-mirrorlab-replay"].to_str().expect("ascii"))
        .collect();
    assert_eq!(
        tags,
        ["1", "2", "3"],
        "each request says where it was in the file"
    );
    assert_eq!(mesh.v2.wait_for(3, Duration::from_secs(5)).await.len(), 3);

    // Without --report, stdout is the report and nothing else.
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is the JSON report");
    assert_eq!(report["totals"]["exchanges"], 3);
    assert_eq!(report["routes"][0]["requests"], 3);
    assert_eq!(report["routes"][0]["mirrors"][0]["sent"], 3);
    assert_eq!(report["routes"][0]["primary"]["status"]["codes"]["200"], 3);
}

#[test]
fn a_gzipped_capture_and_a_byte_order_mark_read_as_the_plain_file() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let plain = load_traffic(
        &write(dir.path(), "c.gor", &capture()),
        &SourceOptions::default(),
    )
    .expect("plain loads");
    let gz = dir.path().join("c.gor.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).expect("create"),
        flate2::Compression::default(),
    );
    encoder.write_all(capture().as_bytes()).expect("compress");
    encoder.finish().expect("finish");
    let zipped = load_traffic(&gz, &SourceOptions::default()).expect(".gz loads");
    let bom = write(dir.path(), "bom.gor", &format!("\u{feff}{}", capture()));
    let marked = load_traffic(&bom, &SourceOptions::default()).expect("a BOM is skipped");
    let view = |t: &mirrorlab::replay::Traffic| -> Vec<(String, String, Vec<u8>)> {
        t.requests
            .iter()
            .map(|r| (r.method.to_string(), r.target.clone(), r.body.to_vec()))
            .collect()
    };
    assert_eq!(view(&zipped), view(&plain));
    assert_eq!(view(&marked), view(&plain));
}
