//! Content decoding of captured bodies (gzip, br, deflate), bounded so that a compressed
//! body that inflates without end costs bounded memory.

use std::borrow::Cow;
use std::io::Read;

use super::MAX_DECODED_BYTES;
use crate::capture::CapturedBody;

/// A body after content decoding, for exports that show bodies as the client saw them.
#[derive(Debug, Clone)]
pub struct DecodedBody<'a> {
    /// The decoded bytes (the captured bytes when there was nothing to decode or decoding
    /// failed).
    pub bytes: Cow<'a, [u8]>,
    /// The `content-encoding` that was undone.
    pub encoding: Option<String>,
    /// Why decoding failed, if it did.
    pub error: Option<String>,
    /// The bytes are only a prefix of the body.
    pub cut: bool,
}

/// Undoes the `content-encoding` (gzip, br, deflate) of a captured body.
pub fn decode_body<'a>(body: &'a CapturedBody, headers: &http::HeaderMap) -> DecodedBody<'a> {
    let d = decode(body, headers, "body");
    DecodedBody {
        bytes: d.bytes,
        encoding: d.encoding,
        error: d.error,
        cut: d.cut,
    }
}

/// A body after content decoding.
pub(super) struct Decoded<'a> {
    pub(super) bytes: Cow<'a, [u8]>,
    pub(super) encoding: Option<String>,
    pub(super) error: Option<String>,
    /// The decoded bytes are a prefix of the real body.
    pub(super) cut: bool,
}

/// Decodes `content-encoding` (outermost coding last in the header, so undone first).
pub(super) fn decode<'a>(
    body: &'a CapturedBody,
    headers: &http::HeaderMap,
    side: &str,
) -> Decoded<'a> {
    let codings: Vec<String> = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    let mut out = Decoded {
        bytes: Cow::Borrowed(&body.bytes[..]),
        encoding: (!codings.is_empty()).then(|| codings.join(", ")),
        error: None,
        cut: body.truncated,
    };
    for coding in codings.iter().rev() {
        let input: &[u8] = &out.bytes;
        let result = match coding.as_str() {
            "gzip" | "x-gzip" => inflate(flate2::read::MultiGzDecoder::new(input), out.cut),
            "deflate" => {
                // HTTP deflate is zlib-wrapped, but some servers send raw deflate.
                let zlib = inflate(flate2::read::ZlibDecoder::new(input), out.cut);
                if zlib.is_err() {
                    inflate(flate2::read::DeflateDecoder::new(input), out.cut)
                } else {
                    zlib
                }
            }
            "br" => inflate(brotli::Decompressor::new(input, 4096), out.cut),
            other => Err(format!("unsupported content-encoding '{other}'")),
        };
        match result {
            Ok((bytes, cut)) => {
                out.bytes = Cow::Owned(bytes);
                out.cut |= cut;
            }
            Err(e) => {
                out.error = Some(format!("{side} body: {e}; compared as sent"));
                out.bytes = Cow::Borrowed(&body.bytes[..]);
                out.cut = body.truncated;
                return out;
            }
        }
    }
    out
}

/// Reads a decoder to the end. For a cut body, an error at the cut is expected: whatever
/// was decoded so far is kept. Returns the bytes and whether they are only a prefix.
fn inflate<R: Read>(decoder: R, input_cut: bool) -> Result<(Vec<u8>, bool), String> {
    let mut out = Vec::new();
    let limit = u64::try_from(MAX_DECODED_BYTES).unwrap_or(u64::MAX);
    let mut limited = decoder.take(limit + 1);
    let mut buf = [0u8; 8192];
    loop {
        match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(buf.get(..n).unwrap_or(&[])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if input_cut {
                    return Ok((out, true));
                }
                return Err(format!("cannot decode: {e}"));
            }
        }
    }
    if out.len() > MAX_DECODED_BYTES {
        out.truncate(MAX_DECODED_BYTES);
        return Ok((out, true));
    }
    Ok((out, input_cut))
}

/// True when the content type or the first byte says JSON.
pub(super) fn looks_like_json(headers: &http::HeaderMap, bytes: &[u8]) -> bool {
    let ct_json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.contains("/json") || ct.contains("+json")
        });
    ct_json
        || bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{' || *b == b'[')
}
