//! The settings every provider's API client reads besides its own: the
//! client's timeouts and retries (`SIGNHOOK_PROVIDER_API_*`), and the checks
//! of an API base URL and of a credential that is a key or an OAuth grant.

use reqwest::Url;
use serde::Deserialize;

use crate::config::{http_url, invalid, setting_name, Config, ConfigError};

/// Settings shared by every provider's API client (`SIGNHOOK_PROVIDER_API_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ClientSettings {
    /// `SIGNHOOK_PROVIDER_API_CONNECT_TIMEOUT_MS`: TCP and TLS set-up.
    pub provider_api_connect_timeout_ms: u64,
    /// `SIGNHOOK_PROVIDER_API_TIMEOUT_MS`: one whole request, per attempt.
    pub provider_api_timeout_ms: u64,
    /// `SIGNHOOK_PROVIDER_API_MAX_ATTEMPTS`: attempts per GET or DELETE after
    /// a 5xx or a transport error, the first included (a POST and a GET
    /// under a minimum interval are sent once).
    pub provider_api_max_attempts: u32,
    /// `SIGNHOOK_PROVIDER_API_RETRY_BASE_MS`: the first backoff; it doubles per attempt.
    pub provider_api_retry_base_ms: u64,
    /// `SIGNHOOK_PROVIDER_API_RETRY_MAX_MS`: the longest backoff between
    /// attempts after a 5xx or a transport error. Not a cap on a provider's
    /// `Retry-After`: throttling pauses the account for as long as it asked.
    pub provider_api_retry_max_ms: u64,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            provider_api_connect_timeout_ms: 5_000,
            provider_api_timeout_ms: 15_000,
            provider_api_max_attempts: 4,
            provider_api_retry_base_ms: 200,
            provider_api_retry_max_ms: 10_000,
        }
    }
}

impl ClientSettings {
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let settings: Self = config.extract()?;
        let positive = [
            (
                "provider_api_connect_timeout_ms",
                settings.provider_api_connect_timeout_ms,
            ),
            ("provider_api_timeout_ms", settings.provider_api_timeout_ms),
            (
                "provider_api_max_attempts",
                u64::from(settings.provider_api_max_attempts),
            ),
            ("provider_api_retry_base_ms", settings.provider_api_retry_base_ms),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(invalid(key, "must be greater than 0"));
        }
        if settings.provider_api_retry_max_ms < settings.provider_api_retry_base_ms {
            return Err(invalid(
                "provider_api_retry_max_ms",
                "must not be below SIGNHOOK_PROVIDER_API_RETRY_BASE_MS",
            ));
        }
        Ok(settings)
    }
}

/// Parses the API base setting `key`: an absolute http(s) URL.
pub fn base_url(key: &str, value: &str) -> Result<Url, ConfigError> {
    http_url(value, "https://api.example.com").map_err(|message| invalid(key, message))
}

/// The API credential a provider's settings name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth<'a> {
    /// A fixed API key or token.
    Key(&'a str),
    /// OAuth client id, client secret and refresh token.
    OAuth([&'a str; 3]),
}

/// Reads the choice between a fixed key (`key`) and an OAuth refresh grant
/// (client id, client secret, refresh token): one of the two, or neither
/// (`None`: polling is off). The OAuth settings go together, all or none.
pub fn key_or_oauth<'a>(
    key: (&str, Option<&'a str>),
    oauth: [(&str, Option<&'a str>); 3],
) -> Result<Option<Auth<'a>>, ConfigError> {
    let names = oauth.map(|(name, _)| setting_name(name));
    match (key.1, all_or_none(oauth)?) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(invalid(
            key.0,
            format!("set either this or {}, not both", names.join(", ")),
        )),
        (Some(secret), None) => Ok(Some(Auth::Key(secret))),
        (None, Some(oauth)) => Ok(Some(Auth::OAuth(oauth))),
    }
}

/// Settings that only work together (an OAuth client and its refresh token):
/// all set, or none. The error names the first one missing.
fn all_or_none<'a, const N: usize>(group: [(&str, Option<&'a str>); N]) -> Result<Option<[&'a str; N]>, ConfigError> {
    if group.iter().all(|(_, value)| value.is_none()) {
        return Ok(None);
    }
    if let Some((missing, _)) = group.iter().find(|(_, value)| value.is_none()) {
        let names: Vec<_> = group.iter().map(|(key, _)| setting_name(key)).collect();
        return Err(invalid(
            missing,
            format!("is missing: {} are used together (set all or none)", names.join(", ")),
        ));
    }
    Ok(Some(
        group.map(|(_, value)| value.expect("every value was checked to be set")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_must_be_http_urls_with_a_host() {
        for good in ["https://api.boldsign.com", "http://127.0.0.1:8080/", "https://h/p/"] {
            assert!(base_url("boldsign_api_base", good).is_ok(), "{good}");
        }
        for bad in [
            "api.boldsign.com",
            "ftp://h",
            "file:///etc",
            "https://h?x=1",
            "",
            "https://",
        ] {
            let error = base_url("boldsign_api_base", bad).expect_err(bad).to_string();
            assert!(error.starts_with("SIGNHOOK_BOLDSIGN_API_BASE"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_key_or_an_oauth_grant_but_not_both() {
        let oauth = |id, secret, token| {
            [
                ("x_client_id", id),
                ("x_client_secret", secret),
                ("x_refresh_token", token),
            ]
        };
        let none = oauth(None, None, None);
        let all = oauth(Some("i"), Some("s"), Some("r"));
        assert_eq!(key_or_oauth(("x_token", None), none).expect("neither"), None);
        assert_eq!(
            key_or_oauth(("x_token", Some("k")), none).expect("key"),
            Some(Auth::Key("k"))
        );
        assert_eq!(
            key_or_oauth(("x_token", None), all).expect("oauth"),
            Some(Auth::OAuth(["i", "s", "r"]))
        );
        let both = key_or_oauth(("x_token", Some("k")), all).expect_err("both").to_string();
        assert!(both.starts_with("SIGNHOOK_X_TOKEN: set either"), "{both}");
        let partial = key_or_oauth(("x_token", Some("k")), oauth(Some("i"), None, Some("r")))
            .expect_err("partial")
            .to_string();
        assert!(partial.starts_with("SIGNHOOK_X_CLIENT_SECRET"), "{partial}");
    }

    #[test]
    fn grouped_settings_are_all_or_nothing() {
        assert_eq!(all_or_none([("a", None), ("b", None)]).expect("none set"), None);
        assert_eq!(
            all_or_none([("a", Some("1")), ("b", Some("2"))]).expect("all set"),
            Some(["1", "2"])
        );
        let error = all_or_none([("x_id", Some("1")), ("x_secret", None), ("x_token", Some("3"))])
            .expect_err("partial")
            .to_string();
        assert!(error.starts_with("SIGNHOOK_X_SECRET: is missing"), "{error}");
        assert!(
            error.contains("SIGNHOOK_X_ID, SIGNHOOK_X_SECRET, SIGNHOOK_X_TOKEN"),
            "{error}"
        );
    }
}
