//! A fake of the providers' REST APIs, for the polling clients' tests: Adobe
//! Sign's agreements, base URIs and OAuth refresh, BoldSign's document
//! properties, and FuseSign's bundles and OAuth refresh, served on
//! 127.0.0.1:0; and Adobe Sign's webhooks (`POST`, `GET`, `GET {id}`,
//! `DELETE {id}` under `/api/rest/v6/webhooks`). A test programs it (statuses,
//! failures, delays, token lifetime and expiry, throttling, permission errors,
//! Adobe's polling threshold, shard moves) and reads back the requests it saw,
//! the webhooks registered and how many requests for one path were in flight.
//!
//! Every answer is shaped as the provider documents it; the source is cited
//! next to each (research notes in `research/*.md` name the pages).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{
    extract::{Path, Query, Request, State},
    http::{header, HeaderMap, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Form, Json, Router,
};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

pub const ADOBE_API_TOKEN: &str = "adobe-integration-key-1";
pub const BOLDSIGN_API_KEY: &str = "boldsign-api-key-1";
pub const FUSESIGN_API_TOKEN: &str = "fusesign-wholesale-token-1";
pub const FUSESIGN_TENANT_ID: &str = "7ffcbae4-9f50-4136-8de6-edb6f796dc3f";
pub const OAUTH_CLIENT_ID: &str = "oauth-client-1";
pub const OAUTH_CLIENT_SECRET: &str = "oauth-client-secret-1";
pub const OAUTH_REFRESH_TOKEN: &str = "oauth-refresh-token-1";

/// Paths of the token endpoints (every other path is an API call).
pub const TOKEN_PATHS: [&str; 2] = ["/oauth/v2/refresh", "/api/Session/OAuthRefreshToken"];
/// Adobe's `GET /baseUris` path (on the non-shard host).
pub const BASE_URIS_PATH: &str = "/api/rest/v6/baseUris";
/// The two "shards" the fake serves Adobe's API under, as path prefixes of
/// its one address (`apiAccessPoint` = `<base_url>/<shard>/`).
pub const SHARDS: [&str; 2] = ["shard-a", "shard-b"];

/// A canned error answer for the next requests, whatever they ask.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// Adobe's throttling answer (developer guide, API usage): 429,
    /// `Retry-After: <secs>` and `{"code":"THROTTLING_TOO_MANY_REQUESTS",
    /// "message":…,"retryAfter":<secs>}`.
    TooManyRequests { retry_after_secs: u64 },
    /// Adobe's high-load throttling (release notes, May 2025): 429 with
    /// `X-Throttling-Reason: high-system-load`, `Retry-After` and
    /// `THROTTLING_HIGH_SYSTEM_LOAD`.
    HighSystemLoad { retry_after_secs: u64 },
    /// BoldSign's quota answer (support KB "API calls quota exceeded"): 429
    /// with `X-RateLimit-Limit`, `X-RateLimit-Remaining: 0` and
    /// `X-RateLimit-Reset` (unix seconds), no `Retry-After`.
    QuotaExceeded { reset_in_secs: u64 },
    /// 503 with `Retry-After: <secs>`.
    Unavailable { retry_after_secs: u64 },
    /// 500.
    ServerError,
}

/// A request the fake received, recorded on arrival.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// It carried a credential header (`Authorization`, `X-API-KEY` or `X-API-Token`).
    pub authenticated: bool,
    /// It carried an access token this fake issued, after that token expired.
    pub expired_token: bool,
    /// Its `If-None-Match` and `If-Match` headers.
    pub if_none_match: Option<String>,
    pub if_match: Option<String>,
    /// The HTTP status it was answered (recorded once answered).
    pub status: Option<u16>,
}

impl SeenRequest {
    pub fn is_token_request(&self) -> bool {
        TOKEN_PATHS.contains(&self.path.as_str())
    }

    /// A download of a completed agreement's documents (Adobe's
    /// `combinedDocument` and `auditTrail`), which a refresh that completes
    /// an agreement starts; this fake does not serve them (it answers 404),
    /// `fake_documents.rs` does, and `tests/api/documents.rs` tests them.
    pub fn is_document_download(&self) -> bool {
        self.path.ends_with("/combinedDocument") || self.path.ends_with("/auditTrail")
    }
}

