//! What a route changes on the way: `rewrite`, `headers` (at route and destination level),
//! `fault` and `corsPolicy`. Each group has a checkbox that adds or removes it, and a group
//! whose every field is cleared leaves the YAML, so the form never writes `fault: {}`.

use crate::config::model::{
    CorsPolicy, FaultAbort, FaultDelay, HeaderOperations, Headers, HttpFaultInjection, HttpRewrite,
    Percent, RegexRewrite, StringMatch,
};

use super::super::form::{self, Diags, index_path, key_path};
use super::super::policy_form::{edit_optional, optional_bool_ui};
use super::widgets::{percentage_option_ui, string_list_ui};

/// A checkbox that adds `value` (as `seed`) or removes it; true when it changed.
fn group_toggle<T>(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut Option<T>,
    hint: &str,
    seed: impl FnOnce() -> T,
) -> bool {
    let mut on = value.is_some();
    let changed = ui.checkbox(&mut on, label).on_hover_text(hint).changed();
    if changed {
        *value = on.then(seed);
    }
    changed
}

/// The route's `rewrite`: uri, uriRegexRewrite and authority.
pub(super) fn rewrite_ui(
    ui: &mut egui::Ui,
    rewrite: &mut Option<HttpRewrite>,
    path: &str,
    diags: &Diags,
) -> bool {
    let path = key_path(path, "rewrite");
    let mut changed = group_toggle(
        ui,
        "rewrite",
        rewrite,
        "Rewrite the path or authority before forwarding (the mirrors get it too)",
        || HttpRewrite {
            uri: Some("/".to_owned()),
            ..HttpRewrite::default()
        },
    );
    if rewrite.is_some() {
        ui.indent(("rewrite", &path), |ui| {
            changed |= edit_optional(rewrite, |r| rewrite_fields_ui(ui, r, &path, diags));
        });
    }
    diags.under_ui(ui, &path);
    changed
}

fn rewrite_fields_ui(ui: &mut egui::Ui, r: &mut HttpRewrite, path: &str, diags: &Diags) -> bool {
    let mut changed = false;
    ui.horizontal_wrapped(|ui| {
        changed |= form::optional_text_field(ui, "rewrite uri", &mut r.uri, 160.0);
        ui.weak("replaces the matched prefix, or the whole path after an exact match");
    });
    diags.under_ui(ui, &key_path(path, "uri"));
    ui.horizontal_wrapped(|ui| {
        changed |= edit_optional(&mut r.uri_regex_rewrite, |rx: &mut RegexRewrite| {
            let mut c =
                form::optional_text_field(ui, "uriRegexRewrite match", &mut rx.regex, 160.0);
            c |= form::optional_text_field(ui, "rewrite to", &mut rx.rewrite, 140.0);
            c
        });
        ui.weak(r"RE2 over the path; \1 in the rewrite is the first group");
    });
    diags.under_ui(ui, &key_path(path, "uriRegexRewrite"));
    ui.horizontal_wrapped(|ui| {
        changed |= form::optional_text_field(ui, "rewrite authority", &mut r.authority, 160.0);
        ui.weak("the Host the upstream sees");
    });
    diags.under_ui(ui, &key_path(path, "authority"));
    changed
}

/// `headers` at route or destination level: request and response, each set, add, remove.
pub(super) fn headers_ui(
    ui: &mut egui::Ui,
    label: &str,
    headers: &mut Option<Headers>,
    path: &str,
    diags: &Diags,
) -> bool {
    let path = key_path(path, "headers");
    // Open with nothing in it yet is the form's state, not the YAML's: `headers: {}` is
    // never written.
    let open_id = ui.scope_id().with(("headers open", &path));
    let mut open = headers.is_some() || ui.data(|d| d.get_temp(open_id).unwrap_or(false));
    let mut changed = false;
    if ui
        .checkbox(&mut open, label)
        .on_hover_text(
            "Set, add or remove request headers (before forwarding) and response headers",
        )
        .changed()
        && !open
        && headers.take().is_some()
    {
        changed = true;
    }
    ui.data_mut(|d| d.insert_temp(open_id, open));
    if open {
        ui.indent(("headers", &path), |ui| {
            changed |= edit_optional(headers, |h| {
                let mut c = false;
                for (side, ops) in [("request", &mut h.request), ("response", &mut h.response)] {
                    let side_path = key_path(&path, side);
                    c |= header_operations_ui(
                        ui,
                        &format!("{label} {side}"),
                        ops,
                        &side_path,
                        diags,
                    );
                }
                c
            });
        });
    }
    diags.under_ui(ui, &path);
    changed
}

