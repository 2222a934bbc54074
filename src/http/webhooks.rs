//! `/webhooks/{provider}`: the provider-agnostic receive path. Authenticate
//! (from the headers before the body where the credential is in them),
//! extract, commit, then acknowledge — a 200 is only ever sent for a row that
//! is committed in PostgreSQL (or for a provider's URL check, which stores
//! nothing). Once a request is authenticated nothing about its body is
//! refused: what cannot be understood is kept `dead` (quarantined).

use axum::{
    body::Body,
    extract::{rejection::PathRejection, Path, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use http_body_util::BodyExt;
use metrics::{counter, histogram};
use std::{sync::Arc, time::Instant};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use super::{
    error::{ApiError, ErrorBody},
    AppState,
};
use crate::{
    config::BODY_STORE_COPIES,
    event::NewEvent,
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
/// committed (duplicates included), and for every authenticated body,
/// whatever its shape: one signhook does not understand is kept as a `dead`
/// event (quarantined) and acknowledged, because a refusal would be retried
/// and, for Adobe Sign, hold back every later notification. 401/403 bad
/// credentials (nothing read or stored), 413 too large, 503 + Retry-After
/// when it could not be stored (the provider retries). BoldSign's
/// `Verification` request (`X-BoldSign-Event: Verification` over a
/// `Verification` body) gets 200 unsigned and stores nothing.
#[utoipa::path(post, path = "/webhooks/{provider}", tag = "webhooks", operation_id = "receive_webhook",
    params(("provider" = String, Path, description = "adobe-sign, boldsign or fusesign")),
    request_body(content = Object, content_type = "application/json", description = "the provider's payload, unchanged"),
    responses((status = 200, description = "stored (durable), kept quarantined, or a BoldSign verification", body = Object),
        (status = 400, description = "the body was cut short", body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "unknown provider", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn receive(
    State(state): State<AppState>,
    provider: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let provider = state.provider(&provider?.0)?.clone();
    // Runs on its own task: a client that disconnects after sending drops
    // this handler, not the work, so its event is still committed, counted,
    // recorded as activity and logged.
    let (answer, answered) = oneshot::channel();
    let work = async move {
        let (response, outcome) = handle(&state, provider.as_ref(), &headers, body).await;
        if let Err(response) = answer.send(response) {
            tracing::info!(
                status = response.status().as_u16(),
                outcome,
                "finished processing request; the client had gone before the answer"
            );
        }
    };
    tokio::spawn(work.instrument(tracing::Span::current()));
    answered.await.map_err(|_| ApiError::Internal)
}

/// Receives one request and records it (metric, activity); the response
/// carries the event id for the access log.
async fn handle(
    state: &AppState,
    provider: &dyn Provider,
    headers: &HeaderMap,
    body: Body,
) -> (Response, &'static str) {
    let started = Instant::now();
    let deadline = state.settings.server.request_timeout();
    let mut event_id = None;
    let accepted = tokio::time::timeout(deadline, accept(state, provider, headers, body, &mut event_id));
    let (mut response, outcome) = match accepted.await.unwrap_or(Err(ApiError::Timeout)) {
        Ok((response, outcome)) => (response, outcome.label()),
        Err(error) => {
            let outcome = error.outcome();
            (error.into_response(), outcome)
        }
    };
    // Duplicates and quarantined bodies too: either way the provider is
    // alive (silence detection).
    if matches!(outcome, "accepted" | "duplicate" | "quarantined") {
        state.activity.record(provider.name());
    }
    counter!(metric::WEBHOOK_REQUESTS, "provider" => provider.name(), "outcome" => outcome).increment(1);
    histogram!(metric::ACK_DURATION, "provider" => provider.name()).record(started.elapsed().as_secs_f64());
    if let Some(event_id) = event_id {
        response.extensions_mut().insert(LoggedEventId(event_id));
    }
    (response, outcome)
}

/// What became of an answered request, the `outcome` label of
/// `signhook_webhook_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Accepted,
    Duplicate,
    /// Authenticated, but not a notification signhook understands: kept dead.
    Quarantined,
    /// The provider's unauthenticated URL check; nothing stored.
    Verification,
}

impl Outcome {
    /// Every outcome of a 200, for series that exist from the first scrape.
    pub const ALL: [Outcome; 4] = [Self::Accepted, Self::Duplicate, Self::Quarantined, Self::Verification];

    pub fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Quarantined => "quarantined",
            Self::Verification => "verification",
        }
    }
}

/// Every `outcome` label a webhook request can be counted with.
pub fn outcome_labels() -> impl Iterator<Item = &'static str> {
    Outcome::ALL
        .into_iter()
        .map(Outcome::label)
        .chain(ApiError::WEBHOOK_OUTCOMES)
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
) -> Result<(Response, Outcome), ApiError> {
    let limit = state.settings.server.max_body_bytes;
    if declared_length(headers).is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let now = Utc::now();
    // Credentials in the headers are checked before a byte of the body is
    // read: a refused request costs no body memory. A request announcing the
    // provider's URL check is authenticated after, if its body is not one.
    let announced = provider.announces_handshake(headers);
    let early = match announced {
        true => None,
        false => provider.authenticate_headers(headers, now)?,
    };
    let (body, reserved) = read_body(body, limit, &state.body_budget).await?;
    if announced && provider.is_handshake(&body) {
        tracing::info!(
            provider = provider.name(),
            "answered the provider's URL verification; nothing stored"
        );
        return Ok((ack_response(provider.acknowledge_handshake()), Outcome::Verification));
    }
    let sender = match early {
        Some(sender) => sender,
        None => provider.authenticate(headers, &body, now)?,
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let event = match provider.parse(&body) {
        Ok(notification) => {
            NewEvent::understood(provider.name(), notification, sender.tenant.clone(), content_type, body)
        }
        Err(error) => NewEvent::quarantined(
            provider.name(),
            error.to_string(),
            sender.tenant.clone(),
            content_type,
            body,
        ),
    };
    *event_id = Some(event.event_id.clone());
    let quarantined = event.quarantined.clone();
    // The body's share of the budget is given back when the write is done
    // with it, not when this request ends (a client that leaves, or the
    // deadline, would otherwise free it while the copies still exist).
    let receipt = state.ingest.ingest(event, Box::new(reserved)).await?;
    let outcome = match (&quarantined, receipt.duplicate) {
        (_, true) => Outcome::Duplicate,
        (Some(why), false) => {
            tracing::warn!(provider = provider.name(), id = receipt.id, reason = %why,
                "kept a notification signhook does not understand as dead; replay it once a version understands it");
            Outcome::Quarantined
        }
        (None, false) => Outcome::Accepted,
    };
    tracing::debug!(id = receipt.id, duplicate = receipt.duplicate, "notification stored");
    Ok((ack_response(provider.acknowledge(&sender, receipt)), outcome))
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads the whole body, refusing more than `limit` bytes with a 413. Its
/// cost ([`cost`]: the buffer and the copies storing it will make) is drawn
/// from `budget` (KiB) while the bytes arrive — not the declared length up
/// front — and held by the returned permit, which the caller hands to the
/// ingest writer; when the budget is spent the request is shed (503). The
/// buffer grows by doubling, so it holds at most twice the bytes received,
/// and the bytes are copied once, into it. A body cut short by the client is
/// a 400; nothing is stored from it.
async fn read_body(
    mut body: Body,
    limit: usize,
    budget: &Arc<Semaphore>,
) -> Result<(Bytes, OwnedSemaphorePermit), ApiError> {
    let mut reserved = reserve(budget, None, 1)?;
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| ApiError::BadRequest {
            code: "incomplete_body",
            message: format!("the request body could not be read: {error}"),
        })?;
        let Ok(data) = frame.into_data() else { continue };
        let needed = buffer.len() + data.len();
        if needed > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        if needed > buffer.capacity() {
            let target = needed.max(buffer.capacity() * 2).min(limit);
            reserved = reserve(budget, Some(reserved), cost(target, needed))?;
            buffer.reserve(target - buffer.len());
        }
        buffer.extend_from_slice(&data);
    }
    let reserved = reserve(budget, Some(reserved), cost(buffer.capacity(), buffer.len()))?;
    Ok((buffer.freeze(), reserved))
}

/// What a body of `len` bytes in a buffer of `capacity` costs until it is
/// stored: the buffer, and the copies storing it makes of its bytes.
fn cost(capacity: usize, len: usize) -> usize {
    capacity.saturating_add(len.saturating_mul(BODY_STORE_COPIES))
}

/// `held` grown to cover `bytes` of the body budget (whole KiB), or
/// [`ApiError::Overloaded`] when the budget has no room.
fn reserve(
    budget: &Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    bytes: usize,
) -> Result<OwnedSemaphorePermit, ApiError> {
    let want = u32::try_from(bytes.div_ceil(1024).max(1)).map_err(|_| ApiError::Overloaded)?;
    let have = held.as_ref().map_or(0, |permit| permit.num_permits() as u32);
    if want <= have {
        return held.ok_or(ApiError::Overloaded);
    }
    let more = budget
        .clone()
        .try_acquire_many_owned(want - have)
        .map_err(|_| ApiError::Overloaded)?;
    Ok(match held {
        Some(mut permit) => {
            permit.merge(more);
            permit
        }
        None => more,
    })
}

fn ack_response(ack: Ack) -> Response {
    let mut response = (StatusCode::OK, Json(ack.body)).into_response();
    response.headers_mut().extend(ack.headers);
    response
}