#[derive(Default)]
struct FakeState {
    /// Adobe agreements, BoldSign documents: id → (name, status).
    agreements: HashMap<String, (String, String)>,
    documents: HashMap<String, (String, String)>,
    /// FuseSign bundles: id → (subject, status, tenant).
    bundles: HashMap<String, (String, String, String)>,
    /// Adobe agreements the token's user cannot see, and the status of the
    /// `PERMISSION_DENIED` answer (403 per the API definition, 404 per the
    /// webhook guide).
    denied: HashMap<String, u16>,
    /// Adobe's minimum object polling interval; zero: off.
    min_poll_interval: Duration,
    /// Last time each identical Adobe GET (path and query) was answered.
    last_get: HashMap<String, Instant>,
    /// The shard that is this Adobe account's now (index into [`SHARDS`]).
    shard: usize,
    /// The refresh token the token endpoints accept now; rotated at each
    /// refresh when `rotate_refresh_tokens`.
    refresh_token: String,
    rotate_refresh_tokens: bool,
    /// Adobe's refresh answers name the account's access point.
    oauth_access_point: bool,
    /// Webhook registrations still to be made and then answered 502 (the
    /// answer is lost between Adobe and us).
    webhook_answers_to_lose: usize,
    /// Adobe refuses webhook deletes with this `(status, code)`.
    refuse_deletes: Option<(u16, &'static str)>,
    /// Webhook deletes Adobe carried out.
    webhooks_deleted: usize,
    failures: VecDeque<Failure>,
    delay: Duration,
    token_lifetime: Duration,
    /// Issued access tokens and when each expires.
    tokens: HashMap<String, Instant>,
    token_requests: usize,
    requests: Vec<SeenRequest>,
    /// Registered Adobe webhooks: id → the `WebhookInfo` body as sent.
    webhooks: HashMap<String, Value>,
    webhooks_created: usize,
    /// Webhook registrations still to fail with a 500.
    webhook_failures: usize,
    /// Requests in flight per path, and the most there ever were at once.
    in_flight: HashMap<String, usize>,
    max_in_flight: HashMap<String, usize>,
}

type Shared = Arc<Mutex<FakeState>>;

pub struct FakeProvider {
    /// `http://127.0.0.1:<port>`: the API base for every provider.
    pub base_url: String,
    state: Shared,
    server: JoinHandle<()>,
}

impl FakeProvider {
    /// Starts the fake on a free port; it stops when dropped. Access tokens
    /// live an hour until [`FakeProvider::set_token_lifetime`].
    pub async fn start() -> Self {
        let state: Shared = Arc::new(Mutex::new(FakeState {
            token_lifetime: Duration::from_secs(3600),
            refresh_token: OAUTH_REFRESH_TOKEN.to_owned(),
            ..FakeState::default()
        }));
        let adobe = Router::new()
            .route("/api/rest/v6/agreements", get(adobe_agreement_list))
            .route("/api/rest/v6/agreements/{id}", get(adobe_agreement))
            .route("/oauth/v2/refresh", post(adobe_refresh))
            .route(
                "/api/rest/v6/webhooks",
                post(adobe_create_webhook).get(adobe_list_webhooks),
            )
            .route(
                "/api/rest/v6/webhooks/{id}",
                get(adobe_get_webhook).delete(adobe_delete_webhook),
            );
        let mut router = Router::new()
            .merge(adobe.clone())
            .route(BASE_URIS_PATH, get(adobe_base_uris))
            .route("/v1/document/properties", get(boldsign_document))
            .route("/api/Bundle/Get", get(fusesign_bundle))
            .route("/api/Session/OAuthRefreshToken", post(fusesign_refresh));
        for shard in SHARDS {
            router = router.nest(&format!("/{shard}"), adobe.clone());
        }
        let router = router
            .layer(middleware::from_fn_with_state(state.clone(), intercept))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the fake provider binds a free port");
        let base_url = format!("http://{}", listener.local_addr().expect("bound address"));
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("the fake provider serves");
        });
        Self {
            base_url,
            state,
            server,
        }
    }

    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().expect("fake provider state lock")
    }

    pub fn set_agreement(&self, id: &str, name: &str, status: &str) {
        self.state().agreements.insert(id.into(), (name.into(), status.into()));
    }

    pub fn set_document(&self, id: &str, title: &str, status: &str) {
        self.state().documents.insert(id.into(), (title.into(), status.into()));
    }

    /// A bundle in the default tenant ([`FUSESIGN_TENANT_ID`]).
    pub fn set_bundle(&self, id: &str, subject: &str, status: &str) {
        self.set_bundle_in(FUSESIGN_TENANT_ID, id, subject, status);
    }

    /// A bundle of `tenant`: only a request naming that `TenantId` finds it.
    pub fn set_bundle_in(&self, tenant: &str, id: &str, subject: &str, status: &str) {
        self.state()
            .bundles
            .insert(id.into(), (subject.into(), status.into(), tenant.into()));
    }

    /// The Adobe agreement exists but the token's user may not see it:
    /// `status` (403 or 404) `PERMISSION_DENIED`.
    pub fn deny_agreement(&self, id: &str, status: u16) {
        self.state().denied.insert(id.into(), status);
    }

    /// Adobe's minimum object polling interval (developer guide, API usage,
    /// Oct 2025): an identical GET inside it is throttled (429 with
    /// `retryAfter`) and, as the retry penalty of newer accounts, the
    /// interval starts again.
    pub fn set_min_poll_interval(&self, interval: Duration) {
        self.state().min_poll_interval = interval;
    }

    /// The Adobe account moves to the other shard: its old access point
    /// answers `INVALID_API_ACCESS_POINT`, `GET /baseUris` names the new one.
    pub fn move_shard(&self) {
        let mut state = self.state();
        state.shard = 1 - state.shard;
    }

    /// `apiAccessPoint` of the account's current shard, as `GET /baseUris`
    /// answers it (with the trailing slash Adobe's answer has).
    pub fn access_point(&self) -> String {
        format!("{}/{}/", self.base_url, SHARDS[self.state().shard])
    }

    /// Each refresh answers a new refresh token and refuses the one used.
    pub fn rotate_refresh_tokens(&self) {
        self.state().rotate_refresh_tokens = true;
    }

    /// Adobe's token answers carry `api_access_point`, as its
    /// authorization-code answer does (developer guide, getting started;
    /// whether a refresh answer has it is unconfirmed, so off by default).
    pub fn name_access_point_in_token_answers(&self) {
        self.state().oauth_access_point = true;
    }

    /// The refresh token the token endpoints accept now.
    pub fn current_refresh_token(&self) -> String {
        self.state().refresh_token.clone()
    }

    /// The next `n` webhook registrations are made, but answered 502: the
    /// answer is lost on the way back.
    pub fn lose_webhook_answers(&self, n: usize) {
        self.state().webhook_answers_to_lose += n;
    }

    /// Webhook deletes are refused with `status` and Adobe error `code`.
    pub fn refuse_webhook_deletes(&self, status: u16, code: &'static str) {
        self.state().refuse_deletes = Some((status, code));
    }

    /// Webhook deletes Adobe carried out.
    pub fn webhooks_deleted(&self) -> usize {
        self.state().webhooks_deleted
    }

    /// Registers a webhook as Adobe's UI or an earlier registration would have.
    pub fn add_webhook(&self, body: Value) -> String {
        let mut state = self.state();
        state.webhooks_created += 1;
        let id = format!("CBJCHBCAABAAwebhook{}", state.webhooks_created);
        state.webhooks.insert(id.clone(), body);
        id
    }

    /// The next `n` requests get `failure` instead of their answer.
    pub fn fail_next(&self, n: usize, failure: Failure) {
        self.state().failures.extend(std::iter::repeat(failure).take(n));
    }

    /// Every request waits this long before it is answered.
    pub fn set_delay(&self, delay: Duration) {
        self.state().delay = delay;
    }

    /// The lifetime (`expires_in`) of access tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state().token_lifetime = lifetime;
    }

    /// Every access token issued so far expires now (as if revoked).
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        self.state().tokens.values_mut().for_each(|expiry| *expiry = now);
    }

    /// How many times a token endpoint was called.
    pub fn token_requests(&self) -> usize {
        self.state().token_requests
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state().requests.clone()
    }

    /// The next `n` webhook registrations (only those) fail with a 500.
    pub fn fail_webhook_registrations(&self, n: usize) {
        self.state().webhook_failures += n;
    }

    /// The Adobe webhooks registered and not deleted: id → body as sent.
    pub fn webhooks(&self) -> HashMap<String, Value> {
        self.state().webhooks.clone()
    }

    /// The most requests for `path` that were in flight at the same time.
    pub fn max_in_flight(&self, path: &str) -> usize {
        self.state().max_in_flight.get(path).copied().unwrap_or(0)
    }

    /// How many requests for `path` arrived.
    pub fn request_count(&self, path: &str) -> usize {
        self.state().requests.iter().filter(|r| r.path == path).count()
    }

    /// The requests that were API calls (not token requests).
    pub fn api_requests(&self) -> Vec<SeenRequest> {
        self.requests()
            .into_iter()
            .filter(|r| !r.is_token_request() && !r.is_document_download())
            .collect()
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Records the request, then applies the programmed delay and failure.
async fn intercept(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    {
        let mut state = shared.lock().expect("fake provider state lock");
        let now = {
            let n = state.in_flight.entry(path.clone()).or_default();
            *n += 1;
            *n
        };
        let max = state.max_in_flight.entry(path.clone()).or_default();
        *max = (*max).max(now);
    }
    let (index, response) = answer(&shared, request, next).await;
    let mut state = shared.lock().expect("fake provider state lock");
    if let Some(n) = state.in_flight.get_mut(&path) {
        *n -= 1;
    }
    if let Some(seen) = state.requests.get_mut(index) {
        seen.status = Some(response.status().as_u16());
    }
    response
}

/// The answer, and the index of the request in the recorded requests.
async fn answer(state: &Shared, request: Request, next: Next) -> (usize, Response) {
    let (index, delay, failure) = {
        let mut state = state.lock().expect("fake provider state lock");
        let headers = request.headers();
        let expired_token = bearer(headers)
            .and_then(|token| state.tokens.get(token))
            .is_some_and(|expiry| Instant::now() >= *expiry);
        let seen = SeenRequest {
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            query: request.uri().query().unwrap_or_default().to_owned(),
            authenticated: ["authorization", "x-api-key", "x-api-token"]
                .iter()
                .any(|name| headers.contains_key(*name)),
            expired_token,
            if_none_match: header_text(headers, header::IF_NONE_MATCH.as_str()),
            if_match: header_text(headers, header::IF_MATCH.as_str()),
            status: None,
        };
        state.requests.push(seen);
        (state.requests.len() - 1, state.delay, state.failures.pop_front())
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let response = match failure {
        Some(Failure::TooManyRequests { retry_after_secs }) => throttled(retry_after_secs),
        Some(Failure::HighSystemLoad { retry_after_secs }) => (
            StatusCode::TOO_MANY_REQUESTS,
            [
                ("x-throttling-reason", "high-system-load".to_owned()),
                ("retry-after", retry_after_secs.to_string()),
            ],
            Json(json!({"code": "THROTTLING_HIGH_SYSTEM_LOAD",
                "message": format!("Acrobat Sign system is experiencing high overall load, due to which subset of the requests are being throttled. Please try again in {retry_after_secs} seconds."),
                "retryAfter": retry_after_secs})),
        )
            .into_response(),
        Some(Failure::QuotaExceeded { reset_in_secs }) => {
            let reset = chrono::Utc::now().timestamp() + reset_in_secs as i64;
            (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    ("x-ratelimit-limit", "2000".to_owned()),
                    ("x-ratelimit-remaining", "0".to_owned()),
                    ("x-ratelimit-reset", reset.to_string()),
                ],
                Json(json!({"error": "API calls quota exceeded"})),
            )
                .into_response()
        }
        Some(Failure::Unavailable { retry_after_secs }) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, retry_after_secs.to_string())],
            Json(json!({"code": "MISC_SERVER_ERROR", "message": "down for maintenance"})),
        )
            .into_response(),
        Some(Failure::ServerError) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"code": "MISC_SERVER_ERROR", "message": "something broke"})),
        )
            .into_response(),
        None => match adobe_gate(state, &request) {
            Some(refusal) => refusal,
            None => next.run(request).await,
        },
    };
    (index, response)
}

