//! `/metrics` values: Prometheus text with the names the README documents,
//! counting what one process did (the recorder is process-wide, so these
//! tests need a process of their own), and the log lines that go with them.

use serde_json::Value;

use crate::{
    common::{
        adobe_event,
        fake_provider::{Failure, FakeProvider, ADOBE_API_TOKEN},
    },
    helpers::*,
};

const PUBLIC_URL: &str = "https://hooks.example.com";

#[tokio::test]
async fn metrics_count_webhook_outcomes_and_the_queue() {
    let app = spawn_app().await;
    let body = adobe_event(
        "m-1",
        "a",
        "AGREEMENT_CREATED",
        Some("OUT_FOR_SIGNATURE"),
        "2026-11-20T09:00:00Z",
    );
    assert_eq!(app.post_adobe(&body).await.status(), 200);
    assert_eq!(app.post_adobe(&body).await.status(), 200);
    assert_eq!(
        app.post("/webhooks/adobe-sign", &[], body.to_string()).await.status(),
        401
    );
    // Authenticated junk is kept and acknowledged (quarantined).
    assert_eq!(app.post_adobe_raw("not json").await.status(), 200);
    assert_eq!(app.post_fusesign_with(Some("wrong"), b"{}").await.status(), 401);
    // BoldSign's URL check (official .NET SDK, examples/WebhookExampleController.cs).
    let verification = br#"{"event": {"id": "v-1", "eventType": "Verification"}, "data": null}"#;
    let response = app
        .post(
            "/webhooks/boldsign",
            &[("X-BoldSign-Event", "Verification")],
            verification.to_vec(),
        )
        .await;
    assert_eq!(response.status(), 200);
    app.wait_until_processed(1).await;

    let text = app.metrics().await;
    let requests = |provider: &str, outcome: &str| {
        metric_sample(
            &text,
            &format!("signhook_webhook_requests_total{{provider=\"{provider}\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(requests("adobe-sign", "accepted"), Some(1.0), "{text}");
    assert_eq!(requests("adobe-sign", "duplicate"), Some(1.0));
    assert_eq!(requests("adobe-sign", "rejected_auth"), Some(1.0));
    assert_eq!(requests("adobe-sign", "quarantined"), Some(1.0));
    assert_eq!(requests("adobe-sign", "invalid"), Some(0.0));
    assert_eq!(requests("fusesign", "rejected_auth"), Some(1.0));
    assert_eq!(requests("boldsign", "verification"), Some(1.0));
    assert_eq!(
        metric_sample(&text, "signhook_ack_duration_seconds_count{provider=\"adobe-sign\"}"),
        Some(4.0)
    );
    assert_eq!(metric_sample(&text, "signhook_events{state=\"processed\"}"), Some(1.0));
    assert_eq!(
        metric_sample(&text, "signhook_events{state=\"dead\"}"),
        Some(1.0),
        "the quarantined body"
    );
    assert_eq!(
        metric_sample(&text, "signhook_oldest_pending_event_age_seconds"),
        Some(0.0)
    );
    assert_eq!(metric_sample(&text, "signhook_events_applied_total"), Some(1.0));
    assert!(
        metric_sample(
            &text,
            "signhook_last_webhook_timestamp_seconds{provider=\"adobe-sign\"}"
        )
        .unwrap()
            > 1.7e9
    );
    assert!(text.contains("# HELP signhook_webhook_requests_total"));
}

/// Every provider's request counters (each outcome) and silence gauge exist
/// at zero in the very first scrape, so `rate()` and `absent()` alerts work
/// on a replica that has received nothing yet.
#[tokio::test]
async fn every_provider_series_exists_from_the_first_scrape() {
    let app = spawn_app().await;
    let text = app.metrics().await;
    for provider in ["adobe-sign", "boldsign", "fusesign"] {
        for outcome in [
            "accepted",
            "duplicate",
            "quarantined",
            "verification",
            "rejected_auth",
            "invalid",
            "too_large",
            "overloaded",
            "unavailable",
        ] {
            let series = format!("signhook_webhook_requests_total{{provider=\"{provider}\",outcome=\"{outcome}\"}}");
            assert_eq!(metric_sample(&text, &series), Some(0.0), "{series}\n{text}");
        }
        let silent = format!("signhook_provider_silent{{provider=\"{provider}\"}}");
        assert_eq!(metric_sample(&text, &silent), Some(0.0), "{silent}");
    }
}

/// Adobe Sign with API credentials, a reconciler ticking every 100 ms,
/// agreements stale after an hour (the events below are days old) and
/// failures retried after an hour, so each agreement is polled exactly once.
fn reconciling<'a>(fake: &'a FakeProvider, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("SIGNHOOK_ADOBE_SIGN_API_BASE", fake.base_url.as_str()),
        ("SIGNHOOK_ADOBE_SIGN_API_TOKEN", ADOBE_API_TOKEN),
        ("SIGNHOOK_PROVIDER_API_MAX_ATTEMPTS", "1"),
        ("SIGNHOOK_RECONCILE_INTERVAL", "100ms"),
        ("SIGNHOOK_RECONCILE_STALE_AFTER", "1h"),
        ("SIGNHOOK_RECONCILE_FAST_INTERVAL", "1h"),
        ("SIGNHOOK_RECONCILE_MAX_PER_MINUTE", "6000"),
        // Scheduling mechanics, not the provider's limits (tested on their own).
        ("SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL", "0"),
        ("SIGNHOOK_ADOBE_SIGN_API_REQUESTS_PER_HOUR", "1000000"),
    ];
    env.extend_from_slice(extra);
    env
}

async fn post_created(app: &TestApp, agreement_id: &str) {
    let body = adobe_event(
        &format!("n-{agreement_id}"),
        agreement_id,
        "AGREEMENT_CREATED",
        Some("OUT_FOR_SIGNATURE"),
        "2026-11-20T09:00:00Z",
    );
    app.deliver_adobe(&body).await;
}

async fn wait_polled(app: &TestApp, agreement_id: &str) {
    app.wait_until(&format!("{agreement_id} to be polled"), || async {
        app.get_agreement("adobe-sign", agreement_id).await["last_polled_at"].is_string()
    })
    .await;
}

#[tokio::test]
async fn reconciler_polls_are_counted_by_outcome_and_a_failure_is_logged_once_without_secrets() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-fail", "x", "OUT_FOR_SIGNATURE");
    fake.set_agreement("agr-changed", "x", "SIGNED");
    fake.set_agreement("agr-same", "x", "OUT_FOR_SIGNATURE");
    let app = spawn_app_with(&reconciling(&fake, &[])).await;
    // The first poll (agr-fail's) gets a 500.
    fake.fail_next(1, Failure::ServerError);
    post_created(&app, "agr-fail").await;
    wait_polled(&app, "agr-fail").await;
    for agreement in ["agr-changed", "agr-same", "agr-gone"] {
        post_created(&app, agreement).await;
    }
    for agreement in ["agr-changed", "agr-same", "agr-gone"] {
        wait_polled(&app, agreement).await;
    }

    let metrics = app.metrics().await;
    for outcome in ["failed", "changed", "unchanged", "not_found"] {
        let series = format!(r#"signhook_polls_total{{provider="adobe-sign",outcome="{outcome}"}}"#);
        assert_eq!(metric_sample(&metrics, &series), Some(1.0), "{series}\n{metrics}");
    }
    assert_eq!(app.log_count("poll failed; backing off"), 1, "{}", app.logs());
    assert_eq!(app.log_count("agreement polled"), 2, "changed and unchanged");
    assert!(!app.logs().contains(ADOBE_API_TOKEN));
}

/// Adobe's 429 with a `Retry-After` of an hour: the account is paused (the
/// gauge, from the database), the answer counted, the poll deferred rather
/// than failed, one WARN, and nothing more is sent.
#[tokio::test]
async fn a_throttled_account_is_a_gauge_a_count_and_one_warning() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-t", "x", "OUT_FOR_SIGNATURE");
    fake.set_agreement("agr-u", "x", "OUT_FOR_SIGNATURE");
    fake.fail_next(1, Failure::TooManyRequests { retry_after_secs: 3600 });
    let app = spawn_app_with(&reconciling(&fake, &[("SIGNHOOK_RECONCILE_CONCURRENCY", "1")])).await;
    let paused = r#"signhook_provider_api_paused{provider="adobe-sign"}"#;
    assert_eq!(
        metric_sample(&app.metrics().await, paused),
        Some(0.0),
        "present from the start"
    );
    post_created(&app, "agr-t").await;
    post_created(&app, "agr-u").await;
    let deferred_note = |view: Value| {
        view["last_poll_error"]
            .as_str()
            .is_some_and(|e| e.contains("throttled"))
    };
    app.wait_until("the throttled poll to be deferred", || async {
        deferred_note(app.get_agreement("adobe-sign", "agr-t").await)
            || deferred_note(app.get_agreement("adobe-sign", "agr-u").await)
    })
    .await;

    let metrics = app.metrics().await;
    assert_eq!(metric_sample(&metrics, paused), Some(1.0), "{metrics}");
    let throttled = r#"signhook_provider_api_throttled_total{provider="adobe-sign"}"#;
    assert_eq!(metric_sample(&metrics, throttled), Some(1.0), "{metrics}");
    let deferred = r#"signhook_polls_total{provider="adobe-sign",outcome="deferred"}"#;
    assert_eq!(metric_sample(&metrics, deferred), Some(1.0), "{metrics}");
    assert_eq!(
        app.log_count("the provider throttled its API account"),
        1,
        "{}",
        app.logs()
    );
    for id in ["agr-t", "agr-u"] {
        let view = app.get_agreement("adobe-sign", id).await;
        assert_eq!(view["poll_failures"], 0, "not a failure: {view}");
        assert_eq!(view["last_polled_at"], Value::Null, "neither was polled: {view}");
    }
    assert_eq!(
        fake.api_requests().len(),
        1,
        "the other agreement waits out the pause too"
    );
}

