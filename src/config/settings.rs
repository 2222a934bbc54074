//! The service's own settings, one group per part of the flow. Each group
//! reads its keys from the layered configuration with its own defaults (the
//! one place they are written; `config/default.toml` is a commented copy,
//! held to them by a test) and checks its values, naming the variable at
//! fault. A key (its variable is `SIGNHOOK_` and the key uppercased) is the
//! field's name, or its `rename` where the group's name is left out.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::{
    invalid,
    values::{duration_list, http_url, mask, mask_url_password, optional_string, string_list, HumanDuration},
    ConfigError, LogFormat,
};

/// The shortest time a provider waits for an answer, in ms: Adobe Sign's
/// five seconds (seed 004). `SIGNHOOK_REQUEST_TIMEOUT_MS` must stay below it.
const PROVIDER_DEADLINE_MS: u64 = 5_000;

/// Beyond any open-files limit a system allows.
const MAX_CONNECTIONS_LIMIT: usize = 1 << 20;

/// The HTTP server: where it listens, what it accepts, how long it waits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    pub listen: String,
    /// Where `/healthz`, `/readyz` and `/metrics` are served instead of on
    /// `listen`; unset, they are served there beside the webhooks.
    #[serde(deserialize_with = "optional_string")]
    pub ops_listen: Option<String>,
    /// Bearer token of the admin API; unset, the admin API does not exist.
    #[serde(deserialize_with = "optional_string")]
    pub admin_token: Option<String>,
    /// The public base URL providers reach this service at
    /// (`https://hooks.example.com`); per-agreement webhooks point at
    /// `<public_url>/webhooks/<provider>`. Unset: watching is refused.
    #[serde(deserialize_with = "optional_string")]
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    /// Largest request body accepted; Adobe documents payloads up to 10 MB.
    pub max_body_bytes: usize,
    /// Server-side deadline for a webhook request. It must stay below the
    /// shortest provider timeout — Adobe Sign's five seconds (seed 004: "Your
    /// app only has five seconds to respond"; BoldSign waits 10 s) — so that
    /// a slow database yields a 503 (and a retry) rather than a provider-side
    /// timeout.
    pub request_timeout_ms: u64,
    /// A connection must send a request's headers within this of opening
    /// (HTTP/1 or HTTP/2, however slowly the bytes come) and within this of
    /// its last answer, or it is closed: the keep-alive idle timeout too, so
    /// keep it well above what clients expect (their pools reuse idle
    /// connections).
    pub header_read_timeout_ms: u64,
    /// Client connections open at once per replica; past it new ones wait in
    /// the listen backlog. Lowered at start-up, with a warning, to fit the
    /// open-files limit (`ulimit -n`) beside the database pool.
    pub max_connections: usize,
    /// Webhook requests handled at once per replica; beyond it requests are
    /// shed with an immediate 503 rather than queued past the deadline.
    pub max_concurrent_requests: usize,
    /// Memory webhook bodies may cost at once per replica (bytes): each is
    /// counted at its buffer plus the copies storing it makes
    /// ([`BODY_STORE_COPIES`]); beyond it requests are shed with 503, so
    /// memory stays bounded under overload.
    pub max_inflight_body_bytes: usize,
    /// After SIGTERM, how long in-flight requests and the worker get to finish.
    pub shutdown_grace_secs: u64,
}

/// Copies of a webhook body that storing it makes besides its buffer:
/// sqlx's argument buffer and the connection's message buffer, each grown by
/// copying — about three bodies in all (measured with scripts/body-rss.py:
/// README, "What a body costs"). Counted in `max_inflight_body_bytes`.
pub const BODY_STORE_COPIES: usize = 4;

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            ops_listen: None,
            admin_token: None,
            public_url: None,
            log_format: LogFormat::Pretty,
            max_body_bytes: 16 * 1024 * 1024,
            request_timeout_ms: 2_500,
            header_read_timeout_ms: 30_000,
            max_connections: 1024,
            max_concurrent_requests: 256,
            max_inflight_body_bytes: 128 * 1024 * 1024,
            shutdown_grace_secs: 25,
        }
    }
}

