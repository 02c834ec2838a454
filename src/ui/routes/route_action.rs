//! What a route does with a request it matches: forward it to weighted destinations,
//! redirect it, answer it directly, or delegate it to another VirtualService. Istio takes
//! one of these per route, so the form offers them as a choice and switching clears what the
//! new action cannot go with (a redirect or direct response takes no `route`, `fault`,
//! `rewrite` or mirror), keeping the YAML one Istio accepts.

use crate::config::model::{
    Delegate, Destination, HttpBody, HttpDirectResponse, HttpRedirect, HttpRoute,
    HttpRouteDestination,
};

use super::super::form::{self, Diags, key_path};

/// The action a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RouteAction {
    /// `route`: forward to weighted destinations.
    Forward,
    /// `redirect`: the sidecar answers 301 (or the code set) with a new location.
    Redirect,
    /// `directResponse`: the sidecar answers with a fixed status and body.
    DirectResponse,
    /// `delegate`: the routes of another VirtualService take over.
    Delegate,
}

impl RouteAction {
    /// The action a route takes as written (a redirect wins, as in Istio's translation).
    pub(super) fn of(route: &HttpRoute) -> Self {
        if route.redirect.is_some() {
            RouteAction::Redirect
        } else if route.direct_response.is_some() {
            RouteAction::DirectResponse
        } else if route.delegate.is_some() {
            RouteAction::Delegate
        } else {
            RouteAction::Forward
        }
    }

    fn name(self) -> &'static str {
        match self {
            RouteAction::Forward => "forward",
            RouteAction::Redirect => "redirect",
            RouteAction::DirectResponse => "direct response",
            RouteAction::Delegate => "delegate",
        }
    }
}

/// The action picker; returns true when the route changed.
pub(super) fn action_picker_ui(
    ui: &mut egui::Ui,
    route: &mut HttpRoute,
    default_host: &str,
    path: &str,
    diags: &Diags,
) -> bool {
    let action = RouteAction::of(route);
    let mut picked = action;
    ui.horizontal(|ui| {
        ui.strong("Action");
        for a in [
            RouteAction::Forward,
            RouteAction::Redirect,
            RouteAction::DirectResponse,
            RouteAction::Delegate,
        ] {
            ui.radio_value(&mut picked, a, a.name())
                .on_hover_text(action_hint(a));
        }
    });
    diags.exact_ui(ui, &key_path(path, "route"));
    if picked == action {
        return false;
    }
    switch_action(route, picked, default_host);
    true
}

fn action_hint(a: RouteAction) -> &'static str {
    match a {
        RouteAction::Forward => "Send the request to the route's weighted destinations",
        RouteAction::Redirect => "The sidecar answers with a redirect; nothing is forwarded",
        RouteAction::DirectResponse => {
            "The sidecar answers with a fixed status and body; nothing is forwarded"
        }
        RouteAction::Delegate => "Another VirtualService (without hosts) holds the routes",
    }
}

/// Makes `route` take `to`, dropping what cannot go with it.
fn switch_action(route: &mut HttpRoute, to: RouteAction, default_host: &str) {
    route.redirect = None;
    route.direct_response = None;
    route.delegate = None;
    if to != RouteAction::Forward {
        route.route.clear();
    }
    if matches!(to, RouteAction::Redirect | RouteAction::DirectResponse) {
        // validate/route.rs refuses these beside a redirect or direct response, and a
        // local answer has nothing to mirror.
        route.fault = None;
        route.rewrite = None;
        route.mirror = None;
        route.mirror_percentage = None;
        route.mirrors.clear();
    }
    match to {
        RouteAction::Forward => {
            if route.route.is_empty() {
                route.route.push(HttpRouteDestination {
                    destination: Destination {
                        host: default_host.to_owned(),
                        ..Destination::default()
                    },
                    ..HttpRouteDestination::default()
                });
            }
        }
        RouteAction::Redirect => {
            route.redirect = Some(HttpRedirect {
                uri: Some("/".to_owned()),
                ..HttpRedirect::default()
            });
        }
        RouteAction::DirectResponse => {
            route.direct_response = Some(HttpDirectResponse {
                status: 200,
                body: None,
            });
        }
        RouteAction::Delegate => {
            route.delegate = Some(Delegate {
                name: Some(String::new()),
                namespace: None,
            });
        }
    }
}

