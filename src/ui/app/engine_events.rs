//! What the app does once a frame before the panels: take the engine's view, events and
//! new exchanges (never waiting for any of them), and the window's own news (close
//! request, dropped files, the file changing on disk).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::state::{DEFAULT_LISTEN, DISK_POLL, Pending, SCREENSHOT_SELECT_LEAD, Tab, plural};
use super::{Command, MirrorlabApp, ProxyProblem, RunPurpose};
use crate::capture::{ShadowOutcome, UpstreamOutcome};
use crate::lab::control::{LabCommand, LabEvent, SendOutcome, StartFailure};
use crate::ui::traffic;

impl MirrorlabApp {
    /// Pulls the engine's news: its view, its events, new exchanges, comparisons.
    pub(super) fn poll_engine(&mut self) {
        // Read before the events: once the engine is idle, every event of its finished
        // commands is already queued, so none waits for a frame nobody asks for.
        self.busy = !self.lab.is_idle();
        self.view = self.lab.view();
        for event in self.lab.events() {
            self.on_event(event);
        }
        // Taken even while paused, so the engine's feed never fills; the panel keeps the
        // ones that arrive while paused aside (bounded) instead of showing them.
        let new = self.lab.take_exchanges();
        self.traffic.push(new, Some(&self.view.analysis));
        if let Some((exchange, shadow_index)) = self.traffic.wanted_comparison() {
            self.lab.send(LabCommand::Compare {
                exchange,
                shadow_index,
            });
        }
    }

    fn on_event(&mut self, event: LabEvent) {
        match event {
            LabEvent::Running {
                addr,
                started,
                tag,
                warnings: _,
                ignore_errors,
            } => self.on_running(addr, started, tag, ignore_errors),
            LabEvent::Refused {
                failure,
                running,
                tag,
            } => self.on_refused(&failure, running, tag),
            LabEvent::Stopped => self.info("Proxy stopped."),
            LabEvent::DemoStarted { .. } => {
                // The command line's tab wins over the demo's own choice.
                self.state.tab = self.options.tab.unwrap_or(Tab::Dashboard);
                self.info(format!(
                    "Demo running: services from the config's ServiceEntries, {} requests/s through the proxy.",
                    super::state::DEMO_RPS
                ));
            }
            LabEvent::DemoFailed(why) => self.error(why),
            LabEvent::DemoStopped => self.info("Demo services and their traffic stopped."),
            LabEvent::Cleared => {}
            LabEvent::IgnoreRulesApplied => {
                if self.ignore_errors.is_empty() {
                    self.info("Ignore rules applied to the running analysis.");
                }
            }
            LabEvent::Sent(outcome) => {
                self.sending = false;
                if let SendOutcome::Failed(why) = &outcome {
                    self.error(why.clone());
                }
                self.last_send = Some(outcome);
            }
            LabEvent::Compared(comparison) => self.traffic.set_comparison(*comparison),
            LabEvent::SessionOpened(Ok(opened)) => {
                self.traffic.clear();
                self.traffic
                    .push(opened.exchanges.clone(), Some(&opened.analysis));
                self.state.tab = Tab::Dashboard;
                self.info(format!(
                    "Opened the session {} ({} exchange{}, config {}). No proxy runs: Dashboard, Traffic and Diffs show the session.",
                    opened.path.display(),
                    opened.exchanges.len(),
                    plural(opened.exchanges.len()),
                    if opened.config.is_empty() { "unknown".to_owned() } else { opened.config.join(", ") }
                ));
            }
            LabEvent::SessionOpened(Err(e)) => self.error(format!("Session not opened: {e}")),
            LabEvent::SessionsCompared(rows) => {
                self.compare_form.waiting = false;
                self.compare_form.result = Some(rows);
            }
            LabEvent::SessionSaved { path, result } => match result {
                Ok(n) => self.info(format!(
                    "Saved the session {} ({n} exchange{}, credentials redacted): File > Open session… or `mirrorlab report` it.",
                    path.display(),
                    plural(n)
                )),
                Err(e) => self.error(format!("Session not saved: {e}")),
            },
            LabEvent::ReplayStarted {
                path,
                requests,
                credentials_stripped,
            } => {
                self.replay_form.error = None;
                self.state.tab = Tab::Traffic;
                self.info(format!(
                    "Replaying {requests} request{} from {} ({credentials_stripped} credential header(s) stripped); replayed exchanges are marked in Traffic.",
                    plural(requests),
                    path.display()
                ));
            }
            LabEvent::ReplayFailed(e) => {
                self.error(format!("Not replayed: {e}"));
                self.replay_form.error = Some(e);
            }
            LabEvent::Exported { path, result } => match result {
                Ok(n) => self.info(format!(
                    "Wrote {n} exchanges to {} (Authorization and cookies redacted)",
                    path.display()
                )),
                Err(e) => self.error(format!("HAR not written: {e}")),
            },
        }
    }

