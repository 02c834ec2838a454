//! The YAML panel: exactly what Save writes, with line numbers, YAML highlighting and each
//! diagnostic marked at its line; a click on a diagnostic puts the cursor on that line.
//! Editing it here reloads the forms; editing the forms rewrites it.

use std::collections::BTreeMap;

use egui::text::{CCursor, CCursorRange, LayoutJob, TextFormat};

use crate::config::{Diagnostic, Severity};

use super::Document;

/// State of the YAML panel that lives across frames.
#[derive(Debug, Default)]
pub struct YamlPanel {
    /// A line (1-based) to put the cursor on and scroll to in the next frame.
    jump_to: Option<usize>,
}

/// The YAML panel for one frame.
pub struct YamlView<'a> {
    /// Panel state.
    pub panel: &'a mut YamlPanel,
    /// The open config.
    pub doc: &'a mut Document,
}

/// The worst severity on each line that has a diagnostic.
fn marked_lines(diagnostics: &[Diagnostic]) -> BTreeMap<usize, Severity> {
    let mut lines = BTreeMap::new();
    for d in diagnostics.iter().filter(|d| d.line > 0) {
        let worst = lines.entry(d.line).or_insert(d.severity);
        if rank(d.severity) > rank(*worst) {
            *worst = d.severity;
        }
    }
    lines
}

fn rank(s: Severity) -> u8 {
    match s {
        Severity::Error => 2,
        Severity::Warning => 1,
        _ => 0,
    }
}

/// What a stretch of a YAML line is, for its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// Indentation, `- `, `:` and the like.
    Plain,
    /// A mapping key.
    Key,
    /// A scalar value.
    Value,
    /// A `#` comment to the end of the line.
    Comment,
    /// `---` between documents.
    Separator,
}

/// Splits one line into coloured stretches (byte ranges), as a reader of YAML sees it: a
/// key before `: `, its value after, comments from a `#` that starts a word.
pub fn tokens(line: &str) -> Vec<(std::ops::Range<usize>, Token)> {
    if line.trim_end() == "---" {
        return vec![(0..line.len(), Token::Separator)];
    }
    let comment = comment_start(line);
    let code = &line[..comment];
    let mut out = Vec::new();
    let body_start = code.len() - code.trim_start_matches([' ', '-']).len();
    if body_start > 0 {
        out.push((0..body_start, Token::Plain));
    }
    let body = &code[body_start..];
    match key_end(body) {
        Some(k) => {
            out.push((body_start..body_start + k, Token::Key));
            out.push((body_start + k..body_start + k + 1, Token::Plain));
            if body_start + k + 1 < code.len() {
                out.push((body_start + k + 1..code.len(), Token::Value));
            }
        }
        None if !body.is_empty() => out.push((body_start..code.len(), Token::Value)),
        None => {}
    }
    if comment < line.len() {
        out.push((comment..line.len(), Token::Comment));
    }
    out
}

/// Where a comment starts: a `#` at the line's start or after a space, outside quotes.
fn comment_start(line: &str) -> usize {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev == ' ' || prev == '\t' => return i,
            _ => {}
        }
        prev = c;
    }
    line.len()
}

/// The end of a plain mapping key (the `:` that follows it), if the text starts with one.
fn key_end(body: &str) -> Option<usize> {
    if body.starts_with(['"', '\'', '{', '[', '|', '>']) {
        return None;
    }
    let i = body.find(':')?;
    let after = body.as_bytes().get(i + 1);
    matches!(after, None | Some(b' ')).then_some(i)
}

