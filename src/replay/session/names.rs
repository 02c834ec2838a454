//! The names a session writes for the capture's enums and flags, read back: the inverse
//! of each `as_str` and of `ResponseFlags`' display.

use crate::capture::{ResponseFlags, SkipReason, UpstreamErrorKind};

pub(super) fn version_in(text: &str) -> Result<http::Version, String> {
    Ok(match text {
        "HTTP/0.9" => http::Version::HTTP_09,
        "HTTP/1.0" => http::Version::HTTP_10,
        "HTTP/1.1" => http::Version::HTTP_11,
        "HTTP/2.0" => http::Version::HTTP_2,
        "HTTP/3.0" => http::Version::HTTP_3,
        other => return Err(format!("{other:?} is not an HTTP version")),
    })
}

const ERROR_KINDS: [UpstreamErrorKind; 12] = [
    UpstreamErrorKind::Refused,
    UpstreamErrorKind::Reset,
    UpstreamErrorKind::RemoteReset,
    UpstreamErrorKind::RefusedStream,
    UpstreamErrorKind::Timeout,
    UpstreamErrorKind::Protocol,
    UpstreamErrorKind::Dns,
    UpstreamErrorKind::ConnectTimeout,
    UpstreamErrorKind::NoEndpoint,
    UpstreamErrorKind::Overflow,
    UpstreamErrorKind::Tls,
    UpstreamErrorKind::Other,
];

pub(super) fn error_kind_in(text: &str) -> Result<UpstreamErrorKind, String> {
    ERROR_KINDS
        .into_iter()
        .find(|k| k.as_str() == text)
        .ok_or_else(|| format!("{text:?} is not an upstream error kind"))
}

pub(super) fn skip_in(text: &str) -> Result<SkipReason, String> {
    [
        SkipReason::NotSampled,
        SkipReason::BodyTooLarge,
        SkipReason::NoSlot,
        SkipReason::RequestIncomplete,
    ]
    .into_iter()
    .find(|r| r.as_str() == text)
    .ok_or_else(|| format!("{text:?} is not a mirror skip reason"))
}

pub(super) fn flags_in(text: &str) -> Result<ResponseFlags, String> {
    if text == "-" || text.is_empty() {
        return Ok(ResponseFlags::NONE);
    }
    text.split(',').try_fold(ResponseFlags::NONE, |acc, name| {
        ResponseFlags::from_name(name)
            .map(|f| acc.union(f))
            .ok_or_else(|| format!("{name:?} is not one of Envoy's response flags"))
    })
}
