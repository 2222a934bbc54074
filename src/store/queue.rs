//! The work queue (`event_queue`: one narrow row per event not yet applied,
//! beside its row in `events`): claiming batches and single events, the retry
//! and dead bookkeeping, replays, and the queue's own vacuum.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool, Postgres, Transaction};

use super::StoreError;
use crate::{
    agreement::AgreementStatus,
    event::{Notification, Parent, Subject},
};

/// Events claimed by one open transaction; see [`Queue::claim`].
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
    parent_type: Option<String>,
    parent_id: Option<String>,
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
                parent: self
                    .parent_type
                    .clone()
                    .zip(self.parent_id.clone())
                    .map(|(kind, id)| Parent { kind, id }),
            }),
        })
    }
}

/// The queue; see [`super::Store::queue`].
#[derive(Clone, Copy)]
pub struct Queue<'a> {
    pub(super) pool: &'a PgPool,
}

impl Queue<'_> {
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
                            provider_status, subject_name, parent_type, parent_id
                       FROM events WHERE id = ANY($1) ORDER BY id",
                )
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?
            }
        };
        Ok(Claim { tx, events })
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
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// Queues an event to be applied again. Applying is idempotent, so this
    /// is safe for any event, processed or dead. Its body is parsed again
    /// (by the version running then: replaying after a parser fix uses the
    /// fix). Returns false if unknown.
    ///
    /// Locks in the worker's order — the queue row, then the event, then the
    /// counters (see [`Queue::claim`] and `Agreements::apply_claimed`) — so a
    /// replay of an event a worker holds waits for that batch to commit
    /// instead of deadlocking with it. (Locking the event first, as one
    /// statement did, made PostgreSQL break the cycle by failing one side.)
    pub async fn replay(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Reading `events` here takes no lock; the upsert locks (or creates)
        // the queue row, waiting for a worker that has it claimed.
        let queued = sqlx::query(
            "INSERT INTO event_queue (id) SELECT id FROM events WHERE id = $1
             ON CONFLICT (id) DO UPDATE SET next_attempt_at = now(), failed = false, dead = false",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if queued.rows_affected() == 0 {
            return Ok(false);
        }
        // A new statement sees the state the worker committed meanwhile.
        sqlx::query(
            "WITH event AS (SELECT id, provider, state FROM events WHERE id = $1 FOR UPDATE),
                  uncounted AS (
                      INSERT INTO event_totals AS t (provider, shard, processed)
                      SELECT provider, 0, -1 FROM event WHERE state = 'processed'
                      ON CONFLICT (provider, shard) DO UPDATE SET processed = t.processed - 1)
             UPDATE events e SET state = 'pending', attempts = 0, next_attempt_at = now(), parsed = false
               FROM event WHERE e.id = event.id",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Vacuums the queue table. Every applied event leaves a dead row and
    /// index entry behind in it, and the claim walks the index from its
    /// oldest end: after 486,000 events and no vacuum yet (autovacuum looks
    /// at most once a minute) each claim read 1,300 index pages (2–8 ms).
    /// SKIP_LOCKED: if another replica or autovacuum is at it, skip.
    pub async fn vacuum(&self) -> Result<(), StoreError> {
        sqlx::raw_sql("VACUUM (SKIP_LOCKED) event_queue")
            .execute(self.pool)
            .await?;
        Ok(())
    }
}
