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
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Settings,
    providers::{within_deadline, PollError, Provider, Providers, CALL_DEADLINE},
    store::{DueAgreement, PollRecord, Store},
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
}

impl Reconciler {
    pub fn new(store: Store, providers: Providers, settings: Arc<Settings>) -> Self {
        let pace = Pace::per_minute(settings.reconcile.max_per_minute);
        Self {
            store,
            providers,
            settings,
            pace,
        }
    }

    /// Runs until `shutdown`. Claims not yet worked on then are given back;
    /// calls in flight are abandoned (their claims lapse after the lease).
    pub async fn run(self, shutdown: CancellationToken) {
        let pollable: Vec<&'static str> = self
            .providers
            .iter()
            .filter(|p| p.can_poll())
            .map(|p| p.name())
            .collect();
        let interval = self.settings.reconcile.interval.get();
        while !shutdown.is_cancelled() {
            self.check_silence().await;
            if !pollable.is_empty() {
                self.reconcile(&pollable, &shutdown).await;
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(interval) => {}
            }
        }
        tracing::info!("reconciler stopped");
    }

    /// Works through the due agreements, `concurrency` at a time, up to one
    /// minute's worth of calls per tick so silence checks keep running.
    async fn reconcile(&self, pollable: &[&str], shutdown: &CancellationToken) {
        let batch_size = self.settings.reconcile.concurrency;
        let mut budget = self.settings.reconcile.max_per_minute as usize;
        while budget > 0 && !shutdown.is_cancelled() {
            let limit = batch_size.min(budget);
            let claimed = self
                .store
                .polling()
                .claim_due(
                    pollable,
                    self.settings.reconcile.stale_after.get(),
                    limit as i64,
                    CLAIM_LEASE,
                )
                .await;
            let batch = match claimed {
                Ok(batch) if batch.is_empty() => return,
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, "reconciler cannot claim agreements; trying again next interval");
                    return;
                }
            };
            budget = budget.saturating_sub(batch.len());
            let work = futures::future::join_all(batch.iter().map(|due| self.handle(due)));
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

    async fn handle(&self, due: &DueAgreement) {
        let Some(provider) = self.providers.get(&due.provider) else {
            return;
        };
        let record = match due.is_terminal() {
            true => self.remove_webhook(provider.as_ref(), due).await,
            false => self.poll(provider.as_ref(), due).await,
        };
        if let Err(error) = self.store.polling().record(due, &record).await {
            tracing::warn!(%error, provider = %due.provider, agreement_id = %due.agreement_id,
                "could not record the poll; the claim lapses and it is polled again");
        }
    }

    async fn poll(&self, provider: &dyn Provider, due: &DueAgreement) -> PollRecord {
        let name = provider.name();
        let id = due.agreement_id.as_str();
        self.pace.wait().await;
        let polled = within_deadline(provider.poll(id)).await;
        let subject = match polled {
            Ok(subject) => subject,
            Err(PollError::NotFound) => {
                counter!(metric::POLLS, "provider" => name, "outcome" => "not_found").increment(1);
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
        match self.store.agreements().apply_poll(name, &subject, Utc::now()).await {
            Ok(changed) => {
                let outcome = if changed { "changed" } else { "unchanged" };
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
                let _ = watching::register(&self.store, provider, id, &url, self.fast_interval()).await;
            }
        }
        PollRecord::Done {
            fast_interval: self.fast_interval(),
        }
    }

    /// Counted, logged once for this attempt (the error never holds a
    /// secret: see `PollError`), and backed off.
    fn poll_failed(&self, provider: &'static str, due: &DueAgreement, error: String) -> PollRecord {
        let retry_in = self.retry_in(due.poll_failures);
        counter!(metric::POLLS, "provider" => provider, "outcome" => "failed").increment(1);
        tracing::warn!(
            provider,
            agreement_id = %due.agreement_id,
            %error,
            failures = due.poll_failures + 1,
            retry_in_secs = retry_in.as_secs(),
            "poll failed; backing off"
        );
        PollRecord::Failed { error, retry_in }
    }

    /// The agreement is finished: its webhook has nothing left to tell.
    async fn remove_webhook(&self, provider: &dyn Provider, due: &DueAgreement) -> PollRecord {
        let name = provider.name();
        let done = PollRecord::Done {
            fast_interval: self.fast_interval(),
        };
        if due.webhook_id.is_some() {
            self.pace.wait().await;
        }
        match watching::remove(&self.store, provider, &due.agreement_id, due.webhook_id.as_deref()).await {
            Ok(()) => done,
            Err(WatchingError::Store(error)) => PollRecord::Failed {
                error: error.to_string(),
                retry_in: self.fast_interval(),
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
    /// replica sees it first) and polls its open agreements at once; then
    /// publishes every provider's silence and last webhook as gauges.
    async fn check_silence(&self) {
        let silence_after = self.settings.reconcile.silence_after.get();
        for provider in self.providers.iter() {
            let name = provider.name();
            match self.store.activity().begin_silence(name, silence_after).await {
                Ok(Some(since)) => {
                    let polled = match provider.can_poll() {
                        true => self.store.polling().poll_all_now(name).await.unwrap_or_else(|error| {
                            tracing::warn!(%error, provider = name, "could not schedule the silent provider's agreements");
                            0
                        }),
                        false => 0,
                    };
                    tracing::warn!(
                        provider = name,
                        quiet_since = %since,
                        polling = provider.can_poll(),
                        agreements_polled_now = polled,
                        "provider has sent no webhook for SIGNHOOK_SILENCE_AFTER while it has open agreements; its webhook may be disabled"
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
    }

    fn fast_interval(&self) -> Duration {
        self.settings.reconcile.fast_interval.get()
    }

    /// After `failures` failures in a row: the fast interval, doubling, at
    /// most the stale period.
    fn retry_in(&self, failures: i32) -> Duration {
        let factor = 2u32.saturating_pow(failures.clamp(0, 20) as u32);
        let cap = self.settings.reconcile.stale_after.get().max(self.fast_interval());
        self.fast_interval().saturating_mul(factor).min(cap)
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
