//! The Traffic detail's list of the primary's upstream attempts: which endpoint each one
//! went to, how it ended, when it started and how long it took, and what outlier detection
//! did around it (an endpoint ejected after the attempt, ejected endpoints the pick passed
//! over). Envoy makes one upstream request per attempt; the client saw the last one's answer.

use std::time::Duration;

use crate::capture::{Attempt, PrimaryRecord, UpstreamOutcome};

/// One line of the list, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub number: usize,
    pub endpoint: String,
    pub outcome: String,
    pub started: String,
    pub took: String,
    /// What else happened: retried, ejected, picks passed over.
    pub notes: String,
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn notes(attempt: &Attempt, last: bool) -> String {
    let mut notes = Vec::new();
    if attempt.skipped_ejected > 0 {
        let s = if attempt.skipped_ejected == 1 {
            ""
        } else {
            "s"
        };
        notes.push(format!(
            "the pick passed over {} ejected endpoint{s}",
            attempt.skipped_ejected
        ));
    }
    if attempt.ejected {
        notes.push("outlier detection ejected this endpoint".to_owned());
    }
    notes.push(
        if last {
            "the client's answer"
        } else {
            "retried"
        }
        .to_owned(),
    );
    notes.join("; ")
}

/// The rows for a primary: every recorded attempt, or the single one the record tells.
pub fn attempt_rows(primary: &PrimaryRecord) -> Vec<AttemptRow> {
    if primary.attempts.is_empty() {
        let (outcome, took) = match &primary.outcome {
            UpstreamOutcome::Response(r) => (r.status.as_u16().to_string(), r.ttfb),
            UpstreamOutcome::Failed(f) => (f.kind.as_str().to_owned(), f.elapsed),
        };
        return vec![AttemptRow {
            number: 1,
            endpoint: primary.endpoint.to_string(),
            outcome,
            started: ms(Duration::ZERO),
            took: ms(took),
            notes: "the only attempt".to_owned(),
        }];
    }
    let last = primary.attempts.len() - 1;
    (primary.attempts.iter().enumerate())
        .map(|(i, a)| AttemptRow {
            number: i + 1,
            endpoint: a.endpoint.to_string(),
            outcome: a.outcome.to_string(),
            started: format!("+{}", ms(a.started)),
            took: ms(a.took),
            notes: notes(a, i == last),
        })
        .collect()
}

/// The header line: how many attempts, and whether retries or ejections were involved.
pub fn attempts_title(primary: &PrimaryRecord) -> String {
    let n = primary.attempt_count();
    let skipped: usize = primary.attempts.iter().map(|a| a.skipped_ejected).sum();
    let mut parts = Vec::new();
    match n {
        1 => {}
        2 => parts.push("1 retry".to_owned()),
        n => parts.push(format!("{} retries", n - 1)),
    }
    match skipped {
        0 => {}
        1 => parts.push("1 ejected endpoint passed over".to_owned()),
        k => parts.push(format!("{k} ejected endpoints passed over")),
    }
    if parts.is_empty() {
        format!("Upstream attempts: {n}")
    } else {
        format!("Upstream attempts: {n} ({})", parts.join(", "))
    }
}

