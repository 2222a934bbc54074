//! Liveness, readiness and metrics: what load balancers, orchestrators and
//! Prometheus ask. They are unauthenticated, so none of them may cost the
//! database a query per request (a flood of them slowed every webhook):
//! readiness answers from a check made about once a second in the
//! background, `/metrics` refreshes its queue gauges at most once a second
//! whatever the scrape rate, and all three share a small concurrency limit
//! of their own (beyond it: 503 `overloaded`).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use metrics::gauge;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{error::ErrorBody, AppState};
use crate::{
    store::{ProviderActivity, Store, StoreError},
    telemetry::{self, metric},
};

/// How often the database is checked, and the least time between two
/// refreshes of the queue gauges.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// How long a check (or a gauge refresh) waits for the database.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);
/// An answer older than this no longer counts (the checks stopped).
const CHECK_VALID_FOR: Duration = Duration::from_secs(3);
/// Ops requests handled at once; the rest are shed.
pub const OPS_CONCURRENCY: usize = 16;

/// What the ops endpoints answer from; cheap to clone.
#[derive(Clone)]
pub struct OpsState {
    inner: Arc<Inner>,
}

struct Inner {
    database: Mutex<DatabaseCheck>,
    /// When the gauges were last refreshed; held while refreshing, so one
    /// scrape refreshes and the others answer from the last values.
    gauges: tokio::sync::Mutex<Option<Instant>>,
    /// Every provider's webhook activity as last read.
    activity: Mutex<Vec<ProviderActivity>>,
}

#[derive(Debug, Clone, Copy)]
enum DatabaseCheck {
    Answered { at: Instant },
    Failed { reason: &'static str },
}

impl Default for OpsState {
    /// The database counts as answering now: the state is built right after
    /// connecting and migrating.
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                database: Mutex::new(DatabaseCheck::Answered { at: Instant::now() }),
                gauges: tokio::sync::Mutex::new(None),
                activity: Mutex::new(Vec::new()),
            }),
        }
    }
}

impl OpsState {
    /// Checks the database every [`REFRESH_INTERVAL`] until `shutdown`. A
    /// failure's details are logged once, when it starts; readiness only
    /// says its kind.
    pub async fn watch_database(self, store: Store, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(REFRESH_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let check = match tokio::time::timeout(QUERY_TIMEOUT, store.ping()).await {
                Ok(Ok(())) => DatabaseCheck::Answered { at: Instant::now() },
                Ok(Err(error)) => {
                    self.log_failure(&error.to_string());
                    DatabaseCheck::Failed {
                        reason: "database_unreachable",
                    }
                }
                Err(_) => {
                    self.log_failure("no answer within 1 s");
                    DatabaseCheck::Failed {
                        reason: "database_timeout",
                    }
                }
            };
            let previous = std::mem::replace(&mut *self.lock_database(), check);
            if let (DatabaseCheck::Failed { .. }, DatabaseCheck::Answered { .. }) = (previous, check) {
                tracing::info!("readiness: the database answers again");
            }
        }
    }

    fn log_failure(&self, error: &str) {
        if matches!(*self.lock_database(), DatabaseCheck::Answered { .. }) {
            tracing::warn!(%error, "readiness: the database does not answer");
        }
    }

