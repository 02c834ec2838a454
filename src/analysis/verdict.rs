//! The verdict on one field of the diff table, real difference or noise, and the evidence
//! that made it, so that a person (and a CI script) can tell why.
//!
//! Two rules, in this order:
//!
//! 1. **Volatile fields.** A field whose value differs between two answers of the same
//!    version to the same request is volatile: the baseline mirror differs from the
//!    primary there, or the primary's own answers to identical requests changed there, in
//!    at least [`VOLATILE_SHARE`] of the cases, with 95% confidence (the lower bound of the
//!    Wilson score interval, so that a few early coincidences decide nothing). A volatile
//!    field's values say nothing about the candidate: a change of value there is noise. A
//!    change of its shape (the field appears, disappears, or changes its JSON type) is
//!    still real, unless its shape is volatile too. The status code is never volatile.
//! 2. **Diffy's rule** for everything else: with `rate` the candidate's difference rate at
//!    the field and `noise` the baseline's, the field is real when `rate > noise`,
//!    `rate - noise > absolute` and `(rate - noise) / rate > relative`. Without a baseline
//!    every such difference is real.

use serde::Serialize;

/// Share of compared answers that must differ at a field (at the lower bound of a 95%
/// interval) for the field to be volatile: more often than not, the same version answers
/// the same request with another value there.
///
/// Why a half: a field that is a function of the request differs between two answers of
/// the same version almost never; one that differs in most of them is not, and a
/// candidate that merely answers later than the baseline (the usual case for a new
/// version) differs there even more often, which Diffy's rates then read as a regression.
/// Fields that change now and then (a cache generation, a rounding at a boundary) stay
/// below it and are judged by Diffy's rule, which still catches a candidate that changes
/// them far more often than the baseline does.
pub const VOLATILE_SHARE: f64 = 0.5;

/// The two-sided 95% normal quantile.
const Z_95: f64 = 1.959_963_984_540_054;

/// Lower bound of the 95% Wilson score interval of `k` successes in `n` trials (0 when
/// `n` is 0): 4 of 4 gives 0.51, 41 of 50 gives 0.69, 30 of 50 gives 0.46.
pub fn wilson_lower_bound(k: u64, n: u64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let (k, n) = (k.min(n) as f64, n as f64);
    let p = k / n;
    let z2 = Z_95 * Z_95;
    let centre = p + z2 / (2.0 * n);
    let spread = Z_95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).max(0.0)
}

/// When a field counts as a real difference (Diffy's defaults: relative 20%, absolute
/// 0.03%), for fields that are not volatile.
///
/// With `rate` the fraction of compared exchanges where the candidate differs from the
/// primary at a field and `noise` the same fraction for the baseline, the field is real when
/// `rate > noise`, `rate - noise > absolute` and `(rate - noise) / rate > relative`.
/// Without a baseline every difference is real.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NoiseThresholds {
    /// Share of the candidate's difference rate that noise may not explain (0.20 = 20%).
    pub relative: f64,
    /// Least excess of the candidate's rate over the noise rate (0.0003 = 0.03%).
    pub absolute: f64,
}

impl Default for NoiseThresholds {
    fn default() -> Self {
        Self {
            relative: 0.20,
            absolute: 0.0003,
        }
    }
}

impl NoiseThresholds {
    /// Diffy's verdict for a field with difference rate `rate` and noise rate `noise` (if
    /// known).
    pub fn verdict(&self, rate: f64, noise: Option<f64>) -> Verdict {
        let Some(noise) = noise else {
            return Verdict::Real;
        };
        let excess = rate - noise;
        if rate > noise && excess > self.absolute && excess / rate > self.relative {
            Verdict::Real
        } else {
            Verdict::Noise
        }
    }
}

/// Whether a field's differences matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The candidate differs here more than noise explains (or there is no baseline).
    Real,
    /// Explained by noise: a volatile field, or the baseline differs here as often.
    Noise,
}

