//! Forms for the upstream policy: a route's `retries` and a DestinationRule's
//! `trafficPolicy` (load balancer, connection pool, outlier detection), each group with its
//! diagnostics beside it. A group whose every field is cleared leaves the YAML, so the form
//! never writes `connectionPool: {}`; what the form does not edit (TLS, per-port settings,
//! tunnel, ...) is kept as written and named, so it is never passed over in silence.

use crate::config::model::{HttpRetry, LoadBalancerSettings, TrafficPolicy};
use crate::config::policy::{
    ConnectionPoolSettings, ConsistentHash, HttpCookie, HttpSettings, Maglev, OutlierDetection,
    RingHash, TcpSettings,
};
use crate::config::retry_on::RetryOn;

use super::form::{self, Diags, key_path};

/// Istio's retry conditions when a route sets no `retries` (`retry.go` `DefaultPolicy`).
const ISTIO_DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// Edits `opt` through a default value when it is absent; it stays absent (or becomes so)
/// when the edit leaves every field unset.
pub(super) fn edit_optional<T: Default + Clone + PartialEq>(
    opt: &mut Option<T>,
    edit: impl FnOnce(&mut T) -> bool,
) -> bool {
    let mut value = opt.clone().unwrap_or_default();
    let changed = edit(&mut value);
    if changed {
        *opt = (value != T::default()).then_some(value);
    }
    changed
}

/// An optional bool as a three-way choice: unset (the default), true, false.
pub(super) fn optional_bool_ui(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut Option<bool>,
    unset: &str,
) -> bool {
    let shown = match value {
        None => unset.to_owned(),
        Some(b) => b.to_string(),
    };
    let before = *value;
    let l = ui.label(label);
    egui::ComboBox::from_id_salt((label, ui.next_auto_id()))
        .selected_text(shown)
        .show_ui(ui, |ui| {
            ui.selectable_value(value, None, unset);
            ui.selectable_value(value, Some(true), "true");
            ui.selectable_value(value, Some(false), "false");
        })
        .response
        .labelled_by(l.id);
    *value != before
}

/// A duration field with its hint.
fn duration_field(ui: &mut egui::Ui, label: &str, value: &mut Option<String>, hint: &str) -> bool {
    let changed = form::optional_text_field(ui, label, value, 60.0);
    ui.weak(hint);
    changed
}

/// The route's `retries`: unset means Istio's default policy, which the form says.
pub fn retries_ui(
    ui: &mut egui::Ui,
    retries: &mut Option<HttpRetry>,
    path: &str,
    diags: &Diags,
) -> bool {
    let path = key_path(path, "retries");
    let mut changed = false;
    ui.horizontal_wrapped(|ui| {
        let mut on = retries.is_some();
        if ui
            .checkbox(&mut on, "retries")
            .on_hover_text("Set this route's retry policy; unset, Istio's default applies")
            .changed()
        {
            // Turned on, the form starts from what Istio would do anyway.
            *retries = on.then(|| HttpRetry {
                attempts: Some(2),
                retry_on: Some(ISTIO_DEFAULT_RETRY_ON.to_owned()),
                ..HttpRetry::default()
            });
            changed = true;
        }
        if retries.is_none() {
            ui.weak(
                "not set: Istio's default, 2 retries on connect-failure, refused-stream, \
                 unavailable, cancelled and retriable-status-codes, each on another endpoint",
            );
        }
    });
    let Some(r) = retries else {
        diags.under_ui(ui, &path);
        return changed;
    };
    ui.indent(("retries", &path), |ui| {
        ui.horizontal_wrapped(|ui| {
            changed |= form::optional_number_field(ui, "attempts", &mut r.attempts, 2, 0..=100);
            ui.weak("retries after the first try; 0 disables retries");
        });
        ui.horizontal_wrapped(|ui| {
            changed |= duration_field(
                ui,
                "perTryTimeout",
                &mut r.per_try_timeout,
                "each attempt's deadline (504 UT when it passes); empty: the route's timeout",
            );
        });
        ui.horizontal_wrapped(|ui| {
            changed |= form::optional_text_field(ui, "retryOn", &mut r.retry_on, 460.0);
            ui.menu_button("Add condition", |ui| {
                for name in RetryOn::all_names() {
                    if ui.button(name).clicked() {
                        let mut list = r.retry_on.clone().unwrap_or_default();
                        if !list.split(',').any(|c| c.trim() == name) {
                            if !list.is_empty() {
                                list.push(',');
                            }
                            list.push_str(name);
                            r.retry_on = Some(list);
                            changed = true;
                        }
                        ui.close();
                    }
                }
            });
        });
        ui.weak("Envoy's conditions and bare status codes (503), comma-separated");
        ui.horizontal_wrapped(|ui| {
            changed |= duration_field(
                ui,
                "backoff",
                &mut r.backoff,
                "base interval of Envoy's jittered back-off (25ms when empty)",
            );
        });
        ui.horizontal_wrapped(|ui| {
            changed |= optional_bool_ui(
                ui,
                "retryIgnorePreviousHosts",
                &mut r.retry_ignore_previous_hosts,
                "default (true)",
            );
            changed |= optional_bool_ui(
                ui,
                "retryRemoteLocalities",
                &mut r.retry_remote_localities,
                "default (false)",
            );
            ui.weak("localities are not simulated: the lab has one");
        });
    });
    diags.under_ui(ui, &path);
    changed
}

