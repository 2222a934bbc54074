//! The fetch loop: claims due document jobs (recorded when their agreement
//! completed), stores the agreement's documents and records the outcome.
//!
//! For each job: the signed document a completing notification carried
//! (Adobe's `signedDocumentInfo`) is taken from the stored event, without an
//! API call; every other document the provider lists is downloaded through
//! the provider's API within the account's shared budget and streamed into
//! the [`DocumentStore`]. A throttled call defers the job for as long as the
//! provider asked (not an attempt); any other failure — 404, 5xx, a
//! transport error, a body shorter than its `Content-Length` — is retried
//! with exponential backoff until `SIGNHOOK_DOCUMENT_MAX_ATTEMPTS`, then the
//! job is `dead` with its error (a refetch queues it again). Documents
//! already stored are not fetched again unless a refetch asked for it. A job
//! that ends done tells the application, through a `document.available`
//! change recorded with its outcome (`store::Documents::finish`).

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use metrics::{counter, gauge};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    config::DocumentSettings,
    documents::{DocumentRef, DocumentStore, DocumentStoreError, InlineDocument, Stored, SIGNED},
    providers::{within_deadline, CallError, PollError, Provider, Providers},
    store::{DocumentJob, JobOutcome, NewDocument, Store, StoreError},
    telemetry::metric,
};

/// Completing events whose bodies are searched for an inline document.
const INLINE_CANDIDATES: i64 = 3;
/// How often the missing-copy check runs at most (more often when
/// `SIGNHOOK_DOCUMENT_MISSING_AFTER` is shorter).
const MISSING_CHECK_EVERY: Duration = Duration::from_secs(60);

/// Why one document could not be stored.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error(transparent)]
    Provider(#[from] PollError),
    #[error(transparent)]
    Storage(#[from] DocumentStoreError),
    #[error("database: {0}")]
    Database(#[from] StoreError),
    #[error("the download did not finish within SIGNHOOK_DOCUMENT_LEASE ({0} s)")]
    TimedOut(u64),
}

/// One document stored by a fetch, as a refresh reports it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FetchedDocument {
    pub kind: String,
    pub sha256: String,
    pub size: u64,
    /// `webhook` or `api`.
    pub source: &'static str,
}

/// What one run of a job did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FetchReport {
    /// Stored by this run.
    pub fetched: Vec<FetchedDocument>,
    /// Already stored before, so not fetched again.
    pub kept: Vec<String>,
    /// `done`, `retry` (failed, tried again later), `deferred` (the API may
    /// not be called yet) or `dead`.
    pub outcome: &'static str,
    pub error: Option<String>,
    /// When it is tried again, for `retry` and `deferred`.
    pub retry_after_secs: Option<u64>,
}

/// Works document jobs off; shared by the fetch loops and manual refreshes.
pub struct Fetcher {
    store: Store,
    providers: Providers,
    documents: Arc<dyn DocumentStore>,
    settings: DocumentSettings,
    wake: Notify,
}

impl Fetcher {
    pub fn new(
        store: Store,
        providers: Providers,
        documents: Arc<dyn DocumentStore>,
        settings: DocumentSettings,
    ) -> Self {
        Self {
            store,
            providers,
            documents,
            settings,
            wake: Notify::new(),
        }
    }

    /// Where documents' bytes are kept.
    pub fn documents(&self) -> &Arc<dyn DocumentStore> {
        &self.documents
    }

    pub fn lease(&self) -> Duration {
        self.settings.lease.get()
    }

