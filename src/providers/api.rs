//! The HTTP client behind [`Provider::poll`](super::Provider::poll) and
//! [`Provider::watch`](super::Provider::watch), shared by every provider:
//! timeouts, the credential (a fixed header or an OAuth session, see
//! `oauth.rs`), the account's rate budget (`crate::ledger`, kept in
//! PostgreSQL for every replica), and turning an answer into JSON or a
//! [`CallError`] classified by what it means.
//!
//! What the providers asked for, built in here:
//! - A 429, or a 503 with `Retry-After`, is never retried inside the call: it
//!   pauses every call to that account, on every replica, for as long as the
//!   provider asked (`Retry-After`, else the provider's own hint: Adobe's
//!   `retryAfter`, BoldSign's `X-RateLimit-Reset`), with no cap. Adobe throttles a retry inside the
//!   interval again and resets it.
//! - A `POST` is sent once: a lost answer may mean the provider acted, so the
//!   caller decides (Adobe's watch looks for the webhook it may have made).
//! - An identical GET inside the account's minimum interval (Adobe's minimum
//!   object polling interval) is not sent; after it, the ETag of the last
//!   answer goes out as `If-None-Match` and a 304 is answered from that body.
//! - 5xx and transport errors of other GETs and of DELETEs are retried with
//!   exponential backoff, each attempt drawing from the budget.
//!
//! Paths, headers and JSON fields of each provider stay in that provider's
//! module (its [`Dialect`] reads its error codes and throttling hints);
//! nothing here logs a secret or a response body.

use std::{
    hash::{BuildHasher, RandomState},
    sync::{Arc, OnceLock, RwLock},
    time::{Duration, Instant},
};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use metrics::{counter, gauge};
use reqwest::{
    header::{
        HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH,
        RETRY_AFTER,
    },
    redirect, Method, Request, Response, StatusCode, Url,
};
use serde_json::Value;

use super::{oauth::OAuthSession, settings::ClientSettings, PollError};
use crate::{
    config::{invalid, ConfigError},
    ledger::{Admission, Admitted, ApiLedger, ApiLimits, WaitReason},
    telemetry::metric,
};

/// Longest provider message kept in a [`CallError::Status`].
const MAX_MESSAGE_CHARS: usize = 200;
/// Longest a call waits inside itself for the budget to refill; a longer
/// wait is a [`CallError::Throttled`] for the caller to schedule.
const MAX_BUDGET_WAIT: Duration = Duration::from_secs(5);
/// How long an account is paused after a throttling answer that says
/// nothing about how long to wait.
const DEFAULT_PAUSE: Duration = Duration::from_secs(60);
/// Largest answer kept for `If-None-Match` (an Adobe agreement without its
/// documents is a few KB).
const MAX_KEPT_BODY: usize = 256 * 1024;

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

/// Where a provider's API is.
pub enum Base {
    /// Configured.
    Fixed(Url),
    /// Asked of `discovery` (Adobe's `GET /baseUris`, whose answer names it in
    /// `field`) or taken from the OAuth token answer, and asked again when
    /// the provider says it is wrong.
    Discovered {
        discovery: Url,
        field: &'static str,
        found: RwLock<Option<Url>>,
    },
}

impl Base {
    fn current(&self) -> Option<Url> {
        match self {
            Self::Fixed(url) => Some(url.clone()),
            Self::Discovered { found, .. } => found.read().expect("the base lock is never poisoned").clone(),
        }
    }

    fn set(&self, url: Url) {
        if let Self::Discovered { found, .. } = self {
            *found.write().expect("the base lock is never poisoned") = Some(url);
        }
    }

    fn forget(&self) {
        if let Self::Discovered { found, .. } = self {
            *found.write().expect("the base lock is never poisoned") = None;
        }
    }
}

/// A JSON answer and its ETag.
#[derive(Debug, Clone)]
pub struct Answer {
    pub json: Value,
    pub etag: Option<String>,
}

/// One call: method, path below the base (each segment percent-encoded, so
/// an id never leaves its segment), query pairs, body and `If-Match`.
struct Call<'a> {
    method: Method,
    segments: &'a [&'a str],
    query: &'a [(&'a str, &'a str)],
    body: Option<&'a Value>,
    if_match: Option<&'a str>,
    /// Inside the minimum interval, answer from the last 2xx answer rather
    /// than refuse (for what changes rarely: where the API is).
    reuse_within_interval: bool,
}

impl<'a> Call<'a> {
    fn new(method: Method, segments: &'a [&'a str]) -> Self {
        Self {
            method,
            segments,
            query: &[],
            body: None,
            if_match: None,
            reuse_within_interval: false,
        }
    }
}

