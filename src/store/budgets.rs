//! Provider API budgets, shared by every replica (see `crate::ledger`): the
//! token bucket and pause of each provider account, the last identical GETs
//! with their ETags, and rotated OAuth refresh tokens. Admission is one call
//! of the `signhook_admit_call` function, atomic under row locks.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgPool};

use super::{Store, StoreError};
use crate::ledger::{Admission, Admitted, ApiLedger, ApiLimits, LedgerError, WaitReason};

/// One account's budget as `GET /api/providers` shows it.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct BudgetView {
    /// Provider (account) name.
    #[serde(skip)]
    pub account: String,
    /// Requests left in the bucket now (it holds one minute's worth at most).
    pub available: f64,
    /// No call goes to this account, from any replica, before this.
    pub paused_until: Option<DateTime<Utc>>,
    /// What the provider answered when it paused the account.
    pub pause_reason: Option<String>,
    /// Throttling answers (429, 503 with Retry-After) received so far.
    pub throttled_total: i64,
}

/// The budgets table; see [`Store::budgets`].
#[derive(Clone, Copy)]
pub struct Budgets<'a> {
    pub(super) pool: &'a PgPool,
}

impl Budgets<'_> {
    /// Every account's budget, refilled to now at `limits` (per account).
    pub async fn all(&self, limits: &[(&str, ApiLimits)]) -> Result<Vec<BudgetView>, StoreError> {
        let accounts: Vec<&str> = limits.iter().map(|(a, _)| *a).collect();
        let per_sec: Vec<f64> = limits.iter().map(|(_, l)| l.per_second()).collect();
        let capacity: Vec<f64> = limits.iter().map(|(_, l)| l.burst()).collect();
        Ok(sqlx::query_as(
            "SELECT l.account,
                    coalesce(least(l.capacity, b.tokens + greatest(0, extract(epoch FROM now() - b.refilled_at))
                                                        * l.per_sec), l.capacity) AS available,
                    CASE WHEN b.paused_until > now() THEN b.paused_until END AS paused_until,
                    CASE WHEN b.paused_until > now() THEN b.pause_reason END AS pause_reason,
                    coalesce(b.throttled, 0) AS throttled_total
               FROM unnest($1::text[], $2::float8[], $3::float8[]) AS l(account, per_sec, capacity)
               LEFT JOIN provider_budgets b ON b.account = l.account
              ORDER BY l.account",
        )
        .bind(&accounts)
        .bind(&per_sec)
        .bind(&capacity)
        .fetch_all(self.pool)
        .await?)
    }

    pub async fn admit(&self, admission: Admission<'_>) -> Result<Admitted, StoreError> {
        let (wait_secs, reason, etag, body): (f64, Option<String>, Option<String>, Option<Vec<u8>>) =
            sqlx::query_as("SELECT * FROM signhook_admit_call($1, $2, $3, $4, $5)")
                .bind(admission.account)
                .bind(admission.limits.per_second())
                .bind(admission.limits.burst())
                .bind(admission.request)
                .bind(admission.limits.min_interval)
                .fetch_one(self.pool)
                .await?;
        let reason = match reason.as_deref() {
            Some("paused") => Some(WaitReason::Paused),
            Some("budget") => Some(WaitReason::Budget),
            Some("interval") => Some(WaitReason::Interval),
            _ => None,
        };
        Ok(Admitted {
            wait: reason.map_or(Duration::ZERO, |_| {
                Duration::try_from_secs_f64(wait_secs.max(0.001)).unwrap_or(Duration::MAX)
            }),
            reason,
            etag,
            body,
        })
    }

    pub async fn pause(&self, account: &str, wait: Duration, reason: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO provider_budgets AS b (account, tokens, paused_until, pause_reason, throttled)
             VALUES ($1, 0, now() + $2, $3, 1)
             ON CONFLICT (account) DO UPDATE
                SET paused_until = greatest(b.paused_until, EXCLUDED.paused_until),
                    pause_reason = EXCLUDED.pause_reason,
                    throttled = b.throttled + 1",
        )
        .bind(account)
        .bind(wait)
        .bind(reason)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    pub async fn remember(
        &self,
        account: &str,
        request: &str,
        etag: Option<&str>,
        body: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE provider_requests SET etag = $3, body = $4 WHERE account = $1 AND request = $2")
            .bind(account)
            .bind(request)
            .bind(etag)
            .bind(body)
            .execute(self.pool)
            .await?;
        Ok(())
    }

    pub async fn refresh_token(&self, account: &str, configured: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT refresh_token FROM provider_oauth_tokens WHERE account = $1 AND granted_sha256 = $2",
        )
        .bind(account)
        .bind(sha256_hex(configured))
        .fetch_optional(self.pool)
        .await?)
    }

    pub async fn rotate_refresh_token(&self, account: &str, configured: &str, rotated: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO provider_oauth_tokens (account, granted_sha256, refresh_token) VALUES ($1, $2, $3)
             ON CONFLICT (account) DO UPDATE
                SET granted_sha256 = EXCLUDED.granted_sha256, refresh_token = EXCLUDED.refresh_token,
                    updated_at = now()",
        )
        .bind(account)
        .bind(sha256_hex(configured))
        .bind(rotated)
        .execute(self.pool)
        .await?;
        Ok(())
    }
}

fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

fn ledger_error(error: StoreError) -> LedgerError {
    LedgerError(error.to_string())
}

impl ApiLedger for Store {
    fn admit<'a>(&'a self, admission: Admission<'a>) -> BoxFuture<'a, Result<Admitted, LedgerError>> {
        Box::pin(async move { self.budgets().admit(admission).await.map_err(ledger_error) })
    }

    fn pause<'a>(
        &'a self,
        account: &'a str,
        wait: Duration,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move { self.budgets().pause(account, wait, reason).await.map_err(ledger_error) })
    }

    fn remember<'a>(
        &'a self,
        account: &'a str,
        request: &'a str,
        etag: Option<&'a str>,
        body: &'a [u8],
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            self.budgets()
                .remember(account, request, etag, body)
                .await
                .map_err(ledger_error)
        })
    }

    fn refresh_token<'a>(
        &'a self,
        account: &'a str,
        configured: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, LedgerError>> {
        Box::pin(async move {
            self.budgets()
                .refresh_token(account, configured)
                .await
                .map_err(ledger_error)
        })
    }

    fn rotate_refresh_token<'a>(
        &'a self,
        account: &'a str,
        configured: &'a str,
        rotated: &'a str,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            self.budgets()
                .rotate_refresh_token(account, configured, rotated)
                .await
                .map_err(ledger_error)
        })
    }
}
