//! `/api/deliveries` and `/api/destinations`: what was sent to the
//! application, retrying one delivery, sending everything since a time
//! again, and enabling a disabled destination.

use axum::{
    extract::{
        rejection::{PathRejection, QueryRejection},
        Path, Query, State,
    },
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::query;
use super::{
    error::{ApiError, ErrorBody},
    AppState,
};
use crate::store::{DeliveryFilter, DeliveryPage, DeliveryView, DestinationView, Recovery};

const STATES: [&str; 3] = ["pending", "delivered", "failed"];

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/deliveries", get(list))
        .route("/deliveries/{id}/retry", post(retry))
        .route("/destinations", get(destinations))
        .route("/destinations/{name}/recover", post(recover))
        .route("/destinations/{name}/enable", post(enable))
}

fn unknown_destination(name: &str) -> ApiError {
    ApiError::NotFound(format!("no destination `{name}`; GET /api/destinations lists them"))
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    destination: Option<String>,
    state: Option<String>,
    agreement_id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/deliveries?destination=&state=&agreement_id=&limit=&cursor=`
#[utoipa::path(get, path = "/api/deliveries", tag = "deliveries",
    params(("destination" = Option<String>, Query), ("state" = Option<String>, Query, description = "pending, delivered or failed"),
        ("agreement_id" = Option<String>, Query), ("limit" = Option<i64>, Query, description = "1 to 1000, default 100"),
        ("cursor" = Option<String>, Query, description = "a next_cursor from an earlier page")),
    responses((status = 200, description = "deliveries, newest first", body = DeliveryPage),
        (status = 400, description = "invalid query", body = ErrorBody)),
    security(("admin_token" = [])))]
pub(super) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let Query(query) = query?;
    if let Some(s) = query.state.as_deref().filter(|s| !STATES.contains(s)) {
        return Err(query::invalid(format!(
            "state must be one of {}; got `{s}`",
            STATES.join(", ")
        )));
    }
    let limit = query::page_limit(query.limit.as_deref())?;
    let before = query::cursor(query.cursor.as_deref(), |s| s.parse::<i64>().ok())?;
    let page = state
        .store
        .deliveries()
        .list(&DeliveryFilter {
            destination: query.destination,
            state: query.state,
            agreement_id: query.agreement_id,
            before,
            limit,
        })
        .await?;
    Ok(Json(page))
}

/// `POST /api/deliveries/{id}/retry`: sends the delivery again now, with a
/// fresh retry schedule and the same `webhook-id`, whatever its state.
#[utoipa::path(post, path = "/api/deliveries/{id}/retry", tag = "deliveries",
    params(("id" = i64, Path)),
    responses((status = 202, description = "due now", body = DeliveryView),
        (status = 404, description = "no such delivery", body = ErrorBody),
        (status = 409, description = "it is being sent right now", body = ErrorBody)),
    security(("admin_token" = [])))]
pub(super) async fn retry(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(raw) = path?;
    let id = raw.parse::<i64>().map_err(|_| ApiError::BadRequest {
        code: "invalid_path",
        message: format!("delivery id `{raw}` is not an integer"),
    })?;
    match state.store.deliveries().retry(id).await? {
        None => return Err(ApiError::NotFound(format!("no delivery with id {id}"))),
        Some(false) => {
            return Err(ApiError::Conflict {
                code: "delivery_in_flight",
                message: format!("delivery {id} is being sent right now; retry it once that attempt has ended"),
            })
        }
        Some(true) => {}
    }
    state.changes.wake_deliveries();
    let view = state
        .store
        .deliveries()
        .get(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no delivery with id {id}")))?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationsView {
    pub destinations: Vec<DestinationView>,
}

/// `GET /api/destinations`: every destination, its state and backlog.
#[utoipa::path(get, path = "/api/destinations", tag = "deliveries",
    responses((status = 200, description = "every destination ever configured", body = DestinationsView)),
    security(("admin_token" = [])))]
pub(super) async fn destinations(State(state): State<AppState>) -> Result<Json<DestinationsView>, ApiError> {
    Ok(Json(DestinationsView {
        destinations: state.store.deliveries().destinations().await?,
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct RecoverQuery {
    since: Option<String>,
}

/// What `POST /api/destinations/{name}/recover` queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recovered {
    pub destination: String,
    pub since: DateTime<Utc>,
    /// Deliveries queued (changes already waiting to go are not queued twice).
    pub queued: u64,
}

/// `POST /api/destinations/{name}/recover?since=<RFC 3339 time>`: sends
/// every change recorded since then that matches the destination's filter
/// again, under the same webhook-ids, in each agreement's order.
#[utoipa::path(post, path = "/api/destinations/{name}/recover", tag = "deliveries",
    params(("name" = String, Path), ("since" = String, Query, description = "RFC 3339, e.g. 2026-12-01T00:00:00Z")),
    responses((status = 202, description = "queued", body = Recovered),
        (status = 400, description = "since missing or not a time", body = ErrorBody),
        (status = 404, description = "no such destination", body = ErrorBody),
        (status = 409, description = "the destination is no longer configured", body = ErrorBody)),
    security(("admin_token" = [])))]
pub(super) async fn recover(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<RecoverQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = path?;
    let Query(query) = query?;
    let raw = query
        .since
        .ok_or_else(|| query::invalid("since is required: an RFC 3339 time such as 2026-12-01T00:00:00Z".to_owned()))?;
    let since = DateTime::parse_from_rfc3339(raw.trim())
        .map_err(|e| {
            query::invalid(format!(
                "since `{raw}` is not an RFC 3339 time such as 2026-12-01T00:00:00Z ({e})"
            ))
        })?
        .with_timezone(&Utc);
    let queued = match state.store.deliveries().recover(&name, since).await? {
        Recovery::Queued(queued) => queued,
        Recovery::Unknown => return Err(unknown_destination(&name)),
        Recovery::NotConfigured => {
            return Err(ApiError::Conflict {
                code: "destination_not_configured",
                message: format!("destination `{name}` is no longer in the configuration; nothing would send to it"),
            })
        }
    };
    state.changes.wake_deliveries();
    Ok((
        StatusCode::ACCEPTED,
        Json(Recovered {
            destination: name,
            since,
            queued,
        }),
    )
        .into_response())
}

/// `POST /api/destinations/{name}/enable`: sends to a disabled destination
/// again (its pending deliveries first, in order).
#[utoipa::path(post, path = "/api/destinations/{name}/enable", tag = "deliveries",
    params(("name" = String, Path)),
    responses((status = 200, description = "enabled", body = DestinationView),
        (status = 404, description = "no such destination", body = ErrorBody)),
    security(("admin_token" = [])))]
pub(super) async fn enable(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<DestinationView>, ApiError> {
    let Path(name) = path?;
    let view = state
        .store
        .deliveries()
        .enable(&name)
        .await?
        .ok_or_else(|| unknown_destination(&name))?;
    metrics::gauge!(crate::telemetry::metric::DESTINATION_DISABLED, "destination" => name.clone()).set(0.0);
    tracing::info!(destination = %name, "destination enabled");
    state.changes.wake_deliveries();
    Ok(Json(view))
}
