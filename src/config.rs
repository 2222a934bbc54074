//! Typed settings, layered: built-in defaults, then a TOML file, then the
//! environment. Environment names are the public contract (`DATABASE_URL`,
//! `SIGNHOOK_*`); every validation error names the setting it is about.
//!
//! Core settings live in [`Settings`]; each provider reads its own settings from
//! the same layered [`Figment`] (see `providers/`), so a new provider does not
//! touch this file.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize};

/// Where the configuration file is looked for when neither `--config` nor
/// `SIGNHOOK_CONFIG` names one. A missing default file is not an error.
pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{setting}: {message}")]
    Invalid { setting: String, message: String },
    #[error("configuration file {path}: {message}")]
    File { path: String, message: String },
}

/// The environment variable that sets the configuration key `key`.
pub fn setting_name(key: &str) -> String {
    match key {
        "database_url" => "DATABASE_URL".to_owned(),
        key => format!("SIGNHOOK_{}", key.to_uppercase()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Settings of the service itself (not of any one provider).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub database_url: String,
    pub listen: String,
    #[serde(deserialize_with = "optional_string")]
    pub admin_token: Option<String>,
    /// Largest request body accepted; Adobe documents payloads up to 10 MB.
    pub max_body_bytes: usize,
    pub log_format: LogFormat,
    /// Server-side deadline for a webhook request. It must stay below the
    /// providers' 10 s timeout so that a slow database yields a 503 (and a
    /// retry) rather than a provider-side timeout.
    pub request_timeout_ms: u64,
    /// A connection that has not sent its request headers within this is
    /// closed. hyper also counts a keep-alive connection's idle time against
    /// it, so it doubles as the keep-alive idle timeout: keep it well above
    /// what clients expect (their pools reuse idle connections).
    pub header_read_timeout_ms: u64,
    /// Webhook requests handled at once per replica; beyond it requests are
    /// shed with an immediate 503 rather than queued past the deadline.
    pub max_concurrent_requests: usize,
    /// Request bodies held in memory at once per replica (bytes); beyond it
    /// requests are shed with 503, so memory stays bounded under overload.
    pub max_inflight_body_bytes: usize,
    /// Group-commit writer tasks per replica (each holds one connection while
    /// it commits a batch).
    pub ingest_writers: usize,
    /// Most events in one group commit.
    pub ingest_batch_max_rows: usize,
    /// Most body bytes in one group commit (a single larger body still goes alone).
    pub ingest_batch_max_bytes: usize,
    pub db_max_connections: u32,
    pub db_acquire_timeout_ms: u64,
    /// Fallback poll of the queue; the worker is also woken after each commit.
    pub worker_poll_interval_ms: u64,
    pub worker_batch_size: u32,
    /// Body bytes a worker loads per batch (at least one event).
    pub worker_batch_max_bytes: usize,
    /// Worker loops per replica, each applying its own batch.
    pub worker_concurrency: usize,
    /// Events a replica applies between its VACUUMs of the queue table; 0
    /// leaves it to autovacuum alone.
    pub worker_queue_vacuum_every: u64,
    pub worker_max_attempts: u32,
    pub worker_retry_base_ms: u64,
    pub worker_retry_max_ms: u64,
    /// Longest a worker holds a claimed batch; a hung or cut-off replica's
    /// claim is ended by PostgreSQL after this.
    pub worker_lease_secs: u64,
    /// After SIGTERM, how long in-flight requests and the worker get to finish.
    pub shutdown_grace_secs: u64,
    /// The public base URL providers reach this service at
    /// (`https://hooks.example.com`); per-agreement webhooks point at
    /// `<public_url>/webhooks/<provider>`. Unset: watching is refused.
    #[serde(deserialize_with = "optional_string")]
    pub public_url: Option<String>,
    /// How often the reconciler looks for agreements to poll.
    pub reconcile_interval: HumanDuration,
    /// An agreement with no event and no poll for this long is polled.
    pub reconcile_stale_after: HumanDuration,
    /// Poll period of agreements whose webhook registration failed.
    pub reconcile_fast_interval: HumanDuration,
    /// Provider API calls the reconciler makes per minute, per replica.
    pub reconcile_max_per_minute: u32,
    /// Provider API calls the reconciler has in flight at once, per replica.
    pub reconcile_concurrency: usize,
    /// A provider with open agreements that sends no webhook for this long is
    /// "silent": its open agreements are polled at once.
    pub silence_after: HumanDuration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: "postgres://postgres@127.0.0.1:5432/signhook".to_owned(),
            listen: "127.0.0.1:8080".to_owned(),
            admin_token: None,
            max_body_bytes: 16 * 1024 * 1024,
            log_format: LogFormat::Pretty,
            request_timeout_ms: 2_500,
            header_read_timeout_ms: 30_000,
            max_concurrent_requests: 256,
            max_inflight_body_bytes: 128 * 1024 * 1024,
            ingest_writers: 1,
            ingest_batch_max_rows: 256,
            ingest_batch_max_bytes: 8 * 1024 * 1024,
            db_max_connections: 16,
            db_acquire_timeout_ms: 2_000,
            worker_poll_interval_ms: 1_000,
            worker_batch_size: 1000,
            worker_queue_vacuum_every: 50_000,
            worker_batch_max_bytes: 16 * 1024 * 1024,
            worker_concurrency: 1,
            worker_max_attempts: 10,
            worker_retry_base_ms: 1_000,
            worker_retry_max_ms: 600_000,
            worker_lease_secs: 30,
            shutdown_grace_secs: 25,
            public_url: None,
            reconcile_interval: HumanDuration::from_secs(60),
            reconcile_stale_after: HumanDuration::from_secs(6 * 3600),
            reconcile_fast_interval: HumanDuration::from_secs(5 * 60),
            reconcile_max_per_minute: 120,
            reconcile_concurrency: 4,
            silence_after: HumanDuration::from_secs(2 * 3600),
        }
    }
}

