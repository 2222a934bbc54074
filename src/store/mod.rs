//! PostgreSQL access. The events table is the durable record of every
//! notification, the queue beside it the work still to do; agreements and
//! their history are what the worker derives from them. Correctness rests on
//! constraints (UNIQUE dedupe, `FOR UPDATE SKIP LOCKED` claims, row locks per
//! agreement), never on read-then-write checks in Rust.
//!
//! [`Store`] holds the pool; its API is one small handle per table or use,
//! each in its own file: [`Store::ingest`], [`Store::queue`],
//! [`Store::agreements`], [`Store::polling`], [`Store::watches`],
//! [`Store::activity`], [`Store::budgets`], [`Store::events`], [`Store::counts`],
//! [`Store::changes`] and [`Store::deliveries`]; [`Store::documents`] (fetch
//! jobs and kept documents) and [`Store::blobs`] (the documents' bytes, when
//! PostgreSQL is the document store).

mod activity;
mod agreements;
mod blobs;
mod budgets;
mod changes;
mod counts;
mod deliveries;
mod documents;
mod events;
mod ingest;
mod polling;
mod queue;
mod watches;

use std::{str::FromStr, time::Duration};

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    ConnectOptions, Connection, PgConnection, PgPool,
};

pub use activity::{ProviderActivity, WebhookActivity};
pub use agreements::{
    parse_listing_cursor, AgreementFilter, AgreementPage, AgreementSummary, AgreementView, Agreements, HeldEvent,
    HistoryEntry, PollApplied, ToApply,
};
pub use blobs::{Blobs, CHUNK};
pub use budgets::{BudgetView, Budgets};
pub use changes::{
    record_changes, ChangeDocument, ChangeOrigin, ChangeType, ChangeView, Changes, NewChange, CHANGE_SEQUENCED,
    CHANGE_WRITTEN,
};
pub use counts::{Counts, ProviderCounts, StateCounts};
pub use deliveries::{
    AgreementDeliveries, Attempt, ClaimedDelivery, Deliveries, DeliveryFilter, DeliveryPage, DeliveryView,
    DestinationRecord, DestinationView, Recovery,
};
pub use documents::{DocumentJob, DocumentJobView, DocumentView, Documents, JobOutcome, NewDocument};
pub use events::{EventFilter, EventPage, EventRow, EventState, Events};
pub use ingest::{BatchLimits, Ingest, IngestWriter};
pub use polling::{DueAgreement, PollRecord, Polling};
pub use queue::{Claim, ClaimedEvent, Queue};
pub use watches::{WatchState, Watches};