/// The form of a redirect.
pub(super) fn redirect_ui(
    ui: &mut egui::Ui,
    redirect: &mut HttpRedirect,
    path: &str,
    diags: &Diags,
) -> bool {
    let path = key_path(path, "redirect");
    let mut changed = false;
    ui.horizontal_wrapped(|ui| {
        changed |= form::optional_text_field(ui, "redirect uri", &mut redirect.uri, 160.0);
        changed |=
            form::optional_text_field(ui, "prefixRewrite", &mut redirect.prefix_rewrite, 120.0);
        ui.weak("uri replaces the whole path, prefixRewrite the matched prefix");
    });
    diags.under_ui(ui, &key_path(&path, "uri"));
    diags.under_ui(ui, &key_path(&path, "prefixRewrite"));
    ui.horizontal_wrapped(|ui| {
        changed |=
            form::optional_text_field(ui, "redirect authority", &mut redirect.authority, 160.0);
        changed |= form::optional_text_field(ui, "scheme", &mut redirect.scheme, 60.0);
        changed |=
            form::optional_u32_field(ui, "redirect port", &mut redirect.port, 443, 1..=65535);
        changed |= derive_port_ui(ui, &mut redirect.derive_port);
    });
    ui.horizontal_wrapped(|ui| {
        changed |= form::optional_u32_field(
            ui,
            "redirectCode",
            &mut redirect.redirect_code,
            302,
            300..=399,
        );
        if redirect.redirect_code.is_none() {
            ui.weak("not set: 301");
        }
    });
    diags.under_ui(ui, &path);
    changed
}

/// `derivePort`: unset, `FROM_PROTOCOL_DEFAULT` or `FROM_REQUEST_PORT`.
fn derive_port_ui(ui: &mut egui::Ui, value: &mut Option<String>) -> bool {
    let before = value.clone();
    let l = ui.label("derivePort");
    egui::ComboBox::from_id_salt(ui.next_auto_id())
        .selected_text(value.as_deref().unwrap_or("(not set)"))
        .show_ui(ui, |ui| {
            ui.selectable_value(value, None, "(not set)");
            for v in ["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"] {
                ui.selectable_value(value, Some(v.to_owned()), v);
            }
        })
        .response
        .labelled_by(l.id);
    *value != before
}

/// The form of a direct response: status and a string body.
pub(super) fn direct_response_ui(
    ui: &mut egui::Ui,
    answer: &mut HttpDirectResponse,
    path: &str,
    diags: &Diags,
) -> bool {
    let path = key_path(path, "directResponse");
    let mut changed = false;
    ui.horizontal(|ui| {
        let l = ui.label("direct response status");
        changed |= ui
            .add(egui::DragValue::new(&mut answer.status).range(200..=599))
            .labelled_by(l.id)
            .changed();
    });
    diags.under_ui(ui, &key_path(&path, "status"));
    if answer
        .body
        .as_ref()
        .is_some_and(|b| b.bytes.is_some() && b.string.is_none())
    {
        ui.weak("The body is given as base64 bytes; edit it in the YAML tab.");
    } else {
        let mut text = answer
            .body
            .as_ref()
            .and_then(|b| b.string.clone())
            .unwrap_or_default();
        ui.horizontal(|ui| {
            let l = ui.label("direct response body");
            if ui
                .add(
                    egui::TextEdit::multiline(&mut text)
                        .desired_rows(2)
                        .desired_width(360.0),
                )
                .labelled_by(l.id)
                .changed()
            {
                answer.body = (!text.is_empty()).then_some(HttpBody {
                    string: Some(text),
                    bytes: None,
                });
                changed = true;
            }
        });
    }
    diags.under_ui(ui, &path);
    changed
}

/// The form of a delegate: the VirtualService's name and namespace.
pub(super) fn delegate_ui(
    ui: &mut egui::Ui,
    delegate: &mut Delegate,
    path: &str,
    diags: &Diags,
) -> bool {
    let path = key_path(path, "delegate");
    let mut changed = false;
    ui.horizontal_wrapped(|ui| {
        changed |= form::optional_text_field(ui, "delegate name", &mut delegate.name, 160.0);
        changed |=
            form::optional_text_field(ui, "delegate namespace", &mut delegate.namespace, 120.0);
        ui.weak("namespace empty: this VirtualService's own");
    });
    diags.under_ui(ui, &path);
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_drops_what_istio_refuses_beside_it_and_forward_brings_a_destination() {
        let mut route = HttpRoute {
            route: vec![HttpRouteDestination::default()],
            fault: Some(Default::default()),
            rewrite: Some(Default::default()),
            mirror: Some(Destination::default()),
            ..HttpRoute::default()
        };
        switch_action(&mut route, RouteAction::Redirect, "reviews");
        assert_eq!(RouteAction::of(&route), RouteAction::Redirect);
        assert!(route.route.is_empty() && route.fault.is_none() && route.rewrite.is_none());
        assert!(route.mirror.is_none());
        switch_action(&mut route, RouteAction::Forward, "reviews");
        assert_eq!(RouteAction::of(&route), RouteAction::Forward);
        assert!(route.redirect.is_none());
        assert_eq!(route.route[0].destination.host, "reviews");
    }
}
