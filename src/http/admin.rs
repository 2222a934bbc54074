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
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::query;
use super::{
    error::{ApiError, ErrorBody},
    AppState,
};
use crate::{
    agreement::AgreementStatus,
    confirmation,
    fetcher::FetchReport,
    ledger::ApiLimits,
    providers::{credentials::matches_any, CallError, PollError, Provider, Providers, WatchError},
    store::{AgreementView, BudgetView, ChangeOrigin, EventFilter, EventPage, EventState},
    watching::{self, WatchingError},
};

/// Longest a manual refresh waits for the provider (its client retries inside).
const REFRESH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agreements/{provider}/{agreement_id}", get(agreement))
        .route("/agreements/{provider}/{agreement_id}/refresh", post(refresh))
        .route(
            "/agreements/{provider}/{agreement_id}/watch",
            post(watch).delete(unwatch),
        )
        .route("/providers", get(providers))
        .route("/events", get(events))
        .route("/events/{id}/replay", post(replay))
        .route("/stats", get(stats))
}

/// Bearer-token check, compared in constant time.
pub async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    let Some(token) = state.settings.server.admin_token.as_deref() else {
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

pub(super) fn known_provider(name: &str) -> Result<(), ApiError> {
    match Providers::names().any(|known| known == name) {
        true => Ok(()),
        false => Err(ApiError::NotFound(format!(
            "unknown provider `{name}`; known: {}",
            Providers::names().collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// `GET /api/agreements/{provider}/{agreement_id}`
#[utoipa::path(get, path = "/api/agreements/{provider}/{agreement_id}", tag = "agreements",
    params(("provider" = String, Path, description = "adobe-sign, boldsign or fusesign"), ("agreement_id" = String, Path)),
    responses((status = 200, description = "the agreement and its history", body = AgreementView),
        (status = 404, description = "never seen", body = ErrorBody)),
    security(("admin_token" = [])))]
async fn agreement(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<AgreementView>, ApiError> {
    let Path((provider, agreement_id)) = path?;
    known_provider(&provider)?;
    view(&state, &provider, &agreement_id).await
}

/// `POST /api/agreements/{provider}/{agreement_id}/refresh`: reads the
/// agreement's status from the provider's API now (drafts too), applies it
/// with the same rules as webhooks, and returns the agreement with
/// `refresh.polled: true`.
///
/// A refresh never gets the account throttled: when the provider's API may
/// not be called yet (the account is paused after a 429, its budget is
/// spent, or the same request went out less than the minimum interval ago —
/// Adobe's 10 minutes), it answers 200 from the last poll with
/// `refresh.polled: false`, the reason and `retry_after_secs` (and a
/// `Retry-After` header); 429 with `Retry-After` when the agreement has never
/// been seen, so there is nothing to answer from.
///
/// A completed agreement whose signed copy is missing has its documents
/// fetched at once (`?documents=refetch`: all of them again, even if kept),
/// waiting up to a minute; `document_fetch` reports what that got.
#[utoipa::path(post, path = "/api/agreements/{provider}/{agreement_id}/refresh", tag = "agreements",
    params(("provider" = String, Path, description = "adobe-sign, boldsign or fusesign"), ("agreement_id" = String, Path),
        ("documents" = Option<String>, Query, description = "missing (default): fetch a completed agreement's documents if its signed copy is missing; refetch: fetch them all again")),
    responses((status = 200, description = "the agreement after applying the provider's status, or as last polled when the API may not be called yet", body = RefreshView),
        (status = 400, description = "a resource the provider's API is not polled for (Adobe web forms and bulk sends), or an invalid `documents`", body = ErrorBody),
        (status = 404, description = "the provider does not know it", body = ErrorBody),
        (status = 409, description = "no API credentials for this provider", body = ErrorBody),
        (status = 429, description = "the API may not be called yet and the agreement was never seen; see Retry-After", body = ErrorBody),
        (status = 502, description = "the provider failed, or refused for lack of permission", body = ErrorBody)),
    security(("admin_token" = [])))]
async fn refresh(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<RefreshQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path((name, agreement_id)) = path?;
    let Query(query) = query?;
    let refetch = match query.documents.as_deref() {
        None | Some("") | Some("missing") => false,
        Some("refetch") => true,
        Some(other) => {
            return Err(ApiError::BadRequest {
                code: "invalid_query",
                message: format!("documents must be `missing` (the default) or `refetch`; got `{other}`"),
            })
        }
    };
    let provider = state.provider(&name)?;
    let known = state.store.agreements().get(provider.name(), &agreement_id).await?;
    if let Some(known) = known.as_ref().filter(|_| provider.can_poll()) {
        if !provider.poll_kinds().contains(&known.resource_type.as_str()) {
            return Err(ApiError::BadRequest {
                code: "not_pollable",
                message: format!(
                    "{name} `{agreement_id}` is a {}, which is not polled (only {}): the agreements made from it have their own ids",
                    known.resource_type,
                    provider.poll_kinds().join(", ")
                ),
            });
        }
    }
    let tenant = state.store.polling().tenant(provider.name(), &agreement_id).await?;
    let asked_at = state.store.now().await?;
    let polled = tokio::time::timeout(REFRESH_DEADLINE, provider.poll_in(&agreement_id, tenant.as_deref()))
        .await
        .map_err(|_| ApiError::ProviderFailed {
            code: "provider_timeout",
            message: format!("{name} did not answer within {} s", REFRESH_DEADLINE.as_secs()),
        })?;
    let subject = match polled {
        Ok(subject) => subject,
        Err(PollError::Call(error @ CallError::Throttled { wait, reason })) => {
            let retry_after_secs = wait.as_secs_f64().ceil() as u64;
            let Some(agreement) = known else {
                return Err(ApiError::Throttled {
                    message: format!("{name}: {error}"),
                    retry_after_secs,
                });
            };
            let note = RefreshNote {
                polled: false,
                reason: Some(reason.as_str()),
                message: Some(format!(
                    "not polled: {error}; this is the agreement as last known (last polled {})",
                    agreement
                        .last_polled_at
                        .map_or_else(|| "never".to_owned(), |at| at.to_rfc3339())
                )),
                retry_after_secs: Some(retry_after_secs),
            };
            let mut response = Json(RefreshView {
                agreement,
                refresh: note,
                document_fetch: None,
            })
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after_secs));
            return Ok(response);
        }
        Err(PollError::NotFound) => {
            let unconfirmed = state
                .store
                .agreements()
                .unconfirm_held(provider.name(), &agreement_id, asked_at)
                .await?;
            confirmation::report_unconfirmed(provider.name(), &agreement_id, None, &unconfirmed);
            return Err(provider_failed(&name, &agreement_id, PollError::NotFound));
        }
        Err(error) => return Err(provider_failed(&name, &agreement_id, error)),
    };
    let confirms = |claimed| provider.confirms_final(claimed, &subject);
    let applied = state
        .store
        .agreements()
        .apply_poll(
            provider.name(),
            &subject,
            chrono::Utc::now(),
            asked_at,
            &confirms,
            ChangeOrigin::Refresh,
        )
        .await?;
    confirmation::report(
        provider.name(),
        &agreement_id,
        subject.provider_status.as_deref(),
        &applied,
    );
    let document_fetch = match subject.status == Some(AgreementStatus::Completed) {
        true => super::documents::fetch_on_refresh(&state, provider.name(), &subject.id, refetch).await?,
        false => None,
    };
    let agreement = state
        .store
        .agreements()
        .get(provider.name(), &subject.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no {name} agreement `{agreement_id}`")))?;
    Ok(Json(RefreshView {
        agreement,
        refresh: RefreshNote {
            polled: true,
            reason: None,
            message: None,
            retry_after_secs: None,
        },
        document_fetch,
    })
    .into_response())
}

/// What `POST .../refresh` answers: the agreement, and whether it was read
/// from the provider just now.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshView {
    #[serde(flatten)]
    pub agreement: AgreementView,
    pub refresh: RefreshNote,
    /// For a completed agreement whose signed copy was missing (or with
    /// `?documents=refetch`): what fetching its documents now did. Absent
    /// when there was nothing to fetch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_fetch: Option<FetchReport>,
}

#[derive(Debug, Deserialize)]
struct RefreshQuery {
    /// `missing` (default): fetch a completed agreement's documents when its
    /// signed copy is missing; `refetch`: fetch them all again.
    documents: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshNote {
    /// The provider's API was read just now.
    pub polled: bool,
    /// Why not: `paused` (the provider throttled the account), `budget`
    /// (the account's request budget is spent) or `min_interval` (the same
    /// request went out less than the minimum polling interval ago).
    pub reason: Option<&'static str>,
    pub message: Option<String>,
    /// When the API may be called again.
    pub retry_after_secs: Option<u64>,
}

/// A failed provider API call as the admin API reports it.
fn provider_failed(name: &str, agreement_id: &str, error: PollError) -> ApiError {
    match error {
        PollError::NotConfigured => ApiError::Conflict {
            code: "polling_not_configured",
            message: format!("no API credentials are configured for {name}; see the README's configuration"),
        },
        PollError::NotFound => ApiError::NotFound(format!("{name} does not know agreement `{agreement_id}`")),
        PollError::Call(error @ CallError::PermissionDenied(_)) => ApiError::ProviderFailed {
            code: "provider_permission_denied",
            message: format!("{name}: {error}"),
        },
        PollError::Call(error @ CallError::Throttled { wait, .. }) => ApiError::Throttled {
            message: format!("{name}: {error}"),
            retry_after_secs: wait.as_secs_f64().ceil() as u64,
        },
        other => ApiError::ProviderFailed {
            code: "provider_error",
            message: format!("{name}: {other}"),
        },
    }
}

/// The provider named in the path, if it has per-agreement webhooks.
fn watchable<'a>(state: &'a AppState, name: &str) -> Result<&'a std::sync::Arc<dyn Provider>, ApiError> {
    let provider = state.provider(name)?;
    if !provider.can_watch() {
        return Err(ApiError::BadRequest {
            code: "watch_not_supported",
            message: format!(
                "{name} has no per-agreement webhooks; its agreements are kept current by its account webhook and polling"
            ),
        });
    }
    Ok(provider)
}

