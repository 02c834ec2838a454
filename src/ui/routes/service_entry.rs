//! The ServiceEntry editor: hosts, ports, and endpoints with their ports and labels.

use crate::config::model::{ServiceEntry, ServicePort, WorkloadEntry};

use super::super::form::{self, Diags, index_path, key_path};
use super::widgets::{hosts_ui, metadata_ui};

pub(super) fn service_entry_ui(ui: &mut egui::Ui, se: &mut ServiceEntry, diags: &Diags) -> bool {
    let mut changed = metadata_ui(ui, &mut se.metadata, diags);
    changed |= hosts_ui(ui, "Hosts", &mut se.spec.hosts, "spec.hosts", diags);
    ui.heading("Ports");
    let mut remove = None;
    for (i, port) in se.spec.ports.iter_mut().enumerate() {
        let path = index_path("spec", "ports", i);
        ui.horizontal(|ui| {
            let l = ui.label("port number");
            changed |= ui
                .add(egui::DragValue::new(&mut port.number).range(1..=65535))
                .labelled_by(l.id)
                .changed();
            changed |= form::text_field(ui, "port name", &mut port.name, 80.0);
            changed |= form::optional_text_field(ui, "protocol", &mut port.protocol, 70.0);
            if ui
                .small_button("Remove")
                .on_hover_text("Remove this port")
                .clicked()
            {
                remove = Some(i);
            }
        });
        diags.under_ui(ui, &path);
    }
    if let Some(i) = remove {
        se.spec.ports.remove(i);
        changed = true;
    }
    if ui.small_button("Add port").clicked() {
        se.spec.ports.push(ServicePort {
            number: 9080,
            protocol: Some("HTTP".to_owned()),
            name: "http".to_owned(),
            target_port: None,
        });
        changed = true;
    }
    ui.heading("Endpoints");
    let port_names: Vec<String> = se.spec.ports.iter().map(|p| p.name.clone()).collect();
    let mut remove = None;
    for (i, ep) in se.spec.endpoints.iter_mut().enumerate() {
        let path = index_path("spec", "endpoints", i);
        ui.group(|ui| {
            ui.horizontal(|ui| {
                changed |= form::optional_text_field(ui, "address", &mut ep.address, 140.0);
                for name in &port_names {
                    let mut port = ep.ports.get(name).copied();
                    if form::optional_u32_field(
                        ui,
                        &format!("{name} port"),
                        &mut port,
                        9080,
                        1..=65535,
                    ) {
                        match port {
                            Some(p) => {
                                ep.ports.insert(name.clone(), p);
                            }
                            None => {
                                ep.ports.shift_remove(name);
                            }
                        }
                        changed = true;
                    }
                }
                if ui
                    .small_button("Remove")
                    .on_hover_text("Remove this endpoint")
                    .clicked()
                {
                    remove = Some(i);
                }
            });
            changed |= form::label_rows_ui(
                ui,
                "label",
                &mut ep.labels,
                &key_path(&path, "labels"),
                diags,
            );
            diags.under_ui(ui, &path);
        });
    }
    if let Some(i) = remove {
        se.spec.endpoints.remove(i);
        changed = true;
    }
    if ui.small_button("Add endpoint").clicked() {
        let mut ports = crate::config::model::OrderedMap::new();
        if let Some(name) = port_names.first() {
            ports.insert(name.clone(), 9081);
        }
        se.spec.endpoints.push(WorkloadEntry {
            address: Some("127.0.0.1".to_owned()),
            ports,
            ..WorkloadEntry::default()
        });
        changed = true;
    }
    changed
}

pub(super) fn new_service_entry() -> ServiceEntry {
    ServiceEntry {
        api_version: "networking.istio.io/v1".to_owned(),
        kind: "ServiceEntry".to_owned(),
        metadata: crate::config::model::ObjectMeta {
            name: Some("new-se".to_owned()),
            ..Default::default()
        },
        spec: crate::config::model::ServiceEntrySpec {
            hosts: vec!["reviews".to_owned()],
            ports: vec![ServicePort {
                number: 9080,
                protocol: Some("HTTP".to_owned()),
                name: "http".to_owned(),
                target_port: None,
            }],
            location: Some("MESH_INTERNAL".to_owned()),
            resolution: Some("STATIC".to_owned()),
            ..Default::default()
        },
        status: None,
    }
}
