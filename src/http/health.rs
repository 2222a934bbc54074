//! Liveness, readiness and metrics: what load balancers, orchestrators and
//! Prometheus ask.

use std::time::Duration;

use axum::{extract::State, Json};
use serde_json::{json, Value};

use metrics::gauge;

use super::{
    error::{ApiError, ErrorBody},
    AppState,
};
use crate::telemetry::{self, metric};

/// How long readiness waits for the database before calling it down.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /healthz`: the process is alive (200 even when the database is down,
/// so an orchestrator does not restart us for someone else's outage).
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Object)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 only when the database answers and the worker runs;
/// else 503 with a reason.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Object), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let unavailable = |code, message: String| ApiError::Unavailable { code, message };
    match tokio::time::timeout(PING_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            return Err(unavailable(
                "database_unavailable",
                format!("database unreachable: {error}"),
            ))
        }
        Err(_) => {
            return Err(unavailable(
                "database_unavailable",
                "database did not answer within 1 s".to_owned(),
            ))
        }
    }
    // A receive-only replica (SIGNHOOK_WORKER_CONCURRENCY=0) runs no worker.
    if state.settings.worker.concurrency > 0 && !state.worker.is_running() {
        return Err(unavailable(
            "worker_stopped",
            "the background worker is not running".to_owned(),
        ));
    }
    Ok(Json(json!({ "status": "ready" })))
}

/// `GET /metrics`: Prometheus text format. Queue gauges are read from the
/// database at scrape time (skipped, not failed, when it does not answer).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> String {
    let refresh = async {
        let counts = state.store.counts().by_state().await?;
        for (name, count) in counts.by_state() {
            gauge!(metric::EVENTS, "state" => name).set(count as f64);
        }
        let age = state.store.counts().oldest_unprocessed_age().await?;
        gauge!(metric::OLDEST_PENDING_AGE).set(age.as_secs_f64());
        let now = chrono::Utc::now();
        for destination in state.store.deliveries().destinations().await? {
            let name = destination.name;
            gauge!(metric::DELIVERY_BACKLOG, "destination" => name.clone()).set(destination.pending as f64);
            let oldest = destination
                .oldest_pending_at
                .map_or(0.0, |at| (now - at).num_milliseconds().max(0) as f64 / 1000.0);
            gauge!(metric::DELIVERY_OLDEST_AGE, "destination" => name.clone()).set(oldest);
            let disabled = if destination.disabled_at.is_some() { 1.0 } else { 0.0 };
            gauge!(metric::DESTINATION_DISABLED, "destination" => name).set(disabled);
        }
        state.store.activity().all().await
    };
    let activity = match tokio::time::timeout(PING_TIMEOUT, refresh)
        .await
        .map_err(|_| crate::store::StoreError::TimedOut)
    {
        Ok(Ok(rows)) => rows,
        Ok(Err(error)) | Err(error) => {
            tracing::warn!(%error, "metrics: queue gauges not refreshed");
            Vec::new()
        }
    };
    // The last webhook any replica accepted (as flushed to the database), or
    // this one, whichever is later.
    for provider in state.providers.iter() {
        let name = provider.name();
        let stored = activity
            .iter()
            .find(|row| row.provider == name)
            .and_then(|row| row.last_webhook_at);
        if let Some(last) = stored.max(state.activity.last(name)) {
            gauge!(metric::LAST_WEBHOOK, "provider" => name).set(last.timestamp_millis() as f64 / 1000.0);
        }
    }
    let handle = telemetry::metrics();
    handle.run_upkeep();
    handle.render()
}
