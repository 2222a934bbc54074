//! Document fetch jobs and the documents kept for each agreement. A job is
//! recorded by [`record_completions`] inside the transaction that completes
//! the agreement (webhook batch, poll or refresh), so no completion is ever
//! without one; workers claim due jobs with `FOR UPDATE SKIP LOCKED` and a
//! lease column, so a replica killed mid-fetch leaves its job to whoever
//! claims after the lease.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{types::Json, FromRow, PgConnection, PgExecutor, PgPool};

use super::{
    changes::{record_changes, ChangeDocument, ChangeOrigin, ChangeType, NewChange},
    StoreError,
};
use crate::{
    agreement::{AgreementStatus, Previous},
    documents::SIGNED,
};

/// Records a fetch job for each agreement that has just become completed,
/// in the caller's transaction. An agreement that already has one keeps it
/// (a done job is not repeated: a refetch asks for that).
pub(super) async fn record_completions(tx: &mut PgConnection, completed: &[(&str, &str)]) -> Result<(), StoreError> {
    if completed.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO document_jobs (provider, agreement_id)
         SELECT * FROM unnest($1::text[], $2::text[])
         ON CONFLICT (provider, agreement_id) DO NOTHING",
    )
    .bind(completed.iter().map(|c| c.0).collect::<Vec<_>>())
    .bind(completed.iter().map(|c| c.1).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A job claimed by a fetcher until `lease`.
#[derive(Debug, Clone, FromRow)]
pub struct DocumentJob {
    pub provider: String,
    pub agreement_id: String,
    /// Attempts including this one.
    pub attempts: i32,
    /// Documents stored before this are fetched again.
    pub refetch_before: Option<DateTime<Utc>>,
    /// The tenant the agreement's latest webhook named (FuseSign's `TenantId`).
    pub tenant: Option<String>,
    /// The agreement's resource type (`agreement`, `widget`, `document`, `bundle`…).
    pub resource_type: String,
    pub lease: DateTime<Utc>,
}

/// A stored document, as the admin API lists it.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct DocumentView {
    /// `signed`, `audit_trail`, or `signed_2`… for a FuseSign bundle's further documents.
    pub kind: String,
    pub size: i64,
    /// Hex SHA-256 of the bytes: their address in the store, and the ETag.
    pub sha256: String,
    pub content_type: String,
    pub file_name: String,
    /// `webhook` (from the notification's body) or `api`.
    pub source: String,
    pub fetched_at: DateTime<Utc>,
}

/// The agreement's fetch job, as the admin API shows it.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct DocumentJobView {
    /// `pending`, `done` or `dead`.
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// When the agreement was found completed.
    pub created_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
}

/// A document to record, once its bytes are stored.
#[derive(Debug, Clone)]
pub struct NewDocument<'a> {
    pub kind: &'a str,
    pub sha256: &'a str,
    pub size: u64,
    pub content_type: &'a str,
    pub file_name: &'a str,
    pub source: &'static str,
}

/// How a claimed job ends this time.
#[derive(Debug, Clone)]
pub enum JobOutcome {
    /// Everything the provider has is stored.
    Done,
    /// Failed; tried again after `retry_in`, or dead.
    Failed {
        error: String,
        dead: bool,
        retry_in: Duration,
    },
    /// Not tried: the provider's API may not be called yet. Not an attempt.
    Deferred { note: String, retry_in: Duration },
}

/// See [`super::Store::documents`].
#[derive(Clone, Copy)]
pub struct Documents<'a> {
    pub(super) pool: &'a PgPool,
}

const TENANT: &str = "(SELECT e.tenant FROM agreement_history h JOIN events e ON e.id = h.event_ref
                        WHERE h.provider = j.provider AND h.agreement_id = j.agreement_id AND e.tenant IS NOT NULL
                        ORDER BY h.id DESC LIMIT 1) AS tenant,
                      (SELECT a.resource_type FROM agreements a
                        WHERE a.provider = j.provider AND a.agreement_id = j.agreement_id) AS resource_type";