fn header_operations_ui(
    ui: &mut egui::Ui,
    label: &str,
    ops: &mut Option<HeaderOperations>,
    path: &str,
    diags: &Diags,
) -> bool {
    let mut value = ops.clone().unwrap_or_default();
    ui.label(egui::RichText::new(label).strong());
    let mut changed = false;
    ui.indent((label, path), |ui| {
        ui.label("set (replaces)");
        changed |= form::string_rows_ui(
            ui,
            &format!("{label} set"),
            &mut value.set,
            &key_path(path, "set"),
            diags,
            "x-header",
        );
        ui.label("add (appends)");
        changed |= form::string_rows_ui(
            ui,
            &format!("{label} add"),
            &mut value.add,
            &key_path(path, "add"),
            diags,
            "x-header",
        );
        changed |= string_list_ui(
            ui,
            "remove",
            &format!("{label} remove"),
            &mut value.remove,
            &key_path(path, "remove"),
            diags,
            "x-header",
        );
    });
    if changed {
        *ops = (value != HeaderOperations::default()).then_some(value);
    }
    changed
}

/// The route's `fault`: a delay and an abort, each with its percentage.
pub(super) fn fault_ui(
    ui: &mut egui::Ui,
    fault: &mut Option<HttpFaultInjection>,
    path: &str,
    diags: &Diags,
) -> bool {
    let path = key_path(path, "fault");
    let mut changed = false;
    ui.horizontal(|ui| {
        ui.strong("Fault injection");
        changed |= edit_optional(fault, |f| {
            let mut c = group_toggle(
                ui,
                "fault delay",
                &mut f.delay,
                "Hold requests before forwarding",
                || FaultDelay {
                    fixed_delay: Some("1s".to_owned()),
                    percentage: Some(Percent { value: 100.0 }),
                    ..FaultDelay::default()
                },
            );
            c |= group_toggle(
                ui,
                "fault abort",
                &mut f.abort,
                "Answer requests with an error instead of forwarding them",
                || FaultAbort {
                    http_status: Some(503),
                    percentage: Some(Percent { value: 100.0 }),
                    ..FaultAbort::default()
                },
            );
            c
        });
    });
    let Some(f) = fault else {
        diags.under_ui(ui, &path);
        return changed;
    };
    ui.indent(("fault", &path), |ui| {
        if let Some(delay) = &mut f.delay {
            let dpath = key_path(&path, "delay");
            ui.horizontal_wrapped(|ui| {
                changed |=
                    form::optional_text_field(ui, "fixedDelay", &mut delay.fixed_delay, 60.0);
                ui.weak("e.g. 5s or 500ms");
            });
            changed |= percentage_option_ui(ui, "delay percentage", &mut delay.percentage);
            diags.under_ui(ui, &dpath);
        }
        if let Some(abort) = &mut f.abort {
            let apath = key_path(&path, "abort");
            ui.horizontal_wrapped(|ui| {
                changed |= form::optional_number_field(
                    ui,
                    "httpStatus",
                    &mut abort.http_status,
                    503,
                    200..=599,
                );
                changed |=
                    form::optional_text_field(ui, "grpcStatus", &mut abort.grpc_status, 110.0);
                ui.weak("e.g. UNAVAILABLE; one of httpStatus or grpcStatus");
            });
            changed |= percentage_option_ui(ui, "abort percentage", &mut abort.percentage);
            diags.under_ui(ui, &apath);
        }
    });
    diags.under_ui(ui, &path);
    changed
}