/// One provider's API: where it is, how to authenticate, its account's
/// limits, and the client that calls it.
pub struct Api {
    client: ApiClient,
    base: Base,
    credential: Credential,
    limits: ApiLimits,
    dialect: Dialect,
    /// The shared budget, once the service has a database (see
    /// [`Api::attach`]); without one calls are admitted as they come.
    ledger: OnceLock<Arc<dyn ApiLedger>>,
}

impl Api {
    pub fn new(client: ApiClient, base: Base, credential: Credential, limits: ApiLimits, dialect: Dialect) -> Self {
        Self {
            client,
            base,
            credential,
            limits,
            dialect,
            ledger: OnceLock::new(),
        }
    }

    /// Draws every call from now on from `ledger`.
    pub fn attach(&self, ledger: Arc<dyn ApiLedger>) {
        let _ = self.ledger.set(ledger);
    }

    pub fn limits(&self) -> ApiLimits {
        self.limits
    }

    /// For `check-config`: whether polling is configured, and how it authenticates.
    pub fn describe(api: Option<&Api>) -> Value {
        let auth = api.map(|api| match api.credential {
            Credential::Header(..) => "api_key",
            Credential::OAuth(_) => "oauth_refresh_token",
        });
        let limits = api.map(|api| {
            serde_json::json!({
                "requests_per_hour": api.limits.per_hour,
                "min_interval_secs": api.limits.min_interval.as_secs(),
            })
        });
        serde_json::json!({ "configured": api.is_some(), "auth": auth, "limits": limits })
    }

