//! The HTTP client every provider's API calls go through: timeouts, retries
//! of 5xx and transport errors with exponential backoff, and the reading of
//! an answer: JSON, or a [`CallError`] classified by what it means (a
//! provider's [`Dialect`]: its error codes and where it says how long to
//! wait when it throttles). Below both `oauth` (token refreshes) and `api`
//! (authenticated calls within the account's budget), which use it.
//!
//! A 429, or a 503 with `Retry-After`, is never retried here: it is
//! [`CallError::Throttled`], and `api` pauses the account for as long as the
//! provider asked. Nothing here logs a secret or a response body.

use std::{
    hash::{BuildHasher, RandomState},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use reqwest::{
    header::{HeaderMap, RETRY_AFTER},
    redirect, Request, Response, StatusCode,
};
use serde_json::Value;

use super::settings::ClientSettings;
use crate::{
    config::ConfigError,
    ledger::WaitReason,
    outbound::{error_chain, retry_after},
};

/// Longest provider message kept in a [`CallError::Status`].
const MAX_MESSAGE_CHARS: usize = 200;
/// How long an account is paused after a throttling answer that says
/// nothing about how long to wait.
const DEFAULT_PAUSE: Duration = Duration::from_secs(60);

/// How one call to a provider's API failed, after its retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The provider does not know what was asked for. Asking again will not help.
    #[error("the provider does not know this agreement")]
    NotFound,
    /// The credentials cannot see or change this resource (Adobe's
    /// `PERMISSION_DENIED`, answered as 403 or 404). The message names the
    /// scope or user problem to fix.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The provider already has what a `POST` would create (Adobe's
    /// `DUPLICATE_WEBHOOK_CONFIGURATION`).
    #[error("the provider already has this webhook (DUPLICATE_WEBHOOK_CONFIGURATION)")]
    Duplicate,
    /// The API base is not this account's (Adobe's `INVALID_API_ACCESS_POINT`:
    /// the account moved shard). A discovered base is discovered again.
    #[error("the API base is not this account's access point (INVALID_API_ACCESS_POINT); unset SIGNHOOK_ADOBE_SIGN_API_BASE to discover it")]
    WrongAccessPoint,
    /// Not sent: the account is paused, its budget spent, or the same GET
    /// was sent less than the minimum interval ago. `wait` is how long
    /// until it may go.
    #[error("{}", throttled_message(*wait, *reason))]
    Throttled { wait: Duration, reason: WaitReason },
    /// The provider answered an error. `message` is a short reason taken from
    /// the answer, never the whole body. 401/403 mean the credentials are
    /// wrong or lack a permission.
    #[error("the provider answered {status}: {message}")]
    Status { status: u16, message: String },
    /// No answer, after retries: timeout, connection refused, TLS or DNS error.
    #[error("could not reach the provider: {0}")]
    Transport(String),
    /// A 2xx answer that is not what the provider documents (not JSON, no status).
    #[error("unexpected answer from the provider: {0}")]
    InvalidResponse(String),
    /// The shared budget could not be read (the database is down): nothing
    /// was sent, so no replica can overspend.
    #[error("{0}")]
    Ledger(String),
}

fn throttled_message(wait: Duration, reason: WaitReason) -> String {
    let secs = wait.as_secs_f64().ceil() as u64;
    match reason {
        WaitReason::Paused => format!(
            "the provider throttled this API account; every replica waits another {secs} s, as it asked, before calling it again"
        ),
        WaitReason::Budget => format!("this API account's request budget is spent; the next call may go in {secs} s"),
        WaitReason::Interval => format!(
            "the same request went to the provider less than the minimum polling interval ago; the next may go in {secs} s"
        ),
    }
}

/// How a provider's error answers read, beyond their status code: its own
/// error codes, and where it says how long to wait when it throttles.
#[derive(Clone, Copy)]
pub struct Dialect {
    /// `Some` for a status and JSON body that mean something more precise
    /// than the status code (Adobe's `PERMISSION_DENIED`).
    pub classify: fn(StatusCode, &Value) -> Option<CallError>,
    /// How long a throttling answer without `Retry-After` asks to wait, from
    /// the provider's own headers or body, given the time now.
    pub wait_hint: fn(&HeaderMap, &Value, DateTime<Utc>) -> Option<Duration>,
}

impl Dialect {
    /// Nothing beyond HTTP: status codes and `Retry-After`.
    pub const PLAIN: Dialect = Dialect {
        classify: |_, _| None,
        wait_hint: |_, _, _| None,
    };
}