impl ServerSettings {
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|e| {
            invalid(
                "listen",
                format!("`{}` is not a socket address like 0.0.0.0:8080 ({e})", self.listen),
            )
        })
    }

    /// `SIGNHOOK_OPS_LISTEN`, when set.
    pub fn ops_listen_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let Some(ops) = self.ops_listen.as_deref() else {
            return Ok(None);
        };
        let addr: SocketAddr = ops.parse().map_err(|e| {
            invalid(
                "ops_listen",
                format!("`{ops}` is not a socket address like 127.0.0.1:9090 ({e})"),
            )
        })?;
        if self
            .listen_addr()
            .is_ok_and(|listen| listen == addr && addr.port() != 0)
        {
            return Err(invalid("ops_listen", "must differ from SIGNHOOK_LISTEN"));
        }
        Ok(Some(addr))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// `SIGNHOOK_PUBLIC_URL`, checked to be an absolute http(s) URL with a
    /// host and no query.
    pub fn public_base_url(&self) -> Result<Option<Url>, ConfigError> {
        self.public_url
            .as_deref()
            .map(|raw| http_url(raw, "https://hooks.example.com").map_err(|message| invalid("public_url", message)))
            .transpose()
    }

    /// Where `provider` must send webhooks: `<public URL>/webhooks/<provider>`;
    /// `None` without `SIGNHOOK_PUBLIC_URL`.
    pub fn webhook_url(&self, provider: &str) -> Option<String> {
        let base = self.public_base_url().ok().flatten()?;
        Some(format!("{}/webhooks/{provider}", base.as_str().trim_end_matches('/')))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        self.ops_listen_addr()?;
        if self.admin_token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err(invalid("admin_token", "must be at least 16 characters"));
        }
        positive(&[
            ("max_body_bytes", self.max_body_bytes as u64),
            ("request_timeout_ms", self.request_timeout_ms),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("max_concurrent_requests", self.max_concurrent_requests as u64),
            ("max_connections", self.max_connections as u64),
        ])?;
        if self.max_connections > MAX_CONNECTIONS_LIMIT {
            return Err(invalid(
                "max_connections",
                format!("must be at most {MAX_CONNECTIONS_LIMIT}"),
            ));
        }
        if self.request_timeout_ms >= PROVIDER_DEADLINE_MS {
            return Err(invalid(
                "request_timeout_ms",
                format!(
                    "must be below {PROVIDER_DEADLINE_MS}: Adobe Sign gives up after 5 s (BoldSign after 10 s), \
                     and a late 200 counts as a failure"
                ),
            ));
        }
        let largest = self.max_body_bytes.saturating_mul(1 + BODY_STORE_COPIES);
        if self.max_inflight_body_bytes < largest {
            return Err(invalid(
                "max_inflight_body_bytes",
                format!(
                    "must be at least {} × SIGNHOOK_MAX_BODY_BYTES ({largest}): a body costs its buffer and the \
                     {BODY_STORE_COPIES} copies storing it makes, and the largest accepted body must fit",
                    1 + BODY_STORE_COPIES
                ),
            ));
        }
        self.public_base_url()?;
        Ok(())
    }
}

/// The PostgreSQL connection pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// `DATABASE_URL`.
    #[serde(rename = "database_url")]
    pub url: String,
    #[serde(rename = "db_max_connections")]
    pub max_connections: u32,
    #[serde(rename = "db_acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/signhook".to_owned(),
            max_connections: 16,
            acquire_timeout_ms: 2_000,
        }
    }
}

impl DatabaseSettings {
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.url.starts_with("postgres://") && !self.url.starts_with("postgresql://") {
            return Err(invalid("database_url", "must be a postgres:// or postgresql:// URL"));
        }
        if self
            .url
            .rsplit_once('/')
            .map_or(true, |(_, db)| db.split('?').next().unwrap_or("").is_empty())
        {
            return Err(invalid(
                "database_url",
                "must name a database, e.g. postgres://postgres@127.0.0.1:5432/signhook",
            ));
        }
        positive(&[
            ("db_max_connections", u64::from(self.max_connections)),
            ("db_acquire_timeout_ms", self.acquire_timeout_ms),
        ])
    }
}