    /// GETs `segments?query` and returns its JSON body.
    pub async fn get_json(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Value, CallError> {
        Ok(self.get(segments, query).await?.json)
    }

    /// GETs `segments?query`; the answer with its ETag.
    pub async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Answer, CallError> {
        let mut call = Call::new(Method::GET, segments);
        call.query = query;
        self.execute(&call).await
    }

    /// POSTs `body` as JSON, once (see the module doc), and returns the JSON answer.
    pub async fn post_json(&self, segments: &[&str], body: &Value) -> Result<Value, CallError> {
        let mut call = Call::new(Method::POST, segments);
        call.body = Some(body);
        Ok(self.execute(&call).await?.json)
    }

    /// DELETEs `segments`, with `If-Match: if_match` when given; any 2xx is
    /// success, whatever its body.
    pub async fn delete(&self, segments: &[&str], if_match: Option<&str>) -> Result<(), CallError> {
        let mut call = Call::new(Method::DELETE, segments);
        call.if_match = if_match;
        self.execute(&call).await.map(|_| ())
    }

    /// The call at the current base; once more at a rediscovered base when
    /// the provider says the base is wrong.
    async fn execute(&self, call: &Call<'_>) -> Result<Answer, CallError> {
        let mut rediscovered = false;
        loop {
            let base = self.base(rediscovered).await?;
            match self.execute_at(&base, call).await {
                Err(CallError::WrongAccessPoint) if !rediscovered && matches!(self.base, Base::Discovered { .. }) => {
                    tracing::warn!(
                        provider = self.client.provider,
                        "the provider says this is not the account's API access point; discovering it again"
                    );
                    self.base.forget();
                    rediscovered = true;
                }
                other => return other,
            }
        }
    }

    /// The API base: configured, found before, from the OAuth token answer,
    /// or asked of the discovery endpoint (`again`: not from the kept answer,
    /// which named the base just refused).
    async fn base(&self, again: bool) -> Result<Url, CallError> {
        if let Some(base) = self.base.current() {
            return Ok(base);
        }
        let Base::Discovered { discovery, field, .. } = &self.base else {
            unreachable!("a fixed base is always current");
        };
        if let (Credential::OAuth(session), false) = (&self.credential, again) {
            self.token(session).await?;
            if let Some(point) = session.api_access_point().await {
                tracing::info!(provider = self.client.provider, api_access_point = %point, "API access point from the OAuth token answer");
                self.base.set(point.clone());
                return Ok(point);
            }
        }
        let mut origin = discovery.clone();
        origin.set_path("/");
        let path: Vec<&str> = discovery.path_segments().map(|s| s.collect()).unwrap_or_default();
        let mut call = Call::new(Method::GET, &path);
        call.reuse_within_interval = !again;
        let answer = self.execute_at(&origin, &call).await?;
        let point = answer
            .json
            .get(*field)
            .and_then(Value::as_str)
            .and_then(|point| super::settings::base_url("adobe_sign_api_base", point).ok())
            .ok_or_else(|| CallError::InvalidResponse(format!("the base URI answer has no {field}")))?;
        tracing::info!(provider = self.client.provider, api_access_point = %point, "API access point discovered");
        self.base.set(point.clone());
        Ok(point)
    }

    async fn execute_at(&self, base: &Url, call: &Call<'_>) -> Result<Answer, CallError> {
        let mut url = endpoint(base, call.segments);
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(call.query);
        }
        let key = (call.method == Method::GET && !self.limits.min_interval.is_zero()).then(|| request_key(&url));
        // A POST may have acted although its answer was lost; an identical
        // GET may not go again inside the interval.
        let attempts = match call.method == Method::POST || key.is_some() {
            true => 1,
            false => self.client.max_attempts,
        };
        let mut attempt = 1;
        loop {
            let admitted = self.admit(key.as_deref()).await?;
            if let Some(reason) = admitted.reason {
                if let (true, WaitReason::Interval, Some(body)) = (call.reuse_within_interval, reason, &admitted.body) {
                    return Ok(Answer {
                        json: parse_json(body, StatusCode::OK)?,
                        etag: admitted.etag,
                    });
                }
                return Err(CallError::Throttled {
                    wait: admitted.wait,
                    reason,
                });
            }
            let request = self.request(
                call,
                url.clone(),
                admitted.etag.as_deref().filter(|_| admitted.body.is_some()),
            )?;
            let retry = |reason: &str| {
                (attempt < attempts).then(|| {
                    let wait = backoff(self.client.retry_base, attempt).min(self.client.retry_max);
                    tracing::warn!(
                        provider = self.client.provider,
                        attempt,
                        max_attempts = attempts,
                        reason,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "provider API call failed; retrying"
                    );
                    wait
                })
            };
            let (status, headers, body) = match self.send(request).await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Ok(body) => (status, headers, body),
                        Err(error) => match retry("answer cut off") {
                            Some(wait) => {
                                tokio::time::sleep(wait).await;
                                attempt += 1;
                                continue;
                            }
                            None => return Err(transport_error(error)),
                        },
                    }
                }
                Err(CallError::Transport(message)) => match retry("transport") {
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        continue;
                    }
                    None => return Err(CallError::Transport(message)),
                },
                Err(error) => return Err(error),
            };
            if let Some(wait) = throttled(status, &headers, &body, self.dialect, Utc::now()) {
                let reason = format!("{status}: {}", error_message(&body, status));
                return Err(self.pause(wait, reason).await);
            }
            if status.is_server_error() {
                if let Some(wait) = retry(status.as_str()) {
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    continue;
                }
            }
            if status == StatusCode::NOT_MODIFIED {
                let body = admitted.body.ok_or_else(|| {
                    CallError::InvalidResponse("304 to a request sent without If-None-Match".to_owned())
                })?;
                return Ok(Answer {
                    json: parse_json(&body, StatusCode::OK)?,
                    etag: admitted.etag,
                });
            }
            return self
                .answer(status, &headers, body, key.as_deref(), call.reuse_within_interval)
                .await;
        }
    }

    /// Waits for the budget when the wait is short; a paused account, a
    /// longer wait or an identical GET too soon is answered at once.
    async fn admit(&self, key: Option<&str>) -> Result<Admitted, CallError> {
        let Some(ledger) = self.ledger.get() else {
            return Ok(Admitted {
                wait: Duration::ZERO,
                reason: None,
                etag: None,
                body: None,
            });
        };
        loop {
            let admitted = ledger
                .admit(Admission {
                    account: self.client.provider,
                    limits: self.limits,
                    request: key,
                })
                .await
                .map_err(|error| CallError::Ledger(error.to_string()))?;
            match admitted.reason {
                Some(WaitReason::Budget) if admitted.wait <= MAX_BUDGET_WAIT => tokio::time::sleep(admitted.wait).await,
                _ => return Ok(admitted),
            }
        }
    }

    /// Records the provider's throttling for every replica and answers
    /// [`CallError::Throttled`].
    async fn pause(&self, wait: Duration, reason: String) -> CallError {
        let provider = self.client.provider;
        counter!(metric::PROVIDER_API_THROTTLED, "provider" => provider).increment(1);
        gauge!(metric::PROVIDER_API_PAUSED, "provider" => provider).set(1.0);
        tracing::warn!(
            provider,
            pause_secs = wait.as_secs(),
            reason = %reason,
            "the provider throttled its API account; every replica pauses all calls to it for as long as it asked"
        );
        if let Some(ledger) = self.ledger.get() {
            if let Err(error) = ledger.pause(provider, wait, &reason).await {
                tracing::warn!(provider, %error, "could not record the pause for the other replicas");
            }
        }
        CallError::Throttled {
            wait,
            reason: WaitReason::Paused,
        }
    }

    /// A final answer as JSON or a classified error; a GET's ETag and body
    /// are kept for the next `If-None-Match` (the body of a reusable GET
    /// even without an ETag).
    async fn answer(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        key: Option<&str>,
        reuse_within_interval: bool,
    ) -> Result<Answer, CallError> {
        let etag = headers
            .get(ETAG)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        if !status.is_success() {
            let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
            return Err((self.dialect.classify)(status, &json).unwrap_or_else(|| match status {
                StatusCode::NOT_FOUND => CallError::NotFound,
                _ => CallError::Status {
                    status: status.as_u16(),
                    message: error_message(&body, status),
                },
            }));
        }
        let json = match body.is_empty() {
            true => Value::Null,
            false => parse_json(&body, status)?,
        };
        let keep = etag.is_some() || reuse_within_interval;
        if let (Some(key), Some(ledger), true) = (key, self.ledger.get(), keep) {
            if body.len() <= MAX_KEPT_BODY {
                if let Err(error) = ledger.remember(self.client.provider, key, etag.as_deref(), &body).await {
                    tracing::warn!(provider = self.client.provider, %error, "could not keep the answer");
                }
            }
        }
        Ok(Answer { json, etag })
    }

    fn request(&self, call: &Call<'_>, url: Url, if_none_match: Option<&str>) -> Result<Request, CallError> {
        let mut request = Request::new(call.method.clone(), url);
        let headers = request.headers_mut();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let header = |value: &str| {
            HeaderValue::from_str(value).map_err(|_| {
                CallError::InvalidResponse("an ETag from the provider is not a valid header value".to_owned())
            })
        };
        if let Some(etag) = if_none_match {
            headers.insert(IF_NONE_MATCH, header(etag)?);
        }
        if let Some(etag) = call.if_match {
            headers.insert(IF_MATCH, header(etag)?);
        }
        if let Some(body) = call.body {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            *request.body_mut() = Some(serde_json::to_vec(body).expect("a JSON value serializes").into());
        }
        Ok(request)
    }

    /// Sends a request once with the credential. On a 401 with an OAuth
    /// session, the access token is replaced once and the request sent again
    /// (the token was revoked, or the clocks disagree).
    async fn send(&self, mut request: Request) -> Result<Response, CallError> {
        let http = &self.client.http;
        match &self.credential {
            Credential::Header(name, value) => {
                request.headers_mut().insert(name.clone(), value.clone());
                http.execute(request).await.map_err(transport_error)
            }
            Credential::OAuth(session) => {
                let token = self.token(session).await?;
                let response = http
                    .execute(with_bearer(&request, &token)?)
                    .await
                    .map_err(transport_error)?;
                if response.status() != StatusCode::UNAUTHORIZED {
                    return Ok(response);
                }
                tracing::info!(
                    provider = self.client.provider,
                    "access token refused before its expiry; refreshing it once"
                );
                session.invalidate(&token).await;
                let token = self.token(session).await?;
                http.execute(with_bearer(&request, &token)?)
                    .await
                    .map_err(transport_error)
            }
        }
    }
}

