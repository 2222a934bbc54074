//! Command line: parse arguments, load configuration, hand over to the library.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use signhook::{
    config::{Config, HumanDuration},
    delivery::listen::ListenArgs,
    simulate::SimulateArgs,
    store::Store,
    telemetry, Application,
};
use tokio_util::sync::CancellationToken;

/// mimalloc rather than the system allocator: parsing and answering a
/// notification allocates many small objects, and glibc's malloc and free
/// were about a third of the receive path's instructions (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option numbers, as the mimalloc v3 that libmimalloc-sys 0.1.49
/// builds numbers them (`mi_option_e` in its `mimalloc.h`; the crate names
/// neither). A test pins them by their documented defaults.
const MI_OPTION_ARENA_EAGER_COMMIT: i32 = 4;
const MI_OPTION_PURGE_DELAY: i32 = 15;

/// Freed memory goes back to the system at once (mimalloc waits a second by
/// default), and arenas are committed as they are used rather than up front. With mimalloc's defaults a 15 MB
/// webhook body left its copies resident for good (one body at a time:
/// peak 140 MiB, 140 MiB after; with these: 77 MiB, 18 MiB after), which
/// is what keeps RSS within the body budget ("What a body costs" in the
/// README). Small allocations, the receive path's, were not measurably
/// slower (scripts/bench.sh, 32 connections, paired runs: 123 and 105 µs of
/// server CPU per event with these, 118 and 110 µs without).
fn return_freed_memory_promptly() {
    // SAFETY: plain setters of mimalloc's global options, valid at any time.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
    }
}

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
    /// GET /healthz on the configured listen address (SIGNHOOK_OPS_LISTEN's
    /// when set; 0.0.0.0 and :: through loopback); exit 0 when it answers
    /// 200, 1 otherwise. The container's HEALTHCHECK, so the image needs no
    /// curl.
    Healthcheck {
        /// Give up after this long (e.g. 2s, 500ms).
        #[arg(long, default_value = "2s", value_parser = parse_timeout)]
        timeout: Duration,
    },
    /// Play realistic provider traffic against a signhook URL (deployment
    /// check and benchmark driver).
    Simulate(SimulateArgs),
    /// Receive signhook's outbound webhooks locally: verify each signature
    /// with the destination's secret and print the change (like `stripe listen`).
    Listen(ListenArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    return_freed_memory_promptly();
    let cli = Cli::parse();
    let command = match cli.command.unwrap_or(Command::Serve) {
        // A client of some deployment: this host's server configuration does not apply.
        Command::Simulate(args) => return simulate(args).await,
        Command::Listen(args) => {
            return match signhook::delivery::listen::run(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("signhook listen: {error}");
                    match error {
                        signhook::delivery::listen::ListenError::Secret(_) => ExitCode::from(2),
                        _ => ExitCode::FAILURE,
                    }
                }
            }
        }
        command => command,
    };
    let config = match Config::load(cli.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("signhook: invalid configuration: {error}");
            return match command {
                // Docker reserves a health check's exit code 2: unhealthy is 1.
                Command::Healthcheck { .. } => ExitCode::FAILURE,
                _ => ExitCode::from(2),
            };
        }
    };
    let result = match command {
        Command::CheckConfig => check_config(&config),
        Command::Healthcheck { timeout } => healthcheck(&config, timeout).await,
        Command::Migrate => migrate(&config).await,
        Command::Serve => serve(config).await,
        Command::Simulate(_) | Command::Listen(_) => {
            unreachable!("simulate and listen returned before the configuration was loaded")
        }
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

/// The server answers `/healthz` on the address it listens on; a wildcard
/// address is reached through loopback of the same family.
async fn healthcheck(config: &Config, timeout: Duration) -> anyhow::Result<()> {
    // `/healthz` is where the ops endpoints are: SIGNHOOK_OPS_LISTEN's
    // address when set.
    let server = &config.settings.server;
    let url = healthz_url(server.ops_listen_addr()?.unwrap_or(server.listen_addr()?));
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
        .context("building the HTTP client")?;
    let response = client.get(&url).send().await.with_context(|| format!("GET {url}"))?;
    anyhow::ensure!(
        response.status() == reqwest::StatusCode::OK,
        "GET {url}: {}",
        response.status()
    );
    Ok(())
}

fn healthz_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/healthz", SocketAddr::new(ip, listen.port()))
}

fn parse_timeout(raw: &str) -> Result<Duration, String> {
    HumanDuration::parse(raw)
        .map(HumanDuration::get)
        .filter(|timeout| !timeout.is_zero())
        .ok_or_else(|| format!("`{}` is not a positive duration like 2s or 500ms", raw.trim()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mimalloc_option_numbers_are_the_documented_ones() {
        // Their defaults (mimalloc v3's src/options.c; its header's comment
        // still says 10 ms): arena_eager_commit 2, purge_delay 1000 ms; the
        // options around them default to other values.
        // SAFETY: plain getters of mimalloc's global options.
        let (eager, purge) = unsafe {
            (
                libmimalloc_sys::mi_option_get(MI_OPTION_ARENA_EAGER_COMMIT),
                libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY),
            )
        };
        assert_eq!((eager, purge), (2, 1000));
    }

    #[test]
    fn healthcheck_reaches_wildcard_addresses_through_loopback() {
        for (listen, url) in [
            ("0.0.0.0:8080", "http://127.0.0.1:8080/healthz"),
            ("[::]:9000", "http://[::1]:9000/healthz"),
            ("127.0.0.1:8081", "http://127.0.0.1:8081/healthz"),
            ("10.1.2.3:80", "http://10.1.2.3:80/healthz"),
            ("[fd00::5]:8080", "http://[fd00::5]:8080/healthz"),
        ] {
            assert_eq!(healthz_url(listen.parse().unwrap()), url, "{listen}");
        }
    }

    #[test]
    fn healthcheck_timeout_must_be_a_positive_duration() {
        assert_eq!(parse_timeout("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
