//! Group-commit ingest. Requests that are ready at the same moment are written
//! in one `INSERT … SELECT FROM unnest(…)` statement — one commit, one fsync —
//! and each request is answered only after the commit that holds its row.
//!
//! A writer never waits to fill a batch: it takes whatever is queued when it
//! becomes free, so an idle server commits each request on its own at once.
//! Several writers run side by side so one commit's latency does not stall
//! the next batch.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use sqlx::{Connection, PgPool};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::{Store, StoreError};
use crate::{
    agreement::AgreementStatus,
    event::{NewEvent, Parent, Receipt},
};

struct Job {
    event: NewEvent,
    reply: oneshot::Sender<Result<Receipt, StoreError>>,
    /// Dropped once the write is done with the event (see [`IngestWriter::ingest`]).
    held: Box<dyn Send>,
}

/// Limits of one batch; the first event of a batch is always taken, so one
/// body larger than `max_bytes` still gets its own batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_rows: usize,
    pub max_bytes: usize,
}

/// Handle to the writers; cheap to clone.
#[derive(Clone)]
pub struct IngestWriter {
    jobs: mpsc::Sender<Job>,
}

impl IngestWriter {
    /// Starts `writers` writer tasks. `on_commit` runs after every committed
    /// batch that stored something new (it wakes the worker).
    pub fn start(
        store: Store,
        writers: usize,
        limits: BatchLimits,
        on_commit: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        // Callers are bounded by the HTTP concurrency limit; this capacity only
        // decouples them from the writers.
        let (jobs, queue) = mpsc::channel(limits.max_rows * writers.max(1) * 2);
        let queue = Arc::new(Mutex::new(queue));
        let on_commit: Arc<dyn Fn() + Send + Sync> = Arc::new(on_commit);
        for _ in 0..writers.max(1) {
            tokio::spawn(write_batches(store.clone(), queue.clone(), limits, on_commit.clone()));
        }
        Self { jobs }
    }

    /// Stores `event` (or finds it already stored) and returns after the
    /// commit. If the caller gives up first, the write still completes.
    /// `held` (the caller's accounting of the memory the event costs) is
    /// dropped when the write is done with the event, whenever the caller
    /// stops waiting.
    pub async fn ingest(&self, event: NewEvent, held: Box<dyn Send>) -> Result<Receipt, StoreError> {
        let (reply, receipt) = oneshot::channel();
        self.jobs
            .send(Job { event, reply, held })
            .await
            .map_err(|_| StoreError::Closed)?;
        receipt.await.map_err(|_| StoreError::Closed)?
    }
}

