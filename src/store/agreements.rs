//! Agreements and their history. Events are applied in batches, one
//! transaction per batch: each event locks its agreement row, is recorded in
//! history (once: UNIQUE on the event), and moves the status if the transition
//! rules allow; then the whole batch is marked processed. Rows are locked in
//! one global order (provider, agreement id), so concurrent batches — other
//! worker loops, other replicas — wait for each other but never deadlock.

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

impl Store {
    /// Applies claimed events (each with its parsed notification) and marks
    /// them processed, all or nothing. Applying an event twice changes nothing
    /// the second time.
    pub async fn apply_all(&self, items: &[(&ClaimedEvent, &Notification)]) -> Result<(), StoreError> {
        let mut ordered: Vec<_> = items.iter().collect();
        ordered.sort_by(|(a, na), (b, nb)| {
            let key = |e: &ClaimedEvent, n: &Notification| {
                (
                    n.subject.as_ref().map(|s| (e.provider.clone(), s.id.clone())),
                    n.occurred_at.unwrap_or(e.received_at),
                    e.id,
                )
            };
            key(a, na).cmp(&key(b, nb))
        });
        let mut tx = self.pool.begin().await?;
        for (event, notification) in ordered {
            apply_one(&mut tx, event, notification).await?;
        }
        let ids: Vec<i64> = items.iter().map(|(e, _)| e.id).collect();
        sqlx::query(
            "UPDATE events SET state = 'processed', processed_at = now(), locked_until = NULL, last_error = NULL
              WHERE id = ANY($1)",
        )
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
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

/// Applies one event inside the batch's transaction: two statements.
async fn apply_one(tx: &mut PgConnection, event: &ClaimedEvent, notification: &Notification) -> Result<(), StoreError> {
    let Some(subject) = &notification.subject else {
        return Ok(());
    };
    // Events without a provider time are ordered by when we got them.
    let occurred_at = notification.occurred_at.unwrap_or(event.received_at);
    // DO UPDATE (not DO NOTHING) so the row is locked and returned: events of
    // one agreement are applied one at a time, whichever worker or replica
    // holds them.
    let (status, status_at): (Option<String>, Option<DateTime<Utc>>) = sqlx::query_as(
        "INSERT INTO agreements (provider, agreement_id, resource_type) VALUES ($1, $2, $3)
         ON CONFLICT (provider, agreement_id) DO UPDATE SET provider = EXCLUDED.provider
         RETURNING status, status_at",
    )
    .bind(&event.provider)
    .bind(&subject.id)
    .bind(&subject.kind)
    .fetch_one(&mut *tx)
    .await?;
    let current = status
        .as_deref()
        .and_then(AgreementStatus::parse)
        .zip(status_at)
        .map(|(status, at)| Current { status, at });
    let moves = subject
        .status
        .filter(|incoming| agreement::transition(current, *incoming, occurred_at));
    // The history row and the agreement update go together: an event already
    // in history (a replay) inserts nothing and so updates nothing.
    sqlx::query(
        "WITH recorded AS (
             INSERT INTO agreement_history (provider, agreement_id, event_ref, event_id, event_type, status,
                                            provider_status, occurred_at)
             VALUES ($1, $2, $7, $8, $9, $10, $4, $5)
             ON CONFLICT ON CONSTRAINT agreement_history_event_ref_key DO NOTHING
             RETURNING 1)
         UPDATE agreements
            SET status = coalesce($3, status),
                provider_status = CASE WHEN $3 IS NULL THEN provider_status ELSE $4 END,
                status_at = CASE WHEN $3 IS NULL THEN status_at ELSE $5 END,
                name = CASE WHEN $6::text IS NOT NULL AND (last_event_at IS NULL OR $5 >= last_event_at)
                            THEN $6 ELSE coalesce(name, $6) END,
                last_event_at = greatest(last_event_at, $5),
                updated_at = now()
          WHERE provider = $1 AND agreement_id = $2 AND EXISTS (SELECT 1 FROM recorded)",
    )
    .bind(&event.provider)
    .bind(&subject.id)
    .bind(moves.map(AgreementStatus::as_str))
    .bind(&subject.provider_status)
    .bind(occurred_at)
    .bind(&subject.name)
    .bind(event.id)
    .bind(&event.event_id)
    .bind(&event.event_type)
    .bind(subject.status.map(AgreementStatus::as_str))
    .execute(&mut *tx)
    .await?;
    Ok(())
}