/// A `reqwest::Client` with timeouts, and the retry policy.
#[derive(Clone)]
pub struct ApiClient {
    pub(super) http: reqwest::Client,
    /// For logs: which provider a retry is about.
    pub(super) provider: &'static str,
    pub(super) max_attempts: u32,
    pub(super) retry_base: Duration,
    pub(super) retry_max: Duration,
}

impl ApiClient {
    pub fn new(settings: &ClientSettings, provider: &'static str) -> Result<Self, ConfigError> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(Duration::from_millis(settings.provider_api_connect_timeout_ms))
            .timeout(Duration::from_millis(settings.provider_api_timeout_ms))
            // A redirect would carry API-key headers to wherever it points.
            .redirect(redirect::Policy::none())
            .user_agent(concat!("signhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Invalid {
                setting: "provider API client".to_owned(),
                message: format!("cannot be built: {e}"),
            })?;
        Ok(Self {
            http,
            provider,
            max_attempts: settings.provider_api_max_attempts,
            retry_base: Duration::from_millis(settings.provider_api_retry_base_ms),
            retry_max: Duration::from_millis(settings.provider_api_retry_max_ms),
        })
    }

    /// Sends `request` (an OAuth token request), again after a 5xx or a
    /// transport error, up to the maximum number of attempts, with an
    /// exponential backoff with jitter. A 429 is not retried. Returns the
    /// last answer whatever its status; `Err` only when there was none.
    pub(super) async fn send_with_retry(&self, request: Request) -> Result<Response, CallError> {
        let mut attempt = 1;
        loop {
            let this_try = request
                .try_clone()
                .expect("provider API requests have in-memory bodies, which clone");
            let outcome = self.http.execute(this_try).await;
            let reason = match &outcome {
                Ok(response) if response.status().is_server_error() => Some(response.status().as_str().to_owned()),
                Ok(_) => None,
                Err(error) if error.is_builder() => None,
                Err(error) => Some(transport_kind(error).to_owned()),
            };
            match reason {
                Some(reason) if attempt < self.max_attempts => {
                    let wait = backoff(self.retry_base, attempt).min(self.retry_max);
                    tracing::warn!(
                        provider = self.provider,
                        attempt,
                        max_attempts = self.max_attempts,
                        reason = %reason,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "provider token request failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return outcome.map_err(transport_error),
            }
        }
    }
}

/// The wait before attempt `attempt + 1`: `base` × 2^(attempt−1), half of it
/// random ("equal jitter") so that callers that failed together do not all
/// come back at the same instant.
pub(super) fn backoff(base: Duration, attempt: u32) -> Duration {
    let full = base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
    let half = full / 2;
    let random = RandomState::new().hash_one(Instant::now());
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(random % nanos.saturating_add(1))
}

pub(super) fn parse_json(body: &[u8], status: StatusCode) -> Result<Value, CallError> {
    serde_json::from_slice(body)
        .map_err(|e| CallError::InvalidResponse(format!("the {status} answer is not JSON: {e}")))
}

/// How long a throttling answer asks to wait: a 429, or a 503 with
/// `Retry-After`. The wait is the `Retry-After` header, else what the
/// provider's [`Dialect::wait_hint`] reads, else a minute. Never capped.
pub(super) fn throttled(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    dialect: Dialect,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| retry_after(value, now));
    let throttling =
        status == StatusCode::TOO_MANY_REQUESTS || (status == StatusCode::SERVICE_UNAVAILABLE && retry_after.is_some());
    if !throttling {
        return None;
    }
    let hint = || (dialect.wait_hint)(headers, &serde_json::from_slice(body).unwrap_or(Value::Null), now);
    Some(
        retry_after
            .or_else(hint)
            .unwrap_or(DEFAULT_PAUSE)
            .max(Duration::from_secs(1)),
    )
}

/// The JSON body of a 2xx answer (of a token endpoint); throttling is
/// [`CallError::Throttled`] (paused for `Retry-After`, see `Api::token`);
/// 404 is [`CallError::NotFound`]; any other status a [`CallError::Status`]
/// with a short reason.
pub(super) async fn read_json(response: Response) -> Result<Value, CallError> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(transport_error)?;
    if let Some(wait) = throttled(status, &headers, &body, Dialect::PLAIN, Utc::now()) {
        return Err(CallError::Throttled {
            wait,
            reason: WaitReason::Paused,
        });
    }
    if status.is_success() {
        return serde_json::from_slice(&body)
            .map_err(|e| CallError::InvalidResponse(format!("the {status} answer is not JSON: {e}")));
    }
    if status == StatusCode::NOT_FOUND {
        return Err(CallError::NotFound);
    }
    Err(CallError::Status {
        status: status.as_u16(),
        message: error_message(&body, status),
    })
}