    fn take_run(&mut self, tag: u64) -> Option<super::PendingRun> {
        let at = self.runs.iter().position(|r| r.tag == tag)?;
        // Runs are answered in order: older ones without an answer were superseded.
        self.runs.drain(..=at).next_back()
    }

    fn on_running(
        &mut self,
        addr: std::net::SocketAddr,
        started: bool,
        tag: u64,
        ignore_errors: Vec<String>,
    ) {
        let run = self.take_run(tag);
        if let Some(run) = &run {
            self.doc.mark_applied_revision(run.revision);
        }
        if started {
            self.traffic.clear();
            self.proxy_problem = None;
        }
        let purpose = run.map_or(RunPurpose::Needed, |r| r.purpose);
        let text = match (&purpose, started) {
            (RunPurpose::Opened(opened), true) => {
                let opened = if opened.is_empty() {
                    String::new()
                } else {
                    format!("{opened}. ")
                };
                format!(
                    "{opened}Proxy listening on {addr}: send requests there and watch them here."
                )
            }
            (RunPurpose::Opened(opened), false) => {
                format!("{opened}. The running proxy now routes with it.")
            }
            (RunPurpose::Apply, false) => {
                "Applied: the proxy now routes with these routes.".to_owned()
            }
            _ => format!("Proxy listening on {addr}"),
        };
        self.ignore_errors = ignore_errors;
        match self.ignore_errors.first() {
            Some(first) => self.error(format!(
                "{text} But {} lab-only annotation{} or setting{} not in force: {first}",
                self.ignore_errors.len(),
                plural(self.ignore_errors.len()),
                if self.ignore_errors.len() == 1 {
                    " is"
                } else {
                    "s are"
                }
            )),
            None => self.info(text),
        }
    }

    fn on_refused(&mut self, failure: &StartFailure, running: bool, tag: u64) {
        self.take_run(tag);
        if let StartFailure::Config(errors) = failure {
            let n = errors.len();
            // The document's own diagnostic says it in the Routes tab's words; an error
            // only the route compiler finds comes as the engine printed it.
            let first = self
                .doc
                .config()
                .diagnostics()
                .iter()
                .find(|d| d.severity == crate::config::Severity::Error)
                .map(|d| format!("line {}: {}", d.line, d.message))
                .or_else(|| errors.first().cloned())
                .unwrap_or_default();
            let consequence = if running {
                "so the proxy keeps its routes"
            } else {
                "so the proxy was not started"
            };
            self.error(format!(
                "The config has {n} error{}, {consequence}: {first}. \
                 The Routes tab shows each next to its field.",
                plural(n)
            ));
            if !running {
                self.proxy_problem = Some(ProxyProblem {
                    text: format!(
                        "Proxy not started: the config has {n} error{}. Fix {} in the Routes tab, then press Start.",
                        plural(n),
                        if n == 1 { "it" } else { "them" }
                    ),
                    free_addr: None,
                    config_errors: true,
                });
            }
            return;
        }
        let problem = start_problem(failure, &self.state.listen_addr);
        if running {
            self.error(problem.text);
        } else {
            // The top bar shows it (until the next start), not the status line.
            self.proxy_problem = Some(problem);
        }
    }

