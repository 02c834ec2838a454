//! Form widgets shared by the editors: string matchers, key/value rows, destination pickers,
//! and the diagnostics shown next to the field they concern.

use std::cell::RefCell;

use crate::config::lines::{push_index, push_key};
use crate::config::model::{Destination, OrderedMap, PortSelector, StringMatch};
use crate::config::{ConfigSet, Diagnostic, Severity};

/// The diagnostics of one resource, shown next to their fields. Every diagnostic is shown
/// once: fields claim theirs, and [`Diags::rest_ui`] shows what no field claimed.
pub struct Diags {
    items: Vec<Diagnostic>,
    shown: RefCell<Vec<bool>>,
}

impl Diags {
    /// The diagnostics of the resource named `Kind namespace/name`.
    pub fn for_resource(all: &[Diagnostic], resource: &str) -> Self {
        let items: Vec<Diagnostic> = all
            .iter()
            .filter(|d| d.resource.as_deref() == Some(resource))
            .cloned()
            .collect();
        let shown = RefCell::new(vec![false; items.len()]);
        Self { items, shown }
    }

    /// How many errors the resource has.
    pub fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// True when a diagnostic concerns `path` or anything under it.
    pub fn any_under(&self, path: &str) -> bool {
        self.items
            .iter()
            .any(|d| d.field_path.as_deref().is_some_and(|p| is_under(p, path)))
    }

    /// Shows the diagnostics whose field path is exactly `path`.
    pub fn exact_ui(&self, ui: &mut egui::Ui, path: &str) {
        self.claim_ui(ui, |p| p == path);
    }

    /// Shows the diagnostics at `path` or under it (for leaf widgets such as a matcher).
    pub fn under_ui(&self, ui: &mut egui::Ui, path: &str) {
        self.claim_ui(ui, |p| is_under(p, path));
    }

    /// Shows what no field claimed (diagnostics about the whole resource, or fields the
    /// form does not edit).
    pub fn rest_ui(&self, ui: &mut egui::Ui) {
        self.claim_ui(ui, |_| true);
    }

    fn claim_ui(&self, ui: &mut egui::Ui, wanted: impl Fn(&str) -> bool) {
        for (i, d) in self.items.iter().enumerate() {
            let path = d.field_path.as_deref().unwrap_or("");
            let already = self.shown.borrow().get(i).copied().unwrap_or(true);
            if already || !wanted(path) {
                continue;
            }
            if let Some(slot) = self.shown.borrow_mut().get_mut(i) {
                *slot = true;
            }
            diagnostic_ui(ui, d);
        }
    }
}

/// `a.b[0]` is under `a.b`; `a.bc` is not.
fn is_under(path: &str, prefix: &str) -> bool {
    path == prefix
        || (path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), Some(b'.' | b'[')))
}

/// One diagnostic as a compiler would print it, coloured by severity.
pub fn diagnostic_ui(ui: &mut egui::Ui, d: &Diagnostic) {
    let color = match d.severity {
        Severity::Error => ui.visuals().error_fg_color,
        Severity::Warning => ui.visuals().warn_fg_color,
        Severity::Info => ui.visuals().weak_text_color(),
    };
    let mut text = format!("{}[{}]: {}", d.severity, d.code, d.message);
    if let Some(help) = &d.help {
        text.push_str(&format!(" (help: {help})"));
    }
    let location = match &d.field_path {
        Some(p) => format!("{}:{} at {p}", d.file, d.line),
        None => format!("{}:{}", d.file, d.line),
    };
    ui.colored_label(color, text).on_hover_text(location);
}

/// Host and subset names found in the config, for pickers.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    /// Every host any resource names: VirtualService, DestinationRule and ServiceEntry hosts.
    pub hosts: Vec<String>,
    /// `(DestinationRule host, subset names)`.
    pub subsets: Vec<(String, Vec<String>)>,
    /// A subset the user asked to define from a destination that names a missing one:
    /// `(host, subset)`; the editor adds it after the frame's edit.
    pub define_subset: std::cell::RefCell<Option<(String, String)>>,
}

