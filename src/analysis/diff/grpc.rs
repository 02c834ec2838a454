//! gRPC bodies as JSON, so the field diff compares their messages: the length-prefixed
//! frames of the gRPC wire format (PROTOCOL-HTTP2.md: a compressed flag, a 4-byte
//! big-endian length, the message) split into messages, each decoded without a schema by
//! field number and wire type (protobuf encoding: varint, 64-bit, length-delimited,
//! 32-bit). Field numbers become keys (`"1"`, `"2"`); a field seen more than once becomes
//! an array; a length-delimited field is a nested message when it parses as one and is
//! not printable text, else text, else hex. One message is an object; a stream of them an
//! array. With the service's descriptors (a `FileDescriptorSet`), messages are read by
//! their types instead, fields by name (prost-reflect).

use serde_json::{Map, Value};

/// The messages of a gRPC body as JSON; `None` when the body is not gRPC, is compressed
/// with a codec other than gzip or deflate, or does not parse.
pub fn grpc_messages(headers: &http::HeaderMap, bytes: &[u8]) -> Option<Value> {
    grpc_messages_with(headers, bytes, None)
}

/// Which message of a method a body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageSide {
    /// The method's input (a request body).
    Request,
    /// The method's output (an answer's body).
    Response,
}

/// A method's messages as the service's descriptors define them.
#[derive(Debug, Clone, Copy)]
pub struct GrpcSchema<'a> {
    /// The descriptors (an annotation's, the lab setting's or server reflection's).
    pub pool: &'a prost_reflect::DescriptorPool,
    /// The request path, `/package.Service/Method`.
    pub path: &'a str,
    /// Which of its messages.
    pub side: MessageSide,
}

/// [`grpc_messages`], each message read with `schema` when the method is in it (fields
/// by name, as proto3's JSON mapping writes them, defaults included so a field set back to
/// its default is a change), else by field number.
pub fn grpc_messages_with(
    headers: &http::HeaderMap,
    bytes: &[u8],
    schema: Option<GrpcSchema<'_>>,
) -> Option<Value> {
    if !crate::analysis::descriptors::is_grpc(headers) {
        return None;
    }
    let descriptor = schema.and_then(message_descriptor);
    let encoding = headers.get("grpc-encoding").and_then(|v| v.to_str().ok());
    let mut messages = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (&compressed, after) = rest.split_first()?;
        if compressed > 1 || after.len() < 4 {
            return None;
        }
        let (len, after) = after.split_at(4);
        let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
        if after.len() < len {
            return None;
        }
        let (message, after) = after.split_at(len);
        let inflated;
        let message = if compressed == 1 {
            inflated = inflate(encoding?, message)?;
            inflated.as_slice()
        } else {
            message
        };
        let typed = descriptor.as_ref().and_then(|d| typed_message(d, message));
        messages.push(match typed {
            Some(value) => value,
            None => Value::Object(decode_message(message, 0)?),
        });
        rest = after;
    }
    match messages.len() {
        0 => None,
        1 => messages.pop(),
        _ => Some(Value::Array(messages)),
    }
}

/// The input or output message of the method `schema.path` names.
fn message_descriptor(schema: GrpcSchema<'_>) -> Option<prost_reflect::MessageDescriptor> {
    let (service, method) = schema.path.strip_prefix('/')?.split_once('/')?;
    let method = schema
        .pool
        .get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == method)?;
    Some(match schema.side {
        MessageSide::Request => method.input(),
        MessageSide::Response => method.output(),
    })
}

/// One message read with its descriptor; `None` when it does not decode as that message.
fn typed_message(descriptor: &prost_reflect::MessageDescriptor, bytes: &[u8]) -> Option<Value> {
    let message = prost_reflect::DynamicMessage::decode(descriptor.clone(), bytes).ok()?;
    let options = prost_reflect::SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .ok()
}

/// A compressed message (its frame's flag set) as the `grpc-encoding` the answer names:
/// `gzip` or `deflate` (zlib), the codecs gRPC defines; at most [`MAX_INFLATED`] bytes.
fn inflate(encoding: &str, message: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    let read = match encoding.trim().to_ascii_lowercase().as_str() {
        "gzip" => flate2::read::GzDecoder::new(message)
            .take(MAX_INFLATED + 1)
            .read_to_end(&mut out),
        "deflate" => flate2::read::ZlibDecoder::new(message)
            .take(MAX_INFLATED + 1)
            .read_to_end(&mut out),
        _ => return None,
    };
    (read.is_ok() && out.len() as u64 <= MAX_INFLATED).then_some(out)
}

