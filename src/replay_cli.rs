//! The command line of `mirrorlab replay`, `report` and `compare`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

/// `mirrorlab replay TRAFFIC CONFIG ...`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The traffic: a HAR 1.2 file, a GoReplay `.gor` capture, or a lab session.
    traffic: PathBuf,
    /// Istio YAML the lab runs while the traffic is replayed.
    config: PathBuf,
    /// `1` (the original pace, the default), a factor (`10`: ten times faster), or `max`.
    #[arg(long, value_name = "FACTOR|max", default_value = "1", value_parser = mirrorlab::replay::Pace::parse)]
    speed: mirrorlab::replay::Pace,
    /// Most requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    concurrency: usize,
    /// Replay the traffic N times (`--loop=N`); `--loop` alone: until Ctrl-C.
    #[arg(
        long = "loop",
        value_name = "N",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "0"
    )]
    rounds: Option<u32>,
    /// Only requests matching `host=NAME,method=GET,path=GLOB` (keys AND'd, a key given
    /// twice OR'd; `*` in host and path globs). Repeat to add keys.
    #[arg(long, value_name = "KEY=VALUE,...")]
    filter: Vec<String>,
    /// Send requests recorded for host OLD to the lab as host NEW (repeat for more).
    #[arg(long, value_name = "OLD=NEW")]
    host_map: Vec<String>,
    /// Send the recorded credentials (Authorization, Cookie, API keys) instead of
    /// stripping them; the HAR and session written keep them too.
    #[arg(long)]
    keep_credentials: bool,
    /// Seconds one request may take before it counts as failed.
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    timeout: f64,
    /// Address of the lab's proxy for the replay (port 0: an ephemeral one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Host for requests addressed to the proxy itself.
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
    /// Seed for the mirror percentage draws.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Append `-shadow` to the Host of mirrored requests (Envoy, Istio before 1.28).
    #[arg(long)]
    shadow_host_suffix: bool,
    /// Write the JSON report here (default: stdout).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Also write the exchanges as HAR 1.2 here.
    #[arg(long, value_name = "FILE")]
    har: Option<PathBuf>,
    /// Also save the session here (reopen it in the app, or `mirrorlab report` it).
    #[arg(long, value_name = "FILE")]
    session: Option<PathBuf>,
    /// A FileDescriptorSet for the gRPC messages of routes without a
    /// `mirrorlab.dev/grpc-descriptors` annotation (as `mirrorlab run --grpc-descriptors`).
    #[arg(long, value_name = "FILE")]
    grpc_descriptors: Option<PathBuf>,
    /// Do not ask gRPC primaries for descriptors by server reflection.
    #[arg(long)]
    no_grpc_reflection: bool,
}

/// `mirrorlab report SESSION`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A session saved by `run --session`, `replay --session` or the app.
    session: PathBuf,
    /// Write the JSON report here (default: stdout).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// A FileDescriptorSet for the gRPC messages of routes without an annotation's (a
    /// session does not keep descriptors, its annotations' included).
    #[arg(long, value_name = "FILE")]
    grpc_descriptors: Option<PathBuf>,
}

/// `mirrorlab compare A.json B.json`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The first report.
    a: PathBuf,
    /// The report to compare with it.
    b: PathBuf,
    /// Print the rows as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn usage(message: String) -> ExitCode {
    eprintln!("mirrorlab replay: {message}");
    ExitCode::from(2)
}

/// Runs `mirrorlab replay`.
pub fn replay(args: ReplayArgs) -> ExitCode {
    super::init_logging();
    let filter = match mirrorlab::replay::RequestFilter::parse(&args.filter.join(",")) {
        Ok(f) => f,
        Err(e) => return usage(format!("--filter: {e}")),
    };
    let hosts = match mirrorlab::replay::HostMap::parse(&args.host_map) {
        Ok(h) => h,
        Err(e) => return usage(format!("--host-map: {e}")),
    };
    let timeout = match Duration::try_from_secs_f64(args.timeout) {
        Ok(t) if !t.is_zero() => t,
        _ => return usage("--timeout must be a positive number of seconds".to_owned()),
    };
    let command = mirrorlab::lab::replay::ReplayCommand {
        traffic: args.traffic,
        run: mirrorlab::lab::headless::RunOptions {
            config: args.config,
            listen: args.listen,
            allow_remote: false,
            host: args.host,
            duration: None,
            report: args.report,
            har: args.har,
            seed: args.seed,
            shadow_host_suffix: args.shadow_host_suffix,
            workers: 0,
            workload: mirrorlab::routing::Workload::default(),
            mirror_headers: mirrorlab::routing::MirrorHeaders::default(),
            session: args.session,
            keep_credentials: args.keep_credentials,
            announce_listen: false,
            grpc_descriptors: args.grpc_descriptors,
            grpc_reflection: !args.no_grpc_reflection,
        },
        source: mirrorlab::replay::SourceOptions {
            keep_credentials: args.keep_credentials,
        },
        filter,
        hosts,
        replay: mirrorlab::replay::ReplayOptions {
            pace: args.speed,
            concurrency: args.concurrency.max(1),
            rounds: match args.rounds {
                None => Some(1),
                Some(0) => None,
                Some(n) => Some(n),
            },
            timeout,
        },
    };
    super::report_failure(super::on_runtime(|handle| async move {
        mirrorlab::lab::replay::replay(handle, command).await?;
        Ok(())
    }))
}

/// Runs `mirrorlab report SESSION`.
pub fn report(args: ReportArgs) -> ExitCode {
    // A descriptors file that does not load is logged and the report is written without it.
    if args.grpc_descriptors.is_some() {
        super::init_logging();
    }
    let report = mirrorlab::lab::replay::report_session(
        &args.session,
        args.report.as_deref(),
        args.grpc_descriptors.as_deref(),
    );
    match report {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mirrorlab report: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `mirrorlab compare A B`.
pub fn compare(args: CompareArgs) -> ExitCode {
    use mirrorlab::replay::compare;
    let read = |p: &PathBuf| compare::read_report(p);
    let (a, b) = match (read(&args.a), read(&args.b)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("mirrorlab compare: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rows = compare::compare(&a, &b);
    let text = if args.json {
        match serde_json::to_string_pretty(&rows) {
            Ok(t) => t + "\n",
            Err(e) => {
                eprintln!("mirrorlab compare: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let name = |p: &PathBuf| format!("A: {}", p.display());
        compare::render(
            &rows,
            &name(&args.a),
            &name(&args.b).replacen("A:", "B:", 1),
        )
    };
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}