/// Adobe's `PERMISSION_DENIED` on every poll: counted `failed` each time,
/// but one WARN naming the scope problem, not one per poll.
#[tokio::test]
async fn a_permission_failure_is_logged_once_however_often_it_repeats() {
    let fake = FakeProvider::start().await;
    fake.deny_agreement("agr-p", 403);
    let app = spawn_app_with(&reconciling(&fake, &[("SIGNHOOK_RECONCILE_FAST_INTERVAL", "1s")])).await;
    post_created(&app, "agr-p").await;
    app.wait_until("three failed polls", || async {
        app.get_agreement("adobe-sign", "agr-p").await["poll_failures"]
            .as_i64()
            .is_some_and(|n| n >= 3)
    })
    .await;

    let warnings = app.log_entries("poll failed; backing off");
    assert_eq!(warnings.len(), 1, "{}", app.logs());
    let error = warnings[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("403 PERMISSION_DENIED"), "{}", warnings[0]);
    assert!(error.contains("agreement_read:account"), "{}", warnings[0]);
    let failed = r#"signhook_polls_total{provider="adobe-sign",outcome="failed"}"#;
    assert!(metric_sample(&app.metrics().await, failed).is_some_and(|n| n >= 3.0));
}

#[tokio::test]
async fn webhook_registrations_are_counted_and_a_failure_is_logged_once() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-f", "Mutual NDA", "OUT_FOR_SIGNATURE");
    fake.fail_webhook_registrations(1);
    let app = spawn_app_with(&reconciling(
        &fake,
        &[
            ("SIGNHOOK_PUBLIC_URL", PUBLIC_URL),
            ("SIGNHOOK_RECONCILE_FAST_INTERVAL", "1s"),
        ],
    ))
    .await;

    assert_eq!(app.watch("adobe-sign", "agr-f").await.status(), 502);
    app.wait_until("the reconciler to register the webhook", || async {
        app.get_agreement("adobe-sign", "agr-f").await["webhook_id"].is_string()
    })
    .await;
    assert_eq!(app.unwatch("adobe-sign", "agr-f").await.status(), 200);

    let metrics = app.metrics().await;
    for outcome in ["failed", "registered", "removed"] {
        let series = format!(r#"signhook_webhook_registrations_total{{provider="adobe-sign",outcome="{outcome}"}}"#);
        assert_eq!(metric_sample(&metrics, &series), Some(1.0), "{series}\n{metrics}");
    }
    assert_eq!(app.log_count("webhook registration failed"), 1, "{}", app.logs());
}

