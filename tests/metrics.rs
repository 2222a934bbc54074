//! `/metrics`: Prometheus text with the names the README documents.

mod common;

use common::*;

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

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
    assert_eq!(app.post_adobe_raw("not json").await.status(), 400);
    assert_eq!(
        app.post("/webhooks/fusesign", &[("Fuse-Signature", "wrong")], "{}")
            .await
            .status(),
        401
    );
    app.wait_idle().await;

    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();

    let requests = |provider: &str, outcome: &str| {
        sample(
            &text,
            &format!("signhook_webhook_requests_total{{provider=\"{provider}\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(requests("adobe-sign", "accepted"), Some(1.0), "{text}");
    assert_eq!(requests("adobe-sign", "duplicate"), Some(1.0));
    assert_eq!(requests("adobe-sign", "rejected_auth"), Some(1.0));
    assert_eq!(requests("adobe-sign", "invalid"), Some(1.0));
    assert_eq!(requests("fusesign", "rejected_auth"), Some(1.0));
    assert_eq!(
        sample(&text, "signhook_ack_duration_seconds_count{provider=\"adobe-sign\"}"),
        Some(4.0)
    );
    assert_eq!(sample(&text, "signhook_events{state=\"processed\"}"), Some(1.0));
    assert_eq!(sample(&text, "signhook_events{state=\"dead\"}"), Some(0.0));
    assert_eq!(sample(&text, "signhook_oldest_pending_event_age_seconds"), Some(0.0));
    assert_eq!(sample(&text, "signhook_events_applied_total"), Some(1.0));
    assert!(
        sample(
            &text,
            "signhook_last_webhook_timestamp_seconds{provider=\"adobe-sign\"}"
        )
        .unwrap()
            > 1.7e9
    );
    assert!(text.contains("# HELP signhook_webhook_requests_total"));
}
