//! `GET /api/agreements`: every agreement, most recently updated first, for
//! an application or operator that needs more than one at a time.

use axum::{
    extract::{rejection::QueryRejection, Query, State},
    Json,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{
    admin::known_provider,
    error::{ApiError, ErrorBody},
    AppState,
};
use crate::{
    agreement::AgreementStatus,
    store::{parse_listing_cursor, AgreementFilter, AgreementPage},
};

const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    provider: Option<String>,
    status: Option<String>,
    updated_after: Option<String>,
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn bad(message: String) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_query",
        message,
    }
}

/// `GET /api/agreements?provider=&status=&updated_after=&q=&limit=&cursor=`
#[utoipa::path(get, path = "/api/agreements", tag = "agreements",
    params(("provider" = Option<String>, Query, description = "adobe-sign, boldsign or fusesign"),
        ("status" = Option<String>, Query, description = "draft, in_progress, completed, declined, cancelled, expired or failed"),
        ("updated_after" = Option<String>, Query, description = "RFC 3339: only agreements updated after it"),
        ("q" = Option<String>, Query, description = "a prefix of the agreement id, or of its name (any case)"),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 100"),
        ("cursor" = Option<String>, Query, description = "a next_cursor from an earlier page")),
    responses((status = 200, description = "agreements, most recently updated first", body = AgreementPage),
        (status = 400, description = "invalid query", body = ErrorBody)),
    security(("admin_token" = [])))]
pub(super) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<AgreementPage>, ApiError> {
    let Query(query) = query?;
    let nonempty = |value: Option<String>| value.filter(|v| !v.is_empty());
    let provider = nonempty(query.provider);
    if let Some(provider) = provider.as_deref() {
        known_provider(provider).map_err(|e| bad(e.to_string()))?;
    }
    let status = nonempty(query.status);
    if let Some(status) = status.as_deref().filter(|s| AgreementStatus::parse(s).is_none()) {
        let known: Vec<&str> = AgreementStatus::ALL.iter().map(|s| s.as_str()).collect();
        return Err(bad(format!(
            "status must be one of {}; got `{status}`",
            known.join(", ")
        )));
    }
    let updated_after = match nonempty(query.updated_after) {
        None => None,
        Some(raw) => Some(
            DateTime::parse_from_rfc3339(raw.trim())
                .map_err(|e| bad(format!("updated_after `{raw}` is not an RFC 3339 time ({e})")))?
                .with_timezone(&Utc),
        ),
    };
    let limit = match query.limit.as_deref() {
        None | Some("") => DEFAULT_PAGE,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| bad(format!("limit must be an integer from 1 to {MAX_PAGE}; got `{s}`")))?,
    };
    let after = match nonempty(query.cursor) {
        None => None,
        Some(raw) => Some(
            parse_listing_cursor(&raw).ok_or_else(|| bad(format!("cursor `{raw}` is not one this API returned")))?,
        ),
    };
    let page = state
        .store
        .agreements()
        .list(&AgreementFilter {
            provider,
            status,
            updated_after,
            q: nonempty(query.q),
            after,
            limit,
        })
        .await?;
    Ok(Json(page))
}
