//! Deliveries of changes to the application's destinations: the claim (due,
//! not leased, first of its agreement's pending ones, destination enabled;
//! `FOR UPDATE SKIP LOCKED` and a lease), outcomes (recorded only while the
//! lease is still the claimer's), and what the admin API does with them.
//! They are queued by [`super::record_changes`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgPool};

use super::{changes::CHANGE_COLUMNS, ChangeView, StoreError};

/// A destination as the dispatcher registers it at start.
#[derive(Debug, Clone)]
pub struct DestinationRecord<'a> {
    pub name: &'a str,
    pub url: &'a str,
    pub providers: &'a [String],
    pub statuses: &'a [String],
}

/// A delivery claimed for sending until `lease`.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    /// Attempts made before this one.
    pub attempts: i32,
    pub lease: DateTime<Utc>,
    pub change: ChangeView,
}

#[derive(FromRow)]
struct ClaimedRow {
    delivery_id: i64,
    delivery_attempts: i32,
    lease: DateTime<Utc>,
    #[sqlx(flatten)]
    change: ChangeView,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// 2xx.
    Delivered { status: u16 },
    /// Anything else: tried again after `retry_in`, or `failed` without it.
    Failed {
        status: Option<u16>,
        error: String,
        retry_in: Option<Duration>,
    },
}

/// One delivery as the admin API shows it.
#[derive(Debug, Serialize, FromRow, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    pub destination: String,
    pub change_id: i64,
    /// Its `webhook-id` header.
    pub webhook_id: String,
    pub provider: String,
    pub agreement_id: String,
    /// `pending` (waiting, in flight or to be retried), `delivered` or `failed`.
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// HTTP status of the last attempt; `null` when it got no answer.
    pub last_status: Option<i32>,
    /// The last failure: the start of the answer's body, or why there was none.
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const DELIVERY_COLUMNS: &str =
    "id, destination, change_id, 'chg_' || change_id AS webhook_id, provider, agreement_id, \
     state, attempts, CASE WHEN state = 'pending' THEN next_attempt_at END AS next_attempt_at, last_attempt_at, \
     last_status, last_error, delivered_at, created_at";

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryView>,
    /// Pass back as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub destination: Option<String>,
    pub state: Option<String>,
    pub agreement_id: Option<String>,
    /// Only deliveries with a smaller id.
    pub before: Option<i64>,
    pub limit: i64,
}

/// A destination and how it is doing.
#[derive(Debug, Serialize, FromRow, utoipa::ToSchema)]
pub struct DestinationView {
    pub name: String,
    pub url: String,
    /// Only these providers' changes; empty: all.
    pub providers: Vec<String>,
    /// Only changes to these statuses; empty: all.
    pub statuses: Vec<String>,
    /// In the running configuration (a removed destination is kept, and gets nothing new).
    pub configured: bool,
    /// Since when every attempt failed.
    pub failing_since: Option<DateTime<Utc>>,
    /// Disabled after failing for `SIGNHOOK_DELIVERY_DISABLE_AFTER`: nothing is sent until it is enabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Deliveries not yet delivered or failed.
    pub pending: i64,
    /// When the oldest of them was queued.
    pub oldest_pending_at: Option<DateTime<Utc>>,
}

/// Deliveries of one agreement to one destination, for the agreement view.
#[derive(Debug, Serialize, FromRow, utoipa::ToSchema)]
pub struct AgreementDeliveries {
    pub destination: String,
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
    pub last_delivered_at: Option<DateTime<Utc>>,
    /// The latest failure among the deliveries not delivered.
    pub last_error: Option<String>,
}

/// What [`Deliveries::recover`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// This many deliveries were queued.
    Queued(u64),
    /// No such destination.
    Unknown,
    /// Known, but no longer configured: nothing would send them.
    NotConfigured,
}

/// Lets the transaction commit without waiting for its WAL to reach disk
/// (`synchronous_commit = off`). Only for claims and 2xx outcomes: if
/// PostgreSQL itself crashes within its WAL writer's delay (well under a
/// second) after such a commit, the delivery is pending again and is sent
/// once more under the same `webhook-id` — what at-least-once allows — and
/// WAL order keeps an agreement's outcomes in order. Measured on a backlog
/// (scripts/bench-delivery.sh with BENCH_DRAIN=1, two runs each): 5,385 and
/// 5,742 deliveries/s with it, 4,532 and 4,061 waiting for the flush.
async fn without_waiting_for_flush(tx: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT set_config('synchronous_commit', 'off', true)")
        .execute(tx)
        .await?;
    Ok(())
}