/// The group-commit writers that store webhooks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestSettings {
    /// Writer tasks per replica (each holds one connection while it commits
    /// a batch).
    #[serde(rename = "ingest_writers")]
    pub writers: usize,
    /// Most events in one group commit.
    #[serde(rename = "ingest_batch_max_rows")]
    pub batch_max_rows: usize,
    /// Most body bytes in one group commit (a single larger body still goes alone).
    #[serde(rename = "ingest_batch_max_bytes")]
    pub batch_max_bytes: usize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            writers: 1,
            batch_max_rows: 256,
            batch_max_bytes: 8 * 1024 * 1024,
        }
    }
}

impl IngestSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        positive(&[
            ("ingest_writers", self.writers as u64),
            ("ingest_batch_max_rows", self.batch_max_rows as u64),
            ("ingest_batch_max_bytes", self.batch_max_bytes as u64),
        ])
    }
}

/// The worker that applies stored events to their agreements.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerSettings {
    /// Fallback poll of the queue; the worker is also woken after each commit.
    #[serde(rename = "worker_poll_interval_ms")]
    pub poll_interval_ms: u64,
    #[serde(rename = "worker_batch_size")]
    pub batch_size: u32,
    /// Body bytes a worker loads per batch (at least one event).
    #[serde(rename = "worker_batch_max_bytes")]
    pub batch_max_bytes: usize,
    /// Worker loops per replica, each applying its own batch; 0 makes a
    /// receive-only replica.
    #[serde(rename = "worker_concurrency")]
    pub concurrency: usize,
    /// Events a replica applies between its VACUUMs of the queue table; 0
    /// leaves it to autovacuum alone.
    #[serde(rename = "worker_queue_vacuum_every")]
    pub queue_vacuum_every: u64,
    #[serde(rename = "worker_max_attempts")]
    pub max_attempts: u32,
    #[serde(rename = "worker_retry_base_ms")]
    pub retry_base_ms: u64,
    #[serde(rename = "worker_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Longest a worker holds a claimed batch; a hung or cut-off replica's
    /// claim is ended by PostgreSQL after this.
    #[serde(rename = "worker_lease_secs")]
    pub lease_secs: u64,
    /// An event that states a time more than this after it was received is
    /// ordered at its receipt (and its history entry says so): providers'
    /// clocks run a little ahead at most, and a forged far-future time must
    /// not outrank every genuine event.
    pub event_max_future_skew: HumanDuration,
    /// A final status from a webhook authenticated only by a value an
    /// outsider may know (Adobe's client ID without webhook OAuth, FuseSign's
    /// `Fuse-Signature`) is held until the provider's API confirms it, where
    /// an API is configured; `false` applies it at once.
    pub confirm_weak_finals: bool,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            poll_interval_ms: 1_000,
            batch_size: 1000,
            batch_max_bytes: 16 * 1024 * 1024,
            concurrency: 1,
            queue_vacuum_every: 50_000,
            max_attempts: 10,
            retry_base_ms: 1_000,
            retry_max_ms: 600_000,
            lease_secs: 30,
            event_max_future_skew: HumanDuration::from_secs(5 * 60),
            confirm_weak_finals: true,
        }
    }
}

impl WorkerSettings {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    /// [`WorkerSettings::event_max_future_skew`] for the fold's arithmetic.
    pub fn max_future_skew(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.event_max_future_skew.get()).unwrap_or(chrono::Duration::MAX)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        positive(&[
            ("worker_poll_interval_ms", self.poll_interval_ms),
            ("worker_batch_size", u64::from(self.batch_size)),
            ("worker_batch_max_bytes", self.batch_max_bytes as u64),
            ("worker_max_attempts", u64::from(self.max_attempts)),
            ("worker_retry_base_ms", self.retry_base_ms),
            ("worker_lease_secs", self.lease_secs),
        ])?;
        if self.retry_max_ms < self.retry_base_ms {
            return Err(invalid(
                "worker_retry_max_ms",
                "must not be below SIGNHOOK_WORKER_RETRY_BASE_MS",
            ));
        }
        Ok(())
    }
}

