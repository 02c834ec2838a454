//! Istio's own verdicts, carried over as facts: the cases of Istio's validation tests
//! (`pkg/config/validation/*_test.go`) and of its analyzer tests (`analyzers_test.go` with
//! its testdata), written as YAML cases of the lab's own under `tests/istio/`. Each case
//! names the Istio test case it comes from; `mirrorlab check` must reach the same verdict,
//! and the route table must compile exactly the configs `check` accepts.
//!
//! A validation case gives a resource (or a part of one, wrapped in a minimal resource) and
//! whether Istio's admission validation accepts it. Only validation findings count there:
//! analyzer codes (`IST…`) and what only the cluster can tell (`ML04xx`) are left out, as
//! Istio's validation functions know nothing of other resources.
//!
//! An analyzer case gives several resources and the messages Istio's analyzer test expects,
//! as (code, resource) pairs; the lab must report exactly those for the codes the case names.

use std::path::{Path, PathBuf};

use mirrorlab::config::{ConfigSet, Diagnostic, Severity};
use mirrorlab::routing::RouteTable;
use serde::Deserialize;
use yaml_serde::Value;

/// One validation case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidationCase {
    /// The Istio test function and case, e.g. `TestValidateHTTPRoute "simple"`.
    istio: String,
    /// Whether Istio accepts it.
    valid: bool,
    /// For an invalid case, the code the lab reports.
    #[serde(default)]
    code: Option<String>,
    /// A warning (or info) code the lab must report: Istio accepts with a warning.
    #[serde(default)]
    warns: Option<String>,
    /// Where and why the lab's words differ from Istio's (documentation only).
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
    /// The resource's namespace (default: `default`).
    #[serde(default)]
    namespace: Option<String>,
    /// The resource's labels.
    #[serde(default)]
    labels: Option<Value>,
    /// The resource's annotations.
    #[serde(default)]
    annotations: Option<Value>,
    #[serde(default)]
    http_route: Option<Value>,
    #[serde(default)]
    virtual_service: Option<Value>,
    #[serde(default)]
    destination_rule: Option<Value>,
    #[serde(default)]
    traffic_policy: Option<Value>,
    #[serde(default)]
    service_entry: Option<Value>,
    /// Several resources, as multi-document YAML.
    #[serde(default)]
    resources: Option<String>,
}

/// One analyzer case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnalyzerCase {
    /// The analyzer test case, e.g. `analyzers_test.go "virtualServiceGateways"`.
    istio: String,
    /// The testdata file the resources carry the facts of.
    testdata: String,
    /// The codes compared.
    codes: Vec<String>,
    /// Only diagnostics whose field path contains one of these are compared.
    #[serde(default)]
    fields: Vec<String>,
    /// Diagnostics whose field path contains one of these are left out.
    #[serde(default)]
    not_fields: Vec<String>,
    /// Where and why the lab's words differ from Istio's (documentation only).
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
    /// The resources, as multi-document YAML.
    resources: String,
    /// What Istio expects: (code, `Kind namespace/name`).
    expect: Vec<(String, String)>,
}

fn case_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/istio")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in {}", dir.display());
    files
}

fn resource(kind: &str, case: &ValidationCase, spec: Value) -> Value {
    let mut meta = yaml_serde::Mapping::new();
    meta.insert("name".into(), "case".into());
    meta.insert(
        "namespace".into(),
        case.namespace
            .clone()
            .unwrap_or_else(|| "default".into())
            .into(),
    );
    if let Some(l) = &case.labels {
        meta.insert("labels".into(), l.clone());
    }
    if let Some(a) = &case.annotations {
        meta.insert("annotations".into(), a.clone());
    }
    let mut doc = yaml_serde::Mapping::new();
    doc.insert("apiVersion".into(), "networking.istio.io/v1".into());
    doc.insert("kind".into(), kind.into());
    doc.insert("metadata".into(), Value::Mapping(meta));
    doc.insert("spec".into(), spec);
    Value::Mapping(doc)
}

fn yaml_of(v: &Value) -> Value {
    v.clone()
}

