//! `GET /api/openapi.json`: an OpenAPI 3.1 description of the HTTP surface —
//! the admin API (documented on its handlers), the webhook endpoints and the
//! health endpoints (documented here, so their handlers stay lean).
//!
//! The document holds no data, so it is served without the admin token; but
//! like the rest of `/api` it does not exist (404) while the admin API is
//! disabled.

use axum::{extract::State, Json};
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

use super::{admin, error::ApiError, AppState};

#[derive(OpenApi)]
#[openapi(
    info(title = "signhook", description = "Durable webhook receiver for Adobe Acrobat Sign, BoldSign and FuseSign"),
    paths(
        receive_webhook,
        verify_intent,
        healthz,
        readyz,
        metrics,
        openapi_json,
        admin::agreement,
        admin::refresh,
        admin::watch,
        admin::unwatch,
        admin::providers,
        admin::events,
        admin::replay,
        admin::stats,
    ),
    modifiers(&AdminToken),
    tags(
        (name = "webhooks", description = "Notifications from the providers"),
        (name = "health", description = "Probes and metrics"),
        (name = "agreements", description = "Admin API: agreements, polling and per-agreement webhooks"),
        (name = "events", description = "Admin API: stored notifications"),
        (name = "providers", description = "Admin API: provider set-up and activity"),
    )
)]
struct ApiDoc;

/// The admin API's bearer token as a security scheme.
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /api/openapi.json`
#[utoipa::path(get, path = "/api/openapi.json", tag = "health",
    responses((status = 200, description = "this document", content_type = "application/json"),
        (status = 404, description = "the admin API is disabled (no SIGNHOOK_ADMIN_TOKEN)")))]
pub async fn openapi_json(State(state): State<AppState>) -> Result<Json<utoipa::openapi::OpenApi>, ApiError> {
    match state.settings.server.admin_token {
        Some(_) => Ok(Json(document())),
        None => Err(ApiError::NotFound("no such resource".to_owned())),
    }
}

// The handlers below are never called: they carry the documentation of
// routes whose handlers live in webhooks.rs and health.rs.

/// A notification. 200 only once it is committed (duplicates included);
/// 401/403 bad credentials, 400 not a notification, 413 too large, 503 +
/// Retry-After when it could not be stored (the provider retries).
#[utoipa::path(post, path = "/webhooks/{provider}", tag = "webhooks",
    params(("provider" = String, Path, description = "adobe-sign, boldsign or fusesign")),
    request_body(content = Object, content_type = "application/json", description = "the provider's payload, unchanged"),
    responses((status = 200, description = "stored (durable)", body = Object),
        (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 413, body = super::error::ErrorBody),
        (status = 503, body = super::error::ErrorBody)))]
#[allow(dead_code)]
async fn receive_webhook() {}

/// Adobe Sign's verification of intent: the `X-AdobeSign-ClientId` is echoed
/// for an allow-listed client ID.
#[utoipa::path(get, path = "/webhooks/{provider}", tag = "webhooks",
    params(("provider" = String, Path, description = "adobe-sign"),
        ("X-AdobeSign-ClientId" = String, Header)),
    responses((status = 200, description = "echoed", body = Object),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 405, description = "the provider has no GET handshake", body = super::error::ErrorBody)))]
#[allow(dead_code)]
async fn verify_intent() {}

/// The process is alive (200 even when the database is down).
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Object)))]
#[allow(dead_code)]
async fn healthz() {}

/// 200 when the database answers and the worker runs; else 503 with a reason.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Object), (status = 503, body = super::error::ErrorBody)))]
#[allow(dead_code)]
async fn readyz() {}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, content_type = "text/plain", body = String)))]
#[allow(dead_code)]
async fn metrics() {}
