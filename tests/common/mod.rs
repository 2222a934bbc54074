//! Test harness: each test spawns the real `signhook` binary on a random port
//! with its own fresh database, and talks to it over HTTP.
#![allow(dead_code)] // each test crate uses a different subset

pub mod cluster;
pub mod fake_provider;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use sqlx::{postgres::PgPoolOptions, PgPool};

pub const ADOBE_CLIENT_ID: &str = "CBJCHBCAABAAtestClientId";
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const BOLDSIGN_SECRET: &str = "boldsign-test-secret-1";
pub const BOLDSIGN_SECRET_2: &str = "boldsign-test-secret-2";
pub const FUSESIGN_SIGNATURE: &str = "fuse-test-signature";

/// Server holding the test databases; override with SIGNHOOK_TEST_DATABASE_URL.
pub fn server_url() -> String {
    std::env::var("SIGNHOOK_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    pub db: PgPool,
    pub client: reqwest::Client,
    pub db_name: String,
    /// Whether dropping this app drops the database (replicas share one).
    owns_db: bool,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Spawns the binary with the default test configuration plus `env`
/// (an empty value unsets a default).
pub async fn spawn_app_with(env: &[(&str, &str)]) -> TestApp {
    let db_name = format!("signhook_test_{}", uuid::Uuid::new_v4().simple());
    spawn_process(db_name, true, env).await
}

/// Another process on an existing app's database: a replica, or a restart
/// after a crash. It never drops the database.
pub async fn spawn_app_on(db_name: &str, env: &[(&str, &str)]) -> TestApp {
    spawn_process(db_name.to_owned(), false, env).await
}

/// An app whose database lives on another server (a throwaway cluster).
pub async fn spawn_app_at(server: &str, env: &[(&str, &str)]) -> TestApp {
    let database_url = format!("{server}/signhook");
    let mut env = env.to_vec();
    env.push(("DATABASE_URL", &database_url));
    spawn_process("signhook".to_owned(), false, &env).await
}

async fn spawn_process(db_name: String, owns_db: bool, env: &[(&str, &str)]) -> TestApp {
    let database_url = format!("{}/{db_name}", server_url());
    let mut defaults = vec![
        ("DATABASE_URL", database_url.as_str()),
        ("SIGNHOOK_LISTEN", "127.0.0.1:0"),
        ("SIGNHOOK_LOG_FORMAT", "json"),
        ("SIGNHOOK_ADOBE_SIGN_CLIENT_IDS", ADOBE_CLIENT_ID),
        ("SIGNHOOK_ADMIN_TOKEN", ADMIN_TOKEN),
        ("SIGNHOOK_BOLDSIGN_SECRETS", BOLDSIGN_SECRET),
        ("SIGNHOOK_FUSESIGN_SIGNATURES", FUSESIGN_SIGNATURE),
        ("SIGNHOOK_WORKER_POLL_INTERVAL_MS", "200"),
        ("RUST_LOG", "info,sqlx=warn"),
    ];
    for (key, value) in env {
        defaults.retain(|(k, _)| k != key);
        defaults.push((key, value));
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_signhook"));
    command
        .arg("serve")
        .env_clear()
        // No config/default.toml is found from here, so only the env applies.
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in defaults.iter().filter(|(_, v)| !v.is_empty()) {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("the signhook binary starts");

    let logs = Arc::new(Mutex::new(Vec::new()));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<String>();
    for stream in [
        Box::new(child.stdout.take().expect("stdout piped")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("stderr piped")),
    ] {
        let logs = logs.clone();
        let addr_tx = addr_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Ok(entry) = serde_json::from_str::<Value>(&line) {
                    if entry["message"] == "listening" {
                        if let Some(addr) = entry["addr"].as_str() {
                            let _ = addr_tx.send(addr.to_owned());
                        }
                    }
                }
                logs.lock().expect("log lock").push(line);
            }
        });
    }
    drop(addr_tx);

    let addr = match tokio::task::spawn_blocking(move || addr_rx.recv_timeout(Duration::from_secs(60)))
        .await
        .expect("waiting for the address")
    {
        Ok(addr) => addr,
        Err(_) => {
            let _ = child.kill();
            panic!(
                "signhook did not report its address; logs:\n{}",
                logs.lock().expect("log lock").join("\n")
            );
        }
    };
    let effective_url = defaults
        .iter()
        .find(|(key, _)| *key == "DATABASE_URL")
        .map_or(database_url.clone(), |(_, url)| url.to_string());
    let db = PgPoolOptions::new()
        .max_connections(4)
        .connect(&effective_url)
        .await
        .expect("test database reachable");
    TestApp {
        address: format!("http://{addr}"),
        db,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // Below any server idle timeout, so a pooled connection is never
            // reused just as the server closes it.
            .pool_idle_timeout(Duration::from_millis(400))
            .build()
            .expect("http client"),
        db_name,
        owns_db,
        child,
        logs,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request sent")
    }

    /// POSTs an Adobe Sign notification with the configured client ID.
    pub async fn post_adobe(&self, body: &Value) -> reqwest::Response {
        self.post_adobe_raw(body.to_string().into_bytes()).await
    }

    /// POSTs an Adobe Sign notification, requires its 200, and waits until
    /// the worker has applied everything stored.
    pub async fn deliver_adobe(&self, body: &Value) {
        assert_eq!(self.post_adobe(body).await.status(), 200, "delivering {body}");
        self.wait_idle().await;
    }

    pub async fn post_adobe_raw(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.post(
            "/webhooks/adobe-sign",
            &[
                ("X-AdobeSign-ClientId", ADOBE_CLIENT_ID),
                ("Content-Type", "application/json"),
            ],
            body,
        )
        .await
    }

    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn admin_post(&self, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn admin_delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request sent")
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("request sent");
        response.text().await.expect("metrics text")
    }

    /// How many log lines contain `text`.
    pub fn log_count(&self, text: &str) -> usize {
        self.logs
            .lock()
            .expect("log lock")
            .iter()
            .filter(|line| line.contains(text))
            .count()
    }

    /// The agreement as the admin API shows it; panics unless it exists.
    pub async fn agreement(&self, provider: &str, id: &str) -> Value {
        let response = self.admin_get(&format!("/api/agreements/{provider}/{id}")).await;
        assert_eq!(response.status(), 200, "agreement {provider}/{id} exists");
        response.json().await.expect("agreement JSON")
    }

    /// Waits until the worker has nothing left to do now (no pending,
    /// processing or due-for-retry events).
    pub async fn wait_idle(&self) {
        self.wait_until("the queue to drain", || async {
            let busy: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM events WHERE state IN ('pending', 'processing')
                    OR (state = 'failed' AND next_attempt_at <= now() + interval '2 seconds')",
            )
            .fetch_one(&self.db)
            .await
            .expect("count busy events");
            busy == 0
        })
        .await;
    }

    /// Polls `condition` every 50 ms for up to 20 s.
    pub async fn wait_until<F, Fut>(&self, what: &str, mut condition: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !condition().await {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn event_count(&self, provider: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE provider = $1")
            .bind(provider)
            .fetch_one(&self.db)
            .await
            .expect("count events")
    }

    pub async fn history_count(&self, provider: &str, agreement_id: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM agreement_history WHERE provider = $1 AND agreement_id = $2")
            .bind(provider)
            .bind(agreement_id)
            .fetch_one(&self.db)
            .await
            .expect("count history")
    }

    pub fn logs(&self) -> String {
        self.logs.lock().expect("log lock").join("\n")
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL sent");
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("process status") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit in {timeout:?}; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.owns_db {
            return;
        }
        let db_name = self.db_name.clone();
        // Drop runs inside the test's runtime; use a thread with its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    if let Ok(pool) = PgPoolOptions::new()
                        .max_connections(1)
                        .connect(&format!("{}/postgres", server_url()))
                        .await
                    {
                        let _ = sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)"#))
                            .execute(&pool)
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

/// An Adobe Sign notification shaped like the documented example.
pub fn adobe_event(notification_id: &str, agreement_id: &str, event: &str, status: Option<&str>, date: &str) -> Value {
    let mut agreement = json!({
        "id": agreement_id,
        "name": "Mutual NDA",
        "signatureType": "ESIGN",
        "createdDate": "2026-11-20T09:30:02Z",
        "senderEmail": "sender@example.com",
    });
    if let Some(status) = status {
        agreement["status"] = json!(status);
    }
    json!({
        "webhookId": "CBJCHBCAABAAwebhookId",
        "webhookName": "test webhook",
        "webhookNotificationId": notification_id,
        "webhookUrlInfo": { "url": "https://hooks.example.com/webhooks/adobe-sign" },
        "webhookScope": "ACCOUNT",
        "webhookNotificationApplicableUsers": [
            { "id": "u1", "email": "sender@example.com", "role": "SENDER", "payloadApplicable": "true" }
        ],
        "event": event,
        "eventDate": date,
        "eventResourceType": "agreement",
        "participantUserEmail": "signer@example.com",
        "actingUserEmail": "signer@example.com",
        "initiatingUserEmail": "sender@example.com",
        "agreement": agreement,
    })
}

/// State, attempts and last error of one stored event.
pub async fn event_state(app: &TestApp, provider: &str, event_id: &str) -> (String, i32, Option<String>) {
    sqlx::query_as("SELECT state, attempts, last_error FROM events WHERE provider = $1 AND event_id = $2")
        .bind(provider)
        .bind(event_id)
        .fetch_one(&app.db)
        .await
        .expect("event stored")
}

/// The columns of a stored event that tests look at.
#[derive(sqlx::FromRow)]
pub struct StoredEvent {
    pub body: Vec<u8>,
    pub event_id: String,
    pub event_type: String,
    pub tenant: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub occurred_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The value of the Prometheus sample whose line starts with `series`
/// (name and labels, e.g. `signhook_polls_total{provider="adobe-sign",outcome="changed"}`).
pub fn metric_sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Status and JSON body of an error response.
pub async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON error body"))
}