/// A DestinationRule's (or a subset's) `trafficPolicy` at `path`, under the heading `title`.
pub fn traffic_policy_ui(
    ui: &mut egui::Ui,
    title: &str,
    policy: &mut Option<TrafficPolicy>,
    path: &str,
    diags: &Diags,
) -> bool {
    let path = key_path(path, "trafficPolicy");
    let title = match policy {
        Some(_) => title.to_owned(),
        None => format!("{title} (none: Istio's defaults)"),
    };
    let open = policy.is_some() || diags.any_under(&path);
    let mut changed = false;
    egui::CollapsingHeader::new(title)
        .id_salt(("traffic-policy", &path))
        .default_open(open)
        .show(ui, |ui| {
            changed = edit_optional(policy, |tp| {
                let mut changed = false;
                changed |= edit_optional(&mut tp.load_balancer, |lb| {
                    load_balancer_ui(ui, lb, &key_path(&path, "loadBalancer"), diags)
                });
                changed |= edit_optional(&mut tp.connection_pool, |cp| {
                    connection_pool_ui(ui, cp, &key_path(&path, "connectionPool"), diags)
                });
                changed |= edit_optional(&mut tp.outlier_detection, |od| {
                    outlier_ui(ui, od, &key_path(&path, "outlierDetection"), diags)
                });
                kept_ui(ui, tp);
                changed
            });
            diags.under_ui(ui, &path);
        });
    changed
}

/// Names the parts of the policy the form leaves to the YAML tab.
fn kept_ui(ui: &mut egui::Ui, tp: &TrafficPolicy) {
    let mut kept = Vec::new();
    if tp.tls.is_some() {
        kept.push("tls".to_owned());
    }
    if !tp.port_level_settings.is_empty() {
        kept.push(format!(
            "portLevelSettings ({})",
            tp.port_level_settings.len()
        ));
    }
    for (name, set) in [
        ("tunnel", tp.tunnel.is_some()),
        ("proxyProtocol", tp.proxy_protocol.is_some()),
        ("retryBudget", tp.retry_budget.is_some()),
    ] {
        if set {
            kept.push(name.to_owned());
        }
    }
    if !kept.is_empty() {
        ui.weak(format!(
            "Also set, kept as written (edit in the YAML tab): {}",
            kept.join(", ")
        ));
    }
}

/// The load balancer choices: `simple` or a consistent hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Balancer {
    Default,
    Simple(&'static str),
    ConsistentHash,
}

