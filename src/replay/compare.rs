//! `mirrorlab compare A.json B.json`: two reports side by side, per route: requests,
//! status codes and latency percentiles of the primary and each mirror, and the rate at
//! which each field differs. Mirrors are paired by their place in the route (the
//! candidates apart from baselines), so a run against v2 compares with one against v3.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

/// Why a report cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// The file cannot be read.
    #[error("cannot read the report {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a report.
    #[error("{}:{line}:{column}: not a mirrorlab report: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Line.
        line: usize,
        /// Column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// One line of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareRow {
    /// `totals` or the route label.
    pub section: String,
    /// What is compared (`primary p50/p90/p99 ms`, `field body:/rating (reviews-v2/v2)`).
    pub what: String,
    /// In report A (`-`: absent).
    pub a: String,
    /// In report B.
    pub b: String,
    /// B against A, when both are numbers (`-8.0 pts`, `+1.3 ms`).
    pub change: String,
}

/// Reads a report.
pub fn read_report(path: &Path) -> Result<Value, CompareError> {
    let text = std::fs::read_to_string(path).map_err(|source| CompareError::Io {
        path: path.to_owned(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| CompareError::Parse {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    if value.get("schema_version").is_none() || value.get("routes").is_none() {
        return Err(CompareError::Parse {
            path: path.to_owned(),
            line: 1,
            column: 1,
            message: "no `schema_version` and `routes` (write one with --report)".to_owned(),
        });
    }
    Ok(value)
}

fn u(v: &Value, pointer: &str) -> Option<f64> {
    v.pointer(pointer).and_then(Value::as_f64)
}

fn num(x: Option<f64>, unit: &str) -> String {
    x.map_or_else(|| "-".to_owned(), |x| format!("{}{unit}", trim(x)))
}

fn trim(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

fn change(a: Option<f64>, b: Option<f64>, unit: &str) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:+.2}{unit}", b - a),
        _ => String::new(),
    }
}

fn codes(v: Option<&Value>) -> String {
    let Some(Value::Object(codes)) = v else {
        return "-".to_owned();
    };
    if codes.is_empty() {
        return "none".to_owned();
    }
    codes
        .iter()
        .map(|(c, n)| format!("{c}:{}", n.as_u64().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn percentiles(side: Option<&Value>) -> (String, Option<[f64; 3]>) {
    let get = |p: &str| side.and_then(|s| u(s, &format!("/latency_ms/total/{p}")));
    match (get("p50"), get("p90"), get("p99")) {
        (Some(a), Some(b), Some(c))
            if side.and_then(|s| u(s, "/latency_ms/total/count")) != Some(0.0) =>
        {
            (
                format!("{}/{}/{}", trim(a), trim(b), trim(c)),
                Some([a, b, c]),
            )
        }
        _ => ("-".to_owned(), None),
    }
}

/// The candidate mirrors of a route (not baselines), in order.
fn candidates(route: Option<&Value>) -> Vec<&Value> {
    route
        .and_then(|r| r.get("mirrors"))
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter(|m| m.get("baseline").and_then(Value::as_bool) != Some(true))
                .collect()
        })
        .unwrap_or_default()
}

/// `(differing, compared)` per (route, candidate target, field), over endpoints.
fn field_rates(report: &Value) -> FieldRates {
    let mut out = FieldRates::new();
    for row in report
        .get("diffs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if row.get("baseline").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let s = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let entry = out
            .entry((s("route"), s("target"), s("field")))
            .or_default();
        entry.0 += u(row, "/differing").unwrap_or(0.0);
        entry.1 += u(row, "/compared").unwrap_or(0.0);
        entry.2 |= s("verdict") == "real";
    }
    out
}

type FieldRates = BTreeMap<(String, String, String), (f64, f64, bool)>;

/// The rows, as they are added.
#[derive(Default)]
struct Rows(Vec<CompareRow>);

impl Rows {
    fn push(&mut self, section: &str, what: String, a: String, b: String, change: String) {
        self.0.push(CompareRow {
            section: section.to_owned(),
            what,
            a,
            b,
            change,
        });
    }

    fn number(&mut self, section: &str, what: &str, a: Option<f64>, b: Option<f64>, unit: &str) {
        let delta = if unit == "%" { " pts" } else { unit };
        self.push(
            section,
            what.to_owned(),
            num(a, unit),
            num(b, unit),
            change(a, b, delta),
        );
    }

    fn totals(&mut self, a: &Value, b: &Value) {
        for (what, pointer) in [
            ("exchanges", "/totals/exchanges"),
            ("real difference rows", "/totals/real_differences"),
            ("noise difference rows", "/totals/noise_differences"),
            (
                "exchanges compared",
                "/totals/exchange_differences/compared",
            ),
            (
                "exchanges that differ really",
                "/totals/exchange_differences/real",
            ),
        ] {
            self.number("totals", what, u(a, pointer), u(b, pointer), "");
        }
        let real_share = |r: &Value| {
            let compared = u(r, "/totals/exchange_differences/compared")?;
            (compared > 0.0).then(|| {
                100.0 * u(r, "/totals/exchange_differences/real").unwrap_or(0.0) / compared
            })
        };
        self.number(
            "totals",
            "share that differs really",
            real_share(a),
            real_share(b),
            "%",
        );
    }

    fn latency(&mut self, section: &str, who: &str, a: Option<&Value>, b: Option<&Value>) {
        let ((ta, va), (tb, vb)) = (percentiles(a), percentiles(b));
        let delta = match (va, vb) {
            (Some(x), Some(y)) => format!(
                "{:+.2}/{:+.2}/{:+.2} ms",
                y[0] - x[0],
                y[1] - x[1],
                y[2] - x[2]
            ),
            _ => String::new(),
        };
        self.push(section, format!("{who} p50/p90/p99 ms"), ta, tb, delta);
    }

    fn status(&mut self, section: &str, who: &str, a: Option<&Value>, b: Option<&Value>) {
        let of = |s: Option<&Value>| codes(s.and_then(|s| s.pointer("/status/codes")));
        self.push(
            section,
            format!("{who} status"),
            of(a),
            of(b),
            String::new(),
        );
    }

    fn route(
        &mut self,
        label: &str,
        a: Option<&Value>,
        b: Option<&Value>,
        rates: (&FieldRates, &FieldRates),
    ) {
        let get = |r: Option<&Value>, p: &str| r.and_then(|r| u(r, p));
        self.number(
            label,
            "requests",
            get(a, "/requests"),
            get(b, "/requests"),
            "",
        );
        let (pa, pb) = (
            a.and_then(|r| r.get("primary")),
            b.and_then(|r| r.get("primary")),
        );
        self.status(label, "primary", pa, pb);
        self.latency(label, "primary", pa, pb);
        let (ca, cb) = (candidates(a), candidates(b));
        for i in 0..ca.len().max(cb.len()) {
            self.mirror(label, i, (ca.get(i).copied(), cb.get(i).copied()), rates);
        }
    }

    /// The `i`th candidate mirror of a route in both reports, and its fields' rates.
    fn mirror(
        &mut self,
        label: &str,
        i: usize,
        (ma, mb): (Option<&Value>, Option<&Value>),
        (fa, fb): (&FieldRates, &FieldRates),
    ) {
        let name = |m: Option<&Value>| {
            m.and_then(|m| m.get("target"))
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_owned()
        };
        let (na, nb) = (name(ma), name(mb));
        let title = if na == nb {
            na.clone()
        } else {
            format!("{na} | {nb}")
        };
        let n = i + 1;
        self.push(
            label,
            format!("mirror {n} target"),
            na.clone(),
            nb.clone(),
            String::new(),
        );
        self.status(label, &format!("mirror {n}"), ma, mb);
        self.latency(label, &format!("mirror {n} ({title})"), ma, mb);
        let mut fields: Vec<&String> = fa
            .keys()
            .chain(fb.keys())
            .filter(|(r, t, _)| r == label && (*t == na || *t == nb))
            .map(|(_, _, f)| f)
            .collect();
        fields.sort();
        fields.dedup();
        for field in fields {
            let rate = |rates: &FieldRates, target: &str| {
                let key = (label.to_owned(), target.to_owned(), field.clone());
                rates.get(&key).map(|(d, c, real)| {
                    let pct = if *c > 0.0 { 100.0 * d / c } else { 0.0 };
                    (
                        pct,
                        format!("{pct:.1}% {}", if *real { "real" } else { "noise" }),
                    )
                })
            };
            let (x, y) = (rate(fa, &na), rate(fb, &nb));
            let text = |r: &Option<(f64, String)>| {
                r.as_ref()
                    .map_or_else(|| "0.0%".to_owned(), |r| r.1.clone())
            };
            let pct = |r: &Option<(f64, String)>| Some(r.as_ref().map_or(0.0, |r| r.0));
            self.push(
                label,
                format!("  field {field}"),
                text(&x),
                text(&y),
                change(pct(&x), pct(&y), " pts"),
            );
        }
    }
}

/// The routes of a report by label, in order.
fn routes(report: &Value) -> Vec<(String, &Value)> {
    report
        .get("routes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r.get("route")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned(),
                r,
            )
        })
        .collect()
}

fn find<'r>(routes: &[(String, &'r Value)], label: &str) -> Option<&'r Value> {
    routes.iter().find(|(l, _)| l == label).map(|(_, v)| *v)
}

