//! Counts for the admin API and the metrics: events by state, agreements by
//! status, the age of the oldest event waiting. None of them counts the
//! events table: the queue is counted by state, applied events by the
//! worker's sharded counters (`event_totals`).

use std::{collections::BTreeMap, time::Duration};

use serde::Serialize;
use sqlx::PgPool;

use super::{events::EventState, StoreError};

/// Counts for `GET /api/providers`.
#[derive(Debug, Default)]
pub struct ProviderCounts {
    /// provider → agreement status (`unknown` for none yet) → count
    pub agreements: BTreeMap<String, BTreeMap<String, i64>>,
    /// provider → event state → count
    pub events: BTreeMap<String, BTreeMap<String, i64>>,
}

/// Events by processing state, for `GET /api/stats` and the metrics.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct StateCounts {
    pub pending: i64,
    pub processing: i64,
    pub processed: i64,
    pub failed: i64,
    pub dead: i64,
}

impl StateCounts {
    pub fn by_state(&self) -> [(&'static str, i64); 5] {
        [
            ("pending", self.pending),
            ("processing", self.processing),
            ("processed", self.processed),
            ("failed", self.failed),
            ("dead", self.dead),
        ]
    }
}

/// Counts; see [`super::Store::counts`].
#[derive(Clone, Copy)]
pub struct Counts<'a> {
    pub(super) pool: &'a PgPool,
}

impl Counts<'_> {
    /// How long the oldest event still waiting to be applied (not dead) has
    /// waited.
    pub async fn oldest_unprocessed_age(&self) -> Result<Duration, StoreError> {
        // The lowest id waiting is the oldest (ids are taken as events are
        // stored): one index probe, however long the queue.
        let seconds: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM now() - received_at)::float8 FROM events
              WHERE id = (SELECT min(id) FROM event_queue WHERE NOT dead)",
        )
        .fetch_optional(self.pool)
        .await?;
        Ok(Duration::from_secs_f64(seconds.unwrap_or(0.0).max(0.0)))
    }

    /// Every stored event, by processing state.
    pub async fn by_state(&self) -> Result<StateCounts, StoreError> {
        // Without counting the events table: events not yet applied through
        // the queue, applied ones from the worker's counters.
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT CASE WHEN dead THEN 'dead' WHEN failed THEN 'failed' ELSE 'pending' END, count(*)
               FROM event_queue GROUP BY 1
             UNION ALL
             SELECT 'processed', coalesce(sum(processed), 0)::int8 FROM event_totals",
        )
        .fetch_all(self.pool)
        .await?;
        let mut counts = StateCounts::default();
        for (state, n) in rows {
            match EventState::parse(&state) {
                Some(EventState::Pending) => counts.pending = n,
                Some(EventState::Processing) => counts.processing = n,
                Some(EventState::Processed) => counts.processed = n,
                Some(EventState::Failed) => counts.failed = n,
                Some(EventState::Dead) => counts.dead = n,
                None => {}
            }
        }
        Ok(counts)
    }

    /// Agreements by status and events by state, per provider. Agreements
    /// and queued events are counted in full: meant for an operator's
    /// occasional look, not for a dashboard refreshing every second (that is
    /// what `/metrics` is for).
    pub async fn per_provider(&self) -> Result<ProviderCounts, StoreError> {
        let agreements: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT provider, coalesce(status, 'unknown'), count(*) FROM agreements GROUP BY 1, 2")
                .fetch_all(self.pool)
                .await?;
        let events: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT e.provider, e.state, count(*) FROM event_queue q JOIN events e USING (id) GROUP BY 1, 2
             UNION ALL
             SELECT provider, 'processed', sum(processed)::int8 FROM event_totals
              GROUP BY 1 HAVING sum(processed) > 0",
        )
        .fetch_all(self.pool)
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
