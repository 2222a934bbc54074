//! Command line: parse arguments, load configuration, hand over to the library.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use signhook::{config::Config, simulate::SimulateArgs, store::Store, telemetry, Application};
use tokio_util::sync::CancellationToken;

/// mimalloc rather than the system allocator: parsing and answering a
/// notification allocates many small objects, and glibc's malloc and free
/// were about a third of the receive path's instructions (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Durable webhook receiver for Adobe Acrobat Sign, BoldSign and FuseSign"
)]
struct Cli {
    /// Configuration file (TOML); defaults to config/default.toml when present.
    #[arg(long, global = true, env = "SIGNHOOK_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the webhook receiver and its worker (the default).
    Serve,
    /// Create the database if needed, apply migrations and exit.
    Migrate,
    /// Print the effective configuration (secrets masked); exit non-zero if invalid.
    CheckConfig,
    /// Play realistic provider traffic against a signhook URL (deployment
    /// check and benchmark driver).
    Simulate(SimulateArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command.unwrap_or(Command::Serve) {
        // A client of some deployment: this host's server configuration does not apply.
        Command::Simulate(args) => return simulate(args).await,
        command => command,
    };
    let config = match Config::load(cli.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("signhook: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::CheckConfig => check_config(&config),
        Command::Migrate => migrate(&config).await,
        Command::Serve => serve(config).await,
        Command::Simulate(_) => unreachable!("simulate returned before the configuration was loaded"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("signhook: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the report (stdout) or why the run could not happen (stderr). Exit
/// code: 0 passed, 1 failed or could not run, 2 bad flags or credentials.
async fn simulate(args: SimulateArgs) -> ExitCode {
    let json = args.json();
    match signhook::simulate::run(args).await {
        Ok(report) => {
            println!("{}", if json { report.to_json() } else { report.to_text() });
            match report.passed() {
                true => ExitCode::SUCCESS,
                false => ExitCode::FAILURE,
            }
        }
        Err(error) => {
            eprintln!("signhook simulate: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn check_config(config: &Config) -> anyhow::Result<()> {
    let described = signhook::describe(config)?;
    println!("{}", serde_json::to_string_pretty(&described)?);
    Ok(())
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let _logs = telemetry::init(config.settings.server.log_format);
    let store = Store::connect(&config.settings).await?;
    store.migrate().await?;
    tracing::info!("migrations applied");
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let _logs = telemetry::init(config.settings.server.log_format);
    let app = Application::build(config).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    app.run_until_stopped(shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM (container stop) or SIGINT (Ctrl-C) starts a graceful shutdown.
async fn stop_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}