impl YamlView<'_> {
    /// Shows the panel.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let label = ui.label(
            "This is what Save writes. Edit it here or in the Routes forms; each updates the other.",
        );
        let diagnostics = self.doc.config().diagnostics().to_vec();
        self.diagnostics_ui(ui, &diagnostics);
        let marks = marked_lines(&diagnostics);
        let mut text = self.doc.yaml().to_owned();
        let font = egui::TextStyle::Monospace.resolve(ui.style());
        let row_height = ui.fonts_mut(|f| f.row_height(&font));
        let mut scroll = egui::ScrollArea::both()
            .id_salt("yaml-scroll")
            .auto_shrink([false, false]);
        let jump = self.panel.jump_to.take();
        if let Some(line) = jump {
            scroll = scroll
                .vertical_scroll_offset((line.saturating_sub(4) as f32 * row_height).max(0.0));
        }
        let edit_id = ui.make_persistent_id("yaml-editor");
        let mut changed = false;
        scroll.show(ui, |ui| {
            ui.horizontal_top(|ui| {
                gutter_ui(ui, text.lines().count().max(1), &marks, &font);
                let visuals = ui.visuals().clone();
                let mut layouter = |ui: &egui::Ui, buf: &dyn egui::TextBuffer, _wrap: f32| {
                    let job = highlight(buf.as_str(), &font, &visuals, &marks);
                    ui.fonts_mut(|f| f.layout_job(job))
                };
                let response = ui
                    .add(
                        egui::TextEdit::multiline(&mut text)
                            .id(edit_id)
                            .code_editor()
                            .desired_rows(30)
                            .desired_width(f32::INFINITY)
                            .layouter(&mut layouter),
                    )
                    .labelled_by(label.id);
                changed = response.changed();
                if let Some(line) = jump {
                    put_cursor_on_line(ui.ctx(), edit_id, &text, line);
                    response.request_focus();
                }
            });
        });
        if changed {
            self.doc.set_yaml(text);
        }
    }

    /// The diagnostics, each a link to its line.
    fn diagnostics_ui(&mut self, ui: &mut egui::Ui, diagnostics: &[Diagnostic]) {
        if diagnostics.is_empty() {
            return;
        }
        egui::CollapsingHeader::new(format!("{} diagnostics", diagnostics.len()))
            .default_open(true)
            .show(ui, |ui| {
                for d in diagnostics {
                    ui.horizontal(|ui| {
                        if d.line > 0
                            && ui
                                .small_button(format!("line {}", d.line))
                                .on_hover_text("Put the cursor on this line")
                                .clicked()
                        {
                            self.panel.jump_to = Some(d.line);
                        }
                        super::form::diagnostic_ui(ui, d);
                    });
                }
            });
    }
}

/// Line numbers, a mark beside each line with a diagnostic.
fn gutter_ui(
    ui: &mut egui::Ui,
    lines: usize,
    marks: &BTreeMap<usize, Severity>,
    font: &egui::FontId,
) {
    let mut job = LayoutJob::default();
    let width = lines.to_string().len();
    for n in 1..=lines {
        let (mark, color) = match marks.get(&n) {
            Some(Severity::Error) => ("●", ui.visuals().error_fg_color),
            Some(Severity::Warning) => ("●", ui.visuals().warn_fg_color),
            Some(_) => ("●", ui.visuals().weak_text_color()),
            None => (" ", ui.visuals().weak_text_color()),
        };
        let text = format!("{n:>width$}{mark}\n");
        job.append(&text, 0.0, TextFormat::simple(font.clone(), color));
    }
    // The editor's frame has a margin; the numbers sit on its rows.
    ui.add_space(0.0);
    ui.vertical(|ui| {
        ui.add_space(ui.spacing().button_padding.y.max(2.0));
        ui.label(job);
    });
}