impl Settings {
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|e| ConfigError::Invalid {
            setting: setting_name("listen"),
            message: format!("`{}` is not a socket address like 0.0.0.0:8080 ({e})", self.listen),
        })
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            setting: setting_name(key),
            message: message.to_owned(),
        };
        if !self.database_url.starts_with("postgres://") && !self.database_url.starts_with("postgresql://") {
            return Err(invalid("database_url", "must be a postgres:// or postgresql:// URL"));
        }
        if self
            .database_url
            .rsplit_once('/')
            .map_or(true, |(_, db)| db.split('?').next().unwrap_or("").is_empty())
        {
            return Err(invalid(
                "database_url",
                "must name a database, e.g. postgres://postgres@127.0.0.1:5432/signhook",
            ));
        }
        if self.admin_token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err(invalid("admin_token", "must be at least 16 characters"));
        }
        let positive = [
            ("max_body_bytes", self.max_body_bytes as u64),
            ("request_timeout_ms", self.request_timeout_ms),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("max_concurrent_requests", self.max_concurrent_requests as u64),
            ("db_max_connections", u64::from(self.db_max_connections)),
            ("ingest_writers", self.ingest_writers as u64),
            ("ingest_batch_max_rows", self.ingest_batch_max_rows as u64),
            ("ingest_batch_max_bytes", self.ingest_batch_max_bytes as u64),
            ("db_acquire_timeout_ms", self.db_acquire_timeout_ms),
            ("worker_poll_interval_ms", self.worker_poll_interval_ms),
            ("worker_batch_size", u64::from(self.worker_batch_size)),
            ("worker_batch_max_bytes", self.worker_batch_max_bytes as u64),
            ("worker_max_attempts", u64::from(self.worker_max_attempts)),
            ("worker_retry_base_ms", self.worker_retry_base_ms),
            ("worker_lease_secs", self.worker_lease_secs),
            ("reconcile_max_per_minute", u64::from(self.reconcile_max_per_minute)),
            ("reconcile_concurrency", self.reconcile_concurrency as u64),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(invalid(key, "must be greater than 0"));
        }
        if self.request_timeout_ms >= 10_000 {
            return Err(invalid(
                "request_timeout_ms",
                "must be below 10000: providers give up after 10 s, and a late 200 counts as a failure",
            ));
        }
        if self.max_inflight_body_bytes < self.max_body_bytes {
            return Err(invalid(
                "max_inflight_body_bytes",
                "must be at least SIGNHOOK_MAX_BODY_BYTES, or the largest accepted body could never be read",
            ));
        }
        if self.worker_retry_max_ms < self.worker_retry_base_ms {
            return Err(invalid(
                "worker_retry_max_ms",
                "must not be below SIGNHOOK_WORKER_RETRY_BASE_MS",
            ));
        }
        let durations = [
            ("reconcile_interval", self.reconcile_interval),
            ("reconcile_stale_after", self.reconcile_stale_after),
            ("reconcile_fast_interval", self.reconcile_fast_interval),
            ("silence_after", self.silence_after),
        ];
        if let Some((key, _)) = durations.iter().find(|(_, d)| d.get().is_zero()) {
            return Err(invalid(key, "must be longer than 0"));
        }
        self.public_base_url()?;
        Ok(())
    }

    /// `SIGNHOOK_PUBLIC_URL` without its trailing slash, checked to be an
    /// absolute http(s) URL with a host and no query.
    pub fn public_base_url(&self) -> Result<Option<String>, ConfigError> {
        let Some(raw) = self.public_url.as_deref() else {
            return Ok(None);
        };
        let invalid = |message: String| ConfigError::Invalid {
            setting: setting_name("public_url"),
            message,
        };
        let url = reqwest::Url::parse(raw)
            .map_err(|e| invalid(format!("`{raw}` is not a URL like https://hooks.example.com ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().map_or(true, str::is_empty) {
            return Err(invalid(format!("`{raw}` is not an http(s) URL with a host")));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("must not have a query or a fragment".to_owned()));
        }
        Ok(Some(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// Where `provider` must send webhooks: `<public URL>/webhooks/<provider>`;
    /// `None` without `SIGNHOOK_PUBLIC_URL`.
    pub fn webhook_url(&self, provider: &str) -> Option<String> {
        self.public_base_url()
            .ok()
            .flatten()
            .map(|base| format!("{base}/webhooks/{provider}"))
    }

    /// The settings as `check-config` prints them: secrets masked.
    pub fn masked(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("settings serialize to JSON");
        value["admin_token"] = serde_json::json!(self.admin_token.as_deref().map(mask));
        value["database_url"] = serde_json::json!(mask_url_password(&self.database_url));
        value
    }
}

/// Loaded configuration: core settings plus the layered source that providers
/// read their own settings from.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    figment: Figment,
}

impl Config {
    /// Layers defaults, the TOML file and the environment. `path` is the
    /// `--config` / `SIGNHOOK_CONFIG` value; when given, the file must exist.
    pub fn load(path: Option<PathBuf>) -> Result<Self, ConfigError> {
        let (path, required) = match path {
            Some(path) => (path, true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        if required && !path.is_file() {
            return Err(ConfigError::File {
                path: path.display().to_string(),
                message: "not found (set by --config or SIGNHOOK_CONFIG)".to_owned(),
            });
        }
        let figment = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file(&path))
            .merge(Env::raw().only(&["DATABASE_URL"]))
            .merge(Env::prefixed("SIGNHOOK_").ignore(&["CONFIG"]));
        Self::from_figment(figment)
    }

    /// The configuration `load` would build if `vars` were the whole
    /// environment and there were no file: built-in defaults, then each
    /// `DATABASE_URL` / `SIGNHOOK_*` variable parsed as the environment
    /// parser does (`SIGNHOOK_X_Y=10` is the key `x_y` with the number 10).
    /// For embedding and tests, which must not touch the process environment.
    pub fn from_vars<K: AsRef<str>, V: AsRef<str>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        for (name, value) in vars {
            let name = name.as_ref();
            let key = match name {
                "DATABASE_URL" => "database_url".to_owned(),
                name => match name.strip_prefix("SIGNHOOK_") {
                    Some(key) if key != "CONFIG" => key.to_lowercase(),
                    _ => continue,
                },
            };
            let value: figment::value::Value = value.as_ref().parse().expect("parsing a value is infallible");
            figment = figment.merge(Serialized::default(&key, value));
        }
        Self::from_figment(figment)
    }

    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config = Self {
            settings: extract(&figment)?,
            figment,
        };
        config.settings.validate()?;
        Ok(config)
    }

    /// Deserializes a provider's settings from the same layered source.
    pub fn extract<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        extract(&self.figment)
    }
}

