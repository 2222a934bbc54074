//! The admin API: authentication, pagination, stats and replay.

use std::collections::HashSet;

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn admin_api_requires_the_bearer_token() {
    let app = spawn_app().await;
    let no_token = app.get("/api/stats").await;
    assert_eq!(no_token.status(), 401);
    assert_eq!(
        no_token.json::<Value>().await.unwrap()["error"]["code"],
        "missing_token"
    );
    let wrong = app
        .client
        .get(app.url("/api/stats"))
        .bearer_auth("test-admin-token-012345678X")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.json::<Value>().await.unwrap()["error"]["code"], "invalid_token");
    assert_eq!(app.admin_get("/api/stats").await.status(), 200);
}

#[tokio::test]
async fn admin_api_does_not_exist_without_a_token() {
    let app = spawn_app_with(&[("SIGNHOOK_ADMIN_TOKEN", "")]).await;
    for path in ["/api/stats", "/api/events", "/api/agreements/adobe-sign/x"] {
        let response = app.admin_get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    }
    // The start-up warning naming the setting: tests/process/logs.rs.
}

#[tokio::test]
async fn events_are_paginated_stably_and_filtered() {
    let app = spawn_app().await;
    for i in 0..25 {
        let agreement = if i % 5 == 0 { "filtered" } else { "other" };
        let body = adobe_event(
            &format!("page-{i:02}"),
            agreement,
            "AGREEMENT_CREATED",
            None,
            "2026-11-20T09:00:00Z",
        );
        assert_eq!(app.post_adobe(&body).await.status(), 200);
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("limit=10&cursor={c}"),
            None => "limit=10".to_owned(),
        };
        let page: Value = app.list_events(&path).await;
        pages += 1;
        for event in page["events"].as_array().unwrap() {
            seen.push(event["id"].as_i64().unwrap());
            assert_eq!(event["provider"], "adobe-sign");
            assert!(event["received_at"].is_string() && event["attempts"].is_number());
        }
        // An event arriving mid-walk must not shift later pages.
        if pages == 1 {
            let late = adobe_event("late", "other", "AGREEMENT_CREATED", None, "2026-11-20T09:00:00Z");
            assert_eq!(app.post_adobe(&late).await.status(), 200);
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25, "no event twice");
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");

    let filtered = app.list_events("agreement_id=filtered&provider=adobe-sign").await;
    assert_eq!(filtered["events"].as_array().unwrap().len(), 5);
    assert!(filtered["next_cursor"].is_null());

    for bad in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "state=sleeping",
        "provider=docusign",
        "cursor=abc",
    ] {
        let response = app.admin_get(&format!("/api/events?{bad}")).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"]["code"],
            "invalid_query"
        );
    }
}

#[tokio::test]
async fn stats_count_events_by_state() {
    let app = spawn_app().await;
    for i in 0..3 {
        let body = adobe_event(
            &format!("s-{i}"),
            "a",
            "AGREEMENT_CREATED",
            None,
            "2026-11-20T09:00:00Z",
        );
        assert_eq!(app.post_adobe(&body).await.status(), 200);
    }
    app.wait_until_processed(3).await;
    assert_eq!(
        app.stats().await,
        serde_json::json!({ "events": { "pending": 0, "processing": 0, "processed": 3, "failed": 0, "dead": 0 } })
    );
}

#[tokio::test]
async fn replaying_an_applied_event_changes_nothing() {
    let app = spawn_app().await;
    let body = adobe_event(
        "r-1",
        "replayed",
        "AGREEMENT_WORKFLOW_COMPLETED",
        Some("SIGNED"),
        "2026-11-20T09:00:00Z",
    );
    app.deliver_adobe(&body).await;
    let before = app.get_agreement("adobe-sign", "replayed").await;
    let id = app.event_db_id("adobe-sign", "r-1").await;

    let response = app.replay(id).await;
    assert_eq!(response.status(), 202);
    app.wait_idle().await;

    assert_eq!(app.event_state("adobe-sign", "r-1").await.0, "processed");
    let after = app.get_agreement("adobe-sign", "replayed").await;
    assert_eq!(after["history"], before["history"]);
    assert_eq!(after["status"], before["status"]);
    assert_eq!(after["updated_at"], before["updated_at"], "nothing was rewritten");
    let stats = app.stats().await;
    assert_eq!(stats["events"]["processed"], 1, "counted once: {stats}");

    assert_eq!(app.replay(999999).await.status(), 404);
    assert_eq!(app.replay("abc").await.status(), 400);
    assert_eq!(
        app.admin_get("/api/agreements/adobe-sign/never-seen").await.status(),
        404
    );
    assert_eq!(app.admin_get("/api/agreements/docusign/x").await.status(), 404);
}

#[tokio::test]
async fn admin_answers_are_never_cached_or_sniffed() {
    let app = spawn_app().await;
    let answers = [
        ("ok", app.admin_get("/api/stats").await),
        ("no token", app.get("/api/stats").await),
        ("unknown path", app.admin_get("/api/nowhere").await),
        ("wrong method", app.admin_post("/api/stats").await),
        ("document", app.get("/api/openapi.json").await),
    ];
    for (what, response) in answers {
        assert_eq!(
            response.headers().get("cache-control").map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{what}"
        );
        assert_eq!(
            response
                .headers()
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{what}"
        );
    }
    // Outside /api the answers are not about anyone's agreements.
    let health = app.get("/healthz").await;
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    assert!(health.headers().get("cache-control").is_none());
}

/// The worker claims queue rows and then updates their events; a replay that
/// locked the event first and then waited for its queue row deadlocked with
/// it (PostgreSQL broke the cycle by failing one side: a 503).
#[tokio::test]
async fn back_to_back_replays_while_the_worker_runs_all_succeed() {
    let app = spawn_app_with(&[
        ("SIGNHOOK_WORKER_CONCURRENCY", "2"),
        ("SIGNHOOK_WORKER_POLL_INTERVAL_MS", "10"),
    ])
    .await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let body = adobe_event(
            &format!("rb-{i}"),
            &format!("replay-{}", i % 3),
            "AGREEMENT_CREATED",
            Some("OUT_FOR_SIGNATURE"),
            "2026-11-20T09:00:00Z",
        );
        assert_eq!(app.post_adobe(&body).await.status(), 200);
        ids.push(app.event_db_id("adobe-sign", &format!("rb-{i}")).await);
    }
    let mut statuses = Vec::new();
    for _round in 0..6 {
        let answers = futures::future::join_all(ids.iter().map(|id| app.replay(*id))).await;
        statuses.extend(answers.iter().map(|response| response.status().as_u16()));
    }
    let refused: Vec<_> = statuses.iter().filter(|status| **status != 202).collect();
    assert!(
        refused.is_empty(),
        "{} of {} replays refused: {refused:?}",
        refused.len(),
        statuses.len()
    );
    app.wait_idle().await;
    assert_eq!(app.stats().await["events"]["processed"], 10, "each event counted once");
}
