//! Shared by both test binaries — `tests/api` (apps built in-process) and
//! `tests/process` (the real binary): the test configuration, payload
//! builders and credentials for the three providers, the one BoldSign
//! signing helper, and [`Api`], the typed HTTP and database helpers a test
//! reaches an app through however it was started.

pub mod fake_documents;
pub mod fake_provider;
pub mod sink;

use std::{
    fmt::Display,
    future::Future,
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

/// Notifications as each provider documents them (tests run from the crate root).
pub const ADOBE_FIXTURE: &str = "tests/fixtures/adobe-sign-agreement-action-completed.json";
pub const BOLDSIGN_FIXTURE: &str = "tests/fixtures/boldsign-completed.json";
pub const FUSESIGN_FIXTURE: &str = "tests/fixtures/fusesign-customer-document-signed.json";

/// The longest a test waits for a condition: far above what any condition
/// takes on a loaded two-core machine, so only broken behaviour reaches it.
pub const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// Server holding the test databases; override with SIGNHOOK_TEST_DATABASE_URL.
pub fn server_url() -> String {
    std::env::var("SIGNHOOK_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A database name no other test uses.
pub fn fresh_database_name() -> String {
    format!("signhook_test_{}", uuid::Uuid::new_v4().simple())
}

pub fn database_url(db_name: &str) -> String {
    format!("{}/{db_name}", server_url())
}

/// Drops `db_name`, cutting its connections. Blocking, on a thread with its
/// own runtime, so it can run from `Drop` inside a test's runtime.
pub fn drop_database(db_name: &str) {
    let statement = format!(r#"DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)"#);
    let _ = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        if let Ok(runtime) = runtime {
            runtime.block_on(async {
                if let Ok(pool) = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&database_url("postgres"))
                    .await
                {
                    let _ = sqlx::query(&statement).execute(&pool).await;
                }
            });
        }
    })
    .join();
}

/// The test configuration as environment-style variables (the names an
/// operator sets), with `overrides` on top: an override replaces the
/// default of the same name, an empty value removes it (back to the
/// built-in default). In-process apps get these through
/// `Config::from_vars`, processes through their environment.
pub fn test_vars(database_url: &str, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = [
        ("DATABASE_URL", database_url),
        ("SIGNHOOK_LISTEN", "127.0.0.1:0"),
        ("SIGNHOOK_LOG_FORMAT", "json"),
        ("SIGNHOOK_ADOBE_SIGN_CLIENT_IDS", ADOBE_CLIENT_ID),
        ("SIGNHOOK_ADMIN_TOKEN", ADMIN_TOKEN),
        ("SIGNHOOK_BOLDSIGN_SECRETS", BOLDSIGN_SECRET),
        ("SIGNHOOK_FUSESIGN_SIGNATURES", FUSESIGN_SIGNATURE),
        ("SIGNHOOK_WORKER_POLL_INTERVAL_MS", "200"),
        ("RUST_LOG", "info,sqlx=warn"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (key, value) in overrides {
        vars.retain(|(k, _)| k != key);
        vars.push((key.to_string(), value.to_string()));
    }
    vars.retain(|(_, v)| !v.is_empty());
    vars
}

/// An `X-BoldSign-Signature` value, made by the provider module's own signing
/// code (the one the server verifies with and the simulator signs with). The
/// scheme itself is pinned independently by a unit test in
/// `src/providers/boldsign.rs` and by `boldsign::signature_matches_an_independent_hmac`.
pub fn boldsign_signature(secret: &str, t: i64, body: &[u8]) -> String {
    signhook::providers::boldsign::signature_header(secret, t, body)
}

/// An Adobe Sign notification shaped like the documented example.
/// Adobe's `AGREEMENT_CREATED` (out for signature) of agreement `agr-<n>`,
/// notification `n-<n>`: one status change, as delivery tests need.
pub fn adobe_created(n: usize) -> Value {
    adobe_event(
        &format!("n-{n}"),
        &format!("agr-{n}"),
        "AGREEMENT_CREATED",
        Some("OUT_FOR_SIGNATURE"),
        "2026-11-20T09:00:00Z",
    )
}

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

/// A BoldSign document event shaped like its documented payload; `created`
/// is the event time in unix seconds (independent of the signing time).
pub fn boldsign_event(
    event_id: &str,
    document_id: &str,
    event_type: &str,
    status: Option<&str>,
    created: i64,
) -> Value {
    let mut data = json!({
        "object": "document",
        "documentId": document_id,
        "messageTitle": "Offer letter",
        "senderDetail": { "name": "HR", "emailAddress": "hr@example.com" },
        "signerDetails": [{ "signerName": "Alex Signer", "signerEmail": "alex@example.com", "order": 1 }],
    });
    if let Some(status) = status {
        data["status"] = json!(status);
    }
    json!({
        "event": {
            "id": event_id,
            "created": created,
            "eventType": event_type,
            "clientId": null,
            "environment": "Live",
        },
        "data": data,
        "document": null,
    })
}

/// The tenant of the FuseSign events [`fuse_event`] builds.
pub const FUSESIGN_TENANT: &str = "7ffcbae4-9f50-4136-8de6-edb6f796dc3f";

/// A FuseSign bundle event shaped like its `TransactionalBundleWebhookPayload`.
pub fn fuse_event(history_id: &str, bundle_id: &str, event_type: &str, at: &str) -> Value {
    json!({
        "WebhookId": "dd7be5ec-1560-49b1-a1a7-02be393dc7fe",
        "BundleId": bundle_id,
        "EventType": event_type,
        "BundleHistoryEvent": {
            "Id": history_id,
            "DateTime": at,
            "BundleId": bundle_id,
            "DocumentId": "5ec03200-1db1-40ec-a553-95b55e30bacc",
            "CustomerId": "a960f86a-e9ba-49c8-ae1c-646a4ec76ac5",
            "Action": event_type,
            "ActionNotes": "notes",
            "IP": "192.0.2.1",
        },
        "ActionDescription": "description",
        "TenantId": FUSESIGN_TENANT,
    })
}

/// The current unix time, for signing.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Lines an app logged, when its harness collects them (processes do).
pub type LogLines = Arc<Mutex<Vec<String>>>;

/// What a test reaches an app through: its base URL, an HTTP client and the
/// app's database, with typed helpers for each provider, the admin API and
/// waits on observable conditions.
pub struct Api {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    pub client: reqwest::Client,
    pub db: PgPool,
    pub db_name: String,
    /// Shown when a wait times out.
    logs: LogLines,
}

/// Polls `condition` every 50 ms until it holds; panics after [`WAIT_LIMIT`]
/// with `what` and `context()`.
pub async fn wait_until<F, Fut>(what: &str, context: impl Fn() -> String, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT_LIMIT;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}{}", context());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Api {
    /// Connects to the app at `address` and its database `db_name` (on
    /// `database_url`'s server).
    pub async fn connect(address: String, database_url: &str, db_name: String, logs: LogLines) -> Self {
        let db = PgPoolOptions::new()
            .max_connections(4)
            .connect(database_url)
            .await
            .expect("test database reachable");
        Self {
            address,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                // Below any server idle timeout, so a pooled connection is never
                // reused just as the server closes it.
                .pool_idle_timeout(Duration::from_millis(400))
                .build()
                .expect("http client"),
            db,
            db_name,
            logs,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The `host:port` the app listens on, for raw sockets.
    pub fn socket_addr(&self) -> &str {
        self.address.trim_start_matches("http://")
    }

    /// An unauthenticated GET.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
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

    // Adobe Acrobat Sign

    /// POSTs an Adobe Sign notification with the configured client ID.
    pub async fn post_adobe(&self, body: &Value) -> reqwest::Response {
        self.post_adobe_raw(body.to_string().into_bytes()).await
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

    /// POSTs an Adobe Sign notification, requires its 200, and waits until
    /// the worker has applied everything stored.
    pub async fn deliver_adobe(&self, body: &Value) {
        assert_eq!(self.post_adobe(body).await.status(), 200, "delivering {body}");
        self.wait_idle().await;
    }

    /// Adobe's verification of intent: a GET carrying `client_id`, if any.
    pub async fn verify_adobe(&self, client_id: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url("/webhooks/adobe-sign"));
        if let Some(client_id) = client_id {
            request = request.header("X-AdobeSign-ClientId", client_id);
        }
        request.send().await.expect("request sent")
    }

    // BoldSign

    /// POSTs a BoldSign event signed now with the configured secret.
    pub async fn post_boldsign(&self, event: &Value) -> reqwest::Response {
        self.post_boldsign_raw(event.to_string().as_bytes()).await
    }

    /// POSTs `body` signed now with the configured secret.
    pub async fn post_boldsign_raw(&self, body: &[u8]) -> reqwest::Response {
        let signature = boldsign_signature(BOLDSIGN_SECRET, unix_now(), body);
        self.post_boldsign_with(Some(&signature), body).await
    }

    /// POSTs `body` with this `X-BoldSign-Signature` value (none: no header).
    pub async fn post_boldsign_with(&self, signature: Option<&str>, body: &[u8]) -> reqwest::Response {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(signature) = signature {
            headers.push(("X-BoldSign-Signature", signature));
        }
        self.post("/webhooks/boldsign", &headers, body.to_vec()).await
    }

    // FuseSign

    /// POSTs a FuseSign event with the configured `Fuse-Signature`.
    pub async fn post_fusesign(&self, event: &Value) -> reqwest::Response {
        self.post_fusesign_raw(event.to_string().as_bytes()).await
    }

    pub async fn post_fusesign_raw(&self, body: &[u8]) -> reqwest::Response {
        self.post_fusesign_with(Some(FUSESIGN_SIGNATURE), body).await
    }

    /// POSTs `body` with this `Fuse-Signature` value (none: no header).
    pub async fn post_fusesign_with(&self, signature: Option<&str>, body: &[u8]) -> reqwest::Response {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(signature) = signature {
            headers.push(("Fuse-Signature", signature));
        }
        self.post("/webhooks/fusesign", &headers, body.to_vec()).await
    }

    // The admin API

    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        let request = self.client.get(self.url(path)).bearer_auth(ADMIN_TOKEN);
        request.send().await.expect("request sent")
    }

    pub async fn admin_post(&self, path: &str) -> reqwest::Response {
        let request = self.client.post(self.url(path)).bearer_auth(ADMIN_TOKEN);
        request.send().await.expect("request sent")
    }

    pub async fn admin_delete(&self, path: &str) -> reqwest::Response {
        let request = self.client.delete(self.url(path)).bearer_auth(ADMIN_TOKEN);
        request.send().await.expect("request sent")
    }

    /// The agreement as the admin API shows it; panics unless it exists.
    pub async fn get_agreement(&self, provider: &str, id: &str) -> Value {
        let response = self.admin_get(&format!("/api/agreements/{provider}/{id}")).await;
        assert_eq!(response.status(), 200, "agreement {provider}/{id} exists");
        response.json().await.expect("agreement JSON")
    }

    /// `GET /api/events?<query>`; panics unless it answers 200.
    pub async fn list_events(&self, query: &str) -> Value {
        let response = self.admin_get(&format!("/api/events?{query}")).await;
        assert_eq!(response.status(), 200, "/api/events?{query}");
        response.json().await.expect("events JSON")
    }

    /// `GET /api/stats`; panics unless it answers 200.
    pub async fn stats(&self) -> Value {
        let response = self.admin_get("/api/stats").await;
        assert_eq!(response.status(), 200, "/api/stats");
        response.json().await.expect("stats JSON")
    }

    /// `POST /api/events/{id}/replay` (`id` as given: tests send bad ones too).
    pub async fn replay(&self, id: impl Display) -> reqwest::Response {
        self.admin_post(&format!("/api/events/{id}/replay")).await
    }

    pub async fn refresh(&self, provider: &str, id: &str) -> reqwest::Response {
        self.admin_post(&format!("/api/agreements/{provider}/{id}/refresh"))
            .await
    }

    pub async fn watch(&self, provider: &str, id: &str) -> reqwest::Response {
        self.admin_post(&format!("/api/agreements/{provider}/{id}/watch")).await
    }

    pub async fn unwatch(&self, provider: &str, id: &str) -> reqwest::Response {
        self.admin_delete(&format!("/api/agreements/{provider}/{id}/watch"))
            .await
    }

    /// `GET /api/changes?<query>`; panics unless it answers 200.
    pub async fn changes(&self, query: &str) -> Value {
        let response = self.admin_get(&format!("/api/changes?{query}")).await;
        assert_eq!(response.status(), 200, "/api/changes?{query}");
        response.json().await.expect("changes JSON")
    }

    /// Follows the change feed from the start until `n` changes were read
    /// (long polls of at most a second each); returns them in feed order.
    pub async fn read_changes(&self, n: usize) -> Vec<Value> {
        let mut seen = Vec::new();
        let mut cursor = 0;
        let deadline = Instant::now() + WAIT_LIMIT;
        while seen.len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} changes in the feed: {seen:?}",
                seen.len()
            );
            let page = self.changes(&format!("after={cursor}&wait=1")).await;
            cursor = page["next_cursor"].as_i64().expect("a cursor");
            seen.extend(page["changes"].as_array().expect("changes").iter().cloned());
        }
        seen
    }

    // Waits on what can be observed

    /// Polls `condition` until it holds (see [`wait_until`]); a timeout shows
    /// the app's log when the harness collected it.
    pub async fn wait_until<F, Fut>(&self, what: &str, condition: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let logs = || {
            let lines = self.logs.lock().expect("log lock");
            match lines.is_empty() {
                true => String::new(),
                false => format!("; logs:\n{}", lines.join("\n")),
            }
        };
        wait_until(what, logs, condition).await
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

    /// Waits until at least `n` events are processed; returns how many are.
    pub async fn wait_until_processed(&self, n: i64) -> i64 {
        let processed = || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE state = 'processed'")
                .fetch_one(&self.db)
                .await
                .expect("count processed events")
        };
        self.wait_until(&format!("{n} events to be processed"), || async {
            processed().await >= n
        })
        .await;
        processed().await
    }

    /// Waits until the admin API shows the agreement with `status`; returns it.
    pub async fn wait_for_agreement_status(&self, provider: &str, id: &str, status: &str) -> Value {
        let what = format!("{provider}/{id} to be {status}");
        self.wait_until(&what, || async {
            let response = self.admin_get(&format!("/api/agreements/{provider}/{id}")).await;
            if response.status() != 200 {
                return false;
            }
            response.json::<Value>().await.expect("agreement JSON")["status"] == status
        })
        .await;
        self.get_agreement(provider, id).await
    }

    // The database

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

    /// State, attempts and last error of one stored event.
    pub async fn event_state(&self, provider: &str, event_id: &str) -> (String, i32, Option<String>) {
        sqlx::query_as("SELECT state, attempts, last_error FROM events WHERE provider = $1 AND event_id = $2")
            .bind(provider)
            .bind(event_id)
            .fetch_one(&self.db)
            .await
            .expect("event stored")
    }

    /// `(event_type, last_error)` of every dead event of `provider`, oldest
    /// first: what the keep-and-acknowledge path kept.
    pub async fn dead_events(&self, provider: &str) -> Vec<(String, Option<String>)> {
        sqlx::query_as("SELECT event_type, last_error FROM events WHERE provider = $1 AND state = 'dead' ORDER BY id")
            .bind(provider)
            .fetch_all(&self.db)
            .await
            .expect("dead events")
    }

    /// The stored event's id (what the admin API's replay takes).
    pub async fn event_db_id(&self, provider: &str, event_id: &str) -> i64 {
        sqlx::query_scalar("SELECT id FROM events WHERE provider = $1 AND event_id = $2")
            .bind(provider)
            .bind(event_id)
            .fetch_one(&self.db)
            .await
            .expect("event stored")
    }

    /// The result of a `SELECT count(*) …`.
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.expect("count")
    }
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

/// Status and JSON body of an error response.
pub async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON error body"))
}