impl Catalog {
    /// Collects hosts and subsets from a config.
    pub fn from_config(set: &ConfigSet) -> Self {
        let mut hosts = Vec::new();
        let mut push = |h: &str| {
            if !h.is_empty() && !h.contains('*') && !hosts.iter().any(|x| x == h) {
                hosts.push(h.to_owned());
            }
        };
        for (_, dr) in set.destination_rules() {
            push(&dr.spec.host);
        }
        for (_, se) in set.service_entries() {
            se.spec.hosts.iter().for_each(|h| push(h));
        }
        for (_, vs) in set.virtual_services() {
            vs.spec.hosts.iter().for_each(|h| push(h));
        }
        let subsets = set
            .destination_rules()
            .map(|(_, dr)| {
                let names = dr.spec.subsets.iter().map(|s| s.name.clone()).collect();
                (dr.spec.host.clone(), names)
            })
            .collect();
        Self {
            hosts,
            subsets,
            define_subset: std::cell::RefCell::new(None),
        }
    }

    /// Subsets defined for `host` (a short name matches its FQDN and back).
    pub fn subsets_of(&self, host: &str) -> Vec<String> {
        self.subsets
            .iter()
            .filter(|(h, _)| same_host(h, host))
            .flat_map(|(_, names)| names.iter().cloned())
            .collect()
    }
}

/// `reviews` and `reviews.default.svc.cluster.local` are the same host.
pub fn same_host(a: &str, b: &str) -> bool {
    let short = |h: &str| h.split('.').next().unwrap_or(h).to_owned();
    a == b
        || ((a.ends_with(".svc.cluster.local") || b.ends_with(".svc.cluster.local"))
            && short(a) == short(b))
}

/// A labelled single-line text field; returns true when it changed.
pub fn text_field(ui: &mut egui::Ui, label: &str, value: &mut String, width: f32) -> bool {
    let l = ui.label(label);
    ui.add(egui::TextEdit::singleline(value).desired_width(width))
        .labelled_by(l.id)
        .changed()
}

/// A labelled optional text field: empty means absent.
pub fn optional_text_field(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut Option<String>,
    width: f32,
) -> bool {
    let mut text = value.clone().unwrap_or_default();
    let changed = text_field(ui, label, &mut text, width);
    if changed {
        *value = (!text.is_empty()).then_some(text);
    }
    changed
}

