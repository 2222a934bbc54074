//! Agreements and their history. Events are applied in batches, one
//! transaction per batch: each event locks its agreement row, is recorded in
//! history (once: UNIQUE on the event), and is folded into its agreement by
//! [`AgreementState::apply`]; then the whole batch is marked processed. Rows are locked in
//! one global order (provider, agreement id), so concurrent batches — other
//! worker loops, other replicas — wait for each other but never deadlock.
//! A final status the fold holds for confirmation is marked `pending` in
//! history; the poll that reads the agreement ([`Agreements::apply_poll`])
//! resolves it, always locking the agreement row before its history rows.

use std::{
    collections::{HashMap, HashSet},
    sync::LazyLock,
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection, PgPool};

use super::{
    changes::{record_changes, ChangeOrigin, ChangeType, NewChange},
    documents::record_completions,
    AgreementDeliveries, ClaimedEvent, Deliveries, DocumentView, StoreError,
};
use crate::{
    agreement::{ordering_time, AgreementState, AgreementStatus, Change, Folded, Previous, Source},
    event::{Notification, Parent, Subject},
};

#[derive(Debug, Serialize, FromRow, utoipa::ToSchema)]
pub struct AgreementView {
    pub provider: String,
    pub agreement_id: String,
    pub resource_type: String,
    pub status: Option<String>,
    pub provider_status: Option<String>,
    pub name: Option<String>,
    /// The resource it was made from (an Adobe Sign web form, `widget`, or
    /// bulk send, `megaSign`), when the provider said.
    pub parent_type: Option<String>,
    pub parent_id: Option<String>,
    pub last_event_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// The per-agreement webhook registered at the provider, if any.
    pub webhook_id: Option<String>,
    /// Registering its webhook failed: polled on the fast schedule and the
    /// registration retried.
    pub watch_pending: bool,
    pub last_polled_at: Option<DateTime<Utc>>,
    /// When the reconciler polls it next, if earlier or later than "when stale".
    pub next_poll_at: Option<DateTime<Utc>>,
    /// Failed polls in a row, and the last failure.
    pub poll_failures: i32,
    pub last_poll_error: Option<String>,
    /// A final status from a weakly authenticated webhook waits for the
    /// provider's API to confirm it (its history entry says `pending`).
    pub confirm_pending: bool,
    #[sqlx(skip)]
    pub history: Vec<HistoryEntry>,
    /// Its changes' deliveries to the application, per destination.
    #[sqlx(skip)]
    pub deliveries: Vec<AgreementDeliveries>,
    /// The copies kept of a completed agreement (signed PDF, audit trail).
    #[sqlx(skip)]
    pub documents: Vec<DocumentView>,
}

#[derive(Debug, Serialize, FromRow, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// The provider's event id; none for a status read by polling.
    pub event_id: Option<String>,
    pub event_type: String,
    pub status: Option<String>,
    pub provider_status: Option<String>,
    /// The time the entry is ordered by: the event's own time, or its
    /// receipt when `occurred_at_clamped`.
    pub occurred_at: DateTime<Utc>,
    /// The event stated a time more than `SIGNHOOK_EVENT_MAX_FUTURE_SKEW`
    /// after it was received (`stated_occurred_at`); it is ordered at its
    /// receipt instead.
    pub occurred_at_clamped: bool,
    pub stated_occurred_at: Option<DateTime<Utc>>,
    pub source: String,
    /// For a final status from a weakly authenticated webhook: `pending`
    /// (held until the provider's API is read), `confirmed` (the provider
    /// agreed; applied) or `unconfirmed` (the provider said otherwise; not
    /// applied). None: no confirmation was needed.
    pub confirmation: Option<String>,
}

/// A claimed event to apply, with its parsed notification.
#[derive(Clone, Copy)]
pub struct ToApply<'a> {
    pub event: &'a ClaimedEvent,
    pub notification: &'a Notification,
    /// A final status it sets waits for the provider's confirmation (see
    /// [`Change::confirm_final`]).
    pub confirm_final: bool,
}