async fn view(state: &AppState, provider: &str, agreement_id: &str) -> Result<Json<AgreementView>, ApiError> {
    state
        .store
        .agreements()
        .get(provider, agreement_id)
        .await?
        .map(Json)
        .ok_or_else(|| not_seen(provider, agreement_id))
}

fn not_seen(provider: &str, agreement_id: &str) -> ApiError {
    ApiError::NotFound(format!("no {provider} agreement `{agreement_id}` has been seen"))
}

/// `POST /api/agreements/{provider}/{agreement_id}/watch`: registers a webhook
/// for this one agreement at the provider, pointing at
/// `SIGNHOOK_PUBLIC_URL/webhooks/{provider}`, and returns the agreement (created
/// without a status if never seen). Watching a watched agreement changes
/// nothing. If the registration fails (502), the agreement is polled every
/// `SIGNHOOK_RECONCILE_FAST_INTERVAL` and the registration retried until it works.
#[utoipa::path(post, path = "/api/agreements/{provider}/{agreement_id}/watch", tag = "agreements",
    params(("provider" = String, Path, description = "adobe-sign"), ("agreement_id" = String, Path)),
    responses(
        (status = 200, description = "watched", body = AgreementView),
        (status = 400, description = "the provider has no per-agreement webhooks", body = ErrorBody),
        (status = 404, description = "the provider does not know the agreement", body = ErrorBody),
        (status = 409, description = "SIGNHOOK_PUBLIC_URL or API credentials missing, or the agreement is finished", body = ErrorBody),
        (status = 502, description = "registration failed; fast polling until a retry works", body = ErrorBody)),
    security(("admin_token" = [])))]
