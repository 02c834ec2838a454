//! `_mirrorlab`, the HAR's extension with the analysis of each exchange: every mirror's
//! differences from the primary, real and noise apart, as the Traffic list counts them.

use serde::Serialize;

use crate::analysis::{AnalysisSnapshot, FieldClass, ShadowState};
use crate::capture::Exchange;

/// `_mirrorlab`: how the analysis counts this exchange's differences.
#[derive(Debug, Clone, Serialize)]
pub struct HarAnalysis {
    /// One entry per mirror record, in config order.
    pub diffs: Vec<HarShadowDiff>,
}

/// One mirror's differences from the primary, real and noise apart, by the verdicts the
/// analysis had reached when the HAR was written.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HarShadowDiff {
    /// Mirror destination label.
    pub target: String,
    /// The mirror is a baseline (the primary's own destination): its differences are noise.
    pub baseline: bool,
    /// `compared`, `primary_failed`, `failed` or `skipped`.
    pub state: &'static str,
    /// As the Traffic list shows it: `1 differs, 2 noise`.
    pub summary: String,
    /// Real differences (fields, the status among them).
    pub real_differences: u32,
    /// Differences that are noise.
    pub noise_differences: u32,
    /// The fields that differ really (`status`, `header:NAME`, `body`, JSON Pointers with
    /// `*` for indexes); a field beyond the analysis' bound is counted but not named.
    pub real_fields: Vec<String>,
    /// The fields whose differences are noise.
    pub noise_fields: Vec<String>,
}

/// `_mirrorlab` of one exchange, when the analysis still keeps its summary.
pub(super) fn of_exchange(e: &Exchange, analysis: &AnalysisSnapshot) -> Option<HarAnalysis> {
    let summary = analysis.diff_summary(e.id)?;
    let verdicts = &analysis.verdicts;
    let diffs = summary
        .shadows
        .iter()
        .map(|s| {
            let split = s.split(verdicts).unwrap_or_default();
            let (mut real_fields, mut noise_fields) = (Vec::new(), Vec::new());
            for (field, class) in s.classified_fields(verdicts) {
                match class {
                    FieldClass::Real => real_fields.push(field.to_string()),
                    FieldClass::Noise => noise_fields.push(field.to_string()),
                    FieldClass::Ignored => {}
                }
            }
            HarShadowDiff {
                target: s.target.to_string(),
                baseline: s.baseline,
                state: match s.state {
                    ShadowState::Compared { .. } => "compared",
                    ShadowState::PrimaryFailed => "primary_failed",
                    ShadowState::Failed(_) => "failed",
                    ShadowState::Skipped(_) => "skipped",
                },
                summary: s.text(verdicts),
                real_differences: split.real,
                noise_differences: split.noise,
                real_fields,
                noise_fields,
            }
        })
        .collect();
    Some(HarAnalysis { diffs })
}
