//! A route's mirroring: off, one `mirror` with its percentage, or several `mirrors`.

use crate::config::model::{Destination, HttpMirrorPolicy, HttpRoute, Percent};

use super::super::form::{self, Catalog, Diags, index_path, key_path};
use super::widgets::percentage_option_ui;

/// How a route mirrors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MirrorMode {
    None,
    Single,
    Several,
}

pub(super) fn mirror_ui(
    ui: &mut egui::Ui,
    route: &mut HttpRoute,
    path: &str,
    catalog: &Catalog,
    diags: &Diags,
) -> bool {
    let mut changed = false;
    let mode = if route.mirror.is_some() {
        MirrorMode::Single
    } else if !route.mirrors.is_empty() {
        MirrorMode::Several
    } else {
        MirrorMode::None
    };
    let mut new_mode = mode;
    ui.horizontal(|ui| {
        ui.strong("Mirroring");
        ui.radio_value(&mut new_mode, MirrorMode::None, "off");
        ui.radio_value(&mut new_mode, MirrorMode::Single, "mirror");
        ui.radio_value(&mut new_mode, MirrorMode::Several, "mirrors (several)");
    });
    if new_mode != mode {
        changed = true;
        let first = route
            .mirror
            .take()
            .map(|d| (d, route.mirror_percentage.take()))
            .or_else(|| {
                (!route.mirrors.is_empty()).then(|| {
                    let m = route.mirrors.remove(0);
                    (m.destination, m.percentage)
                })
            });
        route.mirrors.clear();
        let (dest, pct) = first.unwrap_or_else(|| (default_mirror(route, catalog), None));
        match new_mode {
            MirrorMode::None => route.mirror_percentage = None,
            MirrorMode::Single => {
                route.mirror = Some(dest);
                route.mirror_percentage = pct;
            }
            MirrorMode::Several => route.mirrors.push(HttpMirrorPolicy {
                destination: dest,
                percentage: pct,
            }),
        }
    }
    if let Some(mirror) = &mut route.mirror {
        changed |= form::destination_ui(
            ui,
            "mirror",
            mirror,
            &key_path(path, "mirror"),
            catalog,
            diags,
        );
        changed |= percentage_option_ui(ui, "Mirror percentage", &mut route.mirror_percentage);
        diags.under_ui(ui, &key_path(path, "mirrorPercentage"));
    }
    if !route.mirrors.is_empty() {
        let mut remove = None;
        for (k, m) in route.mirrors.iter_mut().enumerate() {
            let mpath = index_path(path, "mirrors", k);
            changed |= form::destination_ui(
                ui,
                &format!("mirror {k}"),
                &mut m.destination,
                &key_path(&mpath, "destination"),
                catalog,
                diags,
            );
            ui.horizontal(|ui| {
                changed |=
                    percentage_option_ui(ui, &format!("Mirror {k} percentage"), &mut m.percentage);
                if ui
                    .small_button("Remove")
                    .on_hover_text("Remove this mirror")
                    .clicked()
                {
                    remove = Some(k);
                }
            });
            diags.under_ui(ui, &mpath);
        }
        if let Some(k) = remove {
            route.mirrors.remove(k);
            changed = true;
        }
        if ui.small_button("Add mirror").clicked() {
            route.mirrors.push(HttpMirrorPolicy {
                destination: default_mirror(route, catalog),
                percentage: None,
            });
            changed = true;
        }
    }
    if let Some(old) = route.mirror_percent.or(route.mirror_percent_legacy) {
        ui.horizontal(|ui| {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("mirrorPercent: {old} is deprecated"),
            );
            if ui.small_button("Convert to mirrorPercentage").clicked() {
                route.mirror_percentage = Some(Percent {
                    value: f64::from(old),
                });
                route.mirror_percent = None;
                route.mirror_percent_legacy = None;
                changed = true;
            }
        });
    }
    diags.under_ui(ui, &key_path(path, "mirrorPercent"));
    diags.under_ui(ui, &key_path(path, "mirror"));
    diags.exact_ui(ui, &key_path(path, "mirrors"));
    changed
}

/// A sensible first mirror target: another subset of the primary's host, else the host.
fn default_mirror(route: &HttpRoute, catalog: &Catalog) -> Destination {
    let primary = route
        .route
        .first()
        .map(|d| d.destination.clone())
        .unwrap_or_default();
    let other_subset = catalog
        .subsets_of(&primary.host)
        .into_iter()
        .find(|s| Some(s) != primary.subset.as_ref());
    Destination {
        host: primary.host,
        subset: other_subset,
        port: primary.port,
    }
}
