//! Changes the application is told about — an agreement's status moved, or
//! its signed copy is stored: [`record_changes`] writes them (and queues
//! their deliveries) inside the transaction that moves the agreement or ends
//! its document fetch, so nothing is lost between the two; the sequencer then
//! gives each committed change its feed cursor, in commit order;
//! [`Changes::after`] reads the feed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{types::Json, FromRow, PgConnection, PgPool};

use super::StoreError;
use crate::agreement::{AgreementStatus, Previous};

/// Channel a transaction that recorded changes notifies at commit: wakes the
/// sequencer and the delivery dispatchers of every replica.
pub const CHANGE_WRITTEN: &str = "signhook_change_written";
/// Channel the sequencer notifies when it has given cursors out: wakes the
/// change feed's long polls on every replica.
pub const CHANGE_SEQUENCED: &str = "signhook_change_sequenced";

/// Most changes the sequencer numbers in one transaction.
const SEQUENCE_BATCH: i64 = 10_000;

/// What a change says: its `type` in the feed and in deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    /// The agreement's normalized or provider status moved.
    StatusChanged,
    /// The completed agreement's documents are stored (recorded when its
    /// document fetch job ends done with a signed copy that was not announced
    /// before; see `Documents::finish`).
    DocumentAvailable,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StatusChanged => "agreement.status_changed",
            Self::DocumentAvailable => "document.available",
        }
    }
}

/// One stored document, as a `document.available` change carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeDocument {
    /// `signed`, `audit_trail`, or `signed_2`… for a FuseSign bundle's further documents.
    pub kind: String,
    /// Hex SHA-256 of the bytes (the ETag of `GET …/documents/{kind}`).
    pub sha256: String,
    pub size: i64,
    pub content_type: String,
    /// `webhook` (from the notification's body) or `api`.
    pub source: String,
}

/// What moved an agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOrigin {
    /// A provider's webhook event (its id is the change's `event_id`).
    Webhook,
    /// The reconciler read the provider's API.
    Poll,
    /// An operator's `POST /api/agreements/{provider}/{id}/refresh`.
    Refresh,
    /// A document fetch job stored the agreement's copy.
    Document,
}

impl ChangeOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Poll => "poll",
            Self::Refresh => "refresh",
            Self::Document => "document",
        }
    }
}

/// One change to record: the agreement, what its status was and is now.
#[derive(Debug, Clone)]
pub struct NewChange<'a> {
    pub kind: ChangeType,
    pub provider: &'a str,
    pub agreement_id: &'a str,
    pub resource_type: &'a str,
    /// The agreement's name after the change.
    pub name: Option<String>,
    pub previous: Previous,
    pub status: Option<AgreementStatus>,
    pub provider_status: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// The provider's event id; `None` for a poll, a refresh or a document
    /// (recorded as `poll` / `refresh` / `document`).
    pub event_id: Option<&'a str>,
    pub origin: ChangeOrigin,
    /// A `document.available` change's documents; empty for a status change.
    pub documents: Vec<ChangeDocument>,
}