/// The provider's own message when its error answer is JSON that has one,
/// else the status's reason phrase: never the whole body (it may be an HTML
/// page, or echo what was sent).
pub(super) fn error_message(body: &[u8], status: StatusCode) -> String {
    const FIELDS: [&str; 8] = [
        "message",
        "Message",
        "error_description",
        "error",
        "Error",
        "detail",
        "title",
        "code",
    ];
    let from_json = serde_json::from_slice::<Value>(body).ok().and_then(|json| {
        FIELDS.iter().find_map(|field| {
            json.get(field)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        })
    });
    let message = from_json.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect()
}

fn transport_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    }
}

/// The error and its causes on one line, without the URL.
pub(super) fn transport_error(error: reqwest::Error) -> CallError {
    let kind = transport_kind(&error);
    let error = error.without_url();
    CallError::Transport(format!("{kind}: {}", error_chain(&error)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::time;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    #[test]
    fn retry_after_table() {
        let now = time("2026-11-20T09:41:27Z");
        let cases = [
            ("5", Some(5)),
            (" 0 ", Some(0)),
            ("120", Some(120)),
            ("Fri, 20 Nov 2026 09:41:57 GMT", Some(30)),
            ("Fri, 20 Nov 2026 09:40:00 GMT", Some(0)),
            ("99999999999999999999999", Some(u64::MAX)),
            ("-1", None),
            ("1.5", None),
            ("soon", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(retry_after(value, now), expected.map(Duration::from_secs), "{value:?}");
        }
    }

    /// Throttling is a 429, or a 503 only with `Retry-After`; the wait is
    /// `Retry-After`, else the provider's own hint, else a minute.
    #[test]
    fn throttling_waits_as_long_as_the_provider_asked() {
        let now = time("2026-11-20T09:41:27Z");
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_str(value).expect("valid"));
            }
            map
        };
        let hinted = Dialect {
            classify: |_, _| None,
            wait_hint: |_, body, _| body.get("wait").and_then(Value::as_u64).map(Duration::from_secs),
        };
        let secs = |n| Some(Duration::from_secs(n));
        let cases = [
            (
                429,
                headers(&[("retry-after", "7200")]),
                r#"{"wait": 5}"#,
                hinted,
                secs(7200),
            ),
            (429, headers(&[]), r#"{"wait": 1800}"#, hinted, secs(1800)),
            (429, headers(&[]), r#"{"wait": 1800}"#, Dialect::PLAIN, secs(60)),
            (429, headers(&[]), "", hinted, secs(60)),
            (429, headers(&[("retry-after", "0")]), "", Dialect::PLAIN, secs(1)),
            (503, headers(&[("retry-after", "120")]), "", Dialect::PLAIN, secs(120)),
            (503, headers(&[]), r#"{"wait": 5}"#, hinted, None),
            (500, headers(&[("retry-after", "120")]), "", Dialect::PLAIN, None),
            (400, headers(&[]), "", Dialect::PLAIN, None),
        ];
        for (status, headers, body, dialect, expected) in cases {
            let status = StatusCode::from_u16(status).expect("valid status");
            assert_eq!(
                throttled(status, &headers, body.as_bytes(), dialect, now),
                expected,
                "{status} {headers:?} {body}"
            );
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_in_the_upper_half() {
        let base = Duration::from_millis(200);
        for (attempt, full) in [(1, 200), (2, 400), (3, 800), (4, 1600)] {
            for _ in 0..50 {
                let wait = backoff(base, attempt);
                assert!(
                    wait >= Duration::from_millis(full / 2) && wait <= Duration::from_millis(full),
                    "attempt {attempt}: {wait:?}"
                );
            }
        }
        assert!(backoff(base, 200) >= Duration::from_secs(1));
    }

    #[test]
    fn error_messages_are_short_and_never_the_whole_body() {
        let status = StatusCode::BAD_REQUEST;
        let cases = [
            (
                json!({"code": "INVALID_AGREEMENT_ID", "message": "bad id"}).to_string(),
                "bad id",
            ),
            (
                json!({"error": "Invalid Document ID"}).to_string(),
                "Invalid Document ID",
            ),
            (json!({"Result": false, "Error": "nope"}).to_string(), "nope"),
            (json!({"message": {"nested": true}, "code": "X"}).to_string(), "X"),
            ("<html>secret page</html>".to_owned(), "Bad Request"),
            (String::new(), "Bad Request"),
        ];
        for (body, expected) in cases {
            assert_eq!(error_message(body.as_bytes(), status), expected, "{body}");
        }
        let long = json!({"message": format!("line1\nline2 {}", "x".repeat(1000))}).to_string();
        let message = error_message(long.as_bytes(), status);
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS);
        assert!(message.starts_with("line1 line2"));
    }
}
