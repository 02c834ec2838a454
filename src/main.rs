//! The `mirrorlab` binary: desktop app, headless proxy, config checker and demo services.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod replay_cli;

/// mimalloc: about a tenth fewer instructions per proxied request than glibc malloc, and
/// a fifth more requests a second (docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Desktop app: listen on ADDR this run, instead of the saved address.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Desktop app: show this tab at start (routes, dashboard, traffic, diffs, yaml). With
    /// --screenshot and traffic, the newest exchange where the shadow differs is selected.
    #[arg(long, value_name = "NAME")]
    tab: Option<mirrorlab::ui::Tab>,
}

#[derive(Debug, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once from the command line and taken apart at once"
)]
enum Command {
    /// Print diagnostics for Istio YAML files; exit 1 if any error.
    Check {
        /// Files to check together, as `istioctl analyze` does.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run the mirroring proxy headless: prints `listening on ADDR`, a summary every 5 s on
    /// stderr, hot-reloads CONFIG when it changes, and writes a JSON report at exit.
    Run {
        /// Istio YAML to serve (VirtualServices, DestinationRules, ServiceEntries).
        config: PathBuf,
        /// Address to listen on.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15001")]
        listen: SocketAddr,
        /// Allow a listen address other than loopback.
        #[arg(long)]
        allow_remote: bool,
        /// Host for requests addressed to the proxy itself (default: the only VirtualService's first host).
        #[arg(long, value_name = "NAME")]
        host: Option<String>,
        /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
        #[arg(long, value_name = "S")]
        duration: Option<f64>,
        /// Write the JSON report here at exit (default: print it on stdout).
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Also write the captured exchanges as HAR 1.2 here at exit (credentials redacted).
        #[arg(long, value_name = "FILE")]
        har: Option<PathBuf>,
        /// Also save the session here at exit: the captures, the config and the analysis
        /// settings (reopen it in the app, `mirrorlab report` it, or replay it).
        #[arg(long, value_name = "FILE")]
        session: Option<PathBuf>,
        /// Keep credential values (Authorization, Cookie, API keys) in the HAR and session.
        #[arg(long)]
        keep_credentials: bool,
        /// Seed for the mirror percentage draws, to repeat a run exactly.
        #[arg(long, value_name = "N")]
        seed: Option<u64>,
        /// Append `-shadow` to the Host of mirrored requests (Envoy, Istio before 1.28).
        #[arg(long)]
        shadow_host_suffix: bool,
        /// Threads serving the proxy's connections, each with its own event loop
        /// (default: one per two CPUs, up to 4).
        #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
        workers: usize,
        /// Labels of the client workload whose sidecar the lab plays, as `k=v,k=v`; match
        /// blocks with `sourceLabels` are tested against them (default: none).
        #[arg(long, value_name = "LABELS", value_parser = parse_labels, default_value = "")]
        source_labels: LabelList,
        /// Namespace of the client workload (`sourceNamespace` is tested against it).
        #[arg(long, value_name = "NS", default_value = "default")]
        source_namespace: String,
        /// Act as this Gateway (`NAMESPACE/NAME`) instead of a sidecar: VirtualServices
        /// bound to it apply, and those bound only to `mesh` do not.
        #[arg(long, value_name = "NS/NAME", value_parser = parse_gateway)]
        gateway: Option<String>,
        /// Headers removed from every mirrored copy (comma-separated names, e.g.
        /// `authorization,cookie`), before each route's own annotations.
        #[arg(long, value_name = "NAMES", default_value = "")]
        mirror_remove_headers: String,
        /// A header set on every mirrored copy, `name: value` (repeat for more), after the
        /// removals.
        #[arg(long, value_name = "NAME: VALUE")]
        mirror_set_header: Vec<String>,
        /// A FileDescriptorSet (`protoc --descriptor_set_out`, `buf build -o`) that reads the
        /// gRPC messages of every route whose VirtualService has no
        /// `mirrorlab.dev/grpc-descriptors` annotation (the annotation wins).
        #[arg(long, value_name = "FILE")]
        grpc_descriptors: Option<PathBuf>,
        /// Do not ask a gRPC call's primary for its descriptors by server reflection (the
        /// lab's own call to the endpoint) when no annotation or setting gives them.
        #[arg(long)]
        no_grpc_reflection: bool,
    },
    /// Write a file's VirtualServices as HTTPRoutes, or its HTTPRoutes and GRPCRoutes as
    /// VirtualServices (every other resource kept); print on stderr exactly what the other
    /// API cannot express. Exit 1 if the file does not load, 3 if nothing converted.
    Convert {
        /// The Istio or Gateway API YAML to convert.
        file: PathBuf,
        /// `httproute` or `virtualservice`.
        #[arg(long, value_name = "KIND")]
        to: ConvertTarget,
        /// Write the result here (default: stdout).
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Replay recorded traffic (HAR, GoReplay `.gor`, a session) through a lab running
    /// CONFIG: progress on stderr, the JSON report at the end.
    Replay(replay_cli::ReplayArgs),
    /// Write the JSON report of a saved session, with no proxy running.
    Report(replay_cli::ReportArgs),
    /// Print what changed between two reports: per route and field, side by side.
    Compare(replay_cli::CompareArgs),
    /// Start demo upstream services at the addresses CONFIG's ServiceEntries name.
    Demo {
        /// Istio YAML whose ServiceEntries say where to listen (default: the built-in sample).
        config: Option<PathBuf>,
        /// Also send this many requests per second through the proxy.
        #[arg(long, value_name = "RPS")]
        traffic: Option<f64>,
        /// The proxy's address, for --traffic.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15001")]
        proxy: SocketAddr,
        /// Host header for --traffic (default: the config's first VirtualService host).
        #[arg(long, value_name = "NAME")]
        host: Option<String>,
    },
}

/// Which way `mirrorlab convert` goes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ConvertTarget {
    /// VirtualServices → HTTPRoutes.
    Httproute,
    /// HTTPRoutes and GRPCRoutes → VirtualServices.
    Virtualservice,
}

fn parse_labels(text: &str) -> Result<LabelList, String> {
    mirrorlab::routing::workload::parse_labels(text)
        .map(LabelList)
        .map_err(|e| e.to_string())
}

fn parse_gateway(text: &str) -> Result<String, String> {
    match mirrorlab::routing::workload::parse_gateway(text) {
        Ok(Some(gateway)) => Ok(gateway),
        Ok(None) => Err("the gateway is empty; write NAMESPACE/NAME".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// `--source-labels app=productpage,version=v1`, in the order given.
#[derive(Debug, Clone, Default)]
struct LabelList(mirrorlab::config::model::OrderedMap<String>);

/// Logs go to stderr through `tracing`; RUST_LOG overrides the default level (info).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for people; logs piped to a file or a test stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Runs `work` on a fresh multi-thread runtime; the engine never builds one itself.
fn on_runtime<F, Fut>(work: F) -> anyhow::Result<()>
where
    F: FnOnce(tokio::runtime::Handle) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    runtime.block_on(work(handle))
}

fn report_failure(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mirrorlab: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check { files }) => check(&files),
        Some(Command::Convert { file, to, output }) => convert(&file, to, output.as_deref()),
        Some(Command::Run {
            config,
            listen,
            allow_remote,
            host,
            duration,
            report,
            har,
            session,
            keep_credentials,
            seed,
            shadow_host_suffix,
            workers,
            source_labels,
            source_namespace,
            gateway,
            mirror_remove_headers,
            mirror_set_header,
            grpc_descriptors,
            no_grpc_reflection,
        }) => {
            init_logging();
            let mirror_headers = match mirrorlab::routing::MirrorHeaders::lab_wide(
                &mirror_remove_headers,
                &mirror_set_header.join("\n"),
            ) {
                Ok(headers) => headers,
                Err(err) => {
                    eprintln!("mirrorlab run: {err}");
                    return ExitCode::from(2);
                }
            };
            let duration = match duration.map(Duration::try_from_secs_f64).transpose() {
                Ok(duration) => duration,
                Err(err) => {
                    eprintln!(
                        "mirrorlab run: --duration must be a positive number of seconds: {err}"
                    );
                    return ExitCode::from(2);
                }
            };
            let options = mirrorlab::lab::headless::RunOptions {
                config,
                listen,
                allow_remote,
                host,
                duration,
                report,
                har,
                seed,
                shadow_host_suffix,
                workers,
                workload: mirrorlab::routing::Workload {
                    labels: source_labels.0,
                    namespace: source_namespace,
                    gateway,
                },
                mirror_headers,
                session,
                keep_credentials,
                announce_listen: true,
                grpc_descriptors,
                grpc_reflection: !no_grpc_reflection,
            };
            report_failure(on_runtime(|handle| async move {
                Ok(mirrorlab::lab::headless::run(handle, options).await?)
            }))
        }
        Some(Command::Replay(args)) => replay_cli::replay(args),
        Some(Command::Report(args)) => replay_cli::report(args),
        Some(Command::Compare(args)) => replay_cli::compare(args),
        Some(Command::Demo {
            config,
            traffic,
            proxy,
            host,
        }) => {
            init_logging();
            let options = mirrorlab::demo::DemoOptions {
                config,
                traffic,
                proxy,
                host,
            };
            report_failure(on_runtime(|handle| async move {
                Ok(mirrorlab::demo::run(handle, options).await?)
            }))
        }
        None => match run_desktop(DesktopArgs {
            config: cli.config,
            screenshot: cli.screenshot,
            demo: cli.demo,
            listen: cli.listen,
            tab: cli.tab,
        }) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("mirrorlab: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The desktop app's command line.
struct DesktopArgs {
    config: Option<PathBuf>,
    screenshot: Option<PathBuf>,
    demo: bool,
    listen: Option<String>,
    tab: Option<mirrorlab::ui::Tab>,
}

/// `mirrorlab [CONFIG] [--screenshot PATH [--demo]]`: the eframe window on the main thread,
/// the engine on a tokio runtime that this function owns and outlives the window.
fn run_desktop(args: DesktopArgs) -> anyhow::Result<ExitCode> {
    let DesktopArgs {
        config,
        screenshot,
        demo,
        listen,
        tab,
    } = args;
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
        listen,
        tab,
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
    use mirrorlab::config::{ConfigSet, Severity};
    use std::io::Write;

    let set = ConfigSet::load_files(files);
    let count = |s| set.diagnostics().iter().filter(|d| d.severity == s).count();
    let errors = count(Severity::Error);
    let warnings = count(Severity::Warning);
    // Infos (what only the cluster can tell) are counted only when there are some, so a
    // clean config still reads "0 error(s), 0 warning(s)".
    let infos = match count(Severity::Info) {
        0 => String::new(),
        n => format!(", {n} info"),
    };
    let mut out = std::io::stdout().lock();
    let printed = set
        .diagnostics()
        .iter()
        .try_for_each(|d| writeln!(out, "{d}"))
        .and_then(|()| {
            writeln!(
                out,
                "{} file(s), {} resource(s): {errors} error(s), {warnings} warning(s){infos}",
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

/// `mirrorlab convert FILE --to KIND`: the converted YAML on stdout (or `-o`), what cannot
/// be expressed on stderr.
fn convert(
    file: &std::path::Path,
    to: ConvertTarget,
    output: Option<&std::path::Path>,
) -> ExitCode {
    use mirrorlab::config::gateway::{Target, translate_file};
    use mirrorlab::config::{ConfigSet, Severity};

    let set = ConfigSet::load_files(&[file.to_path_buf()]);
    let load_errors: Vec<_> = set
        .diagnostics()
        .iter()
        .filter(|d| {
            d.severity == Severity::Error
                && matches!(d.code, "ML0001" | "ML0002" | "ML0003" | "ML0004" | "ML0006")
        })
        .collect();
    if !load_errors.is_empty() {
        for d in load_errors {
            eprintln!("{d}");
        }
        eprintln!(
            "mirrorlab convert: {} does not load; fix it first (mirrorlab check)",
            file.display()
        );
        return ExitCode::from(1);
    }
    let target = match to {
        ConvertTarget::Httproute => Target::HttpRoute,
        ConvertTarget::Virtualservice => Target::VirtualService,
    };
    let translation = match translate_file(&set, 0, target) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mirrorlab convert: {e}");
            return ExitCode::from(1);
        }
    };
    let written = match output {
        Some(path) => std::fs::write(path, &translation.yaml)
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => {
            use std::io::Write as _;
            std::io::stdout()
                .lock()
                .write_all(translation.yaml.as_bytes())
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| format!("cannot write the result: {e}"))
        }
    };
    if let Err(e) = written {
        eprintln!("mirrorlab convert: {e}");
        return ExitCode::from(1);
    }
    for l in &translation.limitations {
        eprintln!("cannot express: {l}");
    }
    let what = match target {
        Target::HttpRoute => "VirtualService(s) written as HTTPRoute(s)",
        Target::VirtualService => "VirtualService(s) written for the Gateway API routes",
    };
    eprintln!(
        "{} {what}; {} thing(s) not expressible",
        translation.converted,
        translation.limitations.len()
    );
    if translation.converted == 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}
