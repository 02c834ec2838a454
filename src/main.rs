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
        None => {
            eprintln!("mirrorlab: desktop app not built yet");
            ExitCode::from(2)
        }
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