/// A held final status, as a poll resolves it.
#[derive(Debug, Clone, FromRow)]
pub struct HeldEvent {
    id: i64,
    pub event_id: Option<String>,
    pub event_type: String,
    pub status: Option<String>,
    pub provider_status: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// What applying a poll did.
#[derive(Debug, Default)]
pub struct PollApplied {
    /// The provider's status differed from the one recorded: a history
    /// entry (source `poll`) was written.
    pub changed: bool,
    /// Held final statuses the provider's answer confirms: applied.
    pub confirmed: Vec<HeldEvent>,
    /// Held final statuses the provider's answer contradicts: not applied.
    pub unconfirmed: Vec<HeldEvent>,
}

/// Open agreements, as SQL over `agreements`: the status is not one of
/// [`AgreementStatus::TERMINAL`]. Written out, not bound, so the partial
/// index of the migration applies (a unit test holds the two together).
pub(super) static OPEN: LazyLock<String> = LazyLock::new(|| {
    let terminal: Vec<String> = AgreementStatus::TERMINAL
        .iter()
        .map(|status| format!("'{}'", status.as_str()))
        .collect();
    format!("(status IS NULL OR status NOT IN ({}))", terminal.join(", "))
});

/// Counter rows per provider in `event_totals`; a batch picks one by its
/// first event's id.
const TOTALS_SHARDS: i64 = 16;

/// Agreements and their history; see [`super::Store::agreements`].
#[derive(Clone, Copy)]
pub struct Agreements<'a> {
    pub(super) pool: &'a PgPool,
}