use crate::config::Settings;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid DATABASE_URL: {0}")]
    InvalidUrl(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the database did not answer in time")]
    TimedOut,
    #[error("the batch holding this event failed: {0}")]
    BatchFailed(String),
    #[error("the ingest writers have stopped")]
    Closed,
    #[error("a stored event could not be found again")]
    Vanished,
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether the database refused a value (SQLSTATE classes 22 "data
    /// exception", 23 "integrity constraint violation" and 54 "program limit
    /// exceeded", e.g. an index entry too large), as opposed to being
    /// unavailable or too slow: the same values fail the same way again.
    pub fn is_data_error(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(error)) => error
                .code()
                .is_some_and(|code| ["22", "23", "54"].iter().any(|class| code.starts_with(class))),
            _ => false,
        }
    }
}

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connects to `DATABASE_URL`, creating the database first when it does not
    /// exist (several replicas may race to do so; losing the race is fine).
    pub async fn connect(settings: &Settings) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(&settings.database.url)
            .map_err(StoreError::InvalidUrl)?
            .log_statements(tracing::log::LevelFilter::Debug)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1))
            // The worker's claimed events are locked by an open transaction;
            // if its replica hangs or is cut off, PostgreSQL ends the
            // transaction after the lease and the events go back to the queue.
            .options([(
                "idle_in_transaction_session_timeout",
                format!("{}s", settings.worker.lease_secs),
            )]);
        ensure_database(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.database.max_connections)
            .acquire_timeout(settings.database.acquire_timeout())
            // Every checkout is pinged first: one round trip (ingest takes one
            // connection per group commit, not per request). Without it, after
            // PostgreSQL restarts, each pooled connection — all dead, and
            // nothing says so until one is used — fails the one request that
            // draws it with a 503.
            .test_before_acquire(true)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    /// Applies migrations/ (embedded at build time). sqlx holds an advisory
    /// lock while migrating, so replicas starting together are safe.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations").run(&self.pool).await?;
        Ok(())
    }

    /// Whether the database answers right now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The database's clock: what times the store records are compared with.
    pub async fn now(&self) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
        Ok(sqlx::query_scalar("SELECT now()").fetch_one(&self.pool).await?)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Storing notifications as they arrive (group commit).
    pub fn ingest(&self) -> Ingest<'_> {
        Ingest { pool: &self.pool }
    }

    /// The work queue: claiming events to apply, failures, replays.
    pub fn queue(&self) -> Queue<'_> {
        Queue { pool: &self.pool }
    }

    /// Agreements and their history: applying events and polls, reading one.
    pub fn agreements(&self) -> Agreements<'_> {
        Agreements { pool: &self.pool }
    }

    /// The reconciler's claims on agreements due for a poll.
    pub fn polling(&self) -> Polling<'_> {
        Polling { pool: &self.pool }
    }

    /// Per-agreement webhooks registered at the providers.
    pub fn watches(&self) -> Watches<'_> {
        Watches { pool: &self.pool }
    }

    /// Provider API budgets, pauses and rotated refresh tokens (every replica's).
    pub fn budgets(&self) -> Budgets<'_> {
        Budgets { pool: &self.pool }
    }

    /// Webhook activity per provider, for silence detection.
    pub fn activity(&self) -> WebhookActivity<'_> {
        WebhookActivity { pool: &self.pool }
    }

    /// Stored events as the admin API lists them.
    pub fn events(&self) -> Events<'_> {
        Events { pool: &self.pool }
    }

    /// The change feed and its sequencer.
    pub fn changes(&self) -> Changes<'_> {
        Changes { pool: &self.pool }
    }

    /// Deliveries of changes to the application, and its destinations.
    pub fn deliveries(&self) -> Deliveries<'_> {
        Deliveries { pool: &self.pool }
    }

    /// Document fetch jobs and the documents kept for each agreement.
    pub fn documents(&self) -> Documents<'_> {
        Documents { pool: &self.pool }
    }

    /// The PostgreSQL document store.
    pub fn blobs(&self) -> Blobs {
        Blobs {
            pool: self.pool.clone(),
        }
    }

    /// Counts of events and agreements.
    pub fn counts(&self) -> Counts<'_> {
        Counts { pool: &self.pool }
    }
}

async fn ensure_database(options: &PgConnectOptions) -> Result<(), StoreError> {
    const INVALID_CATALOG_NAME: &str = "3D000";
    const DUPLICATE_DATABASE: &str = "42P04";
    const UNIQUE_VIOLATION: &str = "23505";

    let error = match PgConnection::connect_with(options).await {
        Ok(conn) => return Ok(conn.close().await?),
        Err(e) => e,
    };
    let missing = error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == INVALID_CATALOG_NAME);
    if !missing {
        return Err(error.into());
    }
    let name = options.get_database().unwrap_or("signhook").to_owned();
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let created = sqlx::query(&format!(r#"CREATE DATABASE "{}""#, name.replace('"', "\"\"")))
        .execute(&mut admin)
        .await;
    admin.close().await?;
    match created {
        Ok(_) => {
            tracing::info!(database = %name, "created database");
            Ok(())
        }
        Err(e)
            if e.as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == DUPLICATE_DATABASE || c == UNIQUE_VIOLATION) =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
