//! gRPC server reflection for the demo's reviews v1, so the lab can learn the service's
//! descriptors from the primary itself (and `grpcurl -plaintext 127.0.0.1:9091 list`
//! works): `grpc.reflection.v1.ServerReflection/ServerReflectionInfo` (grpc/grpc
//! `src/proto/grpc/reflection/v1/reflection.proto`) answering `file_containing_symbol`
//! for the reviews package's symbols, `file_by_filename` for `reviews.proto` and
//! `list_services`. Other versions, and `v1alpha` everywhere, answer UNIMPLEMENTED, as a
//! server without that service does.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::StreamBody;
use hyper::body::Frame;
use prost::Message as _;

use super::grpc::GrpcBody;
use super::reviews::ReviewsVersion;
use crate::analysis::descriptors::wire::{
    self, ErrorResponse, FileDescriptorResponse, ListServiceResponse, MessageRequest,
    MessageResponse, REFLECTION_V1, REFLECTION_V1ALPHA, ServerReflectionRequest,
    ServerReflectionResponse, ServiceResponse,
};

/// The answer to a reflection call to `path`, or `None` when `path` is not reflection's.
pub(super) fn answer(
    version: ReviewsVersion,
    path: &str,
    body: &[u8],
) -> Option<Response<GrpcBody>> {
    if path != REFLECTION_V1 && path != REFLECTION_V1ALPHA {
        return None;
    }
    if version != ReviewsVersion::V1 || path == REFLECTION_V1ALPHA {
        return Some(respond(Vec::new(), "12", Some("unknown service")));
    }
    let Ok(requests) = wire::unframe::<ServerReflectionRequest>(body) else {
        return Some(respond(
            Vec::new(),
            "3",
            Some("malformed ServerReflectionRequest"),
        ));
    };
    let frames = requests
        .into_iter()
        .map(|request| {
            let message_response = Some(respond_to(request.message_request.as_ref()));
            wire::frame(&ServerReflectionResponse {
                valid_host: request.host.clone(),
                original_request: Some(request),
                message_response,
            })
        })
        .collect();
    Some(respond(frames, "0", None))
}

/// What one request asks for, answered from the reviews service's own descriptors.
fn respond_to(request: Option<&MessageRequest>) -> MessageResponse {
    let file = super::grpc::reviews_file();
    let file_response = || {
        MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
            file_descriptor_proto: vec![file.encode_to_vec()],
        })
    };
    let not_found = |what: String| {
        MessageResponse::ErrorResponse(ErrorResponse {
            error_code: 5,
            error_message: format!("{what} not found"),
        })
    };
    match request {
        Some(MessageRequest::FileContainingSymbol(symbol)) if declares(symbol) => file_response(),
        Some(MessageRequest::FileContainingSymbol(symbol)) => not_found(format!("symbol {symbol}")),
        Some(MessageRequest::FileByFilename(name))
            if Some(name.as_str()) == file.name.as_deref() =>
        {
            file_response()
        }
        Some(MessageRequest::FileByFilename(name)) => not_found(format!("file {name}")),
        Some(MessageRequest::ListServices(_)) => {
            let names = ["reviews.Reviews", "grpc.reflection.v1.ServerReflection"];
            MessageResponse::ListServicesResponse(ListServiceResponse {
                service: names
                    .iter()
                    .map(|n| ServiceResponse {
                        name: (*n).to_owned(),
                    })
                    .collect(),
            })
        }
        None => MessageResponse::ErrorResponse(ErrorResponse {
            error_code: 3,
            error_message: "no message_request".to_owned(),
        }),
    }
}

/// Whether the reviews file declares `symbol`: a service, a method of it, or a message.
fn declares(symbol: &str) -> bool {
    let Ok(pool) = prost_reflect::DescriptorPool::decode(super::grpc::descriptor_set().as_slice())
    else {
        return false;
    };
    pool.get_service_by_name(symbol).is_some()
        || pool.get_message_by_name(symbol).is_some()
        || symbol.rsplit_once('.').is_some_and(|(service, method)| {
            pool.get_service_by_name(service)
                .is_some_and(|s| s.methods().any(|m| m.name() == method))
        })
}

/// A gRPC answer: `frames`, then the trailers with `status` (and `message`).
fn respond(
    frames: Vec<Bytes>,
    status: &'static str,
    message: Option<&'static str>,
) -> Response<GrpcBody> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static(status));
    if let Some(message) = message {
        trailers.insert("grpc-message", HeaderValue::from_static(message));
    }
    let mut body: Vec<_> = frames.into_iter().map(|f| Ok(Frame::data(f))).collect();
    body.push(Ok(Frame::trailers(trailers)));
    let mut response = Response::new(StreamBody::new(futures_util::stream::iter(body)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_describes_its_service_and_others_do_not_offer_reflection() {
        use http_body_util::BodyExt as _;
        let ask = |symbol: &str| {
            wire::frame(&ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::FileContainingSymbol(symbol.to_owned())),
            })
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let collect = |response: Response<GrpcBody>| {
            runtime.block_on(async { response.into_body().collect().await.expect("body") })
        };
        let v1 = answer(ReviewsVersion::V1, REFLECTION_V1, &ask("reviews.Reviews"))
            .expect("a reflection path");
        let body = collect(v1);
        assert_eq!(
            body.trailers()
                .and_then(|t| t.get("grpc-status"))
                .map(|v| v.as_bytes()),
            Some(&b"0"[..])
        );
        let answers: Vec<ServerReflectionResponse> =
            wire::unframe(&body.to_bytes()).expect("answers");
        assert!(matches!(
            &answers[0].message_response,
            Some(MessageResponse::FileDescriptorResponse(f)) if f.file_descriptor_proto.len() == 1
        ));
        let unknown = collect(
            answer(ReviewsVersion::V1, REFLECTION_V1, &ask("nope.Nope")).expect("reflection"),
        );
        let answers: Vec<ServerReflectionResponse> =
            wire::unframe(&unknown.to_bytes()).expect("answers");
        assert!(matches!(
            &answers[0].message_response,
            Some(MessageResponse::ErrorResponse(e)) if e.error_code == 5
        ));
        let v2 = collect(
            answer(ReviewsVersion::V2, REFLECTION_V1, &ask("reviews.Reviews")).expect("reflection"),
        );
        assert_eq!(
            v2.trailers()
                .and_then(|t| t.get("grpc-status"))
                .map(|v| v.as_bytes()),
            Some(&b"12"[..])
        );
        assert!(answer(ReviewsVersion::V1, "/reviews.Reviews/GetReviews", b"").is_none());
    }
}
