//! Sessions: what the lab captured, saved so it can be opened again with no proxy running
//! (docs/REPLAY.md, "Sessions").
//!
//! A session is a HAR 1.2 file, so browsers and HAR tools open it too: the entries are the
//! HAR export's, with its credential rules, and each also carries `_exchange`, the whole
//! capture (raw bodies, route trace, nanosecond timings) from which the analysis is
//! rebuilt exactly. `log._mirrorlabSession`, written before the entries, holds the config
//! the lab ran and the analysis settings. The file is written one entry at a time and read
//! the same way, so a large session is never held twice in memory.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisSettings, AnalysisSnapshot, IgnoreRules, NoiseThresholds};
use crate::capture::Exchange;
use crate::export::har::{HarEntry, HarOptions, har_entry};
use crate::export::report::RunInfo;

mod names;
mod record;

use record::Credentials;
pub(crate) use record::ExchangeRecord;

/// The session format's version, in `log._mirrorlabSession.format`.
pub const SESSION_FORMAT: u32 = 1;

/// Why a session could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The file could not be created or written.
    #[error(
        "cannot write the session {path}: {source}; check the directory exists and is writable"
    )]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An entry could not be serialised.
    #[error("cannot write the session {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// A config file the lab ran, with its text at the time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionConfig {
    /// The path it was loaded from.
    pub path: String,
    /// Its text.
    pub text: String,
}

/// The analysis settings, as text that parses back to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionAnalysis {
    /// Global ignore rules, in annotation syntax.
    pub ignore: String,
    /// Extra rules per VirtualService.
    pub virtual_service_rules: BTreeMap<String, String>,
    /// `relative` noise threshold.
    pub relative_threshold: f64,
    /// `absolute` noise threshold.
    pub absolute_threshold: f64,
    /// Per-exchange summaries kept.
    pub max_exchange_summaries: usize,
    /// Sample exchange ids per field.
    pub samples_per_field: usize,
}

impl SessionAnalysis {
    /// The settings as saved.
    pub fn of(settings: &AnalysisSettings) -> Self {
        Self {
            ignore: settings.ignore.to_string(),
            virtual_service_rules: settings
                .virtual_service_rules
                .iter()
                .map(|(vs, rules)| (vs.clone(), rules.to_string()))
                .collect(),
            relative_threshold: settings.thresholds.relative,
            absolute_threshold: settings.thresholds.absolute,
            max_exchange_summaries: settings.max_exchange_summaries,
            samples_per_field: settings.samples_per_field,
        }
    }

    /// The settings again; an error names the rule that no longer parses.
    pub fn settings(&self) -> Result<AnalysisSettings, String> {
        let parse =
            |what: &str, text: &str| IgnoreRules::parse(text).map_err(|e| format!("{what}: {e}"));
        let mut virtual_service_rules = BTreeMap::new();
        for (vs, text) in &self.virtual_service_rules {
            virtual_service_rules
                .insert(vs.clone(), parse(&format!("ignore rules of {vs}"), text)?);
        }
        Ok(AnalysisSettings {
            ignore: parse("ignore rules", &self.ignore)?,
            virtual_service_rules,
            thresholds: NoiseThresholds {
                relative: self.relative_threshold,
                absolute: self.absolute_threshold,
            },
            max_exchange_summaries: self.max_exchange_summaries,
            samples_per_field: self.samples_per_field,
            // Descriptors are not saved with a session: `mirrorlab report --grpc-descriptors`
            // names them again.
            ..AnalysisSettings::default()
        })
    }
}

/// `log._mirrorlabSession`: what the lab ran, beside what it captured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionMeta {
    /// [`SESSION_FORMAT`].
    pub format: u32,
    /// The config file(s) the lab ran.
    pub config: Vec<SessionConfig>,
    /// The proxy's address.
    pub listen: Option<String>,
    /// When the run started, RFC 3339 with nanoseconds.
    pub started_at: String,
    /// When it ended.
    pub ended_at: String,
    /// `--seed`, if given.
    pub seed: Option<u64>,
    /// The analysis settings.
    pub analysis: SessionAnalysis,
    /// Credential values are as captured (`kept`) or salted digests (`redacted`).
    pub credentials: String,
}

fn rfc3339_ns(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn time_in(text: &str) -> Result<SystemTime, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(SystemTime::from)
        .map_err(|e| format!("{text:?} is not an RFC 3339 time ({e})"))
}

