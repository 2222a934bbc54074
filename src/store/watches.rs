//! Per-agreement webhooks on the agreements table: the webhook registered at
//! the provider, or a registration still pending (then the agreement is
//! polled on the fast schedule until it works).

use std::time::Duration;

use sqlx::{FromRow, PgPool};

use super::{agreements::OPEN, StoreError};

/// Whether an agreement is watched, for the watch endpoints.
#[derive(Debug, Clone, FromRow)]
pub struct WatchState {
    pub webhook_id: Option<String>,
    pub watch_pending: bool,
    pub terminal: bool,
}

/// Per-agreement webhooks; see [`super::Store::watches`].
#[derive(Clone, Copy)]
pub struct Watches<'a> {
    pub(super) pool: &'a PgPool,
}

impl Watches<'_> {
    /// Records a registered webhook (creating the agreement, a resource of
    /// `kind`, with no status if it was never seen) and clears a pending
    /// registration. Returns the webhook id now on record: another one when a
    /// concurrent registration won, in which case `webhook_id` is surplus and
    /// should be deleted.
    pub async fn registered(
        &self,
        provider: &str,
        agreement_id: &str,
        kind: &str,
        webhook_id: &str,
    ) -> Result<String, StoreError> {
        let recorded = sqlx::query_scalar(
            "INSERT INTO agreements (provider, agreement_id, resource_type, webhook_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (provider, agreement_id) DO UPDATE
                SET webhook_id = coalesce(agreements.webhook_id, EXCLUDED.webhook_id),
                    watch_pending = false,
                    next_poll_at = NULL,
                    updated_at = now()
             RETURNING webhook_id",
        )
        .bind(provider)
        .bind(agreement_id)
        .bind(kind)
        .bind(webhook_id)
        .fetch_one(self.pool)
        .await?;
        Ok(recorded)
    }

    /// A registration failed: the agreement (created as a resource of `kind`
    /// if never seen) is polled every `fast_interval` and the registration
    /// retried until it works.
    pub async fn failed(
        &self,
        provider: &str,
        agreement_id: &str,
        kind: &str,
        fast_interval: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agreements (provider, agreement_id, resource_type, watch_pending, next_poll_at)
             VALUES ($1, $2, $3, true, now() + $4)
             ON CONFLICT (provider, agreement_id) DO UPDATE
                SET watch_pending = true,
                    next_poll_at = least(coalesce(agreements.next_poll_at, EXCLUDED.next_poll_at), EXCLUDED.next_poll_at),
                    updated_at = now()",
        )
        .bind(provider)
        .bind(agreement_id)
        .bind(kind)
        .bind(fast_interval)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// The agreement is no longer watched: no webhook, nothing pending.
    pub async fn removed(&self, provider: &str, agreement_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE agreements
                SET webhook_id = NULL, watch_pending = false,
                    next_poll_at = CASE WHEN watch_pending THEN NULL ELSE next_poll_at END, updated_at = now()
              WHERE provider = $1 AND agreement_id = $2",
        )
        .bind(provider)
        .bind(agreement_id)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// The webhook id and open-ness of an agreement, if it exists.
    pub async fn state(&self, provider: &str, agreement_id: &str) -> Result<Option<WatchState>, StoreError> {
        let open = &*OPEN;
        let sql = format!(
            "SELECT webhook_id, watch_pending, NOT {open} AS terminal
               FROM agreements WHERE provider = $1 AND agreement_id = $2"
        );
        Ok(sqlx::query_as(&sql)
            .bind(provider)
            .bind(agreement_id)
            .fetch_optional(self.pool)
            .await?)
    }
}