async fn watch(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<AgreementView>, ApiError> {
    let Path((name, agreement_id)) = path?;
    let provider = watchable(&state, &name)?.clone();
    let Some(url) = state.settings.server.webhook_url(provider.name()) else {
        return Err(ApiError::Conflict {
            code: "public_url_not_configured",
            message: "SIGNHOOK_PUBLIC_URL is not set: the provider needs the public https URL to deliver to".to_owned(),
        });
    };
    let fast = watching::fast_interval(state.settings.reconcile.fast_interval.get(), provider.api_limits());
    let fast_text = crate::config::HumanDuration::from_secs(fast.as_secs());
    watching::watch(&state.store, provider.as_ref(), &agreement_id, &url, fast)
        .await
        .map_err(|error| match error {
            WatchingError::Provider(WatchError::Unsupported) => ApiError::BadRequest {
                code: "watch_not_supported",
                message: format!("{name} has no per-agreement webhooks"),
            },
            WatchingError::Provider(WatchError::Api(error)) if !matches!(error, PollError::Call(_)) => {
                provider_failed(&name, &agreement_id, error)
            }
            WatchingError::Provider(WatchError::Api(error)) => ApiError::ProviderFailed {
                code: "webhook_registration_failed",
                message: format!(
                    "{name}: {error}; the agreement is polled every {fast_text} and the registration retried"
                ),
            },
            error => watching_failed(&name, &agreement_id, error),
        })?;
    view(&state, provider.name(), &agreement_id).await
}

/// `DELETE /api/agreements/{provider}/{agreement_id}/watch`: deletes the
/// agreement's webhook at the provider (one the provider no longer knows
/// counts as deleted) and forgets it, or stops a pending registration.
#[utoipa::path(delete, path = "/api/agreements/{provider}/{agreement_id}/watch", tag = "agreements",
    params(("provider" = String, Path, description = "adobe-sign"), ("agreement_id" = String, Path)),
    responses(
        (status = 200, description = "no longer watched", body = AgreementView),
        (status = 400, description = "the provider has no per-agreement webhooks", body = ErrorBody),
        (status = 404, description = "no such agreement", body = ErrorBody),
        (status = 409, description = "no API credentials", body = ErrorBody),
        (status = 502, description = "the provider failed; the webhook is still on record", body = ErrorBody)),
    security(("admin_token" = [])))]
