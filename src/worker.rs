//! The apply loop: claims stored events, applies each to its agreement, and
//! records failures with exponential backoff until an event is declared dead.
//!
//! It is woken right after each ingest commit (same process) and polls as a
//! fallback, which also picks up events stored by other replicas, retries
//! whose time has come and events whose previous worker died mid-batch.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use metrics::{counter, histogram};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    config::WorkerSettings,
    confirmation,
    event::Notification,
    providers::Providers,
    store::{Agreements, Claim, ClaimedEvent, Store, StoreError, ToApply},
    telemetry::metric,
};

/// Longest pause between claim attempts while the database fails.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(10);

/// Shared between the worker and whoever wants to wake it or know it runs,
/// or wants to hear when it holds a final status for confirmation.
#[derive(Clone, Default)]
pub struct WorkerHandle {
    wake: Arc<Notify>,
    running: Arc<AtomicBool>,
    held: Arc<Notify>,
}

impl WorkerHandle {
    /// Notified when a batch held a final status for the provider's
    /// confirmation (the reconciler polls such agreements first).
    pub fn held_finals(&self) -> Arc<Notify> {
        self.held.clone()
    }

    /// Called after a commit: there is work now.
    pub fn wake(&self) {
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error("no provider named {0} is registered")]
    UnknownProvider(String),
    #[error("stored body no longer parses: {0}")]
    Parse(String),
    #[error("the event cannot be stored as parsed: {0}")]
    Unstorable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApplyError {
    /// Whether trying again cannot help: the same body parses the same way
    /// with the same code, and the database refuses the same value again.
    /// Such an event is dead at once (a replay after an upgrade tries again).
    fn is_permanent(&self) -> bool {
        match self {
            Self::Parse(_) | Self::Unstorable(_) => true,
            Self::Store(error) => error.is_data_error(),
            Self::UnknownProvider(_) => false,
        }
    }
}

pub struct Worker {
    store: Store,
    providers: Providers,
    handle: WorkerHandle,
    /// For the trust rules: the future-skew bound, whether weak finals wait.
    settings: WorkerSettings,
    batch_size: u32,
    batch_max_bytes: usize,
    lease: Duration,
    poll_interval: Duration,
    max_attempts: u32,
    retry_base: Duration,
    retry_max: Duration,
    vacuum_every: u64,
    /// Events applied since the queue table was last vacuumed.
    since_vacuum: AtomicU64,
}

impl Worker {
    pub fn new(store: Store, providers: Providers, settings: &WorkerSettings, handle: WorkerHandle) -> Self {
        Self {
            store,
            providers,
            handle,
            settings: settings.clone(),
            batch_size: settings.batch_size,
            batch_max_bytes: settings.batch_max_bytes,
            lease: settings.lease(),
            poll_interval: Duration::from_millis(settings.poll_interval_ms),
            max_attempts: settings.max_attempts,
            retry_base: Duration::from_millis(settings.retry_base_ms),
            retry_max: Duration::from_millis(settings.retry_max_ms),
            vacuum_every: settings.queue_vacuum_every,
            since_vacuum: AtomicU64::new(0),
        }
    }

    /// Runs until `shutdown` is cancelled. The batch being applied then is
    /// finished (one transaction; on the one-by-one fallback path, the current
    /// event is finished and the rest stay queued for any worker).
    pub async fn run(self, shutdown: CancellationToken) {
        self.handle.running.store(true, Ordering::Relaxed);
        let _running = RunningGuard(self.handle.running.clone());
        let mut error_backoff = self.poll_interval;
        while !shutdown.is_cancelled() {
            // Bounded: a stalled or unreachable database must not hang the loop.
            let claimed = tokio::time::timeout(
                self.lease,
                self.store.queue().claim(self.batch_size, self.batch_max_bytes),
            )
            .await
            .unwrap_or(Err(StoreError::TimedOut));
            match claimed {
                Ok(claim) if claim.events.is_empty() => {
                    drop(claim);
                    error_backoff = self.poll_interval;
                    self.sleep(&shutdown, self.poll_interval).await;
                }
                Ok(claim) => {
                    error_backoff = self.poll_interval;
                    let claimed = claim.events.len() as u64;
                    self.apply_batch(claim, &shutdown).await;
                    self.vacuum_queue_now_and_then(claimed);
                }
                Err(error) => {
                    // Database trouble: back off (doubling, capped) instead of
                    // spinning and flooding the log. A committed ingest wakes
                    // the worker early: it proves the database is back.
                    tracing::warn!(%error, retry_in_ms = error_backoff.as_millis() as u64, "worker cannot claim events");
                    self.sleep(&shutdown, error_backoff).await;
                    error_backoff = (error_backoff * 2).min(MAX_ERROR_BACKOFF);
                }
            }
        }
        tracing::info!("worker stopped");
    }

