//! The shared record of provider API use: what the providers' API client asks
//! before every call (is this account paused, is its budget spent, was this
//! same GET sent too recently?) and tells after one (the provider throttled
//! us, this is the answer's ETag, this is the rotated refresh token).
//!
//! It sits below `providers/` (which draw from it) and `store/` (which keeps
//! it in PostgreSQL, so every replica shares one budget), so neither imports
//! the other. Nothing here holds a request body or a secret except the
//! refresh tokens, which are never logged.

use std::time::Duration;

use futures::future::BoxFuture;

/// The rate a provider account allows, as configured per provider.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiLimits {
    /// Requests an hour, for every replica together.
    pub per_hour: u32,
    /// Shortest time between two identical GETs (Adobe Sign's minimum object
    /// polling interval); zero when the provider has none.
    pub min_interval: Duration,
}

impl ApiLimits {
    /// Requests a second.
    pub fn per_second(&self) -> f64 {
        f64::from(self.per_hour.max(1)) / 3600.0
    }

    /// The most calls that may go out at once after a quiet spell: one
    /// minute's worth, at least one, so a backlog spreads over the hour.
    pub fn burst(&self) -> f64 {
        (f64::from(self.per_hour) / 60.0).max(1.0)
    }

    /// The gap between calls when the budget is spent evenly.
    pub fn spacing(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second())
    }
}

/// One call asking to go out.
#[derive(Debug, Clone, Copy)]
pub struct Admission<'a> {
    pub account: &'a str,
    pub limits: ApiLimits,
    /// `GET <path>?<query>` for a GET subject to the minimum interval, whose
    /// ETag and last body are kept; `None` for every other call.
    pub request: Option<&'a str>,
}

/// Why a call has to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// The provider throttled the account (429, or 503 with Retry-After).
    Paused,
    /// The account's budget is spent for now.
    Budget,
    /// The same GET was sent less than the minimum interval ago.
    Interval,
}

impl WaitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paused => "paused",
            Self::Budget => "budget",
            Self::Interval => "min_interval",
        }
    }
}

/// What the ledger answers an [`Admission`].
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// Zero: go (the token is taken). Otherwise how long to wait, and why.
    pub wait: Duration,
    pub reason: Option<WaitReason>,
    /// The ETag and body of the request's last 2xx answer, if kept.
    pub etag: Option<String>,
    pub body: Option<Vec<u8>>,
}

/// The ledger could not be read or written (the database is down).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the provider API budget could not be read: {0}")]
pub struct LedgerError(pub String);

/// The record every replica shares; implemented by the store.
pub trait ApiLedger: Send + Sync + 'static {
    /// Admits one call, or says how long it must wait.
    fn admit<'a>(&'a self, admission: Admission<'a>) -> BoxFuture<'a, Result<Admitted, LedgerError>>;

    /// Pauses every call to `account` for `wait` (never shortening a longer
    /// pause already in force), because the provider said so.
    fn pause<'a>(&'a self, account: &'a str, wait: Duration, reason: &'a str)
        -> BoxFuture<'a, Result<(), LedgerError>>;

    /// Keeps the body of a GET's 2xx answer and its ETag, if it had one,
    /// for `If-None-Match` (or, without an ETag, to answer a repeat inside
    /// the interval of what rarely changes: where the API is).
    fn remember<'a>(
        &'a self,
        account: &'a str,
        request: &'a str,
        etag: Option<&'a str>,
        body: &'a [u8],
    ) -> BoxFuture<'a, Result<(), LedgerError>>;

    /// The newest refresh token of the grant that started with `configured`,
    /// if the provider rotated it; `None`: use `configured`.
    fn refresh_token<'a>(
        &'a self,
        account: &'a str,
        configured: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, LedgerError>>;

    /// Records `rotated` as the newest refresh token of the grant that
    /// started with `configured`.
    fn rotate_refresh_token<'a>(
        &'a self,
        account: &'a str,
        configured: &'a str,
        rotated: &'a str,
    ) -> BoxFuture<'a, Result<(), LedgerError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_spread_calls_over_the_hour() {
        let boldsign = ApiLimits {
            per_hour: 2000,
            min_interval: Duration::ZERO,
        };
        assert!((boldsign.burst() - 33.33).abs() < 0.01);
        assert_eq!(boldsign.spacing(), Duration::from_millis(1800));
        let sandbox = ApiLimits {
            per_hour: 50,
            min_interval: Duration::ZERO,
        };
        assert_eq!(sandbox.burst(), 1.0);
        assert_eq!(sandbox.spacing(), Duration::from_secs(72));
    }
}
