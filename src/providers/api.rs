//! The HTTP client behind [`Provider::poll`](super::Provider::poll), shared by
//! every provider: timeouts, retries (429, 5xx and transport errors, with
//! exponential backoff that honours `Retry-After`), OAuth refresh-token
//! sessions, and turning an answer into JSON or a [`PollError`].
//!
//! Paths, headers and JSON fields of each provider stay in that provider's
//! module; nothing here logs a secret or a response body.

use std::{
    hash::{BuildHasher, RandomState},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use reqwest::{
    header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER},
    redirect, Method, Request, Response, StatusCode, Url,
};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::{parse_time, PollError};
use crate::config::{http_url, invalid, setting_name, Config, ConfigError};

/// How long before its stated expiry an access token is replaced (at most).
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// Assumed lifetime of an access token whose answer does not state one.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// Longest provider message kept in a [`PollError::Provider`].
const MAX_MESSAGE_CHARS: usize = 200;

/// Settings shared by every provider's API client (`SIGNHOOK_PROVIDER_API_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ClientSettings {
    /// `SIGNHOOK_PROVIDER_API_CONNECT_TIMEOUT_MS`: TCP and TLS set-up.
    pub provider_api_connect_timeout_ms: u64,
    /// `SIGNHOOK_PROVIDER_API_TIMEOUT_MS`: one whole request, per attempt.
    pub provider_api_timeout_ms: u64,
    /// `SIGNHOOK_PROVIDER_API_MAX_ATTEMPTS`: attempts per call, the first included.
    pub provider_api_max_attempts: u32,
    /// `SIGNHOOK_PROVIDER_API_RETRY_BASE_MS`: the first backoff; it doubles per attempt.
    pub provider_api_retry_base_ms: u64,
    /// `SIGNHOOK_PROVIDER_API_RETRY_MAX_MS`: the longest wait between attempts,
    /// a provider's `Retry-After` included.
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

/// One provider's API: where it is, how to authenticate, and the client that
/// calls it.
pub struct Api {
    client: ApiClient,
    base: Url,
    credential: Credential,
}

impl Api {
    pub fn new(client: ApiClient, base: Url, credential: Credential) -> Self {
        Self {
            client,
            base,
            credential,
        }
    }

    /// For `check-config`: whether polling is configured, and how it authenticates.
    pub fn describe(api: Option<&Api>) -> Value {
        let auth = api.map(|api| match api.credential {
            Credential::Header(..) => "api_key",
            Credential::OAuth(_) => "oauth_refresh_token",
        });
        serde_json::json!({ "configured": api.is_some(), "auth": auth })
    }

    /// `base` followed by `segments`, each percent-encoded, so an agreement id
    /// can never leave its path segment.
    pub fn url(&self, segments: &[&str]) -> Url {
        endpoint(&self.base, segments)
    }

    /// GETs `url` with the credential and returns its JSON body.
    pub async fn get_json(&self, url: Url) -> Result<Value, PollError> {
        read_json(self.send(Method::GET, url, None).await?).await
    }

    /// POSTs `body` as JSON to `url` and returns the JSON answer.
    pub async fn post_json(&self, url: Url, body: &Value) -> Result<Value, PollError> {
        read_json(self.send(Method::POST, url, Some(body)).await?).await
    }

    /// DELETEs `url`; any 2xx is success, whatever its body.
    pub async fn delete(&self, url: Url) -> Result<(), PollError> {
        let response = self.send(Method::DELETE, url, None).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        read_json(response).await.map(|_| ())
    }

    /// Sends a request with the credential. On a 401 with an OAuth session,
    /// the access token is replaced once and the request sent again (the
    /// token was revoked, or the clocks disagree).
    async fn send(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Response, PollError> {
        let mut request = Request::new(method, url);
        request
            .headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(body) = body {
            request
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            *request.body_mut() = Some(serde_json::to_vec(body).expect("a JSON value serializes").into());
        }
        match &self.credential {
            Credential::Header(name, value) => {
                request.headers_mut().insert(name.clone(), value.clone());
                self.client.send_with_retry(request).await
            }
            Credential::OAuth(session) => {
                let token = session.access_token(&self.client).await?;
                let response = self.client.send_with_retry(with_bearer(&request, &token)?).await?;
                if response.status() != StatusCode::UNAUTHORIZED {
                    return Ok(response);
                }
                tracing::info!(
                    provider = self.client.provider,
                    "access token refused before its expiry; refreshing it once"
                );
                session.invalidate(&token).await;
                let token = session.access_token(&self.client).await?;
                self.client.send_with_retry(with_bearer(&request, &token)?).await
            }
        }
    }
}

/// The configured API (`T`) to ask about `agreement_id`:
/// [`PollError::NotConfigured`] without one, [`PollError::NotFound`] for a
/// blank id, which is never sent (it would name the collection, not an item).
pub fn for_agreement<'a, T>(api: Option<&'a T>, agreement_id: &str) -> Result<&'a T, PollError> {
    let api = api.ok_or(PollError::NotConfigured)?;
    if agreement_id.trim().is_empty() {
        return Err(PollError::NotFound);
    }
    Ok(api)
}

