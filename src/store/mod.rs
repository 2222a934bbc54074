//! PostgreSQL access. The events table is both the durable record of every
//! notification and the work queue; agreements and their history are what the
//! worker derives from it. Correctness rests on constraints (UNIQUE dedupe,
//! `FOR UPDATE SKIP LOCKED` claims, row locks per agreement), never on
//! read-then-write checks in Rust.

mod agreements;
mod events;
mod reconcile;
mod writer;

use std::{str::FromStr, time::Duration};

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    ConnectOptions, Connection, PgConnection, PgPool,
};

pub use agreements::{AgreementView, HistoryEntry};
pub use events::{Claim, ClaimedEvent, EventFilter, EventPage, EventRow, EventState, StateCounts};
pub use reconcile::{DueAgreement, PollRecord, ProviderActivity, ProviderCounts, WatchState};
pub use writer::{BatchLimits, IngestWriter};

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

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connects to `DATABASE_URL`, creating the database first when it does not
    /// exist (several replicas may race to do so; losing the race is fine).
    pub async fn connect(settings: &Settings) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(&settings.database_url)
            .map_err(StoreError::InvalidUrl)?
            .log_statements(tracing::log::LevelFilter::Debug)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1))
            // The worker's claimed events are locked by an open transaction;
            // if its replica hangs or is cut off, PostgreSQL ends the
            // transaction after the lease and the events go back to the queue.
            .options([(
                "idle_in_transaction_session_timeout",
                format!("{}s", settings.worker_lease_secs),
            )]);
        ensure_database(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.db_max_connections)
            .acquire_timeout(Duration::from_millis(settings.db_acquire_timeout_ms))
            // A broken connection fails its query and is replaced; testing every
            // checkout would cost a round trip per request.
            .test_before_acquire(false)
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

    pub fn pool(&self) -> &PgPool {
        &self.pool
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
