//! A fake of the three providers' document APIs, for the document tests:
//! each serves signed PDFs and audit trails (random bytes after a `%PDF-`
//! header, several MB) and the status read that a refresh makes, on
//! 127.0.0.1:0, with the credentials of `fake_provider`. A test programs it
//! (documents, failures for the next downloads, a slow body) and reads back
//! the downloads it served.
//!
//! Endpoints, as the providers document them:
//! - Adobe Sign: `GET /api/rest/v6/agreements/{id}` (status),
//!   `…/{id}/combinedDocument` and `…/{id}/auditTrail` (`application/pdf`),
//!   bearer integration key (API definition `agreements.json` in
//!   github:adobe/acrobat-sign: getCombinedDocument, getAuditTrail; its
//!   errors `INVALID_AGREEMENT_ID` 404, `MISC_SERVER_ERROR` 500, and
//!   throttling 429 with `Retry-After` and `retryAfter` from the developer
//!   guide, API usage).
//! - BoldSign: `GET /v1/document/properties|download|downloadAuditLog?documentId=`
//!   with `X-API-KEY` (BoldSign SDKs, docs/DocumentApi.md).
//! - FuseSign: `GET /api/Bundle/Get?TenantId=&BundleId=` listing
//!   `Documents[].Document` and `GET /api/Document/Download?tenantId=&documentId=`
//!   with `X-API-Token` (fuseworks.gitbook.io: API reference "Bundle" and
//!   "Document", QuickStart guide).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    body::Body,
    extract::{Path, Query, Request, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use bytes::Bytes;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use super::fake_provider::{ADOBE_API_TOKEN, BOLDSIGN_API_KEY, FUSESIGN_API_TOKEN, FUSESIGN_TENANT_ID};

/// The next download's answer, instead of the document.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// The provider does not know it: Adobe 404 `INVALID_AGREEMENT_ID`;
    /// BoldSign 403 `{"error":"Invalid Document ID"}` (developer docs,
    /// troubleshooting); FuseSign 404 (API reference, Document).
    NotFound,
    /// 429 with `Retry-After: <secs>` (and Adobe's `retryAfter` in the body).
    TooManyRequests { retry_after_secs: u64 },
    /// 500 (Adobe: `MISC_SERVER_ERROR`).
    ServerError,
    /// 200 announcing the document's `Content-Length`, then the connection
    /// closes after half of it.
    Truncated,
}

