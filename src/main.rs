//! The `mirrorlab` binary: desktop app, headless proxy, config checker and demo services.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A desktop lab for Istio-style traffic mirroring.
#[derive(Debug, Parser)]
#[command(
    name = "mirrorlab",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Istio YAML to open in the desktop app.
    config: Option<PathBuf>,
    /// Desktop app: run a few seconds, write a PNG of the window to PATH, and exit.
    #[arg(long, value_name = "PATH")]
    screenshot: Option<PathBuf>,
    /// Desktop app: start the demo services and their traffic at launch.
    #[arg(long)]
    demo: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print diagnostics for Istio YAML files; exit 1 if any error.
    Check {
        /// Files to check together, as `istioctl analyze` does.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check { files }) => check(&files),
        None => match run_desktop(cli.config, cli.screenshot, cli.demo) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("mirrorlab: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `mirrorlab [CONFIG] [--screenshot PATH [--demo]]`: the eframe window on the main thread,
/// the engine on a tokio runtime that this function owns and outlives the window.
fn run_desktop(
    config: Option<PathBuf>,
    screenshot: Option<PathBuf>,
    demo: bool,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    use mirrorlab::ui::{AppOptions, MirrorlabApp};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mirrorlab-engine")
        .build()
        .context("cannot start the tokio runtime")?;
    let options = AppOptions {
        config,
        screenshot: screenshot.clone(),
        demo,
        // A screenshot run must look the same on every machine: no saved layout.
        fresh_state: screenshot.is_some(),
        ..AppOptions::default()
    };
    let outcome = std::sync::Arc::clone(&options.screenshot_outcome);
    let handle = runtime.handle().clone();
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("mirrorlab")
            .with_inner_size([1400.0, 900.0])
            .with_min_inner_size([720.0, 480.0])
            .with_drag_and_drop(true),
        // A screenshot run must not overwrite the user's saved settings.
        persist_window: screenshot.is_none(),
        ..eframe::NativeOptions::default()
    };
    eframe::run_native(
        "mirrorlab",
        native,
        Box::new(move |cc| Ok(Box::new(MirrorlabApp::new(cc, handle, options)))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));

    if screenshot.is_none() {
        return Ok(ExitCode::SUCCESS);
    }
    let result = outcome.lock().ok().and_then(|mut o| o.take());
    match result {
        Some(Ok(path)) => {
            println!("wrote {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(e)) => anyhow::bail!("screenshot failed: {e}"),
        None => anyhow::bail!("the window closed before the screenshot was taken"),
    }
}

/// `mirrorlab check FILE...`: diagnostics as a compiler prints them; exit 1 on any error.
fn check(files: &[PathBuf]) -> ExitCode {
    let set = mirrorlab::config::ConfigSet::load_files(files);
    for d in set.diagnostics() {
        println!("{d}");
    }
    let count = |s| set.diagnostics().iter().filter(|d| d.severity == s).count();
    let errors = count(mirrorlab::config::Severity::Error);
    let warnings = count(mirrorlab::config::Severity::Warning);
    let resources = set.resources().len();
    println!(
        "{} file(s), {resources} resource(s): {errors} error(s), {warnings} warning(s)",
        set.files().len()
    );
    if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
