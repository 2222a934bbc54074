//! Migrations are append-only: every landed one is pinned by its checksum
//! (`migrations.lock`), and a database populated under the first schema is
//! upgraded by the current binary with each acknowledged event applied once.
//! (In this binary because the upgrade test reads `/metrics` values.)

use std::{collections::BTreeMap, path::Path};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha384};
use sqlx::{migrate::Migrator, PgPool};

use crate::{
    common::{
        adobe_event, boldsign_event, database_url, drop_database, fresh_database_name, fuse_event, ADOBE_CLIENT_ID,
        FUSESIGN_TENANT,
    },
    helpers::*,
};

const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
const LOCK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations.lock");
const FIRST_MIGRATION: &str = "20261122000001_init.sql";

/// `migrations.lock`: file name → checksum (hex).
fn pinned() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(LOCK).expect("migrations.lock at the crate root");
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, checksum) = line.split_once(' ').expect("`<file> <checksum>` lines");
            (name.to_owned(), checksum.trim().to_owned())
        })
        .collect()
}

/// `migrations/`: file name → SHA-384 of its bytes (hex).
fn on_disk() -> BTreeMap<String, String> {
    std::fs::read_dir(MIGRATIONS)
        .expect("migrations/")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .map(|path| {
            let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
            let checksum = hex::encode(Sha384::digest(std::fs::read(&path).expect("readable")));
            (name, checksum)
        })
        .collect()
}

#[test]
fn landed_migrations_are_never_edited() {
    let pinned = pinned();
    let on_disk = on_disk();
    for (name, checksum) in &pinned {
        let Some(actual) = on_disk.get(name) else {
            panic!("{name} has landed and is gone from migrations/: landed migrations are never removed or renamed");
        };
        assert_eq!(
            actual, checksum,
            "{name} has landed and was edited since: databases that applied it would refuse to start. \
             Restore it (git checkout main -- migrations/{name}) and make the change in a new migration."
        );
    }
    let last_landed = pinned.keys().next_back().expect("landed migrations");
    for (name, checksum) in &on_disk {
        if pinned.contains_key(name) {
            continue;
        }
        assert!(
            name > last_landed,
            "{name} sorts before the landed {last_landed}: a new migration needs a later version"
        );
        panic!(
            "{name} is not in migrations.lock yet. Once it is final, pin it by adding this line:\n{name} {checksum}"
        );
    }
}

/// The manifest holds what sqlx itself records, not just some hash.
#[tokio::test]
async fn the_pinned_checksums_are_the_ones_sqlx_records() {
    let migrator = Migrator::new(Path::new(MIGRATIONS)).await.expect("migrations load");
    let pinned = pinned();
    let mut seen = 0;
    for migration in migrator.iter() {
        let name = pinned
            .keys()
            .find(|name| name.starts_with(&format!("{}_", migration.version)))
            .unwrap_or_else(|| panic!("migration {} is pinned", migration.version));
        assert_eq!(pinned[name], hex::encode(&migration.checksum), "{name}");
        seen += 1;
    }
    assert_eq!(seen, pinned.len());
}

/// Drops the database when the test ends, after the apps on it.
struct Database(String);

impl Drop for Database {
    fn drop(&mut self) {
        drop_database(&self.0);
    }
}

