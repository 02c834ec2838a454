//! Noise cancellation with a baseline mirror, endpoint folding in the aggregates,
//! run-time ignore rules and the annotation, and per-exchange summaries.

mod analysis_support;

use analysis_support::*;
use mirrorlab::analysis::{
    AnalysisSettings, Analyzer, DiffAggregateRow, FieldPath, IgnoreRules, NoiseThresholds, Verdict,
    VerdictEvidence,
};

/// Primary v1; mirrors to v2 (candidate) and v1 (baseline). Every response carries a
/// random `nonce`; v2 really changed `price` on every response.
fn ingest_catalogue(a: &mut Analyzer, n: u64) {
    let mut rng = fastrand::Rng::with_seed(42);
    for i in 0..n {
        let id = i % 7;
        let body = |price: u64, rng: &mut fastrand::Rng| {
            format!(
                r#"{{"id":{id},"price":{price},"nonce":"{}","tags":["a","b"]}}"#,
                rng.u64(..)
            )
        };
        let primary = body(10, &mut rng);
        let candidate = body(12, &mut rng);
        let baseline = body(10, &mut rng);
        a.ingest(&exchange(
            i,
            T0 + i / 100,
            &format!("/products/{id}?ref=x{i}"),
            ok(response(200, primary, 10)),
            vec![
                sent("reviews/v2", response(200, candidate, 12)),
                sent("reviews/v1", response(200, baseline, 11)),
            ],
        ));
    }
}

fn row<'a>(
    rows: &'a [DiffAggregateRow],
    target: &str,
    field: &str,
) -> Option<&'a DiffAggregateRow> {
    rows.iter()
        .find(|r| r.target == target && r.field.to_string() == field)
}

#[test]
fn random_field_is_noise_and_real_change_is_reported() {
    let mut a = Analyzer::new(AnalysisSettings::default());
    ingest_catalogue(&mut a, 500);
    let snap = a.snapshot();
    let rows = &snap.diffs;

    let price = row(rows, "reviews/v2", "/price").expect("price differs on v2");
    assert_eq!(price.verdict, Verdict::Real);
    assert_eq!((price.differing, price.compared), (500, 500));
    assert_eq!(price.noise_rate, Some(0.0));
    assert_eq!(
        price.endpoint, "GET /products/{id}",
        "ids and query folded into one endpoint"
    );
    assert_eq!(price.sample_exchange_ids, vec![0, 1, 2, 3, 4]);

    let nonce = row(rows, "reviews/v2", "/nonce").expect("nonce differs on v2");
    assert_eq!(nonce.verdict, Verdict::Noise);
    assert_eq!(nonce.rate, 1.0);
    assert_eq!(nonce.noise_rate, Some(1.0));

    let baseline_nonce = row(rows, "reviews/v1", "/nonce").expect("baseline row");
    assert!(baseline_nonce.baseline);
    assert_eq!(baseline_nonce.verdict, Verdict::Noise);
    assert!(
        row(rows, "reviews/v1", "/price").is_none(),
        "the baseline never differs in price"
    );

    // only one endpoint row set: /products/0../6 were folded
    assert!(rows.iter().all(|r| r.endpoint == "GET /products/{id}"));
    let real: Vec<_> = rows.iter().filter(|r| r.verdict == Verdict::Real).collect();
    assert_eq!(real.len(), 1, "{real:#?}");
    assert!(rows.iter().all(|r| r.route == "default/reviews:http[0]"));
}