/// The YAML text a validation case stands for.
fn text(case: &ValidationCase) -> String {
    let parse = |s: &str| -> Value { yaml_serde::from_str(s).unwrap() };
    let doc = if let Some(route) = &case.http_route {
        let spec = parse("{hosts: [foo.bar]}");
        let mut spec = spec.as_mapping().unwrap().clone();
        spec.insert("http".into(), Value::Sequence(vec![yaml_of(route)]));
        resource("VirtualService", case, Value::Mapping(spec))
    } else if let Some(spec) = &case.virtual_service {
        resource("VirtualService", case, spec.clone())
    } else if let Some(spec) = &case.destination_rule {
        resource("DestinationRule", case, spec.clone())
    } else if let Some(tp) = &case.traffic_policy {
        let mut spec = parse("{host: reviews}").as_mapping().unwrap().clone();
        spec.insert("trafficPolicy".into(), tp.clone());
        resource("DestinationRule", case, Value::Mapping(spec))
    } else if let Some(spec) = &case.service_entry {
        resource("ServiceEntry", case, spec.clone())
    } else if let Some(r) = &case.resources {
        return r.clone();
    } else {
        panic!("{}: no resource", case.istio);
    };
    yaml_serde::to_string(&doc).unwrap()
}

/// Findings of Istio's admission validation: not analyzers, not the cluster's.
fn validation_finding(d: &Diagnostic) -> bool {
    !d.code.starts_with("IST") && !d.code.starts_with("ML04")
}

fn listing(set: &ConfigSet) -> String {
    set.diagnostics()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn check_validation_case(case: &ValidationCase, file: &Path) -> Result<(), String> {
    let yaml = text(case);
    let set = ConfigSet::load_str("case.yaml", &yaml);
    let errors: Vec<&Diagnostic> = set
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error && validation_finding(d))
        .collect();
    let what = format!("{} {}", file.display(), case.istio);
    if case.valid && !errors.is_empty() {
        return Err(format!(
            "{what}: Istio accepts it, check refuses:\n{}\n---\n{yaml}",
            listing(&set)
        ));
    }
    if !case.valid && errors.is_empty() {
        return Err(format!(
            "{what}: Istio refuses it, check accepts:\n{}\n---\n{yaml}",
            listing(&set)
        ));
    }
    if let Some(code) = &case.code
        && !errors.iter().any(|d| d.code == code)
    {
        return Err(format!(
            "{what}: expected error {code}:\n{}\n---\n{yaml}",
            listing(&set)
        ));
    }
    if let Some(code) = &case.warns
        && !set
            .diagnostics()
            .iter()
            .any(|d| d.code == code && d.severity != Severity::Error)
    {
        return Err(format!(
            "{what}: expected warning or info {code}:\n{}\n---\n{yaml}",
            listing(&set)
        ));
    }
    // check and run agree: the route table compiles what check accepts, and only that.
    match RouteTable::compile(&set) {
        Ok(_) if set.has_errors() => Err(format!(
            "{what}: the route table compiled a config with errors"
        )),
        Err(e) if !set.has_errors() => Err(format!(
            "{what}: check accepts it but the route table refuses: {}",
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )),
        _ => Ok(()),
    }
}

#[test]
fn istio_validation_cases_get_istios_verdict() {
    let mut failures = Vec::new();
    let mut count = 0;
    let (mut valid, mut invalid) = (0, 0);
    for file in case_files("validation") {
        let text = std::fs::read_to_string(&file).unwrap();
        let cases: Vec<ValidationCase> =
            yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for case in &cases {
            count += 1;
            if case.valid {
                valid += 1;
            } else {
                invalid += 1;
            }
            if let Err(e) = check_validation_case(case, &file) {
                failures.push(e);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases disagree with Istio:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // A floor, so that a case file that stops loading cannot pass in silence.
    assert!(
        count >= 250 && valid >= 100 && invalid >= 100,
        "{count} cases: {valid} valid, {invalid} invalid"
    );
}

#[test]
fn istio_analyzer_cases_report_what_istio_expects() {
    let mut failures = Vec::new();
    let mut count = 0;
    for file in case_files("analyzers") {
        let text = std::fs::read_to_string(&file).unwrap();
        let cases: Vec<AnalyzerCase> =
            yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for case in &cases {
            count += 1;
            let set = ConfigSet::load_str(&case.testdata, &case.resources);
            let mut got: Vec<(String, String)> = set
                .diagnostics()
                .iter()
                .filter(|d| case.codes.iter().any(|c| c == d.code))
                .filter(|d| {
                    let path = d.field_path.as_deref().unwrap_or("");
                    (case.fields.is_empty()
                        || case.fields.iter().any(|f| path.contains(f.as_str())))
                        && !case.not_fields.iter().any(|f| path.contains(f.as_str()))
                })
                .map(|d| (d.code.to_owned(), d.resource.clone().unwrap_or_default()))
                .collect();
            got.sort();
            let mut want = case.expect.clone();
            want.sort();
            if got != want {
                failures.push(format!(
                    "{} {} ({}):\n  want {want:?}\n  got  {got:?}\n{}",
                    file.display(),
                    case.istio,
                    case.testdata,
                    listing(&set)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(count >= 15, "only {count} analyzer cases");
}