const SIMPLE: [&str; 4] = ["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "PASSTHROUGH"];

impl Balancer {
    fn of(lb: &LoadBalancerSettings) -> Self {
        if lb.consistent_hash.is_some() {
            return Balancer::ConsistentHash;
        }
        match lb.simple.as_deref() {
            None => Balancer::Default,
            Some(s) => SIMPLE
                .iter()
                .find(|n| **n == s)
                .map_or(Balancer::Default, |n| Balancer::Simple(n)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Balancer::Default => "not set (LEAST_REQUEST, Istio's default)",
            Balancer::Simple(n) => n,
            Balancer::ConsistentHash => "consistent hash",
        }
    }
}

fn load_balancer_ui(
    ui: &mut egui::Ui,
    lb: &mut LoadBalancerSettings,
    path: &str,
    diags: &Diags,
) -> bool {
    let mut changed = false;
    ui.group(|ui| {
        ui.strong("Load balancer");
        let before = Balancer::of(lb);
        let mut choice = before;
        ui.horizontal(|ui| {
            let l = ui.label("loadBalancer");
            egui::ComboBox::from_id_salt(("lb", path))
                .selected_text(choice.name())
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut choice, Balancer::Default, Balancer::Default.name());
                    for n in SIMPLE {
                        ui.selectable_value(&mut choice, Balancer::Simple(n), n);
                    }
                    ui.selectable_value(
                        &mut choice,
                        Balancer::ConsistentHash,
                        Balancer::ConsistentHash.name(),
                    );
                })
                .response
                .labelled_by(l.id);
        });
        if choice != before {
            // `simple` and `consistentHash` are one of a kind (the schema's oneof).
            lb.simple = match choice {
                Balancer::Simple(n) => Some(n.to_owned()),
                _ => None,
            };
            lb.consistent_hash = (choice == Balancer::ConsistentHash).then(|| ConsistentHash {
                http_header_name: Some("x-user".to_owned()),
                ..ConsistentHash::default()
            });
            changed = true;
        }
        if let Some(hash) = &mut lb.consistent_hash {
            changed |= consistent_hash_ui(ui, hash, path);
        }
        if lb.warmup.is_some() || lb.warmup_duration_secs.is_some() {
            ui.weak("warmup: kept as written, not simulated (every endpoint gets its full share)");
        }
        if lb.locality_lb_setting.is_some() || lb.zone_aware_lb_setting.is_some() {
            ui.weak("locality settings: kept as written, not simulated (the lab has one locality)");
        }
        diags.under_ui(ui, path);
    });
    changed
}

/// What a consistent hash hashes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashKey {
    Header,
    Cookie,
    SourceIp,
    Query,
}

impl HashKey {
    const ALL: [HashKey; 4] = [
        HashKey::Header,
        HashKey::Cookie,
        HashKey::SourceIp,
        HashKey::Query,
    ];

    fn of(h: &ConsistentHash) -> Self {
        if h.http_cookie.is_some() {
            HashKey::Cookie
        } else if h.use_source_ip == Some(true) {
            HashKey::SourceIp
        } else if h.http_query_parameter_name.is_some() {
            HashKey::Query
        } else {
            HashKey::Header
        }
    }

    fn name(self) -> &'static str {
        match self {
            HashKey::Header => "httpHeaderName",
            HashKey::Cookie => "httpCookie",
            HashKey::SourceIp => "useSourceIp",
            HashKey::Query => "httpQueryParameterName",
        }
    }
}

