//! The in-process harness (zero-to-production's `tests/api/helpers.rs`):
//! `spawn_app()` builds the service with `Application::build` on
//! `127.0.0.1:0` with a fresh `signhook_test_<uuid>` database, runs it on a
//! task of the test's runtime until the returned [`TestApp`] is dropped
//! (which also drops the database), and hands back the typed helpers of
//! [`Api`] for every provider and the admin API.
//!
//! The app's log lines go to the test's captured output (shown when it
//! fails); they are not collected for assertions: tests that assert on log
//! lines or on `/metrics` values, which are process-wide, live in
//! `tests/process`.

use std::{ops::Deref, sync::Once};

use signhook::{config::Config, Application};
use tokio_util::sync::CancellationToken;

pub use crate::common::*;

/// A running in-process app; stops and drops its database when dropped.
pub struct TestApp {
    api: Api,
    /// `http://<SIGNHOOK_OPS_LISTEN's address>`, when the app has one.
    pub ops_address: Option<String>,
    shutdown: CancellationToken,
    /// Whether dropping this app drops the database (replicas share one).
    owns_db: bool,
}

impl Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// An app with the test configuration plus `vars` (an empty value unsets a
/// default; see `common::test_vars`).
pub async fn spawn_app_with(vars: &[(&str, &str)]) -> TestApp {
    spawn(fresh_database_name(), true, vars).await
}

/// Another app on an existing app's database (a replica, or a second
/// version of the service); it never drops the database.
pub async fn spawn_app_on(db_name: &str, vars: &[(&str, &str)]) -> TestApp {
    spawn(db_name.to_owned(), false, vars).await
}

async fn spawn(db_name: String, owns_db: bool, overrides: &[(&str, &str)]) -> TestApp {
    log_to_test_output();
    let url = database_url(&db_name);
    let vars = test_vars(&url, overrides);
    let config = Config::from_vars(vars).expect("the test configuration is valid");
    let application = Application::build(config).await.expect("the app starts");
    let address = format!("http://{}", application.local_addr());
    let ops_address = application.ops_addr().map(|addr| format!("http://{addr}"));
    let shutdown = CancellationToken::new();
    tokio::spawn(application.run_until_stopped(shutdown.clone()));
    TestApp {
        api: Api::connect(address, &url, db_name, LogLines::default()).await,
        ops_address,
        shutdown,
        owns_db,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if self.owns_db {
            drop_database(&self.api.db_name);
        }
    }
}

/// The apps' log lines, to the captured output of the test they run in
/// (`#[tokio::test]` runs the app's tasks on the test's thread); filtered by
/// `RUST_LOG`, by default `info,sqlx=warn`.
fn log_to_test_output() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}
