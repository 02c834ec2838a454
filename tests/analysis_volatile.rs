//! Volatile fields, fed to the analyzer directly: a timestamp that a baseline changes in
//! most exchanges is noise even when the candidate, slower, changes it in all of them; a
//! candidate that turns it into a string is still a real difference; without a baseline
//! the primary's own repeats show it; per-exchange summaries count real and noise apart.

mod analysis_support;

use analysis_support::*;
use mirrorlab::analysis::{
    AnalysisSettings, Analyzer, DiffAggregateRow, IgnoreRules, NoiseThresholds, Verdict,
    VerdictEvidence, Volatility,
};

fn row<'a>(rows: &'a [DiffAggregateRow], target: &str, field: &str) -> &'a DiffAggregateRow {
    rows.iter()
        .find(|r| r.target == target && r.field.to_string() == field)
        .unwrap_or_else(|| panic!("no row {target} {field} in {rows:#?}"))
}

/// The issue's run in numbers: 100 distinct requests; the baseline (v1 again) answers in
/// another millisecond than the primary in 78 of them, the candidate (30 ms slower) in all.
/// `candidate_served_at` writes the candidate's timestamp for exchange `i`.
fn ingest_timestamps(a: &mut Analyzer, candidate_served_at: impl Fn(u64, u64) -> String) {
    for i in 0..100u64 {
        let t = 1_767_225_600_000 + i * 1000;
        let baseline_t = if i % 50 < 11 { t } else { t + 1 };
        let body = |served_at: String| format!(r#"{{"id":"{i}","served_at":{served_at}}}"#);
        a.ingest(&exchange(
            i,
            T0 + i,
            &format!("/reviews/{i}"),
            ok(response(200, body(t.to_string()), 5)),
            vec![
                sent(
                    "reviews-v2/v2",
                    response(200, body(candidate_served_at(i, t)), 35),
                ),
                sent("reviews/v1", response(200, body(baseline_t.to_string()), 6)),
            ],
        ));
    }
}

#[test]
fn a_timestamp_is_noise_when_the_baseline_changes_it_in_most_exchanges_and_the_candidate_in_all() {
    let mut a = Analyzer::new(AnalysisSettings::default());
    ingest_timestamps(&mut a, |_, t| (t + 30).to_string());
    let snap = a.snapshot();
    let served_at = row(&snap.diffs, "reviews-v2/v2", "/served_at");
    assert_eq!((served_at.rate, served_at.noise_rate), (1.0, Some(0.78)));
    // Diffy's rule alone called this real: (1.00 - 0.78) / 1.00 = 22% > 20%.
    assert_eq!(
        NoiseThresholds::default().verdict(1.0, Some(0.78)),
        Verdict::Real
    );
    assert_eq!(served_at.verdict, Verdict::Noise);
    let VerdictEvidence::Volatile {
        volatility:
            Volatility::Baseline {
                differing,
                compared,
                lower_bound,
                ..
            },
    } = served_at.evidence
    else {
        panic!("not volatile by the baseline: {:?}", served_at.evidence);
    };
    assert_eq!((differing, compared), (78, 100));
    assert!(lower_bound > 0.5 && lower_bound < 0.78, "{lower_bound}");
    assert_eq!(
        served_at.evidence.describe(),
        "volatile: baseline differs in 78%"
    );
    // Every exchange differs only in noise, early ones included.
    assert_eq!(snap.diff_headline(0), Some("1 noise".to_owned()));
    assert!(!snap.differs_really(0));
    assert!(!snap.differs_really(99));
}

#[test]
fn a_timestamp_the_candidate_turns_into_a_string_is_real() {
    let mut a = Analyzer::new(AnalysisSettings::default());
    // From exchange 90 on, the candidate writes the timestamp as a string.
    ingest_timestamps(&mut a, |i, t| {
        if i >= 90 {
            format!(r#""{}""#, t + 30)
        } else {
            (t + 30).to_string()
        }
    });
    let snap = a.snapshot();
    let served_at = row(&snap.diffs, "reviews-v2/v2", "/served_at");
    assert_eq!(served_at.verdict, Verdict::Real);
    assert_eq!(served_at.shape_differing, 10);
    assert!(
        matches!(
            served_at.evidence,
            VerdictEvidence::TypeOrPresenceChanged {
                shape_differing: 10,
                volatility: Volatility::Baseline { .. }
            }
        ),
        "{:?}",
        served_at.evidence
    );
    // Exchanges where only its value changed count it as noise; the string is real.
    assert_eq!(snap.diff_headline(10), Some("1 noise".to_owned()));
    assert_eq!(snap.diff_headline(95), Some("1 field differs".to_owned()));
    assert!(snap.differs_really(95) && !snap.differs_really(10));

    // A candidate that drops the field changes its presence: real as well.
    let mut a = Analyzer::new(AnalysisSettings::default());
    for i in 0..40u64 {
        let with = format!(r#"{{"id":"{i}","served_at":{}}}"#, 1000 + i);
        let baseline = format!(r#"{{"id":"{i}","served_at":{}}}"#, 2000 + i);
        a.ingest(&exchange(
            i,
            T0,
            &format!("/reviews/{i}"),
            ok(response(200, with, 5)),
            vec![
                sent(
                    "reviews-v2/v2",
                    response(200, format!(r#"{{"id":"{i}"}}"#), 5),
                ),
                sent("reviews/v1", response(200, baseline, 5)),
            ],
        ));
    }
    let snap = a.snapshot();
    let served_at = row(&snap.diffs, "reviews-v2/v2", "/served_at");
    assert_eq!(
        (served_at.verdict, served_at.shape_differing),
        (Verdict::Real, 40)
    );
}

/// Five products, each asked for ten times (no baseline): the primary stamps every answer
/// with the time (`at`), the candidate's answers are later and rate product 3 differently.
fn ingest_repeats(a: &mut Analyzer) {
    let mut id = 0u64;
    for round in 0..10u64 {
        for product in 0..5u64 {
            let answer = |at: u64, stars: u64| {
                format!(r#"{{"product":{product},"at":{at},"stars":{stars}}}"#)
            };
            let stars = 4;
            let candidate_stars = if product == 3 { 2 } else { stars };
            a.ingest(&exchange(
                id,
                T0 + round,
                &format!("/reviews/{product}"),
                ok(response(200, answer(id * 10, stars), 5)),
                vec![sent(
                    "reviews-v2/v2",
                    response(200, answer(id * 10 + 7, candidate_stars), 35),
                )],
            ));
            id += 1;
        }
    }
}

#[test]
fn a_volatile_field_is_found_without_a_baseline_from_the_primarys_repeats() {
    let mut a = Analyzer::new(AnalysisSettings::default());
    ingest_repeats(&mut a);
    let snap = a.snapshot();
    let at = row(&snap.diffs, "reviews-v2/v2", "/at");
    assert_eq!(at.noise_rate, None, "no baseline");
    assert_eq!((at.repeats, at.repeats_changed), (Some(45), Some(45)));
    assert_eq!(at.verdict, Verdict::Noise);
    assert!(matches!(
        at.evidence,
        VerdictEvidence::Volatile {
            volatility: Volatility::PrimaryRepeats {
                changed: 45,
                repeats: 45,
                ..
            }
        }
    ));
    assert_eq!(
        at.evidence.describe(),
        "volatile: primary's own value changed in 45 of 45 repeats"
    );
    // The rating never changes between the primary's repeats: the candidate's change is real.
    let stars = row(&snap.diffs, "reviews-v2/v2", "/stars");
    assert_eq!((stars.repeats, stars.repeats_changed), (Some(45), Some(0)));
    assert_eq!(
        (stars.verdict, stars.evidence),
        (Verdict::Real, VerdictEvidence::NoBaseline)
    );
    // Exchange 3 is product 3, the first of its kind (before any repeat was seen): it
    // counts by the verdicts reached since.
    assert_eq!(snap.diff_headline(3), Some("1 differs, 1 noise".to_owned()));
    assert_eq!(snap.diff_headline(4), Some("1 noise".to_owned()));
    assert!(snap.differs_really(3) && !snap.differs_really(4));

    // Ignoring the volatile field takes it out of the split at once.
    let mut rules = IgnoreRules::with_default_headers();
    rules.extend(&IgnoreRules::parse("/at").expect("valid"));
    a.set_ignore_rules(rules);
    let snap = a.snapshot();
    assert_eq!(snap.diff_headline(3), Some("1 field differs".to_owned()));
    assert_eq!(snap.diff_headline(4), Some("same".to_owned()));
}

#[test]
fn the_same_path_for_another_user_is_not_a_repeat() {
    // Each user gets their own name: a field that changes between users is not volatile.
    let mut a = Analyzer::new(AnalysisSettings::default());
    for i in 0..30u64 {
        let user = i % 3;
        let mut e = exchange(
            i,
            T0,
            "/me",
            ok(response(200, format!(r#"{{"name":"user{user}"}}"#), 5)),
            vec![sent(
                "reviews-v2/v2",
                response(200, format!(r#"{{"name":"User{user}"}}"#), 5),
            )],
        );
        e.request.headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(&format!("Bearer token-{user}")).expect("valid"),
        );
        e.request.headers.insert(
            "x-request-id",
            http::HeaderValue::from_str(&format!("req-{i}")).expect("valid"),
        );
        a.ingest(&e);
    }
    let snap = a.snapshot();
    let name = row(&snap.diffs, "reviews-v2/v2", "/name");
    assert_eq!((name.repeats, name.repeats_changed), (Some(27), Some(0)));
    assert_eq!(name.verdict, Verdict::Real);
}

#[test]
fn a_reordered_array_is_one_row_and_a_volatile_order_is_noise() {
    // The baseline returns the tags in a random order too: the order is volatile.
    let mut a = Analyzer::new(AnalysisSettings::default());
    for i in 0..20u64 {
        let tags = |t: &[&str]| format!(r#"{{"id":{i},"tags":{t:?},"reviews":[1,2,3]}}"#);
        let (candidate, baseline) = if i % 4 == 0 {
            (tags(&["a", "b", "c"]), tags(&["a", "b", "c"]))
        } else {
            (tags(&["c", "a", "b"]), tags(&["b", "c", "a"]))
        };
        a.ingest(&exchange(
            i,
            T0,
            &format!("/items/{i}"),
            ok(response(200, tags(&["a", "b", "c"]), 5)),
            vec![
                sent("reviews-v2/v2", response(200, candidate, 5)),
                sent("reviews/v1", response(200, baseline, 5)),
            ],
        ));
    }
    let snap = a.snapshot();
    let candidate_rows: Vec<_> = snap.diffs.iter().filter(|r| !r.baseline).collect();
    assert_eq!(candidate_rows.len(), 1, "{candidate_rows:#?}");
    let tags = row(&snap.diffs, "reviews-v2/v2", "/tags");
    assert_eq!((tags.differing, tags.verdict), (15, Verdict::Noise));
}