/// Adobe's throttling answer (developer guide, API usage): 429 with a
/// `Retry-After` header and `retryAfter` in the body, both in seconds.
fn throttled(retry_after_secs: u64) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, retry_after_secs.to_string())],
        Json(json!({"code": "THROTTLING_TOO_MANY_REQUESTS",
            "message": format!("Too many requests; retry after {retry_after_secs} seconds (apiActionId=fake)"),
            "retryAfter": retry_after_secs})),
    )
        .into_response()
}

/// What Adobe answers before looking at the request itself: a request at a
/// shard that is no longer the account's (`INVALID_API_ACCESS_POINT`,
/// developer guide, best practices; the status is unconfirmed, third-party
/// notes say 401), and an identical GET inside the minimum object polling
/// interval (429 with `retryAfter`; the interval starts again: the retry
/// penalty of accounts created after May 2025; developer guide, API usage).
fn adobe_gate(state: &Shared, request: &Request) -> Option<Response> {
    let mut state = state.lock().expect("fake provider state lock");
    let path = request.uri().path();
    if let Some(shard) = SHARDS.iter().position(|shard| path.starts_with(&format!("/{shard}/"))) {
        if shard != state.shard {
            return Some(
                (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"code": "INVALID_API_ACCESS_POINT",
                        "message": "Request must be made to the correct API access point (e.g. use the getBaseUri API)."})),
                )
                    .into_response(),
            );
        }
    }
    let adobe = path.contains("/api/rest/v6/") && path != BASE_URIS_PATH;
    if request.method() != axum::http::Method::GET || !adobe || state.min_poll_interval.is_zero() {
        return None;
    }
    let key = request.uri().to_string();
    let now = Instant::now();
    let interval = state.min_poll_interval;
    let last = state.last_get.insert(key, now);
    match last {
        Some(last) if now.duration_since(last) < interval => Some(throttled(interval.as_secs().max(1))),
        _ => None,
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn header_is(headers: &HeaderMap, name: &str, expected: &str) -> bool {
    headers.get(name).and_then(|v| v.to_str().ok()) == Some(expected)
}

/// A bearer token this fake issued and that has not expired.
fn valid_access_token(state: &FakeState, headers: &HeaderMap) -> bool {
    bearer(headers)
        .and_then(|token| state.tokens.get(token))
        .is_some_and(|expiry| Instant::now() < *expiry)
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"code": "INVALID_ACCESS_TOKEN", "message": "Access token provided is invalid or has expired"})),
    )
        .into_response()
}

