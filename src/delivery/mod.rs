//! Outbound webhooks to the application: every recorded change (a status
//! change, or `document.available`, which a status filter treats as a
//! change to `completed`) is POSTed to each configured destination whose
//! filter it matches, signed by the Standard Webhooks specification
//! ([`sign`]), one agreement's changes in order, retried on a schedule
//! ([`RetryPolicy`]), by a dispatcher in every replica ([`worker`]). Deliveries are queued with the change, in the
//! transaction that records it (`store::record_changes`), so none is lost.

pub mod listen;
pub mod sign;
pub mod worker;

use std::{sync::Arc, time::Duration};

use standardwebhooks::Webhook;

use crate::{
    agreement::AgreementStatus,
    config::{invalid, ConfigError, DeliverySettings},
};

/// The name of the destination set by `SIGNHOOK_DELIVERY_URL`.
pub const DEFAULT_DESTINATION: &str = "default";

/// Shortest and longest signing key the Standard Webhooks specification
/// allows (24 to 64 bytes, before base64).
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// One endpoint of the application.
#[derive(Clone)]
pub struct Destination {
    pub name: String,
    pub url: reqwest::Url,
    /// Signs with the destination's secret.
    pub signer: Arc<Webhook>,
    /// Empty: every provider.
    pub providers: Vec<String>,
    /// Empty: every status.
    pub statuses: Vec<String>,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .field("providers", &self.providers)
            .field("statuses", &self.statuses)
            .finish_non_exhaustive()
    }
}

impl Destination {
    /// Every configured destination, checked: `SIGNHOOK_DELIVERY_URL` (named
    /// `default`) and the file's `[[destinations]]`. Errors name the setting.
    pub fn from_settings(settings: &DeliverySettings, providers: &[&str]) -> Result<Vec<Self>, ConfigError> {
        let mut destinations = Vec::new();
        if let (Some(url), Some(secret)) = (&settings.delivery_url, &settings.delivery_secret) {
            destinations.push(Self {
                name: DEFAULT_DESTINATION.to_owned(),
                url: endpoint(url).map_err(|message| invalid("delivery_url", message))?,
                signer: Arc::new(signer(secret).map_err(|message| invalid("delivery_secret", message))?),
                providers: Vec::new(),
                statuses: Vec::new(),
            });
        }
        for (n, entry) in settings.destinations.iter().enumerate() {
            let at = |field: &str, message: String| {
                invalid(
                    "destinations",
                    format!("entry {} (`{}`): {field} {message}", n + 1, entry.name),
                )
            };
            let name_ok = !entry.name.is_empty()
                && entry.name.len() <= 64
                && entry
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !name_ok {
                return Err(at("name", "must be 1 to 64 letters, digits, `-` or `_`".to_owned()));
            }
            if destinations.iter().any(|d: &Self| d.name == entry.name) {
                return Err(at(
                    "name",
                    format!("is used twice (`{DEFAULT_DESTINATION}` is the one of SIGNHOOK_DELIVERY_URL)"),
                ));
            }
            if let Some(unknown) = entry.providers.iter().find(|p| !providers.contains(&p.as_str())) {
                return Err(at(
                    "providers",
                    format!("names `{unknown}`, which is not one of {}", providers.join(", ")),
                ));
            }
            if let Some(unknown) = entry.statuses.iter().find(|s| AgreementStatus::parse(s).is_none()) {
                let known: Vec<&str> = AgreementStatus::ALL.iter().map(|s| s.as_str()).collect();
                return Err(at(
                    "statuses",
                    format!("names `{unknown}`, which is not one of {}", known.join(", ")),
                ));
            }
            destinations.push(Self {
                name: entry.name.clone(),
                url: endpoint(&entry.url).map_err(|message| at("url", message))?,
                signer: Arc::new(signer(&entry.secret).map_err(|message| at("secret", message))?),
                providers: entry.providers.clone(),
                statuses: entry.statuses.clone(),
            });
        }
        Ok(destinations)
    }
}

/// An absolute http(s) URL with a host (a query is allowed: some
/// applications authenticate their endpoint with one).
fn endpoint(raw: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| format!("`{raw}` is not a URL like https://app.example.com/webhooks/signhook ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().map_or(true, str::is_empty) {
        return Err(format!("`{raw}` is not an http(s) URL with a host"));
    }
    Ok(url)
}

/// A Standard Webhooks signer (or verifier, for `signhook listen` and the
/// simulator) for `secret`: `whsec_` and the base64 of 24 to 64 random
/// bytes (`echo "whsec_$(openssl rand -base64 32)"`).
pub fn signer(secret: &str) -> Result<Webhook, String> {
    use base64::Engine;
    let Some(encoded) = secret.strip_prefix("whsec_") else {
        return Err("must start with `whsec_` (a Standard Webhooks secret: whsec_<base64>)".to_owned());
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("is not whsec_ followed by base64 ({e})"))?;
    if !KEY_BYTES.contains(&key.len()) {
        return Err(format!(
            "decodes to {} bytes; Standard Webhooks keys are {} to {} bytes",
            key.len(),
            KEY_BYTES.start(),
            KEY_BYTES.end()
        ));
    }
    Webhook::from_bytes(key).map_err(|e| e.to_string())
}