/// What shows a field to be volatile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Volatility {
    /// The baseline mirror (the primary's own version) differs from the primary here.
    Baseline {
        /// Baseline exchanges that differ here.
        differing: u64,
        /// Baseline exchanges compared at this endpoint.
        compared: u64,
        /// `differing / compared`.
        rate: f64,
        /// Lower bound of its 95% interval, at least [`VOLATILE_SHARE`].
        lower_bound: f64,
    },
    /// The primary answered identical requests (method, path, query, body, headers but
    /// tracing ids) with values that changed here.
    PrimaryRepeats {
        /// Repeats whose answer changed here.
        changed: u64,
        /// Repeats compared at this endpoint.
        repeats: u64,
        /// `changed / repeats`.
        rate: f64,
        /// Lower bound of its 95% interval, at least [`VOLATILE_SHARE`].
        lower_bound: f64,
    },
}

impl Volatility {
    /// The evidence, when `k` of `n` comparisons differ at the field and that is enough.
    fn from_counts(k: u64, n: u64, make: impl FnOnce(u64, u64, f64, f64) -> Self) -> Option<Self> {
        let lower_bound = wilson_lower_bound(k, n);
        (lower_bound >= VOLATILE_SHARE).then(|| make(k, n, k as f64 / n as f64, lower_bound))
    }

    /// A short reason for the app: `baseline differs in 78%`, `primary's own value changed
    /// in 41 of 50 repeats`.
    pub fn describe(&self) -> String {
        match self {
            Volatility::Baseline { rate, .. } => {
                format!("baseline differs in {}", percent(*rate))
            }
            Volatility::PrimaryRepeats {
                changed, repeats, ..
            } => format!("primary's own value changed in {changed} of {repeats} repeats"),
        }
    }
}

/// Which rule made a verdict, with its figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum VerdictEvidence {
    /// Noise: the row compares the primary with the baseline, its own version.
    BaselineRow,
    /// Noise: the field is volatile and the candidate changed only its value (or its shape,
    /// which is volatile too).
    Volatile {
        /// What shows it.
        volatility: Volatility,
    },
    /// Noise: the baseline differs here about as often as the candidate (Diffy's rule);
    /// for a volatile field, about as often in type or presence.
    ExplainedByBaseline {
        /// The candidate's difference rate.
        rate: f64,
        /// The baseline's.
        noise_rate: f64,
        /// The rates are of type and presence changes only (the values are volatile).
        type_or_presence: bool,
    },
    /// Real: no baseline to measure noise with, and the field is not known to be volatile.
    NoBaseline,
    /// Real: the candidate differs here clearly more often than the baseline (Diffy's rule).
    ExceedsBaseline {
        /// The candidate's difference rate.
        rate: f64,
        /// The baseline's.
        noise_rate: f64,
    },
    /// Real: the field's values are volatile, but the candidate changed its type or its
    /// presence.
    TypeOrPresenceChanged {
        /// Exchanges where it did.
        shape_differing: u64,
        /// What shows the values volatile.
        volatility: Volatility,
    },
}

impl VerdictEvidence {
    /// The evidence shows the field volatile: its values are noise, ignoring it is safe.
    pub fn volatility(&self) -> Option<&Volatility> {
        match self {
            VerdictEvidence::Volatile { volatility }
            | VerdictEvidence::TypeOrPresenceChanged { volatility, .. } => Some(volatility),
            _ => None,
        }
    }

    /// A short reason for the app.
    pub fn describe(&self) -> String {
        match self {
            VerdictEvidence::BaselineRow => "the primary's version against itself".to_owned(),
            VerdictEvidence::Volatile { volatility } => {
                format!("volatile: {}", volatility.describe())
            }
            VerdictEvidence::ExplainedByBaseline {
                rate,
                noise_rate,
                type_or_presence,
            } => format!(
                "baseline differs as often{} ({} against {})",
                if *type_or_presence {
                    " in type or presence"
                } else {
                    ""
                },
                percent(*noise_rate),
                percent(*rate)
            ),
            VerdictEvidence::NoBaseline => "no baseline, not volatile".to_owned(),
            VerdictEvidence::ExceedsBaseline { rate, noise_rate } => format!(
                "differs in {} against the baseline's {}",
                percent(*rate),
                percent(*noise_rate)
            ),
            VerdictEvidence::TypeOrPresenceChanged {
                shape_differing,
                volatility,
            } => format!(
                "type or presence changed in {shape_differing} ({})",
                volatility.describe()
            ),
        }
    }
}

