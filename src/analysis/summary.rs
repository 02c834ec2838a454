//! Per-exchange diff summaries for the traffic table, stored in sealed chunks so that a
//! snapshot shares them instead of copying.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Serialize;

use super::ignore::FieldPath;
use super::noise::SHAPE_BIT;
use crate::capture::{SkipReason, UpstreamErrorKind};

/// Summaries per sealed chunk: small enough that copying the open chunk into each snapshot
/// is cheap at 30 snapshots a second.
const CHUNK: usize = 256;

/// Which fields of the diff table one comparison differed at: the comparison's slot in
/// the [`VerdictTable`] and each field's index there (with [`SHAPE_BIT`] set for a change
/// of type or presence). Fields beyond the table's bound are not listed.
///
/// A few fields are kept inline, more are shared: a summary is made for every exchange and
/// copied into each of the 30 snapshots a second, and neither should allocate for the
/// usual handful of differing fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRefs {
    slot: u32,
    list: RefList,
}

/// Field indexes kept inline up to this many.
const INLINE_REFS: usize = 7;

#[derive(Debug, Clone, PartialEq, Eq)]
enum RefList {
    Inline(u8, [u16; INLINE_REFS]),
    Shared(Arc<[u16]>),
}

impl Default for FieldRefs {
    fn default() -> Self {
        Self {
            slot: 0,
            list: RefList::Inline(0, [0; INLINE_REFS]),
        }
    }
}

impl FieldRefs {
    /// Refs of comparison `slot` from its field indexes.
    pub(crate) fn new(slot: u32, refs: &[u16]) -> Self {
        let list = match u8::try_from(refs.len()) {
            Ok(len) if refs.len() <= INLINE_REFS => {
                let mut items = [0; INLINE_REFS];
                for (item, r) in items.iter_mut().zip(refs) {
                    *item = *r;
                }
                RefList::Inline(len, items)
            }
            _ => RefList::Shared(refs.into()),
        };
        Self { slot, list }
    }

    fn as_slice(&self) -> &[u16] {
        match &self.list {
            RefList::Inline(len, items) => items.get(..usize::from(*len)).unwrap_or(&[]),
            RefList::Shared(refs) => refs,
        }
    }
}

/// How a difference at a field counts, as of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldClass {
    /// A real difference.
    Real,
    /// Noise.
    Noise,
    /// An ignore rule added since covers the field.
    Ignored,
}

impl FieldClass {
    pub(crate) fn noise_if(noise: bool) -> Self {
        if noise {
            FieldClass::Noise
        } else {
            FieldClass::Real
        }
    }
}

/// How the differences at one field of one comparison count: changes of value, and of
/// type or presence (a volatile field's values are noise, its shape is not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldVerdict {
    /// The field.
    pub field: FieldPath,
    /// A change of its value.
    pub value: FieldClass,
    /// A change of its type or presence.
    pub shape: FieldClass,
}

impl FieldVerdict {
    pub(crate) fn ignored(field: FieldPath) -> Self {
        Self {
            field,
            value: FieldClass::Ignored,
            shape: FieldClass::Ignored,
        }
    }
}

/// The verdicts of every field of every comparison as of a snapshot; per-exchange
/// summaries are read through it, so an exchange counts its differences by the verdicts
/// the whole run has reached, not those known when it arrived.
#[derive(Debug, Clone, Default)]
pub struct VerdictTable {
    slots: Vec<Vec<FieldVerdict>>,
}

impl VerdictTable {
    pub(crate) fn set(&mut self, slot: u32, fields: Vec<FieldVerdict>) {
        let Ok(i) = usize::try_from(slot) else {
            return;
        };
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, Vec::new);
        }
        if let Some(s) = self.slots.get_mut(i) {
            *s = fields;
        }
    }

    /// Each listed field of `refs` with how its difference counts; a field the snapshot
    /// does not know yet counts as real.
    pub fn classify<'a>(
        &'a self,
        refs: &'a FieldRefs,
    ) -> impl Iterator<Item = (Option<&'a FieldPath>, FieldClass)> + 'a {
        let slot = usize::try_from(refs.slot)
            .ok()
            .and_then(|i| self.slots.get(i));
        refs.as_slice().iter().map(move |r| {
            let shape = r & SHAPE_BIT != 0;
            let verdict = slot.and_then(|s| s.get(usize::from(r & !SHAPE_BIT)));
            match verdict {
                Some(v) => (Some(&v.field), if shape { v.shape } else { v.value }),
                None => (None, FieldClass::Real),
            }
        })
    }
}

