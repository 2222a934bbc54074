//! The reconciler's bookkeeping on the agreements table: claiming agreements
//! due for a poll (`FOR UPDATE SKIP LOCKED` plus a lease column, so replicas
//! never poll the same agreement at once), recording each poll's outcome and
//! the next poll time, per-agreement webhooks, and per-provider webhook
//! activity for silence detection.

use std::{collections::BTreeMap, sync::LazyLock, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;

use super::{Store, StoreError};
use crate::agreement::AgreementStatus;

/// Open agreements, as SQL over `agreements`: the status is not one of
/// [`AgreementStatus::TERMINAL`]. Written out, not bound, so the partial
/// index of the migration applies (a unit test holds the two together).
static OPEN: LazyLock<String> = LazyLock::new(|| {
    let terminal: Vec<String> = AgreementStatus::TERMINAL
        .iter()
        .map(|status| format!("'{}'", status.as_str()))
        .collect();
    format!("(status IS NULL OR status NOT IN ({}))", terminal.join(", "))
});

/// An agreement claimed for the reconciler until `lease`.
#[derive(Debug, Clone, FromRow)]
pub struct DueAgreement {
    pub provider: String,
    pub agreement_id: String,
    pub status: Option<String>,
    pub webhook_id: Option<String>,
    pub watch_pending: bool,
    pub poll_failures: i32,
    /// The claim's `poll_locked_until`: outcomes are recorded only while it
    /// is still this replica's claim.
    pub lease: DateTime<Utc>,
}

impl DueAgreement {
    /// Finished: only its webhook is left to remove.
    pub fn is_terminal(&self) -> bool {
        self.status
            .as_deref()
            .and_then(AgreementStatus::parse)
            .is_some_and(|status| status.is_terminal())
    }
}

/// What came of a claimed agreement, and when it is due again.
#[derive(Debug, Clone)]
pub enum PollRecord {
    /// Polled (or its webhook removed): due again when stale, or after the
    /// fast interval while its webhook registration is pending.
    Done { fast_interval: Duration },
    /// The call failed; try again after `retry_in`.
    Failed { error: String, retry_in: Duration },
    /// The provider does not know it; look again after `retry_in`.
    NotFound { retry_in: Duration },
}

/// One provider's webhook activity as all replicas recorded it.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ProviderActivity {
    pub provider: String,
    pub last_webhook_at: Option<DateTime<Utc>>,
    pub silent_since: Option<DateTime<Utc>>,
}

/// Counts for `GET /api/providers`.
#[derive(Debug, Default)]
pub struct ProviderCounts {
    /// provider → agreement status (`unknown` for none yet) → count
    pub agreements: BTreeMap<String, BTreeMap<String, i64>>,
    /// provider → event state → count
    pub events: BTreeMap<String, BTreeMap<String, i64>>,
}