impl Agreements<'_> {
    /// Applies claimed events (each with its parsed notification) inside the
    /// transaction that claimed them and marks them processed, in four
    /// statements whatever the batch size: lock (or create) every agreement
    /// the batch touches, record the history rows, write each agreement's new
    /// state, mark the events processed. Applying an event twice changes
    /// nothing the second time: only events whose history row is new move
    /// their agreement. Events are ordered by [`ordering_time`] with
    /// `max_future_skew`. Returns how many final statuses were held for
    /// confirmation. The caller commits.
    pub async fn apply_claimed(
        tx: &mut PgConnection,
        items: &[ToApply<'_>],
        max_future_skew: chrono::Duration,
    ) -> Result<usize, StoreError> {
        // Each agreement's events in the order they happened; agreements in
        // one global order, so concurrent batches lock rows in the same order
        // and wait for each other instead of deadlocking.
        let mut applied: Vec<Applied> = items
            .iter()
            .filter_map(|item| {
                let subject = item.notification.subject.as_ref()?;
                let ordered = ordering_time(item.notification.occurred_at, item.event.received_at, max_future_skew);
                Some(Applied {
                    event: item.event,
                    event_id: &item.notification.event_id,
                    subject,
                    occurred_at: ordered.at,
                    stated_at: item.notification.occurred_at.filter(|_| ordered.clamped),
                    confirm_final: item.confirm_final,
                })
            })
            .collect();
        applied.sort_by(|a, b| {
            (&a.event.provider, &a.subject.id, a.occurred_at, a.event.id).cmp(&(
                &b.event.provider,
                &b.subject.id,
                b.occurred_at,
                b.event.id,
            ))
        });
        let held = match applied.is_empty() {
            true => 0,
            false => apply_sorted(tx, &applied).await?,
        };
        let ids: Vec<i64> = items.iter().map(|item| item.event.id).collect();
        // Counted in provider order, the last lock the batch takes, so two
        // batches on the same shard never wait for each other in a cycle.
        sqlx::query(
            "WITH done AS (DELETE FROM event_queue WHERE id = ANY($1)),
                  applied AS (
                      UPDATE events SET state = 'processed', processed_at = now(), attempts = attempts + 1,
                                        last_error = NULL
                       WHERE id = ANY($1) AND state <> 'processed'
                       RETURNING provider)
             INSERT INTO event_totals AS t (provider, shard, processed)
             SELECT provider, $2, count(*) FROM applied GROUP BY provider ORDER BY provider
             ON CONFLICT (provider, shard) DO UPDATE SET processed = t.processed + EXCLUDED.processed",
        )
        .bind(&ids)
        .bind((ids.first().copied().unwrap_or_default() % TOTALS_SHARDS) as i16)
        .execute(&mut *tx)
        .await?;
        Ok(held)
    }

    /// Applies a status read from the provider's API at `observed_at` with
    /// the same fold as events. A history entry (source `poll`) is written
    /// only when the provider's status differs from the one recorded, so
    /// polling an unchanged agreement adds nothing.
    ///
    /// It also resolves the final statuses held for confirmation before
    /// `asked_at` (when the provider was asked; one held later may be newer
    /// than its answer and waits for the next poll): those `confirms` accepts
    /// are applied at their own time, the others are marked unconfirmed and
    /// the provider's answer wins. A confirmed final is the more precise of
    /// the two (Adobe shows a rejected agreement as cancelled), so then the
    /// poll's status is recorded but not applied.
    ///
    /// A status the fold adopts (from the poll or a confirmed held final) is
    /// recorded as one change from `origin` (a poll or a refresh).
    pub async fn apply_poll(
        &self,
        provider: &str,
        subject: &Subject,
        observed_at: DateTime<Utc>,
        asked_at: DateTime<Utc>,
        confirms: &(dyn Fn(AgreementStatus) -> bool + Sync),
        origin: ChangeOrigin,
    ) -> Result<PollApplied, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row: AgreementRow = sqlx::query_as(
            "INSERT INTO agreements (provider, agreement_id, resource_type) VALUES ($1, $2, $3)
             ON CONFLICT (provider, agreement_id) DO UPDATE SET provider = EXCLUDED.provider
             RETURNING provider, agreement_id, resource_type, status, status_at, provider_status, name, last_event_at,
                       confirm_pending",
        )
        .bind(provider)
        .bind(&subject.id)
        .bind(&subject.kind)
        .fetch_one(&mut *tx)
        .await?;
        let row_kind = row.resource_type.clone();
        let mut state = row.state();
        let before = state.clone();
        let mut outcome = PollApplied::default();
        if state.confirm_pending {
            for held in take_held(&mut tx, provider, &subject.id, asked_at).await? {
                let status = held.status.as_deref().and_then(AgreementStatus::parse);
                match status.filter(|status| confirms(*status)) {
                    Some(status) => {
                        state.apply(&Change {
                            source: Source::Event,
                            at: held.occurred_at,
                            status: Some(status),
                            provider_status: held.provider_status.as_deref(),
                            name: None,
                            confirm_final: false,
                        });
                        outcome.confirmed.push(held);
                    }
                    None => outcome.unconfirmed.push(held),
                }
            }
            resolve_held(&mut tx, &outcome.confirmed, &outcome.unconfirmed).await?;
            state.confirm_pending = still_held(&mut tx, provider, &subject.id).await?;
        }
        let observed = (
            subject.status.map(|s| s.as_str().to_owned()),
            subject.provider_status.clone(),
        );
        let recorded = (before.status, &before.provider_status) == (subject.status, &subject.provider_status)
            || last_poll(&mut tx, provider, &subject.id).await?.as_ref() == Some(&observed);
        if !recorded {
            sqlx::query(
                "INSERT INTO agreement_history (provider, agreement_id, event_type, status, provider_status,
                                                occurred_at, source)
                 VALUES ($1, $2, 'poll', $3, $4, $5, 'poll')",
            )
            .bind(provider)
            .bind(&subject.id)
            .bind(subject.status.map(AgreementStatus::as_str))
            .bind(&subject.provider_status)
            .bind(observed_at)
            .execute(&mut *tx)
            .await?;
            let mut change = subject.change(Source::Poll, observed_at);
            if !outcome.confirmed.is_empty() {
                change.status = None;
            }
            state.apply(&change);
        }
        if state != before {
            write_states(&mut tx, &[(provider, subject.id.as_str(), &state)]).await?;
            if became_completed(before.status, &state) {
                record_completions(&mut tx, &[(provider, subject.id.as_str())]).await?;
            }
            if (state.status, &state.provider_status) != (before.status, &before.provider_status) {
                let change = NewChange {
                    kind: ChangeType::StatusChanged,
                    provider,
                    agreement_id: &subject.id,
                    resource_type: &row_kind,
                    name: state.name.clone(),
                    previous: Previous {
                        status: before.status,
                        provider_status: before.provider_status.clone(),
                    },
                    status: state.status,
                    provider_status: state.provider_status.clone(),
                    occurred_at: observed_at,
                    event_id: None,
                    origin,
                    documents: Vec::new(),
                };
                record_changes(&mut tx, &[change]).await?;
            }
        }
        // Committed either way: the poll may have created the agreement.
        tx.commit().await?;
        outcome.changed = !recorded;
        Ok(outcome)
    }

    /// The provider does not know the agreement: every final status held
    /// for it before `asked_at` is unconfirmed (and none is applied).
    pub async fn unconfirm_held(
        &self,
        provider: &str,
        agreement_id: &str,
        asked_at: DateTime<Utc>,
    ) -> Result<Vec<HeldEvent>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let pending: Option<bool> = sqlx::query_scalar(
            "SELECT confirm_pending FROM agreements WHERE provider = $1 AND agreement_id = $2 FOR UPDATE",
        )
        .bind(provider)
        .bind(agreement_id)
        .fetch_optional(&mut *tx)
        .await?;
        if pending != Some(true) {
            return Ok(Vec::new());
        }
        let unconfirmed = take_held(&mut tx, provider, agreement_id, asked_at).await?;
        resolve_held(&mut tx, &[], &unconfirmed).await?;
        let still = still_held(&mut tx, provider, agreement_id).await?;
        sqlx::query("UPDATE agreements SET confirm_pending = $3 WHERE provider = $1 AND agreement_id = $2")
            .bind(provider)
            .bind(agreement_id)
            .bind(still)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(unconfirmed)
    }

    /// The agreement and its history, oldest first.
    pub async fn get(&self, provider: &str, agreement_id: &str) -> Result<Option<AgreementView>, StoreError> {
        let Some(mut view): Option<AgreementView> = sqlx::query_as(
            "SELECT provider, agreement_id, resource_type, status, provider_status, name, parent_type, parent_id,
                    last_event_at, updated_at, webhook_id, watch_pending, last_polled_at, next_poll_at, poll_failures, last_poll_error,
                    confirm_pending
               FROM agreements WHERE provider = $1 AND agreement_id = $2",
        )
        .bind(provider)
        .bind(agreement_id)
        .fetch_optional(self.pool)
        .await?
        else {
            return Ok(None);
        };
        view.history = sqlx::query_as(
            "SELECT event_id, event_type, status, provider_status, occurred_at,
                    stated_occurred_at IS NOT NULL AS occurred_at_clamped, stated_occurred_at, source, confirmation
               FROM agreement_history WHERE provider = $1 AND agreement_id = $2
              ORDER BY occurred_at, id",
        )
        .bind(provider)
        .bind(agreement_id)
        .fetch_all(self.pool)
        .await?;
        view.deliveries = Deliveries { pool: self.pool }
            .for_agreement(provider, agreement_id)
            .await?;
        view.documents = super::Documents { pool: self.pool }
            .list(provider, agreement_id)
            .await?;
        Ok(Some(view))
    }
}