/// A fresh database with only the first migration applied, as sqlx applies
/// it (so the current binary sees it recorded and goes on from there).
async fn first_schema_database() -> (Database, PgPool) {
    let database = Database(fresh_database_name());
    let admin = PgPool::connect(&database_url("postgres")).await.unwrap();
    sqlx::query(&format!(r#"CREATE DATABASE "{}""#, database.0))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let pool = PgPool::connect(&database_url(&database.0)).await.unwrap();
    let dir = std::env::temp_dir().join(format!("signhook-first-schema-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(Path::new(MIGRATIONS).join(FIRST_MIGRATION), dir.join(FIRST_MIGRATION)).unwrap();
    let first = Migrator::new(dir.as_path()).await.expect("the first migration loads");
    std::fs::remove_dir_all(&dir).unwrap();
    first.run(&pool).await.expect("the first schema applies");
    (database, pool)
}

/// One row of the first schema's `events`, in the state its worker left it.
struct OldEvent {
    provider: &'static str,
    event_id: &'static str,
    event_type: &'static str,
    resource: (&'static str, &'static str),
    tenant: &'static str,
    occurred_at: &'static str,
    body: Value,
    state: &'static str,
    attempts: i32,
}

impl OldEvent {
    /// Inserts it as the first version's ingest and worker wrote it; returns its id.
    async fn insert(&self, pool: &PgPool) -> i64 {
        let occurred_at: DateTime<Utc> = self.occurred_at.parse().unwrap();
        sqlx::query_scalar(
            "INSERT INTO events (provider, event_id, event_type, resource_type, resource_id, tenant, occurred_at,
                                 received_at, content_type, body, state, attempts, next_attempt_at, locked_until,
                                 last_error, processed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, now() - interval '1 hour', 'application/json', $8, $9, $10,
                     now() - interval '1 second',
                     CASE WHEN $9 = 'processing' THEN now() - interval '1 minute' END,
                     CASE WHEN $9 IN ('failed', 'dead') THEN 'the database did not answer in time' END,
                     CASE WHEN $9 = 'processed' THEN now() - interval '50 minutes' END)
             RETURNING id",
        )
        .bind(self.provider)
        .bind(self.event_id)
        .bind(self.event_type)
        .bind(self.resource.0)
        .bind(self.resource.1)
        .bind(self.tenant)
        .bind(occurred_at)
        .bind(self.body.to_string().into_bytes())
        .bind(self.state)
        .bind(self.attempts)
        .fetch_one(pool)
        .await
        .unwrap()
    }

    /// What the first version's worker wrote for it once applied: its
    /// agreement (with `status`, the normalized one) and a history row.
    async fn record_applied(&self, pool: &PgPool, id: i64, status: &str, provider_status: &str, name: Option<&str>) {
        let occurred_at: DateTime<Utc> = self.occurred_at.parse().unwrap();
        sqlx::query(
            "INSERT INTO agreements (provider, agreement_id, resource_type, status, provider_status, name,
                                     status_at, last_event_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, now() - interval '50 minutes', now() - interval '50 minutes')",
        )
        .bind(self.provider)
        .bind(self.resource.1)
        .bind(self.resource.0)
        .bind(status)
        .bind(provider_status)
        .bind(name)
        .bind(occurred_at)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO agreement_history (provider, agreement_id, event_ref, event_id, event_type, status,
                                            provider_status, occurred_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(self.provider)
        .bind(self.resource.1)
        .bind(id)
        .bind(self.event_id)
        .bind(self.event_type)
        .bind(status)
        .bind(provider_status)
        .bind(occurred_at)
        .execute(pool)
        .await
        .unwrap();
    }
}

/// `(attempts, processed_at)` of an event.
async fn processing_record(app: &TestApp, id: i64) -> (i32, Option<DateTime<Utc>>) {
    sqlx::query_as("SELECT attempts, processed_at FROM events WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_database_from_the_first_schema_is_upgraded_and_every_acknowledged_event_applied_once() {
    let (database, pool) = first_schema_database().await;
    const T0: i64 = 1_763_631_000;
    let adobe =
        |id: &'static str, agreement: &'static str, event: &'static str, status: &'static str, at: &'static str| {
            OldEvent {
                provider: "adobe-sign",
                event_id: id,
                event_type: event,
                resource: ("agreement", agreement),
                tenant: ADOBE_CLIENT_ID,
                occurred_at: at,
                body: adobe_event(id, agreement, event, Some(status), at),
                state: "pending",
                attempts: 0,
            }
        };
    let boldsign =
        |id: &'static str, event: &'static str, status: &'static str, at: &'static str, created: i64| OldEvent {
            provider: "boldsign",
            event_id: id,
            event_type: event,
            resource: ("document", "doc-b"),
            tenant: "Live",
            occurred_at: at,
            body: boldsign_event(id, "doc-b", event, Some(status), created),
            state: "pending",
            attempts: 0,
        };
    let fusesign = |id: &'static str, bundle: &'static str, event: &'static str, at: &'static str| OldEvent {
        provider: "fusesign",
        event_id: id,
        event_type: event,
        resource: ("bundle", bundle),
        tenant: FUSESIGN_TENANT,
        occurred_at: at,
        body: fuse_event(id, bundle, event, at),
        state: "pending",
        attempts: 0,
    };
    // Applied by the old worker:
    let a_created = OldEvent {
        state: "processed",
        attempts: 1,
        ..adobe(
            "a-created",
            "agr-a",
            "AGREEMENT_CREATED",
            "OUT_FOR_SIGNATURE",
            "2026-11-20T09:00:00Z",
        )
    };
    let b_sent = OldEvent {
        state: "processed",
        attempts: 1,
        ..boldsign("b-sent", "Sent", "InProgress", "2025-11-20T09:30:00Z", T0)
    };
    let g_created = OldEvent {
        state: "processed",
        attempts: 1,
        ..fusesign("g-created", "bundle-g", "BundleCreated", "2026-11-20T09:00:00Z")
    };
    // Acknowledged and not yet applied, in every state the old worker left:
    let a_completed = adobe(
        "a-completed",
        "agr-a",
        "AGREEMENT_WORKFLOW_COMPLETED",
        "SIGNED",
        "2026-11-20T10:00:00Z",
    );
    let b_completed = OldEvent {
        state: "failed",
        attempts: 2,
        ..boldsign(
            "b-completed",
            "Completed",
            "Completed",
            "2025-11-20T09:40:00Z",
            T0 + 600,
        )
    };
    let f_claimed = OldEvent {
        // Claimed by a worker that crashed; its lease ran out.
        state: "processing",
        attempts: 1,
        ..adobe(
            "f-claimed",
            "agr-f",
            "AGREEMENT_CREATED",
            "OUT_FOR_SIGNATURE",
            "2026-11-20T09:00:00Z",
        )
    };
    let e_final = OldEvent {
        state: "dead",
        attempts: 10,
        ..fusesign("e-final", "bundle-e", "BundleFinalised", "2026-11-20T09:00:00Z")
    };

    let mut ids = BTreeMap::new();
    for event in [
        &a_created,
        &a_completed,
        &b_sent,
        &b_completed,
        &f_claimed,
        &e_final,
        &g_created,
    ] {
        ids.insert(event.event_id, event.insert(&pool).await);
    }
    a_created
        .record_applied(
            &pool,
            ids["a-created"],
            "in_progress",
            "OUT_FOR_SIGNATURE",
            Some("Mutual NDA"),
        )
        .await;
    b_sent
        .record_applied(&pool, ids["b-sent"], "in_progress", "InProgress", Some("Offer letter"))
        .await;
    g_created
        .record_applied(&pool, ids["g-created"], "in_progress", "BundleCreated", None)
        .await;
    pool.close().await;

    // The current binary migrates it at start-up and works through the queue.
    let app = spawn_app_on(&database.0, &[]).await;
    let before: Vec<_> =
        futures::future::join_all(["a-created", "b-sent", "g-created"].map(|id| processing_record(&app, ids[id])))
            .await;
    assert_eq!(app.wait_until_processed(6).await, 6);
    app.wait_idle().await;

    // Every acknowledged event once in history, the dead one not at all.
    let history: Vec<i64> = sqlx::query_scalar("SELECT event_ref FROM agreement_history ORDER BY event_ref")
        .fetch_all(&app.db)
        .await
        .unwrap();
    let applied: Vec<i64> = [
        "a-created",
        "a-completed",
        "b-sent",
        "b-completed",
        "f-claimed",
        "g-created",
    ]
    .iter()
    .map(|id| ids[id])
    .collect();
    assert_eq!(history, applied, "one history row per applied event");
    // The ones applied before were not applied again.
    let after: Vec<_> =
        futures::future::join_all(["a-created", "b-sent", "g-created"].map(|id| processing_record(&app, ids[id])))
            .await;
    assert_eq!(
        after, before,
        "attempts and processed_at of the old worker's events are untouched"
    );

    let status = |provider: &'static str, id: &'static str| {
        let app = &app;
        async move { app.get_agreement(provider, id).await["status"].clone() }
    };
    assert_eq!(status("adobe-sign", "agr-a").await, "completed");
    assert_eq!(status("boldsign", "doc-b").await, "completed");
    assert_eq!(status("adobe-sign", "agr-f").await, "in_progress");
    assert_eq!(status("fusesign", "bundle-g").await, "in_progress");
    assert_eq!(app.admin_get("/api/agreements/fusesign/bundle-e").await.status(), 404);
    let agr_a = app.get_agreement("adobe-sign", "agr-a").await;
    let events: Vec<&str> = agr_a["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["a-created", "a-completed"]);

    // The counters: the old worker's three, the three applied now, the dead one.
    assert_eq!(
        app.stats().await["events"],
        json!({ "pending": 0, "processing": 0, "processed": 6, "failed": 0, "dead": 1 })
    );
    let metrics = app.metrics().await;
    assert_eq!(
        metric_sample(&metrics, r#"signhook_events{state="processed"}"#),
        Some(6.0)
    );
    assert_eq!(metric_sample(&metrics, r#"signhook_events{state="dead"}"#), Some(1.0));
    assert_eq!(
        metric_sample(&metrics, r#"signhook_events{state="pending"}"#),
        Some(0.0)
    );
    assert_eq!(
        metric_sample(&metrics, "signhook_events_applied_total"),
        Some(3.0),
        "this process applied only the three that were waiting: {metrics}"
    );
    let dead = app.list_events("state=dead").await;
    assert_eq!(dead["events"][0]["event_id"], "e-final", "{dead}");

    // The dead event, replayed, is applied once too.
    assert_eq!(app.replay(ids["e-final"]).await.status(), 202);
    app.wait_for_agreement_status("fusesign", "bundle-e", "completed").await;
    assert_eq!(app.wait_until_processed(7).await, 7);
    assert_eq!(
        app.count("SELECT count(*) FROM agreement_history").await,
        7,
        "one more history row"
    );
    assert_eq!(
        app.stats().await["events"],
        json!({ "pending": 0, "processing": 0, "processed": 7, "failed": 0, "dead": 0 })
    );
    // The queue gauges are read from the database at most once a second.
    app.wait_until("the gauges to count the replayed event", || async {
        let metrics = app.metrics().await;
        metric_sample(&metrics, r#"signhook_events{state="processed"}"#) == Some(7.0)
            && metric_sample(&metrics, r#"signhook_events{state="dead"}"#) == Some(0.0)
    })
    .await;
    drop(app);
}
