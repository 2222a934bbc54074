//! The worker's failure handling, batches and readiness. (Graceful shutdown
//! on SIGTERM: tests/process/faults.rs.)

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

/// Makes applying any event of agreement `poison` fail inside PostgreSQL,
/// the way a real database-side failure would.
async fn poison_agreement(app: &TestApp) {
    for statement in [
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'injected failure for %', NEW.agreement_id; END $$",
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON agreement_history
         FOR EACH ROW WHEN (NEW.agreement_id = 'poison') EXECUTE FUNCTION refuse_poison()",
    ] {
        sqlx::query(statement).execute(&app.db).await.unwrap();
    }
}

#[tokio::test]
async fn failing_event_is_retried_then_dead_without_blocking_others_and_can_be_replayed() {
    let app = spawn_app_with(&[
        ("SIGNHOOK_WORKER_MAX_ATTEMPTS", "3"),
        ("SIGNHOOK_WORKER_RETRY_BASE_MS", "50"),
    ])
    .await;
    poison_agreement(&app).await;

    let poison = adobe_event(
        "p-1",
        "poison",
        "AGREEMENT_WORKFLOW_COMPLETED",
        Some("SIGNED"),
        "2026-11-20T09:00:00Z",
    );
    let healthy = adobe_event(
        "h-1",
        "healthy",
        "AGREEMENT_WORKFLOW_COMPLETED",
        Some("SIGNED"),
        "2026-11-20T09:00:00Z",
    );
    assert_eq!(
        app.post_adobe(&poison).await.status(),
        200,
        "acknowledged: it is durable"
    );
    assert_eq!(app.post_adobe(&healthy).await.status(), 200);

    app.wait_until("the poison event to die", || async {
        app.event_state("adobe-sign", "p-1").await.0 == "dead"
    })
    .await;
    let (_, attempts, error) = app.event_state("adobe-sign", "p-1").await;
    assert_eq!(attempts, 3);
    assert!(error.unwrap().contains("injected failure for poison"));
    assert_eq!(app.get_agreement("adobe-sign", "healthy").await["status"], "completed");
    let stats = app.stats().await;
    assert_eq!(
        (&stats["events"]["dead"], &stats["events"]["processed"]),
        (&serde_json::json!(1), &serde_json::json!(1)),
        "{stats}"
    );
    // An agreement's events are listed whether they wait (here: dead) or
    // were applied (below), with or without the provider named.
    let of_poison = |query: &'static str| {
        let app = &app;
        async move {
            let page = app.list_events(query).await;
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["event_id"].as_str().unwrap().to_owned(),
                        e["state"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let waiting = vec![("p-1".to_owned(), "dead".to_owned())];
    assert_eq!(of_poison("agreement_id=poison").await, waiting);
    assert_eq!(of_poison("agreement_id=poison&provider=adobe-sign").await, waiting);
    let dead = app.list_events("state=dead").await;
    assert_eq!(dead["events"][0]["event_id"], "p-1");
    assert!(dead["events"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("injected failure"));

    sqlx::query("DROP TRIGGER refuse_poison ON agreement_history")
        .execute(&app.db)
        .await
        .unwrap();
    let id = dead["events"][0]["id"].as_i64().unwrap();
    assert_eq!(app.replay(id).await.status(), 202);
    app.wait_until("the replayed event to apply", || async {
        app.event_state("adobe-sign", "p-1").await.0 == "processed"
    })
    .await;
    assert_eq!(app.get_agreement("adobe-sign", "poison").await["status"], "completed");
    let applied = vec![("p-1".to_owned(), "processed".to_owned())];
    assert_eq!(of_poison("agreement_id=poison").await, applied);
    assert_eq!(of_poison("agreement_id=poison&state=dead").await, vec![]);
    assert_eq!(
        app.stats().await["events"],
        serde_json::json!({ "pending": 0, "processing": 0, "processed": 2, "failed": 0, "dead": 0 })
    );
}

#[tokio::test]
async fn readiness_reports_database_and_worker() {
    let app = spawn_app().await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
    assert_eq!(app.get("/healthz").await.status(), 200);
}

/// Stores the three events of agreement `budget` through a receive-only app
/// (nothing applied yet) and returns it.
async fn store_budget_events() -> (TestApp, [&'static str; 3]) {
    let receiver = spawn_app_with(&[("SIGNHOOK_WORKER_CONCURRENCY", "0")]).await;
    let steps = [
        (
            "b-1",
            "AGREEMENT_CREATED",
            Some("OUT_FOR_SIGNATURE"),
            "2026-11-20T09:00:00Z",
        ),
        (
            "b-2",
            "AGREEMENT_ACTION_COMPLETED",
            Some("OUT_FOR_SIGNATURE"),
            "2026-11-20T09:01:00Z",
        ),
        (
            "b-3",
            "AGREEMENT_WORKFLOW_COMPLETED",
            Some("SIGNED"),
            "2026-11-20T09:02:00Z",
        ),
    ];
    for (id, event, status, date) in steps {
        let response = receiver
            .post_adobe(&adobe_event(id, "budget", event, status, date))
            .await;
        assert_eq!(response.status(), 200);
    }
    (receiver, steps.map(|(id, ..)| id))
}

async fn assert_budget_applied(app: &TestApp, ids: [&str; 3]) {
    app.wait_idle().await;
    let agreement = app.get_agreement("adobe-sign", "budget").await;
    assert_eq!(agreement["status"], "completed", "{agreement:#}");
    assert_eq!(app.history_count("adobe-sign", "budget").await, 3);
    for id in ids {
        let (state, attempts, _) = app.event_state("adobe-sign", id).await;
        assert_eq!((state.as_str(), attempts), ("processed", 1), "{id}");
    }
}

/// Applies the stored `budget` events (see [`store_budget_events`]) after
/// `tamper` ran on them, with a batch byte budget of 1 byte; returns how many
/// batches that took. A batch is one transaction, and history rows take
/// their `applied_at` from the transaction's start (`now()`), so the
/// batches are the distinct `applied_at`s.
async fn apply_budget_events_after(tamper: &str) -> i64 {
    let (receiver, ids) = store_budget_events().await;
    sqlx::query(tamper).execute(&receiver.db).await.unwrap();
    let app = spawn_app_on(&receiver.db_name, &[("SIGNHOOK_WORKER_BATCH_MAX_BYTES", "1")]).await;
    assert_budget_applied(&app, ids).await;
    app.count("SELECT count(DISTINCT applied_at) FROM agreement_history")
        .await
}

#[tokio::test]
async fn a_batch_byte_budget_smaller_than_one_body_still_applies_every_event_in_order() {
    // Bodies are loaded for events not parsed on receipt (stored by an
    // earlier version, or replayed). Each batch may load only 1 byte of
    // bodies, so each holds exactly one event: without the budget the
    // worker would take all three at once.
    let batches = apply_budget_events_after("UPDATE events SET parsed = false").await;
    assert_eq!(batches, 3, "one batch per event");
}

#[tokio::test]
async fn events_parsed_on_receipt_are_applied_without_their_body() {
    // The worker applies what the receiving replica parsed: a body it can no
    // longer parse changes nothing, and the byte budget does not split them.
    let batches = apply_budget_events_after("UPDATE events SET body = 'not json'").await;
    assert_eq!(batches, 1, "one batch for all three");
}

#[tokio::test]
async fn the_worker_vacuums_the_queue_table_every_n_applied_events() {
    let app = spawn_app_with(&[("SIGNHOOK_WORKER_QUEUE_VACUUM_EVERY", "5")]).await;
    let vacuums = || async {
        sqlx::query_scalar::<_, i64>("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'event_queue'")
            .fetch_one(&app.db)
            .await
            .unwrap()
    };
    for i in 0..4 {
        let body = adobe_event(
            &format!("v-{i}"),
            "vac",
            "AGREEMENT_CREATED",
            None,
            "2026-11-20T09:00:00Z",
        );
        app.deliver_adobe(&body).await;
    }
    // (A window, not a wait: what is checked is that no vacuum comes.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(vacuums().await, 0, "not before 5 events");
    let body = adobe_event("v-4", "vac", "AGREEMENT_CREATED", None, "2026-11-20T09:00:00Z");
    app.deliver_adobe(&body).await;
    app.wait_until("the queue table to be vacuumed", || async { vacuums().await >= 1 })
        .await;
}

/// The net behind storable values: when the database still refuses one
/// event's value in a group commit (here a trigger raising a data exception,
/// SQLSTATE 22000), the writer stores that batch's rows one by one. The
/// refused event is kept quarantined — dead with the database's reason,
/// answered 200 — and every other request is stored and applied. Once the
/// cause is gone, a replay parses the kept body again and applies it.
#[tokio::test]
async fn a_value_the_database_refuses_fails_only_its_own_event_and_is_kept_for_replay() {
    let app = spawn_app_with(&[("SIGNHOOK_INGEST_WRITERS", "1")]).await;
    for statement in [
        "CREATE FUNCTION refuse_value() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.event_id = 'refused' THEN
                 RAISE EXCEPTION 'injected refusal of %', NEW.event_id USING ERRCODE = '22000';
             END IF;
             RETURN NEW;
         END $$",
        "CREATE TRIGGER refuse_value BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_value()",
    ] {
        sqlx::query(statement).execute(&app.db).await.unwrap();
    }
    let date = "2026-11-20T09:00:00Z";
    let refused = adobe_event(
        "refused",
        "agr-refused",
        "AGREEMENT_WORKFLOW_COMPLETED",
        Some("SIGNED"),
        date,
    );
    let events: Vec<Value> = std::iter::once(refused.clone())
        .chain((0..30).map(|i| adobe_event(&format!("g-{i}"), &format!("agr-{i}"), "AGREEMENT_CREATED", None, date)))
        .collect();
    let statuses = futures::future::join_all(events.iter().map(|event| app.post_adobe(event))).await;
    for (event, response) in events.iter().zip(statuses) {
        assert_eq!(response.status(), 200, "{}", event["webhookNotificationId"]);
    }
    app.wait_idle().await;
    for i in 0..30 {
        assert_eq!(
            app.get_agreement("adobe-sign", &format!("agr-{i}")).await["status"],
            "in_progress"
        );
    }
    let dead = app.dead_events("adobe-sign").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]
            .1
            .as_deref()
            .unwrap_or_default()
            .contains("injected refusal of refused"),
        "{dead:?}"
    );
    // A retry of the same delivery is a duplicate of the kept one.
    assert_eq!(app.post_adobe(&refused).await.status(), 200);
    assert_eq!(app.event_count("adobe-sign").await, 31);

    sqlx::query("DROP TRIGGER refuse_value ON events")
        .execute(&app.db)
        .await
        .unwrap();
    let id: i64 = sqlx::query_scalar("SELECT id FROM events WHERE state = 'dead'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(app.replay(id).await.status(), 202);
    let agreement = app
        .wait_for_agreement_status("adobe-sign", "agr-refused", "completed")
        .await;
    assert_eq!(
        agreement["history"][0]["event_id"], "refused",
        "parsed again from the kept body"
    );
}

/// An event whose value the database refuses when it is applied (a data
/// error, not an outage) fails alone and is dead at once with the reason:
/// retrying the same value cannot help, and its batch's other events apply.
#[tokio::test]
async fn an_event_the_database_refuses_to_apply_is_dead_at_once_and_its_batch_applies() {
    let app = spawn_app_with(&[("SIGNHOOK_WORKER_MAX_ATTEMPTS", "5")]).await;
    for statement in [
        "CREATE FUNCTION refuse_history() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'injected data error for %', NEW.agreement_id USING ERRCODE = '22000'; END $$",
        "CREATE TRIGGER refuse_history BEFORE INSERT ON agreement_history
         FOR EACH ROW WHEN (NEW.agreement_id = 'refused') EXECUTE FUNCTION refuse_history()",
    ] {
        sqlx::query(statement).execute(&app.db).await.unwrap();
    }
    let date = "2026-11-20T09:00:00Z";
    let mut events = vec![adobe_event("r-1", "refused", "AGREEMENT_CREATED", None, date)];
    events.extend((0..20).map(|i| {
        adobe_event(
            &format!("b-{i}"),
            &format!("batch-{i}"),
            "AGREEMENT_CREATED",
            None,
            date,
        )
    }));
    for response in futures::future::join_all(events.iter().map(|event| app.post_adobe(event))).await {
        assert_eq!(response.status(), 200);
    }
    app.wait_until("the refused event to die", || async {
        app.event_state("adobe-sign", "r-1").await.0 == "dead"
    })
    .await;
    let (_, attempts, error) = app.event_state("adobe-sign", "r-1").await;
    assert_eq!(attempts, 1, "dead at once");
    assert!(error.unwrap_or_default().contains("injected data error for refused"));
    app.wait_idle().await;
    for i in 0..20 {
        assert_eq!(
            app.get_agreement("adobe-sign", &format!("batch-{i}")).await["status"],
            "in_progress"
        );
    }
}
