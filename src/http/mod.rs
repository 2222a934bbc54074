//! The HTTP surface: router, shared state and the layers every request goes
//! through (request id, tracing span, panic catching). Handlers live in one
//! file per route group.

mod admin;
mod agreements;
mod changes;
mod deliveries;
mod documents;
pub mod error;
mod health;
mod oauth;
pub mod openapi;
mod query;
mod server;
mod webhooks;

pub use server::{connection_cap, open_files_limit, serve, ConnectionLimits};
pub use webhooks::outcome_labels as webhook_outcomes;

use std::{sync::Arc, time::Duration};

use axum::{
    error_handling::HandleErrorLayer,
    extract::DefaultBodyLimit,
    extract::Request,
    http::{header, HeaderName, HeaderValue, Uri},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
    BoxError, Router,
};
use metrics::counter;
use tokio::sync::Semaphore;
use tower::{limit::ConcurrencyLimitLayer, load_shed::LoadShedLayer, ServiceBuilder};
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};

use self::error::ApiError;
use crate::{
    changes::ChangeSignals,
    config::Settings,
    fetcher::Fetcher,
    providers::{Provider, Providers},
    silence::Activity,
    store::{BatchLimits, IngestWriter, Store},
    telemetry::metric,
    worker::WorkerHandle,
};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Group-commit writers that webhook requests hand their events to.
    pub ingest: IngestWriter,
    pub providers: Providers,
    pub worker: WorkerHandle,
    pub settings: Arc<Settings>,
    /// KiB of request bodies that may be in memory at once.
    pub body_budget: Arc<Semaphore>,
    /// Last accepted webhook per provider (in memory; flushed to the database).
    pub activity: Activity,
    /// Notifications about changes (the feed's long polls, the dispatcher).
    pub changes: ChangeSignals,
    /// Fetches and serves the copies of completed agreements.
    pub fetcher: Arc<Fetcher>,
    /// What `/readyz` and `/metrics` answer from.
    pub(crate) ops: health::OpsState,
}

impl AppState {
    pub fn new(
        store: Store,
        providers: Providers,
        worker: WorkerHandle,
        settings: Arc<Settings>,
        fetcher: Arc<Fetcher>,
    ) -> Self {
        let budget_kib = (settings.server.max_inflight_body_bytes / 1024).min(Semaphore::MAX_PERMITS);
        let limits = BatchLimits {
            max_rows: settings.ingest.batch_max_rows,
            max_bytes: settings.ingest.batch_max_bytes,
        };
        let wake = worker.clone();
        Self {
            ingest: IngestWriter::start(store.clone(), settings.ingest.writers, limits, move || wake.wake()),
            store,
            providers,
            worker,
            body_budget: Arc::new(Semaphore::new(budget_kib)),
            settings,
            activity: Activity::default(),
            changes: ChangeSignals::default(),
            fetcher,
            ops: health::OpsState::default(),
        }
    }

    pub(crate) fn provider(&self, name: &str) -> Result<&Arc<dyn Provider>, ApiError> {
        self.providers.get(name).ok_or_else(|| {
            ApiError::NotFound(format!(
                "unknown provider `{name}`; webhooks are received at /webhooks/{{{}}}",
                Providers::names().collect::<Vec<_>>().join("|")
            ))
        })
    }
}

pub fn router(state: AppState) -> Router {
    let admin = admin::router()
        .route("/agreements", get(agreements::list))
        .route("/changes", get(changes::changes))
        .merge(deliveries::router())
        .merge(documents::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), admin::require_token))
        // After the token layer: the document is served without the token.
        .route("/openapi.json", get(openapi::openapi_json))
        // Its own fallbacks, so unknown `/api/*` paths get the headers below too.
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Admin answers describe agreements and events: no shared or browser
        // cache may keep them (`no-store`), and none is to be read as
        // anything but the JSON it says it is (`nosniff`).
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    let webhooks = Router::new()
        .route(
            "/webhooks/{provider}",
            get(webhooks::verify_intent).post(webhooks::receive),
        )
        .route(
            "/webhooks/{provider}/oauth/token",
            post(oauth::token).layer(DefaultBodyLimit::max(oauth::MAX_TOKEN_REQUEST_BYTES)),
        )
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|uri: Uri, _: BoxError| async move {
                    // Only registered names become labels: paths are user input.
                    if let Some(name) = Providers::names().find(|name| uri.path().ends_with(&format!("/{name}"))) {
                        counter!(metric::WEBHOOK_REQUESTS, "provider" => name, "outcome" => "overloaded").increment(1);
                    }
                    ApiError::Overloaded
                }))
                .layer(LoadShedLayer::new())
                .layer(ConcurrencyLimitLayer::new(
                    state.settings.server.max_concurrent_requests,
                )),
        );
    let mut router = Router::new().merge(webhooks).nest("/api", admin);
    // With SIGNHOOK_OPS_LISTEN they are served there instead (`ops_router`).
    if state.settings.server.ops_listen.is_none() {
        router = router.merge(ops_routes());
    }
    with_common_layers(router, state)
}

/// What `SIGNHOOK_OPS_LISTEN` serves: the probes and the metrics alone.
pub fn ops_router(state: AppState) -> Router {
    with_common_layers(ops_routes(), state)
}

/// Probes and scrapes are unauthenticated: bounded on their own, so a flood
/// of them is shed before it takes the webhooks' share.
fn ops_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route("/readyz", get(health::readyz))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: BoxError| async { ApiError::Overloaded }))
                .layer(LoadShedLayer::new())
                .layer(ConcurrencyLimitLayer::new(health::OPS_CONCURRENCY)),
        )
}

/// Fallbacks, request ids, the tracing span, panic catching and `nosniff`:
/// what every listener's answers go through.
fn with_common_layers(router: Router<AppState>, state: AppState) -> Router {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            ServiceBuilder::new()
                // Every answer is JSON or Prometheus text, as labelled.
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request| {
                            let request_id = request
                                .headers()
                                .get(REQUEST_ID)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default();
                            // The path only: query strings and bodies stay out of logs.
                            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
                        })
                        .on_response(|response: &axum::http::Response<_>, latency: Duration, _: &tracing::Span| {
                            let event_id = response.extensions().get::<webhooks::LoggedEventId>().map(|e| e.0.as_str());
                            tracing::info!(
                                status = response.status().as_u16(),
                                latency_us = latency.as_micros() as u64,
                                event_id,
                                "finished processing request"
                            );
                        }),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(|_| -> Response {
                    tracing::error!("handler panicked");
                    ApiError::Internal.into_response()
                })),
        )
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such resource".to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed("method not allowed on this resource".to_owned())
}
