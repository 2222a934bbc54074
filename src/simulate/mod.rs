//! `signhook simulate`: plays realistic provider traffic against a signhook
//! URL, to test a deployment before registering it with a provider, and as the
//! benchmark driver.
//!
//! `load` sends unique notifications from many connections as fast as they are
//! acknowledged; `lifecycle` takes agreements through whole lifecycles, with
//! duplicate and out-of-order deliveries, and checks the status each ends in.
//! Both report what the server answered and, through the admin API, how long
//! it took to process everything it acknowledged.

mod admin;
mod lifecycle;
mod load;
mod payloads;
mod received;
mod report;
mod target;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use clap::{
    builder::{PossibleValuesParser, TypedValueParser},
    Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches, Subcommand,
};
use reqwest::Url;

pub use self::report::Report;
use self::{
    admin::Admin,
    payloads::{Ids, Payloads},
    target::Target,
};
use crate::providers::{adobe_sign, Providers, Registration};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Send unique notifications from many connections as fast as the server
    /// acknowledges them (the benchmark driver).
    Load(LoadArgs),
    /// Take agreements through whole lifecycles, with duplicate and
    /// out-of-order deliveries, and check that each ends in its expected status.
    Lifecycle(LifecycleArgs),
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Number of unique events to send; duplicates come on top.
    #[arg(long, required_unless_present = "duration", conflicts_with = "duration",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub events: Option<u64>,
    /// Send new events for this long (e.g. 30s, 2m, 500ms).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Send at most this many new events per second, evenly spaced (event n
    /// is sent no earlier than n / rate seconds after the start), instead of
    /// as fast as the server answers. Give enough connections that a slow
    /// answer does not hold the schedule back: the report's rate says
    /// whether it kept up.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// Concurrent connections, each sending one request at a time.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub connections: u16,
    /// Approximate size of each body, padded with text in a free-text field;
    /// never below the provider's own payload (about 0.6–1.3 KB).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(0..=MAX_BODY_BYTES))]
    pub body_bytes: u32,
    /// Sender threads (default: one per CPU); each runs its share of the
    /// connections on its own event loop.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Afterwards, wait until the server has processed every acknowledged
    /// event and report how long that took (needs the admin token).
    #[arg(long)]
    pub verify: bool,
}

#[derive(Debug, Args)]
pub struct LifecycleArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Number of agreements, each taken from creation to a terminal status.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub agreements: u64,
    /// Fraction of agreements whose events are delivered shuffled.
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio)]
    pub out_of_order_ratio: f64,
    /// Agreements delivered at once (each agreement's events go one by one).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub connections: u16,
    /// Also receive signhook's outbound webhooks on this address (point the
    /// server's SIGNHOOK_DELIVERY_URL at it) and check that each agreement's
    /// status changes arrived verified, in order, without a gap, ending in
    /// its expected status.
    #[arg(long, requires = "delivery_secret")]
    pub listen: Option<std::net::SocketAddr>,
    /// The destination's signing secret (whsec_...), for --listen.
    #[arg(long, env = "SIGNHOOK_DELIVERY_SECRET", hide_env_values = true)]
    pub delivery_secret: Option<String>,
}

/// Adobe documents payloads of up to 10 MB.
const MAX_BODY_BYTES: i64 = 10 * 1024 * 1024;

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Base URL of the deployment, e.g. http://127.0.0.1:8080 (webhooks are
    /// under /webhooks/…, the admin API under /api/…).
    #[arg(long)]
    pub url: String,
    /// Which provider's traffic to play; `mixed` takes turns between all of them.
    #[arg(long, default_value = adobe_sign::NAME, value_parser = provider_choice())]
    pub provider: ProviderChoice,
    /// Fraction of acknowledged events delivered once more, as providers
    /// re-deliver; the server must store each only once.
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio)]
    pub duplicate_ratio: f64,
    /// How long to wait, after sending, for processing (and final statuses).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Bearer token of the admin API (as the server's SIGNHOOK_ADMIN_TOKEN).
    #[arg(long, env = "SIGNHOOK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Every provider's credential flag (`--adobe-client-id`, ...).
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

/// `--provider`: one registered provider, or `mixed` for all of them.
#[derive(Debug, Clone, Copy)]
pub struct ProviderChoice {
    /// The provider's name, or `mixed`.
    pub name: &'static str,
    /// The providers the run plays, in registry order.
    pub providers: &'static [Registration],
}

const MIXED: &str = "mixed";

