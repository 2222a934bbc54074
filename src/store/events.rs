//! The events table (ingest with atomic dedupe) and the work queue beside it
//! (`event_queue`: one narrow row per event not yet applied): claiming, and
//! the retry / dead bookkeeping.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, Postgres, Transaction};

use super::{Store, StoreError};
use crate::{
    agreement::AgreementStatus,
    event::{Notification, Subject},
};

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

/// Events claimed by one open transaction; see [`Store::claim`].
#[derive(Debug)]
pub struct Claim {
    pub tx: Transaction<'static, Postgres>,
    pub events: Vec<ClaimedEvent>,
}

/// An event claimed by a worker, with what it needs to apply it.
#[derive(Debug, FromRow)]
pub struct ClaimedEvent {
    pub id: i64,
    pub provider: String,
    pub event_id: String,
    pub event_type: String,
    /// Loaded only when the event was not parsed on receipt (`parsed`).
    pub body: Option<Vec<u8>>,
    pub received_at: DateTime<Utc>,
    pub attempts: i32,
    parsed: bool,
    occurred_at: Option<DateTime<Utc>>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    subject_status: Option<String>,
    provider_status: Option<String>,
    subject_name: Option<String>,
}

impl ClaimedEvent {
    /// The notification as parsed when it was received, if it was; `None`
    /// means the body has to be parsed.
    pub fn stored_notification(&self) -> Option<Notification> {
        self.parsed.then(|| Notification {
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            occurred_at: self.occurred_at,
            tenant: None,
            subject: self.resource_id.clone().map(|id| Subject {
                kind: self.resource_type.clone().unwrap_or_default(),
                id,
                name: self.subject_name.clone(),
                status: self.subject_status.as_deref().and_then(AgreementStatus::parse),
                provider_status: self.provider_status.clone(),
            }),
        })
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

#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct StateCounts {
    pub pending: i64,
    pub processing: i64,
    pub processed: i64,
    pub failed: i64,
    pub dead: i64,
}

impl StateCounts {
    pub fn by_state(&self) -> [(&'static str, i64); 5] {
        [
            ("pending", self.pending),
            ("processing", self.processing),
            ("processed", self.processed),
            ("failed", self.failed),
            ("dead", self.dead),
        ]
    }
}

impl Store {
    /// How long the oldest event still waiting to be applied (not dead) has
    /// waited.
    pub async fn oldest_unprocessed_age(&self) -> Result<Duration, StoreError> {
        // The lowest id waiting is the oldest (ids are taken as events are
        // stored): one index probe, however long the queue.
        let seconds: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM now() - received_at)::float8 FROM events
              WHERE id = (SELECT min(id) FROM event_queue WHERE NOT dead)",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(Duration::from_secs_f64(seconds.unwrap_or(0.0).max(0.0)))
    }

