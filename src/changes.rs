//! The change feed's moving parts in one replica: a LISTEN connection that
//! turns PostgreSQL notifications into in-process signals, and the sequencer
//! loop that gives committed changes their feed cursor (see
//! [`Changes::sequence`](crate::store::Changes::sequence) for why the feed
//! never skips). Changes themselves are written by
//! [`record_changes`](crate::store::record_changes).

use std::{sync::Arc, time::Duration};

use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::store::{Store, CHANGE_SEQUENCED, CHANGE_WRITTEN};

/// The sequencer and the dispatchers also look on their own this often, so a
/// lost notification (a dropped LISTEN connection) delays work, never loses it.
pub const SAFETY_TICK: Duration = Duration::from_secs(1);

/// Signals from the database to this replica's tasks; cheap to clone.
#[derive(Clone)]
pub struct ChangeSignals {
    inner: Arc<Inner>,
}

struct Inner {
    /// Bumped whenever some replica gave out cursors (long polls watch it).
    sequenced: watch::Sender<u64>,
    /// Some replica committed changes: the sequencer has work.
    written: Notify,
    /// Deliveries were queued or freed: the dispatcher has work.
    deliveries: Notify,
    /// Cancelled at shutdown, so long polls answer at once.
    closed: CancellationToken,
}

impl Default for ChangeSignals {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                sequenced: watch::Sender::new(0),
                written: Notify::new(),
                deliveries: Notify::new(),
                closed: CancellationToken::new(),
            }),
        }
    }
}

impl ChangeSignals {
    /// A receiver that sees every numbering after this call.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.sequenced.subscribe()
    }

    /// Cancelled when the replica shuts down.
    pub fn closed(&self) -> &CancellationToken {
        &self.inner.closed
    }

    /// Wakes the delivery dispatcher (deliveries queued, freed or retried).
    pub fn wake_deliveries(&self) {
        self.inner.deliveries.notify_one();
    }

    /// Resolves at the next [`Self::wake_deliveries`] (or one made before
    /// that nobody waited for).
    pub async fn deliveries_woken(&self) {
        self.inner.deliveries.notified().await
    }

    fn wake_all(&self) {
        self.inner.written.notify_one();
        self.inner.deliveries.notify_one();
        self.inner.sequenced.send_modify(|n| *n += 1);
    }

    /// Forwards notifications until `shutdown`, reconnecting after a lost
    /// connection; after every (re)connection everything is woken once, for
    /// what may have been missed meanwhile.
    pub async fn listen(self, store: Store, shutdown: CancellationToken) {
        let mut reported = false;
        loop {
            let connected = async {
                // A connection of its own, outside the pool requests and the
                // worker share (PgListener keeps the one it is given).
                let own = PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with((*store.pool().connect_options()).clone())
                    .await?;
                let mut listener = PgListener::connect_with(&own).await?;
                listener.listen_all([CHANGE_WRITTEN, CHANGE_SEQUENCED]).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let mut listener = match connected.await {
                Ok(listener) => listener,
                Err(error) => {
                    if !reported {
                        tracing::warn!(%error, "cannot LISTEN for changes; polling every second meanwhile");
                        reported = true;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(SAFETY_TICK) => continue,
                    }
                }
            };
            reported = false;
            self.wake_all();
            loop {
                let notification = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    n = listener.try_recv() => n,
                };
                match notification {
                    Ok(Some(n)) if n.channel() == CHANGE_WRITTEN => {
                        self.inner.written.notify_one();
                        self.inner.deliveries.notify_one();
                    }
                    Ok(Some(_)) => self.inner.sequenced.send_modify(|n| *n += 1),
                    // The connection was lost; the next call reconnects.
                    Ok(None) => self.wake_all(),
                    Err(error) => {
                        tracing::warn!(%error, "LISTEN connection failed; reconnecting");
                        break;
                    }
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
        }
        self.inner.closed.cancel();
    }

    /// Numbers committed changes whenever some replica wrote any (and every
    /// [`SAFETY_TICK`]), until `shutdown`. Every replica runs one; they take
    /// turns through an advisory lock.
    pub async fn sequence(self, store: Store, shutdown: CancellationToken) {
        let mut failing = false;
        loop {
            match store.changes().sequence().await {
                // More may be waiting: a full batch, or commits meanwhile.
                Ok(Some(_)) => {
                    failing = false;
                    continue;
                }
                Ok(None) => failing = false,
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "could not number changes; retrying");
                    }
                    failing = true;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.inner.written.notified() => {}
                _ = tokio::time::sleep(SAFETY_TICK) => {}
            }
        }
    }
}
