//! Per-provider webhook activity (`provider_activity`), for silence
//! detection: the last webhook any replica accepted, and when a provider
//! with open agreements went quiet.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgPool};

use super::{agreements::OPEN, StoreError};

/// One provider's webhook activity as all replicas recorded it.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ProviderActivity {
    pub provider: String,
    pub last_webhook_at: Option<DateTime<Utc>>,
    pub silent_since: Option<DateTime<Utc>>,
}

/// Webhook activity per provider; see [`super::Store::activity`].
#[derive(Clone, Copy)]
pub struct WebhookActivity<'a> {
    pub(super) pool: &'a PgPool,
}

impl WebhookActivity<'_> {
    /// Records the last accepted webhook per provider (several replicas may
    /// write; the latest time wins) and ends any silence.
    pub async fn record(&self, seen: &[(&str, DateTime<Utc>)]) -> Result<(), StoreError> {
        let (providers, times): (Vec<&str>, Vec<DateTime<Utc>>) = seen.iter().copied().unzip();
        sqlx::query(
            "INSERT INTO provider_activity (provider, last_webhook_at)
             SELECT * FROM unnest($1::text[], $2::timestamptz[])
             ON CONFLICT (provider) DO UPDATE
                SET last_webhook_at = greatest(provider_activity.last_webhook_at, EXCLUDED.last_webhook_at),
                    silent_since = NULL",
        )
        .bind(providers)
        .bind(times)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// Starts the silence of `provider` if it has open agreements and its
    /// last webhook — or, never having sent one, the first time signhook
    /// looked — is older than `silence_after`. Exactly one caller (replica)
    /// gets `Some(last webhook or first look)` per silence.
    pub async fn begin_silence(
        &self,
        provider: &str,
        silence_after: Duration,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        sqlx::query(
            "INSERT INTO provider_activity (provider, tracked_since) VALUES ($1, now()) ON CONFLICT DO NOTHING",
        )
        .bind(provider)
        .execute(self.pool)
        .await?;
        let open = &*OPEN;
        let sql = format!(
            "UPDATE provider_activity SET silent_since = now()
              WHERE provider = $1 AND silent_since IS NULL
                AND coalesce(last_webhook_at, tracked_since) <= now() - $2
                AND EXISTS (SELECT 1 FROM agreements WHERE provider = $1 AND {open})
             RETURNING coalesce(last_webhook_at, tracked_since)"
        );
        Ok(sqlx::query_scalar(&sql)
            .bind(provider)
            .bind(silence_after)
            .fetch_optional(self.pool)
            .await?)
    }

    /// Ends the silence of a provider that has no open agreement left (there
    /// is nothing to hear about).
    pub async fn end_idle_silence(&self, provider: &str) -> Result<(), StoreError> {
        let open = &*OPEN;
        let sql = format!(
            "UPDATE provider_activity SET silent_since = NULL
              WHERE provider = $1 AND silent_since IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM agreements WHERE provider = $1 AND {open})"
        );
        sqlx::query(&sql).bind(provider).execute(self.pool).await?;
        Ok(())
    }

    pub async fn all(&self) -> Result<Vec<ProviderActivity>, StoreError> {
        Ok(
            sqlx::query_as("SELECT provider, last_webhook_at, silent_since FROM provider_activity")
                .fetch_all(self.pool)
                .await?,
        )
    }
}
