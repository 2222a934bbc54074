//! Webhook activity per provider, for silence detection. The receive path
//! only bumps an in-memory timestamp (no database write per request); a
//! background loop writes what changed to `provider_activity` at most once a
//! second, so every replica — and the reconciler deciding that a provider has
//! gone silent — sees the latest webhook any replica accepted.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::{providers::Providers, store::Store};

/// How often recorded activity is written to the database.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Last accepted webhook per provider in this process; cheap to clone.
#[derive(Clone)]
pub struct Activity {
    /// Unix milliseconds of the last accepted webhook; 0 = none yet.
    last_ms: Arc<BTreeMap<&'static str, AtomicI64>>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            last_ms: Arc::new(Providers::names().map(|name| (name, AtomicI64::new(0))).collect()),
        }
    }
}

impl Activity {
    /// A webhook from `provider` was accepted now. Unknown names are ignored.
    pub fn record(&self, provider: &str) {
        if let Some(last) = self.last_ms.get(provider) {
            last.fetch_max(Utc::now().timestamp_millis(), Ordering::Relaxed);
        }
    }

    /// The last webhook this process accepted from `provider`.
    pub fn last(&self, provider: &str) -> Option<DateTime<Utc>> {
        let ms = self.last_ms.get(provider)?.load(Ordering::Relaxed);
        (ms > 0).then(|| DateTime::from_timestamp_millis(ms)).flatten()
    }

    /// Writes new activity to the database every second until `shutdown`,
    /// and once more then.
    pub async fn flush_loop(self, store: Store, shutdown: CancellationToken) {
        let mut written: BTreeMap<&'static str, i64> = BTreeMap::new();
        loop {
            let stopping = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = tokio::time::sleep(FLUSH_EVERY) => false,
            };
            let fresh: Vec<(&'static str, i64)> = self
                .last_ms
                .iter()
                .map(|(name, ms)| (*name, ms.load(Ordering::Relaxed)))
                .filter(|(name, ms)| *ms > written.get(name).copied().unwrap_or(0))
                .collect();
            if !fresh.is_empty() {
                let seen: Vec<(&str, DateTime<Utc>)> = fresh
                    .iter()
                    .filter_map(|(name, ms)| DateTime::from_timestamp_millis(*ms).map(|at| (*name, at)))
                    .collect();
                match store.activity().record(&seen).await {
                    Ok(()) => written.extend(fresh),
                    Err(error) => tracing::warn!(%error, "could not record webhook activity; will retry"),
                }
            }
            if stopping {
                return;
            }
        }
    }
}
