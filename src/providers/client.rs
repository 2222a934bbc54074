//! The HTTP client every provider's API calls go through: timeouts, retries
//! (429, 5xx and transport errors, with exponential backoff that honours
//! `Retry-After`), and turning an answer into JSON or a [`CallError`]. Below
//! both `oauth` (token refreshes) and `api` (authenticated calls), which use it.
//!
//! Nothing here logs a secret or a response body.

use std::{
    hash::{BuildHasher, RandomState},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use reqwest::{header::RETRY_AFTER, redirect, Request, Response, StatusCode};
use serde_json::Value;

use super::settings::ClientSettings;
use crate::config::ConfigError;

/// Longest provider message kept in a [`CallError::Status`].
const MAX_MESSAGE_CHARS: usize = 200;

/// How one call to a provider's API failed, after its retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The provider answered 404: it does not know what was asked for (or
    /// this account cannot see it). Asking again will not help.
    #[error("the provider does not know this agreement")]
    NotFound,
    /// The provider answered an error, after retries for 429 and 5xx.
    /// `message` is a short reason taken from the answer, never the whole
    /// body. 401/403 mean the credentials are wrong or lack a permission.
    #[error("the provider answered {status}: {message}")]
    Status { status: u16, message: String },
    /// No answer, after retries: timeout, connection refused, TLS or DNS error.
    #[error("could not reach the provider: {0}")]
    Transport(String),
    /// A 2xx answer that is not what the provider documents (not JSON, no status).
    #[error("unexpected answer from the provider: {0}")]
    InvalidResponse(String),
}

/// A `reqwest::Client` with timeouts, and the retry policy.
#[derive(Clone)]
pub struct ApiClient {
    pub(super) http: reqwest::Client,
    /// For logs: which provider a retry is about.
    pub(super) provider: &'static str,
    max_attempts: u32,
    retry_base: Duration,
    retry_max: Duration,
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

    /// Sends `request`, again after a 429, a 5xx or a transport error, up to
    /// the maximum number of attempts. Waits `Retry-After` when the answer has
    /// one, else an exponential backoff with jitter, both capped. Returns the
    /// last answer whatever its status; `Err` only when there was none.
    pub(super) async fn send_with_retry(&self, request: Request) -> Result<Response, CallError> {
        let mut attempt = 1;
        loop {
            let this_try = request
                .try_clone()
                .expect("provider API requests have in-memory bodies, which clone");
            let outcome = self.http.execute(this_try).await;
            let (reason, wait) = match &outcome {
                Ok(response) if retryable(response.status()) => {
                    let asked = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| parse_retry_after(value, Utc::now()));
                    (response.status().as_str().to_owned(), Some(asked))
                }
                Ok(_) => (String::new(), None),
                Err(error) if error.is_builder() => (String::new(), None),
                Err(error) => (transport_kind(error).to_owned(), Some(None)),
            };
            match wait {
                Some(asked) if attempt < self.max_attempts => {
                    let wait = asked
                        .unwrap_or_else(|| backoff(self.retry_base, attempt))
                        .min(self.retry_max);
                    tracing::warn!(
                        provider = self.provider,
                        attempt,
                        max_attempts = self.max_attempts,
                        reason = %reason,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "provider API call failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return outcome.map_err(transport_error),
            }
        }
    }
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// The wait before attempt `attempt + 1`: `base` × 2^(attempt−1), half of it
/// random ("equal jitter") so that callers that failed together do not all
/// come back at the same instant.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let full = base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
    let half = full / 2;
    let random = RandomState::new().hash_one(Instant::now());
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(random % nanos.saturating_add(1))
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110); `None` when it is
/// neither. A date in the past means "now".
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

/// The JSON body of a 2xx answer; 404 is [`CallError::NotFound`]; any other
/// status a [`CallError::Status`] with a short reason.
pub(super) async fn read_json(response: Response) -> Result<Value, CallError> {
    let status = response.status();
    let body = response.bytes().await.map_err(transport_error)?;
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
fn error_message(body: &[u8], status: StatusCode) -> String {
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
    let mut message = format!("{kind}: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    CallError::Transport(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::time;
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
            assert_eq!(
                parse_retry_after(value, now),
                expected.map(Duration::from_secs),
                "{value:?}"
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