/// The YAML coloured by [`tokens`], lines with a diagnostic on a tinted background.
fn highlight(
    text: &str,
    font: &egui::FontId,
    visuals: &egui::Visuals,
    marks: &BTreeMap<usize, Severity>,
) -> LayoutJob {
    let color = |t: Token| match (t, visuals.dark_mode) {
        (Token::Plain, _) => visuals.text_color(),
        (Token::Key, true) => egui::Color32::from_rgb(130, 180, 255),
        (Token::Key, false) => egui::Color32::from_rgb(20, 70, 170),
        (Token::Value, true) => egui::Color32::from_rgb(200, 200, 150),
        (Token::Value, false) => egui::Color32::from_rgb(110, 80, 0),
        (Token::Comment, _) => visuals.weak_text_color(),
        (Token::Separator, true) => egui::Color32::from_rgb(200, 140, 220),
        (Token::Separator, false) => egui::Color32::from_rgb(120, 40, 140),
    };
    let mut job = LayoutJob::default();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let background = match marks.get(&(i + 1)) {
            Some(Severity::Error) => visuals.error_fg_color.gamma_multiply(0.25),
            Some(Severity::Warning) => visuals.warn_fg_color.gamma_multiply(0.2),
            _ => egui::Color32::TRANSPARENT,
        };
        let content = line.trim_end_matches('\n');
        let mut end = 0;
        for (range, token) in tokens(content) {
            let format = TextFormat {
                font_id: font.clone(),
                color: color(token),
                background,
                ..Default::default()
            };
            end = range.end;
            job.append(&content[range], 0.0, format);
        }
        let rest = &line[end..];
        if !rest.is_empty() {
            job.append(
                rest,
                0.0,
                TextFormat::simple(font.clone(), color(Token::Plain)),
            );
        }
    }
    job.wrap.max_width = f32::INFINITY;
    job
}

/// The character index where `line` (1-based) starts; past the end, the text's end.
fn line_start(text: &str, line: usize) -> usize {
    (text.split_inclusive('\n').take(line.saturating_sub(1)))
        .map(|l| l.chars().count())
        .sum()
}

/// Puts the editor's cursor at the start of `line` (1-based).
fn put_cursor_on_line(ctx: &egui::Context, id: egui::Id, text: &str, line: usize) {
    let chars = line_start(text, line);
    let mut state = egui::TextEdit::load_state(ctx, id).unwrap_or_default();
    state
        .cursor
        .set_char_range(Some(CCursorRange::one(CCursor::new(chars))));
    state.store(ctx, id);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(line: &str) -> Vec<(&str, Token)> {
        tokens(line)
            .into_iter()
            .map(|(r, t)| (&line[r], t))
            .collect()
    }

    #[test]
    fn keys_values_comments_and_separators_are_told_apart() {
        assert_eq!(
            kinds("  - name: v1 # the stable one"),
            vec![
                ("  - ", Token::Plain),
                ("name", Token::Key),
                (":", Token::Plain),
                (" v1 ", Token::Value),
                ("# the stable one", Token::Comment),
            ]
        );
        assert_eq!(kinds("---"), vec![("---", Token::Separator)]);
        assert_eq!(
            kinds("# only a comment"),
            vec![("# only a comment", Token::Comment)]
        );
        // A `#` inside a value or quotes is not a comment; a URL's colon is not a key's.
        assert_eq!(
            kinds("  x-token: abc#1"),
            vec![
                ("  ", Token::Plain),
                ("x-token", Token::Key),
                (":", Token::Plain),
                (" abc#1", Token::Value),
            ]
        );
        assert_eq!(
            kinds("  - http://a:80/x"),
            vec![("  - ", Token::Plain), ("http://a:80/x", Token::Value)]
        );
        assert_eq!(
            kinds(r#"  regex: "a #b""#),
            vec![
                ("  ", Token::Plain),
                ("regex", Token::Key),
                (":", Token::Plain),
                (r#" "a #b""#, Token::Value),
            ]
        );
    }

    #[test]
    fn a_jump_lands_at_the_start_of_its_line() {
        let text = "a: 1\nb: é\nc: 3\n";
        assert_eq!(line_start(text, 1), 0);
        assert_eq!(line_start(text, 2), 5);
        assert_eq!(line_start(text, 3), 10, "characters, not bytes");
        assert_eq!(line_start(text, 9), text.chars().count());
    }

    #[test]
    fn a_line_keeps_its_worst_diagnostic() {
        let d = |line, severity| {
            let mut d = Diagnostic::new(severity, "X", "m".to_owned(), "f".to_owned(), line);
            d.line = line;
            d
        };
        let marks = marked_lines(&[
            d(3, Severity::Warning),
            d(3, Severity::Error),
            d(5, Severity::Warning),
        ]);
        assert_eq!(marks.get(&3), Some(&Severity::Error));
        assert_eq!(marks.get(&5), Some(&Severity::Warning));
        assert_eq!(marks.get(&4), None);
    }
}
