//! A fake of the providers' REST APIs, for the polling clients' tests: Adobe
//! Sign's agreements and OAuth refresh, BoldSign's document properties, and
//! FuseSign's bundles and OAuth refresh, served on 127.0.0.1:0; and Adobe Sign's
//! webhook registration (`POST`/`DELETE /api/rest/v6/webhooks`). A test programs
//! it (statuses, failures, delays, token lifetime and expiry) and reads back
//! the requests it saw, the webhooks registered and how many requests for one
//! path were in flight at once.

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

/// A canned error answer for the next requests, whatever they ask.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// 429 with `Retry-After: <secs>`.
    TooManyRequests { retry_after_secs: u64 },
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
}

impl SeenRequest {
    pub fn is_token_request(&self) -> bool {
        TOKEN_PATHS.contains(&self.path.as_str())
    }
}

#[derive(Default)]
struct FakeState {
    /// Adobe agreements, BoldSign documents, FuseSign bundles: id → (name, status).
    agreements: HashMap<String, (String, String)>,
    documents: HashMap<String, (String, String)>,
    bundles: HashMap<String, (String, String)>,
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
            ..FakeState::default()
        }));
        let router = Router::new()
            .route("/api/rest/v6/agreements/{id}", get(adobe_agreement))
            .route("/oauth/v2/refresh", post(adobe_refresh))
            .route("/api/rest/v6/webhooks", post(adobe_create_webhook))
            .route(
                "/api/rest/v6/webhooks/{id}",
                axum::routing::delete(adobe_delete_webhook),
            )
            .route("/v1/document/properties", get(boldsign_document))
            .route("/api/Bundle/Get", get(fusesign_bundle))
            .route("/api/Session/OAuthRefreshToken", post(fusesign_refresh))
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

    pub fn set_bundle(&self, id: &str, subject: &str, status: &str) {
        self.state().bundles.insert(id.into(), (subject.into(), status.into()));
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
        self.requests().into_iter().filter(|r| !r.is_token_request()).collect()
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
    let response = answer(&shared, request, next).await;
    let mut state = shared.lock().expect("fake provider state lock");
    if let Some(n) = state.in_flight.get_mut(&path) {
        *n -= 1;
    }
    response
}

async fn answer(state: &Shared, request: Request, next: Next) -> Response {
    let (delay, failure) = {
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
        };
        state.requests.push(seen);
        (state.delay, state.failures.pop_front())
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match failure {
        Some(Failure::TooManyRequests { retry_after_secs }) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after_secs.to_string())],
            Json(json!({"code": "THROTTLING_TOO_MANY_REQUESTS", "message": "slow down"})),
        )
            .into_response(),
        Some(Failure::ServerError) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"code": "MISC_SERVER_ERROR", "message": "something broke"})),
        )
            .into_response(),
        None => next.run(request).await,
    }
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

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": format!("{what} not found")})),
    )
        .into_response()
}

async fn adobe_agreement(State(state): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let state = state.lock().expect("fake provider state lock");
    let key = header_is(&headers, "authorization", &format!("Bearer {ADOBE_API_TOKEN}"));
    if !key && !valid_access_token(&state, &headers) {
        return unauthorized();
    }
    match state.agreements.get(&id) {
        Some((name, status)) => Json(json!({
            "id": id, "name": name, "status": status, "type": "AGREEMENT",
            "participantSetsInfo": [], "senderEmail": "sender@example.com",
        }))
        .into_response(),
        None => not_found("agreement"),
    }
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
        None => not_found("document"),
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
    if query.get("TenantId").map(String::as_str) != Some(FUSESIGN_TENANT_ID) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"Result": false, "Error": "Forbidden"})),
        )
            .into_response();
    }
    let id = query.get("BundleId").cloned().unwrap_or_default();
    match state.bundles.get(&id) {
        Some((subject, status)) => Json(json!({
            "Id": id, "TenantId": FUSESIGN_TENANT_ID, "Subject": subject, "Status": status,
            "Customers": [], "Documents": [],
        }))
        .into_response(),
        None => not_found("bundle"),
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
        && field("refresh_token") == Some(OAUTH_REFRESH_TOKEN);
    if !valid {
        return None;
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

/// Adobe: `expires_in` in seconds.
async fn adobe_refresh(State(state): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    match grant(&state, &form) {
        Some((token, lifetime)) => Json(json!({
            "access_token": token, "token_type": "Bearer", "expires_in": lifetime.as_secs(),
        }))
        .into_response(),
        None => invalid_grant(),
    }
}

/// FuseSign: `expires_in` as a date-time, as its reference shows.
async fn fusesign_refresh(State(state): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    match grant(&state, &form) {
        Some((token, lifetime)) => {
            let expires = chrono::Utc::now() + lifetime;
            let body: Value = json!({
                "token_type": "Bearer", "access_token": token, "refresh_token": OAUTH_REFRESH_TOKEN,
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

/// Adobe `POST /api/rest/v6/webhooks`: 201 `{"id"}`, or a programmed 500.
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
    state.webhooks_created += 1;
    let id = format!("CBJCHBCAABAAwebhook{}", state.webhooks_created);
    state.webhooks.insert(id.clone(), body);
    (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
}

/// Adobe `DELETE /api/rest/v6/webhooks/{webhookId}`: 204, or 404 when unknown.
async fn adobe_delete_webhook(State(state): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut state = state.lock().expect("fake provider state lock");
    let key = header_is(&headers, "authorization", &format!("Bearer {ADOBE_API_TOKEN}"));
    if !key && !valid_access_token(&state, &headers) {
        return unauthorized();
    }
    match state.webhooks.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"code": "INVALID_WEBHOOK_ID", "message": "webhook not found"})),
        )
            .into_response(),
    }
}