/// `GET /agreements`: the user's agreements, `UserAgreements`
/// (`userAgreementList` of `UserAgreement` items, and `page`) per the REST v6
/// API definition (as generated into karthik-uc/adobe-sign,
/// `Adobe/ESign/Agreements/docs/Model/UserAgreements.md`). signhook never
/// needs it: a poll that reaches it asked for the wrong thing.
async fn adobe_agreement_list(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let state = state.lock().expect("fake provider state lock");
    let key = header_is(&headers, "authorization", &format!("Bearer {ADOBE_API_TOKEN}"));
    if !key && !valid_access_token(&state, &headers) {
        return unauthorized();
    }
    let list: Vec<Value> = state
        .agreements
        .iter()
        .map(|(id, (name, status))| json!({ "id": id, "name": name, "status": status, "esign": true, "hidden": false }))
        .collect();
    Json(json!({ "userAgreementList": list, "page": {} })).into_response()
}

async fn adobe_agreement(State(state): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let state = state.lock().expect("fake provider state lock");
    let key = header_is(&headers, "authorization", &format!("Bearer {ADOBE_API_TOKEN}"));
    if !key && !valid_access_token(&state, &headers) {
        return unauthorized();
    }
    if let Some(status) = state.denied.get(&id) {
        return permission_denied(*status);
    }
    match state.agreements.get(&id) {
        Some((name, status)) => {
            // ETag of this version; `If-None-Match` with it → 304
            // RESOURCE_NOT_MODIFIED (API definition, agreements.json).
            let etag = format!("\"{:x}\"", fxhash(&format!("{id}{name}{status}")));
            if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
                return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
            }
            (
                [(header::ETAG, etag)],
                Json(json!({
                    "id": id, "name": name, "status": status, "type": "AGREEMENT",
                    "participantSetsInfo": [], "senderEmail": "sender@example.com",
                })),
            )
                .into_response()
        }
        // API definition, agreements.json: 404 INVALID_AGREEMENT_ID.
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"code": "INVALID_AGREEMENT_ID", "message": "The Agreement ID specified is invalid."})),
        )
            .into_response(),
    }
}