fn extract<T: DeserializeOwned>(figment: &Figment) -> Result<T, ConfigError> {
    figment.extract().map_err(|error| {
        let key = error.path.join(".");
        let source = error
            .metadata
            .as_ref()
            .map(|m| format!(" (from {})", m.name))
            .unwrap_or_default();
        match key.is_empty() {
            true => ConfigError::Invalid {
                setting: "configuration".to_owned(),
                message: format!("{}{source}", error.kind),
            },
            false => ConfigError::Invalid {
                setting: setting_name(&key),
                message: format!("{}{source}", error.kind),
            },
        }
    })
}

/// Shows that a secret is set without showing it.
pub fn mask(secret: &str) -> String {
    format!("***({} chars)", secret.chars().count())
}

fn mask_url_password(url: &str) -> String {
    // postgres://user:password@host/db → postgres://user:***@host/db
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A setting that is a list: a TOML array, or a comma-separated string in the
/// environment (`SIGNHOOK_ADOBE_SIGN_CLIENT_IDS=a,b`). Blank entries are dropped.
pub fn string_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(Scalar),
        Many(Vec<Scalar>),
    }
    let items = match Raw::deserialize(deserializer)? {
        Raw::One(scalar) => scalar.0.split(',').map(str::to_owned).collect(),
        Raw::Many(items) => items.into_iter().map(|s| s.0).collect::<Vec<_>>(),
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

/// An optional secret-like string; an empty value means unset. Figment reads
/// `SIGNHOOK_ADMIN_TOKEN=12345678901234567` as a number, so numbers are accepted.
pub fn optional_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value = Option::<Scalar>::deserialize(deserializer)?;
    Ok(value.map(|s| s.0.trim().to_owned()).filter(|s| !s.is_empty()))
}