/// An agreement in a listing (its history and deliveries: the single view).
#[derive(Debug, Serialize, FromRow, utoipa::ToSchema)]
pub struct AgreementSummary {
    pub provider: String,
    pub agreement_id: String,
    pub resource_type: String,
    pub status: Option<String>,
    pub provider_status: Option<String>,
    pub name: Option<String>,
    pub last_event_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A page of agreements, most recently updated first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgreementPage {
    pub agreements: Vec<AgreementSummary>,
    /// Pass back as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// What to list; see [`Agreements::list`].
#[derive(Debug, Clone, Default)]
pub struct AgreementFilter {
    pub provider: Option<String>,
    pub status: Option<String>,
    pub updated_after: Option<DateTime<Utc>>,
    /// A prefix of the agreement id or (case-insensitively) of its name.
    pub q: Option<String>,
    /// Only agreements after this position: (updated_at, provider, agreement id).
    pub after: Option<(DateTime<Utc>, String, String)>,
    pub limit: i64,
}

impl Agreements<'_> {
    /// Agreements matching `filter`, most recently updated first, keyset
    /// paginated on (updated_at, provider, agreement id): a page never
    /// repeats or skips an agreement that stays put, and each page is an
    /// index range however deep it is.
    pub async fn list(&self, filter: &AgreementFilter) -> Result<AgreementPage, StoreError> {
        let mut sql = sqlx::QueryBuilder::new(
            "SELECT provider, agreement_id, resource_type, status, provider_status, name, last_event_at, updated_at
               FROM agreements WHERE true",
        );
        if let Some(provider) = &filter.provider {
            sql.push(" AND provider = ").push_bind(provider.clone());
        }
        if let Some(status) = &filter.status {
            sql.push(" AND status = ").push_bind(status.clone());
        }
        if let Some(after) = filter.updated_after {
            sql.push(" AND updated_at > ").push_bind(after);
        }
        if let Some(q) = &filter.q {
            let prefix = format!("{}%", q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
            sql.push(" AND (agreement_id LIKE ")
                .push_bind(prefix.clone())
                .push(" OR lower(name) LIKE lower(")
                .push_bind(prefix)
                .push("))");
        }
        if let Some((updated_at, provider, agreement_id)) = &filter.after {
            // With one provider, the provider index's order is (updated_at, agreement_id).
            match filter.provider {
                Some(_) => sql
                    .push(" AND (updated_at, agreement_id) < (")
                    .push_bind(*updated_at)
                    .push(", ")
                    .push_bind(agreement_id.clone())
                    .push(")"),
                None => sql
                    .push(" AND (updated_at, provider, agreement_id) < (")
                    .push_bind(*updated_at)
                    .push(", ")
                    .push_bind(provider.clone())
                    .push(", ")
                    .push_bind(agreement_id.clone())
                    .push(")"),
            };
        }
        sql.push(" ORDER BY updated_at DESC, provider DESC, agreement_id DESC LIMIT ")
            .push_bind(filter.limit + 1);
        let mut agreements: Vec<AgreementSummary> = sql.build_query_as().fetch_all(self.pool).await?;
        let more = agreements.len() as i64 > filter.limit;
        agreements.truncate(filter.limit as usize);
        let next_cursor = more
            .then(|| {
                agreements
                    .last()
                    .map(|a| listing_cursor(a.updated_at, &a.provider, &a.agreement_id))
            })
            .flatten();
        Ok(AgreementPage {
            agreements,
            next_cursor,
        })
    }
}

/// The opaque cursor of a listing position (base64url, so any agreement id fits).
fn listing_cursor(updated_at: DateTime<Utc>, provider: &str, agreement_id: &str) -> String {
    use base64::Engine;
    let raw = format!("{}\n{provider}\n{agreement_id}", updated_at.timestamp_micros());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The position a [`listing_cursor`] stands for; `None` for anything else.
pub fn parse_listing_cursor(cursor: &str) -> Option<(DateTime<Utc>, String, String)> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.splitn(3, '\n');
    let micros: i64 = parts.next()?.parse().ok()?;
    let provider = parts.next()?.to_owned();
    let agreement_id = parts.next()?.to_owned();
    Some((DateTime::from_timestamp_micros(micros)?, provider, agreement_id))
}

/// One event with an agreement to apply, and the time it is ordered by
/// (see [`ordering_time`]).
struct Applied<'a> {
    event: &'a ClaimedEvent,
    /// The provider's event id as parsed: a quarantined event replayed is
    /// stored under its body's hash, its history shows its own id.
    event_id: &'a str,
    subject: &'a Subject,
    occurred_at: DateTime<Utc>,
    /// The time the event stated, when it is not `occurred_at` (clamped).
    stated_at: Option<DateTime<Utc>>,
    confirm_final: bool,
}

/// An agreement row as a batch or a poll finds it.
#[derive(FromRow)]
struct AgreementRow {
    provider: String,
    agreement_id: String,
    resource_type: String,
    status: Option<String>,
    status_at: Option<DateTime<Utc>>,
    provider_status: Option<String>,
    name: Option<String>,
    last_event_at: Option<DateTime<Utc>>,
    confirm_pending: bool,
}

impl AgreementRow {
    fn state(self) -> AgreementState {
        AgreementState {
            status: self.status.as_deref().and_then(AgreementStatus::parse),
            status_at: self.status_at,
            provider_status: self.provider_status,
            name: self.name,
            last_event_at: self.last_event_at,
            confirm_pending: self.confirm_pending,
        }
    }
}

/// The agreement's finals held for confirmation before `asked_at`, locked,
/// in the order they happened.
async fn take_held(
    tx: &mut PgConnection,
    provider: &str,
    agreement_id: &str,
    asked_at: DateTime<Utc>,
) -> Result<Vec<HeldEvent>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, event_id, event_type, status, provider_status, occurred_at FROM agreement_history
          WHERE provider = $1 AND agreement_id = $2 AND confirmation = 'pending' AND confirmation_at <= $3
          ORDER BY occurred_at, id
            FOR UPDATE",
    )
    .bind(provider)
    .bind(agreement_id)
    .bind(asked_at)
    .fetch_all(&mut *tx)
    .await?)
}

