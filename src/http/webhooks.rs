//! `/webhooks/{provider}`: the provider-agnostic receive path. Authenticate,
//! extract, commit, then acknowledge — a 200 is only ever sent for a row that
//! is committed in PostgreSQL.

use axum::{
    body::Body,
    extract::{rejection::PathRejection, Path, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::Utc;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use metrics::{counter, histogram};
use std::time::Instant;

use super::{
    error::{ApiError, ErrorBody},
    AppState,
};
use crate::{
    event::{NewEvent, Receipt},
    providers::{Ack, Provider},
    telemetry::metric,
};

/// `GET /webhooks/{provider}`: the provider's URL-ownership check, Adobe
/// Sign's verification of intent: the `X-AdobeSign-ClientId` is echoed for an
/// allow-listed client ID.
#[utoipa::path(get, path = "/webhooks/{provider}", tag = "webhooks",
    params(("provider" = String, Path, description = "adobe-sign"),
        ("X-AdobeSign-ClientId" = String, Header)),
    responses((status = 200, description = "echoed", body = Object),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 405, description = "the provider has no GET handshake", body = ErrorBody)))]
pub async fn verify_intent(
    State(state): State<AppState>,
    provider: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let provider = state.provider(&provider?.0)?;
    Ok(ack_response(provider.verify_intent(&headers)?))
}

/// `POST /webhooks/{provider}`: one notification. 200 only once it is
/// committed (duplicates included); 401/403 bad credentials, 400 not a
/// notification, 413 too large, 503 + Retry-After when it could not be
/// stored (the provider retries).
#[utoipa::path(post, path = "/webhooks/{provider}", tag = "webhooks", operation_id = "receive_webhook",
    params(("provider" = String, Path, description = "adobe-sign, boldsign or fusesign")),
    request_body(content = Object, content_type = "application/json", description = "the provider's payload, unchanged"),
    responses((status = 200, description = "stored (durable)", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn receive(
    State(state): State<AppState>,
    provider: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let provider = state.provider(&provider?.0)?.clone();
    let started = Instant::now();
    let deadline = state.settings.server.request_timeout();
    let mut event_id = None;
    let accepted = tokio::time::timeout(
        deadline,
        accept(&state, provider.as_ref(), &headers, body, &mut event_id),
    );
    let (mut response, outcome) = match accepted.await.unwrap_or(Err(ApiError::Timeout)) {
        Ok((response, receipt)) if receipt.duplicate => (response, "duplicate"),
        Ok((response, _)) => (response, "accepted"),
        Err(error) => {
            let outcome = error.outcome();
            (error.into_response(), outcome)
        }
    };
    // Duplicates too: either way the provider is alive (silence detection).
    if matches!(outcome, "accepted" | "duplicate") {
        state.activity.record(provider.name());
    }
    counter!(metric::WEBHOOK_REQUESTS, "provider" => provider.name(), "outcome" => outcome).increment(1);
    histogram!(metric::ACK_DURATION, "provider" => provider.name()).record(started.elapsed().as_secs_f64());
    if let Some(event_id) = event_id {
        response.extensions_mut().insert(LoggedEventId(event_id));
    }
    Ok(response)
}

/// The provider's event id of a webhook request, for its access-log line
/// (see `http::router`). Carried on the response rather than recorded into
/// the request's span: recording a span field re-serializes all of the
/// span's JSON fields (callgrind: 6 % of the server's instructions).
#[derive(Clone)]
pub struct LoggedEventId(pub String);

async fn accept(
    state: &AppState,
    provider: &dyn Provider,
    headers: &HeaderMap,
    body: Body,
    event_id: &mut Option<String>,
) -> Result<(Response, Receipt), ApiError> {
    let limit = state.settings.server.max_body_bytes;
    let declared = declared_length(headers);
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    // Reserve the body's memory before reading it (the whole limit when the
    // length is not declared); held until the answer is sent.
    let reserve_kib = declared.unwrap_or(limit as u64).div_ceil(1024).max(1);
    let _reserved = u32::try_from(reserve_kib)
        .ok()
        .and_then(|kib| state.body_budget.try_acquire_many(kib).ok())
        .ok_or(ApiError::Overloaded)?;
    let body = read_body(body, limit).await?;
    let sender = provider.authenticate(headers, &body, Utc::now())?;
    let notification = provider.parse(&body)?;
    *event_id = Some(notification.event_id.clone());
    let receipt = state
        .ingest
        .ingest(NewEvent {
            provider: provider.name(),
            event_id: notification.event_id,
            event_type: notification.event_type,
            subject: notification.subject,
            tenant: sender.tenant.clone().or(notification.tenant),
            occurred_at: notification.occurred_at,
            content_type: headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body,
        })
        .await?;
    tracing::debug!(id = receipt.id, duplicate = receipt.duplicate, "notification stored");
    Ok((ack_response(provider.acknowledge(&sender, receipt)), receipt))
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads the whole body, refusing more than `limit` bytes with a 413. A body
/// cut short by the client is a 400; nothing is stored from it.
async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(ApiError::PayloadTooLarge { limit }),
        Err(error) => Err(ApiError::BadRequest {
            code: "incomplete_body",
            message: format!("the request body could not be read: {error}"),
        }),
    }
}

fn ack_response(ack: Ack) -> Response {
    let mut response = (StatusCode::OK, Json(ack.body)).into_response();
    response.headers_mut().extend(ack.headers);
    response
}
