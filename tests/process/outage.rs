//! Database outages, on a throwaway cluster each test owns: stopped, then
//! frozen with SIGSTOP. signhook must answer 503s within its deadline (never
//! 200, never a hang), stay alive, back off, and recover by itself.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{
    cluster::TempCluster,
    common::adobe_event,
    helpers::{exclusive, spawn_app_at, TestApp},
};

/// The request deadline these tests configure (`SIGNHOOK_REQUEST_TIMEOUT_MS`).
const DEADLINE: Duration = Duration::from_millis(1000);
/// Room above the deadline for a loaded two-core machine to answer; with
/// it, the bound stays far below the 10 s after which providers give up.
const SLACK: Duration = Duration::from_secs(2);
/// The worker's poll interval these tests configure: its first backoff step.
const POLL_INTERVAL_MS: u64 = 100;

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
    app.get(path).await.status().as_u16()
}

/// Readiness follows the database within its check interval (1 s) plus the
/// check's own timeout (1 s): waits for `status`, and no longer than that
/// with room for a loaded machine.
async fn wait_for_readiness(app: &TestApp, status: u16) {
    let started = Instant::now();
    while status_of(app, "/readyz").await != status {
        assert!(
            started.elapsed() < Duration::from_secs(2) + SLACK,
            "/readyz not {status} after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The worker's "cannot claim" complaints: when each was logged and the
/// pause it announced before the next attempt.
fn claim_failures(app: &TestApp) -> Vec<(DateTime<Utc>, u64)> {
    app.log_entries("worker cannot claim events")
        .iter()
        .map(|entry: &Value| {
            let at = entry["timestamp"].as_str().expect("a timestamp");
            let at = DateTime::parse_from_rfc3339(at).expect("an RFC 3339 timestamp");
            (
                at.with_timezone(&Utc),
                entry["retry_in_ms"].as_u64().expect("retry_in_ms"),
            )
        })
        .collect()
}

#[tokio::test]
async fn stopped_database_gets_fast_503s_the_worker_backs_off_and_recovery_needs_no_restart() {
    let _exclusive = exclusive().await;
    let cluster = TempCluster::start();
    let app = spawn_app_at(
        &cluster.url(),
        &[
            ("SIGNHOOK_REQUEST_TIMEOUT_MS", "1000"),
            ("SIGNHOOK_WORKER_POLL_INTERVAL_MS", "100"),
            ("SIGNHOOK_WORKER_CONCURRENCY", "1"),
            // A claim fails within 200 ms, so without backoff the worker
            // would try (and complain) every 300 ms or faster.
            ("SIGNHOOK_DB_ACQUIRE_TIMEOUT_MS", "200"),
        ],
    )
    .await;
    assert_eq!(post_timed(&app, "before").await.0, 200);

    cluster.stop();
    for i in 0..5 {
        let (status, elapsed, retry_after) = post_timed(&app, &format!("during-{i}")).await;
        assert_eq!(status, 503);
        assert!(elapsed < DEADLINE + SLACK, "answered in {elapsed:?}");
        assert_eq!(retry_after.as_deref(), Some("5"));
    }
    // Readiness is checked about once a second, not per request.
    wait_for_readiness(&app, 503).await;
    assert_eq!(status_of(&app, "/healthz").await, 200);

    // The backoff itself: each complaint announces twice the previous pause
    // (from the poll interval, capped at 10 s), and the next attempt comes
    // no earlier than announced. Six complaints span 200+400+800+1600 ms of
    // pauses after the first; without backoff they would come within 2 s.
    app.wait_until("six complaints from the worker", || async {
        claim_failures(&app).len() >= 6
    })
    .await;
    let failures = claim_failures(&app);
    let pauses: Vec<u64> = failures.iter().map(|(_, pause)| *pause).collect();
    let expected: Vec<u64> = (0..pauses.len() as u32)
        .map(|n| (POLL_INTERVAL_MS << n).min(10_000))
        .collect();
    assert_eq!(pauses, expected, "the pause doubles");
    // (The first pause may be cut short: the commit of "before" left the
    // worker a wake-up, which is how a commit ends a backoff early.)
    for pair in failures[1..].windows(2) {
        let ((logged, pause), (next, _)) = (pair[0], pair[1]);
        let waited = (next - logged).to_std().expect("complaints are logged in order");
        // Log timestamps have microseconds; a timer never fires early.
        assert!(
            waited + Duration::from_millis(1) >= Duration::from_millis(pause),
            "waited {waited:?} after announcing {pause} ms: {failures:?}"
        );
    }

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
    let agreement = app.get_agreement("adobe-sign", "outage").await;
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
async fn frozen_database_gets_503s_at_the_deadline() {
    let _exclusive = exclusive().await;
    let cluster = TempCluster::start();
    let app = spawn_app_at(&cluster.url(), &[("SIGNHOOK_REQUEST_TIMEOUT_MS", "1000")]).await;
    assert_eq!(post_timed(&app, "before").await.0, 200);

    cluster.pause();
    let attempts = futures::future::join_all((0..4).map(|i| {
        let app = &app;
        async move { post_timed(app, &format!("frozen-{i}")).await }
    }))
    .await;
    wait_for_readiness(&app, 503).await;
    let ready = status_of(&app, "/readyz").await;
    let alive = status_of(&app, "/healthz").await;
    cluster.resume();

    for (status, elapsed, _) in attempts {
        assert_eq!(status, 503);
        // Nothing answers, so each waits for the deadline, and no longer.
        assert!(
            elapsed >= DEADLINE && elapsed < DEADLINE + SLACK,
            "answered in {elapsed:?}"
        );
    }
    assert_eq!((ready, alive), (503, 200));
    app.wait_until("ingest to recover", || async {
        post_timed(&app, "after").await.0 == 200
    })
    .await;
    app.wait_idle().await;
    assert_eq!(app.get_agreement("adobe-sign", "outage").await["status"], "in_progress");
}

/// A restart of PostgreSQL ends every connection in the pool, and nothing
/// tells the pool until a connection is used. Each stale one used to fail the
/// one request that drew it (a 503) before it was replaced; connections are
/// now checked as they are taken.
#[tokio::test]
async fn after_a_database_restart_no_request_fails_on_a_stale_pooled_connection() {
    let _exclusive = exclusive().await;
    let cluster = TempCluster::start();
    let app = spawn_app_at(&cluster.url(), &[("SIGNHOOK_DB_MAX_CONNECTIONS", "8")]).await;
    // Fill the pool: concurrent admin reads each hold a connection.
    let warm = futures::future::join_all((0..16).map(|_| app.admin_get("/api/events?limit=1"))).await;
    assert!(warm.iter().all(|response| response.status() == 200));

    cluster.stop();
    cluster.restart();
    let mut statuses = Vec::new();
    for i in 0..16 {
        statuses.push(app.admin_get("/api/events?limit=1").await.status().as_u16());
        statuses.push(post_timed(&app, &format!("after-restart-{i}")).await.0);
    }
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
}
