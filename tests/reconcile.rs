//! The reconciler: stale open agreements are polled from the provider's API
//! (a fake the test starts) and brought up to date; finished ones are left
//! alone; replicas never poll one agreement at once; a silent provider's
//! agreements are polled at once.

mod common;

use std::time::Duration;

use common::{
    fake_provider::{FakeProvider, ADOBE_API_TOKEN},
    *,
};

const AGREEMENT_PATH: &str = "/api/rest/v6/agreements/";

/// Adobe Sign with API credentials, a reconciler ticking every 100 ms, and
/// agreements stale after an hour (the fixtures' events are days old).
fn reconciling<'a>(fake: &'a FakeProvider, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("SIGNHOOK_ADOBE_SIGN_API_BASE", fake.base_url.as_str()),
        ("SIGNHOOK_ADOBE_SIGN_API_TOKEN", ADOBE_API_TOKEN),
        ("SIGNHOOK_PROVIDER_API_MAX_ATTEMPTS", "1"),
        ("SIGNHOOK_RECONCILE_INTERVAL", "100ms"),
        ("SIGNHOOK_RECONCILE_STALE_AFTER", "1h"),
        ("SIGNHOOK_RECONCILE_MAX_PER_MINUTE", "6000"),
    ];
    env.extend_from_slice(extra);
    env
}

async fn post_created(app: &TestApp, notification: &str, agreement_id: &str, date: &str) {
    let body = adobe_event(
        notification,
        agreement_id,
        "AGREEMENT_CREATED",
        Some("OUT_FOR_SIGNATURE"),
        date,
    );
    app.deliver_adobe(&body).await;
}

#[tokio::test]
async fn a_stale_open_agreement_is_polled_and_completed() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-1", "Mutual NDA", "SIGNED");
    let app = spawn_app_with(&reconciling(&fake, &[])).await;

    // The completion webhook never came; the last event is days old.
    post_created(&app, "n-1", "agr-1", "2026-11-20T09:00:00Z").await;

    app.wait_until("the reconciler to complete the agreement", || async {
        app.agreement("adobe-sign", "agr-1").await["status"] == "completed"
    })
    .await;
    let view = app.agreement("adobe-sign", "agr-1").await;
    let history = view["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{view}");
    assert_eq!(history[1]["source"], "poll");
    assert_eq!(view["provider_status"], "SIGNED");
    assert!(view["last_polled_at"].is_string(), "{view}");
    let metrics = app.metrics().await;
    assert_eq!(
        metric_sample(
            &metrics,
            r#"signhook_polls_total{provider="adobe-sign",outcome="changed"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_finished_agreement_is_never_polled() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-done", "x", "SIGNED");
    fake.set_agreement("agr-open", "y", "OUT_FOR_SIGNATURE");
    let app = spawn_app_with(&reconciling(&fake, &[])).await;
    let completed = adobe_event(
        "n-done",
        "agr-done",
        "AGREEMENT_WORKFLOW_COMPLETED",
        Some("SIGNED"),
        "2026-11-20T09:00:00Z",
    );
    app.deliver_adobe(&completed).await;
    // Created after the finished one: a claim that sees it saw the other too.
    post_created(&app, "n-open", "agr-open", "2026-11-20T09:00:00Z").await;
    app.wait_idle().await;

    app.wait_until("the open agreement to be polled", || async {
        fake.request_count(&format!("{AGREEMENT_PATH}agr-open")) > 0
    })
    .await;
    assert_eq!(fake.request_count(&format!("{AGREEMENT_PATH}agr-done")), 0);
    assert_eq!(app.agreement("adobe-sign", "agr-done").await["status"], "completed");
}

#[tokio::test]
async fn polling_an_unchanged_agreement_adds_no_history() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-2", "Mutual NDA", "OUT_FOR_SIGNATURE");
    // Stale after a second: polled again and again during the test.
    let app = spawn_app_with(&reconciling(&fake, &[("SIGNHOOK_RECONCILE_STALE_AFTER", "1s")])).await;
    post_created(&app, "n-2", "agr-2", "2026-11-20T09:00:00Z").await;

    app.wait_until("three polls", || async {
        fake.request_count(&format!("{AGREEMENT_PATH}agr-2")) >= 3
    })
    .await;
    let view = app.agreement("adobe-sign", "agr-2").await;
    assert_eq!(view["status"], "in_progress");
    assert_eq!(view["history"].as_array().unwrap().len(), 1, "{view}");
    let unchanged = metric_sample(
        &app.metrics().await,
        r#"signhook_polls_total{provider="adobe-sign",outcome="unchanged"}"#,
    );
    assert!(unchanged.is_some_and(|n| n >= 3.0), "{unchanged:?}");
}

