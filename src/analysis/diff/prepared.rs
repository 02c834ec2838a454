//! A response decoded once, and its body parsed as JSON (or its gRPC messages) on first
//! need, so the diff of several mirrors against one primary does that work once.

use serde_json::Value;

use super::decode::{Decoded, decode, looks_like_json};
use super::grpc;
use crate::capture::CapturedResponse;

/// A response decoded once, so an exchange with several mirrors decodes and parses its
/// primary body only once.
pub(crate) struct PreparedResponse<'a> {
    pub(super) response: &'a CapturedResponse,
    pub(super) decoded: Decoded<'a>,
    /// The body parsed as JSON, on first need; `None` inside when it is not JSON.
    json: std::cell::OnceCell<Option<Value>>,
    /// The request path (`/package.Service/Method` for gRPC), when known: with the
    /// service's descriptors it says which message the body holds.
    method: Option<&'a str>,
    /// The service's descriptors, when there are any: messages are read by name.
    descriptors: Option<&'a prost_reflect::DescriptorPool>,
}

impl<'a> PreparedResponse<'a> {
    /// Decodes the body; `side` names it in decode errors.
    pub(crate) fn new(response: &'a CapturedResponse, side: &str) -> Self {
        Self {
            decoded: decode(&response.body, &response.headers, side),
            response,
            json: std::cell::OnceCell::new(),
            method: None,
            descriptors: None,
        }
    }

    /// The same response, answering a request to `path`.
    pub(crate) fn for_method(mut self, path: Option<&'a str>) -> Self {
        self.method = path;
        self
    }

    /// The same response, its gRPC messages read with `descriptors` when given.
    pub(crate) fn with_descriptors(
        mut self,
        descriptors: Option<&'a prost_reflect::DescriptorPool>,
    ) -> Self {
        self.descriptors = descriptors;
        self
    }

    /// The descriptors its gRPC messages are read with, if any.
    pub(crate) fn descriptors(&self) -> Option<&'a prost_reflect::DescriptorPool> {
        self.descriptors
    }

    /// The request path it answers, if known.
    pub(crate) fn method(&self) -> Option<&'a str> {
        self.method
    }

    /// The captured response.
    pub(crate) fn response(&self) -> &'a CapturedResponse {
        self.response
    }

    /// The body as JSON, when it is a whole JSON document.
    pub(super) fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| {
                if self.decoded.cut {
                    return None;
                }
                let headers = &self.response.headers;
                let schema =
                    self.descriptors
                        .zip(self.method)
                        .map(|(pool, path)| grpc::GrpcSchema {
                            pool,
                            path,
                            side: grpc::MessageSide::Response,
                        });
                let bytes = &self.decoded.bytes;
                if let Some(messages) = grpc::grpc_messages_with(headers, bytes, schema) {
                    return Some(messages);
                }
                if !looks_like_json(headers, &self.decoded.bytes) {
                    return None;
                }
                serde_json::from_slice(&self.decoded.bytes).ok()
            })
            .as_ref()
    }
}