/// One comparison's differences counted real and noise apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DiffSplit {
    /// Status codes, when they differ and the difference is real.
    pub status: Option<(u16, u16)>,
    /// Real differences (the status among them).
    pub real: u32,
    /// Differences that are noise.
    pub noise: u32,
}

/// What happened to one mirror of an exchange, in brief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ShadowState {
    /// Both answered and were compared.
    Compared {
        /// Status codes when they differ (and are not ignored).
        status: Option<(u16, u16)>,
        /// Field paths that differ (status, headers and body places), ignoring rules.
        differing_fields: u32,
        /// Where those differences are counted, to tell real ones from noise.
        #[serde(skip)]
        fields: FieldRefs,
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
    /// The differences counted real and noise apart by `verdicts`; `None` when nothing was
    /// compared. A baseline's differences are all noise.
    pub fn split(&self, verdicts: &VerdictTable) -> Option<DiffSplit> {
        let ShadowState::Compared {
            status,
            differing_fields,
            fields,
        } = &self.state
        else {
            return None;
        };
        if self.baseline {
            return Some(DiffSplit {
                status: None,
                real: 0,
                noise: *differing_fields,
            });
        }
        let (mut noise, mut ignored, mut status_real) = (0u32, 0u32, status.is_some());
        for (field, class) in verdicts.classify(fields) {
            match class {
                FieldClass::Real => continue,
                FieldClass::Noise => noise += 1,
                FieldClass::Ignored => ignored += 1,
            }
            if field == Some(&FieldPath::Status) {
                status_real = false;
            }
        }
        Some(DiffSplit {
            status: status.filter(|_| status_real),
            real: differing_fields.saturating_sub(noise + ignored),
            noise,
        })
    }

    /// The fields this mirror differed at, each with how it counts, as far as the table
    /// names them (a field beyond its bound is counted in [`split`] but not named here).
    ///
    /// [`split`]: ShadowSummary::split
    pub fn classified_fields(&self, verdicts: &VerdictTable) -> Vec<(FieldPath, FieldClass)> {
        let ShadowState::Compared { fields, .. } = &self.state else {
            return Vec::new();
        };
        verdicts
            .classify(fields)
            .filter_map(|(field, class)| field.map(|f| (f.clone(), class)))
            .collect()
    }

    /// `same`, `status 200→500`, `3 fields differ`, `1 differs, 2 noise`, `failed: timeout`,
    /// `skipped: no_slot`.
    pub fn text(&self, verdicts: &VerdictTable) -> String {
        if let Some(split) = self.split(verdicts) {
            return super::diff::summarize_split(
                split.status.map(|(p, s)| super::diff::StatusDiff {
                    primary: p,
                    shadow: s,
                    ignored: false,
                }),
                split.real as usize,
                split.noise as usize,
            );
        }
        match &self.state {
            ShadowState::PrimaryFailed => "primary failed; not compared".to_owned(),
            ShadowState::Failed(kind) => format!("failed: {}", kind.as_str()),
            ShadowState::Skipped(reason) => format!("skipped: {}", reason.as_str()),
            ShadowState::Compared { .. } => "compared".to_owned(), // split() answers these
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
    pub fn headline(&self, verdicts: &VerdictTable) -> String {
        let candidates: Vec<&ShadowSummary> = self.shadows.iter().filter(|s| !s.baseline).collect();
        let shown = if candidates.is_empty() {
            self.shadows.iter().collect()
        } else {
            candidates
        };
        match shown.as_slice() {
            [] => "no mirror".to_owned(),
            [one] => one.text(verdicts),
            many => many
                .iter()
                .map(|s| format!("{}: {}", s.target, s.text(verdicts)))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    /// True when a candidate mirror differs really (not only in noise) from the primary.
    pub fn differs_really(&self, verdicts: &VerdictTable) -> bool {
        self.shadows
            .iter()
            .filter(|s| !s.baseline)
            .filter_map(|s| s.split(verdicts))
            .any(|split| split.real > 0)
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

    /// Every summary kept, oldest chunk first (within the newest chunk, in arrival order).
    pub fn iter(&self) -> impl Iterator<Item = &ExchangeDiffSummary> {
        self.sealed
            .iter()
            .flat_map(|c| c.items.iter())
            .chain(self.open.iter())
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