/// Adobe's `PERMISSION_DENIED`: 403 in the API definition, 404 in the
/// webhook guide's standard errors table.
fn permission_denied(status: u16) -> Response {
    (
        StatusCode::from_u16(status).expect("403 or 404"),
        Json(json!({"code": "PERMISSION_DENIED",
            "message": "The API caller does not have the permission to execute this operation."})),
    )
        .into_response()
}

/// A stable hash for ETags.
fn fxhash(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// Adobe `GET /api/rest/v6/baseUris` (API definition, baseUris.json; the
/// values end with `/`, as the REST samples rely on).
async fn adobe_base_uris(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let state = state.lock().expect("fake provider state lock");
    let key = header_is(&headers, "authorization", &format!("Bearer {ADOBE_API_TOKEN}"));
    if !key && !valid_access_token(&state, &headers) {
        return unauthorized();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Json(json!({
        "apiAccessPoint": format!("http://{host}/{}/", SHARDS[state.shard]),
        "webAccessPoint": format!("http://{host}/web/"),
    }))
    .into_response()
}

async fn boldsign_document(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let state = state.lock().expect("fake provider state lock");
    if !header_is(&headers, "x-api-key", BOLDSIGN_API_KEY) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "Unauthorized"}))).into_response();
    }
    let id = query.get("documentId").cloned().unwrap_or_default();
    match state.documents.get(&id) {
        Some((title, status)) => Json(json!({
            "documentId": id, "messageTitle": title, "status": status,
            "signerDetails": [{"signerEmail": "signer@example.com", "status": "NotCompleted"}],
        }))
        .into_response(),
        // BoldSign developer docs, troubleshooting "integration errors"
        // (GET /v1/document/properties): an unknown (or not yet
        // created) document is 403 with exactly this body.
        None => (StatusCode::FORBIDDEN, Json(json!({"error": "Invalid Document ID"}))).into_response(),
    }
}