/// Parses `--provider` from the registry's names and `mixed`.
fn provider_choice() -> impl TypedValueParser<Value = ProviderChoice> {
    PossibleValuesParser::new(Providers::names().chain([MIXED])).map(|name| {
        let registered = Providers::registered();
        match registered.iter().position(|registration| registration.name == name) {
            Some(index) => ProviderChoice {
                name: registered[index].name,
                providers: &registered[index..=index],
            },
            None => ProviderChoice {
                name: MIXED,
                providers: registered,
            },
        }
    })
}

/// The credential flag of every registered provider, each also read from the
/// variable the server reads it from (`providers::traffic::CredentialFlag`);
/// a value is a list, as the server's, whose first entry is sent.
#[derive(Clone, Default)]
pub struct CredentialArgs {
    /// By registry index.
    values: Vec<Option<String>>,
}

impl std::fmt::Debug for CredentialArgs {
    /// Which credentials are set, never their values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = Providers::registered()
            .iter()
            .zip(&self.values)
            .filter(|(_, value)| value.is_some())
            .map(|(registration, _)| registration.traffic.credential.flag);
        f.debug_set().entries(set).finish()
    }
}

impl CredentialArgs {
    /// The value given for `registration`'s credential.
    fn get(&self, registration: &Registration) -> Option<&str> {
        let index = Providers::registered()
            .iter()
            .position(|registered| registered.name == registration.name)?;
        self.values.get(index)?.as_deref()
    }
}

impl FromArgMatches for CredentialArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = Self::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        let registered = Providers::registered();
        self.values.resize(registered.len(), None);
        for (value, registration) in self.values.iter_mut().zip(registered) {
            if let Ok(Some(given)) = matches.try_get_one::<String>(registration.traffic.credential.flag) {
                *value = Some(given.clone());
            }
        }
        Ok(())
    }
}

