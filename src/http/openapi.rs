//! `GET /api/openapi.json`: an OpenAPI 3.1 description of the HTTP surface —
//! the webhook endpoints, the health endpoints and the admin API, each
//! documented once, on its handler; this file only lists them.
//!
//! The document holds no data, so it is served without the admin token; but
//! like the rest of `/api` it does not exist (404) while the admin API is
//! disabled.

use axum::{extract::State, Json};
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

use super::{admin, documents, error::ApiError, health, oauth, webhooks, AppState};

#[derive(OpenApi)]
#[openapi(
    info(title = "signhook", description = "Durable webhook receiver for Adobe Acrobat Sign, BoldSign and FuseSign"),
    paths(
        webhooks::receive,
        webhooks::verify_intent,
        oauth::token,
        health::healthz,
        health::readyz,
        health::metrics,
        openapi_json,
        admin::agreement,
        admin::refresh,
        admin::watch,
        admin::unwatch,
        documents::list,
        documents::download,
        documents::refetch,
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