async fn unwatch(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<AgreementView>, ApiError> {
    let Path((name, agreement_id)) = path?;
    let provider = watchable(&state, &name)?.clone();
    watching::unwatch(&state.store, provider.as_ref(), &agreement_id)
        .await
        .map_err(|error| watching_failed(&name, &agreement_id, error))?;
    view(&state, provider.name(), &agreement_id).await
}

/// A watch or unwatch that did not happen, as the admin API reports it.
fn watching_failed(name: &str, agreement_id: &str, error: WatchingError) -> ApiError {
    match error {
        WatchingError::NotSeen => not_seen(name, agreement_id),
        WatchingError::Finished => ApiError::Conflict {
            code: "agreement_finished",
            message: format!("{name} agreement `{agreement_id}` is finished; there is nothing left to watch"),
        },
        // `watchable` checked that the provider has per-agreement webhooks.
        WatchingError::Provider(WatchError::Unsupported) => ApiError::Internal,
        WatchingError::Provider(WatchError::Api(error)) => provider_failed(name, agreement_id, error),
        WatchingError::Store(error) => ApiError::Store(error),
    }
}

/// `GET /api/providers`: what each provider is set up for and how it is doing.
#[utoipa::path(get, path = "/api/providers", tag = "providers",
    responses((status = 200, description = "every provider", body = ProvidersView)),
    security(("admin_token" = [])))]
