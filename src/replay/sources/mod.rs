//! Reading traffic files: which format a file is, and the rules every format's requests
//! share (which headers are sent again, which credentials are stripped).

use std::io::{BufRead, BufReader};
use std::path::Path;

use http::header::{HeaderName, HeaderValue};

use super::{ReplayRequest, Traffic, TrafficError};
use crate::export::har::{REDACTED, is_credential_header};

pub mod gor;
pub mod har;
pub mod session;

/// How to read a traffic file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceOptions {
    /// Send Authorization, Cookie and the other credential headers of the HAR export's
    /// rules as recorded (off: they are stripped).
    pub keep_credentials: bool,
}

/// The formats the lab replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficFormat {
    /// HAR 1.2 (browser DevTools, HTTP Toolkit, mitmproxy's HAR export).
    Har,
    /// A HAR the lab wrote as a session (`_mirrorlabSession`).
    Session,
    /// GoReplay's `--output-file` capture.
    GoReplay,
}

impl TrafficFormat {
    /// How the format is named in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficFormat::Har => "HAR",
            TrafficFormat::Session => "mirrorlab session",
            TrafficFormat::GoReplay => "GoReplay capture",
        }
    }
}

/// Reads and checks the whole of `path` (HAR, session or `.gor`, by its first byte), so a
/// bad entry is found before anything is sent.
pub fn load_traffic(path: &Path, options: &SourceOptions) -> Result<Traffic, TrafficError> {
    let io = |source| TrafficError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // GoReplay reads `.gz` captures itself (input_file.go); so does the lab, any format.
    let raw: Box<dyn std::io::Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut reader = BufReader::new(raw);
    // Some Windows tools start their files with a byte-order mark.
    if reader.fill_buf().map_err(io)?.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    let first = reader
        .fill_buf()
        .map_err(io)?
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace());
    let mut traffic = match first {
        Some(b'{') => har::read(reader, path, options)?,
        Some(b'1'..=b'3') => gor::read(reader, path, options)?,
        Some(_) => {
            return Err(TrafficError::Parse {
                path: path.to_owned(),
                line: 1,
                column: None,
                message: "neither a HAR file (JSON starting with `{`) nor a GoReplay capture \
                          (a payload header `1 ID TIMESTAMP`)"
                    .to_owned(),
            });
        }
        None => {
            return Err(TrafficError::Empty {
                path: path.to_owned(),
                what: "the file is empty".to_owned(),
            });
        }
    };
    if traffic.requests.is_empty() {
        return Err(TrafficError::Empty {
            path: path.to_owned(),
            what: format!("the {} holds no request", traffic.format.as_str()),
        });
    }
    // Replayed in the order they were first sent (GoReplay sorts by timestamp too).
    traffic.requests.sort_by_key(|r| r.offset);
    Ok(traffic)
}

/// Headers that describe one connection or one message's framing: the client that
/// replays sets its own.
const NOT_SENT_AGAIN: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    // A fresh id per replayed request: a loop would otherwise repeat the recorded ones.
    "x-request-id",
    crate::capture::REPLAY_HEADER,
];

/// The headers of one recorded request, as they will be sent again.
#[derive(Debug, Default)]
pub(crate) struct RecordedHeaders {
    /// What is sent.
    pub headers: http::HeaderMap,
    /// The Host header or HTTP/2 `:authority`, when there was one.
    pub authority: Option<String>,
    /// Credential headers removed.
    pub stripped: usize,
    keep_credentials: bool,
}

impl RecordedHeaders {
    /// Headers for a source read with `options`.
    pub fn new(options: &SourceOptions) -> Self {
        Self {
            keep_credentials: options.keep_credentials,
            ..Self::default()
        }
    }

    /// Takes one recorded header; an error says what is wrong with it.
    pub fn add(&mut self, name: &str, value: &[u8]) -> Result<(), String> {
        if let Some(pseudo) = name.strip_prefix(':') {
            if pseudo.eq_ignore_ascii_case("authority") && self.authority.is_none() {
                self.authority = Some(String::from_utf8_lossy(value).trim().to_owned());
            }
            return Ok(());
        }
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header name {name:?} is not a valid HTTP header name"))?;
        if header == http::header::HOST {
            if self.authority.is_none() {
                self.authority = Some(String::from_utf8_lossy(value).trim().to_owned());
            }
            return Ok(());
        }
        // `TE: trailers` is end to end in effect: gRPC servers require it (RFC 9113 §8.2.2).
        let te_trailers = header == http::header::TE && value.eq_ignore_ascii_case(b"trailers");
        if NOT_SENT_AGAIN.contains(&header.as_str()) && !te_trailers {
            return Ok(());
        }
        // A value the export already redacted cannot be sent for the original one.
        let redacted = value.starts_with(REDACTED.trim_end_matches(']').as_bytes());
        if redacted || (!self.keep_credentials && is_credential_header(header.as_str())) {
            self.stripped += 1;
            return Ok(());
        }
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| format!("the value of header {name:?} is not a valid header value"))?;
        self.headers.append(header, value);
        Ok(())
    }
}

/// Parses a method as recorded.
pub(crate) fn method(text: &str) -> Result<http::Method, String> {
    http::Method::from_bytes(text.as_bytes()).map_err(|_| format!("{text:?} is not an HTTP method"))
}

/// A request once its parts are known.
pub(crate) struct Parts {
    pub index: usize,
    pub method: http::Method,
    pub authority: String,
    pub target: String,
    pub headers: http::HeaderMap,
    pub body: bytes::Bytes,
    /// Nanoseconds since the Unix epoch when the request was sent; turned into offsets.
    pub sent_at_ns: i128,
}

/// Turns absolute send times into offsets from the earliest request.
pub(crate) fn with_offsets(parts: Vec<Parts>) -> Vec<ReplayRequest> {
    let first = parts.iter().map(|p| p.sent_at_ns).min().unwrap_or(0);
    parts
        .into_iter()
        .map(|p| ReplayRequest {
            index: p.index,
            method: p.method,
            authority: p.authority,
            target: p.target,
            headers: p.headers,
            body: p.body,
            offset: std::time::Duration::from_nanos(
                u64::try_from(p.sent_at_ns - first).unwrap_or(0),
            ),
        })
        .collect()
}
