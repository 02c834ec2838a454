//! The selected exchange's way through the sidecar: the stages that ran (route selection,
//! fault, CORS, the route's transformations, the local answer or the forward) and, side by
//! side, what the client sent and what the primary and the shadows were sent, with the
//! rewritten path and authority and the headers added, changed and removed marked.

use crate::capture::Exchange;
use crate::routing::ActionKind;

/// How a header fared between the client and the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderChange {
    /// Sent as the client sent it.
    Same,
    /// The client did not send it.
    Added,
    /// Sent with other values.
    Changed,
    /// The client sent it; the upstream did not get it.
    Removed,
}

/// Every header name of either side, in the order the client sent them then the added
/// ones, with how it changed. `host` is left out: the authority line says it.
pub fn header_changes(
    client: &http::HeaderMap,
    sent: &http::HeaderMap,
) -> Vec<(String, HeaderChange)> {
    let values = |m: &http::HeaderMap, name: &http::HeaderName| -> Vec<Vec<u8>> {
        m.get_all(name)
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect()
    };
    let mut out = Vec::new();
    for name in client.keys() {
        if name == http::header::HOST {
            continue;
        }
        let change = if !sent.contains_key(name) {
            HeaderChange::Removed
        } else if values(client, name) == values(sent, name) {
            HeaderChange::Same
        } else {
            HeaderChange::Changed
        };
        out.push((name.as_str().to_owned(), change));
    }
    for name in sent.keys() {
        if name != http::header::HOST && !client.contains_key(name) {
            out.push((name.as_str().to_owned(), HeaderChange::Added));
        }
    }
    out
}

/// What each response flag of the client's answer means, as Envoy's access log has it.
fn flag_meaning(flag: &str) -> &'static str {
    match flag {
        "UF" => "upstream connection failure",
        "UC" => "upstream connection closed before the response head",
        "UR" => "upstream reset the stream (HTTP/2 RST_STREAM)",
        "UT" => "upstream request timeout",
        "UH" => "no healthy upstream",
        "UPE" => "upstream protocol error",
        "UO" => "upstream overflow (circuit breaker)",
        "NR" => "no route",
        "FI" => "fault injected: aborted",
        "DI" => "fault injected: delayed",
        "URX" => "upstream retry limit exceeded",
        _ => "",
    }
}

/// The stages that ran, one line each, in the sidecar's order.
pub fn stage_lines(e: &Exchange) -> Vec<String> {
    let Some(t) = &e.trace else {
        return vec!["route selection: no route matched; the lab answered 404 (NR)".to_owned()];
    };
    let mut lines = vec![format!(
        "route selection: VirtualService {}, route {}{}: {}",
        t.virtual_service,
        t.route_index,
        t.route_name
            .as_ref()
            .map_or_else(String::new, |n| format!(" ({n})")),
        t.match_summary
    )];
    lines.extend(t.steps.iter().cloned());
    lines.push(match t.action {
        ActionKind::Forward => match &e.primary {
            Some(p) if p.attempt_count() > 1 => format!(
                "router: forwarded to {} in {} attempts",
                p.target,
                p.attempt_count()
            ),
            Some(p) => format!("router: forwarded to {} ({})", p.target, p.endpoint),
            None => "router: forwarded".to_owned(),
        },
        other => format!("answered by the lab: {}", other.as_str().replace('_', " ")),
    });
    if !e.flags.is_empty() {
        let flags: Vec<String> = (e.flags.names())
            .map(|f| format!("{f} ({})", flag_meaning(f)))
            .collect();
        lines.push(format!("response flags: {}", flags.join(", ")));
    }
    lines
}

/// Whether there is more to see than a plain forward: open the section by itself then.
fn eventful(e: &Exchange) -> bool {
    e.forwarded.is_some()
        || !e.flags.is_empty()
        || e.trace
            .as_ref()
            .is_none_or(|t| !t.steps.is_empty() || t.action != ActionKind::Forward)
}

