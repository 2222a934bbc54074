//! The reconciler: the backup for lost webhooks. Every
//! `SIGNHOOK_RECONCILE_INTERVAL` it claims, in the database, the open agreements
//! of pollable providers that have heard nothing for
//! `SIGNHOOK_RECONCILE_STALE_AFTER`, polls them at a bounded rate and
//! concurrency, and applies what it reads with the webhook rules
//! (`Agreements::apply_poll`). It also retries failed per-agreement webhook
//! registrations and removes the webhooks of finished agreements (through
//! `watching`), and notices providers that have gone silent.
//!
//! Claims are rows (`poll_locked_until`), never memory, so any number of
//! replicas can run it: an agreement is polled by one replica at a time.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use metrics::{counter, gauge};
use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    config::Settings,
    confirmation,
    ledger::ApiLimits,
    providers::{within_deadline, CallError, PollError, Provider, Providers, WatchError, CALL_DEADLINE},
    store::{ChangeOrigin, DueAgreement, PollRecord, Store},
    telemetry::metric,
    watching::{self, WatchingError},
};

/// How long a claimed agreement stays invisible to other replicas; a replica
/// that dies mid-poll leaves its claims to lapse after this. Well above a
/// provider call's deadline, so a claim outlives its calls.
const CLAIM_LEASE: Duration = Duration::from_secs(300);
const _: () = assert!(CLAIM_LEASE.as_secs() > 2 * CALL_DEADLINE.as_secs());
/// An agreement the provider does not know is looked at again after this.
const NOT_FOUND_RETRY: Duration = Duration::from_secs(24 * 3600);

pub struct Reconciler {
    store: Store,
    providers: Providers,
    settings: Arc<Settings>,
    pace: Pace,
    /// Notified when this replica's worker holds a final status for
    /// confirmation: the next tick starts at once (other replicas' holds
    /// wait for the interval).
    held_finals: Arc<Notify>,
}

impl Reconciler {
    pub fn new(store: Store, providers: Providers, settings: Arc<Settings>, held_finals: Arc<Notify>) -> Self {
        let pace = Pace::per_minute(settings.reconcile.max_per_minute);
        Self {
            store,
            providers,
            settings,
            pace,
            held_finals,
        }
    }