    /// A screenshot of Traffic shows a selected exchange: shortly before the shot, select
    /// the newest one whose shadow's response differs from the primary's.
    pub(super) fn prepare_screenshot(&mut self) {
        let Some(job) = &self.screenshot else { return };
        if self.state.tab != Tab::Traffic
            || self.traffic.selected.is_some()
            || job.due_in() > SCREENSHOT_SELECT_LEAD
        {
            return;
        }
        let analysis = Arc::clone(&self.view.analysis);
        let answered =
            |o: &ShadowOutcome| matches!(o, ShadowOutcome::Sent(UpstreamOutcome::Response(_)));
        let pick = self.traffic.newest_where(|e| {
            traffic::differs(Some(&analysis), e.id)
                && e.shadows.first().is_some_and(|s| answered(&s.outcome))
        });
        if let Some(id) = pick {
            self.commands.push(Command::ShowExchange(id));
        }
    }

    /// Handles the window's close button: with unsaved edits, ask first.
    pub(super) fn guard_close(&mut self, ctx: &egui::Context) {
        if ctx.input(|i| i.viewport().close_requested())
            && self.doc.is_dirty()
            && !self.quit_confirmed
            && self.screenshot.is_none()
        {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.confirm = Some(Pending::Quit);
        }
    }

    pub(super) fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        if let Some(path) = dropped.into_iter().next() {
            self.commands.push(Command::Open(path));
        }
    }

    pub(super) fn poll_disk(&mut self) {
        if self.last_disk_poll.elapsed() < DISK_POLL {
            return;
        }
        self.last_disk_poll = Instant::now();
        if self.doc.changed_on_disk() {
            self.disk_changed = true;
        }
    }

    pub(super) fn update_title(&mut self, ctx: &egui::Context) {
        let title = self.window_title();
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
    }
}

/// Explains why the proxy did not start on `listen`, with a way out.
fn start_problem(failure: &StartFailure, listen: &str) -> ProxyProblem {
    let mut free_addr = None;
    let text = match failure {
        StartFailure::ListenAddress(typed) => {
            format!(
                "Proxy not started: '{typed}' is not a listen address; write it as {DEFAULT_LISTEN}."
            )
        }
        StartFailure::AddressInUse { addr, free } => {
            free_addr = free.map(|a| a.to_string());
            format!(
                "Proxy not started: port {} on {} is already in use (another mirrorlab, \
                 or another program). Type a free address in 'listen on' and press Start{}.",
                addr.port(),
                addr.ip(),
                if free_addr.is_some() {
                    ", or use the one offered"
                } else {
                    ""
                }
            )
        }
        StartFailure::PermissionDenied { addr } => format!(
            "Proxy not started: this user may not listen on {addr} (ports below 1024 \
             need privileges). Use a port above 1024, e.g. {DEFAULT_LISTEN}."
        ),
        StartFailure::AddressNotAvailable { addr } => format!(
            "Proxy not started: {} is not an address of this machine. Use 127.0.0.1 \
             (e.g. {DEFAULT_LISTEN}).",
            addr.ip()
        ),
        StartFailure::RemoteListen { addr } => format!(
            "Proxy not started: {addr} is not a loopback address, so other machines could send \
             traffic through the lab. Tick 'Allow that' if you mean it, or listen on 127.0.0.1."
        ),
        StartFailure::Config(errors) => format!(
            "Proxy not started: the config has {} error{}.",
            errors.len(),
            plural(errors.len())
        ),
        StartFailure::Other(why) => format!("Proxy not started on {listen}: {why}"),
    };
    ProxyProblem {
        text,
        free_addr,
        config_errors: matches!(failure, StartFailure::Config(_)),
    }
}
