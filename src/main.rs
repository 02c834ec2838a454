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
    use mirrorlab::config::{ConfigSet, Severity};
    use std::io::Write;

    let set = ConfigSet::load_files(files);
    let count = |s| set.diagnostics().iter().filter(|d| d.severity == s).count();
    let errors = count(Severity::Error);
    let warnings = count(Severity::Warning);
    let mut out = std::io::stdout().lock();
    let printed = set
        .diagnostics()
        .iter()
        .try_for_each(|d| writeln!(out, "{d}"))
        .and_then(|()| {
            writeln!(
                out,
                "{} file(s), {} resource(s): {errors} error(s), {warnings} warning(s)",
                set.files().len(),
                set.resources().len()
            )
        });
    // A closed pipe (`mirrorlab check ... | head`) is not a failure of the check; the exit
    // code still says whether the config has errors.
    if let Err(e) = printed
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("mirrorlab check: cannot write the report: {e}");
    }
    if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
