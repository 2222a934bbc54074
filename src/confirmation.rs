//! Confirming final statuses that anyone could have sent. Adobe Sign's
//! client ID (without webhook OAuth) and FuseSign's `Fuse-Signature` are
//! values an outsider may know, so a webhook carrying only them must not
//! finish an agreement on its own word: the worker holds its final status
//! ([`needed`]; the fold's `Change::confirm_final`) and marks the agreement
//! due for a poll; the reconciler (or a refresh) reads the agreement from the
//! provider's API, through the shared budget, and resolves what is held
//! (`Agreements::apply_poll`): the provider's answer wins, and what it
//! contradicts is reported here ([`report`]).

use metrics::counter;

use crate::{
    config::WorkerSettings,
    providers::Provider,
    store::{HeldEvent, PollApplied},
    telemetry::metric,
};

/// Whether a final status from `provider`'s webhooks about a `kind` is held
/// for confirmation: the setting is on, the provider's webhooks are weakly
/// authenticated, and its API can read that kind. Without an API nothing can
/// confirm it, and it is applied as before (see the README's Security section).
pub fn needed(settings: &WorkerSettings, provider: &dyn Provider, kind: &str) -> bool {
    settings.confirm_weak_finals
        && provider.weakly_authenticated()
        && provider.can_poll()
        && provider.poll_kinds().contains(&kind)
}

/// Counts what a poll resolved, and warns about each final status the
/// provider contradicted (`read`: the provider's answer, as its own word).
pub fn report(provider: &'static str, agreement_id: &str, read: Option<&str>, applied: &PollApplied) {
    if !applied.confirmed.is_empty() {
        counter!(metric::CONFIRMED_EVENTS, "provider" => provider).increment(applied.confirmed.len() as u64);
    }
    report_unconfirmed(provider, agreement_id, read, &applied.unconfirmed);
}

/// Counts and warns about final statuses the provider contradicted; `read`
/// is what the provider answered (`None`: it does not know the agreement).
pub fn report_unconfirmed(provider: &'static str, agreement_id: &str, read: Option<&str>, unconfirmed: &[HeldEvent]) {
    if unconfirmed.is_empty() {
        return;
    }
    counter!(metric::UNCONFIRMED_EVENTS, "provider" => provider).increment(unconfirmed.len() as u64);
    for held in unconfirmed {
        tracing::warn!(
            provider,
            agreement_id,
            event_id = held.event_id.as_deref().unwrap_or_default(),
            event_type = %held.event_type,
            claimed_status = held.status.as_deref().unwrap_or_default(),
            provider_says = read.unwrap_or("no such agreement"),
            "a final status from a weakly authenticated webhook was not confirmed by the provider's API; \
             the provider's answer wins and the event is marked unconfirmed (forged, or sent for another account)"
        );
    }
}
