//! `GET /api/openapi.json`: an OpenAPI 3.1 description of the HTTP surface —
//! the webhook endpoints, the health endpoints and the admin API, each
//! documented once, on its handler; this file only lists them.
//!
//! The document holds no data, so it is served without the admin token; but
//! like the rest of `/api` it does not exist (404) while the admin API is
//! disabled.

use axum::{extract::State, Json};
use utoipa::{
    openapi::{
        path::Operation,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
        ContentBuilder, Ref, ResponseBuilder,
    },
    Modify, OpenApi,
};

use super::{admin, agreements, changes, deliveries, documents, error::ApiError, health, oauth, webhooks, AppState};

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
        agreements::list,
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
        changes::changes,
        deliveries::list,
        deliveries::retry,
        deliveries::destinations,
        deliveries::recover,
        deliveries::enable,
    ),
    components(schemas(
        crate::delivery::sign::DeliveryPayload,
        crate::delivery::sign::DeliveryData,
        crate::delivery::sign::DocumentAvailablePayload,
        crate::delivery::sign::DocumentAvailableData,
        crate::store::ChangeDocument
    )),
    modifiers(&AdminToken, &CommonResponses),
    tags(
        (name = "webhooks", description = "Notifications from the providers"),
        (name = "health", description = "Probes and metrics"),
        (name = "agreements", description = "Admin API: agreements, polling and per-agreement webhooks"),
        (name = "events", description = "Admin API: stored notifications"),
        (name = "providers", description = "Admin API: provider set-up and activity"),
        (name = "changes", description = "Admin API: the feed of changes (agreement.status_changed, document.available)"),
        (name = "deliveries", description = "Admin API: outbound webhooks to the application (body: DeliveryPayload for agreement.status_changed, DocumentAvailablePayload for document.available; signed by Standard Webhooks)"),
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

/// The answers every operation of a kind can give, whatever its own
/// annotation lists, written once here: a caught panic (500) anywhere; on
/// the admin API the token's 401, the 404 of a disabled API, a path or query
/// that does not parse (400) and a database that fails (503); on the webhook
/// routes an unknown provider (404). An operation's own description of a
/// status, where it has one, is kept.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.delete,
                &mut item.put,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let admin = operation.security.is_some();
                let parsed_input = path.contains('{') || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let common = [
                    (true, "500", "a bug: the handler panicked (logged; `internal_error`)"),
                    (
                        admin,
                        "401",
                        "no `Authorization: Bearer <SIGNHOOK_ADMIN_TOKEN>`, or a wrong one",
                    ),
                    (
                        admin,
                        "404",
                        "no such resource, or the admin API is disabled (no SIGNHOOK_ADMIN_TOKEN)",
                    ),
                    (
                        admin && parsed_input,
                        "400",
                        "a path or query value that does not parse",
                    ),
                    (admin, "503", "the database failed; retry (see Retry-After)"),
                    (path.starts_with("/webhooks/"), "404", "no such provider"),
                ];
                for (applies, status, description) in common {
                    if applies {
                        add_error(operation, status, description);
                    }
                }
            }
        }
    }
}

fn add_error(operation: &mut Operation, status: &str, description: &str) {
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| response.into());
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