/// A labelled optional number field with a checkbox that adds or removes it.
pub fn optional_u32_field(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut Option<u32>,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> bool {
    optional_number_field(ui, label, value, default, range)
}

/// [`optional_u32_field`] for any number type the schema uses (`int32`, `uint32`, `uint64`).
pub fn optional_number_field<T: egui::emath::Numeric>(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut Option<T>,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> bool {
    let mut on = value.is_some();
    let checkbox = ui.checkbox(&mut on, label);
    let mut changed = checkbox.changed();
    if changed {
        *value = on.then_some(value.unwrap_or(default));
    }
    if let Some(v) = value {
        changed |= ui
            .add(egui::DragValue::new(v).range(range))
            .labelled_by(checkbox.id)
            .on_hover_text(label)
            .changed();
    }
    changed
}

/// Which kind of string match a matcher uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// Not set (for uri/method/...), or "present" for header and query rows.
    None,
    /// `exact`.
    Exact,
    /// `prefix`.
    Prefix,
    /// `regex` (RE2, whole value).
    Regex,
}

impl MatchKind {
    /// The kind and value of a match (the first one set, if several).
    pub fn of(m: &StringMatch) -> (MatchKind, String) {
        if let Some(v) = &m.exact {
            (MatchKind::Exact, v.clone())
        } else if let Some(v) = &m.prefix {
            (MatchKind::Prefix, v.clone())
        } else if let Some(v) = &m.regex {
            (MatchKind::Regex, v.clone())
        } else {
            (MatchKind::None, String::new())
        }
    }

    /// Builds the match for this kind and value.
    pub fn build(self, value: String) -> StringMatch {
        match self {
            MatchKind::None => StringMatch::default(),
            MatchKind::Exact => StringMatch {
                exact: Some(value),
                ..StringMatch::default()
            },
            MatchKind::Prefix => StringMatch {
                prefix: Some(value),
                ..StringMatch::default()
            },
            MatchKind::Regex => StringMatch {
                regex: Some(value),
                ..StringMatch::default()
            },
        }
    }

    fn name(self, none: &'static str) -> &'static str {
        match self {
            MatchKind::None => none,
            MatchKind::Exact => "exact",
            MatchKind::Prefix => "prefix",
            MatchKind::Regex => "regex",
        }
    }
}

/// A kind picker (exact/prefix/regex, plus `none_name` for "not set" or "present").
fn kind_picker(
    ui: &mut egui::Ui,
    id: egui::Id,
    label: &str,
    kind: &mut MatchKind,
    none_name: &'static str,
) -> bool {
    let before = *kind;
    egui::ComboBox::from_id_salt(id)
        .selected_text(kind.name(none_name))
        .width(70.0)
        .show_ui(ui, |ui| {
            for k in [
                MatchKind::None,
                MatchKind::Exact,
                MatchKind::Prefix,
                MatchKind::Regex,
            ] {
                ui.selectable_value(kind, k, k.name(none_name));
            }
        })
        .response
        .on_hover_text(format!("{label}: how to match"));
    *kind != before
}

/// An optional matcher such as `uri` or `method`: a kind picker and a value field.
pub fn string_match_ui(
    ui: &mut egui::Ui,
    label: &str,
    m: &mut Option<StringMatch>,
    path: &str,
    diags: &Diags,
) -> bool {
    let (mut kind, mut value) = m
        .as_ref()
        .map(MatchKind::of)
        .unwrap_or((MatchKind::None, String::new()));
    let mut changed = false;
    ui.horizontal(|ui| {
        let l = ui.label(label);
        changed |= kind_picker(ui, ui.scope_id().with(path), label, &mut kind, "any");
        if kind != MatchKind::None {
            changed |= ui
                .add(egui::TextEdit::singleline(&mut value).desired_width(220.0))
                .labelled_by(l.id)
                .changed();
        }
    });
    diags.under_ui(ui, path);
    if changed {
        *m = (kind != MatchKind::None).then(|| kind.build(value));
    }
    changed
}

/// Header or query-parameter rows: name, kind (with "present"), value; add and remove.
pub fn match_rows_ui(
    ui: &mut egui::Ui,
    label: &str,
    rows: &mut OrderedMap<StringMatch>,
    path: &str,
    diags: &Diags,
) -> bool {
    let mut list: Vec<(String, StringMatch)> =
        rows.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut changed = false;
    let mut remove = None;
    ui.label(label);
    for (i, (name, m)) in list.iter_mut().enumerate() {
        let row_path = push_key(path, name);
        ui.horizontal(|ui| {
            ui.add_space(12.0);
            let l = ui.label(format!("{label} name"));
            changed |= ui
                .add(egui::TextEdit::singleline(name).desired_width(140.0))
                .labelled_by(l.id)
                .changed();
            let (mut kind, mut value) = MatchKind::of(m);
            let mut row_changed = kind_picker(
                ui,
                ui.scope_id().with((path, i)),
                &format!("{label} {name}"),
                &mut kind,
                "present",
            );
            if kind != MatchKind::None {
                let l = ui.label("value");
                row_changed |= ui
                    .add(egui::TextEdit::singleline(&mut value).desired_width(200.0))
                    .labelled_by(l.id)
                    .changed();
            }
            if row_changed {
                *m = kind.build(value);
                changed = true;
            }
            if ui
                .small_button("Remove")
                .on_hover_text(format!("Remove this {label} row"))
                .clicked()
            {
                remove = Some(i);
            }
        });
        diags.under_ui(ui, &row_path);
    }
    ui.horizontal(|ui| {
        ui.add_space(12.0);
        if ui.small_button(format!("Add {label} row")).clicked() {
            let mut n = list.len();
            let mut name = String::from("x-header");
            while list.iter().any(|(k, _)| *k == name) {
                n += 1;
                name = format!("x-header-{n}");
            }
            list.push((name, StringMatch::default()));
            changed = true;
        }
    });
    if let Some(i) = remove {
        list.remove(i);
        changed = true;
    }
    if changed {
        *rows = list.into_iter().collect();
    }
    changed
}

/// String-to-string rows (labels): key, value; add and remove.
pub fn label_rows_ui(
    ui: &mut egui::Ui,
    label: &str,
    rows: &mut OrderedMap<String>,
    path: &str,
    diags: &Diags,
) -> bool {
    string_rows_ui(ui, label, rows, path, diags, "version")
}

/// String-to-string rows (labels, headers to set): key, value; add and remove. An added
/// row's key is `seed`, numbered when taken.
pub fn string_rows_ui(
    ui: &mut egui::Ui,
    label: &str,
    rows: &mut OrderedMap<String>,
    path: &str,
    diags: &Diags,
    seed: &str,
) -> bool {
    let mut list: Vec<(String, String)> =
        rows.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut changed = false;
    let mut remove = None;
    for (i, (k, v)) in list.iter_mut().enumerate() {
        ui.horizontal(|ui| {
            let l = ui.label(format!("{label} key"));
            changed |= ui
                .add(egui::TextEdit::singleline(k).desired_width(110.0))
                .labelled_by(l.id)
                .changed();
            let l = ui.label("=");
            changed |= ui
                .add(egui::TextEdit::singleline(v).desired_width(110.0))
                .labelled_by(l.id)
                .on_hover_text(format!("{label} value"))
                .changed();
            if ui
                .small_button("Remove")
                .on_hover_text(format!("Remove this {label}"))
                .clicked()
            {
                remove = Some(i);
            }
        });
        diags.under_ui(ui, &push_key(path, k));
    }
    if ui.small_button(format!("Add {label}")).clicked() {
        let mut name = seed.to_owned();
        let mut n = 1;
        while list.iter().any(|(k, _)| *k == name) {
            n += 1;
            name = format!("{seed}-{n}");
        }
        list.push((name, String::new()));
        changed = true;
    }
    if let Some(i) = remove {
        list.remove(i);
        changed = true;
    }
    if changed {
        *rows = list.into_iter().collect();
    }
    changed
}

/// A destination: host with a picker of known hosts, subset from the host's
/// DestinationRules, optional port.
pub fn destination_ui(
    ui: &mut egui::Ui,
    label: &str,
    d: &mut Destination,
    path: &str,
    catalog: &Catalog,
    diags: &Diags,
) -> bool {
    let mut changed = false;
    ui.horizontal(|ui| {
        changed |= text_field(ui, &format!("{label} host"), &mut d.host, 200.0);
        egui::ComboBox::from_id_salt(ui.scope_id().with((path, "host")))
            .selected_text("pick")
            .width(50.0)
            .show_ui(ui, |ui| {
                for h in &catalog.hosts {
                    if ui.selectable_label(d.host == *h, h).clicked() {
                        d.host = h.clone();
                        changed = true;
                    }
                }
            })
            .response
            .on_hover_text(format!("{label} host: pick one the config defines"));
        let subsets = catalog.subsets_of(&d.host);
        let l = ui.label("subset");
        let shown = d.subset.clone().unwrap_or_else(|| "(none)".to_owned());
        egui::ComboBox::from_id_salt(ui.scope_id().with((path, "subset")))
            .selected_text(shown)
            .width(90.0)
            .show_ui(ui, |ui| {
                if ui.selectable_label(d.subset.is_none(), "(none)").clicked() {
                    d.subset = None;
                    changed = true;
                }
                for s in &subsets {
                    if ui
                        .selectable_label(d.subset.as_deref() == Some(s), s)
                        .clicked()
                    {
                        d.subset = Some(s.clone());
                        changed = true;
                    }
                }
            })
            .response
            .labelled_by(l.id)
            .on_hover_text(if subsets.is_empty() {
                "No DestinationRule defines subsets for this host".to_owned()
            } else {
                format!("Subsets of {}: {}", d.host, subsets.join(", "))
            });
        let mut port = d.port.as_ref().and_then(|p| p.number);
        if optional_u32_field(ui, "port", &mut port, 9080, 1..=65535) {
            d.port = port.map(|n| PortSelector { number: Some(n) });
            changed = true;
        }
        if let Some(subset) = d.subset.as_ref().filter(|s| !subsets.contains(s))
            && !d.host.is_empty()
            && ui
                .button(format!("Define subset {subset}"))
                .on_hover_text(format!(
                    "Add subset {subset} (labels version: {subset}) to the DestinationRule of {}, creating the rule if there is none",
                    d.host
                ))
                .clicked()
        {
            *catalog.define_subset.borrow_mut() = Some((d.host.clone(), subset.clone()));
        }
    });
    diags.under_ui(ui, path);
    changed
}

/// A percentage 0..=100 in steps of 0.01: a slider and a number field.
pub fn percentage_ui(ui: &mut egui::Ui, label: &str, value: &mut f64) -> bool {
    let mut changed = false;
    ui.horizontal(|ui| {
        let l = ui.label(label);
        changed |= ui
            .add(
                egui::Slider::new(value, 0.0..=100.0)
                    .step_by(0.01)
                    .show_value(false),
            )
            .labelled_by(l.id)
            .changed();
        changed |= ui
            .add(
                egui::DragValue::new(value)
                    .range(0.0..=100.0)
                    .speed(0.1)
                    .max_decimals(2)
                    .suffix(" %"),
            )
            .labelled_by(l.id)
            .changed();
    });
    if changed {
        *value = (*value * 100.0).round() / 100.0;
    }
    changed
}

/// `spec.http[3]`-style paths.
pub fn index_path(path: &str, key: &str, i: usize) -> String {
    push_index(&push_key(path, key), i)
}

/// `spec.http[3].mirror`-style paths.
pub fn key_path(path: &str, key: &str) -> String {
    push_key(path, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_nest_on_dots_and_brackets_only() {
        assert!(is_under(
            "spec.http[0].mirror.subset",
            "spec.http[0].mirror"
        ));
        assert!(is_under("spec.http[0]", "spec.http"));
        assert!(!is_under("spec.http[0].mirrors", "spec.http[0].mirror"));
        assert!(is_under("spec.hosts", "spec.hosts"));
    }

    #[test]
    fn match_kinds_round_trip() {
        for kind in [MatchKind::Exact, MatchKind::Prefix, MatchKind::Regex] {
            let m = kind.build("v".into());
            assert_eq!(MatchKind::of(&m), (kind, "v".to_owned()));
        }
        assert_eq!(MatchKind::None.build("x".into()), StringMatch::default());
    }

    #[test]
    fn short_names_and_fqdns_share_subsets() {
        let catalog = Catalog {
            hosts: vec![],
            subsets: vec![(
                "reviews.default.svc.cluster.local".into(),
                vec!["v1".into(), "v2".into()],
            )],
            ..Catalog::default()
        };
        assert_eq!(catalog.subsets_of("reviews"), vec!["v1", "v2"]);
        assert!(catalog.subsets_of("ratings").is_empty());
    }
}