/// The collapsible list; open when there was more than one attempt or an ejection.
pub fn attempts_ui(ui: &mut egui::Ui, primary: &PrimaryRecord) {
    let eventful = primary.attempts.len() > 1
        || (primary.attempts.iter()).any(|a| a.ejected || a.skipped_ejected > 0);
    egui::CollapsingHeader::new(attempts_title(primary))
        .id_salt("traffic-attempts")
        .default_open(eventful)
        .show(ui, |ui| {
            egui::Grid::new("traffic-attempts-grid")
                .striped(true)
                .num_columns(6)
                .show(ui, |ui| {
                    for heading in ["#", "Endpoint", "Outcome", "Started", "Took", ""] {
                        ui.strong(heading);
                    }
                    ui.end_row();
                    for row in attempt_rows(primary) {
                        ui.label(row.number.to_string());
                        ui.monospace(row.endpoint);
                        ui.label(row.outcome);
                        ui.label(row.started);
                        ui.label(row.took);
                        ui.label(row.notes);
                        ui.end_row();
                    }
                });
        });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::capture::{AttemptOutcome, CapturedBody, CapturedResponse, UpstreamErrorKind};

    fn primary(attempts: Vec<Attempt>) -> PrimaryRecord {
        PrimaryRecord {
            target: Arc::from("reviews/v1"),
            endpoint: "127.0.0.1:9081".into(),
            outcome: UpstreamOutcome::Response(CapturedResponse {
                trailers: None,
                status: http::StatusCode::OK,
                headers: http::HeaderMap::new(),
                body: CapturedBody::default(),
                ttfb: Duration::from_millis(3),
                total: Duration::from_millis(4),
                version: http::Version::HTTP_11,
            }),
            attempts,
        }
    }

    #[test]
    fn a_retry_after_a_refused_connection_lists_both_attempts() {
        let p = primary(vec![
            Attempt {
                endpoint: "127.0.0.1:9089".into(),
                outcome: AttemptOutcome::Failed(UpstreamErrorKind::Refused),
                started: Duration::ZERO,
                took: Duration::from_micros(300),
                ejected: true,
                skipped_ejected: 0,
            },
            Attempt {
                endpoint: "127.0.0.1:9081".into(),
                outcome: AttemptOutcome::Status(http::StatusCode::OK),
                started: Duration::from_millis(20),
                took: Duration::from_millis(3),
                ejected: false,
                skipped_ejected: 1,
            },
        ]);
        let rows = attempt_rows(&p);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].endpoint, "127.0.0.1:9089");
        assert_eq!(rows[0].outcome, UpstreamErrorKind::Refused.as_str());
        assert_eq!(
            rows[0].notes,
            "outlier detection ejected this endpoint; retried"
        );
        assert_eq!(rows[1].started, "+20.0 ms");
        assert_eq!(
            rows[1].notes,
            "the pick passed over 1 ejected endpoint; the client's answer"
        );
        assert_eq!(
            attempts_title(&p),
            "Upstream attempts: 2 (1 retry, 1 ejected endpoint passed over)"
        );
    }

    #[test]
    fn a_single_attempt_is_told_by_the_record() {
        let p = primary(Vec::new());
        let rows = attempt_rows(&p);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].endpoint, "127.0.0.1:9081");
        assert_eq!(rows[0].outcome, "200");
        assert_eq!(rows[0].took, "3.0 ms");
        assert_eq!(attempts_title(&p), "Upstream attempts: 1");
    }

    #[test]
    fn the_list_opens_by_itself_when_a_request_was_retried() {
        use egui_kittest::kittest::Queryable as _;
        let p = primary(vec![
            Attempt {
                endpoint: "127.0.0.1:9089".into(),
                outcome: AttemptOutcome::Failed(UpstreamErrorKind::Refused),
                started: Duration::ZERO,
                took: Duration::from_micros(300),
                ejected: false,
                skipped_ejected: 0,
            },
            Attempt {
                endpoint: "127.0.0.1:9081".into(),
                outcome: AttemptOutcome::Status(http::StatusCode::OK),
                started: Duration::from_millis(20),
                took: Duration::from_millis(3),
                ejected: false,
                skipped_ejected: 0,
            },
        ]);
        let mut h = egui_kittest::Harness::builder()
            .with_size(egui::vec2(900.0, 300.0))
            .build_ui(move |ui| attempts_ui(ui, &p));
        h.run();
        assert!(h.query_by_label("127.0.0.1:9089").is_some());
        assert!(h.query_by_label("retried").is_some());
        assert!(h.query_by_label("the client's answer").is_some());
    }
}
