//! GoReplay's file format (`gor --output-file`), as buger/goreplay reads it back
//! (protocol.go at 67dee80, input_file.go at 02d78f7):
//!
//! - payloads are separated by `payloadSeparator = "\n🐵🙈🙉\n"`: the reader takes lines
//!   up to one equal to `🐵🙈🙉\n`, and the newline before it belongs to the separator;
//! - a payload's first line is `payloadHeader`: `TYPE ID TIMING [LATENCY]`, with type
//!   `1` request, `2` original response, `3` replayed response, and for a request TIMING
//!   the nanoseconds since the Unix epoch it was captured at (input_file.go paces the
//!   replay by the differences between them, `payload.timestamp - lastTime`);
//! - the rest is the raw HTTP/1 message.
//!
//! Only requests (type 1) are replayed. GoReplay skips a malformed record; the lab refuses
//! the file instead, with the line, so nothing half-read is ever sent.

use std::io::BufRead;
use std::path::Path;

use super::{Parts, RecordedHeaders, SourceOptions, method, with_offsets};
use crate::replay::{Traffic, TrafficError, TrafficFormat};

/// The separator line (after the newline that ends the payload).
const SEPARATOR_LINE: &[u8] = "🐵🙈🙉\n".as_bytes();

/// Most headers a recorded request may have.
const MAX_HEADERS: usize = 128;

/// Reads a GoReplay capture.
pub(crate) fn read<R: BufRead>(
    mut reader: R,
    path: &Path,
    options: &SourceOptions,
) -> Result<Traffic, TrafficError> {
    let parse_error = |line: usize, message: String| TrafficError::Parse {
        path: path.to_owned(),
        line,
        column: None,
        message,
    };
    let mut parts = Vec::new();
    let mut stripped = 0;
    let mut not_requests = 0;
    let mut payload: Vec<u8> = Vec::new();
    let mut payload_line = 1;
    let mut line_no = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| TrafficError::Io {
                path: path.to_owned(),
                source,
            })?;
        if read == 0 {
            break;
        }
        line_no += 1;
        if line == SEPARATOR_LINE {
            // The newline before the separator is the separator's.
            if payload.last() == Some(&b'\n') {
                payload.pop();
            }
            match payload_of(&payload, payload_line, parts.len() + 1, options) {
                Ok(Payload::Request(p, s)) => {
                    stripped += s;
                    parts.push(*p);
                }
                Ok(Payload::Other) => not_requests += 1,
                Err((line, message)) => return Err(parse_error(line, message)),
            }
            payload.clear();
            payload_line = line_no + 1;
        } else {
            payload.extend_from_slice(&line);
        }
    }
    if !payload.iter().all(u8::is_ascii_whitespace) {
        return Err(parse_error(
            payload_line,
            "the file ends inside a payload: no `🐵🙈🙉` separator line after it (truncated?)"
                .to_owned(),
        ));
    }
    Ok(Traffic {
        path: path.to_owned(),
        format: TrafficFormat::GoReplay,
        requests: with_offsets(parts),
        credentials_stripped: stripped,
        not_requests,
    })
}

enum Payload {
    Request(Box<Parts>, usize),
    Other,
}

/// One payload starting at `line`; an error has the line it is on.
fn payload_of(
    payload: &[u8],
    line: usize,
    index: usize,
    options: &SourceOptions,
) -> Result<Payload, (usize, String)> {
    let (head, message) = match payload.iter().position(|&b| b == b'\n') {
        Some(i) => (&payload[..i], &payload[i + 1..]),
        None => (payload, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let fields: Vec<&str> = head.trim_end_matches('\r').split(' ').collect();
    let expected = || {
        format!(
            "expected a GoReplay payload header `TYPE ID TIMESTAMP [LATENCY]`, found {:?}",
            truncate(&head, 60)
        )
    };
    let [kind, _id, timestamp, ..] = fields.as_slice() else {
        return Err((line, expected()));
    };
    let timestamp: i64 = timestamp.parse().map_err(|_| {
        (
            line,
            format!(
                "{} (the timestamp {timestamp:?} is not a number of nanoseconds)",
                expected()
            ),
        )
    })?;
    match *kind {
        "1" => {}
        "2" | "3" => return Ok(Payload::Other),
        other => {
            return Err((
                line,
                format!(
                    "{} (payload type {other:?} is not 1 request, 2 response or 3 replayed response)",
                    expected()
                ),
            ));
        }
    }
    let (parts, stripped) =
        request_of(message, index, i128::from(timestamp), options).map_err(|m| (line + 1, m))?;
    Ok(Payload::Request(Box::new(parts), stripped))
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The raw HTTP/1 request of a type 1 payload.
fn request_of(
    message: &[u8],
    index: usize,
    sent_at_ns: i128,
    options: &SourceOptions,
) -> Result<(Parts, usize), String> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut storage);
    let head_len = match request.parse(message) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err(
                "the request's head is incomplete (no empty line after the headers)".to_owned(),
            );
        }
        Err(e) => return Err(format!("not an HTTP/1 request: {e}")),
    };
    let method = method(request.method.unwrap_or(""))?;
    let raw_target = request.path.unwrap_or("/");
    let mut headers = RecordedHeaders::new(options);
    let mut chunked = false;
    let mut length = None;
    for h in request.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked");
        } else if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(
                String::from_utf8_lossy(h.value)
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| "Content-Length is not a number".to_owned())?,
            );
        }
        headers.add(h.name, h.value)?;
    }
    let rest = &message[head_len..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        // GoReplay records the body as it came; anything past Content-Length is not its.
        rest[..length.unwrap_or(rest.len()).min(rest.len())].to_vec()
    };
    // Absolute-form only when the target does not start with `/` (origin-form) or `*`: an
    // origin-form query may hold a URL (`/login?next=http://app/home`).
    let absolute = !raw_target.starts_with('/') && !raw_target.starts_with('*');
    let (authority, target) = match raw_target.split_once("://").filter(|_| absolute) {
        Some((_, rest)) => {
            let (a, t) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            (
                Some(a.to_owned()),
                if t.is_empty() { "/" } else { t }.to_owned(),
            )
        }
        None => (None, raw_target.to_owned()),
    };
    let authority = authority
        .or_else(|| headers.authority.clone())
        .ok_or_else(|| "the request has no Host header, so its host is unknown".to_owned())?;
    let stripped = headers.stripped;
    Ok((
        Parts {
            index,
            method,
            authority,
            target,
            headers: headers.headers,
            body: body.into(),
            sent_at_ns,
        },
        stripped,
    ))
}

/// The body of a chunked message (RFC 9112 §7.1); trailers are dropped.
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| "a chunk size line is not terminated".to_owned())?;
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("chunk size {size_text:?} is not hexadecimal"))?;
        data = &data[end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if data.len() < size {
            return Err("the chunked body ends inside a chunk".to_owned());
        }
        body.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
}