impl Args for CredentialArgs {
    fn augment_args(command: Command) -> Command {
        Providers::registered().iter().fold(command, |command, registration| {
            let credential = &registration.traffic.credential;
            command.arg(
                Arg::new(credential.flag)
                    .long(credential.flag)
                    .env(credential.variable)
                    .hide_env_values(true)
                    .action(ArgAction::Set)
                    .value_parser(clap::value_parser!(String))
                    .help(credential.help),
            )
        })
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl SimulateArgs {
    pub fn json(&self) -> bool {
        match &self.mode {
            Mode::Load(args) => args.common.json,
            Mode::Lifecycle(args) => args.common.json,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// A missing credential or an unusable flag value: exit code 2, nothing sent.
    #[error("{0}")]
    Usage(String),
    /// The run could not be carried out (unreachable server, refused admin
    /// token): exit code 1.
    #[error("{0}")]
    Failed(String),
}

impl SimulateError {
    pub fn exit_code(&self) -> u8 {
        match self {
            SimulateError::Usage(_) => 2,
            SimulateError::Failed(_) => 1,
        }
    }
}

/// Runs the simulation. `Ok` carries the report whether or not the run
/// passed ([`Report::passed`]); `Err` means it could not run.
pub async fn run(args: SimulateArgs) -> Result<Report, SimulateError> {
    match args.mode {
        Mode::Load(args) => load::run(args).await,
        Mode::Lifecycle(args) => lifecycle::run(args).await,
    }
}

/// What both modes set up before sending anything.
struct Setup {
    target: Arc<Target>,
    admin: Option<Admin>,
    payloads: Arc<Payloads>,
    providers: &'static [Registration],
    /// When the run's agreements were created; their events come after.
    origin: DateTime<Utc>,
    run_id: String,
    url: String,
    provider_name: &'static str,
}

impl Setup {
    /// Checks the flags and credentials (no network yet), then that the
    /// server answers and, when `needs_admin`, that the admin API does.
    async fn new(
        common: &CommonArgs,
        connections: usize,
        body_bytes: usize,
        needs_admin: bool,
    ) -> Result<Self, SimulateError> {
        let providers = common.provider.providers;
        let credentials = credentials(common, providers)?;
        let token = match needs_admin {
            true => Some(admin_token(common)?),
            false => None,
        };
        let url = parse_url(&common.url)?;
        let target = Target::new(&url, connections, providers, credentials)?;
        target.check_reachable().await?;
        let admin = token.map(|token| Admin::new(&target, token));
        let ids = Ids::new(fastrand::u32(..));
        // Agreements were created an hour ago; their events follow.
        let origin = Utc::now() - chrono::Duration::hours(1);
        let payloads = Payloads::new(ids, body_bytes, origin, providers, target.endpoints());
        Ok(Self {
            target: Arc::new(target),
            admin,
            payloads: Arc::new(payloads),
            providers,
            origin,
            run_id: format!("{:08x}", ids.run()),
            url: url.as_str().trim_end_matches('/').to_owned(),
            provider_name: common.provider.name,
        })
    }

    fn report(&self, mode: &'static str, connections: usize) -> Report {
        Report::new(
            mode,
            self.run_id.clone(),
            self.url.clone(),
            self.provider_name,
            connections,
        )
    }
}

fn parse_url(raw: &str) -> Result<Url, SimulateError> {
    let url = Url::parse(raw).map_err(|error| SimulateError::Usage(format!("--url `{raw}` is not a URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(SimulateError::Usage(format!(
            "--url `{raw}` must be an http:// or https:// URL with a host"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(SimulateError::Usage(format!(
            "--url `{raw}` must be the deployment's base URL, without ?query or #fragment"
        )));
    }
    Ok(url)
}

/// The first entry of a comma-separated list, as the server reads its lists.
fn first_entry(value: Option<&str>) -> Option<&str> {
    value?.split(',').map(str::trim).find(|entry| !entry.is_empty())
}

/// The credential of every provider the run plays, in its order: the first
/// entry of the flag's (or variable's) list, checked to make valid headers.
/// A missing one is named with its flag and variable.
fn credentials(common: &CommonArgs, providers: &[Registration]) -> Result<Vec<String>, SimulateError> {
    providers
        .iter()
        .map(|registration| {
            let flag = &registration.traffic.credential;
            let credential = first_entry(common.credentials.get(registration)).ok_or_else(|| {
                SimulateError::Usage(format!(
                    "{} traffic needs {}: pass --{} or set {}",
                    registration.name, flag.what, flag.flag, flag.variable
                ))
            })?;
            (registration.traffic.auth_headers)(credential, b"", Utc::now()).map_err(|_| {
                SimulateError::Usage(format!(
                    "--{} holds characters that cannot go in an HTTP header",
                    flag.flag
                ))
            })?;
            Ok(credential.to_owned())
        })
        .collect()
}

fn admin_token(common: &CommonArgs) -> Result<String, SimulateError> {
    common
        .admin_token
        .as_deref()
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            SimulateError::Usage(
                "checking processing needs the admin API's token: pass --admin-token or set SIGNHOOK_ADMIN_TOKEN"
                    .to_owned(),
            )
        })
}

/// `30s`, `500ms`, `2m`, `1h`; a bare number is seconds (the same forms as
/// duration settings).
fn parse_duration(raw: &str) -> Result<Duration, String> {
    crate::config::HumanDuration::parse(raw)
        .map(|duration| duration.get())
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| format!("`{}` is not a positive duration like 30s, 500ms, 2m or 1h", raw.trim()))
}

fn parse_ratio(raw: &str) -> Result<f64, String> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|ratio| (0.0..=1.0).contains(ratio))
        .ok_or_else(|| format!("`{raw}` is not a fraction from 0 to 1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_table() {
        let cases = [
            ("30s", Some(30_000)),
            ("30", Some(30_000)),
            ("500ms", Some(500)),
            ("1.5s", Some(1_500)),
            ("2m", Some(120_000)),
            ("1h", Some(3_600_000)),
            ("0s", None),
            ("", None),
            ("s", None),
            ("10x", None),
            ("-1s", None),
        ];
        for (raw, millis) in cases {
            let parsed = parse_duration(raw).ok().map(|d| d.as_millis() as u64);
            assert_eq!(parsed, millis, "{raw:?}");
        }
    }

    #[test]
    fn ratios_table() {
        assert_eq!(parse_ratio("0.25"), Ok(0.25));
        assert_eq!(parse_ratio("1"), Ok(1.0));
        assert!(parse_ratio("1.5").is_err());
        assert!(parse_ratio("-0.1").is_err());
        assert!(parse_ratio("NaN").is_err());
    }

    #[test]
    fn lists_give_their_first_entry() {
        assert_eq!(first_entry(Some("a, b")), Some("a"));
        assert_eq!(first_entry(Some(" , b")), Some("b"));
        assert_eq!(first_entry(Some(" ")), None);
        assert_eq!(first_entry(None), None);
    }

    #[test]
    fn urls_must_be_http_bases() {
        assert!(parse_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_url("https://hooks.example.com/prefix/").is_ok());
        for bad in ["127.0.0.1:8080", "ftp://x", "http://x/?a=1", "not a url"] {
            assert!(matches!(parse_url(bad), Err(SimulateError::Usage(_))), "{bad}");
        }
    }
}
