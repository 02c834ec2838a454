//! The JSON report: built from a known run, validated against docs/report.schema.json,
//! and carrying what CI scripts read.

mod analysis_support;

use analysis_support::*;
use mirrorlab::analysis::{AnalysisSettings, Analyzer};
use mirrorlab::capture::{SkipReason, UpstreamErrorKind};
use mirrorlab::export::{REPORT_SCHEMA_VERSION, Report, RunInfo};
use serde_json::{Value, json};

fn report_schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/report.schema.json"
    ))
    .expect("docs/report.schema.json is readable");
    let schema: Value = serde_json::from_str(&text).expect("report schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("report schema compiles")
}

fn assert_valid(v: &jsonschema::Validator, report: &Value) {
    let errors: Vec<String> = v
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "report does not match its schema:\n{}",
        errors.join("\n")
    );
}

fn run_info() -> RunInfo {
    RunInfo {
        config: vec!["sample-configs/reviews.yaml".into()],
        listen: Some("127.0.0.1:15001".to_owned()),
        started_at: at(T0),
        ended_at: at(T0 + 60),
        seed: Some(7),
    }
}

#[test]
fn report_from_known_run_matches_schema_and_counts() {
    let mut settings = AnalysisSettings::default();
    settings
        .add_annotation("default/reviews", "header:x-build, /meta")
        .expect("valid annotation");
    let mut a = Analyzer::new(settings);
    for i in 0..20u64 {
        let primary_body = format!(r#"{{"id":{i},"rating":5,"ts":"{i}"}}"#);
        let baseline_body = format!(r#"{{"id":{i},"rating":5,"ts":"b{i}"}}"#);
        let candidate_body = format!(r#"{{"id":{i},"rating":4,"ts":"c{i}"}}"#);
        let candidate = match i {
            0 => skipped("reviews/v2", SkipReason::NoSlot),
            1 => sent_failed("reviews/v2", UpstreamErrorKind::Reset),
            _ => sent("reviews/v2", response(200, candidate_body, 12)),
        };
        a.ingest(&exchange(
            i,
            T0 + i,
            &format!("/reviews/{i}"),
            ok(response(200, primary_body, 10)),
            vec![
                candidate,
                sent("reviews/v1", response(200, baseline_body, 11)),
            ],
        ));
    }
    let report = Report::build(&a.snapshot(), &run_info());
    let json: Value = serde_json::from_str(&report.to_json().expect("serialises")).expect("JSON");
    assert_valid(&report_schema(), &json);

    assert_eq!(json["schema_version"], REPORT_SCHEMA_VERSION);
    assert_eq!(json["run"]["duration_seconds"], 60.0);
    assert_eq!(json["run"]["started_at"], "2026-01-01T00:00:00.000Z");
    let route = &json["routes"][0];
    assert_eq!(route["route"], "default/reviews:http[0]");
    assert_eq!(route["requests"], 20);
    assert_eq!(route["primary"]["status"]["codes"]["200"], 20);
    assert_eq!(route["primary"]["status"]["classes"]["2xx"], 20);
    assert_eq!(route["primary"]["latency_ms"]["total"]["max"], 10.0);
    let v2 = &route["mirrors"][0];
    assert_eq!(v2["target"], "reviews/v2");
    assert_eq!(v2["baseline"], false);
    assert_eq!(v2["sent"], 19);
    assert_eq!(v2["skipped"]["no_slot"], 1);
    assert_eq!(v2["errors"]["reset"], 1);
    assert_eq!(v2["status"]["codes"]["200"], 18);
    assert_eq!(v2["shadow_minus_primary_ms"]["p50_ms"], 2.0);
    assert_eq!(route["mirrors"][1]["baseline"], true);

    // `ts` differs everywhere (noise, the baseline differs there too); `rating` only on v2
    let diffs = json["diffs"].as_array().expect("diffs array");
    let row = |target: &str, field: &str| {
        diffs
            .iter()
            .find(|d| d["target"] == target && d["field"] == field)
            .unwrap_or_else(|| panic!("no diff row {target} {field}: {diffs:#?}"))
    };
    assert_eq!(row("reviews/v2", "/rating")["verdict"], "real");
    assert_eq!(row("reviews/v2", "/rating")["differing"], 18);
    assert_eq!(
        row("reviews/v2", "/rating")["endpoint"],
        "GET /reviews/{id}"
    );
    assert_eq!(row("reviews/v2", "/ts")["verdict"], "noise");
    assert_eq!(row("reviews/v1", "/ts")["baseline"], true);
    assert_eq!(json["totals"]["real_differences"], 1);

    // Every verdict says which rule made it, with its figures: `ts` is volatile, as the
    // baseline differs there in all 20 exchanges; `rating` differs far more than the
    // baseline (never) does; a baseline row is noise by definition.
    assert_eq!(
        row("reviews/v2", "/ts")["evidence"],
        json!({"rule": "volatile", "volatility": {
            "source": "baseline", "differing": 20, "compared": 20, "rate": 1.0,
            "lower_bound": row("reviews/v2", "/ts")["evidence"]["volatility"]["lower_bound"]
        }})
    );
    let lower_bound = row("reviews/v2", "/ts")["evidence"]["volatility"]["lower_bound"]
        .as_f64()
        .expect("a number");
    assert!((0.83..0.85).contains(&lower_bound), "{lower_bound}");
    assert_eq!(
        row("reviews/v2", "/rating")["evidence"],
        json!({"rule": "exceeds_baseline", "rate": 1.0, "noise_rate": 0.0})
    );
    assert_eq!(
        row("reviews/v1", "/ts")["evidence"],
        json!({"rule": "baseline_row"})
    );
    assert_eq!(row("reviews/v2", "/ts")["shape_differing"], 0);
    // Exchanges split as the Traffic list shows them: 18 candidates compared, each with a
    // real rating change (and noise in ts).
    assert_eq!(
        json["totals"]["exchange_differences"],
        json!({"counted": 20, "compared": 18, "real": 18, "noise_only": 0, "same": 0})
    );
    assert!(
        json["ignore_rules"]
            .as_array()
            .is_some_and(|r| r.contains(&Value::from("header:date")))
    );
}

#[test]
fn empty_run_is_a_valid_report_and_writes_to_a_file() {
    let a = Analyzer::new(AnalysisSettings::default());
    let report = Report::build(&a.snapshot(), &run_info());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("report.json");
    report.write_to(&path).expect("written");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("readable")).expect("JSON");
    assert_valid(&report_schema(), &json);
    assert_eq!(json["totals"]["exchanges"], 0);

    let err = report
        .write_to(&dir.path().join("missing-dir/report.json"))
        .expect_err("no such directory");
    assert!(err.to_string().contains("missing-dir"), "{err}");
}

#[test]
fn totals_split_exchanges_with_real_differences_from_those_with_noise_only() {
    // No baseline: `at` is found volatile from the primary's repeats (two requests, each
    // asked ten times); the candidate changes `stars` on /reviews/1 only.
    let mut a = Analyzer::new(AnalysisSettings::default());
    for i in 0..20u64 {
        let product = i % 2;
        let answer = |at: u64, stars: u64| format!(r#"{{"at":{at},"stars":{stars}}}"#);
        let stars = if product == 1 { 3 } else { 5 };
        let candidate = if i == 19 {
            response(200, answer(i * 10, 5), 12) // the same answer as the primary's
        } else {
            response(200, answer(i * 10 + 1, stars), 12)
        };
        a.ingest(&exchange(
            i,
            T0 + i,
            &format!("/reviews/{product}"),
            ok(response(200, answer(i * 10, 5), 10)),
            vec![sent("reviews/v2", candidate)],
        ));
    }
    let json: Value = serde_json::from_str(
        &Report::build(&a.snapshot(), &run_info())
            .to_json()
            .expect("serialises"),
    )
    .expect("JSON");
    assert_valid(&report_schema(), &json);
    assert_eq!(
        json["totals"]["exchange_differences"],
        json!({"counted": 20, "compared": 20, "real": 9, "noise_only": 10, "same": 1})
    );
    let diffs = json["diffs"].as_array().expect("diffs");
    let at = diffs
        .iter()
        .find(|d| d["field"] == "/at")
        .expect("an /at row");
    assert_eq!(at["verdict"], "noise");
    assert_eq!(at["evidence"]["rule"], "volatile");
    assert_eq!(at["evidence"]["volatility"]["source"], "primary_repeats");
    assert_eq!(at["evidence"]["volatility"]["changed"], 18);
    assert_eq!(
        (at["repeats"].clone(), at["repeats_changed"].clone()),
        (json!(18), json!(18))
    );
    assert_eq!(json["totals"]["real_differences"], 1);
    assert_eq!(json["totals"]["noise_differences"], 1);
}