#[tokio::test]
async fn failed_and_unknown_polls_are_backed_off_and_counted() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-ok", "x", "OUT_FOR_SIGNATURE");
    let app = spawn_app_with(&reconciling(&fake, &[("SIGNHOOK_RECONCILE_FAST_INTERVAL", "1h")])).await;
    fake.fail_next(1, common::fake_provider::Failure::ServerError);
    post_created(&app, "n-f", "agr-ok", "2026-11-20T09:00:00Z").await;
    app.wait_until("the first poll", || async {
        app.agreement("adobe-sign", "agr-ok").await["last_polled_at"].is_string()
    })
    .await;
    post_created(&app, "n-g", "agr-gone", "2026-11-20T09:00:00Z").await;
    app.wait_until("the unknown agreement to be polled", || async {
        app.agreement("adobe-sign", "agr-gone").await["last_polled_at"].is_string()
    })
    .await;
    let failed = app.agreement("adobe-sign", "agr-ok").await;
    assert_eq!(failed["poll_failures"], 1, "{failed}");
    assert!(failed["last_poll_error"].as_str().unwrap().contains("500"), "{failed}");
    assert!(failed["next_poll_at"].is_string(), "backed off: {failed}");
    let gone = app.agreement("adobe-sign", "agr-gone").await;
    assert!(gone["next_poll_at"].is_string(), "backed off: {gone}");
    let metrics = app.metrics().await;
    for outcome in ["failed", "not_found"] {
        let series = format!(r#"signhook_polls_total{{provider="adobe-sign",outcome="{outcome}"}}"#);
        assert_eq!(metric_sample(&metrics, &series), Some(1.0), "{series}\n{metrics}");
    }
    assert_eq!(app.log_count("poll failed; backing off"), 1, "{}", app.logs());
    assert!(!app.logs().contains(ADOBE_API_TOKEN));
}

#[tokio::test]
async fn replicas_never_poll_one_agreement_at_once() {
    const AGREEMENTS: usize = 24;
    let fake = FakeProvider::start().await;
    fake.set_delay(Duration::from_millis(150));
    for i in 0..AGREEMENTS {
        fake.set_agreement(&format!("r-{i}"), "x", "OUT_FOR_SIGNATURE");
    }
    let env = reconciling(&fake, &[("SIGNHOOK_RECONCILE_INTERVAL", "50ms")]);
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
            let polled: i64 = sqlx::query_scalar("SELECT count(*) FROM agreements WHERE last_polled_at IS NOT NULL")
                .fetch_one(&first.db)
                .await
                .unwrap();
            polled == AGREEMENTS as i64
        })
        .await;
    // A few more ticks of both replicas: nothing is stale any more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..AGREEMENTS {
        let path = format!("{AGREEMENT_PATH}r-{i}");
        assert_eq!(fake.request_count(&path), 1, "{path} polled once per stale period");
        assert_eq!(fake.max_in_flight(&path), 1, "{path}");
    }
    let polled_by = |app: &TestApp| app.log_count("agreement polled");
    assert_eq!(polled_by(&first) + polled_by(&second), AGREEMENTS);
}

#[tokio::test]
async fn a_silent_provider_has_its_open_agreements_polled_at_once() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-s", "Mutual NDA", "SIGNED");
    fake.set_agreement("agr-open", "Lease", "OUT_FOR_SIGNATURE");
    let app = spawn_app_with(&reconciling(&fake, &[("SIGNHOOK_SILENCE_AFTER", "2s")])).await;
    // Fresh events: not stale for an hour.
    let now = chrono::Utc::now().to_rfc3339();
    post_created(&app, "n-s", "agr-s", &now).await;
    post_created(&app, "n-o", "agr-open", &now).await;
    app.wait_idle().await;
    let silent = r#"signhook_provider_silent{provider="adobe-sign"}"#;
    assert_eq!(metric_sample(&app.metrics().await, silent), Some(0.0));
    assert!(metric_sample(
        &app.metrics().await,
        r#"signhook_last_webhook_timestamp_seconds{provider="adobe-sign"}"#
    )
    .is_some());

    app.wait_until("the silence to be noticed", || async {
        metric_sample(&app.metrics().await, silent) == Some(1.0)
    })
    .await;
    app.wait_until("the open agreement to be polled", || async {
        app.agreement("adobe-sign", "agr-s").await["status"] == "completed"
    })
    .await;
    let providers: serde_json::Value = app.admin_get("/api/providers").await.json().await.unwrap();
    assert_eq!(providers["providers"][0]["name"], "adobe-sign");
    assert_eq!(providers["providers"][0]["silent"], true, "{providers}");
    assert_eq!(
        app.log_count("provider has sent no webhook"),
        1,
        "one warning per silence"
    );

    app.wait_until("the other open agreement to be polled too", || async {
        app.agreement("adobe-sign", "agr-open").await["last_polled_at"].is_string()
    })
    .await;

    // The next webhook ends the silence (until the next one).
    let viewed = adobe_event("n-v", "agr-open", "AGREEMENT_EMAIL_VIEWED", None, &now);
    assert_eq!(app.post_adobe(&viewed).await.status(), 200);
    app.wait_until("the silence to end", || async {
        metric_sample(&app.metrics().await, silent) == Some(0.0)
    })
    .await;
}

#[tokio::test]
async fn every_metric_name_is_documented_in_the_readme() {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/telemetry.rs")).unwrap();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let names: Vec<&str> = source
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub const "))
        .filter_map(|line| line.split('"').nth(1))
        .collect();
    for expected in [
        "signhook_polls_total",
        "signhook_webhook_registrations_total",
        "signhook_provider_silent",
        "signhook_last_webhook_timestamp_seconds",
    ] {
        assert!(names.contains(&expected), "{expected} is declared in telemetry.rs");
    }
    for name in names {
        assert!(
            readme.contains(&format!("`{name}`")),
            "{name} is in the README's metrics table"
        );
    }
}
