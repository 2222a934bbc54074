//! The reconciler's bookkeeping on the agreements table: claiming agreements
//! due for a poll (`FOR UPDATE SKIP LOCKED` plus a lease column, so replicas
//! never poll the same agreement at once), and recording each poll's outcome
//! and the next poll time. Only what can move is polled: open agreements of
//! a kind the provider can read, never drafts (a refresh may read one).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};

use super::{agreements::OPEN, StoreError};
use crate::agreement::AgreementStatus;

/// An agreement claimed for the reconciler until `lease`.
#[derive(Debug, Clone, FromRow)]
pub struct DueAgreement {
    pub provider: String,
    pub agreement_id: String,
    pub status: Option<String>,
    pub webhook_id: Option<String>,
    pub watch_pending: bool,
    pub poll_failures: i32,
    /// The last failure recorded, to log a repeated one only once.
    pub last_poll_error: Option<String>,
    /// The tenant the agreement's latest webhook named (FuseSign's
    /// `TenantId`), for polling it in its own tenant.
    pub tenant: Option<String>,
    /// The claim's `poll_locked_until`: outcomes are recorded only while it
    /// is still this replica's claim.
    pub lease: DateTime<Utc>,
    /// A final status waits for the provider's confirmation (even a finished
    /// agreement's, when a later final came in).
    pub confirm_pending: bool,
}

impl DueAgreement {
    /// Finished: only its webhook is left to remove (unless a final status
    /// waits for confirmation: see `confirm_pending`).
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
    /// Not polled: the provider account is paused or its budget spent, or
    /// the same request went out too recently. Due again after `retry_in`,
    /// with `note` shown as its last poll error; not a failure.
    Deferred { retry_in: Duration, note: String },
}

/// The agreements table as the reconciler works through it; see
/// [`super::Store::polling`].
#[derive(Clone, Copy)]
pub struct Polling<'a> {
    pub(super) pool: &'a PgPool,
}

impl Polling<'_> {
    /// Claims up to `limit` agreements of `provider` that need the
    /// reconciler, for `lease`: open agreements of one of `kinds` that are
    /// not drafts, whose `next_poll_at` has come or, without one, whose last
    /// event and last poll are older than `stale_after`; and finished
    /// agreements that still have a webhook (or a pending registration) to
    /// remove. Agreements with a final status waiting for confirmation come
    /// first, whatever their status.
    pub async fn claim_due(
        &self,
        provider: &str,
        kinds: &[&str],
        stale_after: Duration,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<DueAgreement>, StoreError> {
        let open = &*OPEN;
        let sql = format!(
            "UPDATE agreements AS a SET poll_locked_until = now() + $4
              WHERE (a.provider, a.agreement_id) IN (
                    SELECT provider, agreement_id FROM agreements
                     WHERE provider = $1
                       AND (poll_locked_until IS NULL OR poll_locked_until <= now())
                       AND (next_poll_at IS NULL OR next_poll_at <= now())
                       AND ((({open} OR confirm_pending) AND resource_type = ANY($5)
                                AND (confirm_pending
                                     OR (status IS DISTINCT FROM 'draft'
                                         AND (next_poll_at IS NOT NULL
                                              OR coalesce(greatest(last_event_at, last_polled_at), created_at)
                                                 <= now() - $2))))
                            OR (NOT {open} AND (webhook_id IS NOT NULL OR watch_pending)))
                     ORDER BY confirm_pending DESC,
                              coalesce(next_poll_at, greatest(last_event_at, last_polled_at), created_at)
                     LIMIT $3
                     FOR UPDATE SKIP LOCKED)
             RETURNING a.provider, a.agreement_id, a.status, a.webhook_id, a.watch_pending, a.poll_failures,
                       a.last_poll_error, a.poll_locked_until AS lease, a.confirm_pending,
                       (SELECT e.tenant FROM agreement_history h JOIN events e ON e.id = h.event_ref
                         WHERE h.provider = a.provider AND h.agreement_id = a.agreement_id AND e.tenant IS NOT NULL
                         ORDER BY h.id DESC LIMIT 1) AS tenant"
        );
        let claimed = sqlx::query_as(&sql)
            .bind(provider)
            .bind(stale_after)
            .bind(limit)
            .bind(lease)
            .bind(kinds)
            .fetch_all(self.pool)
            .await?;
        Ok(claimed)
    }

    /// The tenant the agreement's latest webhook named, if any (for a refresh).
    pub async fn tenant(&self, provider: &str, agreement_id: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT e.tenant FROM agreement_history h JOIN events e ON e.id = h.event_ref
              WHERE h.provider = $1 AND h.agreement_id = $2 AND e.tenant IS NOT NULL
              ORDER BY h.id DESC LIMIT 1",
        )
        .bind(provider)
        .bind(agreement_id)
        .fetch_optional(self.pool)
        .await?)
    }

    /// Records what came of a claimed agreement and ends the claim. Nothing
    /// happens if the claim lapsed meanwhile (another replica owns it now).
    pub async fn record(&self, due: &DueAgreement, record: &PollRecord) -> Result<(), StoreError> {
        if let PollRecord::Deferred { retry_in, note } = record {
            sqlx::query(
                "UPDATE agreements SET poll_locked_until = NULL, last_poll_error = $3, next_poll_at = now() + $4
                  WHERE provider = $1 AND agreement_id = $2 AND poll_locked_until = $5",
            )
            .bind(&due.provider)
            .bind(&due.agreement_id)
            .bind(note)
            .bind(*retry_in)
            .bind(due.lease)
            .execute(self.pool)
            .await?;
            return Ok(());
        }
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
            PollRecord::Deferred { .. } => unreachable!("recorded above"),
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
                                        WHEN confirm_pending THEN now()
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
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// Gives back claims that were not worked on (shutdown).
    pub async fn release(&self, claims: &[DueAgreement]) -> Result<(), StoreError> {
        for due in claims {
            sqlx::query(
                "UPDATE agreements SET poll_locked_until = NULL
                  WHERE provider = $1 AND agreement_id = $2 AND poll_locked_until = $3",
            )
            .bind(&due.provider)
            .bind(&due.agreement_id)
            .bind(due.lease)
            .execute(self.pool)
            .await?;
        }
        Ok(())
    }

    /// Makes every open agreement of `provider` that can be polled due,
    /// spread `spacing` apart (the budget's pace) and no sooner than
    /// `min_interval` after its last poll, rather than all at once; returns
    /// how many.
    pub async fn poll_all_soon(
        &self,
        provider: &str,
        kinds: &[&str],
        spacing: Duration,
        min_interval: Duration,
    ) -> Result<u64, StoreError> {
        let open = &*OPEN;
        let sql = format!(
            "UPDATE agreements a
                SET next_poll_at = greatest(now() + s.n::float8 * $3, coalesce(a.last_polled_at + $4, now()))
               FROM (SELECT provider, agreement_id,
                            row_number() OVER (ORDER BY coalesce(greatest(last_event_at, last_polled_at), created_at))
                                - 1 AS n
                       FROM agreements
                      WHERE provider = $1 AND {open} AND status IS DISTINCT FROM 'draft'
                        AND resource_type = ANY($2)) s
              WHERE a.provider = s.provider AND a.agreement_id = s.agreement_id"
        );
        let done = sqlx::query(&sql)
            .bind(provider)
            .bind(kinds)
            .bind(spacing)
            .bind(min_interval)
            .execute(self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
