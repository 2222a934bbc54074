//! Authenticated calls to one provider's API, behind
//! [`Provider::poll`](super::Provider::poll),
//! [`Provider::watch`](super::Provider::watch) and
//! [`Provider::download`](super::Provider::download) (documents, streamed
//! by [`Api::download`]): where the API is (configured
//! or discovered), its credential (a fixed header or an OAuth session, see
//! `oauth.rs`), the account's rate budget (`crate::ledger`, kept in
//! PostgreSQL for every replica), and the shared client (`client.rs`) that
//! sends the calls and reads their answers.
//!
//! What the providers asked for, built in here:
//! - A 429, or a 503 with `Retry-After`, is never retried inside the call: it
//!   pauses every call to that account, on every replica, for as long as the
//!   provider asked (`Retry-After`, else the provider's own hint: Adobe's
//!   `retryAfter`, BoldSign's `X-RateLimit-Reset`), with no cap. Adobe
//!   throttles a retry inside the interval again and resets it.
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
    sync::{Arc, OnceLock, RwLock},
    time::Duration,
};

use bytes::Bytes;
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use metrics::{counter, gauge};
use reqwest::{
    header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH},
    Method, Request, Response, StatusCode, Url,
};
use serde_json::Value;

use super::{
    client::{backoff, error_message, parse_json, throttled, transport_error, ApiClient, CallError, Dialect},
    oauth::OAuthSession,
    PollError,
};
use crate::{
    config::{invalid, ConfigError},
    documents::{DocumentRef, Download, SourceError},
    ledger::{Admission, Admitted, ApiLedger, ApiLimits, WaitReason},
    telemetry::metric,
};

/// Longest a call waits inside itself for the budget to refill; a longer
/// wait is a [`CallError::Throttled`] for the caller to schedule.
const MAX_BUDGET_WAIT: Duration = Duration::from_secs(5);
/// Largest answer kept for `If-None-Match` (an Adobe agreement without its
/// documents is a few KB).
const MAX_KEPT_BODY: usize = 256 * 1024;
/// Most of an error answer to a download that is read (for its message).
const MAX_ERROR_BODY: usize = 16 * 1024;

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
    /// The `Accept` header: JSON, except for documents.
    accept: &'static str,
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
            accept: "application/json",
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

    /// GETs a document and answers it as a stream, never buffered whole. It
    /// is admitted by the account's shared budget like every call and sent
    /// once: the document job retries with its own backoff, and a throttling
    /// answer pauses the account as for any call. An error answer is read up
    /// to a few KB and classified like any other.
    pub async fn download(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        accept: &'static str,
    ) -> Result<Download, CallError> {
        let base = self.base(false).await?;
        let mut url = endpoint(&base, segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let admitted = self.admit(None).await?;
        if let Some(reason) = admitted.reason {
            return Err(CallError::Throttled {
                wait: admitted.wait,
                reason,
            });
        }
        let mut call = Call::new(Method::GET, segments);
        call.accept = accept;
        let response = self.send(self.request(&call, url, None)?).await?;
        let status = response.status();
        let headers = response.headers().clone();
        if !status.is_success() {
            let body = head_of(response, MAX_ERROR_BODY).await;
            if let Some(wait) = throttled(status, &headers, &body, self.dialect, Utc::now()) {
                let reason = format!("{status}: {}", error_message(&body, status));
                return Err(self.pause(wait, reason).await);
            }
            let error = self.error_answer(status, &body);
            if error == CallError::WrongAccessPoint {
                self.base.forget();
            }
            return Err(error);
        }
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        let length = response.content_length();
        Ok(Download {
            content_type,
            length,
            body: response
                .bytes_stream()
                .map_err(|error| SourceError::from(transport_error(error)))
                .boxed(),
        })
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
        if !call.segments.iter().copied().all(names_a_resource) {
            return Err(CallError::NotFound);
        }
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
            return Err(self.error_answer(status, &body));
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

    /// An error answer as a [`CallError`]: the provider's own codes first.
    fn error_answer(&self, status: StatusCode, body: &[u8]) -> CallError {
        let json = serde_json::from_slice(body).unwrap_or(Value::Null);
        (self.dialect.classify)(status, &json).unwrap_or_else(|| match status {
            StatusCode::NOT_FOUND => CallError::NotFound,
            _ => CallError::Status {
                status: status.as_u16(),
                message: error_message(body, status),
            },
        })
    }

    fn request(&self, call: &Call<'_>, url: Url, if_none_match: Option<&str>) -> Result<Request, CallError> {
        let mut request = Request::new(call.method.clone(), url);
        let headers = request.headers_mut();
        headers.insert(ACCEPT, HeaderValue::from_static(call.accept));
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

/// At most `limit` bytes of an answer's body (an error page may be large).
async fn head_of(response: Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())]);
        if body.len() >= limit {
            break;
        }
    }
    body
}