/// The reconciler: polling stale agreements, and noticing silent providers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ReconcileSettings {
    /// How often the reconciler looks for agreements to poll.
    #[serde(rename = "reconcile_interval")]
    pub interval: HumanDuration,
    /// An agreement with no event and no poll for this long is polled.
    #[serde(rename = "reconcile_stale_after")]
    pub stale_after: HumanDuration,
    /// Poll period of agreements whose webhook registration failed.
    #[serde(rename = "reconcile_fast_interval")]
    pub fast_interval: HumanDuration,
    /// Provider API calls the reconciler makes per minute, per replica.
    #[serde(rename = "reconcile_max_per_minute")]
    pub max_per_minute: u32,
    /// Provider API calls the reconciler has in flight at once, per replica.
    #[serde(rename = "reconcile_concurrency")]
    pub concurrency: usize,
    /// A provider with open agreements that sends no webhook for this long is
    /// "silent": its open agreements are polled at once.
    pub silence_after: HumanDuration,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            interval: HumanDuration::from_secs(60),
            stale_after: HumanDuration::from_secs(6 * 3600),
            fast_interval: HumanDuration::from_secs(5 * 60),
            max_per_minute: 120,
            concurrency: 4,
            silence_after: HumanDuration::from_secs(2 * 3600),
        }
    }
}

impl ReconcileSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        positive(&[
            ("reconcile_max_per_minute", u64::from(self.max_per_minute)),
            ("reconcile_concurrency", self.concurrency as u64),
        ])?;
        let durations = [
            ("reconcile_interval", self.interval),
            ("reconcile_stale_after", self.stale_after),
            ("reconcile_fast_interval", self.fast_interval),
            ("silence_after", self.silence_after),
        ];
        match durations.iter().find(|(_, d)| d.get().is_zero()) {
            Some((key, _)) => Err(invalid(key, "must be longer than 0")),
            None => Ok(()),
        }
    }
}

/// Delivering status changes to the application: its webhook endpoints
/// (destinations) and how they are called. A destination's provider names
/// and statuses are checked where the destinations are built
/// (`delivery::Destination::from_settings`), beside the vocabulary they use.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DeliverySettings {
    /// The destination `default` (`SIGNHOOK_DELIVERY_URL`), with
    /// `delivery_secret`; unset: only the file's `[[destinations]]`.
    #[serde(deserialize_with = "optional_string")]
    pub delivery_url: Option<String>,
    /// Its Standard Webhooks signing secret (`whsec_<base64>`).
    #[serde(deserialize_with = "optional_string")]
    pub delivery_secret: Option<String>,
    /// More destinations, each with its own secret and optional filter.
    pub destinations: Vec<DestinationSettings>,
    /// Deliveries in flight at once per destination, per replica (each
    /// agreement's one at a time).
    pub delivery_concurrency: usize,
    /// Deadline of one attempt: connect, send, and the answer's status and
    /// first bytes.
    pub delivery_timeout_ms: u64,
    pub delivery_connect_timeout_ms: u64,
    /// A claimed delivery belongs to its replica for this long; if the
    /// replica dies, another sends it again after it (same webhook-id).
    pub delivery_lease_secs: u64,
    /// Waits between attempts after the first (immediate) one; after the last
    /// the delivery is `failed`.
    #[serde(deserialize_with = "duration_list")]
    pub delivery_retry_schedule: Vec<HumanDuration>,
    /// A destination whose every attempt failed for this long is disabled.
    pub delivery_disable_after: HumanDuration,
}

/// One `[[destinations]]` entry of the configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DestinationSettings {
    /// Letters, digits, `-` and `_`; shown in the API and metrics.
    pub name: String,
    pub url: String,
    /// `whsec_<base64>` (Standard Webhooks).
    pub secret: String,
    /// Only changes of these providers; empty: all.
    #[serde(default, deserialize_with = "string_list")]
    pub providers: Vec<String>,
    /// Only changes to these statuses; empty: all.
    #[serde(default, deserialize_with = "string_list")]
    pub statuses: Vec<String>,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            delivery_url: None,
            delivery_secret: None,
            destinations: Vec::new(),
            delivery_concurrency: 16,
            delivery_timeout_ms: 15_000,
            delivery_connect_timeout_ms: 5_000,
            delivery_lease_secs: 60,
            delivery_retry_schedule: ["5s", "5m", "30m", "2h", "5h", "10h", "10h"]
                .iter()
                .map(|text| HumanDuration::parse(text).expect("the default schedule parses"))
                .collect(),
            delivery_disable_after: HumanDuration::from_secs(24 * 3600),
        }
    }
}

