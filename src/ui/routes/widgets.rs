//! Small editors the resource forms share: list buttons, metadata, host lists and
//! optional percentages.

use crate::config::model::Percent;

use super::form::{self, Diags};

/// A structural edit of a list, decided while drawing and done after.
pub(crate) enum ListEdit {
    Remove(usize),
    Duplicate(usize),
    MoveUp(usize),
    MoveDown(usize),
}

pub(crate) fn apply_list_edit<T: Clone>(list: &mut Vec<T>, edit: ListEdit) {
    match edit {
        ListEdit::Remove(i) if i < list.len() => {
            list.remove(i);
        }
        ListEdit::Duplicate(i) => {
            if let Some(item) = list.get(i).cloned() {
                list.insert(i + 1, item);
            }
        }
        ListEdit::MoveUp(i) if i > 0 && i < list.len() => list.swap(i - 1, i),
        ListEdit::MoveDown(i) if i + 1 < list.len() => list.swap(i, i + 1),
        _ => {}
    }
}

/// Remove / duplicate / move buttons for item `i` of `len`.
pub(crate) fn list_buttons(
    ui: &mut egui::Ui,
    what: &str,
    i: usize,
    len: usize,
) -> Option<ListEdit> {
    let mut edit = None;
    if ui
        .add_enabled(i > 0, egui::Button::new("Up").small())
        .on_hover_text(format!("Move {what} up"))
        .clicked()
    {
        edit = Some(ListEdit::MoveUp(i));
    }
    if ui
        .add_enabled(i + 1 < len, egui::Button::new("Down").small())
        .on_hover_text(format!("Move {what} down"))
        .clicked()
    {
        edit = Some(ListEdit::MoveDown(i));
    }
    if ui
        .small_button("Duplicate")
        .on_hover_text(format!("Duplicate {what}"))
        .clicked()
    {
        edit = Some(ListEdit::Duplicate(i));
    }
    if ui
        .small_button("Remove")
        .on_hover_text(format!("Remove {what}"))
        .clicked()
    {
        edit = Some(ListEdit::Remove(i));
    }
    edit
}

pub(super) fn metadata_ui(
    ui: &mut egui::Ui,
    meta: &mut crate::config::model::ObjectMeta,
    diags: &Diags,
) -> bool {
    let mut changed = false;
    ui.horizontal(|ui| {
        changed |= form::optional_text_field(ui, "name", &mut meta.name, 160.0);
        changed |= form::optional_text_field(ui, "namespace", &mut meta.namespace, 120.0);
    });
    diags.under_ui(ui, "metadata");
    changed
}

/// A list of hosts, one field each, with its diagnostics.
pub(super) fn hosts_ui(
    ui: &mut egui::Ui,
    label: &str,
    hosts: &mut Vec<String>,
    path: &str,
    diags: &Diags,
) -> bool {
    string_list_ui(ui, label, "host", hosts, path, diags, "")
}

/// A list of strings, one field each labelled `item 1`, `item 2`, ..., with add and remove;
/// an added entry starts as `seed`.
pub(super) fn string_list_ui(
    ui: &mut egui::Ui,
    label: &str,
    item: &str,
    list: &mut Vec<String>,
    path: &str,
    diags: &Diags,
    seed: &str,
) -> bool {
    let mut changed = false;
    let mut remove = None;
    ui.label(label);
    for (i, value) in list.iter_mut().enumerate() {
        ui.horizontal(|ui| {
            ui.add_space(12.0);
            changed |= form::text_field(ui, &format!("{item} {}", i + 1), value, 260.0);
            if ui
                .small_button("Remove")
                .on_hover_text(format!("Remove this {item}"))
                .clicked()
            {
                remove = Some(i);
            }
        });
        diags.under_ui(ui, &form::index_path("", path, i));
    }
    ui.horizontal(|ui| {
        ui.add_space(12.0);
        if ui.small_button(format!("Add {item}")).clicked() {
            list.push(seed.to_owned());
            changed = true;
        }
    });
    if let Some(i) = remove {
        list.remove(i);
        changed = true;
    }
    diags.exact_ui(ui, path);
    changed
}

/// A percentage that may be absent (absent means 100%).
pub(super) fn percentage_option_ui(
    ui: &mut egui::Ui,
    label: &str,
    pct: &mut Option<Percent>,
) -> bool {
    let mut value = pct.as_ref().map_or(100.0, |p| p.value);
    let mut changed = false;
    ui.horizontal(|ui| {
        if form::percentage_ui(ui, label, &mut value) {
            *pct = Some(Percent { value });
            changed = true;
        }
        if pct.is_none() {
            ui.weak("(not set: 100%)");
        } else if ui
            .small_button("Unset")
            .on_hover_text("Remove the percentage: absent means 100%")
            .clicked()
        {
            *pct = None;
            changed = true;
        }
    });
    changed
}