/// The collapsible pipeline section.
pub fn pipeline_ui(ui: &mut egui::Ui, e: &Exchange) {
    egui::CollapsingHeader::new(
        "Pipeline: the stages that ran, what the client and the upstreams were sent",
    )
    .id_salt("traffic-pipeline")
    .default_open(eventful(e))
    .show(ui, |ui| {
        for line in stage_lines(e) {
            // The bundled font has no arrow glyph (`rewrite /a → /b`).
            ui.label(format!("- {}", super::plain_arrows(&line)));
        }
        // A local answer (or no route): nothing went upstream.
        let forwarded = (e.trace.as_ref()).is_some_and(|t| t.action == ActionKind::Forward);
        if !forwarded {
            return;
        }
        ui.add_space(4.0);
        ui.columns(2, |cols| {
            if let Some(col) = cols.get_mut(0) {
                client_column(col, e);
            }
            if let Some(col) = cols.get_mut(1) {
                upstream_column(col, e);
            }
        });
    });
}

fn colour(ui: &egui::Ui, change: HeaderChange) -> Option<egui::Color32> {
    let dark = ui.visuals().dark_mode;
    match change {
        HeaderChange::Same => None,
        HeaderChange::Added => Some(if dark {
            egui::Color32::from_rgb(110, 200, 110)
        } else {
            egui::Color32::from_rgb(20, 120, 20)
        }),
        HeaderChange::Changed => Some(ui.visuals().warn_fg_color),
        HeaderChange::Removed => Some(ui.visuals().error_fg_color),
    }
}

fn client_column(ui: &mut egui::Ui, e: &Exchange) {
    ui.strong("The client sent");
    ui.monospace(format!(
        "{} {}  Host: {}",
        e.request.method, e.request.uri, e.request.authority
    ));
    let sent = e.forwarded.as_ref().map(|f| &f.headers);
    for (name, value) in &e.request.headers {
        if name == http::header::HOST {
            continue;
        }
        let text = format!("{name}: {}", String::from_utf8_lossy(value.as_bytes()));
        let removed = sent.is_some_and(|s| !s.contains_key(name));
        let mut rich = egui::RichText::new(text).monospace();
        if removed {
            rich = rich
                .strikethrough()
                .color(colour(ui, HeaderChange::Removed).unwrap_or_default());
        }
        ui.label(rich);
    }
}

fn upstream_column(ui: &mut egui::Ui, e: &Exchange) {
    let Some(sent) = &e.forwarded else {
        ui.strong("The primary and the shadows were sent");
        ui.weak(
            "the client's request as it came (plus the sidecar's own headers: x-request-id, \
             x-forwarded-proto, x-envoy-attempt-count); no rewrite or header operation applied",
        );
        return;
    };
    ui.strong("The primary and the shadows were sent");
    let path_changed = sent.uri != e.request.uri;
    let host_changed = sent.authority != e.request.authority;
    ui.horizontal(|ui| {
        ui.monospace(format!("{} ", e.request.method));
        let path = egui::RichText::new(&sent.uri).monospace();
        ui.label(match path_changed {
            true => path.color(ui.visuals().warn_fg_color),
            false => path,
        })
        .on_hover_text(if path_changed { "rewritten" } else { "as sent" });
        let host = egui::RichText::new(format!(" Host: {}", sent.authority)).monospace();
        ui.label(match host_changed {
            true => host.color(ui.visuals().warn_fg_color),
            false => host,
        });
    });
    for (name, change) in header_changes(&e.request.headers, &sent.headers) {
        if change == HeaderChange::Removed {
            continue;
        }
        let name = http::HeaderName::try_from(name.as_str()).ok();
        let Some(name) = name else { continue };
        for value in sent.headers.get_all(&name) {
            let text = format!("{name}: {}", String::from_utf8_lossy(value.as_bytes()));
            let mut rich = egui::RichText::new(text).monospace();
            if let Some(c) = colour(ui, change) {
                rich = rich.color(c);
            }
            ui.label(rich);
        }
    }
    ui.weak("Shadows get the same request, then the lab's mirror header edits and, when set, the -shadow Host suffix.");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut m = http::HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, http::HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn headers_added_changed_and_removed_are_told_apart() {
        let client = map(&[
            ("host", "reviews"),
            ("user-agent", "curl"),
            ("x-debug", "1"),
            ("x-env", "dev"),
        ]);
        let sent = map(&[
            ("host", "reviews-v2"),
            ("user-agent", "curl"),
            ("x-env", "prod"),
            ("x-request-id", "abc"),
        ]);
        assert_eq!(
            header_changes(&client, &sent),
            vec![
                ("user-agent".to_owned(), HeaderChange::Same),
                ("x-debug".to_owned(), HeaderChange::Removed),
                ("x-env".to_owned(), HeaderChange::Changed),
                ("x-request-id".to_owned(), HeaderChange::Added),
            ]
        );
    }
}
