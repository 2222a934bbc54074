//! signhook: a durable webhook receiver for e-signature providers.
//!
//! Flow: HTTP request → provider authenticates and extracts → store commits →
//! acknowledgement → worker applies the event to its agreement.

pub mod agreement;
pub mod changes;
pub mod config;
pub mod confirmation;
pub mod delivery;
pub mod documents;
pub mod event;
pub mod fetcher;
pub mod http;
pub mod ledger;
pub mod outbound;
pub mod providers;
pub mod reconciler;
pub mod silence;
pub mod simulate;
pub mod store;
pub mod telemetry;
pub mod watching;
pub mod worker;

use std::{net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    config::{Config, ConfigError},
    delivery::{worker::Dispatcher, Destination},
    documents::{object::ObjectDocuments, DocumentStore, StoreLocation},
    fetcher::Fetcher,
    http::AppState,
    providers::Providers,
    reconciler::Reconciler,
    store::{Store, StoreError},
    worker::{Worker, WorkerHandle},
};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr} ({setting}): {source}")]
    Bind {
        setting: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A bound, migrated, ready-to-run service.
pub struct Application {
    listener: TcpListener,
    /// `SIGNHOOK_OPS_LISTEN`'s, when set.
    ops_listener: Option<TcpListener>,
    state: AppState,
    destinations: Vec<Destination>,
}

impl Application {
    /// Connects (creating the database if needed), migrates, builds the
    /// providers and binds the listener. Port 0 binds a free port; see
    /// [`Application::local_addr`].
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let settings = Arc::new(config.settings.clone());
        telemetry::metrics();
        // Present from the first scrape, so `absent()` alerts do not fire on a
        // replica whose reconciler has not looked yet.
        // Counters too: `rate()` over a series that appears only with its
        // first request misses that request.
        for name in Providers::names() {
            metrics::gauge!(telemetry::metric::PROVIDER_SILENT, "provider" => name).set(0.0);
            metrics::gauge!(telemetry::metric::PROVIDER_API_PAUSED, "provider" => name).set(0.0);
            for outcome in http::webhook_outcomes() {
                metrics::counter!(telemetry::metric::WEBHOOK_REQUESTS, "provider" => name, "outcome" => outcome)
                    .increment(0);
            }
        }
        let providers = Providers::from_config(&config)?;
        let names: Vec<&str> = Providers::names().collect();
        let destinations = Destination::from_settings(&settings.delivery, &names)?;
        let addr = settings.server.listen_addr()?;
        let store = Store::connect(&settings).await?;
        store.migrate().await?;
        // Before the worker runs: changes are queued for the destinations
        // registered when they are recorded.
        Dispatcher::register(&store, &destinations).await?;
        // Every provider API call from now on draws from the budgets all
        // replicas share.
        providers.attach(Arc::new(store.clone()));
        let documents: Arc<dyn DocumentStore> = match settings.documents.location()? {
            StoreLocation::Postgres => Arc::new(store.blobs()),
            StoreLocation::Object(url) => Arc::new(ObjectDocuments::open(&url)?),
        };
        let fetcher = Arc::new(Fetcher::new(
            store.clone(),
            providers.clone(),
            documents,
            settings.documents.clone(),
        ));
        let listener = bind("SIGNHOOK_LISTEN", addr).await?;
        let ops_listener = match settings.server.ops_listen_addr()? {
            Some(addr) => Some(bind("SIGNHOOK_OPS_LISTEN", addr).await?),
            None => None,
        };
        Ok(Self {
            listener,
            ops_listener,
            state: AppState::new(store, providers, WorkerHandle::default(), settings, fetcher),
            destinations,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Where the ops endpoints are served, when `SIGNHOOK_OPS_LISTEN` is set.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        let listener = self.ops_listener.as_ref()?;
        Some(listener.local_addr().expect("a bound listener has an address"))
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets
    /// in-flight requests and the worker's current event finish, and returns
    /// within the configured grace period.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let state = self.state;
        let dispatcher = Dispatcher::new(
            state.store.clone(),
            state.changes.clone(),
            self.destinations,
            &state.settings.delivery,
        );
        let grace = state.settings.server.shutdown_grace();
        warn_about_configuration(&state);
        // Several loops claim disjoint batches (SKIP LOCKED), so applying
        // overlaps with the next claim and commit.
        let workers: Vec<_> = (0..state.settings.worker.concurrency)
            .map(|_| {
                let worker = Worker::new(
                    state.store.clone(),
                    state.providers.clone(),
                    &state.settings.worker,
                    state.worker.clone(),
                );
                tokio::spawn(worker.run(shutdown.clone()))
            })
            .collect();
        // Polls stale agreements and watches for silent providers; the
        // activity it reads is written to the database by the flush loop.
        let reconciler = Reconciler::new(
            state.store.clone(),
            state.providers.clone(),
            state.settings.clone(),
            state.worker.held_finals(),
        );
        // The change feed's LISTEN connection and sequencer, and the
        // deliveries to the application.
        let mut background = vec![
            tokio::spawn(reconciler.run(shutdown.clone())),
            tokio::spawn(state.activity.clone().flush_loop(state.store.clone(), shutdown.clone())),
            tokio::spawn(state.fetcher.clone().watch_missing(shutdown.clone())),
            // What readiness answers from.
            tokio::spawn(state.ops.clone().watch_database(state.store.clone(), shutdown.clone())),
            tokio::spawn(state.changes.clone().listen(state.store.clone(), shutdown.clone())),
            tokio::spawn(state.changes.clone().sequence(state.store.clone(), shutdown.clone())),
            tokio::spawn(dispatcher.run(shutdown.clone())),
        ];
        // Fetch the copies of completed agreements; a job in progress at
        // shutdown is abandoned and taken over after its lease.
        background.extend(
            (0..state.settings.documents.workers).map(|_| tokio::spawn(state.fetcher.clone().run(shutdown.clone()))),
        );
        tracing::info!(store = %state.fetcher.documents().describe(), fetchers = state.settings.documents.workers,
            "documents of completed agreements are kept");
        tracing::info!(addr = %self.listener.local_addr()?, "listening");

        let limits = connection_limits(&state.settings);
        let ops_server = self.ops_listener.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "ops endpoints listening (SIGNHOOK_OPS_LISTEN)");
            }
            tokio::spawn(http::serve(
                listener,
                http::ops_router(state.clone()),
                shutdown.clone(),
                limits,
            ))
        });
        let server = tokio::spawn(http::serve(
            self.listener,
            http::router(state),
            shutdown.clone(),
            limits,
        ));
        shutdown.cancelled().await;
        tracing::info!(grace_secs = grace.as_secs(), "shutting down");
        let drained = tokio::time::timeout(grace, async {
            let served = server.await;
            for task in workers.into_iter().chain(background).chain(ops_server) {
                let _ = task.await;
            }
            served
        })
        .await;
        match drained {
            Ok(Ok(())) => Ok(()),
            Ok(Err(join_error)) => Err(std::io::Error::other(join_error)),
            Err(_) => {
                tracing::warn!("grace period over; exiting with work in flight (unacknowledged requests will be retried by providers, claimed events go back to the queue as the connections close)");
                Ok(())
            }
        }
    }
}

