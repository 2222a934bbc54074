//! FuseSign: `Fuse-Signature`-authenticated bundle events end to end —
//! refusals, dedupe, each status and history-only events.

use serde_json::{json, Value};

use crate::helpers::*;

const BUNDLE: &str = "69d3400e-1af1-44c7-9315-b80dd6e1e798";
const TENANT: &str = FUSESIGN_TENANT;

#[tokio::test]
async fn authenticated_notification_is_stored_byte_for_byte_acknowledged_and_applied() {
    let app = spawn_app().await;
    let body = std::fs::read(FUSESIGN_FIXTURE).unwrap();

    let response = app.post_fusesign_raw(&body).await;

    assert_eq!(response.status(), 200);
    let ack: Value = response.json().await.unwrap();
    assert_eq!(
        (ack["received"].clone(), ack["duplicate"].clone()),
        (json!(true), json!(false))
    );
    let stored: StoredEvent = sqlx::query_as("SELECT * FROM events WHERE provider = 'fusesign'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored.body, body, "raw body kept byte for byte");
    assert_eq!(stored.event_id, "cc0c0745-7ba1-4134-b946-674d78c98fef");
    assert_eq!(stored.event_type, "CustomerDocumentSigned");
    assert_eq!(stored.tenant.as_deref(), Some(TENANT));
    assert_eq!(stored.resource_type.as_deref(), Some("bundle"));
    assert_eq!(stored.resource_id.as_deref(), Some(BUNDLE));
    // PostgreSQL keeps microseconds of FuseSign's seven fractional digits.
    assert_eq!(
        stored.occurred_at.unwrap().to_rfc3339(),
        "2020-09-14T03:54:07.284425+00:00"
    );

    app.wait_idle().await;
    let agreement = app.get_agreement("fusesign", BUNDLE).await;
    assert_eq!(agreement["resource_type"], "bundle");
    assert_eq!(agreement["status"], "in_progress");
    assert_eq!(agreement["provider_status"], "CustomerDocumentSigned");
}

#[tokio::test]
async fn full_lifecycle_created_viewed_signed_finalised_is_applied_in_order() {
    let app = spawn_app().await;
    let steps = [
        (
            "h-created",
            "BundleCreated",
            "2026-11-20T09:00:00.1234567Z",
            "in_progress",
        ),
        (
            "h-viewed",
            "CustomerBundleViewed",
            "2026-11-20T09:01:00Z",
            "in_progress",
        ),
        (
            "h-signed",
            "CustomerDocumentSigned",
            "2026-11-20T09:02:00Z",
            "in_progress",
        ),
        ("h-final", "BundleFinalised", "2026-11-20T09:03:00Z", "completed"),
    ];
    for (history_id, event_type, at, expected) in steps {
        assert_eq!(
            app.post_fusesign(&fuse_event(history_id, BUNDLE, event_type, at))
                .await
                .status(),
            200
        );
        app.wait_idle().await;
        let agreement = app.get_agreement("fusesign", BUNDLE).await;
        assert_eq!(agreement["status"], expected, "after {event_type}");
        assert_eq!(agreement["provider_status"], event_type, "after {event_type}");
    }
    let agreement = app.get_agreement("fusesign", BUNDLE).await;
    let history: Vec<&str> = agreement["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["h-created", "h-viewed", "h-signed", "h-final"]);
    assert_eq!(agreement["last_event_at"], "2026-11-20T09:03:00Z");
}

#[tokio::test]
async fn requests_without_an_accepted_signature_are_refused_and_not_stored() {
    let app = spawn_app().await;
    let body = std::fs::read(FUSESIGN_FIXTURE).unwrap();
    let prefix = &FUSESIGN_SIGNATURE[..FUSESIGN_SIGNATURE.len() - 1];
    let upper = FUSESIGN_SIGNATURE.to_uppercase();
    let longer = format!("{FUSESIGN_SIGNATURE}x");
    let cases = [
        ("no header", None, "missing_signature"),
        ("empty header", Some(""), "missing_signature"),
        ("wrong value", Some("someone-elses-signature"), "invalid_signature"),
        ("prefix of the value", Some(prefix), "invalid_signature"),
        ("value plus one character", Some(longer.as_str()), "invalid_signature"),
        ("different case", Some(upper.as_str()), "invalid_signature"),
    ];
    for (case, signature, code) in cases {
        let (status, error) = error_of(app.post_fusesign_with(signature, &body).await).await;
        assert_eq!(status, 401, "{case}: {error}");
        assert_eq!(error["error"]["code"], code, "{case}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.len() > 5 && !message.contains(FUSESIGN_SIGNATURE),
            "{case}: {message}"
        );
    }
    let response = app
        .post(
            "/webhooks/fusesign",
            &[
                ("Fuse-Signature", FUSESIGN_SIGNATURE),
                ("Fuse-Signature", "someone-elses-signature"),
            ],
            body.clone(),
        )
        .await;
    assert_eq!(response.status(), 401, "two signature headers");

    assert_eq!(app.event_count("fusesign").await, 0);
    assert_eq!(app.post_fusesign_raw(&body).await.status(), 200);
}

#[tokio::test]
async fn every_configured_signature_is_accepted_during_rotation() {
    let app = spawn_app_with(&[("SIGNHOOK_FUSESIGN_SIGNATURES", "old-fuse-value, new-fuse-value")]).await;
    for (history_id, signature, expected) in [
        ("h-old", "old-fuse-value", 200),
        ("h-new", "new-fuse-value", 200),
        ("h-default", FUSESIGN_SIGNATURE, 401),
    ] {
        let body = fuse_event(history_id, BUNDLE, "BundleCreated", "2026-11-20T09:00:00Z").to_string();
        assert_eq!(
            app.post_fusesign_with(Some(signature), body.as_bytes()).await.status(),
            expected,
            "{signature}"
        );
    }
    assert_eq!(app.event_count("fusesign").await, 2);
}

#[tokio::test]
async fn without_signatures_every_request_is_refused_naming_the_setting() {
    let app = spawn_app_with(&[("SIGNHOOK_FUSESIGN_SIGNATURES", "")]).await;
    let body = std::fs::read(FUSESIGN_FIXTURE).unwrap();

    let (status, error) = error_of(app.post_fusesign_raw(&body).await).await;

    assert_eq!(status, 401);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SIGNHOOK_FUSESIGN_SIGNATURES"),
        "{error}"
    );
    assert_eq!(app.event_count("fusesign").await, 0);
}

#[tokio::test]
async fn duplicate_notification_is_stored_and_applied_once() {
    let app = spawn_app().await;
    let body = std::fs::read(FUSESIGN_FIXTURE).unwrap();

    let first: Value = app.post_fusesign_raw(&body).await.json().await.unwrap();
    let second: Value = app.post_fusesign_raw(&body).await.json().await.unwrap();

    assert_eq!(
        (first["duplicate"].clone(), second["duplicate"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(first["id"], second["id"]);
    assert_eq!(app.event_count("fusesign").await, 1);
    app.wait_idle().await;
    assert_eq!(app.history_count("fusesign", BUNDLE).await, 1);
}

#[tokio::test]
async fn each_status_outcome_is_reached() {
    let app = spawn_app().await;
    // FuseSign has no expiry or draft event; these are all its outcomes.
    let cases = [
        ("b-finalised", "BundleFinalised", "completed"),
        ("b-rejected", "CustomerBundleRejected", "declined"),
        ("b-retracted", "BundleRetracted", "cancelled"),
        ("b-draft-deleted", "DraftBundleDeleted", "cancelled"),
        ("b-error", "BundleError", "failed"),
        ("b-created", "BundleCreated", "in_progress"),
        ("b-document", "DocumentUploaded", "in_progress"),
    ];
    for (bundle, event_type, _) in cases {
        let event = fuse_event(&format!("{bundle}-1"), bundle, event_type, "2026-11-20T09:00:00Z");
        assert_eq!(app.post_fusesign(&event).await.status(), 200, "{event_type}");
    }
    app.wait_idle().await;
    for (bundle, event_type, expected) in cases {
        assert_eq!(
            app.get_agreement("fusesign", bundle).await["status"],
            expected,
            "{event_type}"
        );
    }
}

#[tokio::test]
async fn archive_events_are_recorded_without_changing_the_status() {
    let app = spawn_app().await;
    let events = [
        ("h-final", "BundleFinalised", "2026-11-20T09:00:00Z"),
        ("h-closure", "BundleClosureRegistered", "2026-11-20T09:30:00Z"),
        ("h-warning", "BundleArchiveWarning", "2026-12-20T09:00:00Z"),
        ("h-archived", "BundleArchived", "2026-12-21T09:00:00Z"),
    ];
    for (history_id, event_type, at) in events {
        assert_eq!(
            app.post_fusesign(&fuse_event(history_id, BUNDLE, event_type, at))
                .await
                .status(),
            200
        );
    }
    app.wait_idle().await;

    let agreement = app.get_agreement("fusesign", BUNDLE).await;
    assert_eq!(agreement["status"], "completed");
    assert_eq!(agreement["provider_status"], "BundleFinalised");
    let statuses: Vec<&Value> = agreement["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!("completed"), &Value::Null, &Value::Null, &Value::Null]
    );
}

#[tokio::test]
async fn webhook_url_change_without_a_bundle_is_stored_without_an_agreement() {
    let app = spawn_app().await;
    let event = json!({
        "WebhookId": "wh-url-changed-1",
        "EventType": "WebhookURLChanged",
        "BundleHistoryEvent": null,
        "ActionDescription": "Webhook URL changed",
        "TenantId": TENANT,
    });

    assert_eq!(app.post_fusesign(&event).await.status(), 200);
    app.wait_idle().await;

    // Without a history event the WebhookId is the dedupe key.
    assert_eq!(app.event_state("fusesign", "wh-url-changed-1").await.0, "processed");
    assert_eq!(app.count("SELECT count(*) FROM agreements").await, 0);
}

#[tokio::test]
async fn unknown_event_types_are_accepted_and_processed_without_a_status() {
    let app = spawn_app().await;
    let event = fuse_event("h-new", BUNDLE, "BundleTeleported", "2026-11-20T09:00:00Z");

    assert_eq!(app.post_fusesign(&event).await.status(), 200);
    app.wait_idle().await;

    let (state, _, last_error) = app.event_state("fusesign", "h-new").await;
    assert_eq!((state.as_str(), last_error), ("processed", None));
    let agreement = app.get_agreement("fusesign", BUNDLE).await;
    assert_eq!(agreement["status"], Value::Null);
    assert_eq!(agreement["history"][0]["event_type"], "BundleTeleported");
}

/// Authenticated bodies signhook does not understand are kept dead and
/// acknowledged (FuseSign retries anything else, then disables the
/// webhook); the same junk without the signature is refused.
#[tokio::test]
async fn unparseable_authenticated_bodies_are_kept_dead_and_acknowledged() {
    let app = spawn_app().await;
    let cases: [(&[u8], &str); 7] = [
        (b"not json", "not valid JSON"),
        (b"[1, 2, 3]", "must be a JSON object"),
        (b"\xff\xfe{garbage", "not valid JSON"),
        (b"{}", "neither BundleHistoryEvent.Id nor WebhookId"),
        (
            br#"{"BundleId": "b", "EventType": "BundleFinalised"}"#,
            "neither BundleHistoryEvent.Id nor WebhookId",
        ),
        (
            br#"{"WebhookId": "", "BundleHistoryEvent": {"Id": "  "}}"#,
            "neither BundleHistoryEvent.Id nor WebhookId",
        ),
        (b"", "not valid JSON"),
    ];
    for (body, _) in cases {
        let response = app.post_fusesign_raw(body).await;
        assert_eq!(response.status(), 200, "{}", String::from_utf8_lossy(body));
    }
    let dead = app.dead_events("fusesign").await;
    assert_eq!(dead.len(), cases.len());
    for ((_, reason), (event_type, error)) in cases.iter().zip(&dead) {
        assert_eq!(event_type, "unparsed");
        assert!(error.as_deref().unwrap_or_default().contains(reason), "{error:?}");
    }
    for signature in [None, Some("not-the-signature")] {
        let (status, _) = error_of(app.post_fusesign_with(signature, b"not json at all").await).await;
        assert_eq!(status, 401, "{signature:?}");
    }
    assert_eq!(app.event_count("fusesign").await, cases.len() as i64);
}

#[tokio::test]
async fn finalisation_delivered_before_an_earlier_signature_stays_completed() {
    let app = spawn_app().await;
    let finalised = fuse_event("h-final", BUNDLE, "BundleFinalised", "2026-11-20T09:05:00Z");
    let signed = fuse_event("h-signed", BUNDLE, "CustomerDocumentSigned", "2026-11-20T09:01:00Z");

    assert_eq!(app.post_fusesign(&finalised).await.status(), 200);
    app.wait_idle().await;
    assert_eq!(app.post_fusesign(&signed).await.status(), 200);
    app.wait_idle().await;

    let agreement = app.get_agreement("fusesign", BUNDLE).await;
    assert_eq!(agreement["status"], "completed");
    assert_eq!(agreement["provider_status"], "BundleFinalised");
    assert_eq!(app.history_count("fusesign", BUNDLE).await, 2);
}

#[tokio::test]
async fn tenant_id_is_visible_in_the_admin_events_api() {
    let app = spawn_app().await;
    let mut other = fuse_event("h-other", "b-other", "BundleCreated", "2026-11-20T09:00:00Z");
    other["TenantId"] = json!("tenant-2");
    let mut none = fuse_event("h-none", "b-none", "BundleCreated", "2026-11-20T09:00:00Z");
    none.as_object_mut().unwrap().remove("TenantId");
    assert_eq!(
        app.post_fusesign_raw(&std::fs::read(FUSESIGN_FIXTURE).unwrap())
            .await
            .status(),
        200
    );
    assert_eq!(app.post_fusesign(&other).await.status(), 200);
    assert_eq!(app.post_fusesign(&none).await.status(), 200);

    let page = app.list_events("provider=fusesign").await;
    let mut tenants: Vec<(&str, Option<&str>)> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["event_id"].as_str().unwrap(), e["tenant"].as_str()))
        .collect();
    tenants.sort();
    assert_eq!(
        tenants,
        [
            ("cc0c0745-7ba1-4134-b946-674d78c98fef", Some(TENANT)),
            ("h-none", None),
            ("h-other", Some("tenant-2")),
        ]
    );
}