async fn fusesign_bundle(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let state = state.lock().expect("fake provider state lock");
    if !header_is(&headers, "x-api-token", FUSESIGN_API_TOKEN) && !valid_access_token(&state, &headers) {
        return unauthorized();
    }
    let tenant = query.get("TenantId").cloned().unwrap_or_default();
    let id = query.get("BundleId").cloned().unwrap_or_default();
    match state.bundles.get(&id).filter(|(_, _, owner)| *owner == tenant) {
        Some((subject, status, tenant)) => Json(json!({
            "Id": id, "TenantId": tenant, "Subject": subject, "Status": status,
            "Customers": [], "Documents": [],
        }))
        .into_response(),
        // FuseSign API reference: Bundle/Get documents no 404; errors are
        // 400 with the common error model `{"Result":false,"Message",…}`.
        None => (
            StatusCode::BAD_REQUEST,
            Json(json!({"Result": false, "Message": "Bundle not found in this tenant", "Errors": []})),
        )
            .into_response(),
    }
}

/// Checks a refresh-token grant and issues an access token; `None` when the
/// grant is wrong.
fn grant(state: &Shared, form: &HashMap<String, String>) -> Option<(String, Duration)> {
    let mut state = state.lock().expect("fake provider state lock");
    state.token_requests += 1;
    let field = |name: &str| form.get(name).map(String::as_str);
    let valid = field("grant_type") == Some("refresh_token")
        && field("client_id") == Some(OAUTH_CLIENT_ID)
        && field("client_secret") == Some(OAUTH_CLIENT_SECRET)
        && field("refresh_token") == Some(state.refresh_token.as_str());
    if !valid {
        return None;
    }
    if state.rotate_refresh_tokens {
        state.refresh_token = format!("rotated-refresh-token-{}", state.token_requests);
    }
    let token = format!("access-token-{}", state.token_requests);
    let lifetime = state.token_lifetime;
    state.tokens.insert(token.clone(), Instant::now() + lifetime);
    Some((token, lifetime))
}