#[tokio::test]
async fn a_silence_is_published_as_a_gauge_and_warned_about_once() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-s", "Mutual NDA", "OUT_FOR_SIGNATURE");
    let app = spawn_app_with(&reconciling(&fake, &[("SIGNHOOK_SILENCE_AFTER", "2s")])).await;
    let now = chrono::Utc::now().to_rfc3339();
    let created = adobe_event("n-s", "agr-s", "AGREEMENT_CREATED", Some("OUT_FOR_SIGNATURE"), &now);
    app.deliver_adobe(&created).await;
    let silent = r#"signhook_provider_silent{provider="adobe-sign"}"#;
    let last_webhook = r#"signhook_last_webhook_timestamp_seconds{provider="adobe-sign"}"#;
    assert_eq!(metric_sample(&app.metrics().await, silent), Some(0.0));
    assert!(metric_sample(&app.metrics().await, last_webhook).is_some());

    app.wait_until("the silence to be noticed", || async {
        metric_sample(&app.metrics().await, silent) == Some(1.0)
    })
    .await;
    // Polled at once because of it.
    wait_polled(&app, "agr-s").await;
    assert_eq!(
        app.log_count("provider has sent no webhook"),
        1,
        "one warning per silence"
    );

    let viewed = adobe_event("n-v", "agr-s", "AGREEMENT_EMAIL_VIEWED", None, &now);
    assert_eq!(app.post_adobe(&viewed).await.status(), 200);
    app.wait_until("the silence to end", || async {
        metric_sample(&app.metrics().await, silent) == Some(0.0)
    })
    .await;
    let providers: Value = app.admin_get("/api/providers").await.json().await.unwrap();
    assert_eq!(providers["providers"][0]["silent"], false, "{providers}");
}

