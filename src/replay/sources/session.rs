//! Reading a session back as captures: every entry's `_exchange`, in the order written,
//! for the app to open or for `mirrorlab report SESSION` to analyse again. (As traffic to
//! replay, a session is read as the HAR it is: sources/har.rs.)

use std::io::BufReader;
use std::path::Path;

use serde::Deserialize;

use crate::analysis::descriptors::GrpcDescriptors;
use crate::analysis::{AnalysisSnapshot, Analyzer};
use crate::capture::Exchange;
use crate::export::report::RunInfo;
use crate::replay::TrafficError;
use crate::replay::session::{ExchangeRecord, SessionMeta};

use super::har::for_each_entry;

#[derive(Deserialize)]
struct SessionEntryIn {
    #[serde(rename = "_exchange")]
    exchange: Option<ExchangeRecord>,
}

/// A session's exchanges, streamed to `each` in the order written, with its meta.
pub fn for_each_exchange(
    path: &Path,
    mut each: impl FnMut(&SessionMeta, Exchange) -> Result<(), String>,
) -> Result<SessionMeta, TrafficError> {
    let file = std::fs::File::open(path).map_err(|source| TrafficError::Io {
        path: path.to_owned(),
        source,
    })?;
    let stream = for_each_entry::<_, SessionMeta, SessionEntryIn, _>(
        BufReader::new(file),
        path,
        |meta, index, entry| {
            let at = |m: String| format!("entry {} (log.entries[{index}]): {m}", index + 1);
            let Some(meta) = meta else {
                return Err(not_a_session());
            };
            let record = entry.exchange.ok_or_else(|| {
                at("no `_exchange`: the entry was not written by a session".to_owned())
            })?;
            each(meta, record.into_exchange().map_err(at)?)
        },
    )?;
    stream.meta.ok_or_else(|| TrafficError::Parse {
        path: path.to_owned(),
        line: 1,
        column: None,
        message: not_a_session(),
    })
}

fn not_a_session() -> String {
    "not a mirrorlab session: no `log._mirrorlabSession` before the entries (a plain HAR \
     can be replayed, not reopened)"
        .to_owned()
}

/// A session read whole, for the app.
#[derive(Debug, Clone)]
pub struct Session {
    /// What the lab ran.
    pub meta: SessionMeta,
    /// What it captured, in the order written.
    pub exchanges: Vec<Exchange>,
}

/// Reads the whole session at `path`.
pub fn read_session(path: &Path) -> Result<Session, TrafficError> {
    let mut exchanges = Vec::new();
    let meta = for_each_exchange(path, |_, e| {
        exchanges.push(e);
        Ok(())
    })?;
    Ok(Session { meta, exchanges })
}

/// The analysis of a session, rebuilt by streaming its exchanges through an analyzer with
/// the saved settings (no exchange is kept), and the run it describes.
pub fn analyze_session(
    path: &Path,
) -> Result<(SessionMeta, RunInfo, AnalysisSnapshot), TrafficError> {
    analyze_session_with(path, None)
}

/// [`analyze_session`], gRPC messages of routes without an annotation's descriptors read
/// with `grpc_descriptors` (the lab setting; a session does not keep descriptors).
pub fn analyze_session_with(
    path: &Path,
    grpc_descriptors: Option<GrpcDescriptors>,
) -> Result<(SessionMeta, RunInfo, AnalysisSnapshot), TrafficError> {
    let settings = |meta: &SessionMeta| {
        meta.analysis.settings().map(|mut s| {
            s.grpc_descriptors.clone_from(&grpc_descriptors);
            s
        })
    };
    let mut analyzer: Option<Analyzer> = None;
    let parse = |message: String| TrafficError::Parse {
        path: path.to_owned(),
        line: 1,
        column: None,
        message,
    };
    let meta = for_each_exchange(path, |meta, e| {
        let analyzer = match &mut analyzer {
            Some(a) => a,
            None => analyzer.insert(Analyzer::new(
                settings(meta).map_err(|m| format!("log._mirrorlabSession.analysis: {m}"))?,
            )),
        };
        analyzer.ingest(&e);
        Ok(())
    })?;
    let analyzer = match analyzer {
        Some(a) => a,
        None => Analyzer::new(
            settings(&meta).map_err(|m| parse(format!("log._mirrorlabSession.analysis: {m}")))?,
        ),
    };
    let run = meta
        .run_info()
        .map_err(|m| parse(format!("log._mirrorlabSession: {m}")))?;
    Ok((meta, run, analyzer.snapshot()))
}