async fn providers(State(state): State<AppState>) -> Result<Json<ProvidersView>, ApiError> {
    let activity = state.store.activity().all().await?;
    let mut counts = state.store.counts().per_provider().await?;
    let limits: Vec<(&str, ApiLimits)> = state
        .providers
        .iter()
        .filter_map(|p| Some((p.name(), p.api_limits()?)))
        .collect();
    let mut budgets = state.store.budgets().all(&limits).await?;
    let providers = state
        .providers
        .iter()
        .map(|provider| {
            let name = provider.name();
            let row = activity.iter().find(|row| row.provider == name);
            ProviderView {
                name,
                webhook_auth: WebhookAuth {
                    configured: provider.is_configured(),
                    kind: provider.webhook_auth(),
                },
                polling: provider.can_poll(),
                api: provider.api_limits().map(|limits| ApiBudget {
                    requests_per_hour: limits.per_hour,
                    min_interval_secs: limits.min_interval.as_secs(),
                    paused: budgets.iter().any(|b| b.account == name && b.paused_until.is_some()),
                    budget: budgets
                        .iter()
                        .position(|b| b.account == name)
                        .map(|i| budgets.swap_remove(i)),
                }),
                watch_supported: provider.can_watch(),
                last_webhook_at: row.and_then(|r| r.last_webhook_at).max(state.activity.last(name)),
                silent: row.is_some_and(|r| r.silent_since.is_some()),
                silent_since: row.and_then(|r| r.silent_since),
                agreements: counts.agreements.remove(name).unwrap_or_default(),
                events: counts.events.remove(name).unwrap_or_default(),
            }
        })
        .collect();
    Ok(Json(ProvidersView { providers }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProvidersView {
    pub providers: Vec<ProviderView>,
}

/// One provider in `GET /api/providers` (never a secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    /// Path name: `adobe-sign`, `boldsign`, `fusesign`.
    pub name: &'static str,
    pub webhook_auth: WebhookAuth,
    /// API credentials are configured: agreements are polled.
    pub polling: bool,
    /// The API account's budget, shared by every replica; `null` without
    /// API credentials.
    pub api: Option<ApiBudget>,
    /// `POST /api/agreements/{name}/{id}/watch` is available.
    pub watch_supported: bool,
    /// The last webhook any replica accepted (to within a second).
    pub last_webhook_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Open agreements and no webhook for `SIGNHOOK_SILENCE_AFTER`.
    pub silent: bool,
    pub silent_since: Option<chrono::DateTime<chrono::Utc>>,
    /// Agreements by status (`unknown`: not known yet).
    pub agreements: BTreeMap<String, i64>,
    /// Stored events by state.
    pub events: BTreeMap<String, i64>,
}

/// A provider API account's limits and what is left of them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiBudget {
    /// Requests an hour for every replica together
    /// (`SIGNHOOK_<PROVIDER>_API_REQUESTS_PER_HOUR`).
    pub requests_per_hour: u32,
    /// Shortest time between two identical GETs (Adobe Sign's minimum
    /// polling interval, `SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL`); 0: none.
    pub min_interval_secs: u64,
    /// The provider throttled the account: no replica calls it before
    /// `budget.paused_until`.
    pub paused: bool,
    pub budget: Option<BudgetView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAuth {
    /// Webhooks can be accepted (a client ID, secret or signature is set).
    pub configured: bool,
    /// `client_id` (Adobe Sign), `hmac_sha256` (BoldSign), `shared_signature` (FuseSign).
    pub kind: &'static str,
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
#[utoipa::path(get, path = "/api/events", tag = "events",
    params(("provider" = Option<String>, Query), ("agreement_id" = Option<String>, Query),
        ("state" = Option<String>, Query, description = "pending, processing, processed, failed or dead"),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 100"),
        ("cursor" = Option<String>, Query, description = "a next_cursor from an earlier page")),
    responses((status = 200, description = "events, newest first", body = EventPage),
        (status = 400, description = "invalid query", body = ErrorBody)),
    security(("admin_token" = [])))]
async fn events(
    State(state): State<AppState>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    let Query(query) = query?;
    if let Some(provider) = query.provider.as_deref() {
        known_provider(provider).map_err(|e| query::invalid(e.to_string()))?;
    }
    let state_filter = match query.state.as_deref() {
        None => None,
        Some(s) => Some(EventState::parse(s).ok_or_else(|| {
            query::invalid(format!(
                "state must be one of pending, processing, processed, failed, dead; got `{s}`"
            ))
        })?),
    };
    let limit = query::page_limit(query.limit.as_deref())?;
    let before = query::cursor(query.cursor.as_deref(), |s| s.parse::<i64>().ok())?;
    let page = state
        .store
        .events()
        .list(&EventFilter {
            providers: match &query.provider {
                Some(provider) => vec![provider.clone()],
                None => Providers::names().map(str::to_owned).collect(),
            },
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
#[utoipa::path(get, path = "/api/stats", tag = "events",
    responses((status = 200, description = "`{\"events\": {state: count}}`", body = Object)),
    security(("admin_token" = [])))]
async fn stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let counts = state.store.counts().by_state().await?;
    Ok(Json(json!({ "events": counts })))
}

/// `POST /api/events/{id}/replay`: 202, applied again in the background.
#[utoipa::path(post, path = "/api/events/{id}/replay", tag = "events",
    params(("id" = i64, Path)),
    responses((status = 202, description = "queued to be applied again", body = Object),
        (status = 404, description = "no such event", body = ErrorBody)),
    security(("admin_token" = [])))]
async fn replay(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(raw) = path?;
    let id = raw.parse::<i64>().map_err(|_| ApiError::BadRequest {
        code: "invalid_path",
        message: format!("event id `{raw}` is not an integer"),
    })?;
    if !state.store.queue().replay(id).await? {
        return Err(ApiError::NotFound(format!("no event with id {id}")));
    }
    state.worker.wake();
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id, "state": "pending" }))).into_response())
}