/// `SIGNHOOK_DOCUMENT_STORE`: where document bytes are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The service's own database (default): nothing else to run.
    Postgres,
    /// An `object_store` URL: `s3://bucket/prefix`, `gs://…`, `az://…`,
    /// `file:///var/lib/signhook/documents`.
    Object(reqwest::Url),
}

impl FromStr for StoreLocation {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() || raw == "postgres" {
            return Ok(Self::Postgres);
        }
        let url = reqwest::Url::parse(raw).map_err(|e| {
            format!("`{raw}` is not `postgres` or a URL like s3://bucket/prefix or file:///var/lib/signhook/documents ({e})")
        })?;
        match url.scheme() {
            "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" if url.host_str().is_some_and(|h| !h.is_empty()) => {
                Ok(Self::Object(url))
            }
            "file" if url.path().len() > 1 => Ok(Self::Object(url)),
            "file" => Err(format!("`{raw}` names no directory; use file:///var/lib/signhook/documents")),
            scheme => Err(format!(
                "`{scheme}://` is not supported: use postgres, s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or file:///dir"
            )),
        }
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres => f.write_str("postgres"),
            Self::Object(url) => f.write_str(url.as_str()),
        }
    }
}

/// Copies of completed agreements: where they are kept, and how they are fetched.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DocumentSettings {
    /// `postgres` (default: the service's database), or an `object_store`
    /// URL: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`
    /// or `file:///var/lib/signhook/documents`; cloud credentials come from
    /// each cloud's usual environment variables.
    #[serde(rename = "document_store")]
    pub store: String,
    /// Fetch loops per replica; 0: this replica fetches no documents (jobs
    /// are still recorded, for the replicas that do).
    #[serde(rename = "document_workers")]
    pub workers: usize,
    /// Attempts of a fetch job before it is `dead`.
    #[serde(rename = "document_max_attempts")]
    pub max_attempts: u32,
    /// Wait before the second attempt, doubling after each failure up to
    /// `document_retry_max`.
    #[serde(rename = "document_retry_base")]
    pub retry_base: HumanDuration,
    #[serde(rename = "document_retry_max")]
    pub retry_max: HumanDuration,
    /// How long a claimed job is invisible to other fetchers; a replica
    /// killed mid-fetch leaves its job to the next claim after this. Also the
    /// longest one fetch may take.
    #[serde(rename = "document_lease")]
    pub lease: HumanDuration,
    /// How often a fetch loop looks for due jobs when none woke it.
    #[serde(rename = "document_poll_interval")]
    pub poll_interval: HumanDuration,
    /// A completed agreement still without its signed copy this long after
    /// completing is reported (WARN and `signhook_documents_missing`).
    #[serde(rename = "document_missing_after")]
    pub missing_after: HumanDuration,
}

impl Default for DocumentSettings {
    fn default() -> Self {
        Self {
            store: "postgres".to_owned(),
            workers: 1,
            max_attempts: 10,
            retry_base: HumanDuration::from_secs(30),
            retry_max: HumanDuration::from_secs(3600),
            lease: HumanDuration::from_secs(600),
            poll_interval: HumanDuration::from_secs(5),
            missing_after: HumanDuration::from_secs(3600),
        }
    }
}