async fn write_batches(
    store: Store,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    limits: BatchLimits,
    on_commit: Arc<dyn Fn() + Send + Sync>,
) {
    loop {
        let batch = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut bytes = first.event.body.len();
            let mut batch = vec![first];
            while batch.len() < limits.max_rows && bytes < limits.max_bytes {
                match queue.try_recv() {
                    Ok(job) => {
                        bytes += job.event.body.len();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        let mut events = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut held = Vec::with_capacity(batch.len());
        for job in batch {
            events.push(job.event);
            replies.push(job.reply);
            held.push(job.held);
        }
        let results = match store.ingest().insert_batch(&events).await {
            Ok(receipts) => receipts.into_iter().map(Ok).collect(),
            Err(error) if error.is_data_error() => {
                tracing::warn!(%error, rows = events.len(), "batch insert refused a value; inserting its rows one by one");
                insert_one_by_one(&store, std::mem::take(&mut events)).await
            }
            Err(error) => {
                tracing::error!(%error, rows = events.len(), "batch insert failed; its requests get 503");
                let message = error.to_string();
                events
                    .iter()
                    .map(|_| Err(StoreError::BatchFailed(message.clone())))
                    .collect()
            }
        };
        if results
            .iter()
            .any(|r: &Result<Receipt, _>| r.as_ref().is_ok_and(|r| !r.duplicate))
        {
            on_commit();
        }
        // The bodies are gone: what the callers counted for them is free.
        drop(events);
        drop(held);
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// The fallback after a batch insert failed on a data error (a value the
/// database refused, as opposed to the database being unavailable): every
/// row is inserted on its own, so only the offending one fails, and that one
/// is kept quarantined (stored dead with the database's reason, answered
/// 200) instead of being refused. Values are made storable before they get
/// here ([`NewEvent::understood`]); this is the net for anything missed.
async fn insert_one_by_one(store: &Store, events: Vec<NewEvent>) -> Vec<Result<Receipt, StoreError>> {
    let mut results = Vec::with_capacity(events.len());
    for event in events {
        let result = match store.ingest().insert_batch(std::slice::from_ref(&event)).await {
            Err(error) if error.is_data_error() && event.quarantined.is_none() => {
                tracing::warn!(%error, provider = event.provider, "an event's values were refused; keeping it quarantined");
                let kept = event.into_quarantined(format!("the database refused a value of this event: {error}"));
                store.ingest().insert_batch(std::slice::from_ref(&kept)).await
            }
            other => other,
        };
        results.push(result.and_then(|receipts| receipts.into_iter().next().ok_or(StoreError::Vanished)));
    }
    results
}

/// Body bytes in one insert above which its connection's buffers are shrunk
/// back afterwards (sqlx keeps a connection's write buffer at the largest
/// message it has sent).
const SHRINK_BUFFERS_ABOVE: usize = 1024 * 1024;

fn parent(event: &NewEvent) -> Option<&Parent> {
    event.subject.as_ref()?.parent.as_ref()
}

/// The events table as ingest writes it; see [`super::Store::ingest`].
#[derive(Clone, Copy)]
pub struct Ingest<'a> {
    pub(super) pool: &'a PgPool,
}

impl Ingest<'_> {
    /// Inserts `events`, and queues the new ones, in one statement; returns
    /// one receipt per event, in order. An event already stored — earlier,
    /// by another replica, or by an earlier copy in this same batch — is a
    /// duplicate.
    pub async fn insert_batch(&self, events: &[NewEvent]) -> Result<Vec<Receipt>, StoreError> {
        // Rows go in in one global order, (provider, event id): replicas
        // inserting the same events at once then wait for each other on the
        // unique index instead of deadlocking (which failed whole batches).
        let mut sorted: Vec<&NewEvent> = events.iter().collect();
        sorted.sort_by(|a, b| (a.provider, &a.event_id).cmp(&(b.provider, &b.event_id)));
        let column = |f: fn(&NewEvent) -> Option<&str>| sorted.iter().map(|e| f(e)).collect::<Vec<_>>();
        let mut conn = self.pool.acquire().await?;
        let inserted: Vec<(i64, String, String)> = sqlx::query_as(
            "WITH stored AS (
                 INSERT INTO events (provider, event_id, event_type, resource_type, resource_id, tenant,
                                     occurred_at, content_type, body, parsed, subject_status, provider_status,
                                     subject_name, state, last_error, parent_type, parent_id)
                 SELECT p, e, t, rt, ri, te, o, c, b, q IS NULL, ss, ps, sn,
                        CASE WHEN q IS NULL THEN 'pending' ELSE 'dead' END, q, pt, pi
                   FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                               $7::timestamptz[], $8::text[], $9::bytea[], $10::text[], $11::text[], $12::text[],
                               $13::text[], $14::text[], $15::text[])
                        WITH ORDINALITY AS r(p, e, t, rt, ri, te, o, c, b, ss, ps, sn, q, pt, pi, n)
                  ORDER BY n
                 ON CONFLICT ON CONSTRAINT events_provider_event_id_key DO NOTHING
                 RETURNING id, provider, event_id, state = 'dead' AS dead),
             -- A quarantined event's queue row is dead: listed and counted
             -- with the dead, claimed again only once replayed.
             queued AS (INSERT INTO event_queue (id, dead) SELECT id, dead FROM stored)
             SELECT id, provider, event_id FROM stored",
        )
        .bind(column(|e| Some(e.provider)))
        .bind(column(|e| Some(&e.event_id)))
        .bind(column(|e| Some(&e.event_type)))
        .bind(column(|e| e.subject.as_ref().map(|s| s.kind.as_str())))
        .bind(column(|e| e.subject.as_ref().map(|s| s.id.as_str())))
        .bind(column(|e| e.tenant.as_deref()))
        .bind(sorted.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
        .bind(column(|e| e.content_type.as_deref()))
        .bind(sorted.iter().map(|e| e.body.as_ref()).collect::<Vec<_>>())
        .bind(column(|e| {
            e.subject.as_ref().and_then(|s| s.status).map(AgreementStatus::as_str)
        }))
        .bind(column(|e| {
            e.subject.as_ref().and_then(|s| s.provider_status.as_deref())
        }))
        .bind(column(|e| e.subject.as_ref().and_then(|s| s.name.as_deref())))
        .bind(column(|e| e.quarantined.as_deref()))
        .bind(column(|e| parent(e).map(|p| p.kind.as_str())))
        .bind(column(|e| parent(e).map(|p| p.id.as_str())))
        .fetch_all(&mut *conn)
        .await?;
        // A connection keeps its buffers at their largest: after a batch of
        // big bodies that is megabytes per pooled connection, for good.
        if events.iter().map(|e| e.body.len()).sum::<usize>() > SHRINK_BUFFERS_ABOVE {
            conn.shrink_buffers();
        }
        drop(conn);

        let fresh: HashSet<(String, String)> = inserted.iter().map(|(_, p, e)| (p.clone(), e.clone())).collect();
        let mut ids: HashMap<(String, String), i64> = inserted.into_iter().map(|(id, p, e)| ((p, e), id)).collect();
        if ids.len() < events.len() {
            // Rows that were there before; ON CONFLICT waited for any concurrent
            // writer to commit, so this fresh statement sees them.
            let missing: Vec<&NewEvent> = events
                .iter()
                .filter(|e| !fresh.contains(&(e.provider.to_owned(), e.event_id.clone())))
                .collect();
            let found: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT id, provider, event_id FROM events
                  WHERE (provider, event_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            )
            .bind(missing.iter().map(|e| e.provider).collect::<Vec<_>>())
            .bind(missing.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>())
            .fetch_all(self.pool)
            .await?;
            ids.extend(found.into_iter().map(|(id, p, e)| ((p, e), id)));
        }
        // The first copy of a new event in the batch is the new one; any later
        // copy is a duplicate.
        let mut first_seen = HashSet::new();
        events
            .iter()
            .map(|e| {
                let key = (e.provider.to_owned(), e.event_id.clone());
                let id = *ids.get(&key).ok_or(StoreError::Vanished)?;
                let duplicate = !(fresh.contains(&key) && first_seen.insert(key));
                Ok(Receipt { id, duplicate })
            })
            .collect()
    }
}