/// Marks held finals confirmed or unconfirmed, as of now.
async fn resolve_held(
    tx: &mut PgConnection,
    confirmed: &[HeldEvent],
    unconfirmed: &[HeldEvent],
) -> Result<(), StoreError> {
    let ids = |held: &[HeldEvent]| held.iter().map(|h| h.id).collect::<Vec<_>>();
    sqlx::query(
        "UPDATE agreement_history
            SET confirmation = CASE WHEN id = ANY($1) THEN 'confirmed' ELSE 'unconfirmed' END, confirmation_at = now()
          WHERE id = ANY($1) OR id = ANY($2)",
    )
    .bind(ids(confirmed))
    .bind(ids(unconfirmed))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Whether a final of the agreement is still held (one held after the poll asked).
async fn still_held(tx: &mut PgConnection, provider: &str, agreement_id: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM agreement_history
                         WHERE provider = $1 AND agreement_id = $2 AND confirmation = 'pending')",
    )
    .bind(provider)
    .bind(agreement_id)
    .fetch_one(&mut *tx)
    .await?)
}

/// The status and provider status the last poll of an agreement recorded.
/// A status the rules do not adopt (e.g. "in progress" after a terminal one)
/// is recorded once, not at every poll.
async fn last_poll(
    tx: &mut PgConnection,
    provider: &str,
    agreement_id: &str,
) -> Result<Option<(Option<String>, Option<String>)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT status, provider_status FROM agreement_history
          WHERE provider = $1 AND agreement_id = $2 AND source = 'poll'
          ORDER BY id DESC LIMIT 1",
    )
    .bind(provider)
    .bind(agreement_id)
    .fetch_optional(&mut *tx)
    .await?)
}

