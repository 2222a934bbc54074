//! Agreements and their history. Events are applied in batches, one
//! transaction per batch: each event locks its agreement row, is recorded in
//! history (once: UNIQUE on the event), and moves the status if the transition
//! rules allow; then the whole batch is marked processed. Rows are locked in
//! one global order (provider, agreement id), so concurrent batches — other
//! worker loops, other replicas — wait for each other but never deadlock.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection};

use super::{ClaimedEvent, Store, StoreError};
use crate::{
    agreement::{self, AgreementStatus, Current},
    providers::{Notification, Subject},
};

#[derive(Debug, Serialize, FromRow, utoipa::ToSchema)]
pub struct AgreementView {
    pub provider: String,
    pub agreement_id: String,
    pub resource_type: String,
    pub status: Option<String>,
    pub provider_status: Option<String>,
    pub name: Option<String>,
    pub last_event_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// The per-agreement webhook registered at the provider, if any.
    pub webhook_id: Option<String>,
    /// Registering its webhook failed: polled on the fast schedule and the
    /// registration retried.
    pub watch_pending: bool,
    pub last_polled_at: Option<DateTime<Utc>>,
    /// When the reconciler polls it next, if earlier or later than "when stale".
    pub next_poll_at: Option<DateTime<Utc>>,
    /// Failed polls in a row, and the last failure.
    pub poll_failures: i32,
    pub last_poll_error: Option<String>,
    #[sqlx(skip)]
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Serialize, FromRow, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// The provider's event id; none for a status read by polling.
    pub event_id: Option<String>,
    pub event_type: String,
    pub status: Option<String>,
    pub provider_status: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub source: String,
}

/// Counter rows per provider in `event_totals`; a batch picks one by its
/// first event's id.
const TOTALS_SHARDS: i64 = 16;

