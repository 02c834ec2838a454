//! Where a gRPC exchange's message descriptors come from, in the order they win: the
//! VirtualService's `mirrorlab.dev/grpc-descriptors` annotation, the lab setting
//! (`--grpc-descriptors`, Settings > gRPC descriptors), then gRPC server reflection asked
//! of the primary's endpoint ([`ReflectionTable`]); without any, messages decode by field
//! number (schema-less).

mod reflected;
pub mod wire;

use std::fmt;
use std::path::Path;

pub use reflected::{ReflectionRequest, ReflectionState, ReflectionTable};

use crate::capture::{Exchange, UpstreamOutcome};
use crate::routing::ActionKind;

/// A service's descriptors and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcDescriptors {
    /// The message and service descriptors (prost-reflect).
    pub pool: prost_reflect::DescriptorPool,
    /// Where they were read.
    pub origin: DescriptorOrigin,
}

/// Where a set of descriptors was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DescriptorOrigin {
    /// A route object's `mirrorlab.dev/grpc-descriptors` annotation naming this file.
    Annotation {
        /// The file, as resolved against the config's directory.
        file: String,
    },
    /// The lab setting naming this file.
    Setting {
        /// The file.
        file: String,
    },
    /// gRPC server reflection, asked of this endpoint for this service.
    Reflection {
        /// The primary's endpoint (`127.0.0.1:9091`).
        endpoint: String,
        /// The fully-qualified service (`reviews.Reviews`).
        service: String,
    },
}

impl fmt::Display for DescriptorOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DescriptorOrigin::Annotation { file } => write!(
                f,
                "from the annotation {} ({file})",
                super::GRPC_DESCRIPTORS_ANNOTATION
            ),
            DescriptorOrigin::Setting { file } => {
                write!(f, "from the lab setting --grpc-descriptors ({file})")
            }
            DescriptorOrigin::Reflection { endpoint, service } => {
                write!(f, "from server reflection ({endpoint}, {service})")
            }
        }
    }
}

/// Largest descriptor set file read (a whole service mesh's protos are a few MiB).
const MAX_DESCRIPTOR_FILE: u64 = 64 << 20;

impl GrpcDescriptors {
    /// A `FileDescriptorSet` file (what `protoc --descriptor_set_out` or `buf build -o`
    /// writes); the error names the file and says why it does not load.
    pub fn load(path: &Path, origin: DescriptorOrigin) -> Result<GrpcDescriptors, String> {
        // Checked first: the app checks the path as it is typed, and a FIFO, a device or a
        // huge file must not hang it or fill its memory.
        let meta =
            std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{} is not a regular file", path.display()));
        }
        if meta.len() > MAX_DESCRIPTOR_FILE {
            return Err(format!(
                "{} is {} MiB; a descriptor set of more than {} MiB is not read",
                path.display(),
                meta.len() >> 20,
                MAX_DESCRIPTOR_FILE >> 20
            ));
        }
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let pool = prost_reflect::DescriptorPool::decode(bytes.as_slice()).map_err(|e| {
            format!(
                "{} is not a FileDescriptorSet (protoc --descriptor_set_out, buf build -o): {e}",
                path.display()
            )
        })?;
        Ok(GrpcDescriptors { pool, origin })
    }

    /// The lab setting's file.
    pub fn setting(path: &Path) -> Result<GrpcDescriptors, String> {
        let file = path.display().to_string();
        Self::load(path, DescriptorOrigin::Setting { file })
            .map_err(|e| format!("gRPC descriptors setting ignored: {e}"))
    }

    /// The services these descriptors define, fully qualified, for messages.
    pub fn services(&self) -> Vec<String> {
        self.pool
            .services()
            .map(|s| s.full_name().to_owned())
            .collect()
    }
}

/// The service a gRPC request path names: `/pkg.Service/Method` → `pkg.Service`.
pub fn grpc_service(path: &str) -> Option<&str> {
    let path = path.split('?').next().unwrap_or(path);
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/')).then_some(service)
}

/// A gRPC call (`content-type: application/grpc`, `+proto` or with parameters), the bodies
/// the diff decodes as messages.
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    // Asked of every exchange the analysis takes in: compared in place, no copy.
    let Some(ct) = headers.get(http::header::CONTENT_TYPE) else {
        return false;
    };
    let starts = |text: &[u8], prefix: &[u8]| {
        text.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    let ct = ct.as_bytes();
    let Some(rest) = starts(ct, b"application/grpc").then(|| &ct[b"application/grpc".len()..])
    else {
        return false;
    };
    rest.is_empty() || rest.starts_with(b";") || starts(rest, b"+proto")
}

