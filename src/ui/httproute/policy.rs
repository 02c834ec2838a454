//! A rule's upstream policy in the HTTPRoute form: `timeouts` (request, backendRequest) and
//! `retry` (attempts, codes, backoff), written as Istio reads them (conversion.go: with a
//! retry, backendRequest is the per-try timeout; without one it replaces `request`).

use crate::config::gateway::model::{HttpRouteRetry, HttpRouteRule, HttpRouteTimeouts};

use super::super::form::{self, Diags, key_path};

/// Istio's attempts when a `retry` names none (conversion.go `ptr.OrDefault(attempts, 2)`).
const ISTIO_DEFAULT_ATTEMPTS: u32 = 2;

/// The rule's `timeouts`; true when it changed. Both fields empty: no `timeouts`.
pub(super) fn timeouts_ui(
    ui: &mut egui::Ui,
    rule: &mut HttpRouteRule,
    path: &str,
    diags: &Diags,
) -> bool {
    let mut changed = false;
    let (mut request, mut backend) = rule.timeouts.as_ref().map_or((None, None), |t| {
        (t.request.clone(), t.backend_request.clone())
    });
    ui.horizontal(|ui| {
        changed |= form::optional_text_field(ui, "request timeout", &mut request, 70.0);
        changed |= form::optional_text_field(ui, "backend request timeout", &mut backend, 70.0);
        ui.weak("e.g. 2s or 500ms (h, m, s, ms). Empty: none.");
    });
    if changed {
        let any = request.is_some() || backend.is_some();
        rule.timeouts = any.then_some(HttpRouteTimeouts {
            request,
            backend_request: backend,
        });
    }
    if rule
        .timeouts
        .as_ref()
        .is_some_and(|t| t.backend_request.is_some())
    {
        ui.weak(if rule.retry.is_some() {
            "backend request: the timeout of each try (Istio's perTryTimeout under the retry)"
        } else {
            "backend request: with no retry, Istio makes it the route's timeout in place of request"
        });
    }
    diags.under_ui(ui, &key_path(path, "timeouts"));
    changed
}

/// The rule's `retry` (experimental channel); true when it changed.
pub(super) fn retry_ui(
    ui: &mut egui::Ui,
    rule: &mut HttpRouteRule,
    path: &str,
    diags: &Diags,
) -> bool {
    let mut on = rule.retry.is_some();
    let mut changed = false;
    ui.horizontal(|ui| {
        if ui.checkbox(&mut on, "retry").changed() {
            rule.retry = on.then(HttpRouteRetry::default);
            changed = true;
        }
        ui.weak(if on {
            "connection errors always; the codes below too (Gateway API's experimental channel)"
        } else {
            "not set: Istio's default policy (2 retries on connection errors, none on a status)"
        });
    });
    let Some(retry) = rule.retry.as_mut() else {
        diags.under_ui(ui, &key_path(path, "retry"));
        return changed;
    };
    ui.horizontal(|ui| {
        changed |= form::optional_u32_field(
            ui,
            "retry attempts",
            &mut retry.attempts,
            ISTIO_DEFAULT_ATTEMPTS,
            0..=100,
        );
        changed |= form::optional_text_field(ui, "retry backoff", &mut retry.backoff, 60.0);
    });
    changed |= codes_ui(ui, &mut retry.codes);
    diags.under_ui(ui, &key_path(path, "retry"));
    changed
}

/// One number per retried status code (the CRD allows 400 to 599).
fn codes_ui(ui: &mut egui::Ui, codes: &mut Vec<u32>) -> bool {
    let mut changed = false;
    let mut remove = None;
    ui.horizontal_wrapped(|ui| {
        for (k, code) in codes.iter_mut().enumerate() {
            let label = format!("retry code {k}");
            let l = ui.label(&label);
            changed |= ui
                .add(egui::DragValue::new(code).range(400..=599))
                .labelled_by(l.id)
                .changed();
            if ui
                .small_button("x")
                .on_hover_text(format!("Remove {label}"))
                .clicked()
            {
                remove = Some(k);
            }
        }
        if ui.small_button("Add retry code").clicked() {
            codes.push(503);
            changed = true;
        }
    });
    if let Some(k) = remove {
        codes.remove(k);
        changed = true;
    }
    changed
}
