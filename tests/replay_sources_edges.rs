//! Traffic files as people have them: a DevTools HAR with WebSocket entries beside the
//! page's requests, a GoReplay request whose query holds a URL, and a filter that keeps
//! only requests late in a recording. No network: the files are read, not replayed.

use std::path::Path;
use std::time::Duration;

use mirrorlab::replay::filter::{HostMap, RequestFilter};
use mirrorlab::replay::sources::{SourceOptions, load_traffic};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn entry(time: &str, method: &str, url: &str) -> String {
    format!(
        r#"{{"startedDateTime": "{time}", "time": 1, "request": {{"method": "{method}", "url": "{url}", "httpVersion": "HTTP/1.1", "cookies": [], "headers": [], "queryString": [], "headersSize": -1, "bodySize": 0}}, "response": {{"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "cookies": [], "headers": [], "content": {{"size": 0, "mimeType": ""}}, "redirectURL": "", "headersSize": -1, "bodySize": 0}}, "cache": {{}}, "timings": {{"send": 0, "wait": 1, "receive": 0}}}}"#
    )
}

#[test]
fn a_devtools_har_with_websocket_entries_replays_its_http_requests() {
    let dir = tempfile::tempdir().expect("dir");
    let entries = [
        entry(
            "2026-12-01T10:00:00.000Z",
            "GET",
            "http://reviews:9080/reviews/1",
        ),
        entry("2026-12-01T10:00:00.100Z", "GET", "wss://reviews:9080/live"),
        entry(
            "2026-12-01T10:00:00.200Z",
            "GET",
            "chrome-extension://abc/inject.js",
        ),
        entry(
            "2026-12-01T10:00:00.300Z",
            "GET",
            "https://reviews:9080/reviews/2",
        ),
    ];
    let har = format!(
        r#"{{"log": {{"version": "1.2", "creator": {{"name": "DevTools", "version": "1"}}, "entries": [{}]}}}}"#,
        entries.join(",")
    );
    let path = write(dir.path(), "page.har", &har);
    let traffic = load_traffic(&path, &SourceOptions::default()).expect("the HTTP entries load");
    let targets: Vec<&str> = traffic.requests.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/reviews/1", "/reviews/2"]);
    assert_eq!(
        traffic.not_requests, 2,
        "the WebSocket and the extension are counted"
    );
}

#[test]
fn a_gor_request_whose_query_holds_a_url_keeps_its_host_and_path() {
    let dir = tempfile::tempdir().expect("dir");
    let gor = "1 a1 1700000000000000000 0\nGET /login?next=http://app/home HTTP/1.1\r\nHost: reviews:9080\r\n\r\n\n🐵🙈🙉\n";
    let path = write(dir.path(), "capture.gor", gor);
    let traffic = load_traffic(&path, &SourceOptions::default()).expect("loads");
    let request = &traffic.requests[0];
    assert_eq!(request.authority, "reviews:9080");
    assert_eq!(request.target, "/login?next=http://app/home");
}

#[test]
fn a_filter_starts_the_replay_at_the_first_request_it_keeps() {
    let dir = tempfile::tempdir().expect("dir");
    let entries = [
        entry(
            "2026-12-01T10:00:00.000Z",
            "GET",
            "http://productpage:9080/",
        ),
        entry(
            "2026-12-01T10:40:00.000Z",
            "GET",
            "http://ratings:9080/ratings/1",
        ),
        entry(
            "2026-12-01T10:40:02.000Z",
            "GET",
            "http://ratings:9080/ratings/2",
        ),
    ];
    let har = format!(
        r#"{{"log": {{"version": "1.2", "creator": {{"name": "t", "version": "1"}}, "entries": [{}]}}}}"#,
        entries.join(",")
    );
    let path = write(dir.path(), "mixed.har", &har);
    let traffic = load_traffic(&path, &SourceOptions::default()).expect("loads");
    let filter = RequestFilter::parse("host=ratings").expect("filter");
    let kept = traffic.select(&filter, &HostMap::default());
    let offsets: Vec<Duration> = kept.requests.iter().map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        [Duration::ZERO, Duration::from_secs(2)],
        "no 40-minute wait first"
    );
}