/// Compares report `b` with report `a`: totals, then each route of either, in A's order.
pub fn compare(a: &Value, b: &Value) -> Vec<CompareRow> {
    let mut rows = Rows::default();
    rows.totals(a, b);
    let (ra, rb) = (routes(a), routes(b));
    let mut labels: Vec<&String> = ra.iter().map(|(l, _)| l).collect();
    for (l, _) in &rb {
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    let (fa, fb) = (field_rates(a), field_rates(b));
    for label in labels {
        rows.route(label, find(&ra, label), find(&rb, label), (&fa, &fb));
    }
    rows.0
}

/// The comparison as a text table, a section per route.
pub fn render(rows: &[CompareRow], a_name: &str, b_name: &str) -> String {
    let w0 = rows
        .iter()
        .map(|r| r.what.chars().count())
        .max()
        .unwrap_or(0)
        .max(8);
    let w1 = rows
        .iter()
        .map(|r| r.a.chars().count())
        .max()
        .unwrap_or(0)
        .max(a_name.chars().count());
    let w2 = rows
        .iter()
        .map(|r| r.b.chars().count())
        .max()
        .unwrap_or(0)
        .max(b_name.chars().count());
    let mut out = format!("  {:w0$}  {a_name:<w1$}  {b_name:<w2$}  B - A\n", "");
    let mut section = "";
    for r in rows {
        if r.section != section {
            section = &r.section;
            out.push_str(&format!("{section}\n"));
        }
        let line = format!("  {:w0$}  {:<w1$}  {:<w2$}  {}", r.what, r.a, r.b, r.change);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
