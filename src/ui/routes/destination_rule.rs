//! The DestinationRule editor: host, traffic policy, and subsets with their labels and
//! policies.

use crate::config::model::{DestinationRule, Subset};

use super::super::form::{self, Diags, index_path, key_path};
use super::widgets::metadata_ui;

pub(super) fn destination_rule_ui(
    ui: &mut egui::Ui,
    dr: &mut DestinationRule,
    diags: &Diags,
) -> bool {
    let mut changed = metadata_ui(ui, &mut dr.metadata, diags);
    ui.horizontal(|ui| {
        changed |= form::text_field(ui, "rule host", &mut dr.spec.host, 260.0);
    });
    diags.under_ui(ui, "spec.host");
    changed |= super::super::policy_form::traffic_policy_ui(
        ui,
        "Traffic policy of every subset",
        &mut dr.spec.traffic_policy,
        "spec",
        diags,
    );
    ui.heading("Subsets");
    let mut remove = None;
    for (i, subset) in dr.spec.subsets.iter_mut().enumerate() {
        let path = index_path("spec", "subsets", i);
        ui.group(|ui| {
            ui.horizontal(|ui| {
                changed |= form::text_field(ui, "subset name", &mut subset.name, 120.0);
                if ui
                    .small_button("Remove")
                    .on_hover_text("Remove this subset")
                    .clicked()
                {
                    remove = Some(i);
                }
            });
            ui.label("Endpoint labels the subset selects:");
            changed |= form::label_rows_ui(
                ui,
                "label",
                &mut subset.labels,
                &key_path(&path, "labels"),
                diags,
            );
            changed |= {
                let title = format!(
                    "Traffic policy of subset {} (each part set here replaces the rule's)",
                    subset.name
                );
                super::super::policy_form::traffic_policy_ui(
                    ui,
                    &title,
                    &mut subset.traffic_policy,
                    &path,
                    diags,
                )
            };
            diags.under_ui(ui, &path);
        });
    }
    if let Some(i) = remove {
        dr.spec.subsets.remove(i);
        changed = true;
    }
    if ui.button("Add subset").clicked() {
        let n = dr.spec.subsets.len() + 1;
        let mut labels = crate::config::model::OrderedMap::new();
        labels.insert("version".to_owned(), format!("v{n}"));
        dr.spec.subsets.push(Subset {
            name: format!("v{n}"),
            labels,
            ..Subset::default()
        });
        changed = true;
    }
    changed
}

pub(super) fn new_destination_rule() -> DestinationRule {
    DestinationRule {
        api_version: "networking.istio.io/v1".to_owned(),
        kind: "DestinationRule".to_owned(),
        metadata: crate::config::model::ObjectMeta {
            name: Some("new-dr".to_owned()),
            ..Default::default()
        },
        spec: crate::config::model::DestinationRuleSpec {
            host: "reviews".to_owned(),
            ..Default::default()
        },
        status: None,
    }
}