fn consistent_hash_ui(ui: &mut egui::Ui, hash: &mut ConsistentHash, path: &str) -> bool {
    let mut changed = false;
    let before = HashKey::of(hash);
    let mut key = before;
    ui.horizontal(|ui| {
        let l = ui.label("hash on");
        egui::ComboBox::from_id_salt(("hash-key", path))
            .selected_text(key.name())
            .show_ui(ui, |ui| {
                for k in HashKey::ALL {
                    ui.selectable_value(&mut key, k, k.name());
                }
            })
            .response
            .labelled_by(l.id);
    });
    if key != before {
        hash.http_header_name = (key == HashKey::Header).then(|| "x-user".to_owned());
        hash.http_cookie = (key == HashKey::Cookie).then(|| HttpCookie {
            name: "session".to_owned(),
            ttl: Some("0s".to_owned()),
            ..HttpCookie::default()
        });
        hash.use_source_ip = (key == HashKey::SourceIp).then_some(true);
        hash.http_query_parameter_name = (key == HashKey::Query).then(|| "user".to_owned());
        changed = true;
    }
    ui.horizontal_wrapped(|ui| match key {
        HashKey::Header => {
            changed |= form::optional_text_field(ui, "header", &mut hash.http_header_name, 140.0);
        }
        HashKey::Query => {
            changed |= form::optional_text_field(
                ui,
                "query parameter",
                &mut hash.http_query_parameter_name,
                140.0,
            );
        }
        HashKey::SourceIp => {
            ui.weak("the client's address (127.0.0.1 for every local client)");
        }
        HashKey::Cookie => {
            if let Some(cookie) = &mut hash.http_cookie {
                changed |= form::text_field(ui, "cookie", &mut cookie.name, 100.0);
                changed |= form::optional_text_field(ui, "path", &mut cookie.path, 80.0);
                changed |= form::optional_text_field(ui, "ttl", &mut cookie.ttl, 50.0);
                ui.weak("with a ttl, the lab sets the cookie on the first answer, as Envoy does");
            }
        }
    });
    changed |= ring_ui(ui, hash, path);
    changed
}

/// Ring hash or Maglev, and the size of either.
fn ring_ui(ui: &mut egui::Ui, hash: &mut ConsistentHash, path: &str) -> bool {
    let mut changed = false;
    ui.horizontal_wrapped(|ui| {
        let before = hash.maglev.is_some();
        let mut maglev = before;
        let l = ui.label("hash table");
        egui::ComboBox::from_id_salt(("ring", path))
            .selected_text(if maglev { "maglev" } else { "ringHash" })
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut maglev, false, "ringHash");
                ui.selectable_value(&mut maglev, true, "maglev");
            })
            .response
            .labelled_by(l.id);
        if maglev != before {
            hash.maglev = maglev.then(Maglev::default);
            hash.ring_hash = None;
            changed = true;
        }
        if maglev {
            changed |= edit_optional(&mut hash.maglev, |m| {
                form::optional_number_field(
                    ui,
                    "tableSize",
                    &mut m.table_size,
                    65537,
                    1..=5_000_011,
                )
            });
        } else {
            changed |= edit_optional(&mut hash.ring_hash, |r: &mut RingHash| {
                form::optional_number_field(
                    ui,
                    "minimumRingSize",
                    &mut r.minimum_ring_size,
                    1024,
                    1..=8_388_608,
                )
            });
        }
    });
    changed
}

fn connection_pool_ui(
    ui: &mut egui::Ui,
    cp: &mut ConnectionPoolSettings,
    path: &str,
    diags: &Diags,
) -> bool {
    let mut changed = false;
    ui.group(|ui| {
        ui.strong("Connection pool (circuit breaking: an overflow is answered 503, flag UO)");
        changed |= edit_optional(&mut cp.tcp, |tcp: &mut TcpSettings| {
            let mut changed = false;
            ui.horizontal_wrapped(|ui| {
                changed |= form::optional_number_field(
                    ui,
                    "maxConnections",
                    &mut tcp.max_connections,
                    100,
                    1..=i32::MAX,
                );
                changed |=
                    form::optional_text_field(ui, "connectTimeout", &mut tcp.connect_timeout, 50.0);
                changed |=
                    form::optional_text_field(ui, "tcp idleTimeout", &mut tcp.idle_timeout, 50.0);
            });
            changed
        });
        changed |= edit_optional(&mut cp.http, |http: &mut HttpSettings| {
            http_pool_ui(ui, http)
        });
        ui.weak("Empty: no limit (Istio sets Envoy's thresholds to 2^32-1); connectTimeout 10s");
        diags.under_ui(ui, path);
    });
    changed
}