    /// There is a job to do now (a refetch was asked for).
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// One fetch loop, until `shutdown`: a job in progress is abandoned then
    /// (its lease lapses and another replica or the next start takes it).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let idle = self.settings.poll_interval.get();
        while !shutdown.is_cancelled() {
            let claimed = self.store.documents().claim_due(1, self.lease()).await;
            let pause = match claimed {
                Ok(jobs) if jobs.is_empty() => idle,
                Ok(jobs) => {
                    for job in jobs {
                        tokio::select! {
                            _ = self.run_job(&job) => {}
                            _ = shutdown.cancelled() => return,
                        }
                    }
                    Duration::ZERO
                }
                Err(error) => {
                    tracing::warn!(%error, "document fetcher cannot claim jobs; trying again");
                    idle
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!("document fetcher stopped");
    }

    /// Fetches a claimed job's documents and records the outcome.
    pub async fn run_job(&self, job: &DocumentJob) -> FetchReport {
        let mut report = FetchReport {
            fetched: Vec::new(),
            kept: Vec::new(),
            outcome: "done",
            error: None,
            retry_after_secs: None,
        };
        let outcome = match tokio::time::timeout(self.lease(), self.fetch(job, &mut report)).await {
            Ok(Ok(())) => JobOutcome::Done,
            Ok(Err(error)) => self.failed(job, error),
            Err(_) => self.failed(job, FetchError::TimedOut(self.lease().as_secs())),
        };
        let name = job.provider.as_str();
        match &outcome {
            JobOutcome::Done => {
                tracing::info!(provider = name, agreement_id = %job.agreement_id, fetched = report.fetched.len(),
                    kept = report.kept.len(), "documents of the completed agreement stored")
            }
            JobOutcome::Deferred { note, retry_in } => {
                report.outcome = "deferred";
                report.error = Some(note.clone());
                report.retry_after_secs = Some(retry_in.as_secs_f64().ceil() as u64);
                tracing::info!(provider = name, agreement_id = %job.agreement_id, reason = %note,
                    "document fetch deferred")
            }
            JobOutcome::Failed { error, dead: true, .. } => {
                report.outcome = "dead";
                report.error = Some(error.clone());
                counter!(metric::DOCUMENT_JOBS_DEAD, "provider" => self.label(name)).increment(1);
                tracing::error!(provider = name, agreement_id = %job.agreement_id, %error, attempts = job.attempts,
                    "document fetch is dead after its last attempt; POST .../documents/refetch queues it again")
            }
            JobOutcome::Failed { error, retry_in, .. } => {
                report.outcome = "retry";
                report.error = Some(error.clone());
                report.retry_after_secs = Some(retry_in.as_secs_f64().ceil() as u64);
                tracing::warn!(provider = name, agreement_id = %job.agreement_id, %error, attempts = job.attempts,
                    retry_in_secs = retry_in.as_secs(), "document fetch failed; will retry")
            }
        }
        match self.store.documents().finish(job, &outcome).await {
            Ok(true) => tracing::info!(provider = name, agreement_id = %job.agreement_id,
                "document.available recorded: the application is told the copy is stored"),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, provider = name, agreement_id = %job.agreement_id,
                "could not record the document fetch; its lease lapses and it is fetched again"),
        }
        report
    }

    /// A registered provider's name as a metric label (never user input).
    fn label(&self, name: &str) -> &'static str {
        self.providers.get(name).map_or("unknown", |provider| provider.name())
    }

