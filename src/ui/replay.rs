//! The Replay… window: a traffic file (HAR, GoReplay `.gor`, a session), how fast, how
//! many at once, how many rounds; then progress, pause, resume and stop.

use crate::replay::{Pace, ReplayOptions, ReplayProgress, SourceOptions};

/// What the form holds between frames.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayForm {
    /// The traffic file, as typed or picked.
    pub path: String,
    /// `1`, a factor, or `max`.
    pub speed: String,
    /// Most requests in flight.
    pub concurrency: usize,
    /// Rounds through the file; 0: until stopped.
    pub rounds: u32,
    /// Send the recorded credentials.
    pub keep_credentials: bool,
    /// Why the last start was refused.
    pub error: Option<String>,
}

impl Default for ReplayForm {
    fn default() -> Self {
        Self {
            path: String::new(),
            speed: "1".to_owned(),
            concurrency: ReplayOptions::default().concurrency,
            rounds: 1,
            keep_credentials: false,
            error: None,
        }
    }
}

/// What the window asks for this frame.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayAction {
    /// Pick the traffic file.
    Browse,
    /// Start replaying.
    Start,
    /// Hold the next requests back.
    Pause,
    /// Go on.
    Resume,
    /// Send nothing more.
    Stop,
}

impl ReplayForm {
    /// The replay's options, or what is wrong with the form.
    pub fn options(&self) -> Result<(ReplayOptions, SourceOptions), String> {
        if self.path.trim().is_empty() {
            return Err("Pick a traffic file first.".to_owned());
        }
        let pace = Pace::parse(&self.speed)?;
        Ok((
            ReplayOptions {
                pace,
                concurrency: self.concurrency.max(1),
                rounds: (self.rounds > 0).then_some(self.rounds),
                ..ReplayOptions::default()
            },
            SourceOptions {
                keep_credentials: self.keep_credentials,
            },
        ))
    }

    /// The window's contents; `progress` is the replay under way or the last one.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        progress: Option<&ReplayProgress>,
    ) -> Option<ReplayAction> {
        let mut action = None;
        let running = progress.is_some_and(|p| !p.finished);
        egui::Grid::new("replay-form")
            .num_columns(2)
            .show(ui, |ui| {
                let label = ui.label("Traffic file");
                ui.horizontal(|ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut self.path)
                            .hint_text("HAR, .gor or session")
                            .desired_width(260.0),
                    )
                    .labelled_by(label.id);
                    if ui.button("Browse…").clicked() {
                        action = Some(ReplayAction::Browse);
                    }
                });
                ui.end_row();
                let label = ui.label("Speed");
                ui.add(
                    egui::TextEdit::singleline(&mut self.speed)
                        .hint_text("1, 10 or max")
                        .desired_width(80.0),
                )
                .labelled_by(label.id)
                .on_hover_text("1: the original pace; 10: ten times faster; max: no waiting");
                ui.end_row();
                let label = ui.label("Concurrency");
                ui.add(egui::DragValue::new(&mut self.concurrency).range(1..=1024))
                    .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Rounds");
                ui.add(egui::DragValue::new(&mut self.rounds).range(0..=1000))
                    .labelled_by(label.id)
                    .on_hover_text("0: until stopped");
                ui.end_row();
                ui.label("");
                ui.checkbox(&mut self.keep_credentials, "Keep credentials")
                    .on_hover_text(
                        "Send Authorization, Cookie and API keys as recorded (stripped by default)",
                    );
                ui.end_row();
            });
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!running, egui::Button::new("Start"))
                .clicked()
            {
                action = Some(ReplayAction::Start);
            }
            let paused = progress.is_some_and(|p| p.paused);
            let (label, pause) = if paused {
                ("Resume", ReplayAction::Resume)
            } else {
                ("Pause", ReplayAction::Pause)
            };
            if ui.add_enabled(running, egui::Button::new(label)).clicked() {
                action = Some(pause);
            }
            if ui.add_enabled(running, egui::Button::new("Stop")).clicked() {
                action = Some(ReplayAction::Stop);
            }
        });
        if let Some(p) = progress {
            let text = format!(
                "{} sent{}, {} answered, {} failed{}",
                p.sent,
                p.total.map_or_else(String::new, |t| format!(" of {t}")),
                p.answered,
                p.failed,
                if p.finished {
                    " (done)"
                } else if p.paused {
                    " (paused)"
                } else {
                    ""
                }
            );
            let fraction = p.total.map_or(0.0, |t| p.sent as f32 / t.max(1) as f32);
            ui.add(egui::ProgressBar::new(fraction).text(text));
            if let Some(why) = &p.first_failure {
                ui.colored_label(ui.visuals().warn_fg_color, format!("First failure: {why}"));
            }
        }
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        action
    }
}
