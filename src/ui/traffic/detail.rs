//! The selected exchange: its request, what was sent upstream, the route trace, and the
//! primary's response beside the shadow's with their differences marked. The comparison
//! (diff and body lines) comes from the engine; until it arrives the detail says so. F7
//! and Shift+F7 walk through the differing body lines.

use crate::analysis::descriptors::GrpcDecode;
use crate::analysis::diff::{BodyComparison, ResponseDiff};
use crate::capture::{Exchange, ShadowOutcome, UpstreamOutcome};
use crate::lab::control::{BodyLine, Comparison, LineSide};
use crate::routing::RouteOrigin;

use super::{TrafficView, ms, plain_arrows};

/// Next difference in the detail view.
pub const NEXT_DIFFERENCE: egui::KeyboardShortcut =
    egui::KeyboardShortcut::new(egui::Modifiers::NONE, egui::Key::F7);
/// Previous difference in the detail view.
pub const PREVIOUS_DIFFERENCE: egui::KeyboardShortcut =
    egui::KeyboardShortcut::new(egui::Modifiers::SHIFT, egui::Key::F7);

impl TrafficView<'_> {
    pub(super) fn detail_ui(&mut self, ui: &mut egui::Ui) {
        let Some(id) = self.panel.selected else {
            ui.weak("Select a row to see its request, both responses and their differences.");
            return;
        };
        let Some(e) = self.panel.find(id).cloned() else {
            ui.weak(format!("Exchange {id} is no longer kept."));
            return;
        };
        self.head_ui(ui, &e);
        let Some(comparison) = self.panel.current_comparison() else {
            ui.horizontal(|ui| {
                // The spinner keeps frames coming until the engine's comparison is in.
                ui.add(egui::Spinner::new());
                ui.weak("Comparing the responses…");
            });
            return;
        };
        if let Some((at, _)) = self.panel.reflection_recheck {
            // A frame when the comparison is due again, traffic or not.
            let wait = at.saturating_duration_since(std::time::Instant::now());
            ui.ctx().request_repaint_after(wait);
        }
        let hunks = hunk_starts(&comparison.lines);
        self.difference_keys(ui, &hunks);
        let current = self.panel.difference_at.and_then(|i| hunks.get(i).copied());
        let scroll = std::mem::take(&mut self.panel.scroll_to_difference);
        egui::ScrollArea::vertical()
            .id_salt("traffic-detail-scroll")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                request_ui(ui, &e, &comparison);
                if let Some(p) = e.primary.as_ref().filter(|p| !p.endpoint.is_empty()) {
                    crate::ui::attempts::attempts_ui(ui, p);
                }
                diff_summary_ui(ui, &comparison);
                ui.columns(2, |cols| {
                    let focus = Focus { current, scroll };
                    if let Some(col) = cols.get_mut(0) {
                        primary_column(col, &e, &comparison, focus);
                    }
                    if let Some(col) = cols.get_mut(1) {
                        shadow_column(col, &e, &comparison, focus);
                    }
                });
            });
    }

    /// The exchange's head line, route trace and the shadow picker.
    fn head_ui(&mut self, ui: &mut egui::Ui, e: &Exchange) {
        ui.horizontal(|ui| {
            // The number the Diffs tab's sample buttons name.
            ui.weak(format!("#{}", e.id))
                .on_hover_text("Exchange number, as the Diffs tab's samples name it");
            ui.strong(format!("{} {}", e.request.method, e.request.uri));
            ui.label(format!("Host: {}", e.request.authority));
            ui.label(format!("x-request-id: {}", e.request_id));
            if ui.button("Copy as curl").clicked() {
                ui.ctx().copy_text(curl_command(e, self.proxy));
            }
        });
        ui.horizontal(|ui| {
            ui.label("Route trace:");
            ui.label(plain_arrows(&trace_text(e)));
        });
        if e.shadows.len() > 1 {
            ui.horizontal(|ui| {
                ui.label("Compare with shadow:");
                for (i, s) in e.shadows.iter().enumerate() {
                    ui.selectable_value(&mut self.panel.shadow_index, i, s.target.as_ref());
                }
            });
        }
    }

    /// The "Next difference" button and F7 / Shift+F7.
    fn difference_keys(&mut self, ui: &mut egui::Ui, hunks: &[usize]) {
        if hunks.is_empty() {
            return;
        }
        let (mut next, mut previous) = ui.input_mut(|i| {
            (
                i.consume_shortcut(&NEXT_DIFFERENCE),
                i.consume_shortcut(&PREVIOUS_DIFFERENCE),
            )
        });
        ui.horizontal(|ui| {
            let n = hunks.len();
            ui.label(match self.panel.difference_at {
                Some(i) => format!("Body difference {} of {n}", i + 1),
                None => format!("{n} body difference{}", if n == 1 { "" } else { "s" }),
            });
            let keys = ui.ctx().format_shortcut(&NEXT_DIFFERENCE);
            next |= ui
                .add(egui::Button::new("Next difference").shortcut_text(keys))
                .clicked();
            let keys = ui.ctx().format_shortcut(&PREVIOUS_DIFFERENCE);
            previous |= ui
                .add(egui::Button::new("Previous difference").shortcut_text(keys))
                .clicked();
        });
        let n = hunks.len();
        let at = self.panel.difference_at;
        let to = match (at, next, previous) {
            (None, true, _) => Some(0),
            (None, _, true) => Some(n - 1),
            (Some(i), true, _) => Some((i + 1) % n),
            (Some(i), _, true) => Some((i + n - 1) % n),
            _ => None,
        };
        if let Some(to) = to {
            self.panel.difference_at = Some(to);
            self.panel.scroll_to_difference = true;
        }
    }
}