/// `78%`, `0.4%`, `100%`.
fn percent(rate: f64) -> String {
    let p = rate * 100.0;
    if p == 0.0 || p >= 10.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// Exchanges (or repeats) compared, and how many differ at a field in any way and in shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FieldCounts {
    /// Comparisons made at the endpoint.
    pub compared: u64,
    /// Of which differ at the field.
    pub differing: u64,
    /// Of which differ in the field's type or presence.
    pub shape: u64,
}

impl FieldCounts {
    fn rate(&self) -> f64 {
        ratio(self.differing, self.compared)
    }

    fn shape_rate(&self) -> f64 {
        ratio(self.shape, self.compared)
    }
}

pub(crate) fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// What is known about one candidate field.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldEvidence {
    /// The candidate against the primary.
    pub candidate: FieldCounts,
    /// The baseline against the primary, when the endpoint has a baseline.
    pub baseline: Option<FieldCounts>,
    /// The primary against its own earlier answers, when it repeated.
    pub repeats: Option<FieldCounts>,
    /// The field may be volatile (every field but the status code).
    pub may_be_volatile: bool,
}

/// A verdict, its evidence, and how each kind of difference at the field counts in one
/// exchange.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Judgement {
    pub verdict: Verdict,
    pub evidence: VerdictEvidence,
    /// A change of value here is noise.
    pub value_noise: bool,
    /// A change of type or presence here is noise.
    pub shape_noise: bool,
}

impl FieldEvidence {
    /// What shows the field volatile, counting differences of any kind (`shape` false) or of
    /// shape only; the baseline first, as it answers at the same moment.
    fn volatility(&self, shape: bool) -> Option<Volatility> {
        if !self.may_be_volatile {
            return None;
        }
        let pick = |c: &FieldCounts| if shape { c.shape } else { c.differing };
        let baseline = self.baseline.and_then(|b| {
            Volatility::from_counts(pick(&b), b.compared, |differing, compared, rate, lb| {
                Volatility::Baseline {
                    differing,
                    compared,
                    rate,
                    lower_bound: lb,
                }
            })
        });
        baseline.or_else(|| {
            self.repeats.and_then(|r| {
                Volatility::from_counts(pick(&r), r.compared, |changed, repeats, rate, lb| {
                    Volatility::PrimaryRepeats {
                        changed,
                        repeats,
                        rate,
                        lower_bound: lb,
                    }
                })
            })
        })
    }

