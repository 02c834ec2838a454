//! The reviews service over gRPC, for the gRPC demo (sample-configs/reviews-grpc.yaml): the
//! same demo endpoints answer `reviews.Reviews/GetReviews`
//! (sample-configs/reviews.proto) when a request comes as `application/grpc`. Messages are
//! written by hand in the protobuf wire format (no protobuf compiler to install); v2 adds a
//! `summary`, rates some products differently, is slower and fails some calls with
//! `grpc-status: 13` in a 200, as a gRPC server does.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::StreamBody;
use hyper::body::Frame;

use super::reviews::ReviewsVersion;

/// The one method of the demo's gRPC service.
pub const GET_REVIEWS: &str = "/reviews.Reviews/GetReviews";

/// A gRPC answer's body: its message, then the trailers.
pub(super) type GrpcBody =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// Whether a request is a gRPC call (`content-type: application/grpc...`).
pub(super) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// A protobuf message being written.
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }

    fn uint(mut self, field: u32, value: u64) -> Self {
        self.varint(u64::from(field) << 3);
        self.varint(value);
        self
    }

    fn bytes(mut self, field: u32, value: &[u8]) -> Self {
        self.varint((u64::from(field) << 3) | 2);
        self.varint(value.len() as u64);
        self.0.extend_from_slice(value);
        self
    }

    fn text(self, field: u32, value: &str) -> Self {
        self.bytes(field, value.as_bytes())
    }

    fn message(self, field: u32, value: Message) -> Self {
        self.bytes(field, &value.0)
    }

    /// The message as one length-prefixed gRPC frame (uncompressed).
    fn framed(self) -> Bytes {
        let mut frame = Vec::with_capacity(5 + self.0.len());
        frame.push(0);
        frame.extend_from_slice(
            &u32::try_from(self.0.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        frame.extend_from_slice(&self.0);
        Bytes::from(frame)
    }
}

/// A framed `ReviewsRequest { product_id }`, as the demo traffic sends it.
pub fn request(product: u32) -> Bytes {
    Message::default().uint(1, u64::from(product)).framed()
}

/// The `product_id` of a framed `ReviewsRequest` (field 1, varint); 0 when absent.
fn product_of(body: &[u8]) -> Option<u32> {
    let message = body.get(5..)?;
    let mut rest = message;
    while let Some((&tag, after)) = rest.split_first() {
        rest = after;
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let (&byte, after) = rest.split_first()?;
            rest = after;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        if tag == 0x08 {
            return u32::try_from(value).ok();
        }
    }
    Some(0)
}

/// The answer of `version` (as `podname`) to a `GetReviews` call with `body`; `fail` plays
/// v2's occasional failure.
pub(super) fn answer(
    version: ReviewsVersion,
    podname: &str,
    path: &str,
    body: &[u8],
    fail: bool,
) -> Response<GrpcBody> {
    let mut trailers = HeaderMap::new();
    let mut frames = Vec::new();
    let status = match (path, product_of(body)) {
        (GET_REVIEWS, Some(product)) if !fail => {
            frames.push(Ok(Frame::data(reply(version, podname, product).framed())));
            "0"
        }
        (GET_REVIEWS, Some(_)) => {
            trailers.insert(
                "grpc-message",
                HeaderValue::from_static("ratings service unavailable"),
            );
            "13"
        }
        (GET_REVIEWS, None) => {
            trailers.insert(
                "grpc-message",
                HeaderValue::from_static("malformed ReviewsRequest"),
            );
            "3"
        }
        _ => {
            trailers.insert("grpc-message", HeaderValue::from_static("unknown method"));
            "12"
        }
    };
    trailers.insert("grpc-status", HeaderValue::from_static(status));
    frames.push(Ok(Frame::trailers(trailers)));
    let mut response = Response::new(StreamBody::new(futures_util::stream::iter(frames)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// `ReviewsReply` for `product`, the gRPC twin of the JSON answer.
fn reply(version: ReviewsVersion, podname: &str, product: u32) -> Message {
    let color = version.star_color();
    let stars = version.stars(product);
    let review = |reviewer: &str, text: &str, stars: u32| {
        Message::default().text(1, reviewer).text(2, text).message(
            3,
            Message::default().uint(1, u64::from(stars)).text(2, color),
        )
    };
    let mut reply = Message::default()
        .text(1, &product.to_string())
        .text(2, podname)
        .message(
            3,
            review(
                "Reviewer1",
                "An extremely entertaining play by Shakespeare.",
                stars[0],
            ),
        )
        .message(
            3,
            review("Reviewer2", "Absolutely fun and entertaining.", stars[1]),
        );
    if version == ReviewsVersion::V2 {
        let average = f64::from(stars[0] + stars[1]) / 2.0;
        reply = reply.message(
            4,
            Message::default()
                .uint(1, 2)
                .text(2, &format!("{average:.1}")),
        );
    }
    reply
}

/// sample-configs/reviews.proto as a `FileDescriptorSet`, the bytes of
/// sample-configs/reviews.pb (what `protoc --descriptor_set_out` would write for it): the
/// gRPC demo's VirtualService names that file, so its diffs show fields by name.
pub fn descriptor_set() -> Vec<u8> {
    use prost_reflect::prost::Message as _;
    prost_reflect::prost_types::FileDescriptorSet {
        file: vec![reviews_file()],
    }
    .encode_to_vec()
}

/// sample-configs/reviews.proto as a `FileDescriptorProto`: the set's one file, and what
/// v1's server reflection answers with.
pub(super) fn reviews_file() -> prost_reflect::prost_types::FileDescriptorProto {
    use prost_reflect::prost_types::field_descriptor_proto::{Label, Type};
    use prost_reflect::prost_types::{
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto, MethodDescriptorProto,
        ServiceDescriptorProto,
    };
    let field = |name: &str, number: i32, kind: Type, type_name: Option<&str>, repeated: bool| {
        FieldDescriptorProto {
            name: Some(name.to_owned()),
            number: Some(number),
            label: Some(if repeated {
                Label::Repeated
            } else {
                Label::Optional
            } as i32),
            r#type: Some(kind as i32),
            type_name: type_name.map(str::to_owned),
            json_name: None,
            ..FieldDescriptorProto::default()
        }
    };
    let message = |name: &str, fields: Vec<FieldDescriptorProto>| DescriptorProto {
        name: Some(name.to_owned()),
        field: fields,
        ..DescriptorProto::default()
    };
    FileDescriptorProto {
        name: Some("reviews.proto".to_owned()),
        package: Some("reviews".to_owned()),
        syntax: Some("proto3".to_owned()),
        message_type: vec![
            message(
                "ReviewsRequest",
                vec![field("product_id", 1, Type::Uint32, None, false)],
            ),
            message(
                "Rating",
                vec![
                    field("stars", 1, Type::Uint32, None, false),
                    field("color", 2, Type::String, None, false),
                ],
            ),
            message(
                "Review",
                vec![
                    field("reviewer", 1, Type::String, None, false),
                    field("text", 2, Type::String, None, false),
                    field("rating", 3, Type::Message, Some(".reviews.Rating"), false),
                ],
            ),
            message(
                "Summary",
                vec![
                    field("count", 1, Type::Uint32, None, false),
                    field("average_stars", 2, Type::String, None, false),
                ],
            ),
            message(
                "ReviewsReply",
                vec![
                    field("id", 1, Type::String, None, false),
                    field("podname", 2, Type::String, None, false),
                    field("reviews", 3, Type::Message, Some(".reviews.Review"), true),
                    field("summary", 4, Type::Message, Some(".reviews.Summary"), false),
                ],
            ),
        ],
        service: vec![ServiceDescriptorProto {
            name: Some("Reviews".to_owned()),
            method: vec![MethodDescriptorProto {
                name: Some("GetReviews".to_owned()),
                input_type: Some(".reviews.ReviewsRequest".to_owned()),
                output_type: Some(".reviews.ReviewsReply".to_owned()),
                ..MethodDescriptorProto::default()
            }],
            ..ServiceDescriptorProto::default()
        }],
        ..FileDescriptorProto::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_product_and_replies_differ_by_version() {
        assert_eq!(product_of(&request(7)), Some(7));
        assert_eq!(product_of(&request(300)), Some(300));
        let v1 = reply(ReviewsVersion::V1, "p", 5).0;
        let v2 = reply(ReviewsVersion::V2, "p", 5).0;
        assert_ne!(v1, v2);
        assert!(v2.len() > v1.len(), "v2 adds a summary");
    }
}