fn invalid_grant() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid_grant", "error_description": "refresh token is invalid"})),
    )
        .into_response()
}

/// Adobe: `expires_in` in seconds (developer guide, OAuth).
async fn adobe_refresh(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    match grant(&state, &form) {
        Some((token, lifetime)) => {
            let mut body = json!({
                "access_token": token, "token_type": "Bearer", "expires_in": lifetime.as_secs(),
            });
            let state = state.lock().expect("fake provider state lock");
            if state.oauth_access_point {
                let host = headers
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                body["api_access_point"] = json!(format!("http://{host}/{}/", SHARDS[state.shard]));
            }
            Json(body).into_response()
        }
        None => invalid_grant(),
    }
}

/// FuseSign: `expires_in` as a date-time, and a `refresh_token`, as its
/// reference (Session, OAuthRefreshToken) shows; with rotation on, a new one
/// each time and the old one refused.
async fn fusesign_refresh(State(state): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    match grant(&state, &form) {
        Some((token, lifetime)) => {
            let expires = chrono::Utc::now() + lifetime;
            let refresh_token = state.lock().expect("fake provider state lock").refresh_token.clone();
            let body: Value = json!({
                "token_type": "Bearer", "access_token": token, "refresh_token": refresh_token,
                "expires_in": expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "refresh_token_expires_in": (expires + Duration::from_secs(86_400))
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "default_tenant_id": FUSESIGN_TENANT_ID,
            });
            Json(body).into_response()
        }
        None => invalid_grant(),
    }
}

/// Adobe `POST /api/rest/v6/webhooks` (API definition, webhooks.json): 201
/// `{"id"}`; 400 `DUPLICATE_WEBHOOK_CONFIGURATION` when a webhook with the
/// same events, URL, scope, resource and application exists (developer guide,
/// webhooks: "Acrobat Sign does not allow duplicate webhooks"); or a
/// programmed 500 (not made) or 502 (made, answer lost).
async fn adobe_create_webhook(State(state): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut state = state.lock().expect("fake provider state lock");
    let key = header_is(&headers, "authorization", &format!("Bearer {ADOBE_API_TOKEN}"));
    if !key && !valid_access_token(&state, &headers) {
        return unauthorized();
    }
    if state.webhook_failures > 0 {
        state.webhook_failures -= 1;
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"code": "MISC_SERVER_ERROR", "message": "webhook service unavailable"})),
        )
            .into_response();
    }
    let resource = body["resourceId"].as_str().unwrap_or_default().to_owned();
    if body["scope"] == "RESOURCE" && !state.agreements.contains_key(&resource) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"code": "RESOURCE_NOT_FOUND", "message": "agreement not found"})),
        )
            .into_response();
    }
    let same = |other: &Value| {
        [
            "webhookSubscriptionEvents",
            "webhookUrlInfo",
            "webhookEndpointInfo",
            "scope",
            "resourceType",
            "resourceId",
        ]
        .iter()
        .all(|field| other[field] == body[field])
    };
    if state.webhooks.values().any(same) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": "DUPLICATE_WEBHOOK_CONFIGURATION",
                "message": "There is already a webhook registered with same configuration."})),
        )
            .into_response();
    }
    state.webhooks_created += 1;
    let id = format!("CBJCHBCAABAAwebhook{}", state.webhooks_created);
    state.webhooks.insert(id.clone(), body);
    if state.webhook_answers_to_lose > 0 {
        state.webhook_answers_to_lose -= 1;
        return (StatusCode::BAD_GATEWAY, "upstream connection reset").into_response();
    }
    (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
}