impl Api {
    /// An access token from the session; the token endpoint's throttling
    /// pauses the account like any other.
    async fn token(&self, session: &OAuthSession) -> Result<String, CallError> {
        match session.access_token(&self.client, self.ledger.get()).await {
            Err(CallError::Throttled { wait, .. }) => Err(self
                .pause(wait, "the OAuth token endpoint throttled the refresh".to_owned())
                .await),
            other => other,
        }
    }
}

/// `GET <path>?<query>`: what makes two GETs identical.
fn request_key(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("GET {}?{query}", url.path()),
        None => format!("GET {}", url.path()),
    }
}

fn parse_json(body: &[u8], status: StatusCode) -> Result<Value, CallError> {
    serde_json::from_slice(body)
        .map_err(|e| CallError::InvalidResponse(format!("the {status} answer is not JSON: {e}")))
}

/// How long a throttling answer asks to wait: a 429, or a 503 with
/// `Retry-After`. The wait is the `Retry-After` header, else what the
/// provider's [`Dialect::wait_hint`] reads, else a minute. Never capped.
fn throttled(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    dialect: Dialect,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, now));
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
    /// OAuth refresh token (boxed: a session is much larger than a header).
    OAuth(Box<OAuthSession>),
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

fn with_bearer(request: &Request, token: &str) -> Result<Request, CallError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| CallError::InvalidResponse("the access token is not a valid header value".to_owned()))?;
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

/// `base` followed by `segments`, each percent-encoded.
pub fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("API bases are http(s) URLs, which have a path")
        .pop_if_empty()
        .extend(segments);
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::settings::base_url;
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

    /// Throttling is a 429, or a 503 only with `Retry-After`; the wait is
    /// `Retry-After`, else the provider's own hint, else a minute.
    #[test]
    fn throttling_waits_as_long_as_the_provider_asked() {
        let now = at("2026-11-20T09:41:27Z");
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
}