/// Where the keyboard is among the differences: the first line of the current one, and
/// whether to scroll it into view this frame.
#[derive(Debug, Clone, Copy)]
struct Focus {
    current: Option<usize>,
    scroll: bool,
}

/// Indices of the first line of each run of marked lines (a difference to step to).
fn hunk_starts(lines: &[BodyLine]) -> Vec<usize> {
    let marked = |l: &BodyLine| l.side != LineSide::Both && !l.ignored;
    lines
        .iter()
        .enumerate()
        .filter(|&(i, l)| marked(l) && (i == 0 || !lines.get(i - 1).is_some_and(marked)))
        .map(|(i, _)| i)
        .collect()
}

fn request_ui(ui: &mut egui::Ui, e: &Exchange, comparison: &Comparison) {
    egui::CollapsingHeader::new("Request")
        .default_open(false)
        .show(ui, |ui| {
            headers_ui(ui, &e.request.headers, &[]);
            if !comparison.request_body.is_empty() {
                let body = egui::RichText::new(&comparison.request_body).monospace();
                ui.add(egui::Label::new(body).wrap());
            }
        });
    if let Some(tunnel) = &e.tunnel {
        tunnel_ui(ui, tunnel);
    }
    super::pipeline::pipeline_ui(ui, e);
}

/// A passed-through connection: what it was, how long it lasted, the bytes each way.
fn tunnel_ui(ui: &mut egui::Ui, tunnel: &crate::capture::Tunnel) {
    let kind = if tunnel.protocol == "CONNECT" {
        "CONNECT tunnel".to_owned()
    } else {
        format!("{} upgrade", tunnel.protocol)
    };
    ui.label(format!(
        "{kind}: open {:.1} s, {} B from the client, {} B from the upstream; not mirrored",
        tunnel.duration.as_secs_f64(),
        tunnel.bytes_up,
        tunnel.bytes_down
    ));
    if let Some(error) = &tunnel.error {
        ui.colored_label(ui.visuals().error_fg_color, format!("ended: {error}"));
    }
}

