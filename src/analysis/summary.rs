//! Per-exchange diff summaries for the traffic table, stored in sealed chunks so that a
//! snapshot shares them instead of copying.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Serialize;

use crate::capture::{SkipReason, UpstreamErrorKind};

/// Summaries per sealed chunk: small enough that copying the open chunk into each snapshot
/// is cheap at 30 snapshots a second.
const CHUNK: usize = 256;

/// What happened to one mirror of an exchange, in brief.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ShadowState {
    /// Both answered and were compared.
    Compared {
        /// Status codes when they differ (and are not ignored).
        status: Option<(u16, u16)>,
        /// Field paths that differ (status, headers and body places), ignoring rules.
        differing_fields: u32,
    },
    /// The shadow answered but the primary did not, so nothing was compared.
    PrimaryFailed,
    /// The copy was sent and failed.
    Failed(UpstreamErrorKind),
    /// No copy was sent.
    Skipped(SkipReason),
}

/// One mirror of an exchange, in brief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShadowSummary {
    /// Mirror destination label.
    pub target: Arc<str>,
    /// The mirror goes to the primary's own destination.
    pub baseline: bool,
    /// What happened.
    pub state: ShadowState,
}

impl ShadowSummary {
    /// `same`, `status 200→500`, `3 fields differ`, `failed: timeout`, `skipped: no_slot`.
    pub fn text(&self) -> String {
        match self.state {
            ShadowState::Compared {
                status,
                differing_fields,
            } => super::diff::summarize(
                status.map(|(p, s)| super::diff::StatusDiff {
                    primary: p,
                    shadow: s,
                    ignored: false,
                }),
                usize::try_from(differing_fields).unwrap_or(usize::MAX),
            ),
            ShadowState::PrimaryFailed => "primary failed; not compared".to_owned(),
            ShadowState::Failed(kind) => format!("failed: {}", kind.as_str()),
            ShadowState::Skipped(reason) => format!("skipped: {}", reason.as_str()),
        }
    }
}

/// Diff summary of one exchange: one entry per mirror policy, in config order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExchangeDiffSummary {
    /// The exchange.
    pub exchange_id: u64,
    /// One entry per mirror record.
    pub shadows: Vec<ShadowSummary>,
}

impl ExchangeDiffSummary {
    /// One cell of text for the traffic table: the candidates' summaries (baselines only
    /// when there is nothing else), prefixed by destination when there are several.
    pub fn headline(&self) -> String {
        let candidates: Vec<&ShadowSummary> = self.shadows.iter().filter(|s| !s.baseline).collect();
        let shown = if candidates.is_empty() {
            self.shadows.iter().collect()
        } else {
            candidates
        };
        match shown.as_slice() {
            [] => "no mirror".to_owned(),
            [one] => one.text(),
            many => many
                .iter()
                .map(|s| format!("{}: {}", s.target, s.text()))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

/// A sealed chunk, sorted by exchange id.
#[derive(Debug)]
struct Chunk {
    min: u64,
    max: u64,
    items: Vec<ExchangeDiffSummary>,
}

/// The analyzer's side: sealed chunks plus the open one.
#[derive(Debug)]
pub(crate) struct SummaryStore {
    sealed: VecDeque<Arc<Chunk>>,
    open: Vec<ExchangeDiffSummary>,
    max_chunks: usize,
}

impl SummaryStore {
    pub(crate) fn new(max_summaries: usize) -> Self {
        Self {
            sealed: VecDeque::new(),
            open: Vec::with_capacity(CHUNK),
            max_chunks: max_summaries.div_ceil(CHUNK).max(1),
        }
    }

    pub(crate) fn push(&mut self, summary: ExchangeDiffSummary) {
        self.open.push(summary);
        if self.open.len() >= CHUNK {
            let mut items = std::mem::replace(&mut self.open, Vec::with_capacity(CHUNK));
            // Exchanges finish out of order (slow shadows); sort so lookups can bisect.
            items.sort_by_key(|s| s.exchange_id);
            let min = items.first().map_or(0, |s| s.exchange_id);
            let max = items.last().map_or(0, |s| s.exchange_id);
            self.sealed.push_back(Arc::new(Chunk { min, max, items }));
            while self.sealed.len() > self.max_chunks {
                self.sealed.pop_front();
            }
        }
    }

    pub(crate) fn view(&self) -> ExchangeSummaries {
        ExchangeSummaries {
            sealed: self.sealed.iter().cloned().collect::<Vec<_>>().into(),
            open: self.open.clone().into(),
        }
    }
}

/// Read-only, cheaply clonable view of the per-exchange summaries.
#[derive(Debug, Clone, Default)]
pub struct ExchangeSummaries {
    sealed: Arc<[Arc<Chunk>]>,
    open: Arc<[ExchangeDiffSummary]>,
}

impl ExchangeSummaries {
    /// The summary of one exchange, if it is still kept.
    pub fn get(&self, exchange_id: u64) -> Option<&ExchangeDiffSummary> {
        if let Some(s) = self.open.iter().find(|s| s.exchange_id == exchange_id) {
            return Some(s);
        }
        self.sealed
            .iter()
            .rev()
            .filter(|c| c.min <= exchange_id && exchange_id <= c.max)
            .find_map(|c| {
                c.items
                    .binary_search_by_key(&exchange_id, |s| s.exchange_id)
                    .ok()
                    .and_then(|i| c.items.get(i))
            })
    }

    /// Number of summaries kept.
    pub fn len(&self) -> usize {
        self.sealed.iter().map(|c| c.items.len()).sum::<usize>() + self.open.len()
    }

    /// True when no summary is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