/// PDF-looking bytes: a `%PDF-1.7` header and pseudo-random content
/// from `seed`, `size` bytes in all.
pub fn fake_pdf(size: usize, seed: u64) -> Bytes {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut bytes = b"%PDF-1.7\n".to_vec();
    bytes.resize(size.max(bytes.len()), 0);
    rng.fill(&mut bytes[9..]);
    Bytes::from(bytes)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[derive(Default)]
struct FakeState {
    /// `adobe:<id>:signed`, `boldsign:<id>:audit_trail`, `fusesign:<document id>`…
    files: HashMap<String, Bytes>,
    /// Status reads: Adobe agreements and BoldSign documents by id.
    statuses: HashMap<String, String>,
    /// FuseSign bundles: id → (status, [(document id, display name)]).
    bundles: HashMap<String, (String, Vec<(String, String)>)>,
    failures: VecDeque<Failure>,
    /// Pause between 64 KiB pieces of a body (a slow download).
    piece_delay: Duration,
    /// Download paths served (or failed), in order.
    downloads: Vec<String>,
}

type Shared = Arc<Mutex<FakeState>>;

pub struct FakeDocuments {
    /// `http://127.0.0.1:<port>`: the API base of every provider.
    pub base_url: String,
    state: Shared,
    server: JoinHandle<()>,
}

impl FakeDocuments {
    pub async fn start() -> Self {
        let state: Shared = Arc::default();
        let router = Router::new()
            .route("/api/rest/v6/agreements/{id}", get(adobe_agreement))
            .route("/api/rest/v6/agreements/{id}/combinedDocument", get(adobe_signed))
            .route("/api/rest/v6/agreements/{id}/auditTrail", get(adobe_audit_trail))
            .route("/v1/document/properties", get(boldsign_properties))
            .route("/v1/document/download", get(boldsign_signed))
            .route("/v1/document/downloadAuditLog", get(boldsign_audit_trail))
            .route("/api/Bundle/Get", get(fusesign_bundle))
            .route("/api/Document/Download", get(fusesign_download))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the fake binds a free port");
        let base_url = format!("http://{}", listener.local_addr().expect("bound address"));
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("the fake serves");
        });
        Self {
            base_url,
            state,
            server,
        }
    }

    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().expect("fake state lock")
    }

    /// The API settings pointing every provider at this fake.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SIGNHOOK_ADOBE_SIGN_API_BASE", self.base_url.clone()),
            ("SIGNHOOK_ADOBE_SIGN_API_TOKEN", ADOBE_API_TOKEN.to_owned()),
            ("SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL", "0s".to_owned()),
            ("SIGNHOOK_BOLDSIGN_API_BASE", self.base_url.clone()),
            ("SIGNHOOK_BOLDSIGN_API_KEY", BOLDSIGN_API_KEY.to_owned()),
            ("SIGNHOOK_FUSESIGN_API_BASE", self.base_url.clone()),
            ("SIGNHOOK_FUSESIGN_API_TOKEN", FUSESIGN_API_TOKEN.to_owned()),
            ("SIGNHOOK_FUSESIGN_API_TENANT_ID", FUSESIGN_TENANT_ID.to_owned()),
        ]
    }

    /// An Adobe agreement `SIGNED`, with its combined document and audit trail.
    pub fn adobe_agreement(&self, id: &str, signed: Bytes, audit_trail: Bytes) {
        let mut state = self.state();
        state.statuses.insert(id.to_owned(), "SIGNED".to_owned());
        state.files.insert(format!("adobe:{id}:signed"), signed);
        state.files.insert(format!("adobe:{id}:audit_trail"), audit_trail);
    }

    /// A BoldSign document `Completed`, with its signed PDF and audit log.
    pub fn boldsign_document(&self, id: &str, signed: Bytes, audit_trail: Bytes) {
        let mut state = self.state();
        state.statuses.insert(id.to_owned(), "Completed".to_owned());
        state.files.insert(format!("boldsign:{id}:signed"), signed);
        state.files.insert(format!("boldsign:{id}:audit_trail"), audit_trail);
    }

    /// A FuseSign bundle `Finalised` in the configured tenant, with these
    /// documents `(document id, display name, bytes)` in order.
    pub fn fusesign_bundle(&self, id: &str, documents: &[(&str, &str, Bytes)]) {
        let mut state = self.state();
        let listed = documents
            .iter()
            .map(|(d, n, _)| (d.to_string(), n.to_string()))
            .collect();
        state.bundles.insert(id.to_owned(), ("Finalised".to_owned(), listed));
        for (document_id, _, bytes) in documents {
            state.files.insert(format!("fusesign:{document_id}"), bytes.clone());
        }
    }

    /// The next `n` downloads answer `failure`.
    pub fn fail_next(&self, n: usize, failure: Failure) {
        self.state().failures.extend(std::iter::repeat(failure).take(n));
    }

    /// Bodies are served in 64 KiB pieces `delay` apart (the kill -9 test
    /// in tests/process kills a fetch half way).
    #[allow(dead_code)]
    pub fn set_piece_delay(&self, delay: Duration) {
        self.state().piece_delay = delay;
    }

    /// The download paths requested so far.
    pub fn downloads(&self) -> Vec<String> {
        self.state().downloads.clone()
    }
}

impl Drop for FakeDocuments {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn header_is(headers: &HeaderMap, name: &str, value: &str) -> bool {
    headers.get(name).and_then(|v| v.to_str().ok()) == Some(value)
}

/// Serves `key` from the files, or the next programmed failure; records it.
fn serve(state: &Shared, request_path: String, key: &str, not_found: Response) -> Response {
    let mut state = state.lock().expect("fake state lock");
    state.downloads.push(request_path);
    let failure = state.failures.pop_front();
    let Some(bytes) = state.files.get(key).cloned() else {
        return not_found;
    };
    match failure {
        Some(Failure::NotFound) => not_found,
        Some(Failure::TooManyRequests { retry_after_secs }) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after_secs.to_string())],
            Json(
                json!({"code": "THROTTLING_TOO_MANY_REQUESTS", "message": "Too many requests",
                        "retryAfter": retry_after_secs}),
            ),
        )
            .into_response(),
        Some(Failure::ServerError) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"code": "MISC_SERVER_ERROR", "message": "Some miscellaneous error has occurred"})),
        )
            .into_response(),
        Some(Failure::Truncated) => {
            let half = bytes.slice(..bytes.len() / 2);
            let pieces = futures::stream::iter([
                Ok::<_, std::io::Error>(half),
                Err(std::io::Error::other("connection dropped")),
            ]);
            pdf_response(bytes.len(), Body::from_stream(pieces))
        }
        None => {
            let delay = state.piece_delay;
            let len = bytes.len();
            let pieces = futures::stream::unfold(0usize, move |at| {
                let bytes = bytes.clone();
                async move {
                    if at >= bytes.len() {
                        return None;
                    }
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let end = (at + 64 * 1024).min(bytes.len());
                    Some((Ok::<_, std::io::Error>(bytes.slice(at..end)), end))
                }
            });
            pdf_response(len, Body::from_stream(pieces))
        }
    }
}

fn pdf_response(len: usize, body: Body) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, "application/pdf".parse().expect("valid"));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, len.to_string().parse().expect("valid"));
    response
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"code": "INVALID_ACCESS_TOKEN", "message": "Access token is invalid"})),
    )
        .into_response()
}