impl SessionMeta {
    /// The meta of a run: its configs (with their text), `run` and the analysis settings.
    pub fn new(
        config: Vec<SessionConfig>,
        run: &RunInfo,
        settings: &AnalysisSettings,
        keep_credentials: bool,
    ) -> Self {
        Self {
            format: SESSION_FORMAT,
            config,
            listen: run.listen.clone(),
            started_at: rfc3339_ns(run.started_at),
            ended_at: rfc3339_ns(run.ended_at),
            seed: run.seed,
            analysis: SessionAnalysis::of(settings),
            credentials: if keep_credentials { "kept" } else { "redacted" }.to_owned(),
        }
    }

    /// The run as the report describes it.
    pub fn run_info(&self) -> Result<RunInfo, String> {
        Ok(RunInfo {
            config: self.config.iter().map(|c| PathBuf::from(&c.path)).collect(),
            listen: self.listen.clone(),
            started_at: time_in(&self.started_at)?,
            ended_at: time_in(&self.ended_at)?,
            seed: self.seed,
        })
    }
}

/// One session entry: the HAR export's entry and, beside it, the whole exchange.
#[derive(Serialize)]
struct SessionEntry<'a> {
    #[serde(flatten)]
    har: &'a HarEntry,
    #[serde(rename = "_exchange")]
    exchange: ExchangeRecord,
}

/// Writes a session one exchange at a time.
pub struct SessionWriter<W: Write> {
    out: W,
    path: PathBuf,
    entries: usize,
    har: HarOptions,
    credentials: Credentials,
}

impl<W: Write> SessionWriter<W> {
    /// Starts a session on `out` (`path` names it in errors): the document up to the
    /// entries, `_mirrorlabSession` first.
    pub fn new(mut out: W, path: &Path, meta: &SessionMeta) -> Result<Self, SessionError> {
        let keep = meta.credentials == "kept";
        let io = |source| SessionError::Io {
            path: path.to_owned(),
            source,
        };
        let json = |source| SessionError::Json {
            path: path.to_owned(),
            source,
        };
        let creator =
            serde_json::json!({"name": "mirrorlab", "version": env!("CARGO_PKG_VERSION")});
        let meta = serde_json::to_string(meta).map_err(json)?;
        write!(
            out,
            "{{\"log\":{{\"version\":\"1.2\",\"creator\":{creator},\"_mirrorlabSession\":{meta},\"entries\":["
        )
        .map_err(io)?;
        Ok(Self {
            out,
            path: path.to_owned(),
            entries: 0,
            har: HarOptions {
                redact: !keep,
                bodies: true,
            },
            credentials: if keep {
                Credentials::Keep
            } else {
                Credentials::Digest(fastrand::u64(..))
            },
        })
    }

    /// Appends one exchange (with its analysis in `_mirrorlab`, given one).
    pub fn write(
        &mut self,
        e: &Exchange,
        analysis: Option<&AnalysisSnapshot>,
    ) -> Result<(), SessionError> {
        let entry = SessionEntry {
            har: &har_entry(e, &self.har, analysis),
            exchange: ExchangeRecord::of(e, self.credentials),
        };
        let sep: &[u8] = if self.entries == 0 { b"\n" } else { b",\n" };
        self.out.write_all(sep).map_err(|source| SessionError::Io {
            path: self.path.clone(),
            source,
        })?;
        serde_json::to_writer(&mut self.out, &entry).map_err(|source| SessionError::Json {
            path: self.path.clone(),
            source,
        })?;
        self.entries += 1;
        Ok(())
    }

    /// Ends the document and flushes; returns the writer.
    pub fn finish(mut self) -> Result<W, SessionError> {
        let io = |source| SessionError::Io {
            path: self.path.clone(),
            source,
        };
        self.out.write_all(b"\n]}}\n").map_err(io)?;
        self.out.flush().map_err(io)?;
        Ok(self.out)
    }
}

/// Writes `exchanges` as a session file at `path`.
pub fn write_session_file<E: std::borrow::Borrow<Exchange>>(
    path: &Path,
    meta: &SessionMeta,
    exchanges: &[E],
    analysis: Option<&AnalysisSnapshot>,
) -> Result<usize, SessionError> {
    let file = std::fs::File::create(path).map_err(|source| SessionError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut writer = SessionWriter::new(std::io::BufWriter::new(file), path, meta)?;
    for e in exchanges {
        writer.write(e.borrow(), analysis)?;
    }
    writer.finish()?;
    Ok(exchanges.len())
}
