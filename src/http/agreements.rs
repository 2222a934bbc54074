//! `GET /api/agreements`: every agreement, most recently updated first, for
//! an application or operator that needs more than one at a time.

use axum::{
    extract::{rejection::QueryRejection, Query, State},
    Json,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::query;
use super::{
    admin::known_provider,
    error::{ApiError, ErrorBody},
    AppState,
};
use crate::{
    agreement::AgreementStatus,
    store::{parse_listing_cursor, AgreementFilter, AgreementPage},
};

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    provider: Option<String>,
    status: Option<String>,
    updated_after: Option<String>,
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
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
        known_provider(provider).map_err(|e| query::invalid(e.to_string()))?;
    }
    let status = nonempty(query.status);
    if let Some(status) = status.as_deref().filter(|s| AgreementStatus::parse(s).is_none()) {
        let known: Vec<&str> = AgreementStatus::ALL.iter().map(|s| s.as_str()).collect();
        return Err(query::invalid(format!(
            "status must be one of {}; got `{status}`",
            known.join(", ")
        )));
    }
    let updated_after = match nonempty(query.updated_after) {
        None => None,
        Some(raw) => Some(
            DateTime::parse_from_rfc3339(raw.trim())
                .map_err(|e| query::invalid(format!("updated_after `{raw}` is not an RFC 3339 time ({e})")))?
                .with_timezone(&Utc),
        ),
    };
    let limit = query::page_limit(query.limit.as_deref())?;
    let after = query::cursor(query.cursor.as_deref(), parse_listing_cursor)?;
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