/// The most a compressed message may inflate to: a bound against decompression bombs.
const MAX_INFLATED: u64 = 4 << 20;

/// Nesting deeper than this is read as bytes: a guard against crafted input.
const MAX_DEPTH: usize = 32;

/// One message, field by field; `None` when the bytes are not a message.
fn decode_message(mut bytes: &[u8], depth: usize) -> Option<Map<String, Value>> {
    let mut fields = Map::new();
    while !bytes.is_empty() {
        let tag = varint(&mut bytes)?;
        let (number, wire) = (tag >> 3, tag & 7);
        if number == 0 {
            return None;
        }
        let value = match wire {
            0 => Value::from(varint(&mut bytes)?),
            1 => Value::from(u64::from_le_bytes(take(&mut bytes, 8)?.try_into().ok()?)),
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).ok()?;
                length_delimited(take(&mut bytes, len)?, depth)
            }
            5 => Value::from(u32::from_le_bytes(take(&mut bytes, 4)?.try_into().ok()?)),
            // Groups (3, 4) are deprecated; 6 and 7 are not wire types.
            _ => return None,
        };
        let key = number.to_string();
        match fields.get_mut(&key) {
            None => {
                fields.insert(key, value);
            }
            // A decoded value is never an array: an array here is a repeated field's.
            Some(Value::Array(repeated)) => repeated.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
        }
    }
    Some(fields)
}

fn length_delimited(bytes: &[u8], depth: usize) -> Value {
    if let Ok(text) = std::str::from_utf8(bytes)
        && text
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
    {
        return Value::String(text.to_owned());
    }
    if depth < MAX_DEPTH
        && let Some(message) = decode_message(bytes, depth + 1)
    {
        return Value::Object(message);
    }
    Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (taken, rest) = bytes.split_at(n);
    *bytes = rest;
    Some(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grpc_headers() -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/grpc"),
        );
        headers
    }

    fn framed(message: &[u8]) -> Vec<u8> {
        let mut body = vec![0];
        body.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
        body.extend_from_slice(message);
        body
    }

    #[test]
    fn a_message_decodes_by_field_number_and_wire_type() {
        // {1: 150, 2: "hi", 3: {1: 1}, 4: [7, 8], 5: fixed32 1}
        let message = b"\x08\x96\x01\x12\x02hi\x1a\x02\x08\x01\x20\x07\x20\x08\x2d\x01\x00\x00\x00";
        let json = grpc_messages(&grpc_headers(), &framed(message)).expect("decoded");
        assert_eq!(
            json,
            serde_json::json!({"1": 150, "2": "hi", "3": {"1": 1}, "4": [7, 8], "5": 1})
        );
    }

    #[test]
    fn a_gzip_compressed_message_is_inflated_as_grpc_encoding_says() {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"\x08\x96\x01").expect("gzip");
        let mut body = framed(&gz.finish().expect("gzip"));
        body[0] = 1;
        let mut headers = grpc_headers();
        headers.insert("grpc-encoding", http::HeaderValue::from_static("gzip"));
        assert_eq!(
            grpc_messages(&headers, &body),
            Some(serde_json::json!({"1": 150}))
        );
        headers.insert("grpc-encoding", http::HeaderValue::from_static("snappy"));
        assert_eq!(
            grpc_messages(&headers, &body),
            None,
            "a codec gRPC does not define"
        );
    }

    #[test]
    fn a_stream_is_an_array_and_what_is_not_grpc_is_not_decoded() {
        let mut body = framed(b"\x08\x01");
        body.extend(framed(b"\x08\x02"));
        let json = grpc_messages(&grpc_headers(), &body).expect("decoded");
        assert_eq!(json, serde_json::json!([{"1": 1}, {"1": 2}]));
        assert_eq!(
            grpc_messages(&http::HeaderMap::new(), &body),
            None,
            "no gRPC type"
        );
        let mut compressed = framed(b"\x08\x01");
        compressed[0] = 1;
        assert_eq!(
            grpc_messages(&grpc_headers(), &compressed),
            None,
            "compressed"
        );
        assert_eq!(
            grpc_messages(&grpc_headers(), b"\x00\x00\x00\x00\x09\x08"),
            None,
            "cut"
        );
        assert_eq!(
            grpc_messages(&grpc_headers(), &framed(b"\x0f")),
            None,
            "wire type 7"
        );
    }
}