/// A string, or a number or boolean that the environment parser produced
/// from what the user meant as a string.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Str(String),
            Int(i128),
            Float(f64),
            Bool(bool),
        }
        Ok(Scalar(match Raw::deserialize(deserializer)? {
            Raw::Str(s) => s,
            Raw::Int(n) => n.to_string(),
            Raw::Float(n) => n.to_string(),
            Raw::Bool(b) => b.to_string(),
        }))
    }
}

/// A duration setting: `90s`, `30m`, `6h`, `1d`, `500ms`, or a plain number
/// of seconds. Shown in the same form (`check-config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub fn get(self) -> Duration {
        self.0
    }

    /// Parses the forms listed on the type (fractions too: `1.5h`); `None`
    /// for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().ok()?;
        let seconds_per_unit = match unit.trim() {
            "" | "s" => 1.0,
            "ms" => 0.001,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return None,
        };
        Duration::try_from_secs_f64(number * seconds_per_unit).ok().map(Self)
    }
}

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        let units = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")];
        match units.iter().find(|(size, _)| ms != 0 && ms % size == 0) {
            Some((size, unit)) => write!(f, "{}{unit}", ms / size),
            None => write!(f, "{ms}ms"),
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Scalar(text) = Scalar::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration like 90s, 30m, 6h, 1d, 500ms or a number of seconds"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Serialized;

    #[test]
    fn durations_accept_units_or_seconds() {
        let cases = [
            ("90s", Some(90_000)),
            ("30m", Some(1_800_000)),
            ("6h", Some(21_600_000)),
            ("1d", Some(86_400_000)),
            ("250ms", Some(250)),
            ("120", Some(120_000)),
            (" 5 m ", Some(300_000)),
            ("0", Some(0)),
            ("", None),
            ("h", None),
            ("1.5h", Some(5_400_000)),
            ("2min", Some(120_000)),
            ("-3s", None),
            ("10 minutes", None),
            ("99999999999999999999d", None),
        ];
        for (text, expected) in cases {
            assert_eq!(
                HumanDuration::parse(text).map(|d| d.get().as_millis() as u64),
                expected,
                "{text:?}"
            );
        }
        for text in ["6h", "30m", "90s", "250ms", "1d"] {
            let parsed = HumanDuration::parse(text).expect("valid duration");
            assert_eq!(parsed.to_string(), text);
        }
    }

    fn with(pairs: &[(&str, serde_json::Value)]) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        for (key, value) in pairs {
            figment = figment.merge(Serialized::default(key, value));
        }
        Config::from_figment(figment)
    }

    #[test]
    fn defaults_are_valid() {
        let config = with(&[]).expect("defaults are valid");
        assert_eq!(config.settings.listen, "127.0.0.1:8080");
        assert_eq!(config.settings.max_body_bytes, 16 * 1024 * 1024);
    }

    #[test]
    fn errors_name_the_environment_variable() {
        let cases = [
            ("listen", serde_json::json!("nonsense"), "SIGNHOOK_LISTEN"),
            ("max_body_bytes", serde_json::json!("lots"), "SIGNHOOK_MAX_BODY_BYTES"),
            ("max_body_bytes", serde_json::json!(0), "SIGNHOOK_MAX_BODY_BYTES"),
            ("log_format", serde_json::json!("xml"), "SIGNHOOK_LOG_FORMAT"),
            ("database_url", serde_json::json!("mysql://x/y"), "DATABASE_URL"),
            (
                "request_timeout_ms",
                serde_json::json!(15000),
                "SIGNHOOK_REQUEST_TIMEOUT_MS",
            ),
            ("admin_token", serde_json::json!("short"), "SIGNHOOK_ADMIN_TOKEN"),
            (
                "reconcile_interval",
                serde_json::json!("soon"),
                "SIGNHOOK_RECONCILE_INTERVAL",
            ),
            (
                "reconcile_stale_after",
                serde_json::json!(0),
                "SIGNHOOK_RECONCILE_STALE_AFTER",
            ),
            ("silence_after", serde_json::json!("2 hours"), "SIGNHOOK_SILENCE_AFTER"),
            (
                "reconcile_concurrency",
                serde_json::json!(0),
                "SIGNHOOK_RECONCILE_CONCURRENCY",
            ),
            (
                "reconcile_max_per_minute",
                serde_json::json!("many"),
                "SIGNHOOK_RECONCILE_MAX_PER_MINUTE",
            ),
            (
                "public_url",
                serde_json::json!("hooks.example.com"),
                "SIGNHOOK_PUBLIC_URL",
            ),
            (
                "public_url",
                serde_json::json!("ftp://hooks.example.com"),
                "SIGNHOOK_PUBLIC_URL",
            ),
        ];
        for (key, value, name) in cases {
            let error = with(&[(key, value.clone())])
                .expect_err("invalid value rejected")
                .to_string();
            assert!(error.starts_with(name), "{key}={value}: {error}");
        }
    }

    #[test]
    fn lists_accept_comma_separated_strings_and_arrays() {
        #[derive(Deserialize)]
        struct L {
            #[serde(deserialize_with = "string_list")]
            v: Vec<String>,
        }
        let parse = |v: serde_json::Value| {
            serde_json::from_value::<L>(serde_json::json!({ "v": v }))
                .expect("list parses")
                .v
        };
        assert_eq!(parse(serde_json::json!(" a, b ,,c ")), ["a", "b", "c"]);
        assert_eq!(parse(serde_json::json!(["a", 12])), ["a", "12"]);
        assert_eq!(parse(serde_json::json!(12345)), ["12345"]);
        assert!(parse(serde_json::json!("")).is_empty());
    }

    #[test]
    fn masking_hides_secrets() {
        assert_eq!(mask_url_password("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(mask_url_password("postgres://u@h/db"), "postgres://u@h/db");
        let settings = Settings {
            admin_token: Some("0123456789abcdef".into()),
            ..Settings::default()
        };
        assert!(!settings.masked().to_string().contains("0123456789abcdef"));
    }

    proptest::proptest! {
        #[test]
        fn any_environment_value_is_a_clear_error_or_a_valid_configuration(
            key in proptest::sample::select(vec![
                "listen", "max_body_bytes", "log_format", "database_url", "admin_token", "request_timeout_ms",
                "worker_max_attempts", "max_concurrent_requests", "max_inflight_body_bytes",
                "reconcile_interval", "silence_after", "public_url", "reconcile_max_per_minute",
            ]),
            value in ".{0,40}",
        ) {
            let figment = Figment::from(Serialized::defaults(Settings::default()))
                .merge(Serialized::default(key, &value));
            if let Err(error) = Config::from_figment(figment) {
                let message = error.to_string();
                proptest::prop_assert!(message.starts_with("SIGNHOOK_") || message.starts_with("DATABASE_URL"), "{message}");
            }
        }
    }
}