/// The endpoint and service whose server reflection would describe `exchange`: a gRPC call
/// the route forwarded and the primary answered. `None` for anything else.
pub fn reflection_key(exchange: &Exchange) -> Option<(&str, &str, &str)> {
    let forwarded = exchange
        .trace
        .as_ref()
        .is_some_and(|t| t.action == ActionKind::Forward);
    if !forwarded || !is_grpc(&exchange.request.headers) {
        return None;
    }
    let primary = exchange.primary.as_ref()?;
    if primary.endpoint.is_empty() || !matches!(primary.outcome, UpstreamOutcome::Response(_)) {
        return None;
    }
    let service = grpc_service(&exchange.request.uri)?;
    Some((&primary.endpoint, service, &primary.target))
}

/// How a gRPC exchange's messages were (or would now be) read, for the Traffic detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcDecode {
    /// By name, with these descriptors.
    Typed(DescriptorOrigin),
    /// By field number; why there are no descriptors.
    SchemaLess(String),
}

impl GrpcDecode {
    /// True while server reflection is still under way (a later look may be typed).
    pub fn pending(&self) -> bool {
        matches!(self, GrpcDecode::SchemaLess(why) if why.starts_with(REFLECTION_PENDING))
    }
}

impl fmt::Display for GrpcDecode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrpcDecode::Typed(origin) => {
                write!(f, "gRPC messages by field name, descriptors {origin}")
            }
            GrpcDecode::SchemaLess(why) => {
                write!(f, "gRPC messages schema-less (by field number): {why}")
            }
        }
    }
}

/// How [`GrpcDecode::SchemaLess`] starts while reflection is under way.
const REFLECTION_PENDING: &str = "server reflection pending";

/// The decode of `exchange`'s messages, given the descriptors its route's rules carry
/// (annotation or setting) and the reflection table, if reflection is on. Never asks for
/// reflection itself. `None` when the exchange is not a gRPC call.
pub fn grpc_decode(
    exchange: &Exchange,
    configured: Option<&GrpcDescriptors>,
    reflection: Option<&ReflectionTable>,
) -> Option<GrpcDecode> {
    if !is_grpc(&exchange.request.headers) {
        return None;
    }
    if let Some(d) = configured {
        return Some(GrpcDecode::Typed(d.origin.clone()));
    }
    let no_descriptors =
        "no mirrorlab.dev/grpc-descriptors annotation, no --grpc-descriptors setting";
    let Some((endpoint, service, _)) = reflection_key(exchange) else {
        return Some(GrpcDecode::SchemaLess(format!(
            "{no_descriptors}, and no primary answer to ask for server reflection"
        )));
    };
    let Some(table) = reflection else {
        return Some(GrpcDecode::SchemaLess(format!(
            "{no_descriptors}, and server reflection is off"
        )));
    };
    Some(match table.state(endpoint, service) {
        Some(ReflectionState::Ready(d)) => GrpcDecode::Typed(d.origin),
        Some(ReflectionState::Failed(why)) => GrpcDecode::SchemaLess(format!(
            "{no_descriptors}, and server reflection ({endpoint}, {service}) failed: {why}"
        )),
        Some(ReflectionState::Pending) | None => {
            GrpcDecode::SchemaLess(format!("{REFLECTION_PENDING} ({endpoint}, {service})"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_is_read() {
        // The app checks the path as it is typed: a directory (or a FIFO, a device) is
        // refused before anything is read.
        let dir = std::env::temp_dir();
        let err = GrpcDescriptors::setting(&dir).expect_err("a directory is not a descriptor set");
        assert!(err.contains("is not a regular file"), "{err}");
    }

    #[test]
    fn the_service_is_the_first_segment_of_a_grpc_path() {
        assert_eq!(
            grpc_service("/reviews.Reviews/GetReviews"),
            Some("reviews.Reviews")
        );
        assert_eq!(grpc_service("/a.b.C/M?x=1"), Some("a.b.C"));
        assert_eq!(grpc_service("/reviews/1"), Some("reviews"));
        assert_eq!(grpc_service("/only"), None);
        assert_eq!(grpc_service("//M"), None);
        assert_eq!(grpc_service("/a/b/c"), None);
    }

    #[test]
    fn grpc_content_types_are_told_apart_in_any_case() {
        let with = |ct: &'static str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(ct),
            );
            is_grpc(&headers)
        };
        assert!(with("application/grpc"));
        assert!(with("Application/GRPC+proto"));
        assert!(with("application/grpc; charset=utf-8"));
        assert!(!with("application/grpc-web"));
        assert!(!with("application/grpc+json"));
        assert!(!with("application/json"));
        assert!(!is_grpc(&http::HeaderMap::new()));
    }

    #[test]
    fn a_file_that_does_not_load_names_itself_and_why() {
        let missing = GrpcDescriptors::setting(Path::new("/no/such/file.pb"));
        let err = missing.err().unwrap_or_default();
        assert!(
            err.contains("/no/such/file.pb") && err.contains("cannot read"),
            "{err}"
        );
        let dir = std::env::temp_dir().join(format!("mirrorlab-desc-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let junk = dir.join("junk.pb");
        let _ = std::fs::write(&junk, b"\xff\xff not protobuf");
        let err = GrpcDescriptors::setting(&junk).err().unwrap_or_default();
        assert!(err.contains("is not a FileDescriptorSet"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