/// How a provider's API is authenticated.
pub enum Credential {
    /// A fixed secret sent in one header (API key, integration key).
    Header(HeaderName, HeaderValue),
    /// A bearer access token obtained, and renewed before it expires, with an
    /// OAuth refresh token.
    OAuth(OAuthSession),
}

impl Credential {
    /// `name: value`, where `value` comes from the setting `key`. The value is
    /// marked sensitive, so it never shows in debug output.
    pub fn header(name: &'static str, value: &str, key: &str) -> Result<Self, ConfigError> {
        let mut value =
            HeaderValue::from_str(value).map_err(|_| invalid(key, "must be visible ASCII (it is sent in a header)"))?;
        value.set_sensitive(true);
        Ok(Self::Header(HeaderName::from_static(name), value))
    }

    /// `Authorization: Bearer <token>`, `token` coming from the setting `key`.
    pub fn bearer(token: &str, key: &str) -> Result<Self, ConfigError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| invalid(key, "must be visible ASCII (it is sent in a header)"))?;
        value.set_sensitive(true);
        Ok(Self::Header(AUTHORIZATION, value))
    }
}

/// An OAuth 2 refresh-token grant: the access token is cached in memory and
/// replaced shortly before it expires (see [`renew_after`]). The lock is held
/// while refreshing, so concurrent polls share one refresh.
pub struct OAuthSession {
    token_url: Url,
    client_id: String,
    client_secret: String,
    state: Mutex<SessionState>,
}

struct SessionState {
    /// The configured refresh token, or the newer one a refresh answer gave
    /// (kept in memory only).
    refresh_token: String,
    access: Option<AccessToken>,
}

struct AccessToken {
    value: String,
    renew_at: Instant,
}

impl OAuthSession {
    /// A session that POSTs `grant_type=refresh_token` with the client
    /// credentials to `token_url`.
    pub fn new(token_url: Url, client_id: &str, client_secret: &str, refresh_token: &str) -> Self {
        Self {
            token_url,
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            state: Mutex::new(SessionState {
                refresh_token: refresh_token.to_owned(),
                access: None,
            }),
        }
    }

    async fn access_token(&self, client: &ApiClient) -> Result<String, PollError> {
        let mut state = self.state.lock().await;
        if let Some(access) = state.access.as_ref().filter(|a| Instant::now() < a.renew_at) {
            return Ok(access.value.clone());
        }
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", &self.client_id),
            ("client_secret", &self.client_secret),
            ("refresh_token", &state.refresh_token),
        ];
        let request = client
            .http
            .post(self.token_url.clone())
            .header(ACCEPT, "application/json")
            .form(&form)
            .build()
            .map_err(transport_error)?;
        let requested_at = Instant::now();
        let response = client.send_with_retry(request).await?;
        let body = read_json(response).await.map_err(|error| match error {
            PollError::NotFound => PollError::Provider {
                status: 404,
                message: "OAuth token refresh: the token endpoint does not exist (check the API base)".to_owned(),
            },
            PollError::Provider { status, message } => PollError::Provider {
                status,
                message: format!("OAuth token refresh: {message}"),
            },
            other => other,
        })?;
        let token = TokenAnswer::parse(&body, Utc::now())?;
        tracing::debug!(
            provider = client.provider,
            lifetime_secs = token.lifetime.as_secs(),
            "access token refreshed"
        );
        if let Some(refresh_token) = token.refresh_token {
            state.refresh_token = refresh_token;
        }
        state.access = Some(AccessToken {
            value: token.access_token.clone(),
            renew_at: requested_at + renew_after(token.lifetime),
        });
        Ok(token.access_token)
    }

    /// Forgets `refused` if it is still the cached token (another poll may
    /// have replaced it already).
    async fn invalidate(&self, refused: &str) {
        let mut state = self.state.lock().await;
        if state.access.as_ref().is_some_and(|access| access.value == refused) {
            state.access = None;
        }
    }
}

/// What a token endpoint answers.
#[derive(Debug, PartialEq)]
struct TokenAnswer {
    access_token: String,
    lifetime: Duration,
    refresh_token: Option<String>,
}

