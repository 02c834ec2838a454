//! Traffic files for the replay tests, written as the tools that make them write them: HAR
//! 1.2 entries (DevTools' shape) and GoReplay payloads (`TYPE ID TIMESTAMP LATENCY`, the
//! raw HTTP message, the `🐵🙈🙉` separator line), and a way to replay them through a lab.
#![allow(
    dead_code,
    reason = "each test file uses a different part of these helpers"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

/// One recorded request of a HAR file.
pub struct HarRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Option<&'static str>,
    /// Milliseconds after the first request.
    pub at_ms: u64,
}

impl HarRequest {
    pub fn get(url: impl Into<String>, at_ms: u64) -> Self {
        Self {
            method: "GET",
            url: url.into(),
            headers: Vec::new(),
            body: None,
            at_ms,
        }
    }

    pub fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn post(mut self, body: &'static str) -> Self {
        self.method = "POST";
        self.body = Some(body);
        self
    }
}

/// A HAR 1.2 document as a browser saves it, with a response per entry.
pub fn har_json(requests: &[HarRequest]) -> Value {
    let entries: Vec<Value> = requests
        .iter()
        .map(|r| {
            let started = chrono_like(1_733_000_000_000 + r.at_ms);
            let mut request = json!({
                "method": r.method,
                "url": r.url,
                "httpVersion": "HTTP/2.0",
                "cookies": [],
                "headers": r.headers.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
                "queryString": [],
                "headersSize": -1,
                "bodySize": r.body.map_or(0, str::len),
            });
            if let Some(body) = r.body {
                request["postData"] = json!({"mimeType": "application/json", "text": body});
            }
            json!({
                "startedDateTime": started,
                "time": 12.5,
                "request": request,
                "response": {
                    "status": 200, "statusText": "OK", "httpVersion": "HTTP/2.0", "cookies": [],
                    "headers": [], "content": {"size": 2, "mimeType": "application/json", "text": "{}"},
                    "redirectURL": "", "headersSize": -1, "bodySize": 2
                },
                "cache": {},
                "timings": {"send": 0.1, "wait": 12.0, "receive": 0.4}
            })
        })
        .collect();
    json!({"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"}, "pages": [], "entries": entries}})
}

/// `2024-12-…T…Z` for Unix milliseconds, as DevTools writes `startedDateTime`.
fn chrono_like(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let ms = unix_ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // 1_733_000_000 s is 2024-11-30T20:53:20Z; the tests stay within that day.
    assert_eq!(days, 20_057, "test times stay on 2024-11-30");
    format!(
        "2024-11-30T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Writes `text` to `name` in `dir`.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

/// One GoReplay payload: header line, raw message, separator.
pub fn gor_payload(kind: u8, id: &str, timestamp_ns: u64, message: &str) -> String {
    format!("{kind} {id} {timestamp_ns} 0\n{message}\n🐵🙈🙉\n")
}

/// Replays `path` through the lab at `proxy`, waiting at most `within`.
pub async fn replay_file(
    path: &Path,
    proxy: std::net::SocketAddr,
    source: mirrorlab::replay::SourceOptions,
    options: mirrorlab::replay::ReplayOptions,
    within: Duration,
) -> mirrorlab::replay::ReplayProgress {
    let traffic = mirrorlab::replay::load_traffic(path, &source).expect("the traffic loads");
    let requests: Arc<[mirrorlab::replay::ReplayRequest]> = traffic.requests.into();
    let mut handle = mirrorlab::replay::ReplayHandle::start(
        &tokio::runtime::Handle::current(),
        proxy,
        requests,
        options,
    );
    tokio::time::timeout(within, handle.wait())
        .await
        .expect("the replay ends in time")
}

/// A `mirrorlab` subcommand run to its end (bounded), with its stdout and stderr.
pub async fn mirrorlab<I, S>(args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mirrorlab"))
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("HTTP_PROXY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start mirrorlab");
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("mirrorlab ends within a minute")
        .expect("mirrorlab output")
}