impl Store {
    /// Applies claimed events (each with its parsed notification) inside the
    /// transaction that claimed them and marks them processed, in four
    /// statements whatever the batch size: lock (or create) every agreement
    /// the batch touches, record the history rows, write each agreement's new
    /// state, mark the events processed. Applying an event twice changes
    /// nothing the second time: only events whose history row is new move
    /// their agreement. The caller commits.
    pub async fn apply_claimed(
        tx: &mut PgConnection,
        items: &[(&ClaimedEvent, &Notification)],
    ) -> Result<(), StoreError> {
        // Each agreement's events in the order they happened; agreements in
        // one global order, so concurrent batches lock rows in the same order
        // and wait for each other instead of deadlocking.
        let mut applied: Vec<Applied> = items
            .iter()
            .filter_map(|(event, notification)| {
                let subject = notification.subject.as_ref()?;
                Some(Applied {
                    event,
                    subject,
                    occurred_at: notification.occurred_at.unwrap_or(event.received_at),
                })
            })
            .collect();
        applied.sort_by(|a, b| {
            (&a.event.provider, &a.subject.id, a.occurred_at, a.event.id).cmp(&(
                &b.event.provider,
                &b.subject.id,
                b.occurred_at,
                b.event.id,
            ))
        });
        if !applied.is_empty() {
            apply_sorted(tx, &applied).await?;
        }
        let ids: Vec<i64> = items.iter().map(|(e, _)| e.id).collect();
        // Counted in provider order, the last lock the batch takes, so two
        // batches on the same shard never wait for each other in a cycle.
        sqlx::query(
            "WITH done AS (DELETE FROM event_queue WHERE id = ANY($1)),
                  applied AS (
                      UPDATE events SET state = 'processed', processed_at = now(), attempts = attempts + 1,
                                        last_error = NULL
                       WHERE id = ANY($1) AND state <> 'processed'
                       RETURNING provider)
             INSERT INTO event_totals AS t (provider, shard, processed)
             SELECT provider, $2, count(*) FROM applied GROUP BY provider ORDER BY provider
             ON CONFLICT (provider, shard) DO UPDATE SET processed = t.processed + EXCLUDED.processed",
        )
        .bind(&ids)
        .bind((ids.first().copied().unwrap_or_default() % TOTALS_SHARDS) as i16)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Applies a status read from the provider's API at `observed_at`, with the
    /// same transition rules as events. A history entry (source `poll`) is
    /// written only when the provider's status differs from the one recorded,
    /// so polling an unchanged agreement adds nothing. Returns whether it
    /// wrote one (the provider's status changed).
    pub async fn apply_poll(
        &self,
        provider: &str,
        subject: &Subject,
        observed_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (status, status_at, provider_status): (Option<String>, Option<DateTime<Utc>>, Option<String>) =
            sqlx::query_as(
                "INSERT INTO agreements (provider, agreement_id, resource_type) VALUES ($1, $2, $3)
                 ON CONFLICT (provider, agreement_id) DO UPDATE SET provider = EXCLUDED.provider
                 RETURNING status, status_at, provider_status",
            )
            .bind(provider)
            .bind(&subject.id)
            .bind(&subject.kind)
            .fetch_one(&mut *tx)
            .await?;
        let observed = (
            subject.status.map(|s| s.as_str().to_owned()),
            subject.provider_status.clone(),
        );
        let mut unchanged = (status.clone(), provider_status) == observed;
        if !unchanged {
            // A status the rules do not adopt (e.g. "in progress" after a
            // terminal one) is recorded once, not at every poll.
            let last_poll: Option<(Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT status, provider_status FROM agreement_history
                  WHERE provider = $1 AND agreement_id = $2 AND source = 'poll'
                  ORDER BY id DESC LIMIT 1",
            )
            .bind(provider)
            .bind(&subject.id)
            .fetch_optional(&mut *tx)
            .await?;
            unchanged = last_poll.as_ref() == Some(&observed);
        }
        if !unchanged {
            let current = status
                .as_deref()
                .and_then(AgreementStatus::parse)
                .zip(status_at)
                .map(|(status, at)| Current { status, at });
            let moves = subject
                .status
                .filter(|incoming| agreement::transition(current, *incoming, observed_at));
            sqlx::query(
                "WITH recorded AS (
                     INSERT INTO agreement_history (provider, agreement_id, event_type, status, provider_status,
                                                    occurred_at, source)
                     VALUES ($1, $2, 'poll', $7, $4, $5, 'poll'))
                 UPDATE agreements
                    SET status = coalesce($3, status),
                        provider_status = CASE WHEN $3 IS NULL THEN provider_status ELSE $4 END,
                        status_at = CASE WHEN $3 IS NULL THEN status_at ELSE $5 END,
                        name = coalesce($6, name),
                        updated_at = now()
                  WHERE provider = $1 AND agreement_id = $2",
            )
            .bind(provider)
            .bind(&subject.id)
            .bind(moves.map(AgreementStatus::as_str))
            .bind(&subject.provider_status)
            .bind(observed_at)
            .bind(&subject.name)
            .bind(subject.status.map(AgreementStatus::as_str))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(!unchanged)
    }

    pub async fn agreement(&self, provider: &str, agreement_id: &str) -> Result<Option<AgreementView>, StoreError> {
        let Some(mut view): Option<AgreementView> = sqlx::query_as(
            "SELECT provider, agreement_id, resource_type, status, provider_status, name, last_event_at, updated_at,
                    webhook_id, watch_pending, last_polled_at, next_poll_at, poll_failures, last_poll_error
               FROM agreements WHERE provider = $1 AND agreement_id = $2",
        )
        .bind(provider)
        .bind(agreement_id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        view.history = sqlx::query_as(
            "SELECT event_id, event_type, status, provider_status, occurred_at, source
               FROM agreement_history WHERE provider = $1 AND agreement_id = $2
              ORDER BY occurred_at, id",
        )
        .bind(provider)
        .bind(agreement_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(view))
    }
}

/// One event with an agreement to apply, and the time it is ordered by
/// (events without a provider time are ordered by when we got them).
struct Applied<'a> {
    event: &'a ClaimedEvent,
    subject: &'a Subject,
    occurred_at: DateTime<Utc>,
}

/// An agreement row as the batch found it and leaves it.
#[derive(FromRow)]
struct AgreementState {
    provider: String,
    agreement_id: String,
    status: Option<String>,
    status_at: Option<DateTime<Utc>>,
    provider_status: Option<String>,
    name: Option<String>,
    last_event_at: Option<DateTime<Utc>>,
    #[sqlx(skip)]
    changed: bool,
}

impl AgreementState {
    /// Folds one newly recorded event in, with the same rules whatever order
    /// events arrive in (see [`agreement::transition`]).
    fn apply(&mut self, subject: &Subject, at: DateTime<Utc>) {
        let current = self
            .status
            .as_deref()
            .and_then(AgreementStatus::parse)
            .zip(self.status_at)
            .map(|(status, at)| Current { status, at });
        if let Some(incoming) = subject.status.filter(|s| agreement::transition(current, *s, at)) {
            self.status = Some(incoming.as_str().to_owned());
            self.status_at = Some(at);
            self.provider_status.clone_from(&subject.provider_status);
        }
        // The name of the latest event wins; an older event only fills a gap.
        let latest = self.last_event_at.map_or(true, |last| at >= last);
        if (subject.name.is_some() && latest) || self.name.is_none() {
            self.name = subject.name.clone().or(self.name.take());
        }
        self.last_event_at = Some(self.last_event_at.map_or(at, |last| last.max(at)));
        self.changed = true;
    }
}

/// The three statements of a batch with agreements; `applied` is sorted by
/// (provider, agreement id, time, event id).
async fn apply_sorted(tx: &mut PgConnection, applied: &[Applied<'_>]) -> Result<(), StoreError> {
    // 1. Lock every agreement (creating the missing ones) in sorted order.
    //    DO UPDATE rather than DO NOTHING so existing rows are locked and
    //    returned too: an agreement's events are applied by one batch at a
    //    time, whichever worker or replica holds them.
    let mut keys: Vec<(&str, &str, &str)> = applied
        .iter()
        .map(|a| {
            (
                a.event.provider.as_str(),
                a.subject.id.as_str(),
                a.subject.kind.as_str(),
            )
        })
        .collect();
    keys.dedup_by(|a, b| (a.0, a.1) == (b.0, b.1));
    let rows: Vec<AgreementState> = sqlx::query_as(
        "INSERT INTO agreements (provider, agreement_id, resource_type)
         SELECT p, a, r FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(p, a, r, n) ORDER BY n
         ON CONFLICT (provider, agreement_id) DO UPDATE SET provider = EXCLUDED.provider
         RETURNING provider, agreement_id, status, status_at, provider_status, name, last_event_at",
    )
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.2).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let mut states: HashMap<(String, String), AgreementState> = rows
        .into_iter()
        .map(|row| ((row.provider.clone(), row.agreement_id.clone()), row))
        .collect();

    // 2. History, once per event: a replayed event's row is already there and
    //    comes back as not new, so it moves nothing.
    let new: HashSet<i64> = sqlx::query_scalar(
        "INSERT INTO agreement_history (provider, agreement_id, event_ref, event_id, event_type, status,
                                        provider_status, occurred_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                              $7::text[], $8::timestamptz[])
         ON CONFLICT ON CONSTRAINT agreement_history_event_ref_key DO NOTHING
         RETURNING event_ref",
    )
    .bind(applied.iter().map(|a| a.event.provider.as_str()).collect::<Vec<_>>())
    .bind(applied.iter().map(|a| a.subject.id.as_str()).collect::<Vec<_>>())
    .bind(applied.iter().map(|a| a.event.id).collect::<Vec<_>>())
    .bind(applied.iter().map(|a| a.event.event_id.as_str()).collect::<Vec<_>>())
    .bind(applied.iter().map(|a| a.event.event_type.as_str()).collect::<Vec<_>>())
    .bind(
        applied
            .iter()
            .map(|a| a.subject.status.map(AgreementStatus::as_str))
            .collect::<Vec<_>>(),
    )
    .bind(
        applied
            .iter()
            .map(|a| a.subject.provider_status.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(applied.iter().map(|a| a.occurred_at).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();

    // 3. Fold the new events into each agreement, in order, and write back
    //    the agreements that moved.
    for a in applied.iter().filter(|a| new.contains(&a.event.id)) {
        let key = (a.event.provider.clone(), a.subject.id.clone());
        let state = states.get_mut(&key).ok_or(StoreError::Vanished)?;
        state.apply(a.subject, a.occurred_at);
    }
    let changed: Vec<&AgreementState> = states.values().filter(|s| s.changed).collect();
    if !changed.is_empty() {
        sqlx::query(
            "UPDATE agreements a
                SET status = u.status, status_at = u.status_at, provider_status = u.provider_status,
                    name = u.name, last_event_at = u.last_event_at, updated_at = now()
               FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
                           $7::timestamptz[]) AS u(provider, agreement_id, status, status_at, provider_status,
                                                   name, last_event_at)
              WHERE a.provider = u.provider AND a.agreement_id = u.agreement_id",
        )
        .bind(changed.iter().map(|s| s.provider.as_str()).collect::<Vec<_>>())
        .bind(changed.iter().map(|s| s.agreement_id.as_str()).collect::<Vec<_>>())
        .bind(changed.iter().map(|s| s.status.as_deref()).collect::<Vec<_>>())
        .bind(changed.iter().map(|s| s.status_at).collect::<Vec<_>>())
        .bind(changed.iter().map(|s| s.provider_status.as_deref()).collect::<Vec<_>>())
        .bind(changed.iter().map(|s| s.name.as_deref()).collect::<Vec<_>>())
        .bind(changed.iter().map(|s| s.last_event_at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