impl TokenAnswer {
    /// `expires_in` is seconds (RFC 6749, Adobe), as a number or a string, or
    /// an expiry time (FuseSign documents a date-time).
    fn parse(body: &Value, now: DateTime<Utc>) -> Result<Self, PollError> {
        let text = |field: &str| {
            body.get(field)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let access_token = text("access_token")
            .ok_or_else(|| PollError::InvalidResponse("the token answer has no access_token".to_owned()))?;
        let lifetime = match body.get("expires_in") {
            Some(Value::Number(n)) => n.as_f64().map(|secs| Duration::from_secs_f64(secs.clamp(0.0, 1e9))),
            Some(Value::String(s)) => match s.trim().parse::<u64>() {
                Ok(secs) => Some(Duration::from_secs(secs)),
                Err(_) => parse_time(&Value::String(s.clone())).map(|at| (at - now).to_std().unwrap_or(Duration::ZERO)),
            },
            _ => None,
        };
        Ok(Self {
            access_token,
            lifetime: lifetime.unwrap_or(DEFAULT_TOKEN_LIFETIME),
            refresh_token: text("refresh_token"),
        })
    }
}

/// When to replace a token that lives `lifetime`: a minute before it expires,
/// or halfway for short-lived tokens, so that no request leaves with a token
/// that expires on the way.
fn renew_after(lifetime: Duration) -> Duration {
    lifetime - EXPIRY_MARGIN.min(lifetime / 2)
}

/// A `reqwest::Client` with timeouts, and the retry policy.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    /// For logs: which provider a retry is about.
    provider: &'static str,
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
    pub async fn send_with_retry(&self, request: Request) -> Result<Response, PollError> {
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

/// The JSON body of a 2xx answer; 404 is [`PollError::NotFound`]; any other
/// status a [`PollError::Provider`] with a short reason.
async fn read_json(response: Response) -> Result<Value, PollError> {
    let status = response.status();
    let body = response.bytes().await.map_err(transport_error)?;
    if status.is_success() {
        return serde_json::from_slice(&body)
            .map_err(|e| PollError::InvalidResponse(format!("the {status} answer is not JSON: {e}")));
    }
    if status == StatusCode::NOT_FOUND {
        return Err(PollError::NotFound);
    }
    Err(PollError::Provider {
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

fn with_bearer(request: &Request, token: &str) -> Result<Request, PollError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| PollError::InvalidResponse("the access token is not a valid header value".to_owned()))?;
    value.set_sensitive(true);
    let mut request = request
        .try_clone()
        .expect("API requests have no body or an in-memory one, which clones");
    request.headers_mut().insert(AUTHORIZATION, value);
    Ok(request)
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
fn transport_error(error: reqwest::Error) -> PollError {
    let kind = transport_kind(&error);
    let error = error.without_url();
    let mut message = format!("{kind}: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    PollError::Transport(message)
}

/// `base` followed by `segments`, each percent-encoded.
pub fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("API bases are http(s) URLs, which have a path")
        .pop_if_empty()
        .extend(segments);
    url
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
    use serde_json::json;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("valid test time")
            .with_timezone(&Utc)
    }

    #[test]
    fn retry_after_table() {
        let now = at("2026-11-20T09:41:27Z");
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
    fn tokens_are_renewed_a_minute_early_or_halfway_when_short_lived() {
        let secs = Duration::from_secs;
        assert_eq!(renew_after(secs(3600)), secs(3540));
        assert_eq!(renew_after(secs(120)), secs(60));
        assert_eq!(renew_after(secs(60)), secs(30));
        assert_eq!(renew_after(secs(1)), Duration::from_millis(500));
        assert_eq!(renew_after(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn token_answers_state_lifetimes_in_seconds_or_as_an_expiry_time() {
        let now = at("2026-11-20T09:41:27Z");
        let lifetime = |expires_in: Value| {
            TokenAnswer::parse(&json!({"access_token": "a", "expires_in": expires_in}), now)
                .expect("parses")
                .lifetime
        };
        assert_eq!(lifetime(json!(3600)), Duration::from_secs(3600));
        assert_eq!(lifetime(json!("3600")), Duration::from_secs(3600));
        assert_eq!(lifetime(json!("2026-11-20T10:41:27Z")), Duration::from_secs(3600));
        assert_eq!(lifetime(json!("2026-11-20T10:41:27.000")), Duration::from_secs(3600));
        assert_eq!(lifetime(json!("2026-11-20T09:00:00Z")), Duration::ZERO);
        assert_eq!(lifetime(json!(-5)), Duration::ZERO);
        assert_eq!(lifetime(json!(null)), DEFAULT_TOKEN_LIFETIME);
        assert_eq!(lifetime(json!("never")), DEFAULT_TOKEN_LIFETIME);

        let answer = TokenAnswer::parse(&json!({"access_token": " t1 ", "refresh_token": "r2"}), now).expect("parses");
        assert_eq!(
            (answer.access_token.as_str(), answer.refresh_token.as_deref()),
            ("t1", Some("r2"))
        );
        for bad in [
            json!({}),
            json!({"access_token": ""}),
            json!({"access_token": 5}),
            json!([]),
        ] {
            assert!(matches!(
                TokenAnswer::parse(&bad, now),
                Err(PollError::InvalidResponse(_))
            ));
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

    #[test]
    fn endpoints_encode_each_segment() {
        let base = base_url("k", "https://api.na1.adobesign.com/").expect("valid");
        assert_eq!(
            endpoint(&base, &["api", "rest", "v6", "agreements", "a/b?c"]).as_str(),
            "https://api.na1.adobesign.com/api/rest/v6/agreements/a%2Fb%3Fc"
        );
        let prefixed = base_url("k", "http://127.0.0.1:9/prefix").expect("valid");
        assert_eq!(endpoint(&prefixed, &["v1"]).as_str(), "http://127.0.0.1:9/prefix/v1");
    }

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