#[test]
fn without_a_baseline_every_difference_is_real() {
    // Each request is a different one (its query), so the primary's repeats say nothing.
    let mut a = Analyzer::new(AnalysisSettings::default());
    for i in 0..10 {
        a.ingest(&exchange(
            i,
            T0,
            &format!("/a?i={i}"),
            ok(response(200, format!(r#"{{"n":{i}}}"#), 1)),
            vec![sent(
                "reviews/v2",
                response(200, format!(r#"{{"n":{}}}"#, i + 1), 1),
            )],
        ));
    }
    let snap = a.snapshot();
    let n = row(&snap.diffs, "reviews/v2", "/n").expect("row");
    assert_eq!(n.verdict, Verdict::Real);
    assert_eq!(n.evidence, VerdictEvidence::NoBaseline);
    assert_eq!(n.noise_rate, None);
    assert_eq!(n.repeats, None);
}

#[test]
fn partly_noisy_field_needs_to_beat_the_thresholds() {
    // candidate differs at /x in 50% of exchanges, the baseline in 45%: noise at the
    // default 20% relative threshold, real when the threshold is lowered to 5%.
    let mut a = Analyzer::new(AnalysisSettings::default());
    for i in 0..200u64 {
        let c = if i % 2 == 0 { 1 } else { 0 };
        let b = if i % 20 < 9 { 1 } else { 0 }; // 9 of 20 = 45%
        a.ingest(&exchange(
            i,
            T0,
            "/x",
            ok(response(200, r#"{"x":0}"#, 1)),
            vec![
                sent("reviews/v2", response(200, format!(r#"{{"x":{c}}}"#), 1)),
                sent("reviews/v1", response(200, format!(r#"{{"x":{b}}}"#), 1)),
            ],
        ));
    }
    let x = |a: &Analyzer| {
        row(&a.snapshot().diffs, "reviews/v2", "/x").map(|r| (r.verdict, r.rate, r.noise_rate))
    };
    assert_eq!(x(&a), Some((Verdict::Noise, 0.5, Some(0.45))));
    a.set_thresholds(NoiseThresholds {
        relative: 0.05,
        absolute: 0.0003,
    });
    assert_eq!(x(&a).map(|r| r.0), Some(Verdict::Real));
}

#[test]
fn run_time_rules_remove_rows_and_apply_to_new_exchanges() {
    let mut a = Analyzer::new(AnalysisSettings::default());
    ingest_catalogue(&mut a, 20);
    assert!(row(&a.snapshot().diffs, "reviews/v2", "/nonce").is_some());
    let mut rules = IgnoreRules::with_default_headers();
    rules.extend(&IgnoreRules::parse("/nonce").expect("valid"));
    a.set_ignore_rules(rules);
    let snap = a.snapshot();
    assert!(row(&snap.diffs, "reviews/v2", "/nonce").is_none());
    assert!(snap.ignore_rules.contains("/nonce"));
    ingest_catalogue(&mut a, 20);
    assert!(row(&a.snapshot().diffs, "reviews/v2", "/nonce").is_none());
    assert!(row(&a.snapshot().diffs, "reviews/v2", "/price").is_some());
}

#[test]
fn virtual_service_annotation_rules_apply_to_its_routes_only() {
    let mut settings = AnalysisSettings::default();
    settings
        .add_annotation("default/reviews", "/nonce\nheader:x-build")
        .expect("valid annotation");
    assert!(settings.add_annotation("default/reviews", "nonce").is_err());
    let mut a = Analyzer::new(settings);
    ingest_catalogue(&mut a, 10);
    let mut other = exchange(
        100,
        T0,
        "/products/1",
        ok(response(200, r#"{"nonce":"a"}"#, 1)),
        vec![sent("ratings/v2", response(200, r#"{"nonce":"b"}"#, 1))],
    );
    other.trace = Some(trace("default/ratings", 0));
    a.ingest(&other);
    let snap = a.snapshot();
    assert!(row(&snap.diffs, "reviews/v2", "/nonce").is_none());
    assert!(row(&snap.diffs, "ratings/v2", "/nonce").is_some());
    let rules = snap.rules_for(Some("default/reviews"));
    assert!(rules.ignores(&FieldPath::Header("x-build".into())));
    assert!(
        rules.ignores(&FieldPath::Header("date".into())),
        "global defaults included"
    );
}

#[test]
fn per_exchange_summaries_for_the_traffic_table() {
    let mut a = Analyzer::new(AnalysisSettings::default());
    ingest_catalogue(&mut a, 600); // more than one sealed chunk
    a.ingest(&exchange(
        1000,
        T0,
        "/products/1",
        ok(response(200, r#"{"a":1}"#, 1)),
        vec![sent("reviews/v2", response(500, r#"{"a":1}"#, 1))],
    ));
    a.ingest(&exchange(
        1001,
        T0,
        "/products/1",
        ok(response(200, r#"{"a":1}"#, 1)),
        vec![sent("reviews/v2", response(200, r#"{"a":1}"#, 1))],
    ));
    let snap = a.snapshot();
    assert_eq!(snap.summaries.len(), 602);
    // v2 differs in price (real) and nonce (noise: the baseline differs there too); the
    // baseline is left out of the headline, and its own differences are all noise
    let s = snap.diff_summary(3).expect("kept");
    assert_eq!(s.shadows.len(), 2);
    assert_eq!(s.headline(&snap.verdicts), "1 differs, 1 noise");
    assert_eq!(s.shadows[1].text(&snap.verdicts), "1 noise");
    assert!(snap.differs_really(3));
    assert_eq!(snap.diff_headline(1000), Some("status 200→500".to_owned()));
    assert_eq!(snap.diff_headline(1001), Some("same".to_owned()));
    assert!(!snap.differs_really(1001));
    assert!(snap.diff_summary(5000).is_none());
}

#[test]
fn summaries_are_bounded() {
    let mut a = Analyzer::new(AnalysisSettings {
        max_exchange_summaries: 512,
        ..AnalysisSettings::default()
    });
    ingest_catalogue(&mut a, 2000);
    let snap = a.snapshot();
    assert!(
        snap.summaries.len() <= 512 + 256,
        "{}",
        snap.summaries.len()
    );
    assert!(snap.diff_summary(0).is_none(), "oldest dropped");
    assert!(snap.diff_summary(1999).is_some());
}
