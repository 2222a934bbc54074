//! Typed settings, layered: built-in defaults, then a TOML file, then the
//! environment. Environment names are the public contract (`DATABASE_URL`,
//! `SIGNHOOK_*`); every validation error names the setting it is about.
//!
//! The service's own settings are grouped in [`Settings`] (see `settings.rs`);
//! each provider reads its own settings from the same layered [`Figment`]
//! (see `providers/`), so a new provider does not touch this module.

mod settings;
mod values;

use std::path::PathBuf;

use figment::{
    providers::{Env, Format, Toml},
    Figment,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

pub use settings::{
    DatabaseSettings, DeliverySettings, DestinationSettings, DocumentSettings, IngestSettings, ReconcileSettings,
    ServerSettings, Settings, StoreLocation, WorkerSettings, BODY_STORE_COPIES,
};
pub use values::{duration_list, http_url, mask, optional_string, string_list, HumanDuration};

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

/// A configuration error about the setting `key`, named by its variable.
pub fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting_name(key),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Loaded configuration: core settings plus the layered source that providers
/// read their own settings from.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    figment: Figment,
}

impl Config {
    /// Layers the TOML file and the environment over the built-in defaults.
    /// `path` is the `--config` / `SIGNHOOK_CONFIG` value; when given, the
    /// file must exist.
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
        let figment = Figment::from(Toml::file(&path))
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
        let mut figment = Figment::new();
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
            figment = figment.merge(figment::providers::Serialized::default(&key, value));
        }
        Self::from_figment(figment)
    }

    /// The configuration in `figment`; a key it lacks takes its default.
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        Ok(Self {
            settings: Settings::extract(&figment)?,
            figment,
        })
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
            false => invalid(&key, format!("{}{source}", error.kind)),
        }
    })
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
        let mut figment = Figment::new();
        for (key, value) in pairs {
            figment = figment.merge(Serialized::default(key, value));
        }
        Config::from_figment(figment)
    }

    #[test]
    fn defaults_are_valid() {
        let config = with(&[]).expect("defaults are valid");
        assert_eq!(config.settings.server.listen, "127.0.0.1:8080");
        assert_eq!(config.settings.server.max_body_bytes, 16 * 1024 * 1024);
    }

    /// `config/default.toml` shows every default commented out; uncommented,
    /// it must say what the code does (the code's defaults are the only ones).
    #[test]
    fn the_example_file_shows_the_defaults() {
        let example = include_str!("../../config/default.toml");
        let uncommented: String = example
            .lines()
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| {
                line.split_once(" = ")
                    .is_some_and(|(key, _)| key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            })
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(
            example
                .lines()
                .all(|line| line.trim().is_empty() || line.starts_with('#')),
            "every setting in the example is commented out"
        );
        let shown: serde_json::Value = Figment::from(Toml::string(&uncommented))
            .extract()
            .expect("the example is TOML");
        let shown = shown.as_object().expect("a table of settings");
        assert!(shown.len() >= 20, "{uncommented}");
        let config = Config::from_figment(Figment::new()).expect("defaults are valid");
        let mut defaults = config.settings.masked();
        for provider in crate::providers::Providers::from_config(&config)
            .expect("providers build")
            .iter()
        {
            defaults
                .as_object_mut()
                .expect("an object")
                .extend(provider.settings().as_object().expect("an object").clone());
        }
        for (key, value) in shown {
            assert_eq!(Some(value), defaults.get(key), "{key} in config/default.toml");
        }
        // Nothing that the example shows differs from what the file would set.
        let from_file = Config::from_figment(Figment::from(Toml::string(&uncommented))).expect("the example is valid");
        assert_eq!(from_file.settings.masked(), config.settings.masked());
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
            // Adobe Sign waits five seconds (seed 004).
            (
                "request_timeout_ms",
                serde_json::json!(5000),
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
            // The default 16 MiB largest body costs 80 MiB while it is stored.
            (
                "max_inflight_body_bytes",
                serde_json::json!(64 * 1024 * 1024),
                "SIGNHOOK_MAX_INFLIGHT_BODY_BYTES",
            ),
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
            // A URL without its secret names the missing secret.
            (
                "delivery_url",
                serde_json::json!("https://app.example.com/hooks"),
                "SIGNHOOK_DELIVERY_SECRET",
            ),
            ("delivery_secret", serde_json::json!("whsec_x"), "SIGNHOOK_DELIVERY_URL"),
            // Not longer than the 15 s timeout.
            (
                "delivery_lease_secs",
                serde_json::json!(10),
                "SIGNHOOK_DELIVERY_LEASE_SECS",
            ),
            (
                "delivery_retry_schedule",
                serde_json::json!("5s,soon"),
                "SIGNHOOK_DELIVERY_RETRY_SCHEDULE",
            ),
            (
                "delivery_disable_after",
                serde_json::json!(0),
                "SIGNHOOK_DELIVERY_DISABLE_AFTER",
            ),
            (
                "delivery_concurrency",
                serde_json::json!(0),
                "SIGNHOOK_DELIVERY_CONCURRENCY",
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
        assert_eq!(
            values::mask_url_password("postgres://u:pw@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(values::mask_url_password("postgres://u@h/db"), "postgres://u@h/db");
        let mut settings = Settings::default();
        settings.server.admin_token = Some("0123456789abcdef".into());
        settings.delivery.delivery_secret = Some("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into());
        settings.delivery.destinations = vec![DestinationSettings {
            name: "crm".into(),
            url: "https://crm.example.com/hooks".into(),
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            providers: Vec::new(),
            statuses: Vec::new(),
        }];
        let shown = settings.masked().to_string();
        for secret in ["0123456789abcdef", "C2FVsBQIhrscChlQIMV", "MfKQ9r8GKYqrTwjUPD8"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_environment_value_is_a_clear_error_or_a_valid_configuration(
            key in proptest::sample::select(vec![
                "listen", "max_body_bytes", "log_format", "database_url", "admin_token", "request_timeout_ms",
                "worker_max_attempts", "max_concurrent_requests", "max_inflight_body_bytes",
                "reconcile_interval", "silence_after", "public_url", "reconcile_max_per_minute",
                "delivery_url", "delivery_retry_schedule", "delivery_lease_secs", "delivery_disable_after",
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