async fn bind(setting: &'static str, addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { setting, addr, source })
}

/// The server's connection limits; the cap lowered (and said so) when the
/// open-files limit would not hold it beside the database pool.
fn connection_limits(settings: &config::Settings) -> http::ConnectionLimits {
    let configured = settings.server.max_connections;
    let limit = http::open_files_limit();
    let cap = http::connection_cap(configured, limit, settings.database.max_connections as usize);
    if cap < configured {
        tracing::warn!(
            configured,
            open_files_limit = limit,
            max_connections = cap,
            "SIGNHOOK_MAX_CONNECTIONS lowered to fit the open-files limit (ulimit -n) beside the database pool"
        );
    }
    http::ConnectionLimits {
        idle_timeout: settings.server.header_read_timeout(),
        max_connections: cap,
    }
}

fn warn_about_configuration(state: &AppState) {
    if state.settings.server.admin_token.is_none() {
        tracing::warn!("SIGNHOOK_ADMIN_TOKEN is not set: the admin API (/api/*) is disabled and answers 404");
    }
    for provider in state.providers.iter() {
        if !provider.is_configured() {
            tracing::warn!(
                provider = provider.name(),
                "provider has no credentials configured: every webhook from it is refused"
            );
        }
        match provider.can_poll() {
            true => tracing::info!(
                provider = provider.name(),
                "API credentials configured: polling enabled"
            ),
            false => tracing::info!(provider = provider.name(), "no API credentials: polling disabled"),
        }
    }
}

/// Effective configuration with secrets masked, as `check-config` prints it.
pub fn describe(config: &Config) -> Result<serde_json::Value, ConfigError> {
    let providers = Providers::from_config(config)?;
    let mut value = config.settings.masked();
    for provider in providers.iter() {
        value["providers"][provider.name()] = provider.settings();
    }
    Ok(value)
}
