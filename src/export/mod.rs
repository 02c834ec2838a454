//! Exports of captured traffic and analysis: the JSON report and HAR.

pub mod har;
mod har_analysis;
mod har_model;
pub mod report;

pub use har::{HarError, HarOptions, build_har, write_har, write_har_file};
pub use report::{ExchangeDifferences, REPORT_SCHEMA_VERSION, Report, ReportError, RunInfo};

/// RFC 3339 UTC time with milliseconds, as HAR and the report write it.
pub(crate) fn rfc3339(t: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