/// Adobe `GET /api/rest/v6/webhooks` (API definition, webhooks.json):
/// `UserWebhooks` `{"userWebhookList":[UserWebhook…],"page":{"nextCursor"}}`,
/// two a page here so that paging is exercised; `nextCursor` absent on the
/// last page. A webhook linked to a `webhookEndpoint` is listed with its
/// `webhookEndpointInfo` and no `webhookUrlInfo` (developer guide, webhook
/// APIs, "GET List Response object").
async fn adobe_list_webhooks(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    const PAGE: usize = 2;
    let state = state.lock().expect("fake provider state lock");
    let key = header_is(&headers, "authorization", &format!("Bearer {ADOBE_API_TOKEN}"));
    if !key && !valid_access_token(&state, &headers) {
        return unauthorized();
    }
    let mut all: Vec<(&String, &Value)> = state
        .webhooks
        .iter()
        .filter(|(_, hook)| {
            query
                .get("resourceType")
                .map_or(true, |t| hook["resourceType"] == t.as_str())
        })
        .collect();
    all.sort_by_key(|(id, _)| id.as_str().to_owned());
    let start: usize = query.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let list: Vec<Value> = all
        .iter()
        .skip(start)
        .take(PAGE)
        .map(|(id, hook)| {
            let mut listed = json!({"id": id, "name": hook["name"], "scope": hook["scope"], "status": "ACTIVE",
                   "webhookSubscriptionEvents": hook["webhookSubscriptionEvents"],
                   "resourceType": hook["resourceType"],
                   "resourceId": hook["resourceId"], "applicationName": "signhook"});
            for linked in ["webhookUrlInfo", "webhookEndpointInfo"] {
                if !hook[linked].is_null() {
                    listed[linked] = hook[linked].clone();
                }
            }
            listed
        })
        .collect();
    let page = match start + PAGE < all.len() {
        true => json!({"nextCursor": (start + PAGE).to_string()}),
        false => json!({}),
    };
    Json(json!({"userWebhookList": list, "page": page})).into_response()
}

/// The ETag of a webhook's current version.
fn webhook_etag(id: &str, hook: &Value) -> String {
    format!("\"{:x}\"", fxhash(&format!("{id}{hook}")))
}

/// Adobe `GET /api/rest/v6/webhooks/{webhookId}`: `WebhookInfo` with the
/// `ETag` that PUT and DELETE need (v6 release notes); 404 `INVALID_WEBHOOK_ID`.
async fn adobe_get_webhook(State(state): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let state = state.lock().expect("fake provider state lock");
    let key = header_is(&headers, "authorization", &format!("Bearer {ADOBE_API_TOKEN}"));
    if !key && !valid_access_token(&state, &headers) {
        return unauthorized();
    }
    match state.webhooks.get(&id) {
        Some(hook) => {
            let etag = webhook_etag(&id, hook);
            if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
                return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
            }
            let mut info = hook.clone();
            info["id"] = json!(id);
            info["status"] = json!("ACTIVE");
            ([(header::ETAG, etag)], Json(info)).into_response()
        }
        None => invalid_webhook_id(),
    }
}

fn invalid_webhook_id() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"code": "INVALID_WEBHOOK_ID", "message": "The webhook id specified is invalid."})),
    )
        .into_response()
}

/// Adobe `DELETE /api/rest/v6/webhooks/{webhookId}`: 204; `If-Match` is
/// required (API definition and SDKs: 400 `MISSING_IF_MATCH_HEADER` without
/// it, 412 `RESOURCE_MODIFIED` when it is not the current ETag); 404
/// `INVALID_WEBHOOK_ID` when unknown; or a programmed refusal.
async fn adobe_delete_webhook(State(state): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut state = state.lock().expect("fake provider state lock");
    let key = header_is(&headers, "authorization", &format!("Bearer {ADOBE_API_TOKEN}"));
    if !key && !valid_access_token(&state, &headers) {
        return unauthorized();
    }
    if let Some((status, code)) = state.refuse_deletes {
        return (
            StatusCode::from_u16(status).expect("a valid status"),
            Json(json!({"code": code, "message": "Delete is not allowed."})),
        )
            .into_response();
    }
    let Some(hook) = state.webhooks.get(&id) else {
        return invalid_webhook_id();
    };
    let Some(if_match) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": "MISSING_IF_MATCH_HEADER", "message": "If-Match header missing."})),
        )
            .into_response();
    };
    if if_match != webhook_etag(&id, hook) {
        return (
            StatusCode::PRECONDITION_FAILED,
            Json(json!({"code": "RESOURCE_MODIFIED", "message": "Resource is already modified with newer version."})),
        )
            .into_response();
    }
    state.webhooks.remove(&id);
    state.webhooks_deleted += 1;
    StatusCode::NO_CONTENT.into_response()
}