    async fn fetch(&self, job: &DocumentJob, report: &mut FetchReport) -> Result<(), FetchError> {
        let provider = self
            .providers
            .get(&job.provider)
            .ok_or_else(|| FetchError::Provider(PollError::NotConfigured))?
            .clone();
        // Adobe web forms and bulk sends have no document of their own (their
        // agreements, each with its own id, do).
        if !provider.poll_kinds().contains(&job.resource_type.as_str()) {
            tracing::info!(provider = provider.name(), agreement_id = %job.agreement_id, resource_type = %job.resource_type,
                "this kind of resource has no documents to keep");
            return Ok(());
        }
        let existing: HashMap<String, DateTime<Utc>> = self
            .store
            .documents()
            .list(&job.provider, &job.agreement_id)
            .await?
            .into_iter()
            .map(|doc| (doc.kind, doc.fetched_at))
            .collect();
        let needed = |kind: &str| match existing.get(kind) {
            None => true,
            Some(at) => job.refetch_before.is_some_and(|before| *at < before),
        };
        if needed(SIGNED) {
            if let Some(inline) = self.inline(provider.as_ref(), job).await? {
                let stored = self.put_bytes(&inline.bytes).await?;
                self.record(
                    job,
                    provider.as_ref(),
                    &inline.kind,
                    &inline.file_name,
                    &inline.content_type,
                    "webhook",
                    &stored,
                    report,
                )
                .await?;
            }
        }
        let have_signed = !needed(SIGNED) || report.fetched.iter().any(|doc| doc.kind == SIGNED);
        let listed = within_deadline(provider.documents(&job.agreement_id, job.tenant.as_deref())).await;
        let refs = match listed {
            Ok(refs) => refs,
            Err(PollError::NotConfigured) if have_signed => {
                tracing::info!(provider = provider.name(), agreement_id = %job.agreement_id,
                    "no API credentials: the audit trail is not fetched, the signed document came with the notification");
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        };
        for document in refs {
            let fetched_now = report.fetched.iter().any(|doc| doc.kind == document.kind);
            if fetched_now {
                continue;
            }
            if !needed(&document.kind) {
                report.kept.push(document.kind.clone());
                continue;
            }
            match self.download(provider.as_ref(), &document).await {
                Ok((stored, content_type)) => {
                    self.record(
                        job,
                        provider.as_ref(),
                        &document.kind,
                        &document.file_name,
                        &content_type,
                        "api",
                        &stored,
                        report,
                    )
                    .await?
                }
                Err(error) => {
                    let outcome = match &error {
                        FetchError::Provider(PollError::Call(CallError::Throttled { .. })) => "deferred",
                        _ => "failed",
                    };
                    counter!(metric::DOCUMENTS_FETCHED, "provider" => provider.name(),
                        "kind" => kind_label(&document.kind), "outcome" => outcome)
                    .increment(1);
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// The signed document a completing notification of this agreement
    /// carried, if the provider puts it there.
    async fn inline(&self, provider: &dyn Provider, job: &DocumentJob) -> Result<Option<InlineDocument>, FetchError> {
        let bodies = self
            .store
            .documents()
            .completing_bodies(&job.provider, &job.agreement_id, INLINE_CANDIDATES)
            .await?;
        Ok(bodies.iter().find_map(|body| provider.inline_document(body)))
    }

    async fn put_bytes(&self, bytes: &[u8]) -> Result<Stored, FetchError> {
        let body = futures::stream::once(futures::future::ready(Ok(Bytes::copy_from_slice(bytes))));
        Ok(self.documents.put(Box::pin(body), Some(bytes.len() as u64)).await?)
    }

    /// Streams one document from the provider into the store.
    async fn download(&self, provider: &dyn Provider, document: &DocumentRef) -> Result<(Stored, String), FetchError> {
        let download = provider.download(document).await?;
        let content_type = download.content_type.clone();
        let stored = self
            .documents
            .put(download.body, download.length)
            .await
            .map_err(|error| match error {
                DocumentStoreError::Source(source) => match source.downcast::<CallError>() {
                    Ok(call) => FetchError::Provider(PollError::Call(*call)),
                    Err(other) => FetchError::Storage(DocumentStoreError::Backend(other.to_string())),
                },
                other => FetchError::Storage(other),
            })?;
        Ok((stored, content_type))
    }

    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        job: &DocumentJob,
        provider: &dyn Provider,
        kind: &str,
        file_name: &str,
        content_type: &str,
        source: &'static str,
        stored: &Stored,
        report: &mut FetchReport,
    ) -> Result<(), FetchError> {
        self.store
            .documents()
            .save(
                &job.provider,
                &job.agreement_id,
                &NewDocument {
                    kind,
                    sha256: &stored.sha256,
                    size: stored.size,
                    content_type,
                    file_name,
                    source,
                },
            )
            .await?;
        let kind_label = kind_label(kind);
        counter!(metric::DOCUMENTS_FETCHED, "provider" => provider.name(), "kind" => kind_label, "outcome" => "stored")
            .increment(1);
        counter!(metric::DOCUMENT_BYTES, "provider" => provider.name(), "kind" => kind_label).increment(stored.size);
        tracing::info!(provider = provider.name(), agreement_id = %job.agreement_id, kind, source,
            size = stored.size, sha256 = %stored.sha256, new_content = stored.written, "document stored");
        report.fetched.push(FetchedDocument {
            kind: kind.to_owned(),
            sha256: stored.sha256.clone(),
            size: stored.size,
            source,
        });
        Ok(())
    }

    /// Deferred while the API may not be called yet; else retried with
    /// backoff, or dead after the last attempt.
    fn failed(&self, job: &DocumentJob, error: FetchError) -> JobOutcome {
        if let FetchError::Provider(PollError::Call(call @ CallError::Throttled { wait, .. })) = &error {
            return JobOutcome::Deferred {
                note: format!("not fetched yet: {call}"),
                retry_in: *wait,
            };
        }
        let attempts = u32::try_from(job.attempts).unwrap_or(1).max(1);
        let message = match &error {
            FetchError::Provider(PollError::NotConfigured) => format!(
                "{error}, and no notification carried the signed document; configure the provider's API credentials and refetch"
            ),
            _ => error.to_string(),
        };
        // Nothing will change without a new configuration: no point retrying.
        let dead =
            attempts >= self.settings.max_attempts || matches!(error, FetchError::Provider(PollError::NotConfigured));
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        let retry_in = self
            .settings
            .retry_base
            .get()
            .saturating_mul(factor)
            .min(self.settings.retry_max.get());
        JobOutcome::Failed {
            error: message,
            dead,
            retry_in,
        }
    }

    /// Publishes, per provider, the completed agreements still without their
    /// signed copy after `SIGNHOOK_DOCUMENT_MISSING_AFTER`, with a WARN while
    /// there are any; until `shutdown`.
    pub async fn watch_missing(self: Arc<Self>, shutdown: CancellationToken) {
        let after = self.settings.missing_after.get();
        let every = after.min(MISSING_CHECK_EVERY);
        while !shutdown.is_cancelled() {
            match self.store.documents().missing(after).await {
                Ok(rows) => {
                    for provider in self.providers.iter() {
                        let name = provider.name();
                        let missing = rows.iter().find(|(p, _)| p == name).map_or(0, |(_, n)| *n);
                        gauge!(metric::DOCUMENTS_MISSING, "provider" => name).set(missing as f64);
                        if missing > 0 {
                            tracing::warn!(
                                provider = name,
                                missing,
                                after_secs = after.as_secs(),
                                "completed agreements still have no signed copy (see GET /api/agreements/{{provider}}/{{id}}/documents for each job's last error)"
                            );
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "could not count completed agreements missing their copy"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}

/// A document kind as a metric label: the further documents of a bundle
/// share one label, so labels stay few.
fn kind_label(kind: &str) -> &'static str {
    match kind {
        SIGNED => SIGNED,
        crate::documents::AUDIT_TRAIL => crate::documents::AUDIT_TRAIL,
        _ => "signed_more",
    }
}
