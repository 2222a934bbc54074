//! `/api/*`: the operator's view of events and agreements, behind a bearer
//! token. Without a configured token the API does not exist (404 everywhere).

use axum::{
    extract::{
        rejection::{PathRejection, QueryRejection},
        Path, Query, Request, State,
    },
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{error::ApiError, AppState};
use crate::{
    providers::{matches_any, PollError, Providers},
    store::{AgreementView, EventFilter, EventPage, EventState},
};

const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;
/// Longest a manual refresh waits for the provider (its client retries inside).
const REFRESH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agreements/{provider}/{agreement_id}", get(agreement))
        .route("/agreements/{provider}/{agreement_id}/refresh", post(refresh))
        .route("/events", get(events))
        .route("/events/{id}/replay", post(replay))
        .route("/stats", get(stats))
}

/// Bearer-token check, compared in constant time.
pub async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    let Some(token) = state.settings.admin_token.as_deref() else {
        return Err(ApiError::NotFound("no such resource".to_owned()));
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(presented) if matches_any(presented.as_bytes(), &[token]) => Ok(next.run(request).await),
        Some(_) => Err(ApiError::Unauthorized {
            code: "invalid_token",
            message: "the bearer token is not valid".to_owned(),
        }),
        None => Err(ApiError::Unauthorized {
            code: "missing_token",
            message: "an Authorization: Bearer <SIGNHOOK_ADMIN_TOKEN> header is required".to_owned(),
        }),
    }
}

fn known_provider(name: &str) -> Result<(), ApiError> {
    match Providers::names().any(|known| known == name) {
        true => Ok(()),
        false => Err(ApiError::NotFound(format!(
            "unknown provider `{name}`; known: {}",
            Providers::names().collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// `GET /api/agreements/{provider}/{agreement_id}`
async fn agreement(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<AgreementView>, ApiError> {
    let Path((provider, agreement_id)) = path?;
    known_provider(&provider)?;
    state
        .store
        .agreement(&provider, &agreement_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no {provider} agreement `{agreement_id}` has been seen")))
}

/// `POST /api/agreements/{provider}/{agreement_id}/refresh`: reads the
/// agreement's status from the provider's API now, applies it with the same
/// rules as webhooks, and returns the agreement.
async fn refresh(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<AgreementView>, ApiError> {
    let Path((name, agreement_id)) = path?;
    let provider = state.provider(&name)?;
    let subject = tokio::time::timeout(REFRESH_DEADLINE, provider.poll(&agreement_id))
        .await
        .map_err(|_| ApiError::ProviderFailed {
            code: "provider_timeout",
            message: format!("{name} did not answer within {} s", REFRESH_DEADLINE.as_secs()),
        })?
        .map_err(|error| match error {
            PollError::NotConfigured => ApiError::Conflict {
                code: "polling_not_configured",
                message: format!("no API credentials are configured for {name}; see the README's configuration"),
            },
            PollError::NotFound => ApiError::NotFound(format!("{name} does not know agreement `{agreement_id}`")),
            other => ApiError::ProviderFailed {
                code: "provider_error",
                message: format!("{name}: {other}"),
            },
        })?;
    state
        .store
        .apply_poll(provider.name(), &subject, chrono::Utc::now())
        .await?;
    state
        .store
        .agreement(provider.name(), &subject.id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no {name} agreement `{agreement_id}`")))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    provider: Option<String>,
    agreement_id: Option<String>,
    state: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/events?provider=&agreement_id=&state=&limit=&cursor=`
async fn events(
    State(state): State<AppState>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    let Query(query) = query?;
    let bad = |message: String| ApiError::BadRequest {
        code: "invalid_query",
        message,
    };
    if let Some(provider) = query.provider.as_deref() {
        known_provider(provider).map_err(|e| bad(e.to_string()))?;
    }
    let state_filter = match query.state.as_deref() {
        None => None,
        Some(s) => Some(EventState::parse(s).ok_or_else(|| {
            bad(format!(
                "state must be one of pending, processing, processed, failed, dead; got `{s}`"
            ))
        })?),
    };
    let limit = match query.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| bad(format!("limit must be an integer from 1 to {MAX_PAGE}; got `{s}`")))?,
    };
    let before = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<i64>()
                .map_err(|_| bad(format!("cursor `{s}` is not one this API returned")))?,
        ),
    };
    let page = state
        .store
        .list_events(&EventFilter {
            provider: query.provider,
            agreement_id: query.agreement_id,
            state: state_filter,
            before,
            limit,
        })
        .await?;
    Ok(Json(page))
}

/// `GET /api/stats`
async fn stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let counts = state.store.count_by_state().await?;
    Ok(Json(json!({ "events": counts })))
}

/// `POST /api/events/{id}/replay`: 202, applied again in the background.
async fn replay(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(raw) = path?;
    let id = raw.parse::<i64>().map_err(|_| ApiError::BadRequest {
        code: "invalid_path",
        message: format!("event id `{raw}` is not an integer"),
    })?;
    if !state.store.replay(id).await? {
        return Err(ApiError::NotFound(format!("no event with id {id}")));
    }
    state.worker.wake();
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id, "state": "pending" }))).into_response())
}
