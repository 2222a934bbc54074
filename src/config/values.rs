//! The shapes a setting's value can take, shared by the service's settings
//! and the providers': lists, optional strings, durations, http(s) URLs, and
//! masking secrets for display.

use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Deserializer, Serialize};

/// Shows that a secret is set without showing it.
pub fn mask(secret: &str) -> String {
    format!("***({} chars)", secret.chars().count())
}

pub(super) fn mask_url_password(url: &str) -> String {
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

/// Parses an absolute http(s) URL with a host and no query or fragment (a
/// base URL that paths are appended to). The error says what is wrong with
/// `value`, for the caller to put behind the setting's or the flag's name;
/// `example` shows what is expected.
pub fn http_url(value: &str, example: &str) -> Result<Url, String> {
    let url = Url::parse(value.trim()).map_err(|e| format!("`{value}` is not a URL like {example} ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().map_or(true, str::is_empty) {
        return Err(format!("`{value}` is not an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or a fragment".to_owned());
    }
    Ok(url)
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

/// A list of durations: a TOML array, or a comma-separated string in the
/// environment (`SIGNHOOK_DELIVERY_RETRY_SCHEDULE=5s,5m,30m`).
pub fn duration_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<HumanDuration>, D::Error> {
    string_list(deserializer)?
        .iter()
        .map(|text| {
            HumanDuration::parse(text).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a duration like 90s, 30m, 6h, 1d, 500ms or a number of seconds"
                ))
            })
        })
        .collect()
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