#[test]
fn every_metric_name_is_documented_in_the_readme() {
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

/// A client that disconnects after sending, while its event waits for the
/// database, does not take the record of it along: the event is committed,
/// counted (`outcome="accepted"`), recorded as provider activity and logged.
#[tokio::test]
async fn a_request_whose_client_left_is_still_committed_counted_and_logged() {
    use tokio::io::AsyncWriteExt;

    let app = spawn_app_with(&[("RUST_LOG", "info,sqlx=warn,tower_http::trace::on_request=debug")]).await;
    // Hold the insert so that the client is certainly gone before the answer.
    let mut blocker = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let body = adobe_event("gone-1", "agr-gone", "AGREEMENT_CREATED", None, "2026-11-20T09:00:00Z").to_string();
    let request = format!(
        "POST /webhooks/adobe-sign HTTP/1.1\r\nHost: x\r\nX-AdobeSign-ClientId: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        crate::common::ADOBE_CLIENT_ID,
        body.len()
    );
    let mut socket = tokio::net::TcpStream::connect(app.socket_addr()).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    app.wait_until("the request to be in flight", || async {
        app.log_count("started processing request") >= 1
    })
    .await;
    drop(socket);
    // hyper notices the closed connection and drops the request's handler;
    // give it a moment to do so before the database answers (no observable
    // signal exists for it: an answer written to a closed socket would pass
    // this test too, only less pointedly).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    blocker.rollback().await.unwrap();

    app.wait_until("the event to be counted and logged", || async {
        let text = app.metrics().await;
        metric_sample(
            &text,
            "signhook_webhook_requests_total{provider=\"adobe-sign\",outcome=\"accepted\"}",
        ) == Some(1.0)
            && app.log_count("the client had gone before the answer") == 1
    })
    .await;
    assert_eq!(app.event_count("adobe-sign").await, 1);
    app.wait_until("the activity to be recorded", || async {
        let text = app.metrics().await;
        metric_sample(
            &text,
            "signhook_last_webhook_timestamp_seconds{provider=\"adobe-sign\"}",
        )
        .is_some_and(|t| t > 1.7e9)
    })
    .await;
}

/// A forged final status (client ID alone) that the provider's API
/// contradicts: not applied, one WARN naming the event and what the
/// provider said, and `signhook_unconfirmed_events_total` counts it; a
/// confirmed one counts in `signhook_confirmed_events_total`.
#[tokio::test]
async fn an_unconfirmed_final_is_warned_about_and_counted() {
    let fake = FakeProvider::start().await;
    // Adobe's `GET /agreements/{id}`: still out for signature.
    fake.set_agreement("agr-forged", "Mutual NDA", "OUT_FOR_SIGNATURE");
    fake.set_agreement("agr-signed", "Mutual NDA", "SIGNED");
    let app = spawn_app_with(&reconciling(
        &fake,
        &[
            ("SIGNHOOK_CONFIRM_WEAK_FINALS", "true"),
            ("SIGNHOOK_RECONCILE_FAST_INTERVAL", "200ms"),
        ],
    ))
    .await;
    let now = chrono::Utc::now().to_rfc3339();
    let forged = adobe_event("n-forged", "agr-forged", "AGREEMENT_RECALLED", Some("CANCELLED"), &now);
    let genuine = adobe_event(
        "n-signed",
        "agr-signed",
        "AGREEMENT_WORKFLOW_COMPLETED",
        Some("SIGNED"),
        &now,
    );
    app.deliver_adobe(&forged).await;
    app.deliver_adobe(&genuine).await;

    app.wait_until("both finals to be resolved", || async {
        let text = app.metrics().await;
        metric_sample(&text, "signhook_unconfirmed_events_total{provider=\"adobe-sign\"}") == Some(1.0)
            && metric_sample(&text, "signhook_confirmed_events_total{provider=\"adobe-sign\"}") == Some(1.0)
    })
    .await;
    let warnings = app.log_entries(
        "a final status from a weakly authenticated webhook was not confirmed by the provider's API; \
         the provider's answer wins and the event is marked unconfirmed (forged, or sent for another account)",
    );
    assert_eq!(warnings.len(), 1, "{}", app.logs());
    let warning = &warnings[0];
    assert_eq!(warning["level"], "WARN");
    assert_eq!(
        (
            warning["event_id"].as_str(),
            warning["agreement_id"].as_str(),
            warning["claimed_status"].as_str(),
            warning["provider_says"].as_str(),
        ),
        (
            Some("n-forged"),
            Some("agr-forged"),
            Some("cancelled"),
            Some("OUT_FOR_SIGNATURE")
        ),
        "{warning}"
    );
    assert_eq!(
        app.get_agreement("adobe-sign", "agr-forged").await["status"],
        "in_progress"
    );
    assert_eq!(
        app.get_agreement("adobe-sign", "agr-signed").await["status"],
        "completed"
    );
}