impl Store {
    /// Claims up to `limit` agreements of `providers` that need the
    /// reconciler, for `lease`: open agreements whose `next_poll_at` has come
    /// or, without one, whose last event and last poll are older than
    /// `stale_after`; and finished agreements that still have a webhook (or
    /// a pending registration) to remove.
    pub async fn claim_due(
        &self,
        providers: &[&str],
        stale_after: Duration,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<DueAgreement>, StoreError> {
        let open = &*OPEN;
        let sql = format!(
            "UPDATE agreements AS a SET poll_locked_until = now() + $4
              WHERE (a.provider, a.agreement_id) IN (
                    SELECT provider, agreement_id FROM agreements
                     WHERE provider = ANY($1)
                       AND (poll_locked_until IS NULL OR poll_locked_until <= now())
                       AND (next_poll_at IS NULL OR next_poll_at <= now())
                       AND (({open} AND (next_poll_at IS NOT NULL
                                OR coalesce(greatest(last_event_at, last_polled_at), created_at) <= now() - $2))
                            OR (NOT {open} AND (webhook_id IS NOT NULL OR watch_pending)))
                     ORDER BY coalesce(next_poll_at, greatest(last_event_at, last_polled_at), created_at)
                     LIMIT $3
                     FOR UPDATE SKIP LOCKED)
             RETURNING a.provider, a.agreement_id, a.status, a.webhook_id, a.watch_pending, a.poll_failures,
                       a.poll_locked_until AS lease"
        );
        let claimed = sqlx::query_as(&sql)
            .bind(providers)
            .bind(stale_after)
            .bind(limit)
            .bind(lease)
            .fetch_all(&self.pool)
            .await?;
        Ok(claimed)
    }

    /// Records what came of a claimed agreement and ends the claim. Nothing
    /// happens if the claim lapsed meanwhile (another replica owns it now).
    pub async fn record_poll(&self, due: &DueAgreement, record: &PollRecord) -> Result<(), StoreError> {
        let (failed, error, retry_in, not_found, fast) = match record {
            PollRecord::Done { fast_interval } => (false, None, Duration::ZERO, false, *fast_interval),
            PollRecord::Failed { error, retry_in } => (true, Some(error.as_str()), *retry_in, false, Duration::ZERO),
            PollRecord::NotFound { retry_in } => (
                false,
                Some("the provider does not know this agreement"),
                *retry_in,
                true,
                Duration::ZERO,
            ),
        };
        sqlx::query(
            "UPDATE agreements
                SET poll_locked_until = NULL,
                    last_polled_at = now(),
                    poll_failures = CASE WHEN $3 THEN poll_failures + 1 ELSE 0 END,
                    last_poll_error = $4,
                    not_found_at = CASE WHEN $6 THEN now() ELSE NULL END,
                    watch_pending = watch_pending AND NOT $6,
                    next_poll_at = CASE WHEN $3 OR $6 THEN now() + $5
                                        WHEN watch_pending THEN now() + $7
                                        ELSE NULL END
              WHERE provider = $1 AND agreement_id = $2 AND poll_locked_until = $8",
        )
        .bind(&due.provider)
        .bind(&due.agreement_id)
        .bind(failed)
        .bind(error)
        .bind(retry_in)
        .bind(not_found)
        .bind(fast)
        .bind(due.lease)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives back claims that were not worked on (shutdown).
    pub async fn release_claims(&self, claims: &[DueAgreement]) -> Result<(), StoreError> {
        for due in claims {
            sqlx::query(
                "UPDATE agreements SET poll_locked_until = NULL
                  WHERE provider = $1 AND agreement_id = $2 AND poll_locked_until = $3",
            )
            .bind(&due.provider)
            .bind(&due.agreement_id)
            .bind(due.lease)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Records a registered webhook (creating the agreement with no status if
    /// it was never seen) and clears a pending registration. Returns the
    /// webhook id now on record: another one when a concurrent registration
    /// won, in which case `webhook_id` is surplus and should be deleted.
    pub async fn watch_registered(
        &self,
        provider: &str,
        agreement_id: &str,
        webhook_id: &str,
    ) -> Result<String, StoreError> {
        let recorded = sqlx::query_scalar(
            "INSERT INTO agreements (provider, agreement_id, resource_type, webhook_id) VALUES ($1, $2, 'agreement', $3)
             ON CONFLICT (provider, agreement_id) DO UPDATE
                SET webhook_id = coalesce(agreements.webhook_id, EXCLUDED.webhook_id),
                    watch_pending = false,
                    next_poll_at = NULL,
                    updated_at = now()
             RETURNING webhook_id",
        )
        .bind(provider)
        .bind(agreement_id)
        .bind(webhook_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(recorded)
    }

    /// A registration failed: the agreement (created if never seen) is polled
    /// every `fast_interval` and the registration retried until it works.
    pub async fn watch_failed(
        &self,
        provider: &str,
        agreement_id: &str,
        fast_interval: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agreements (provider, agreement_id, resource_type, watch_pending, next_poll_at)
             VALUES ($1, $2, 'agreement', true, now() + $3)
             ON CONFLICT (provider, agreement_id) DO UPDATE
                SET watch_pending = true,
                    next_poll_at = least(coalesce(agreements.next_poll_at, EXCLUDED.next_poll_at), EXCLUDED.next_poll_at),
                    updated_at = now()",
        )
        .bind(provider)
        .bind(agreement_id)
        .bind(fast_interval)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The agreement is no longer watched: no webhook, nothing pending.
    pub async fn watch_removed(&self, provider: &str, agreement_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE agreements
                SET webhook_id = NULL, watch_pending = false,
                    next_poll_at = CASE WHEN watch_pending THEN NULL ELSE next_poll_at END, updated_at = now()
              WHERE provider = $1 AND agreement_id = $2",
        )
        .bind(provider)
        .bind(agreement_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The webhook id and open-ness of an agreement, if it exists.
    pub async fn watch_state(&self, provider: &str, agreement_id: &str) -> Result<Option<WatchState>, StoreError> {
        let open = &*OPEN;
        let sql = format!(
            "SELECT webhook_id, watch_pending, NOT {open} AS terminal
               FROM agreements WHERE provider = $1 AND agreement_id = $2"
        );
        Ok(sqlx::query_as(&sql)
            .bind(provider)
            .bind(agreement_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Makes every open agreement of `provider` due now; returns how many.
    pub async fn poll_all_now(&self, provider: &str) -> Result<u64, StoreError> {
        let open = &*OPEN;
        let sql = format!("UPDATE agreements SET next_poll_at = now() WHERE provider = $1 AND {open}");
        let done = sqlx::query(&sql).bind(provider).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    /// Records the last accepted webhook per provider (several replicas may
    /// write; the latest time wins) and ends any silence.
    pub async fn record_activity(&self, seen: &[(&str, DateTime<Utc>)]) -> Result<(), StoreError> {
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
        .execute(&self.pool)
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
        .execute(&self.pool)
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
            .fetch_optional(&self.pool)
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
        sqlx::query(&sql).bind(provider).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn provider_activity(&self) -> Result<Vec<ProviderActivity>, StoreError> {
        Ok(
            sqlx::query_as("SELECT provider, last_webhook_at, silent_since FROM provider_activity")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Agreements by status and events by state, per provider. Agreements
    /// and queued events are counted in full: meant for an operator's
    /// occasional look, not for a dashboard refreshing every second (that is
    /// what `/metrics` is for).
    pub async fn provider_counts(&self) -> Result<ProviderCounts, StoreError> {
        let agreements: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT provider, coalesce(status, 'unknown'), count(*) FROM agreements GROUP BY 1, 2")
                .fetch_all(&self.pool)
                .await?;
        let events: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT e.provider, e.state, count(*) FROM event_queue q JOIN events e USING (id) GROUP BY 1, 2
             UNION ALL
             SELECT provider, 'processed', sum(processed)::int8 FROM event_totals
              GROUP BY 1 HAVING sum(processed) > 0",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut counts = ProviderCounts::default();
        for (provider, status, n) in agreements {
            counts.agreements.entry(provider).or_default().insert(status, n);
        }
        for (provider, state, n) in events {
            counts.events.entry(provider).or_default().insert(state, n);
        }
        Ok(counts)
    }
}

/// Whether an agreement is watched, for the watch endpoints.
#[derive(Debug, Clone, FromRow)]
pub struct WatchState {
    pub webhook_id: Option<String>,
    pub watch_pending: bool,
    pub terminal: bool,
}

#[cfg(test)]
mod tests {
    use super::OPEN;

    /// The migration's partial index of open agreements was written with the
    /// terminal statuses of its day; the generated SQL must stay the same
    /// predicate, or the reconciler's claim stops using the index.
    #[test]
    fn open_is_the_predicate_of_the_open_agreements_index() {
        let migration = include_str!("../../migrations/20261125000001_reconcile.sql");
        let predicate = OPEN
            .strip_prefix('(')
            .and_then(|sql| sql.strip_suffix(')'))
            .expect("OPEN is parenthesized");
        assert!(
            migration.contains(&format!("WHERE {predicate};")),
            "{predicate} is not the index predicate"
        );
    }
}