    /// Vacuums the queue table in the background every `vacuum_every` events
    /// (see [`Queue::vacuum`](crate::store::Queue::vacuum)); the worker does not wait for it.
    fn vacuum_queue_now_and_then(&self, claimed: u64) {
        let done = self.since_vacuum.fetch_add(claimed, Ordering::Relaxed) + claimed;
        if self.vacuum_every == 0 || done < self.vacuum_every {
            return;
        }
        self.since_vacuum.store(0, Ordering::Relaxed);
        let store = self.store.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            match store.queue().vacuum().await {
                Ok(()) => tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "queue vacuumed"),
                Err(error) => tracing::warn!(%error, "could not vacuum the queue table; autovacuum will"),
            }
        });
    }

    async fn sleep(&self, shutdown: &CancellationToken, duration: Duration) {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = self.handle.wake.notified() => {}
            _ = tokio::time::sleep(duration) => {}
        }
    }

    /// Applies a claimed batch in the transaction that claimed it. If that
    /// fails, the transaction is rolled back and each event is claimed and
    /// applied on its own, so one bad event fails alone and the others go
    /// through.
    async fn apply_batch(&self, claim: Claim, shutdown: &CancellationToken) {
        let started = std::time::Instant::now();
        let Claim { mut tx, events } = claim;
        let mut parsed = Vec::with_capacity(events.len());
        let mut unparsable = Vec::new();
        for event in &events {
            match self.parse(event) {
                Ok(notification) => parsed.push((event, notification)),
                Err(error) => unparsable.push((event, error)),
            }
        }
        let items: Vec<_> = parsed.iter().map(|(e, n)| self.to_apply(e, n)).collect();
        let skew = self.settings.max_future_skew();
        // Bounded: a timed-out batch may still commit; applying again is harmless.
        let applied = tokio::time::timeout(self.lease, async {
            let held = Agreements::apply_claimed(&mut tx, &items, skew).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(held)
        })
        .await
        .unwrap_or(Err(StoreError::TimedOut));
        // The unparsable events were locked until now; recorded after, so a
        // failed batch does not take their failure with it.
        for (event, error) in &unparsable {
            self.record_failure(event, error).await;
        }
        match applied {
            Ok(held) => {
                self.notify_held(held);
                counter!(metric::EVENTS_APPLIED).increment(items.len() as u64);
                histogram!(metric::APPLY_DURATION).record(started.elapsed().as_secs_f64());
                tracing::debug!(
                    count = items.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "batch applied"
                );
                return;
            }
            Err(error) if items.len() > 1 => {
                tracing::warn!(%error, count = items.len(), "batch failed; applying its events one by one");
            }
            Err(_) => {}
        }
        for item in &items {
            let event = item.event;
            let span = tracing::info_span!("apply", id = event.id, provider = %event.provider, event_id = %event.event_id, event_type = %event.event_type);
            let applied = tokio::time::timeout(self.lease, self.apply_one(item))
                .instrument(span.clone())
                .await
                .unwrap_or(Err(StoreError::TimedOut));
            match applied {
                Ok(true) => counter!(metric::EVENTS_APPLIED).increment(1),
                // Another worker has it now, or has already applied it.
                Ok(false) => {}
                Err(error) => {
                    self.record_failure(event, &ApplyError::Store(error))
                        .instrument(span)
                        .await
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
        }
    }

    /// Claims, applies and commits one event; false when it was not runnable.
    async fn apply_one(&self, item: &ToApply<'_>) -> Result<bool, StoreError> {
        let Some(mut tx) = self.store.queue().claim_one(item.event.id).await? else {
            return Ok(false);
        };
        let held = Agreements::apply_claimed(&mut tx, &[*item], self.settings.max_future_skew()).await?;
        tx.commit().await?;
        self.notify_held(held);
        Ok(true)
    }

    /// The event with whether its final status waits for confirmation.
    fn to_apply<'a>(&self, event: &'a ClaimedEvent, notification: &'a Notification) -> ToApply<'a> {
        let confirm_final = match (self.providers.get(&event.provider), &notification.subject) {
            (Some(provider), Some(subject)) => confirmation::needed(&self.settings, provider.as_ref(), &subject.kind),
            _ => false,
        };
        ToApply {
            event,
            notification,
            confirm_final,
        }
    }

    fn notify_held(&self, held: usize) {
        if held > 0 {
            tracing::info!(
                held,
                "final status held until the provider's API confirms it (weakly authenticated webhook)"
            );
            self.handle.held.notify_one();
        }
    }

    fn parse(&self, event: &ClaimedEvent) -> Result<Notification, ApplyError> {
        if let Some(notification) = event.stored_notification() {
            return Ok(notification);
        }
        let provider = self
            .providers
            .get(&event.provider)
            .ok_or_else(|| ApplyError::UnknownProvider(event.provider.clone()))?;
        provider
            .parse(event.body.as_deref().unwrap_or_default())
            .map_err(|e| ApplyError::Parse(e.to_string()))?
            .into_storable()
            .map_err(ApplyError::Unstorable)
    }

    /// Schedules a retry with backoff, or declares the event dead after its
    /// last attempt or at once when retrying cannot help; the error is kept
    /// either way.
    async fn record_failure(&self, event: &ClaimedEvent, error: &ApplyError) {
        // This attempt's number: the stored count does not include it yet.
        let attempts = u32::try_from(event.attempts).unwrap_or(0).saturating_add(1);
        let dead = attempts >= self.max_attempts || error.is_permanent();
        let retry_in = self.backoff(attempts);
        let message = error.to_string();
        counter!(metric::APPLY_FAILURES, "result" => if dead { "dead" } else { "retry" }).increment(1);
        match dead {
            true => {
                tracing::error!(id = event.id, event_id = %event.event_id, error = %message, attempts, "event is dead after its last attempt")
            }
            false => {
                tracing::warn!(id = event.id, event_id = %event.event_id, error = %message, attempts, retry_in_ms = retry_in.as_millis() as u64, "event failed; will retry")
            }
        }
        if let Err(error) = self.store.queue().fail(event.id, &message, dead, retry_in).await {
            tracing::warn!(%error, "could not record the failure; the event stays queued and is tried again");
        }
    }

    /// `base * 2^(attempts-1)`, capped at the configured maximum.
    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        self.retry_base.saturating_mul(factor).min(self.retry_max)
    }
}

/// Clears the running flag however the loop ends (return or panic), so
/// `/readyz` reports a dead worker.
struct RunningGuard(Arc<AtomicBool>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}