/// Writes the fold's result for each `(provider, agreement id, state)`. An
/// agreement that now waits for a confirmation is due for a poll at once.
async fn write_states(tx: &mut PgConnection, states: &[(&str, &str, &AgreementState)]) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE agreements a
            SET status = u.status, status_at = u.status_at, provider_status = u.provider_status,
                name = u.name, last_event_at = u.last_event_at, updated_at = now(),
                next_poll_at = CASE WHEN u.confirm_pending AND NOT a.confirm_pending THEN now()
                                    ELSE a.next_poll_at END,
                confirm_pending = u.confirm_pending
           FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
                       $7::timestamptz[], $8::bool[]) AS u(provider, agreement_id, status, status_at,
                                                           provider_status, name, last_event_at, confirm_pending)
          WHERE a.provider = u.provider AND a.agreement_id = u.agreement_id",
    )
    .bind(states.iter().map(|s| s.0).collect::<Vec<_>>())
    .bind(states.iter().map(|s| s.1).collect::<Vec<_>>())
    .bind(
        states
            .iter()
            .map(|s| s.2.status.map(AgreementStatus::as_str))
            .collect::<Vec<_>>(),
    )
    .bind(states.iter().map(|s| s.2.status_at).collect::<Vec<_>>())
    .bind(
        states
            .iter()
            .map(|s| s.2.provider_status.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(states.iter().map(|s| s.2.name.as_deref()).collect::<Vec<_>>())
    .bind(states.iter().map(|s| s.2.last_event_at).collect::<Vec<_>>())
    .bind(states.iter().map(|s| s.2.confirm_pending).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The three statements of a batch with agreements (a fourth marks the
/// finals held for confirmation, if any); `applied` is sorted by (provider,
/// agreement id, time, event id). Returns how many finals were held.
async fn apply_sorted(tx: &mut PgConnection, applied: &[Applied<'_>]) -> Result<usize, StoreError> {
    // 1. Lock every agreement (creating the missing ones) in sorted order.
    //    DO UPDATE rather than DO NOTHING so existing rows are locked and
    //    returned too: an agreement's events are applied by one batch at a
    //    time, whichever worker or replica holds them.
    //    The first parent link an agreement is given is kept.
    let mut keys: Vec<(&str, &str, &str, Option<&Parent>)> = Vec::new();
    for a in applied {
        let parent = a.subject.parent.as_ref();
        match keys.last_mut() {
            Some(last) if (last.0, last.1) == (a.event.provider.as_str(), a.subject.id.as_str()) => {
                last.3 = last.3.or(parent);
            }
            _ => keys.push((
                a.event.provider.as_str(),
                a.subject.id.as_str(),
                a.subject.kind.as_str(),
                parent,
            )),
        }
    }
    let rows: Vec<AgreementRow> = sqlx::query_as(
        "INSERT INTO agreements (provider, agreement_id, resource_type, parent_type, parent_id)
         SELECT p, a, r, pt, pi
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS k(p, a, r, pt, pi, n)
          ORDER BY n
         ON CONFLICT (provider, agreement_id) DO UPDATE
            SET parent_type = COALESCE(agreements.parent_type, EXCLUDED.parent_type),
                parent_id = COALESCE(agreements.parent_id, EXCLUDED.parent_id)
         RETURNING provider, agreement_id, resource_type, status, status_at, provider_status, name, last_event_at,
                   confirm_pending",
    )
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.2).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.3.map(|p| p.kind.as_str())).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.3.map(|p| p.id.as_str())).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    // Each agreement's state, whether the batch changed it, and its status
    // before the batch.
    let mut states: HashMap<(String, String), (AgreementState, bool, Option<AgreementStatus>)> = rows
        .into_iter()
        .map(|row| {
            let key = (row.provider.clone(), row.agreement_id.clone());
            let state = row.state();
            let before = state.status;
            (key, (state, false, before))
        })
        .collect();

    // 2. History, once per event: a replayed event's row is already there and
    //    comes back as not new, so it moves nothing.
    let new: HashSet<i64> = sqlx::query_scalar(
        "INSERT INTO agreement_history (provider, agreement_id, event_ref, event_id, event_type, status,
                                        provider_status, occurred_at, stated_occurred_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                              $7::text[], $8::timestamptz[], $9::timestamptz[])
         ON CONFLICT ON CONSTRAINT agreement_history_event_ref_key DO NOTHING
         RETURNING event_ref",
    )
    .bind(applied.iter().map(|a| a.event.provider.as_str()).collect::<Vec<_>>())
    .bind(applied.iter().map(|a| a.subject.id.as_str()).collect::<Vec<_>>())
    .bind(applied.iter().map(|a| a.event.id).collect::<Vec<_>>())
    .bind(applied.iter().map(|a| a.event_id).collect::<Vec<_>>())
    .bind(applied.iter().map(|a| a.event.event_type.as_str()).collect::<Vec<_>>())
    .bind(
        applied
            .iter()
            .map(|a| a.subject.status.map(AgreementStatus::as_str))
            .collect::<Vec<_>>(),
    )
    .bind(
        applied
            .iter()
            .map(|a| a.subject.provider_status.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(applied.iter().map(|a| a.occurred_at).collect::<Vec<_>>())
    .bind(applied.iter().map(|a| a.stated_at).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();

    // 3. Fold the new events into each agreement, in order, recording every
    //    step that moves a status; write back the agreements that changed,
    //    and the changes.
    let mut moves = Vec::new();
    let mut held = Vec::new();
    for a in applied.iter().filter(|a| new.contains(&a.event.id)) {
        let key = (a.event.provider.clone(), a.subject.id.clone());
        let (state, changed, _) = states.get_mut(&key).ok_or(StoreError::Vanished)?;
        let change = Change {
            confirm_final: a.confirm_final,
            ..a.subject.change(Source::Event, a.occurred_at)
        };
        let (folded, moved) = state.apply_tracked(&change);
        *changed |= folded.changed();
        if folded == Folded::Held {
            held.push(a.event.id);
        }
        if let Some(previous) = moved {
            moves.push(NewChange {
                kind: ChangeType::StatusChanged,
                provider: &a.event.provider,
                agreement_id: &a.subject.id,
                resource_type: a.subject.kind.as_str(),
                name: state.name.clone(),
                previous,
                status: state.status,
                provider_status: state.provider_status.clone(),
                occurred_at: a.occurred_at,
                event_id: Some(a.event_id),
                origin: ChangeOrigin::Webhook,
                documents: Vec::new(),
            });
        }
    }
    if !held.is_empty() {
        sqlx::query(
            "UPDATE agreement_history SET confirmation = 'pending', confirmation_at = now() WHERE event_ref = ANY($1)",
        )
        .bind(&held)
        .execute(&mut *tx)
        .await?;
    }
    let changed: Vec<(&str, &str, &AgreementState)> = states
        .iter()
        .filter(|(_, (_, changed, _))| *changed)
        .map(|((provider, agreement_id), (state, _, _))| (provider.as_str(), agreement_id.as_str(), state))
        .collect();
    if !changed.is_empty() {
        write_states(tx, &changed).await?;
    }
    record_changes(tx, &moves).await?;
    let completed: Vec<(&str, &str)> = states
        .iter()
        .filter(|(_, (state, changed, before))| *changed && became_completed(*before, state))
        .map(|((provider, agreement_id), _)| (provider.as_str(), agreement_id.as_str()))
        .collect();
    record_completions(tx, &completed).await?;
    Ok(held.len())
}

/// Whether the fold just made the agreement completed: then its documents
/// are to be fetched, recorded in the same transaction.
fn became_completed(before: Option<AgreementStatus>, after: &AgreementState) -> bool {
    after.status == Some(AgreementStatus::Completed) && before != Some(AgreementStatus::Completed)
}

#[cfg(test)]
mod tests {
    use super::{listing_cursor, parse_listing_cursor, OPEN};

    #[test]
    fn listing_cursors_round_trip_any_agreement_id() {
        let at = chrono::DateTime::from_timestamp_micros(1_764_000_000_123_456).expect("a time");
        for id in ["agr-1", "with\nnewline", "ünï/cödé?&=", ""] {
            let cursor = listing_cursor(at, "boldsign", id);
            assert_eq!(
                parse_listing_cursor(&cursor),
                Some((at, "boldsign".to_owned(), id.to_owned()))
            );
        }
        assert_eq!(parse_listing_cursor("not a cursor"), None);
        assert_eq!(parse_listing_cursor(""), None);
    }

    /// The migration's partial index of open agreements was written with the
    /// terminal statuses of its day; the generated SQL must stay the same
    /// predicate, or the reconciler's claim stops using the index.
    #[test]
    fn open_is_the_predicate_of_the_open_agreements_index() {
        let migration = include_str!("../../migrations/20261125000001_reconcile.sql");
        let predicate = OPEN
            .strip_prefix('(')
            .and_then(|sql| sql.strip_suffix(')'))
            .expect("OPEN is parenthesized");
        assert!(
            migration.contains(&format!("WHERE {predicate};")),
            "{predicate} is not the index predicate"
        );
    }
}
