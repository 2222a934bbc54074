//! `GET /api/changes`: the change feed (status changes and stored
//! documents). The application follows it with a cursor instead of (or
//! besides) receiving webhooks; a long poll answers as soon as a change is
//! numbered, on any replica.

use std::time::Duration;

use axum::{
    extract::{rejection::QueryRejection, Query, State},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::query;
use super::{
    admin::known_provider,
    error::{ApiError, ErrorBody},
    AppState,
};
use crate::{changes::SAFETY_TICK, store::ChangeView};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;
const MAX_WAIT_SECS: u64 = 60;

#[derive(Debug, Deserialize)]
pub(super) struct ChangesQuery {
    after: Option<String>,
    limit: Option<String>,
    provider: Option<String>,
    wait: Option<String>,
}

/// A page of the feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangePage {
    /// In cursor order (the order changes committed in).
    pub changes: Vec<ChangeView>,
    /// Pass it as `after` for the next page: the last change's cursor, or
    /// `after` itself when the page is empty.
    pub next_cursor: i64,
}

/// `GET /api/changes?after=&limit=&provider=&wait=`: changes after the
/// cursor `after` (default 0, the beginning), oldest first, each with its
/// `type`: `agreement.status_changed`, or `document.available` (with its
/// `documents`) once a completed agreement's copy is stored. With `wait`
/// (seconds, at most 60) and nothing to return, the request is held until a
/// change arrives or `wait` has passed (then an empty page).
///
/// Never skips a change: cursors are given out after commit, in commit
/// order, so a change that commits late gets a cursor above every cursor
/// already handed out. Changes of one agreement appear in the order they
/// happened to it.
#[utoipa::path(get, path = "/api/changes", tag = "changes",
    params(("after" = Option<i64>, Query, description = "a cursor from an earlier page; default 0"),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 100"),
        ("provider" = Option<String>, Query, description = "adobe-sign, boldsign or fusesign"),
        ("wait" = Option<u64>, Query, description = "long poll: seconds (0 to 60) to wait for a change when there is none")),
    responses((status = 200, description = "changes after the cursor", body = ChangePage),
        (status = 400, description = "invalid query", body = ErrorBody)),
    security(("admin_token" = [])))]
pub(super) async fn changes(
    State(state): State<AppState>,
    query: Result<Query<ChangesQuery>, QueryRejection>,
) -> Result<Json<ChangePage>, ApiError> {
    let Query(query) = query?;
    let after = parse(query.after.as_deref(), "after", 0, 0..=i64::MAX)?;
    let limit = parse(query.limit.as_deref(), "limit", DEFAULT_LIMIT, 1..=MAX_LIMIT)?;
    let wait = parse(query.wait.as_deref(), "wait", 0, 0..=MAX_WAIT_SECS as i64)?;
    if let Some(provider) = query.provider.as_deref() {
        known_provider(provider).map_err(|e| query::invalid(e.to_string()))?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait as u64);
    // Subscribed before the first read, so a numbering between the read and
    // the wait is not missed.
    let mut numbered = state.changes.subscribe();
    loop {
        numbered.borrow_and_update();
        let changes = state
            .store
            .changes()
            .after(after, query.provider.as_deref(), limit)
            .await?;
        let now = tokio::time::Instant::now();
        if !changes.is_empty() || now >= deadline || state.changes.closed().is_cancelled() {
            let next_cursor = changes.last().and_then(|c| c.cursor).unwrap_or(after);
            return Ok(Json(ChangePage { changes, next_cursor }));
        }
        // Woken by a numbering; looks again every tick anyway, in case the
        // replica's LISTEN connection is down.
        tokio::select! {
            _ = numbered.changed() => {}
            _ = state.changes.closed().cancelled() => {}
            _ = tokio::time::sleep_until(deadline.min(now + SAFETY_TICK)) => {}
        }
    }
}

/// A whole-number query parameter within `range`, or `default` when absent.
fn parse(value: Option<&str>, name: &str, default: i64, range: std::ops::RangeInclusive<i64>) -> Result<i64, ApiError> {
    match value {
        None | Some("") => Ok(default),
        Some(raw) => raw.parse::<i64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
            query::invalid(format!(
                "{name} must be a whole number from {} to {}; got `{raw}`",
                range.start(),
                range.end()
            ))
        }),
    }
}