/// Header names that differ for real (not ignored).
fn changed_headers(diff: &Result<ResponseDiff, String>) -> Vec<String> {
    match diff {
        Ok(d) => d
            .headers
            .iter()
            .filter(|h| !h.ignored)
            .map(|h| h.name.clone())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn primary_column(col: &mut egui::Ui, e: &Exchange, c: &Comparison, focus: Focus) {
    let primary = e.primary.as_ref().map(|p| (&p.target, &p.outcome));
    col.strong(match primary {
        Some((target, _)) => format!("Primary: {target}"),
        None => "Primary: none (no route matched)".to_owned(),
    });
    if let Some((_, outcome)) = primary {
        response_head_ui(col, outcome, &changed_headers(&c.diff));
    }
    body_lines_ui(col, &c.lines, LineSide::Primary, &c.primary_body, focus);
}

fn shadow_column(col: &mut egui::Ui, e: &Exchange, c: &Comparison, focus: Focus) {
    let Some(s) = e.shadows.get(c.shadow_index) else {
        col.strong("Shadow: none");
        col.label("The route has no mirror.");
        return;
    };
    col.strong(format!("Shadow: {}", s.target));
    match &s.outcome {
        ShadowOutcome::Skipped(r) => {
            col.label(format!("Not sent: {}", r.as_str()));
        }
        ShadowOutcome::Sent(o) => response_head_ui(col, o, &changed_headers(&c.diff)),
    }
    body_lines_ui(col, &c.lines, LineSide::Shadow, &c.shadow_body, focus);
}

/// A body's lines, the ones only this side has marked (unless the diff ignores their
/// field); the current difference stronger, and scrolled to when asked.
fn body_lines_ui(ui: &mut egui::Ui, lines: &[BodyLine], mine: LineSide, whole: &str, focus: Focus) {
    if whole.is_empty() {
        ui.weak("(empty body)");
        return;
    }
    ui.add_space(4.0);
    let alpha = |strong: bool| if strong { 140 } else { 60 };
    let highlight = |strong: bool| match mine {
        LineSide::Primary => egui::Color32::from_rgba_unmultiplied(220, 60, 60, alpha(strong)),
        _ => egui::Color32::from_rgba_unmultiplied(60, 200, 90, alpha(strong)),
    };
    let hunk_end = focus.current.map(|start| {
        let run = lines
            .iter()
            .skip(start)
            .take_while(|l| l.side != LineSide::Both && !l.ignored)
            .count();
        start + run
    });
    let mut scrolled = false;
    for (i, line) in lines.iter().enumerate() {
        if line.side != mine && line.side != LineSide::Both {
            continue;
        }
        let current = focus.current.is_some_and(|s| i >= s) && hunk_end.is_some_and(|e| i < e);
        let rich = egui::RichText::new(&line.text).monospace();
        let rich = if line.side == mine && !line.ignored {
            rich.background_color(highlight(current))
        } else {
            rich
        };
        // No wrapping: wrapped rows lose their leading spaces, and JSON needs its indent.
        let response = ui.add(egui::Label::new(rich).extend());
        if current && focus.scroll && !scrolled {
            response.scroll_to_me(Some(egui::Align::Center));
            scrolled = true;
        }
    }
}

fn diff_summary_ui(ui: &mut egui::Ui, c: &Comparison) {
    // Which decode the messages got: by name (whose descriptors) or by field number.
    if let Some(decode) = &c.grpc_decode {
        let text = decode.to_string();
        match decode {
            GrpcDecode::Typed(_) => ui.label(text),
            GrpcDecode::SchemaLess(_) => ui.weak(text),
        };
    }
    let verdicts = c.headline.as_ref().map(|headline| DetailVerdicts {
        headline: headline.clone(),
        noise: c.noise.clone(),
    });
    diff_lines_ui(ui, &c.diff, verdicts.as_ref());
}

/// The route trace as a sentence: `VirtualService default/reviews, route 0, match block 1:
/// header user-agent ~ .*testing.*; forward`, then what was done on the way.
pub fn trace_text(e: &Exchange) -> String {
    match &e.trace {
        Some(t) => {
            // A Gateway API route has rules and matches where a VirtualService has routes
            // and match blocks.
            let gateway = matches!(t.origin, RouteOrigin::GatewayRoute { .. });
            let (rule, match_) = if gateway {
                ("rule", "match")
            } else {
                ("route", "match block")
            };
            let route = match &t.route_name {
                Some(n) => format!("{rule} {} ({n})", t.route_index),
                None => format!("{rule} {}", t.route_index),
            };
            let block = match t.match_index {
                Some(i) => format!(", {match_} {i}"),
                None => String::new(),
            };
            let origin = match &t.origin {
                RouteOrigin::VirtualService => format!("VirtualService {}", t.virtual_service),
                RouteOrigin::GatewayRoute { kind, route } => format!("{kind} {route}"),
                RouteOrigin::Delegate {
                    virtual_service,
                    route_index,
                } => format!(
                    "VirtualService {}, delegated to {virtual_service} route {route_index}",
                    t.virtual_service
                ),
                RouteOrigin::DefaultRoute { service_entry } => format!(
                    "no VirtualService: the default route of {} (ServiceEntry {service_entry})",
                    t.virtual_service
                ),
            };
            let mut text = format!(
                "{origin}, {route}{block}: {}; {}",
                t.match_summary,
                t.action.as_str().replace('_', " ")
            );
            for step in &t.steps {
                text.push_str("; ");
                text.push_str(step);
            }
            if !e.flags.is_empty() {
                text.push_str(&format!("; response flags {}", e.flags));
            }
            text
        }
        None => "no route matched (the client got a 404 from the lab, response flag NR)".to_owned(),
    }
}

/// The analysis' view of one shadow's differences: its summary, and the fields that are
/// noise (`status`, `header:NAME`, `body` or a JSON field path with `*`).
struct DetailVerdicts {
    headline: String,
    noise: Vec<String>,
}

/// Most characters of a value shown on a difference line (a reordered array is shown
/// whole otherwise).
const MAX_SHOWN_VALUE: usize = 120;

fn shown_value(v: &Option<serde_json::Value>) -> String {
    let Some(v) = v else {
        return "(absent)".to_owned();
    };
    let text = v.to_string();
    match text.char_indices().nth(MAX_SHOWN_VALUE) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

fn diff_lines_ui(
    ui: &mut egui::Ui,
    diff: &Result<ResponseDiff, String>,
    verdicts: Option<&DetailVerdicts>,
) {
    // A line at a field the analysis calls noise is shown weak, and says so.
    let line = |ui: &mut egui::Ui, field: &str, text: String| {
        if verdicts.is_some_and(|v| v.noise.iter().any(|n| n == field)) {
            ui.weak(format!("{text}  (noise)"));
        } else {
            ui.label(text);
        }
    };
    match diff {
        Err(why) => {
            ui.label(format!("Not compared: {why}"));
        }
        Ok(d) if d.is_same() => {
            ui.colored_label(
                egui::Color32::from_rgb(80, 180, 100),
                "Responses are the same (after ignore rules).",
            );
        }
        Ok(d) => {
            let headline = verdicts.map_or_else(|| d.summary(), |v| v.headline.clone());
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("Differences: {}", plain_arrows(&headline)),
            );
            if let Some(s) = d.status.filter(|s| !s.ignored) {
                line(
                    ui,
                    "status",
                    format!("status: {} -> {}", s.primary, s.shadow),
                );
            }
            for h in d.headers.iter().filter(|h| !h.ignored) {
                line(
                    ui,
                    &format!("header:{}", h.name),
                    format!(
                        "header {} {}: {:?} -> {:?}",
                        h.name,
                        h.kind.as_str(),
                        h.primary,
                        h.shadow
                    ),
                );
            }
            if let BodyComparison::Json { differences } = &d.body.comparison {
                for j in differences.iter().filter(|j| !j.ignored).take(50) {
                    let (place, field) = if j.pointer.is_empty() {
                        ("/", "body")
                    } else {
                        (j.pointer.as_str(), j.field.as_str())
                    };
                    line(
                        ui,
                        field,
                        format!(
                            "body {place} {}: {} -> {}",
                            j.kind.as_str(),
                            shown_value(&j.primary),
                            shown_value(&j.shadow)
                        ),
                    );
                }
            }
            if d.body.truncated {
                ui.weak("A body was cut at the capture cap; only the captured part was compared.");
            }
        }
    }
}

fn response_head_ui(ui: &mut egui::Ui, outcome: &UpstreamOutcome, changed: &[String]) {
    match outcome {
        UpstreamOutcome::Response(r) => {
            let version = match r.version {
                http::Version::HTTP_2 => " over HTTP/2",
                _ => "",
            };
            ui.label(format!("{} in {:.1} ms{version}", r.status, ms(r.total)));
            if let Some(code) = r.grpc_status().filter(|code| *code != 0) {
                ui.colored_label(ui.visuals().error_fg_color, format!("gRPC status {code}"));
            }
            headers_ui(ui, &r.headers, changed);
            if let Some(trailers) = &r.trailers {
                ui.weak("trailers");
                headers_ui(ui, trailers, changed);
            }
        }
        UpstreamOutcome::Failed(f) => {
            ui.colored_label(
                ui.visuals().error_fg_color,
                format!(
                    "failed ({}) after {:.1} ms: {}",
                    f.kind.as_str(),
                    ms(f.elapsed),
                    f.detail
                ),
            );
        }
    }
}

fn headers_ui(ui: &mut egui::Ui, headers: &http::HeaderMap, changed: &[String]) {
    for (name, value) in headers {
        let text = format!("{}: {}", name, String::from_utf8_lossy(value.as_bytes()));
        if changed.iter().any(|c| c == name.as_str()) {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                egui::RichText::new(text).monospace(),
            );
        } else {
            ui.monospace(text);
        }
    }
}

/// The request as a curl command line: through the proxy at `proxy` when given (with the
/// original Host header), else straight to the host.
pub fn curl_command(e: &Exchange, proxy: Option<&str>) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut parts = vec!["curl".to_owned(), "-sS".to_owned()];
    if e.request.method != http::Method::GET {
        parts.push(format!("-X {}", e.request.method));
    }
    for (name, value) in &e.request.headers {
        if name == http::header::CONTENT_LENGTH {
            continue;
        }
        let header = format!("{}: {}", name, String::from_utf8_lossy(value.as_bytes()));
        parts.push(format!("-H {}", quote(&header)));
    }
    if !e.request.body.bytes.is_empty() {
        let body = String::from_utf8_lossy(&e.request.body.bytes);
        parts.push(format!("--data-binary {}", quote(&body)));
    }
    let has_host = e.request.headers.contains_key(http::header::HOST);
    match proxy {
        Some(proxy) => {
            if !has_host {
                parts.push(format!(
                    "-H {}",
                    quote(&format!("host: {}", e.request.authority))
                ));
            }
            parts.push(quote(&format!("http://{proxy}{}", e.request.uri)));
        }
        None => parts.push(quote(&format!(
            "http://{}{}",
            e.request.authority, e.request.uri
        ))),
    }
    parts.join(" ")
}