    fn lock_database(&self) -> std::sync::MutexGuard<'_, DatabaseCheck> {
        // A poisoned lock still holds a whole `Copy` value.
        self.inner
            .database
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Why the database is not usable now, if it is not.
    fn database_problem(&self) -> Option<&'static str> {
        match *self.lock_database() {
            DatabaseCheck::Answered { at } if at.elapsed() <= CHECK_VALID_FOR => None,
            DatabaseCheck::Answered { .. } => Some("database_timeout"),
            DatabaseCheck::Failed { reason } => Some(reason),
        }
    }

    /// Refreshes the queue gauges and the stored activity from the database
    /// unless another scrape is doing so or did within [`REFRESH_INTERVAL`].
    async fn refresh_gauges(&self, store: &Store) {
        let Ok(mut last) = self.inner.gauges.try_lock() else {
            return;
        };
        if last.is_some_and(|at| at.elapsed() < REFRESH_INTERVAL) {
            return;
        }
        let refresh = async {
            let counts = store.counts().by_state().await?;
            for (name, count) in counts.by_state() {
                gauge!(metric::EVENTS, "state" => name).set(count as f64);
            }
            let age = store.counts().oldest_unprocessed_age().await?;
            gauge!(metric::OLDEST_PENDING_AGE).set(age.as_secs_f64());
            let now = chrono::Utc::now();
            for destination in store.deliveries().destinations().await? {
                let name = destination.name;
                gauge!(metric::DELIVERY_BACKLOG, "destination" => name.clone()).set(destination.pending as f64);
                let oldest = destination
                    .oldest_pending_at
                    .map_or(0.0, |at| (now - at).num_milliseconds().max(0) as f64 / 1000.0);
                gauge!(metric::DELIVERY_OLDEST_AGE, "destination" => name.clone()).set(oldest);
                let disabled = if destination.disabled_at.is_some() { 1.0 } else { 0.0 };
                gauge!(metric::DESTINATION_DISABLED, "destination" => name).set(disabled);
            }
            store.activity().all().await
        };
        match tokio::time::timeout(QUERY_TIMEOUT, refresh)
            .await
            .unwrap_or(Err(StoreError::TimedOut))
        {
            Ok(rows) => *self.inner.activity.lock().unwrap_or_else(|p| p.into_inner()) = rows,
            Err(error) => tracing::warn!(%error, "metrics: queue gauges not refreshed"),
        }
        // A failed refresh waits its turn too: a down database is not asked
        // more often than a healthy one.
        *last = Some(Instant::now());
    }

    fn stored_last_webhook(&self, provider: &str) -> Option<DateTime<Utc>> {
        let rows = self.inner.activity.lock().unwrap_or_else(|p| p.into_inner());
        rows.iter()
            .find(|row| row.provider == provider)
            .and_then(|row| row.last_webhook_at)
    }
}

/// `GET /healthz`: the process is alive (200 even when the database is down,
/// so an orchestrator does not restart us for someone else's outage).
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, body = Object),
        (status = 503, description = "too many probes at once (`overloaded`)", body = ErrorBody)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: `{"status":"ready"}`, or `{"status":"unavailable","reason":…}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    status: &'static str,
    /// Why not ready: `database_unreachable` (the database refuses or fails
    /// the check), `database_timeout` (no answer within 1 s) or
    /// `worker_stopped`. The details are in the log, never here.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// `GET /readyz`: 200 when the database answered its last check (made
/// about once a second) and the worker runs; else 503 with a reason code.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Readiness),
        (status = 503, description = "not ready (a `Readiness` with its reason), or too many probes at once (an error, `overloaded`)", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    // A receive-only replica (SIGNHOOK_WORKER_CONCURRENCY=0) runs no worker.
    let worker_stopped = state.settings.worker.concurrency > 0 && !state.worker.is_running();
    let problem = state
        .ops
        .database_problem()
        .or(worker_stopped.then_some("worker_stopped"));
    match problem {
        None => Json(Readiness {
            status: "ready",
            reason: None,
        })
        .into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                status: "unavailable",
                reason: Some(reason),
            }),
        )
            .into_response(),
    }
}

/// `GET /metrics`: Prometheus text format. The queue gauges come from the
/// database at most once a second (a failed refresh keeps the last values).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, content_type = "text/plain", body = String),
        (status = 503, description = "too many scrapes at once (`overloaded`)", body = ErrorBody)))]
pub async fn metrics(State(state): State<AppState>) -> String {
    state.ops.refresh_gauges(&state.store).await;
    // The last webhook any replica accepted (as flushed to the database), or
    // this one, whichever is later.
    for provider in state.providers.iter() {
        let name = provider.name();
        if let Some(last) = state.ops.stored_last_webhook(name).max(state.activity.last(name)) {
            gauge!(metric::LAST_WEBHOOK, "provider" => name).set(last.timestamp_millis() as f64 / 1000.0);
        }
    }
    let handle = telemetry::metrics();
    handle.run_upkeep();
    handle.render()
}