impl Documents<'_> {
    /// Claims up to `limit` due jobs for `lease`, counting the attempt.
    pub async fn claim_due(&self, limit: i64, lease: Duration) -> Result<Vec<DocumentJob>, StoreError> {
        let sql = format!(
            "UPDATE document_jobs AS j SET locked_until = now() + $2, attempts = attempts + 1, updated_at = now()
              WHERE (j.provider, j.agreement_id) IN (
                    SELECT provider, agreement_id FROM document_jobs
                     WHERE state = 'pending' AND next_attempt_at <= now()
                       AND (locked_until IS NULL OR locked_until <= now())
                     ORDER BY next_attempt_at
                     LIMIT $1
                     FOR UPDATE SKIP LOCKED)
             RETURNING j.provider, j.agreement_id, j.attempts, j.refetch_before, j.locked_until AS lease, {TENANT}"
        );
        Ok(sqlx::query_as(&sql)
            .bind(limit)
            .bind(lease)
            .fetch_all(self.pool)
            .await?)
    }

    /// Claims this agreement's job now, whatever its state (a refresh
    /// fetching at once); `None` while another fetcher holds it.
    pub async fn claim(
        &self,
        provider: &str,
        agreement_id: &str,
        refetch: bool,
        lease: Duration,
    ) -> Result<Option<DocumentJob>, StoreError> {
        let sql = format!(
            "INSERT INTO document_jobs AS j (provider, agreement_id, locked_until, attempts, refetch_before)
             VALUES ($1, $2, now() + $3, 1, CASE WHEN $4 THEN now() END)
             ON CONFLICT (provider, agreement_id) DO UPDATE
                SET locked_until = EXCLUDED.locked_until, state = 'pending', attempts = 1,
                    refetch_before = CASE WHEN $4 THEN now() ELSE j.refetch_before END, updated_at = now()
              WHERE j.locked_until IS NULL OR j.locked_until <= now()
             RETURNING j.provider, j.agreement_id, j.attempts, j.refetch_before, j.locked_until AS lease, {TENANT}"
        );
        Ok(sqlx::query_as(&sql)
            .bind(provider)
            .bind(agreement_id)
            .bind(lease)
            .bind(refetch)
            .fetch_optional(self.pool)
            .await?)
    }

    /// Records what came of a claimed job and ends the claim; nothing
    /// happens if the lease lapsed meanwhile (another fetcher has it).
    ///
    /// A job ending done records, in the same transaction, one
    /// `document.available` change when the agreement has its signed copy and
    /// its documents are not those the last such change announced
    /// ([`worth_announcing`]): so a refetch that stores identical bytes
    /// announces nothing, and a fetcher killed between storing and finishing
    /// announces on the next run. Returns whether it recorded one.
    pub async fn finish(&self, job: &DocumentJob, outcome: &JobOutcome) -> Result<bool, StoreError> {
        let (state, error, retry_in, uncount) = match outcome {
            JobOutcome::Done => ("done", None, Duration::ZERO, false),
            JobOutcome::Failed { error, dead, retry_in } => (
                if *dead { "dead" } else { "pending" },
                Some(error.as_str()),
                *retry_in,
                false,
            ),
            JobOutcome::Deferred { note, retry_in } => ("pending", Some(note.as_str()), *retry_in, true),
        };
        let done = matches!(outcome, JobOutcome::Done);
        let mut tx = self.pool.begin().await?;
        // The agreement's row first, as every path recording its changes
        // locks it (and in that order, before the job): its changes then
        // commit in the order of their ids, after its `completed` one.
        let agreement: Option<(String, Option<String>)> =
            match done {
                true => sqlx::query_as(
                    "SELECT resource_type, name FROM agreements WHERE provider = $1 AND agreement_id = $2 FOR UPDATE",
                )
                .bind(&job.provider)
                .bind(&job.agreement_id)
                .fetch_optional(&mut *tx)
                .await?,
                false => None,
            };
        let ended = sqlx::query(
            "UPDATE document_jobs
                SET state = $3, last_error = $4, next_attempt_at = now() + $5, locked_until = NULL,
                    attempts = attempts - CASE WHEN $6 THEN 1 ELSE 0 END,
                    refetch_before = CASE WHEN $3 = 'done' THEN NULL ELSE refetch_before END,
                    done_at = CASE WHEN $3 = 'done' THEN now() ELSE done_at END, updated_at = now()
              WHERE provider = $1 AND agreement_id = $2 AND locked_until = $7",
        )
        .bind(&job.provider)
        .bind(&job.agreement_id)
        .bind(state)
        .bind(error)
        .bind(retry_in)
        .bind(uncount)
        .bind(job.lease)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let mut announced = false;
        if let (true, Some((resource_type, name))) = (ended, agreement) {
            let stored = documents_of(&mut *tx, &job.provider, &job.agreement_id).await?;
            let last: Option<Json<Vec<ChangeDocument>>> = sqlx::query_scalar(
                "SELECT documents FROM changes
                  WHERE provider = $1 AND agreement_id = $2 AND kind = $3
                  ORDER BY id DESC LIMIT 1",
            )
            .bind(&job.provider)
            .bind(&job.agreement_id)
            .bind(ChangeType::DocumentAvailable.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .flatten();
            let documents: Vec<ChangeDocument> = stored.iter().map(ChangeDocument::from).collect();
            if worth_announcing(&documents, last.as_ref().map(|l| l.0.as_slice())) {
                let change = NewChange {
                    kind: ChangeType::DocumentAvailable,
                    provider: &job.provider,
                    agreement_id: &job.agreement_id,
                    resource_type: &resource_type,
                    name,
                    previous: Previous {
                        status: None,
                        provider_status: None,
                    },
                    status: Some(AgreementStatus::Completed),
                    provider_status: None,
                    occurred_at: stored.iter().map(|d| d.fetched_at).max().unwrap_or_else(Utc::now),
                    event_id: None,
                    origin: ChangeOrigin::Document,
                    documents,
                };
                record_changes(&mut tx, &[change]).await?;
                announced = true;
            }
        }
        tx.commit().await?;
        Ok(announced)
    }

    /// Queues the agreement's documents to be fetched again (all of them),
    /// whatever its job's state; false when the agreement is unknown.
    pub async fn refetch(&self, provider: &str, agreement_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO document_jobs AS j (provider, agreement_id, refetch_before)
             SELECT provider, agreement_id, now() FROM agreements WHERE provider = $1 AND agreement_id = $2
             ON CONFLICT (provider, agreement_id) DO UPDATE
                SET state = 'pending', attempts = 0, next_attempt_at = now(), refetch_before = now(),
                    last_error = NULL, updated_at = now()",
        )
        .bind(provider)
        .bind(agreement_id)
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a stored document (replacing the kind's earlier copy).
    pub async fn save(&self, provider: &str, agreement_id: &str, doc: &NewDocument<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO documents (provider, agreement_id, kind, sha256, size, content_type, file_name, source)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (provider, agreement_id, kind) DO UPDATE
                SET sha256 = EXCLUDED.sha256, size = EXCLUDED.size, content_type = EXCLUDED.content_type,
                    file_name = EXCLUDED.file_name, source = EXCLUDED.source, fetched_at = now()",
        )
        .bind(provider)
        .bind(agreement_id)
        .bind(doc.kind)
        .bind(doc.sha256)
        .bind(doc.size as i64)
        .bind(doc.content_type)
        .bind(doc.file_name)
        .bind(doc.source)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// The agreement's documents, by kind.
    pub async fn list(&self, provider: &str, agreement_id: &str) -> Result<Vec<DocumentView>, StoreError> {
        documents_of(self.pool, provider, agreement_id).await
    }

    pub async fn get(
        &self,
        provider: &str,
        agreement_id: &str,
        kind: &str,
    ) -> Result<Option<DocumentView>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT kind, size, sha256, content_type, file_name, source, fetched_at FROM documents
              WHERE provider = $1 AND agreement_id = $2 AND kind = $3",
        )
        .bind(provider)
        .bind(agreement_id)
        .bind(kind)
        .fetch_optional(self.pool)
        .await?)
    }

    pub async fn job(&self, provider: &str, agreement_id: &str) -> Result<Option<DocumentJobView>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT state, attempts, next_attempt_at, last_error, created_at, done_at FROM document_jobs
              WHERE provider = $1 AND agreement_id = $2",
        )
        .bind(provider)
        .bind(agreement_id)
        .fetch_optional(self.pool)
        .await?)
    }

    /// The bodies of the events that completed the agreement, newest first
    /// (a provider may carry the signed document in them).
    pub async fn completing_bodies(
        &self,
        provider: &str,
        agreement_id: &str,
        limit: i64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT e.body FROM agreement_history h JOIN events e ON e.id = h.event_ref
              WHERE h.provider = $1 AND h.agreement_id = $2 AND h.status = $4
              ORDER BY h.occurred_at DESC, h.id DESC LIMIT $3",
        )
        .bind(provider)
        .bind(agreement_id)
        .bind(limit)
        .bind(AgreementStatus::Completed.as_str())
        .fetch_all(self.pool)
        .await?)
    }

    /// Per provider, the completed agreements found completed more than
    /// `after` ago that still have no signed copy.
    pub async fn missing(&self, after: Duration) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT j.provider, count(*) FROM document_jobs j
              WHERE j.created_at <= now() - $1
                AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.provider = j.provider
                                   AND d.agreement_id = j.agreement_id AND d.kind = $2)
              GROUP BY j.provider",
        )
        .bind(after)
        .bind(SIGNED)
        .fetch_all(self.pool)
        .await?)
    }
}