/// The longest `Retry-After` honoured: a day.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// When a failed delivery is tried again.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Waits after the first, second, ... failed attempt.
    pub schedule: Vec<Duration>,
}

impl RetryPolicy {
    /// The wait before the next attempt after `attempts` failed ones, or
    /// `None`: no attempt left, the delivery has failed. A `Retry-After`
    /// from the application replaces the schedule's wait (it asked for that
    /// time; it still counts as an attempt), up to [`MAX_RETRY_AFTER`].
    pub fn next(&self, attempts: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let scheduled = *self.schedule.get(attempts.checked_sub(1)? as usize)?;
        Some(retry_after.map_or(scheduled, |asked| asked.min(MAX_RETRY_AFTER)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DestinationSettings;

    #[test]
    fn retries_follow_the_schedule_and_honour_retry_after() {
        let s = Duration::from_secs;
        let policy = RetryPolicy {
            schedule: vec![s(5), s(300), s(1800)],
        };
        // (failed attempts so far, Retry-After, next wait)
        let cases = [
            (1, None, Some(s(5))),
            (2, None, Some(s(300))),
            (3, None, Some(s(1800))),
            (4, None, None),
            (4, Some(s(1)), None),
            (1, Some(s(60)), Some(s(60))),
            (1, Some(s(0)), Some(s(0))),
            (3, Some(s(7200)), Some(s(7200))),
            // Capped at a day.
            (1, Some(s(200_000)), Some(MAX_RETRY_AFTER)),
            (0, None, None),
        ];
        for (attempts, retry_after, expected) in cases {
            assert_eq!(
                policy.next(attempts, retry_after),
                expected,
                "{attempts} {retry_after:?}"
            );
        }
    }

    fn settings(destinations: Vec<DestinationSettings>) -> DeliverySettings {
        DeliverySettings {
            destinations,
            ..DeliverySettings::default()
        }
    }

    fn entry(name: &str, url: &str, secret: &str, providers: &[&str], statuses: &[&str]) -> DestinationSettings {
        DestinationSettings {
            name: name.to_owned(),
            url: url.to_owned(),
            secret: secret.to_owned(),
            providers: providers.iter().map(|s| s.to_string()).collect(),
            statuses: statuses.iter().map(|s| s.to_string()).collect(),
        }
    }

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const PROVIDERS: [&str; 3] = ["adobe-sign", "boldsign", "fusesign"];

    #[test]
    fn bad_destinations_are_refused_with_the_setting_named() {
        let url = "https://app.example.com/hooks";
        let cases = [
            (entry("crm", "app.example.com", SECRET, &[], &[]), "url"),
            (entry("crm", "ftp://app.example.com", SECRET, &[], &[]), "url"),
            (
                entry("crm", url, "C2FVsBQIhrscChlQIMV+b5sSYspob7oD", &[], &[]),
                "secret",
            ),
            (entry("crm", url, "whsec_!!!", &[], &[]), "secret"),
            (entry("crm", url, "whsec_c2hvcnQ=", &[], &[]), "secret"),
            (entry("crm", url, SECRET, &["docusign"], &[]), "providers"),
            (entry("crm", url, SECRET, &[], &["signed"]), "statuses"),
            (entry("c r m", url, SECRET, &[], &[]), "name"),
            (entry("", url, SECRET, &[], &[]), "name"),
        ];
        for (bad, field) in cases {
            let error = Destination::from_settings(&settings(vec![bad.clone()]), &PROVIDERS)
                .expect_err("refused")
                .to_string();
            assert!(error.starts_with("SIGNHOOK_DESTINATIONS"), "{error}");
            assert!(error.contains(field), "{field}: {error}");
        }
        let twice = settings(vec![
            entry("a", url, SECRET, &[], &[]),
            entry("a", url, SECRET, &[], &[]),
        ]);
        assert!(Destination::from_settings(&twice, &PROVIDERS).is_err());
        let mut default = settings(vec![entry("default", url, SECRET, &[], &[])]);
        default.delivery_url = Some(url.to_owned());
        default.delivery_secret = Some(SECRET.to_owned());
        assert!(Destination::from_settings(&default, &PROVIDERS).is_err());
        default.destinations.clear();
        default.delivery_secret = Some("whsec_nope".to_owned());
        let error = Destination::from_settings(&default, &PROVIDERS)
            .expect_err("refused")
            .to_string();
        assert!(error.starts_with("SIGNHOOK_DELIVERY_SECRET"), "{error}");
    }

    #[test]
    fn good_destinations_are_built() {
        let mut both = settings(vec![entry(
            "crm",
            "https://crm.example.com/in?key=1",
            SECRET,
            &["boldsign"],
            &["completed", "declined"],
        )]);
        both.delivery_url = Some("http://127.0.0.1:9000/hooks".to_owned());
        both.delivery_secret = Some(SECRET.to_owned());
        let built = Destination::from_settings(&both, &PROVIDERS).expect("valid");
        let names: Vec<&str> = built.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["default", "crm"]);
        assert_eq!(built[1].statuses, ["completed", "declined"]);
    }
}
