//! Database outages, on a throwaway cluster this test owns: stopped, then
//! frozen with SIGSTOP. signhook must answer fast 503s (never 200, never a
//! hang), stay alive, and recover by itself.

mod common;

use std::time::{Duration, Instant};

use common::{cluster::TempCluster, *};
use serde_json::Value;

async fn post_timed(app: &TestApp, id: &str) -> (u16, Duration, Option<String>) {
    let started = Instant::now();
    let response = app
        .post_adobe(&adobe_event(
            id,
            "outage",
            "AGREEMENT_CREATED",
            Some("OUT_FOR_SIGNATURE"),
            "2026-11-20T09:00:00Z",
        ))
        .await;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, started.elapsed(), retry_after)
}

async fn status_of(app: &TestApp, path: &str) -> u16 {
    app.client.get(app.url(path)).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn stopped_database_gets_fast_503s_and_recovery_needs_no_restart() {
    let cluster = TempCluster::start();
    let app = spawn_app_at(&cluster.url(), &[("SIGNHOOK_WORKER_POLL_INTERVAL_MS", "100")]).await;
    assert_eq!(post_timed(&app, "before").await.0, 200);

    cluster.stop();
    let outage_started = Instant::now();
    for i in 0..5 {
        let (status, elapsed, retry_after) = post_timed(&app, &format!("during-{i}")).await;
        assert_eq!(status, 503);
        assert!(elapsed < Duration::from_secs(3), "answered in {elapsed:?}");
        assert_eq!(retry_after.as_deref(), Some("5"));
    }
    assert_eq!(status_of(&app, "/readyz").await, 503);
    assert_eq!(status_of(&app, "/healthz").await, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Polling every 100 ms without backoff, two worker loops would log ~20 lines a second.
    let complaints = app.logs().matches("worker cannot claim events").count();
    let per_second = complaints as f64 / outage_started.elapsed().as_secs_f64();
    assert!(
        per_second < 2.0,
        "worker backs off instead of flooding the log: {complaints} lines in {:?}",
        outage_started.elapsed()
    );

    cluster.restart();
    app.wait_until("ingest to recover", || async {
        post_timed(&app, "after").await.0 == 200
    })
    .await;
    app.wait_until("readiness to recover", || async {
        status_of(&app, "/readyz").await == 200
    })
    .await;
    app.wait_idle().await;
    let agreement: Value = app.agreement("adobe-sign", "outage").await;
    let history: Vec<&str> = agreement["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event_id"].as_str().unwrap())
        .collect();
    assert!(history.contains(&"before") && history.contains(&"after"), "{history:?}");
    assert!(
        !history.iter().any(|id| id.starts_with("during")),
        "refused events were not stored"
    );
}

#[tokio::test]
async fn frozen_database_gets_503s_within_the_deadline() {
    let cluster = TempCluster::start();
    let app = spawn_app_at(&cluster.url(), &[]).await;
    assert_eq!(post_timed(&app, "before").await.0, 200);

    cluster.pause();
    let attempts = futures::future::join_all((0..4).map(|i| {
        let app = &app;
        async move { post_timed(app, &format!("frozen-{i}")).await }
    }))
    .await;
    let ready = status_of(&app, "/readyz").await;
    let alive = status_of(&app, "/healthz").await;
    cluster.resume();

    for (status, elapsed, _) in attempts {
        assert_eq!(status, 503);
        assert!(elapsed < Duration::from_secs(3), "answered in {elapsed:?}");
    }
    assert_eq!((ready, alive), (503, 200));
    app.wait_until("ingest to recover", || async {
        post_timed(&app, "after").await.0 == 200
    })
    .await;
    app.wait_idle().await;
    assert_eq!(app.agreement("adobe-sign", "outage").await["status"], "in_progress");
}
