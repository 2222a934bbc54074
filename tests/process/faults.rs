//! Fault tolerance of the real binary: SIGTERM, kill -9 and replicas.
//! (Database outages use a throwaway cluster: outage.rs.)

use std::{collections::HashSet, sync::Arc, time::Duration};

use nix::sys::signal::{kill, Signal};

use crate::{
    common::{
        adobe_event, drop_database,
        fake_provider::{FakeProvider, ADOBE_API_TOKEN},
        fresh_database_name, ADOBE_CLIENT_ID,
    },
    helpers::*,
};

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
    let _exclusive = exclusive().await;
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
    let stats = restarted.stats().await;
    assert_eq!(stats["events"]["processed"], total, "{stats}");
}

#[tokio::test]
async fn three_replicas_store_and_apply_each_event_once_under_a_duplicate_storm() {
    let _exclusive = exclusive().await;
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
    let stats = replicas[1].stats().await;
    assert_eq!(stats["events"]["processed"], 80, "{stats}");
    for agreement in 0..20 {
        let view = primary.get_agreement("adobe-sign", &format!("agr-{agreement}")).await;
        assert_eq!(view["status"], "completed", "agr-{agreement}");
        assert_eq!(view["history"].as_array().unwrap().len(), 4);
    }
}

#[tokio::test]
async fn replicas_starting_together_on_a_new_database_all_come_up() {
    let db_name = fresh_database_name();
    // All race to create and migrate it.
    let apps = futures::future::join_all((0..3).map(|_| spawn_app_on(&db_name, &[]))).await;
    for app in &apps {
        assert_eq!(app.get("/readyz").await.status(), 200);
    }
    drop(apps);
    drop_database(&db_name);
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    let _exclusive = exclusive().await;
    let mut app = spawn_app_with(&[
        ("SIGNHOOK_REQUEST_TIMEOUT_MS", "4900"),
        // Each request's arrival is logged (tower-http's "started processing
        // request"), so the test sees when all of them are in flight.
        ("RUST_LOG", "info,sqlx=warn,tower_http::trace::on_request=debug"),
    ])
    .await;
    // Hold the inserts so that requests are certainly in flight at SIGTERM.
    let mut blocker = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let senders: Vec<_> = (0..20)
        .map(|i| {
            let (client, url) = (app.client.clone(), app.url("/webhooks/adobe-sign"));
            tokio::spawn(async move {
                let body = adobe_event(
                    &format!("t-{i}"),
                    &format!("a-{i}"),
                    "AGREEMENT_CREATED",
                    None,
                    "2026-11-20T09:00:00Z",
                );
                let sent = client
                    .post(url)
                    .header("X-AdobeSign-ClientId", ADOBE_CLIENT_ID)
                    .body(body.to_string())
                    .send()
                    .await;
                (format!("t-{i}"), sent.map(|r| r.status().as_u16()).ok())
            })
        })
        .collect();
    app.wait_until("the 20 requests to be in flight", || async {
        app.log_count("started processing request") >= 20
    })
    .await;

    kill(app.pid(), Signal::SIGTERM).unwrap();
    app.wait_until("shutdown to begin", || async { app.logs().contains("shutting down") })
        .await;
    let late = reqwest::Client::new().get(app.url("/healthz")).send().await;
    assert!(late.is_err(), "no new connections are accepted after SIGTERM");
    blocker.rollback().await.unwrap();

    let status = app.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "exit status {status:?}");
    for sender in senders {
        let (event_id, status) = sender.await.unwrap();
        assert_eq!(status, Some(200), "{event_id} was in flight, so it is finished");
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_id = $1")
            .bind(&event_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
        assert_eq!(stored, 1, "{event_id} was acknowledged, so it is stored");
    }
    // Whatever the worker had not applied when it stopped is still queued
    // for the next process: nothing was claimed and dropped.
    let stranded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events e
          WHERE e.state <> 'processed'
            AND NOT EXISTS (SELECT 1 FROM event_queue q WHERE q.id = e.id AND NOT q.dead)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(stranded, 0, "events not applied are still queued");
}

#[tokio::test]
async fn replicas_never_poll_one_agreement_at_once() {
    const AGREEMENTS: usize = 24;
    const AGREEMENT_PATH: &str = "/api/rest/v6/agreements/";
    let fake = FakeProvider::start().await;
    fake.set_delay(Duration::from_millis(150));
    for i in 0..AGREEMENTS {
        fake.set_agreement(&format!("r-{i}"), "x", "OUT_FOR_SIGNATURE");
    }
    let env = [
        ("SIGNHOOK_ADOBE_SIGN_API_BASE", fake.base_url.as_str()),
        ("SIGNHOOK_ADOBE_SIGN_API_TOKEN", ADOBE_API_TOKEN),
        ("SIGNHOOK_PROVIDER_API_MAX_ATTEMPTS", "1"),
        ("SIGNHOOK_RECONCILE_INTERVAL", "50ms"),
        ("SIGNHOOK_RECONCILE_STALE_AFTER", "1h"),
        ("SIGNHOOK_RECONCILE_MAX_PER_MINUTE", "6000"),
        // Scheduling mechanics, not the provider's limits (tested on their own).
        ("SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL", "0"),
        ("SIGNHOOK_ADOBE_SIGN_API_REQUESTS_PER_HOUR", "1000000"),
    ];
    let first = spawn_app_with(&env).await;
    let second = spawn_app_on(&first.db_name, &env).await;

    // All stale at the same instant, so both replicas race for them.
    sqlx::query(
        "INSERT INTO agreements (provider, agreement_id, resource_type, status, last_event_at)
         SELECT 'adobe-sign', 'r-' || i, 'agreement', 'in_progress', now() - interval '2 hours'
           FROM generate_series(0, $1 - 1) AS i",
    )
    .bind(AGREEMENTS as i32)
    .execute(&first.db)
    .await
    .unwrap();

    first
        .wait_until("every agreement to be polled", || async {
            first
                .count("SELECT count(*) FROM agreements WHERE last_polled_at IS NOT NULL")
                .await
                == AGREEMENTS as i64
        })
        .await;
    // A few more ticks of both replicas (every 50 ms): nothing is stale any
    // more, so nothing more may be polled. (A window, not a wait: what is
    // checked is that nothing happens.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..AGREEMENTS {
        let path = format!("{AGREEMENT_PATH}r-{i}");
        assert_eq!(fake.request_count(&path), 1, "{path} polled once per stale period");
        assert_eq!(fake.max_in_flight(&path), 1, "{path}");
    }
    let polled_by = |app: &TestApp| app.log_count("agreement polled");
    assert_eq!(polled_by(&first) + polled_by(&second), AGREEMENTS);
    assert!(
        polled_by(&first) > 0 && polled_by(&second) > 0,
        "both replicas took part"
    );
}