fn http_pool_ui(ui: &mut egui::Ui, http: &mut HttpSettings) -> bool {
    let mut changed = false;
    ui.horizontal_wrapped(|ui| {
        for (label, value, default) in [
            (
                "http1MaxPendingRequests",
                &mut http.http1_max_pending_requests,
                10,
            ),
            ("http2MaxRequests", &mut http.http2_max_requests, 100),
            (
                "maxRequestsPerConnection",
                &mut http.max_requests_per_connection,
                1,
            ),
            ("maxRetries", &mut http.max_retries, 3),
        ] {
            changed |= form::optional_number_field(ui, label, value, default, 1..=i32::MAX);
        }
        changed |= form::optional_text_field(ui, "http idleTimeout", &mut http.idle_timeout, 50.0);
    });
    changed
}

fn outlier_ui(ui: &mut egui::Ui, od: &mut OutlierDetection, path: &str, diags: &Diags) -> bool {
    let mut changed = false;
    ui.group(|ui| {
        ui.strong("Outlier detection (an endpoint that keeps failing is ejected for a while)");
        ui.horizontal_wrapped(|ui| {
            changed |= form::optional_number_field(
                ui,
                "consecutive5xxErrors",
                &mut od.consecutive_5xx_errors,
                5,
                0..=u32::MAX,
            );
            changed |= form::optional_number_field(
                ui,
                "consecutiveGatewayErrors",
                &mut od.consecutive_gateway_errors,
                5,
                0..=u32::MAX,
            );
        });
        ui.horizontal_wrapped(|ui| {
            changed |= form::optional_text_field(ui, "interval", &mut od.interval, 50.0);
            changed |=
                form::optional_text_field(ui, "baseEjectionTime", &mut od.base_ejection_time, 50.0);
        });
        ui.horizontal_wrapped(|ui| {
            changed |= form::optional_number_field(
                ui,
                "maxEjectionPercent",
                &mut od.max_ejection_percent,
                10,
                0..=100,
            );
            changed |= form::optional_number_field(
                ui,
                "minHealthPercent",
                &mut od.min_health_percent,
                0,
                0..=100,
            );
        });
        ui.weak("Empty: interval 10s, baseEjectionTime 30s, maxEjectionPercent 10");
        diags.under_ui(ui, path);
    });
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_cleared_of_every_field_leaves_the_policy() {
        let mut pool: Option<ConnectionPoolSettings> = None;
        assert!(edit_optional(&mut pool, |cp| {
            cp.tcp = Some(TcpSettings {
                max_connections: Some(1),
                ..TcpSettings::default()
            });
            true
        }));
        assert!(pool.is_some());
        assert!(edit_optional(&mut pool, |cp| {
            cp.tcp = None;
            true
        }));
        assert_eq!(pool, None, "no `connectionPool: {{}}` left behind");
    }

    #[test]
    fn the_balancer_choice_reads_back_from_the_model() {
        let lb = LoadBalancerSettings {
            simple: Some("ROUND_ROBIN".to_owned()),
            ..LoadBalancerSettings::default()
        };
        assert_eq!(Balancer::of(&lb), Balancer::Simple("ROUND_ROBIN"));
        let hashed = LoadBalancerSettings {
            consistent_hash: Some(ConsistentHash {
                http_cookie: Some(HttpCookie::default()),
                ..ConsistentHash::default()
            }),
            ..LoadBalancerSettings::default()
        };
        assert_eq!(Balancer::of(&hashed), Balancer::ConsistentHash);
        assert_eq!(
            HashKey::of(hashed.consistent_hash.as_ref().unwrap()),
            HashKey::Cookie
        );
        assert_eq!(
            Balancer::of(&LoadBalancerSettings::default()),
            Balancer::Default
        );
    }
}