    /// The verdict on this field (see the module's rules).
    pub(crate) fn judge(&self, thresholds: &NoiseThresholds) -> Judgement {
        let c = &self.candidate;
        let Some(volatility) = self.volatility(false) else {
            let noise_rate = self.baseline.map(|b| b.rate());
            let verdict = thresholds.verdict(c.rate(), noise_rate);
            let evidence = match (verdict, noise_rate) {
                (_, None) => VerdictEvidence::NoBaseline,
                (Verdict::Real, Some(noise_rate)) => VerdictEvidence::ExceedsBaseline {
                    rate: c.rate(),
                    noise_rate,
                },
                (Verdict::Noise, Some(noise_rate)) => VerdictEvidence::ExplainedByBaseline {
                    rate: c.rate(),
                    noise_rate,
                    type_or_presence: false,
                },
            };
            let noise = verdict == Verdict::Noise;
            return Judgement {
                verdict,
                evidence,
                value_noise: noise,
                shape_noise: noise,
            };
        };
        let noise = |evidence| Judgement {
            verdict: Verdict::Noise,
            evidence,
            value_noise: true,
            shape_noise: true,
        };
        if c.shape == 0 {
            return noise(VerdictEvidence::Volatile { volatility });
        }
        if let Some(shape_volatility) = self.volatility(true) {
            return noise(VerdictEvidence::Volatile {
                volatility: shape_volatility,
            });
        }
        let noise_rate = self.baseline.map(|b| b.shape_rate());
        if thresholds.verdict(c.shape_rate(), noise_rate) == Verdict::Noise
            && let Some(noise_rate) = noise_rate
        {
            return noise(VerdictEvidence::ExplainedByBaseline {
                rate: c.shape_rate(),
                noise_rate,
                type_or_presence: true,
            });
        }
        Judgement {
            verdict: Verdict::Real,
            evidence: VerdictEvidence::TypeOrPresenceChanged {
                shape_differing: c.shape,
                volatility,
            },
            value_noise: true,
            shape_noise: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_follows_thresholds() {
        let t = NoiseThresholds::default();
        assert_eq!(t.verdict(1.0, Some(1.0)), Verdict::Noise);
        assert_eq!(t.verdict(1.0, Some(0.0)), Verdict::Real);
        assert_eq!(t.verdict(0.5, Some(0.48)), Verdict::Noise); // 4% relative
        assert_eq!(t.verdict(0.5, Some(0.3)), Verdict::Real); // 40% relative
        assert_eq!(t.verdict(0.0002, Some(0.0)), Verdict::Noise); // under 0.03% absolute
        assert_eq!(t.verdict(0.0002, None), Verdict::Real);
    }

    #[test]
    fn wilson_bound_needs_a_few_cases_before_it_calls_a_field_volatile() {
        let lb = |k, n| (wilson_lower_bound(k, n) * 100.0).round() / 100.0;
        assert_eq!(lb(0, 0), 0.0);
        assert_eq!(lb(3, 3), 0.44);
        assert_eq!(lb(4, 4), 0.51);
        assert_eq!(lb(41, 50), 0.69);
        assert_eq!(lb(78, 100), 0.69);
        assert_eq!(lb(30, 50), 0.46);
        assert_eq!(lb(0, 50), 0.0);
    }

    fn counts(compared: u64, differing: u64, shape: u64) -> FieldCounts {
        FieldCounts {
            compared,
            differing,
            shape,
        }
    }

    #[test]
    fn a_volatile_field_is_noise_unless_its_shape_changes() {
        let t = NoiseThresholds::default();
        let mut e = FieldEvidence {
            candidate: counts(100, 100, 0),
            baseline: Some(counts(100, 78, 0)),
            repeats: None,
            may_be_volatile: true,
        };
        // Diffy alone: (1.00 - 0.78) / 1.00 = 22% > 20%, real. Volatile: noise.
        assert_eq!(t.verdict(1.0, Some(0.78)), Verdict::Real);
        let j = e.judge(&t);
        assert_eq!(j.verdict, Verdict::Noise);
        assert!(matches!(
            j.evidence,
            VerdictEvidence::Volatile {
                volatility: Volatility::Baseline {
                    differing: 78,
                    compared: 100,
                    ..
                }
            }
        ));
        assert_eq!(j.evidence.describe(), "volatile: baseline differs in 78%");
        // The candidate turns the field into another type in 3 exchanges: real, and only
        // those changes count as real in an exchange.
        e.candidate = counts(100, 100, 3);
        let j = e.judge(&t);
        assert_eq!(j.verdict, Verdict::Real);
        assert!((j.value_noise, j.shape_noise) == (true, false));
        assert_eq!(
            j.evidence.describe(),
            "type or presence changed in 3 (baseline differs in 78%)"
        );
        // The status code is never volatile.
        e.candidate = counts(100, 100, 0);
        e.may_be_volatile = false;
        assert_eq!(e.judge(&t).verdict, Verdict::Real);
    }

    #[test]
    fn the_primarys_repeats_show_volatility_without_a_baseline() {
        let t = NoiseThresholds::default();
        let e = FieldEvidence {
            candidate: counts(50, 50, 0),
            baseline: None,
            repeats: Some(counts(50, 41, 0)),
            may_be_volatile: true,
        };
        let j = e.judge(&t);
        assert_eq!(j.verdict, Verdict::Noise);
        assert_eq!(
            j.evidence.describe(),
            "volatile: primary's own value changed in 41 of 50 repeats"
        );
        let steady = FieldEvidence {
            repeats: Some(counts(50, 10, 0)),
            ..e
        };
        let j = steady.judge(&t);
        assert_eq!(
            (j.verdict, j.evidence),
            (Verdict::Real, VerdictEvidence::NoBaseline)
        );
    }
}
