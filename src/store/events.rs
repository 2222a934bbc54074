//! The events table as the admin API reads it: one page of events, newest
//! first, never their bodies.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgPool};

use super::StoreError;

/// Processing state of a stored event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventState {
    Pending,
    Processing,
    Processed,
    Failed,
    Dead,
}

impl EventState {
    pub const ALL: [EventState; 5] = [
        Self::Pending,
        Self::Processing,
        Self::Processed,
        Self::Failed,
        Self::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Processed => "processed",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

/// An event as the admin API shows it (never the body).
#[derive(Debug, Serialize, FromRow, utoipa::ToSchema)]
pub struct EventRow {
    pub id: i64,
    pub provider: String,
    pub event_id: String,
    pub event_type: String,
    pub resource_type: Option<String>,
    pub agreement_id: Option<String>,
    pub tenant: Option<String>,
    pub state: String,
    pub attempts: i32,
    pub received_at: DateTime<Utc>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
pub struct EventFilter {
    pub provider: Option<String>,
    /// The providers whose history an agreement's events are looked up in
    /// (the history is indexed by provider first): the one filtered on, or
    /// every registered one.
    pub providers: Vec<String>,
    pub agreement_id: Option<String>,
    pub state: Option<EventState>,
    /// Return events with an id below this one (newest first).
    pub before: Option<i64>,
    pub limit: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub events: Vec<EventRow>,
    pub next_cursor: Option<String>,
}

/// The events table; see [`super::Store::events`].
#[derive(Clone, Copy)]
pub struct Events<'a> {
    pub(super) pool: &'a PgPool,
}

impl Events<'_> {
    /// Newest first, keyset-paginated on id so pages stay stable while
    /// events keep arriving. Events not yet applied (pending, failed, dead)
    /// are found through the queue, however many processed ones there are.
    pub async fn list(&self, filter: &EventFilter) -> Result<EventPage, StoreError> {
        let queued = !matches!(filter.state, None | Some(EventState::Processed));
        let from = match (filter.agreement_id.is_some(), queued) {
            // An agreement's events were applied (history) or wait (queue):
            // no index of events by agreement to maintain at every insert.
            (true, _) => {
                "events e WHERE e.id IN (
                     SELECT h.event_ref FROM agreement_history h WHERE h.provider = ANY($6) AND h.agreement_id = $2
                     UNION ALL
                     SELECT q.id FROM event_queue q JOIN events qe USING (id) WHERE qe.resource_id = $2) AND"
            }
            (false, true) => "event_queue q JOIN events e USING (id) WHERE",
            (false, false) => "events e WHERE",
        };
        let mut events: Vec<EventRow> = sqlx::query_as(&format!(
            "SELECT e.id, e.provider, e.event_id, e.event_type, e.resource_type, e.resource_id AS agreement_id,
                    e.tenant, e.state, e.attempts, e.received_at, e.occurred_at, e.next_attempt_at, e.last_error
               FROM {from} ($1::text IS NULL OR e.provider = $1)
                AND ($2::text IS NULL OR e.resource_id = $2)
                AND ($3::text IS NULL OR e.state = $3)
                AND ($4::bigint IS NULL OR e.id < $4)
              ORDER BY e.id DESC
              LIMIT $5"
        ))
        .bind(filter.provider.as_deref())
        .bind(filter.agreement_id.as_deref())
        .bind(filter.state.map(EventState::as_str))
        .bind(filter.before)
        .bind(filter.limit + 1)
        .bind(&filter.providers)
        .fetch_all(self.pool)
        .await?;
        let next_cursor = if events.len() as i64 > filter.limit {
            events.truncate(filter.limit as usize);
            events.last().map(|e| e.id.to_string())
        } else {
            None
        };
        Ok(EventPage { events, next_cursor })
    }
}