    /// Claims up to `limit` runnable events, with bodies of at most
    /// `max_bytes` in all: new ones and retries whose time has come. They stay locked by the returned transaction — other workers
    /// and replicas skip them — until it commits with their outcome or ends
    /// any other way (rollback, a dropped connection, a worker killed
    /// mid-batch, or `idle_in_transaction_session_timeout`), which hands them
    /// straight back to the queue.
    pub async fn claim(&self, limit: u32, max_bytes: usize) -> Result<Claim, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Every statement of a batch touches a few rows per key it is given:
        // plan them as index lookups whatever the statistics say. With stale
        // statistics (a young or fast-growing table) the planner otherwise
        // scans: the claim took a bitmap scan of the whole queue plus a sort
        // (139 ms instead of 1.7 ms with 44,000 events pending), and the
        // batch's agreements update took 2.5 ms instead of 0.4 (most likely
        // a plan cached while `agreements` was small, scanning it). No JIT
        // either: the costs of disabled plan types pass its threshold, and
        // compiling took ~120 ms a batch.
        //
        // The batch commits without waiting for its WAL flush: nothing is
        // acknowledged on the strength of this commit (a webhook's 200 waits
        // for the synchronous commit that stored it), and a crash that loses
        // it loses the whole transaction, queue rows included, so the events
        // are claimed and applied again (idempotent). Saves one fsync per batch.
        sqlx::query(
            "SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true),
                    set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true),
                    set_config('enable_mergejoin', 'off', true), set_config('jit', 'off', true),
                    set_config('synchronous_commit', 'off', true)",
        )
        .execute(&mut *tx)
        .await?;
        let queued: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT q.id, CASE WHEN e.parsed THEN 0 ELSE octet_length(e.body) END::int8
               FROM event_queue q JOIN events e USING (id)
              WHERE NOT q.dead AND q.next_attempt_at <= now()
              ORDER BY q.id
              LIMIT $1
                FOR UPDATE OF q SKIP LOCKED",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        // Bodies go up to megabytes: load only as many as fit `max_bytes`
        // (always one). The rest stay locked until this transaction ends and
        // are then claimed again.
        let mut bytes = 0;
        let ids: Vec<i64> = queued
            .iter()
            .enumerate()
            .take_while(|(n, (_, len))| {
                bytes += *len as u64;
                *n == 0 || bytes <= max_bytes as u64
            })
            .map(|(_, (id, _))| *id)
            .collect();
        let events = match ids.is_empty() {
            true => Vec::new(),
            false => {
                sqlx::query_as(
                    "SELECT id, provider, event_id, event_type, CASE WHEN parsed THEN NULL ELSE body END AS body,
                            received_at, attempts, parsed, occurred_at, resource_type, resource_id, subject_status,
                            provider_status, subject_name
                       FROM events WHERE id = ANY($1) ORDER BY id",
                )
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?
            }
        };
        Ok(Claim { tx, events })
    }

    /// Vacuums the queue table. Every applied event leaves a dead row and
    /// index entry behind in it, and the claim walks the index from its
    /// oldest end: after 486,000 events and no vacuum yet (autovacuum looks
    /// at most once a minute) each claim read 1,300 index pages (2–8 ms).
    /// SKIP_LOCKED: if another replica or autovacuum is at it, skip.
    pub async fn vacuum_queue(&self) -> Result<(), StoreError> {
        sqlx::raw_sql("VACUUM (SKIP_LOCKED) event_queue")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Claims one event by id, for applying a failed batch's events one by
    /// one; `None` when another worker has it or it is no longer runnable.
    pub async fn claim_one(&self, id: i64) -> Result<Option<Transaction<'static, Postgres>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM event_queue WHERE id = $1 AND NOT dead FOR UPDATE SKIP LOCKED")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        Ok(found.map(|_| tx))
    }

    /// Records a failed attempt: retried after `retry_in`, or `dead` once it
    /// was the last attempt. The error is kept either way.
    pub async fn fail(&self, id: i64, error: &str, dead: bool, retry_in: Duration) -> Result<(), StoreError> {
        sqlx::query(
            "WITH queued AS (
                 UPDATE event_queue SET failed = true, dead = $3,
                                        next_attempt_at = now() + $4 * interval '1 millisecond'
                  WHERE id = $1 AND NOT dead
                  RETURNING id, next_attempt_at)
             UPDATE events e
                SET state = CASE WHEN $3 THEN 'dead' ELSE 'failed' END, attempts = attempts + 1,
                    last_error = $2, next_attempt_at = q.next_attempt_at
               FROM queued q
              WHERE e.id = q.id",
        )
        .bind(id)
        .bind(error)
        .bind(dead)
        .bind(retry_in.as_millis() as f64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Queues an event to be applied again. Applying is idempotent, so this
    /// is safe for any event, processed or dead. Its body is parsed again
    /// (by the version running then: replaying after a parser fix uses the
    /// fix). Returns false if unknown.
    pub async fn replay(&self, id: i64) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "WITH event AS (SELECT id, provider, state FROM events WHERE id = $1 FOR UPDATE),
                  queued AS (
                      INSERT INTO event_queue (id) SELECT id FROM event
                      ON CONFLICT (id) DO UPDATE SET next_attempt_at = now(), failed = false, dead = false),
                  uncounted AS (
                      INSERT INTO event_totals AS t (provider, shard, processed)
                      SELECT provider, 0, -1 FROM event WHERE state = 'processed'
                      ON CONFLICT (provider, shard) DO UPDATE SET processed = t.processed - 1)
             UPDATE events e SET state = 'pending', attempts = 0, next_attempt_at = now(), parsed = false
               FROM event WHERE e.id = event.id",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Newest first, keyset-paginated on id so pages stay stable while
    /// events keep arriving. Events not yet applied (pending, failed, dead)
    /// are found through the queue, however many processed ones there are.
    pub async fn list_events(&self, filter: &EventFilter) -> Result<EventPage, StoreError> {
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
        .fetch_all(&self.pool)
        .await?;
        let next_cursor = if events.len() as i64 > filter.limit {
            events.truncate(filter.limit as usize);
            events.last().map(|e| e.id.to_string())
        } else {
            None
        };
        Ok(EventPage { events, next_cursor })
    }

    pub async fn count_by_state(&self) -> Result<StateCounts, StoreError> {
        // Without counting the events table: events not yet applied through
        // the queue, applied ones from the worker's counters.
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT CASE WHEN dead THEN 'dead' WHEN failed THEN 'failed' ELSE 'pending' END, count(*)
               FROM event_queue GROUP BY 1
             UNION ALL
             SELECT 'processed', coalesce(sum(processed), 0)::int8 FROM event_totals",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut counts = StateCounts::default();
        for (state, n) in rows {
            match EventState::parse(&state) {
                Some(EventState::Pending) => counts.pending = n,
                Some(EventState::Processing) => counts.processing = n,
                Some(EventState::Processed) => counts.processed = n,
                Some(EventState::Failed) => counts.failed = n,
                Some(EventState::Dead) => counts.dead = n,
                None => {}
            }
        }
        Ok(counts)
    }
}
