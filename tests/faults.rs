//! Fault tolerance against the real binary: crashes and replicas.
//! (Database outages use a throwaway cluster; see tests/outage.rs.)

mod common;

use std::{collections::HashSet, sync::Arc, time::Duration};

use common::*;
use serde_json::Value;

/// Sends `count` distinct notifications from `connections` concurrent tasks
/// until done or the server is gone; returns the ids that were answered 200.
async fn send_load(
    client: reqwest::Client,
    urls: Vec<String>,
    prefix: &str,
    count: usize,
    connections: usize,
) -> Vec<String> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..connections)
        .map(|worker| {
            let (client, urls, next, prefix) = (client.clone(), urls.clone(), next.clone(), prefix.to_owned());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let id = format!("{prefix}-{i}");
                    let body = adobe_event(
                        &id,
                        &format!("agr-{}", i % 50),
                        "AGREEMENT_ACTION_COMPLETED",
                        Some("OUT_FOR_SIGNATURE"),
                        "2026-11-20T09:00:00Z",
                    );
                    let url = &urls[(i + worker) % urls.len()];
                    let sent = client
                        .post(url)
                        .header("X-AdobeSign-ClientId", ADOBE_CLIENT_ID)
                        .timeout(Duration::from_secs(5))
                        .body(body.to_string())
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == 200 => acked.push(id),
                        Ok(_) => {}
                        // The server is gone; nothing more will be acknowledged.
                        Err(error) if error.is_connect() => break,
                        Err(_) => {}
                    }
                }
                acked
            })
        })
        .collect();
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.expect("load task"));
    }
    acked
}

async fn stored_ids(app: &TestApp) -> HashSet<String> {
    sqlx::query_scalar::<_, String>("SELECT event_id FROM events")
        .fetch_all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn kill_9_under_load_loses_nothing_that_was_acknowledged() {
    let lease = [("SIGNHOOK_WORKER_LEASE_SECS", "1")];
    let mut app = spawn_app_with(&lease).await;
    let url = app.url("/webhooks/adobe-sign");
    let load = tokio::spawn(send_load(app.client.clone(), vec![url], "crash", 100_000, 8));
    // Let the load and the worker get going, then pull the plug.
    app.wait_until("some events to be processed", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE state = 'processed'")
            .fetch_one(&app.db)
            .await
            .unwrap()
            > 100
    })
    .await;
    app.kill9();
    let acked = load.await.unwrap();
    assert!(acked.len() > 100, "load was running: {} acknowledged", acked.len());

    let stored = stored_ids(&app).await;
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );

    // A restarted process finishes everything, including events the dead
    // one had claimed, without anyone touching them.
    let restarted = spawn_app_on(&app.db_name, &lease).await;
    restarted.wait_idle().await;
    let (total, processed): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE state = 'processed') FROM events")
            .fetch_one(&restarted.db)
            .await
            .unwrap();
    assert_eq!(processed, total, "every stored event ends processed");
    let history: i64 = sqlx::query_scalar("SELECT count(*) FROM agreement_history")
        .fetch_one(&restarted.db)
        .await
        .unwrap();
    assert_eq!(history, total, "each event applied exactly once");
    // The applied-event counters went down with the dead process's
    // uncommitted batch, like everything else in it.
    let stats: Value = restarted.admin_get("/api/stats").await.json().await.unwrap();
    assert_eq!(stats["events"]["processed"], total, "{stats}");
}

#[tokio::test]
async fn three_replicas_store_and_apply_each_event_once_under_a_duplicate_storm() {
    let primary = spawn_app().await;
    let replicas = [
        spawn_app_on(&primary.db_name, &[]).await,
        spawn_app_on(&primary.db_name, &[]).await,
    ];
    let urls: Vec<String> = std::iter::once(&primary)
        .chain(replicas.iter())
        .map(|app| app.url("/webhooks/adobe-sign"))
        .collect();

    // 20 agreements × 4 lifecycle events, each delivered to all three replicas
    // at the same moment, in scrambled order.
    let lifecycle = [
        ("AGREEMENT_CREATED", Some("OUT_FOR_SIGNATURE"), "2026-11-20T09:00:00Z"),
        (
            "AGREEMENT_ACTION_COMPLETED",
            Some("OUT_FOR_SIGNATURE"),
            "2026-11-20T09:01:00Z",
        ),
        ("AGREEMENT_WORKFLOW_COMPLETED", Some("SIGNED"), "2026-11-20T09:02:00Z"),
        ("AGREEMENT_EMAIL_VIEWED", None, "2026-11-20T09:03:00Z"),
    ];
    let mut deliveries = Vec::new();
    for agreement in 0..20 {
        for step in [3, 1, 2, 0] {
            let (event, status, date) = lifecycle[step];
            let body = adobe_event(
                &format!("r-{agreement}-{step}"),
                &format!("agr-{agreement}"),
                event,
                status,
                date,
            );
            for url in &urls {
                let (client, url, body) = (primary.client.clone(), url.clone(), body.to_string());
                deliveries.push(async move {
                    client
                        .post(url)
                        .header("X-AdobeSign-ClientId", ADOBE_CLIENT_ID)
                        .body(body)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                });
            }
        }
    }
    let statuses = futures::future::join_all(deliveries).await;
    assert!(statuses.iter().all(|s| matches!(s, Ok(200))), "{statuses:?}");

    primary.wait_idle().await;
    assert_eq!(primary.event_count("adobe-sign").await, 80, "stored once each");
    let history: i64 = sqlx::query_scalar("SELECT count(*) FROM agreement_history")
        .fetch_one(&primary.db)
        .await
        .unwrap();
    assert_eq!(history, 80, "applied once each");
    // Counted once each too, whichever replica's worker applied them.
    let stats: Value = replicas[1].admin_get("/api/stats").await.json().await.unwrap();
    assert_eq!(stats["events"]["processed"], 80, "{stats}");
    for agreement in 0..20 {
        let view: Value = primary.agreement("adobe-sign", &format!("agr-{agreement}")).await;
        assert_eq!(view["status"], "completed", "agr-{agreement}");
        assert_eq!(view["history"].as_array().unwrap().len(), 4);
    }
}