/// Records `changes` in the caller's transaction — the one that writes the
/// agreements they are about, with those rows locked — and queues a delivery
/// to every configured destination whose filter matches. Changes of one
/// agreement must be given in the order they were folded (their ids follow
/// it). Every "agreement changed" path calls this one function.
pub async fn record_changes(tx: &mut PgConnection, changes: &[NewChange<'_>]) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH c AS (
             INSERT INTO changes (provider, agreement_id, resource_type, name, previous_status, status,
                                  previous_provider_status, provider_status, occurred_at, event_id, source,
                                  kind, documents)
             SELECT p, a, r, nm, ps, s, pps, pst, o, e, src, t, docs::jsonb
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                           $8::text[], $9::timestamptz[], $10::text[], $11::text[], $13::text[], $14::text[])
                    WITH ORDINALITY AS k(p, a, r, nm, ps, s, pps, pst, o, e, src, t, docs, n)
              ORDER BY n
             RETURNING id, provider, agreement_id, status),
         d AS (
             INSERT INTO deliveries (destination, change_id, provider, agreement_id)
             SELECT dst.name, c.id, c.provider, c.agreement_id
               FROM c JOIN delivery_destinations dst
                 ON dst.configured
                AND (cardinality(dst.providers) = 0 OR c.provider = ANY (dst.providers))
                AND (cardinality(dst.statuses) = 0 OR c.status = ANY (dst.statuses))
              ORDER BY c.id, dst.name)
         SELECT pg_notify($12, '')",
    )
    .bind(changes.iter().map(|c| c.provider).collect::<Vec<_>>())
    .bind(changes.iter().map(|c| c.agreement_id).collect::<Vec<_>>())
    .bind(changes.iter().map(|c| c.resource_type).collect::<Vec<_>>())
    .bind(changes.iter().map(|c| c.name.as_deref()).collect::<Vec<_>>())
    .bind(
        changes
            .iter()
            .map(|c| c.previous.status.map(AgreementStatus::as_str))
            .collect::<Vec<_>>(),
    )
    .bind(
        changes
            .iter()
            .map(|c| c.status.map(AgreementStatus::as_str))
            .collect::<Vec<_>>(),
    )
    .bind(
        changes
            .iter()
            .map(|c| c.previous.provider_status.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(changes.iter().map(|c| c.provider_status.as_deref()).collect::<Vec<_>>())
    .bind(changes.iter().map(|c| c.occurred_at).collect::<Vec<_>>())
    .bind(
        changes
            .iter()
            .map(|c| c.event_id.unwrap_or(c.origin.as_str()))
            .collect::<Vec<_>>(),
    )
    .bind(changes.iter().map(|c| c.origin.as_str()).collect::<Vec<_>>())
    .bind(CHANGE_WRITTEN)
    .bind(changes.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>())
    .bind(
        changes
            .iter()
            .map(|c| {
                (!c.documents.is_empty())
                    .then(|| serde_json::to_string(&c.documents).expect("document entries serialize"))
            })
            .collect::<Vec<_>>(),
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One change as the feed and the deliveries show it.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct ChangeView {
    /// `agreement.status_changed` or `document.available`.
    #[serde(rename = "type")]
    #[schema(example = "agreement.status_changed")]
    pub kind: String,
    /// The feed's cursor: pass the last one seen as `after`. `null` for a
    /// change not numbered yet (a delivery can be sent before).
    pub cursor: Option<i64>,
    /// The change's own id: stable, the `webhook-id` of its deliveries is
    /// `chg_<id>`.
    pub id: i64,
    pub provider: String,
    pub agreement_id: String,
    pub resource_type: String,
    pub name: Option<String>,
    pub previous_status: Option<String>,
    pub status: Option<String>,
    pub previous_provider_status: Option<String>,
    pub provider_status: Option<String>,
    /// When the provider says it happened (a poll: when it was read).
    pub occurred_at: DateTime<Utc>,
    /// The provider's event id, or `poll` / `refresh` / `document`.
    pub event_id: String,
    /// `webhook`, `poll` or `refresh`; `document` for `document.available`.
    pub source: String,
    /// When signhook recorded it.
    pub recorded_at: DateTime<Utc>,
    /// `document.available` only: the documents stored (`status` is
    /// `completed`, `occurred_at` when the last of them was stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<ChangeDocument>>)]
    pub documents: Option<Json<Vec<ChangeDocument>>>,
}

/// The columns of [`ChangeView`], as SQL over `changes`.
pub(super) const CHANGE_COLUMNS: &str =
    "c.seq AS cursor, c.id, c.provider, c.agreement_id, c.resource_type, c.name, c.previous_status, c.status, \
     c.previous_provider_status, c.provider_status, c.occurred_at, c.event_id, c.source, c.created_at AS recorded_at, \
     c.kind, c.documents";

/// The change feed; see [`super::Store::changes`].
#[derive(Clone, Copy)]
pub struct Changes<'a> {
    pub(super) pool: &'a PgPool,
}

impl Changes<'_> {
    /// Up to `limit` numbered changes after cursor `after`, in cursor order,
    /// optionally of one provider.
    pub async fn after(&self, after: i64, provider: Option<&str>, limit: i64) -> Result<Vec<ChangeView>, StoreError> {
        // Two statements rather than `($2 IS NULL OR provider = $2)`, so each
        // is planned on its own index.
        let rows = match provider {
            None => {
                sqlx::query_as(&format!(
                    "SELECT {CHANGE_COLUMNS} FROM changes c WHERE seq > $1 ORDER BY seq LIMIT $2"
                ))
                .bind(after)
                .bind(limit)
                .fetch_all(self.pool)
                .await?
            }
            Some(provider) => {
                sqlx::query_as(&format!(
                    "SELECT {CHANGE_COLUMNS} FROM changes c WHERE provider = $3 AND seq > $1 ORDER BY seq LIMIT $2"
                ))
                .bind(after)
                .bind(limit)
                .bind(provider)
                .fetch_all(self.pool)
                .await?
            }
        };
        Ok(rows)
    }

    /// Numbers committed changes that have no cursor yet, in the order of
    /// their ids, after the highest cursor given out; returns the highest
    /// cursor now (`None` if nothing was numbered).
    ///
    /// Why this never lets the feed skip a change: one sequencer runs at a
    /// time (a transaction-scoped advisory lock, so every replica may run
    /// one), and its statement sees only committed changes. A change that
    /// commits late is numbered by a later run, above everything numbered
    /// before it; a reader past cursor N therefore never misses a change
    /// numbered below N. The changes of one agreement are committed in id
    /// order (its row lock), so they are numbered in that order too.
    pub async fn sequence(&self) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The lock is taken by its own statement: under READ COMMITTED the
        // next statement's snapshot is taken after it, so it sees every
        // number the previous holder committed.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('signhook.changes.sequencer'))")
            .execute(&mut *tx)
            .await?;
        let highest: Option<i64> = sqlx::query_scalar(
            "WITH base AS (SELECT coalesce(max(seq), 0) AS seq FROM changes),
                  todo AS (SELECT id, row_number() OVER (ORDER BY id) AS n
                             FROM (SELECT id FROM changes WHERE seq IS NULL ORDER BY id LIMIT $1) t),
                  done AS (UPDATE changes c SET seq = base.seq + todo.n FROM todo, base
                            WHERE c.id = todo.id RETURNING c.seq)
             SELECT max(seq) FROM done",
        )
        .bind(SEQUENCE_BATCH)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(highest) = highest {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGE_SEQUENCED)
                .bind(highest.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(highest)
    }
}