impl DeliverySettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.delivery_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.delivery_connect_timeout_ms)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.delivery_lease_secs)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        positive(&[
            ("delivery_concurrency", self.delivery_concurrency as u64),
            ("delivery_timeout_ms", self.delivery_timeout_ms),
            ("delivery_connect_timeout_ms", self.delivery_connect_timeout_ms),
            ("delivery_lease_secs", self.delivery_lease_secs),
        ])?;
        if self.lease() <= self.timeout() {
            return Err(invalid(
                "delivery_lease_secs",
                "must be longer than SIGNHOOK_DELIVERY_TIMEOUT_MS, or a delivery still in flight would be sent again by another replica",
            ));
        }
        if self.delivery_disable_after.get().is_zero() {
            return Err(invalid("delivery_disable_after", "must be longer than 0"));
        }
        match (&self.delivery_url, &self.delivery_secret) {
            (Some(_), None) => Err(invalid(
                "delivery_secret",
                "must be set with SIGNHOOK_DELIVERY_URL: every delivery is signed (whsec_<base64>)",
            )),
            (None, Some(_)) => Err(invalid(
                "delivery_url",
                "must be set with SIGNHOOK_DELIVERY_SECRET: where to deliver changes",
            )),
            _ => Ok(()),
        }
    }
}

impl DocumentSettings {
    /// `SIGNHOOK_DOCUMENT_STORE`, parsed.
    pub fn location(&self) -> Result<StoreLocation, ConfigError> {
        self.store
            .parse()
            .map_err(|message: String| invalid("document_store", message))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.location()?;
        positive(&[("document_max_attempts", u64::from(self.max_attempts))])?;
        let durations = [
            ("document_retry_base", self.retry_base),
            ("document_lease", self.lease),
            ("document_poll_interval", self.poll_interval),
            ("document_missing_after", self.missing_after),
        ];
        if let Some((key, _)) = durations.iter().find(|(_, d)| d.get().is_zero()) {
            return Err(invalid(key, "must be longer than 0"));
        }
        if self.retry_max.get() < self.retry_base.get() {
            return Err(invalid(
                "document_retry_max",
                "must not be below SIGNHOOK_DOCUMENT_RETRY_BASE",
            ));
        }
        Ok(())
    }
}

/// Settings of the service itself (each provider reads its own, see
/// `providers/`). Shown flat, as the keys are written, by `check-config`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Settings {
    #[serde(flatten)]
    pub server: ServerSettings,
    #[serde(flatten)]
    pub database: DatabaseSettings,
    #[serde(flatten)]
    pub ingest: IngestSettings,
    #[serde(flatten)]
    pub worker: WorkerSettings,
    #[serde(flatten)]
    pub reconcile: ReconcileSettings,
    #[serde(flatten)]
    pub delivery: DeliverySettings,
    #[serde(flatten)]
    pub documents: DocumentSettings,
}

impl Settings {
    /// The settings as `check-config` prints them: secrets masked.
    pub fn masked(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("settings serialize to JSON");
        value["admin_token"] = serde_json::json!(self.server.admin_token.as_deref().map(mask));
        value["database_url"] = serde_json::json!(mask_url_password(&self.database.url));
        value["delivery_secret"] = serde_json::json!(self.delivery.delivery_secret.as_deref().map(mask));
        for (shown, destination) in value["destinations"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .zip(&self.delivery.destinations)
        {
            shown["secret"] = serde_json::json!(mask(&destination.secret));
        }
        value
    }

    /// Reads every group from `figment`, then checks them, group by group.
    pub(super) fn extract(figment: &figment::Figment) -> Result<Self, ConfigError> {
        let settings = Self {
            server: super::extract(figment)?,
            database: super::extract(figment)?,
            ingest: super::extract(figment)?,
            worker: super::extract(figment)?,
            reconcile: super::extract(figment)?,
            delivery: super::extract(figment)?,
            documents: super::extract(figment)?,
        };
        settings.server.validate()?;
        settings.database.validate()?;
        settings.ingest.validate()?;
        settings.worker.validate()?;
        settings.reconcile.validate()?;
        settings.delivery.validate()?;
        settings.documents.validate()?;
        Ok(settings)
    }
}

/// The first of `settings` that is 0, as an error naming it.
fn positive(settings: &[(&str, u64)]) -> Result<(), ConfigError> {
    match settings.iter().find(|(_, value)| *value == 0) {
        Some((key, _)) => Err(invalid(key, "must be greater than 0")),
        None => Ok(()),
    }
}