/// The route's `corsPolicy`.
pub(super) fn cors_ui(
    ui: &mut egui::Ui,
    cors: &mut Option<CorsPolicy>,
    path: &str,
    diags: &Diags,
) -> bool {
    let path = key_path(path, "corsPolicy");
    let mut changed = group_toggle(
        ui,
        "corsPolicy",
        cors,
        "Answer CORS preflights and add the CORS headers to answers for allowed origins",
        || CorsPolicy {
            allow_origins: vec![StringMatch {
                exact: Some("https://example.com".to_owned()),
                ..StringMatch::default()
            }],
            allow_methods: vec!["GET".to_owned()],
            ..CorsPolicy::default()
        },
    );
    if cors.is_some() {
        ui.indent(("cors", &path), |ui| {
            changed |= edit_optional(cors, |c| cors_fields_ui(ui, c, &path, diags));
        });
    }
    diags.under_ui(ui, &path);
    changed
}

fn cors_fields_ui(ui: &mut egui::Ui, c: &mut CorsPolicy, path: &str, diags: &Diags) -> bool {
    let mut changed = origins_ui(
        ui,
        &mut c.allow_origins,
        &key_path(path, "allowOrigins"),
        diags,
    );
    if !c.allow_origin.is_empty() {
        ui.weak(format!(
            "allowOrigin (deprecated, exact): {}; edit it in the YAML tab",
            c.allow_origin.join(", ")
        ));
    }
    for (label, list, key) in [
        ("allowMethods", &mut c.allow_methods, "allowMethods"),
        ("allowHeaders", &mut c.allow_headers, "allowHeaders"),
        ("exposeHeaders", &mut c.expose_headers, "exposeHeaders"),
    ] {
        let seed = if key == "allowMethods" {
            "GET"
        } else {
            "x-header"
        };
        changed |= string_list_ui(ui, label, label, list, &key_path(path, key), diags, seed);
    }
    ui.horizontal_wrapped(|ui| {
        changed |= form::optional_text_field(ui, "maxAge", &mut c.max_age, 60.0);
        ui.weak("how long a browser caches the preflight, e.g. 24h");
    });
    diags.under_ui(ui, &key_path(path, "maxAge"));
    ui.horizontal(|ui| {
        changed |= optional_bool_ui(
            ui,
            "allowCredentials",
            &mut c.allow_credentials,
            "(not set)",
        );
    });
    diags.under_ui(ui, &key_path(path, "allowCredentials"));
    changed
}

/// `allowOrigins`: string matches, each with its kind.
fn origins_ui(
    ui: &mut egui::Ui,
    origins: &mut Vec<StringMatch>,
    path: &str,
    diags: &Diags,
) -> bool {
    let mut changed = false;
    let mut remove = None;
    ui.label("allowOrigins");
    for (i, origin) in origins.iter_mut().enumerate() {
        let opath = index_path("", path, i);
        ui.horizontal(|ui| {
            ui.add_space(12.0);
            let mut m = Some(origin.clone());
            if form::string_match_ui(ui, &format!("origin {}", i + 1), &mut m, &opath, diags) {
                *origin = m.unwrap_or_default();
                changed = true;
            }
            if ui
                .small_button("Remove")
                .on_hover_text("Remove this origin")
                .clicked()
            {
                remove = Some(i);
            }
        });
    }
    if let Some(i) = remove {
        origins.remove(i);
        changed = true;
    }
    ui.horizontal(|ui| {
        ui.add_space(12.0);
        if ui.small_button("Add origin").clicked() {
            origins.push(StringMatch {
                exact: Some(String::new()),
                ..StringMatch::default()
            });
            changed = true;
        }
    });
    diags.exact_ui(ui, path);
    changed
}