/// An agreement's documents, by kind (in the caller's transaction or not).
async fn documents_of<'e>(
    db: impl PgExecutor<'e>,
    provider: &str,
    agreement_id: &str,
) -> Result<Vec<DocumentView>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT kind, size, sha256, content_type, file_name, source, fetched_at FROM documents
          WHERE provider = $1 AND agreement_id = $2 ORDER BY kind",
    )
    .bind(provider)
    .bind(agreement_id)
    .fetch_all(db)
    .await?)
}

impl From<&DocumentView> for ChangeDocument {
    fn from(doc: &DocumentView) -> Self {
        Self {
            kind: doc.kind.clone(),
            sha256: doc.sha256.clone(),
            size: doc.size,
            content_type: doc.content_type.clone(),
            source: doc.source.clone(),
        }
    }
}

/// Whether a job that ended done tells the application its documents are
/// available: only with the signed copy among them, and only when their
/// contents (kind and SHA-256 of each) are not the ones the agreement's last
/// `document.available` announced. Where a document came from (`webhook` or
/// `api`) does not count: the same bytes are the same copy.
fn worth_announcing(stored: &[ChangeDocument], last: Option<&[ChangeDocument]>) -> bool {
    let contents = |docs: &[ChangeDocument]| {
        let mut contents: Vec<(String, String)> = docs.iter().map(|d| (d.kind.clone(), d.sha256.clone())).collect();
        contents.sort();
        contents
    };
    stored.iter().any(|d| d.kind == SIGNED) && last.map_or(true, |last| contents(last) != contents(stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(kind: &str, sha: char, source: &str) -> ChangeDocument {
        ChangeDocument {
            kind: kind.to_owned(),
            sha256: sha.to_string().repeat(64),
            size: 10,
            content_type: "application/pdf".to_owned(),
            source: source.to_owned(),
        }
    }

    #[test]
    fn documents_are_announced_once_per_content() {
        let signed = doc("signed", 'a', "api");
        let audit = doc("audit_trail", 'b', "api");
        // (case, stored now, announced last, announce?)
        type Case = (&'static str, Vec<ChangeDocument>, Option<Vec<ChangeDocument>>, bool);
        let cases: [Case; 8] = [
            ("first signed copy", vec![signed.clone()], None, true),
            (
                "first, with audit trail",
                vec![audit.clone(), signed.clone()],
                None,
                true,
            ),
            ("nothing stored (a web form)", vec![], None, false),
            ("an audit trail alone", vec![audit.clone()], None, false),
            (
                "refetch, identical bytes",
                vec![audit.clone(), signed.clone()],
                Some(vec![signed.clone(), audit.clone()]),
                false,
            ),
            (
                "same bytes from the api this time",
                vec![signed.clone()],
                Some(vec![doc("signed", 'a', "webhook")]),
                false,
            ),
            (
                "refetch, new signed bytes",
                vec![doc("signed", 'c', "api")],
                Some(vec![signed.clone()]),
                true,
            ),
            (
                "the audit trail came later",
                vec![audit.clone(), signed.clone()],
                Some(vec![signed.clone()]),
                true,
            ),
        ];
        for (case, stored, last, expected) in cases {
            assert_eq!(worth_announcing(&stored, last.as_deref()), expected, "{case}");
        }
    }
}