#[tokio::test]
async fn replicas_starting_together_on_a_new_database_all_come_up() {
    let db_name = format!("signhook_test_{}", uuid::Uuid::new_v4().simple());
    // The first to finish owns (and later drops) the database; all race to create and migrate it.
    let apps = futures::future::join_all((0..3).map(|_| spawn_app_on(&db_name, &[]))).await;
    for app in &apps {
        assert_eq!(app.client.get(app.url("/readyz")).send().await.unwrap().status(), 200);
    }
    drop(apps);
    let admin = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap();
    sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)"#))
        .execute(&admin)
        .await
        .unwrap();
}

/// Fires `bodies` at once while the events table is locked (so admitted
/// requests hold their slot until the deadline); returns (status, code, elapsed).
async fn fire_while_stalled(app: &TestApp, bodies: Vec<String>) -> Vec<(u16, String, Duration)> {
    let mut blocker = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let results = futures::future::join_all(bodies.into_iter().map(|body| async move {
        let started = std::time::Instant::now();
        let response = app.post_adobe_raw(body).await;
        let status = response.status().as_u16();
        let code = response.json::<Value>().await.unwrap()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        (status, code, started.elapsed())
    }))
    .await;
    blocker.rollback().await.unwrap();
    results
}

#[tokio::test]
async fn beyond_capacity_requests_are_shed_at_once() {
    let app = spawn_app_with(&[
        ("SIGNHOOK_MAX_CONCURRENT_REQUESTS", "4"),
        ("SIGNHOOK_REQUEST_TIMEOUT_MS", "1500"),
    ])
    .await;
    let bodies = (0..20)
        .map(|i| {
            adobe_event(
                &format!("o-{i}"),
                "a",
                "AGREEMENT_CREATED",
                None,
                "2026-11-20T09:00:00Z",
            )
            .to_string()
        })
        .collect();

    let results = fire_while_stalled(&app, bodies).await;

    let shed: Vec<_> = results.iter().filter(|(_, code, _)| code == "overloaded").collect();
    assert!(shed.len() >= 12, "{results:?}");
    assert!(
        shed.iter()
            .all(|(status, _, elapsed)| *status == 503 && *elapsed < Duration::from_millis(500)),
        "{shed:?}"
    );
    assert!(results.iter().all(|(status, _, _)| *status == 503), "{results:?}");
    let ok = adobe_event("o-after", "a", "AGREEMENT_CREATED", None, "2026-11-20T09:00:00Z");
    assert_eq!(app.post_adobe(&ok).await.status(), 200, "capacity comes back");
}

#[tokio::test]
async fn bodies_in_flight_are_bounded_in_bytes() {
    let app = spawn_app_with(&[
        ("SIGNHOOK_MAX_BODY_BYTES", "65536"),
        ("SIGNHOOK_MAX_INFLIGHT_BODY_BYTES", "65536"),
        ("SIGNHOOK_REQUEST_TIMEOUT_MS", "1500"),
    ])
    .await;
    let bodies = (0..3)
        .map(|i| {
            let mut body = adobe_event(
                &format!("b-{i}"),
                "a",
                "AGREEMENT_CREATED",
                None,
                "2026-11-20T09:00:00Z",
            );
            body["padding"] = serde_json::json!("x".repeat(40_000));
            body.to_string()
        })
        .collect();

    let results = fire_while_stalled(&app, bodies).await;

    let shed = results.iter().filter(|(_, code, _)| code == "overloaded").count();
    assert_eq!(shed, 2, "only one 40 KB body fits a 64 KiB budget: {results:?}");
}
