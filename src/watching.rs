//! Watching one agreement: a webhook registered for it at the provider, so
//! that it does not wait for the account webhook or a poll. One use case for
//! both its callers: the admin API (`POST`/`DELETE .../watch`) and the
//! reconciler (retrying failed registrations, removing the webhooks of
//! finished agreements). Outcomes are counted in
//! `signhook_webhook_registrations_total`.

use std::time::Duration;

use metrics::counter;

use crate::{
    ledger::ApiLimits,
    providers::{within_deadline, PollError, Provider, WatchError},
    store::{Store, StoreError},
    telemetry::metric,
};

/// Why watching or unwatching an agreement did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WatchingError {
    /// Unwatching an agreement signhook has never seen.
    #[error("the agreement has never been seen")]
    NotSeen,
    /// Watching a finished agreement: there is nothing left to hear.
    #[error("the agreement is finished")]
    Finished,
    /// The provider refused or failed; see [`WatchError`].
    #[error(transparent)]
    Provider(#[from] WatchError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The period of fast polling while a registration is pending: the
/// configured one, but never below the account's minimum interval between
/// identical GETs (Adobe's 10 minutes), which would only be refused.
pub fn fast_interval(configured: Duration, limits: Option<ApiLimits>) -> Duration {
    configured.max(limits.map_or(Duration::ZERO, |l| l.min_interval))
}

/// Watches an open agreement (creating it without a status if never seen):
/// nothing to do when it is watched already, else [`register`].
pub async fn watch(
    store: &Store,
    provider: &dyn Provider,
    agreement_id: &str,
    webhook_url: &str,
    fast_interval: Duration,
) -> Result<(), WatchingError> {
    let current = store.watches().state(provider.name(), agreement_id).await?;
    if current.as_ref().is_some_and(|c| c.terminal) {
        return Err(WatchingError::Finished);
    }
    if current.as_ref().is_some_and(|c| c.webhook_id.is_some()) {
        return Ok(());
    }
    register(store, provider, agreement_id, webhook_url, fast_interval).await?;
    Ok(())
}

/// Registers the agreement's webhook at `webhook_url` and records the outcome:
/// the webhook id on success; on failure the agreement goes on the fast
/// polling schedule (the reconciler retries the registration on each of those
/// polls). Returns the webhook id on record.
pub async fn register(
    store: &Store,
    provider: &dyn Provider,
    agreement_id: &str,
    webhook_url: &str,
    fast_interval: Duration,
) -> Result<String, WatchingError> {
    let name = provider.name();
    let Some(kind) = provider.watch_kind() else {
        return Err(WatchError::Unsupported.into());
    };
    let count = |outcome: &'static str| {
        counter!(metric::WEBHOOK_REGISTRATIONS, "provider" => name, "outcome" => outcome).increment(1)
    };
    match within_deadline(provider.watch(agreement_id, webhook_url)).await {
        Ok(webhook_id) => {
            let recorded = store
                .watches()
                .registered(name, agreement_id, kind, &webhook_id)
                .await?;
            count("registered");
            tracing::info!(provider = name, agreement_id, webhook_id = %recorded, "agreement webhook registered");
            if recorded != webhook_id {
                // A concurrent registration won; ours would deliver everything twice.
                if let Err(error) = within_deadline(provider.unwatch(&webhook_id)).await {
                    tracing::warn!(provider = name, agreement_id, surplus_webhook_id = %webhook_id, %error,
                        "could not delete a surplus webhook; delete it at the provider");
                }
            }
            Ok(recorded)
        }
        Err(error @ (WatchError::Unsupported | WatchError::Api(PollError::NotConfigured))) => Err(error.into()),
        Err(WatchError::Api(PollError::NotFound)) => {
            count("not_found");
            tracing::warn!(
                provider = name,
                agreement_id,
                "the provider does not know this agreement; no webhook registered"
            );
            store.watches().removed(name, agreement_id).await?;
            Err(WatchError::Api(PollError::NotFound).into())
        }
        Err(error) => {
            count("failed");
            tracing::warn!(
                provider = name,
                agreement_id,
                %error,
                fast_interval_secs = fast_interval.as_secs(),
                "webhook registration failed; polling the agreement on the fast schedule and retrying"
            );
            store.watches().failed(name, agreement_id, kind, fast_interval).await?;
            Err(error.into())
        }
    }
}

/// Stops watching an agreement: [`remove`] with the webhook on record.
pub async fn unwatch(store: &Store, provider: &dyn Provider, agreement_id: &str) -> Result<(), WatchingError> {
    let current = store.watches().state(provider.name(), agreement_id).await?;
    let current = current.ok_or(WatchingError::NotSeen)?;
    remove(store, provider, agreement_id, current.webhook_id.as_deref()).await
}

/// Deletes the agreement's webhook `webhook_id` at the provider (one the
/// provider no longer knows counts as deleted) and forgets it, or ends a
/// pending registration. If the provider fails, the webhook stays on record.
pub async fn remove(
    store: &Store,
    provider: &dyn Provider,
    agreement_id: &str,
    webhook_id: Option<&str>,
) -> Result<(), WatchingError> {
    let name = provider.name();
    if let Some(webhook_id) = webhook_id {
        let count = |outcome: &'static str| {
            counter!(metric::WEBHOOK_REGISTRATIONS, "provider" => name, "outcome" => outcome).increment(1)
        };
        match within_deadline(provider.unwatch(webhook_id)).await {
            Ok(()) | Err(WatchError::Api(PollError::NotFound)) => {
                count("removed");
                tracing::info!(provider = name, agreement_id, "agreement webhook removed");
            }
            Err(error) => {
                count("remove_failed");
                return Err(error.into());
            }
        }
    }
    store.watches().removed(name, agreement_id).await?;
    Ok(())
}