/// Adobe's 404 for an unknown agreement (API definition, agreements.json).
fn adobe_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"code": "INVALID_AGREEMENT_ID", "message": "The Agreement ID specified is invalid."})),
    )
        .into_response()
}

fn adobe_authorized(headers: &HeaderMap) -> bool {
    header_is(headers, "authorization", &format!("Bearer {ADOBE_API_TOKEN}"))
}

async fn adobe_agreement(State(state): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if !adobe_authorized(&headers) {
        return unauthorized();
    }
    let status = state.lock().expect("fake state lock").statuses.get(&id).cloned();
    match status {
        Some(status) => {
            Json(json!({"id": id, "name": "Mutual NDA", "status": status, "type": "AGREEMENT"})).into_response()
        }
        None => adobe_not_found(),
    }
}

async fn adobe_signed(State(state): State<Shared>, Path(id): Path<String>, request: Request) -> Response {
    if !adobe_authorized(request.headers()) {
        return unauthorized();
    }
    serve(
        &state,
        request.uri().to_string(),
        &format!("adobe:{id}:signed"),
        adobe_not_found(),
    )
}

async fn adobe_audit_trail(State(state): State<Shared>, Path(id): Path<String>, request: Request) -> Response {
    if !adobe_authorized(request.headers()) {
        return unauthorized();
    }
    serve(
        &state,
        request.uri().to_string(),
        &format!("adobe:{id}:audit_trail"),
        adobe_not_found(),
    )
}

/// BoldSign's answer for an unknown document (developer docs, troubleshooting).
fn boldsign_not_found() -> Response {
    (StatusCode::FORBIDDEN, Json(json!({"error": "Invalid Document ID"}))).into_response()
}

async fn boldsign_properties(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !header_is(&headers, "x-api-key", BOLDSIGN_API_KEY) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "Unauthorized"}))).into_response();
    }
    let id = query.get("documentId").cloned().unwrap_or_default();
    let status = state.lock().expect("fake state lock").statuses.get(&id).cloned();
    match status {
        Some(status) => {
            Json(json!({"documentId": id, "messageTitle": "Offer letter", "status": status})).into_response()
        }
        None => boldsign_not_found(),
    }
}

fn boldsign_file(state: &Shared, request: &Request, query: &HashMap<String, String>, kind: &str) -> Response {
    if !header_is(request.headers(), "x-api-key", BOLDSIGN_API_KEY) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "Unauthorized"}))).into_response();
    }
    let id = query.get("documentId").cloned().unwrap_or_default();
    serve(
        state,
        request.uri().to_string(),
        &format!("boldsign:{id}:{kind}"),
        boldsign_not_found(),
    )
}

async fn boldsign_signed(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    boldsign_file(&state, &request, &query, "signed")
}

async fn boldsign_audit_trail(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    boldsign_file(&state, &request, &query, "audit_trail")
}

/// FuseSign's common error model (API reference): 400 `{"Result":false,"Message"}`.
fn fusesign_error(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"Result": false, "Message": message, "Errors": []})),
    )
        .into_response()
}

async fn fusesign_bundle(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !header_is(&headers, "x-api-token", FUSESIGN_API_TOKEN) {
        return unauthorized();
    }
    if query.get("TenantId").map(String::as_str) != Some(FUSESIGN_TENANT_ID) {
        return fusesign_error("Tenant not found");
    }
    let id = query.get("BundleId").cloned().unwrap_or_default();
    let bundle = state.lock().expect("fake state lock").bundles.get(&id).cloned();
    let Some((status, documents)) = bundle else {
        return fusesign_error("Bundle not found in this tenant");
    };
    let documents: Vec<Value> = documents
        .iter()
        .enumerate()
        .map(|(order, (document_id, name))| {
            json!({
                "Document": {
                    "DocumentId": document_id, "BundleId": id, "DisplayName": name, "EstimatedSize": 1000,
                    "SignedPDFDownloadUrl": "https://signed.document/download",
                },
                "DocumentOrder": order + 1,
            })
        })
        .collect();
    Json(
        json!({"Id": id, "TenantId": FUSESIGN_TENANT_ID, "Subject": "Engagement", "Status": status,
                "Customers": [], "Documents": documents}),
    )
    .into_response()
}

async fn fusesign_download(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    if !header_is(request.headers(), "x-api-token", FUSESIGN_API_TOKEN) {
        return unauthorized();
    }
    if query.get("tenantId").map(String::as_str) != Some(FUSESIGN_TENANT_ID) {
        return fusesign_error("Tenant not found");
    }
    let id = query.get("documentId").cloned().unwrap_or_default();
    // API reference, Document: 404 Not Found for an unknown document.
    let not_found = (
        StatusCode::NOT_FOUND,
        Json(json!({"Result": false, "Message": "Not Found"})),
    )
        .into_response();
    serve(&state, request.uri().to_string(), &format!("fusesign:{id}"), not_found)
}