/// `GET <path>?<query>`: what makes two GETs identical.
fn request_key(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("GET {}?{query}", url.path()),
        None => format!("GET {}", url.path()),
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

/// Downloads `document` with the configured API (`None`: not configured).
pub async fn download(api: Option<&Api>, document: &DocumentRef) -> Result<Download, PollError> {
    let api = api.ok_or(PollError::NotConfigured)?;
    let segments: Vec<&str> = document.path.iter().map(String::as_str).collect();
    let query: Vec<(&str, &str)> = document.query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Ok(api.download(&segments, &query, document.accept).await?)
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

    /// An OAuth session renewing its access token at `token_url` with the
    /// grant `[client id, client secret, refresh token]`.
    pub fn oauth(token_url: Url, [client_id, client_secret, refresh_token]: [&str; 3]) -> Self {
        Self::OAuth(Box::new(OAuthSession::new(
            token_url,
            client_id,
            client_secret,
            refresh_token,
        )))
    }

    /// `Authorization: Bearer <token>`, `token` coming from the setting `key`.
    pub fn bearer(token: &str, key: &str) -> Result<Self, ConfigError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| invalid(key, "must be visible ASCII (it is sent in a header)"))?;
        value.set_sensitive(true);
        Ok(Self::Header(AUTHORIZATION, value))
    }
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

/// Whether `segment` (an id taken from a notification, say) can stand in a
/// URL path for itself. `.` and `..` cannot: URL rules drop them or climb a
/// level (`agreements/.` is `agreements`, the list of every agreement), and
/// an empty one makes `agreements/`. No provider can have a resource by those
/// ids, so a call for one is answered "not found" without being sent. (Any
/// other text is percent-encoded, `%` included, by [`endpoint`].)
fn names_a_resource(segment: &str) -> bool {
    !matches!(segment, "" | "." | "..")
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

    #[test]
    fn endpoints_encode_each_segment() {
        let base = base_url("k", "https://api.na1.adobesign.com/").expect("valid");
        assert_eq!(
            endpoint(&base, &["api", "rest", "v6", "agreements", "a/b?c"]).as_str(),
            "https://api.na1.adobesign.com/api/rest/v6/agreements/a%2Fb%3Fc"
        );
        let prefixed = base_url("k", "http://127.0.0.1:9/prefix").expect("valid");
        assert_eq!(endpoint(&prefixed, &["v1"]).as_str(), "http://127.0.0.1:9/prefix/v1");
        // Percent signs are encoded too: `%2e` stays an id, not a dot segment.
        assert_eq!(
            endpoint(&base, &["agreements", "%2e%2E", "x%2Fy"]).as_str(),
            "https://api.na1.adobesign.com/agreements/%252e%252E/x%252Fy"
        );
    }

    #[test]
    fn dot_segments_and_empty_ids_name_no_resource() {
        for id in ["", ".", ".."] {
            assert!(!names_a_resource(id), "{id:?}");
        }
        for id in ["...", ".a", "a.", "%2e", "CBJCHBCAABAA"] {
            assert!(names_a_resource(id), "{id:?}");
        }
    }
}