    /// Runs until `shutdown`. Claims not yet worked on then are given back;
    /// calls in flight are abandoned (their claims lapse after the lease).
    pub async fn run(self, shutdown: CancellationToken) {
        let interval = self.settings.reconcile.interval.get();
        while !shutdown.is_cancelled() {
            self.check_silence().await;
            self.reconcile(&shutdown).await;
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = self.held_finals.notified() => {}
                _ = tokio::time::sleep(interval) => {}
            }
        }
        tracing::info!("reconciler stopped");
    }

    /// The providers that poll, with their accounts' limits.
    fn pollable(&self) -> Vec<(&dyn Provider, ApiLimits)> {
        self.providers
            .iter()
            .filter(|p| p.can_poll())
            .filter_map(|p| Some((p.as_ref(), p.api_limits()?)))
            .collect()
    }

    /// Works through each provider's due agreements, `concurrency` at a
    /// time, up to one minute's worth of calls per tick (so silence checks
    /// keep running) and never more than the shared budget holds.
    async fn reconcile(&self, shutdown: &CancellationToken) {
        let mut budget = self.settings.reconcile.max_per_minute as usize;
        for (provider, limits) in self.pollable() {
            while budget > 0 && !shutdown.is_cancelled() {
                let available = match self.available(provider.name(), limits).await {
                    Some(available) => available,
                    None => break,
                };
                let limit = self.settings.reconcile.concurrency.min(budget).min(available.max(1));
                let claimed = self
                    .store
                    .polling()
                    .claim_due(
                        provider.name(),
                        provider.poll_kinds(),
                        self.settings.reconcile.stale_after.get(),
                        limit as i64,
                        CLAIM_LEASE,
                    )
                    .await;
                let batch = match claimed {
                    Ok(batch) if batch.is_empty() => break,
                    Ok(batch) => batch,
                    Err(error) => {
                        tracing::warn!(%error, "reconciler cannot claim agreements; trying again next interval");
                        return;
                    }
                };
                budget = budget.saturating_sub(batch.len());
                let work = futures::future::join_all(batch.iter().map(|due| self.handle(provider, limits, due)));
                tokio::select! {
                    _ = work => {}
                    _ = shutdown.cancelled() => {
                        if let Err(error) = self.store.polling().release(&batch).await {
                            tracing::warn!(%error, "could not give back claimed agreements; their claims lapse after the lease");
                        }
                        return;
                    }
                }
            }
        }
    }

    /// Calls the provider account's shared budget allows now (at least one
    /// while it is not empty, so a call that waits a moment for it still
    /// goes); `None` while the account is paused, the budget is spent or it
    /// cannot be read.
    async fn available(&self, name: &str, limits: ApiLimits) -> Option<usize> {
        match self.store.budgets().all(&[(name, limits)]).await {
            Ok(rows) => {
                let row = rows.into_iter().next()?;
                (row.paused_until.is_none() && row.available >= 1.0).then_some(row.available.floor() as usize)
            }
            Err(error) => {
                tracing::warn!(%error, provider = name, "cannot read the provider's API budget; not polling it this interval");
                None
            }
        }
    }

    async fn handle(&self, provider: &dyn Provider, limits: ApiLimits, due: &DueAgreement) {
        let record = match due.is_terminal() && !due.confirm_pending {
            true => self.remove_webhook(provider, limits, due).await,
            false => self.poll(provider, limits, due).await,
        };
        if let Err(error) = self.store.polling().record(due, &record).await {
            tracing::warn!(%error, provider = %due.provider, agreement_id = %due.agreement_id,
                "could not record the poll; the claim lapses and it is polled again");
        }
    }

    async fn poll(&self, provider: &dyn Provider, limits: ApiLimits, due: &DueAgreement) -> PollRecord {
        let name = provider.name();
        let id = due.agreement_id.as_str();
        let fast_interval = self.fast_interval(limits);
        self.pace.wait().await;
        // On the database's clock, which times the finals held for confirmation.
        let asked_at = match self.store.now().await {
            Ok(now) => now,
            Err(error) => return self.poll_failed(name, due, format!("could not read the database clock: {error}")),
        };
        let polled = within_deadline(provider.poll_in(id, due.tenant.as_deref())).await;
        let subject = match polled {
            Ok(subject) => subject,
            Err(PollError::Call(error @ CallError::Throttled { wait, .. })) => {
                counter!(metric::POLLS, "provider" => name, "outcome" => "deferred").increment(1);
                tracing::info!(provider = name, agreement_id = id, reason = %error, "poll deferred");
                return PollRecord::Deferred {
                    retry_in: wait,
                    note: format!("not polled yet: {error}"),
                };
            }
            Err(PollError::NotFound) => {
                counter!(metric::POLLS, "provider" => name, "outcome" => "not_found").increment(1);
                match self.store.agreements().unconfirm_held(name, id, asked_at).await {
                    Ok(unconfirmed) => confirmation::report_unconfirmed(name, id, None, &unconfirmed),
                    Err(error) => {
                        return self.poll_failed(name, due, format!("could not record the provider's answer: {error}"))
                    }
                }
                tracing::warn!(
                    provider = name,
                    agreement_id = id,
                    retry_in_secs = NOT_FOUND_RETRY.as_secs(),
                    "the provider does not know this agreement; looking again later"
                );
                return PollRecord::NotFound {
                    retry_in: NOT_FOUND_RETRY,
                };
            }
            Err(error) => return self.poll_failed(name, due, error.to_string()),
        };
        let confirms = |claimed| provider.confirms_final(claimed, &subject);
        let applied = self
            .store
            .agreements()
            .apply_poll(name, &subject, Utc::now(), asked_at, &confirms, ChangeOrigin::Poll)
            .await;
        match applied {
            Ok(applied) => {
                confirmation::report(name, id, subject.provider_status.as_deref(), &applied);
                let outcome = if applied.changed { "changed" } else { "unchanged" };
                counter!(metric::POLLS, "provider" => name, "outcome" => outcome).increment(1);
                tracing::info!(provider = name, agreement_id = id, outcome, status = ?subject.status.map(|s| s.as_str()), "agreement polled");
            }
            Err(error) => return self.poll_failed(name, due, format!("could not apply the status: {error}")),
        }
        let finished = subject.status.is_some_and(|s| s.is_terminal());
        if due.watch_pending && !finished {
            if let Some(url) = self.settings.server.webhook_url(name) {
                self.pace.wait().await;
                // Outcome counted and logged inside; a failure keeps the flag.
                let _ = watching::register(&self.store, provider, id, &url, fast_interval).await;
            }
        }
        PollRecord::Done { fast_interval }
    }

    /// Counted, logged (the error never holds a secret: see `PollError`) —
    /// at WARN once for a run of the same error, then at DEBUG — and backed
    /// off.
    fn poll_failed(&self, provider: &'static str, due: &DueAgreement, error: String) -> PollRecord {
        let retry_in = self.retry_in(due.poll_failures);
        counter!(metric::POLLS, "provider" => provider, "outcome" => "failed").increment(1);
        if due.last_poll_error.as_deref() == Some(error.as_str()) {
            tracing::debug!(provider, agreement_id = %due.agreement_id, %error, failures = due.poll_failures + 1,
                retry_in_secs = retry_in.as_secs(), "poll failed again; backing off");
        } else {
            tracing::warn!(
                provider,
                agreement_id = %due.agreement_id,
                %error,
                failures = due.poll_failures + 1,
                retry_in_secs = retry_in.as_secs(),
                "poll failed; backing off"
            );
        }
        PollRecord::Failed { error, retry_in }
    }

    /// The agreement is finished: its webhook has nothing left to tell.
    async fn remove_webhook(&self, provider: &dyn Provider, limits: ApiLimits, due: &DueAgreement) -> PollRecord {
        let name = provider.name();
        let fast_interval = self.fast_interval(limits);
        let done = PollRecord::Done { fast_interval };
        if due.webhook_id.is_some() {
            self.pace.wait().await;
        }
        match watching::remove(&self.store, provider, &due.agreement_id, due.webhook_id.as_deref()).await {
            Ok(()) => done,
            Err(WatchingError::Store(error)) => PollRecord::Failed {
                error: error.to_string(),
                retry_in: fast_interval,
            },
            Err(WatchingError::Provider(WatchError::Api(PollError::Call(
                error @ CallError::Throttled { wait, .. },
            )))) => PollRecord::Deferred {
                retry_in: wait,
                note: format!("webhook not removed yet: {error}"),
            },
            Err(error) => {
                let retry_in = self.retry_in(due.poll_failures);
                tracing::warn!(provider = name, agreement_id = %due.agreement_id, %error,
                    retry_in_secs = retry_in.as_secs(), "could not remove the finished agreement's webhook; will retry");
                PollRecord::Failed {
                    error: format!("removing the webhook: {error}"),
                    retry_in,
                }
            }
        }
    }

    /// Opens a silence for each provider that has gone quiet (once, whichever
    /// replica sees it first) and schedules its open agreements, spread over
    /// its API budget; then publishes every provider's silence and API pause
    /// as gauges.
    async fn check_silence(&self) {
        let silence_after = self.settings.reconcile.silence_after.get();
        for provider in self.providers.iter() {
            let name = provider.name();
            match self.store.activity().begin_silence(name, silence_after).await {
                Ok(Some(since)) => {
                    let polled = match provider.api_limits().filter(|_| provider.can_poll()) {
                        Some(limits) => self
                            .store
                            .polling()
                            .poll_all_soon(name, provider.poll_kinds(), limits.spacing(), limits.min_interval)
                            .await
                            .unwrap_or_else(|error| {
                                tracing::warn!(%error, provider = name, "could not schedule the silent provider's agreements");
                                0
                            }),
                        None => 0,
                    };
                    tracing::warn!(
                        provider = name,
                        quiet_since = %since,
                        polling = provider.can_poll(),
                        agreements_polled_soon = polled,
                        "provider has sent no webhook for SIGNHOOK_SILENCE_AFTER while it has open agreements; its webhook may be disabled (its agreements are polled, spread over its API budget)"
                    );
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, provider = name, "silence check failed"),
            }
            if let Err(error) = self.store.activity().end_idle_silence(name).await {
                tracing::warn!(%error, provider = name, "silence check failed");
            }
        }
        match self.store.activity().all().await {
            Ok(rows) => {
                for provider in self.providers.iter() {
                    let name = provider.name();
                    let row = rows.iter().find(|row| row.provider == name);
                    let silent = row.is_some_and(|row| row.silent_since.is_some());
                    gauge!(metric::PROVIDER_SILENT, "provider" => name).set(if silent { 1.0 } else { 0.0 });
                }
            }
            Err(error) => tracing::warn!(%error, "could not read provider activity"),
        }
        let pollable = self.pollable();
        let limits: Vec<(&str, ApiLimits)> = pollable.iter().map(|(p, l)| (p.name(), *l)).collect();
        match self.store.budgets().all(&limits).await {
            Ok(rows) => {
                for row in rows {
                    let paused = if row.paused_until.is_some() { 1.0 } else { 0.0 };
                    if let Some((provider, _)) = pollable.iter().find(|(p, _)| p.name() == row.account) {
                        gauge!(metric::PROVIDER_API_PAUSED, "provider" => provider.name()).set(paused);
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not read the provider API budgets"),
        }
    }

    /// The fast polling period, never below the account's minimum interval.
    fn fast_interval(&self, limits: ApiLimits) -> Duration {
        watching::fast_interval(self.settings.reconcile.fast_interval.get(), Some(limits))
    }

    /// After `failures` failures in a row: the fast interval, doubling, at
    /// most the stale period.
    fn retry_in(&self, failures: i32) -> Duration {
        let fast = self.settings.reconcile.fast_interval.get();
        let factor = 2u32.saturating_pow(failures.clamp(0, 20) as u32);
        let cap = self.settings.reconcile.stale_after.get().max(fast);
        fast.saturating_mul(factor).min(cap)
    }
}

/// Spaces provider calls evenly: at most `n` per minute from this replica.
struct Pace {
    gap: Duration,
    next: Mutex<Instant>,
}

impl Pace {
    fn per_minute(n: u32) -> Self {
        Self {
            gap: Duration::from_secs(60) / n.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this call's slot.
    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().expect("the pace lock is never held across a panic");
            let slot = (*next).max(Instant::now());
            *next = slot + self.gap;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pace_spaces_calls_evenly() {
        let pace = Pace::per_minute(120);
        let started = Instant::now();
        for _ in 0..5 {
            pace.wait().await;
        }
        assert_eq!(started.elapsed(), Duration::from_millis(2000));
    }
}