/// The deliveries; see [`super::Store::deliveries`].
#[derive(Clone, Copy)]
pub struct Deliveries<'a> {
    pub(super) pool: &'a PgPool,
}

impl Deliveries<'_> {
    /// Writes the configured destinations (url and filter; whether disabled
    /// is kept) and marks the others as no longer configured. Replicas are
    /// expected to share one configuration.
    pub async fn register(&self, destinations: &[DestinationRecord<'_>]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for d in destinations {
            sqlx::query(
                "INSERT INTO delivery_destinations (name, url, providers, statuses, configured)
                 VALUES ($1, $2, $3, $4, true)
                 ON CONFLICT (name) DO UPDATE
                    SET url = EXCLUDED.url, providers = EXCLUDED.providers, statuses = EXCLUDED.statuses,
                        configured = true, updated_at = now()
                  WHERE (delivery_destinations.url, delivery_destinations.providers, delivery_destinations.statuses,
                         delivery_destinations.configured)
                        IS DISTINCT FROM (EXCLUDED.url, EXCLUDED.providers, EXCLUDED.statuses, true)",
            )
            .bind(d.name)
            .bind(d.url)
            .bind(d.providers)
            .bind(d.statuses)
            .execute(&mut *tx)
            .await?;
        }
        let names: Vec<&str> = destinations.iter().map(|d| d.name).collect();
        sqlx::query(
            "UPDATE delivery_destinations SET configured = false, updated_at = now()
              WHERE configured AND NOT (name = ANY ($1))",
        )
        .bind(&names)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims up to `limit` deliveries to `destination` for `lease`: due,
    /// not leased, and each the first pending one of its agreement to this
    /// destination (by change), so an agreement's changes go one at a time,
    /// in order; nothing while the destination is disabled.
    pub async fn claim(
        &self,
        destination: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let mut tx = self.pool.begin().await?;
        without_waiting_for_flush(&mut tx).await?;
        // Index lookups whatever the statistics say, as the event queue's
        // claim does: on a young table the planner estimated one row
        // everywhere, took the due index for the per-agreement check and
        // sorted, walking every pending delivery for each candidate (113 ms
        // a claim with 6,500 pending instead of 4 ms).
        sqlx::query(
            "SELECT set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true),
                    set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true),
                    set_config('enable_mergejoin', 'off', true), set_config('jit', 'off', true)",
        )
        .execute(&mut *tx)
        .await?;
        let rows: Vec<ClaimedRow> = sqlx::query_as(&format!(
            "WITH claimed AS (
                 UPDATE deliveries d SET locked_until = now() + $3
                  WHERE d.id IN (
                        SELECT x.id FROM deliveries x
                         WHERE x.destination = $1 AND x.state = 'pending' AND x.next_attempt_at <= now()
                           AND (x.locked_until IS NULL OR x.locked_until <= now())
                           -- The first pending one of its agreement: written as the
                           -- first row in the lane index's order, so it is one index
                           -- probe whatever the statistics say (an anti-join was
                           -- planned on the due index and walked every pending row).
                           AND (x.change_id, x.id) = (
                               SELECT p.change_id, p.id FROM deliveries p
                                WHERE p.destination = x.destination AND p.provider = x.provider
                                  AND p.agreement_id = x.agreement_id AND p.state = 'pending'
                                ORDER BY p.change_id, p.id
                                LIMIT 1)
                           AND EXISTS (SELECT 1 FROM delivery_destinations dst
                                        WHERE dst.name = x.destination AND dst.disabled_at IS NULL)
                         ORDER BY x.next_attempt_at, x.id
                         LIMIT $2
                           FOR UPDATE OF x SKIP LOCKED)
                  RETURNING d.id, d.change_id, d.attempts, d.locked_until)
             SELECT claimed.id AS delivery_id, claimed.attempts AS delivery_attempts, claimed.locked_until AS lease,
                    {CHANGE_COLUMNS}
               FROM claimed JOIN changes c ON c.id = claimed.change_id
              ORDER BY claimed.id"
        ))
        .bind(destination)
        .bind(limit as i64)
        .bind(lease)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|row| ClaimedDelivery {
                id: row.delivery_id,
                attempts: row.delivery_attempts,
                lease: row.lease,
                change: row.change,
            })
            .collect())
    }

    /// Records deliveries that got a 2xx, each only if its lease is still
    /// the claimer's (`(delivery id, lease, HTTP status)`), in one statement:
    /// the dispatcher collects what ended while the previous write ran, as
    /// ingest's group commit does, so a busy destination costs one commit
    /// per batch instead of one per delivery. Ends their destinations'
    /// failure streaks.
    pub async fn record_delivered(&self, delivered: &[(i64, DateTime<Utc>, u16)]) -> Result<(), StoreError> {
        if delivered.is_empty() {
            return Ok(());
        }
        // Rows in one order, so two writers never wait on each other in a circle.
        let mut rows = delivered.to_vec();
        rows.sort_unstable_by_key(|(id, ..)| *id);
        let mut tx = self.pool.begin().await?;
        without_waiting_for_flush(&mut tx).await?;
        sqlx::query(
            "WITH d AS (
                 UPDATE deliveries d
                    SET state = 'delivered', attempts = d.attempts + 1, delivered_at = now(),
                        last_attempt_at = now(), last_status = u.status, last_error = NULL, locked_until = NULL
                   FROM unnest($1::bigint[], $2::timestamptz[], $3::int[]) AS u(id, lease, status)
                  WHERE d.id = u.id AND d.locked_until = u.lease
                  RETURNING d.destination)
             UPDATE delivery_destinations dst SET failing_since = NULL
              WHERE dst.failing_since IS NOT NULL AND dst.name IN (SELECT destination FROM d)",
        )
        .bind(rows.iter().map(|(id, ..)| *id).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, lease, _)| *lease).collect::<Vec<_>>())
        .bind(rows.iter().map(|(.., status)| i32::from(*status)).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Gives back claims that were not sent (`(delivery id, lease)`), if
    /// still the claimer's: due again at once.
    pub async fn release(&self, claims: &[(i64, DateTime<Utc>)]) -> Result<(), StoreError> {
        if claims.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE deliveries d SET locked_until = NULL
               FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, lease)
              WHERE d.id = u.id AND d.locked_until = u.lease",
        )
        .bind(claims.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(claims.iter().map(|(_, lease)| *lease).collect::<Vec<_>>())
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// Records how an attempt ended, if `claim` is still the claimer's, and
    /// keeps the destination's failure streak; a destination whose every
    /// attempt failed for `disable_after` is disabled. Returns true when this
    /// attempt disabled it.
    pub async fn record(
        &self,
        claim: &ClaimedDelivery,
        attempt: &Attempt,
        disable_after: Duration,
    ) -> Result<bool, StoreError> {
        match attempt {
            Attempt::Delivered { status } => {
                self.record_delivered(&[(claim.id, claim.lease, *status)]).await?;
                Ok(false)
            }
            Attempt::Failed {
                status,
                error,
                retry_in,
            } => {
                let disabled: Option<bool> = sqlx::query_scalar(
                    "WITH d AS (
                         UPDATE deliveries
                            SET state = CASE WHEN $5 THEN 'pending' ELSE 'failed' END, attempts = attempts + 1,
                                last_attempt_at = now(), last_status = $3, last_error = $4, locked_until = NULL,
                                next_attempt_at = now() + $6
                          WHERE id = $1 AND locked_until = $2
                          RETURNING destination)
                     UPDATE delivery_destinations dst
                        SET failing_since = coalesce(dst.failing_since, now()),
                            disabled_at = CASE WHEN dst.disabled_at IS NULL AND dst.failing_since <= now() - $7
                                               THEN now() ELSE dst.disabled_at END
                       FROM d WHERE dst.name = d.destination
                     RETURNING dst.disabled_at IS NOT NULL AND dst.disabled_at = now()",
                )
                .bind(claim.id)
                .bind(claim.lease)
                .bind(status.map(i32::from))
                .bind(error)
                .bind(retry_in.is_some())
                .bind(retry_in.unwrap_or_default())
                .bind(disable_after)
                .fetch_optional(self.pool)
                .await?;
                Ok(disabled.unwrap_or(false))
            }
        }
    }

    /// Deliveries matching `filter`, newest first.
    pub async fn list(&self, filter: &DeliveryFilter) -> Result<DeliveryPage, StoreError> {
        let mut deliveries: Vec<DeliveryView> = sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries
              WHERE ($1::text IS NULL OR destination = $1) AND ($2::text IS NULL OR state = $2)
                AND ($3::text IS NULL OR agreement_id = $3) AND ($4::bigint IS NULL OR id < $4)
              ORDER BY id DESC LIMIT $5"
        ))
        .bind(&filter.destination)
        .bind(&filter.state)
        .bind(&filter.agreement_id)
        .bind(filter.before)
        .bind(filter.limit + 1)
        .fetch_all(self.pool)
        .await?;
        let more = deliveries.len() as i64 > filter.limit;
        deliveries.truncate(filter.limit as usize);
        let next_cursor = more.then(|| deliveries.last().map(|d| d.id.to_string())).flatten();
        Ok(DeliveryPage {
            deliveries,
            next_cursor,
        })
    }

    pub async fn get(&self, id: i64) -> Result<Option<DeliveryView>, StoreError> {
        Ok(
            sqlx::query_as(&format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool)
                .await?,
        )
    }

    /// Makes a delivery due now with a fresh retry schedule, whatever its
    /// state (a delivered one is sent again, under the same webhook-id).
    /// `None`: no such delivery; `Some(false)`: it is in flight right now,
    /// left as it is.
    pub async fn retry(&self, id: i64) -> Result<Option<bool>, StoreError> {
        let found: Option<bool> = sqlx::query_scalar(
            "WITH target AS (SELECT id, locked_until IS NOT NULL AND locked_until > now() AS in_flight
                               FROM deliveries WHERE id = $1 FOR UPDATE),
                  done AS (UPDATE deliveries d
                              SET state = 'pending', attempts = 0, next_attempt_at = now(), delivered_at = NULL
                             FROM target WHERE d.id = target.id AND NOT target.in_flight)
             SELECT NOT in_flight FROM target",
        )
        .bind(id)
        .fetch_optional(self.pool)
        .await?;
        Ok(found)
    }

    /// Queues every change recorded at or after `since` that matches the
    /// destination's filter to it again (same webhook-ids), except those
    /// already waiting to go. They go in each agreement's change order.
    pub async fn recover(&self, destination: &str, since: DateTime<Utc>) -> Result<Recovery, StoreError> {
        let mut tx = self.pool.begin().await?;
        let configured: Option<bool> =
            sqlx::query_scalar("SELECT configured FROM delivery_destinations WHERE name = $1")
                .bind(destination)
                .fetch_optional(&mut *tx)
                .await?;
        match configured {
            None => return Ok(Recovery::Unknown),
            Some(false) => return Ok(Recovery::NotConfigured),
            Some(true) => {}
        }
        let queued = sqlx::query(
            "INSERT INTO deliveries (destination, change_id, provider, agreement_id)
             SELECT dst.name, c.id, c.provider, c.agreement_id
               FROM changes c JOIN delivery_destinations dst ON dst.name = $1
              WHERE c.created_at >= $2
                AND (cardinality(dst.providers) = 0 OR c.provider = ANY (dst.providers))
                AND (cardinality(dst.statuses) = 0 OR c.status = ANY (dst.statuses))
                AND NOT EXISTS (SELECT 1 FROM deliveries p
                                 WHERE p.destination = dst.name AND p.change_id = c.id AND p.state = 'pending')
              ORDER BY c.id",
        )
        .bind(destination)
        .bind(since)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(Recovery::Queued(queued))
    }

    /// Enables a destination again (its failure streak starts over);
    /// `None` for an unknown one.
    pub async fn enable(&self, destination: &str) -> Result<Option<DestinationView>, StoreError> {
        let updated = sqlx::query(
            "UPDATE delivery_destinations SET disabled_at = NULL, failing_since = NULL, updated_at = now()
              WHERE name = $1",
        )
        .bind(destination)
        .execute(self.pool)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(None);
        }
        Ok(self.destinations().await?.into_iter().find(|d| d.name == destination))
    }

    /// Every destination ever configured, with its backlog.
    pub async fn destinations(&self) -> Result<Vec<DestinationView>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT dst.name, dst.url, dst.providers, dst.statuses, dst.configured, dst.failing_since,
                    dst.disabled_at, coalesce(b.pending, 0) AS pending, b.oldest_pending_at
               FROM delivery_destinations dst
               LEFT JOIN LATERAL (SELECT count(*) AS pending, min(created_at) AS oldest_pending_at
                                    FROM deliveries WHERE destination = dst.name AND state = 'pending') b ON true
              ORDER BY dst.name",
        )
        .fetch_all(self.pool)
        .await?)
    }

    /// An agreement's deliveries, per destination.
    pub async fn for_agreement(
        &self,
        provider: &str,
        agreement_id: &str,
    ) -> Result<Vec<AgreementDeliveries>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT destination,
                    count(*) FILTER (WHERE state = 'pending') AS pending,
                    count(*) FILTER (WHERE state = 'delivered') AS delivered,
                    count(*) FILTER (WHERE state = 'failed') AS failed,
                    max(delivered_at) AS last_delivered_at,
                    (array_agg(last_error ORDER BY id DESC)
                        FILTER (WHERE state <> 'delivered' AND last_error IS NOT NULL))[1] AS last_error
               FROM deliveries WHERE provider = $1 AND agreement_id = $2
              GROUP BY destination ORDER BY destination",
        )
        .bind(provider)
        .bind(agreement_id)
        .fetch_all(self.pool)
        .await?)
    }
}
