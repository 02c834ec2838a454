//! The messages of gRPC server reflection, written by hand with prost's derive (no
//! protobuf compiler): grpc/grpc `src/proto/grpc/reflection/v1/reflection.proto`, whose
//! `v1alpha` twin has the same fields and numbers. Only the parts the lab speaks are
//! here: a request for the file declaring a symbol or for a file by name (and the list
//! of services, which the demo answers for `grpcurl list`); an answer with file
//! descriptors, a service list, or an error. Unknown fields are skipped when decoding.

use bytes::Bytes;

/// `grpc.reflection.v1.ServerReflection/ServerReflectionInfo`, the method's path.
pub const REFLECTION_V1: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
/// The same service before it was stable, which older servers offer instead.
pub const REFLECTION_V1ALPHA: &str =
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

/// `ServerReflectionRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerReflectionRequest {
    /// `host = 1`.
    #[prost(string, tag = "1")]
    pub host: String,
    /// `oneof message_request`.
    #[prost(oneof = "MessageRequest", tags = "3, 4, 7")]
    pub message_request: Option<MessageRequest>,
}

/// `ServerReflectionRequest.message_request`, the kinds the lab asks.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum MessageRequest {
    /// `file_by_filename = 3`: a proto file by its name.
    #[prost(string, tag = "3")]
    FileByFilename(String),
    /// `file_containing_symbol = 4`: the file declaring a fully-qualified symbol.
    #[prost(string, tag = "4")]
    FileContainingSymbol(String),
    /// `list_services = 7`: the services the server offers.
    #[prost(string, tag = "7")]
    ListServices(String),
}

/// `ServerReflectionResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerReflectionResponse {
    /// `valid_host = 1`.
    #[prost(string, tag = "1")]
    pub valid_host: String,
    /// `original_request = 2`.
    #[prost(message, optional, tag = "2")]
    pub original_request: Option<ServerReflectionRequest>,
    /// `oneof message_response`.
    #[prost(oneof = "MessageResponse", tags = "4, 6, 7")]
    pub message_response: Option<MessageResponse>,
}

/// `ServerReflectionResponse.message_response`, the kinds the lab reads.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum MessageResponse {
    /// `file_descriptor_response = 4`.
    #[prost(message, tag = "4")]
    FileDescriptorResponse(FileDescriptorResponse),
    /// `list_services_response = 6`.
    #[prost(message, tag = "6")]
    ListServicesResponse(ListServiceResponse),
    /// `error_response = 7`.
    #[prost(message, tag = "7")]
    ErrorResponse(ErrorResponse),
}

/// `FileDescriptorResponse`: serialized `FileDescriptorProto`s.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FileDescriptorResponse {
    /// `repeated bytes file_descriptor_proto = 1`.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub file_descriptor_proto: Vec<Vec<u8>>,
}

/// `ListServiceResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListServiceResponse {
    /// `repeated ServiceResponse service = 1`.
    #[prost(message, repeated, tag = "1")]
    pub service: Vec<ServiceResponse>,
}

/// `ServiceResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceResponse {
    /// `name = 1`, fully qualified.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `ErrorResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ErrorResponse {
    /// `error_code = 1`, a gRPC status code.
    #[prost(int32, tag = "1")]
    pub error_code: i32,
    /// `error_message = 2`.
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// `message` as one length-prefixed gRPC frame (uncompressed): PROTOCOL-HTTP2.md's
/// Length-Prefixed-Message, a zero flag, a 4-byte big-endian length, the message.
pub fn frame(message: &impl prost::Message) -> Bytes {
    let encoded = message.encode_to_vec();
    let mut frame = Vec::with_capacity(5 + encoded.len());
    frame.push(0);
    frame.extend_from_slice(
        &u32::try_from(encoded.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    frame.extend_from_slice(&encoded);
    Bytes::from(frame)
}

/// The messages of a body of gRPC frames, each decoded as `M`; an error says what is
/// wrong (a compressed frame: the lab never asks for compression, so none is expected).
pub fn unframe<M: prost::Message + Default>(mut body: &[u8]) -> Result<Vec<M>, String> {
    let mut messages = Vec::new();
    while !body.is_empty() {
        let Some((head, rest)) = body.split_at_checked(5) else {
            return Err(format!("a gRPC frame cut after {} byte(s)", body.len()));
        };
        if head[0] != 0 {
            return Err("a compressed gRPC frame, which was not asked for".to_owned());
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let Some((message, rest)) = rest.split_at_checked(len) else {
            return Err(format!("a gRPC frame of {len} byte(s) cut short"));
        };
        messages.push(M::decode(message).map_err(|e| format!("not a reflection message: {e}"))?);
        body = rest;
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_written_with_the_protos_field_numbers() {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol("a.S".to_owned())),
        };
        // Field 4, wire type 2 (0x22), length 3, "a.S"; framed with a 5-byte prefix.
        assert_eq!(&frame(&request)[..], b"\x00\x00\x00\x00\x05\x22\x03a.S");
        let back: Vec<ServerReflectionRequest> = unframe(&frame(&request)).unwrap_or_default();
        assert_eq!(back, vec![request]);
    }

    #[test]
    fn an_answer_carries_file_descriptors_or_an_error() {
        // Field 4 (file_descriptor_response) holding field 1 (file_descriptor_proto) "x".
        let answer: Vec<ServerReflectionResponse> =
            unframe(b"\x00\x00\x00\x00\x05\x22\x03\x0a\x01x").unwrap_or_default();
        assert_eq!(
            answer[0].message_response,
            Some(MessageResponse::FileDescriptorResponse(
                FileDescriptorResponse {
                    file_descriptor_proto: vec![b"x".to_vec()]
                }
            ))
        );
        // Field 7 (error_response): error_code 5.
        let error: Vec<ServerReflectionResponse> =
            unframe(b"\x00\x00\x00\x00\x04\x3a\x02\x08\x05").unwrap_or_default();
        assert!(matches!(
            &error[0].message_response,
            Some(MessageResponse::ErrorResponse(e)) if e.error_code == 5
        ));
        assert!(unframe::<ServerReflectionResponse>(b"\x00\x00\x00\x00\x09\x22").is_err());
        assert!(unframe::<ServerReflectionResponse>(b"\x01\x00\x00\x00\x00").is_err());
    }
}
