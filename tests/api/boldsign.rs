//! BoldSign: HMAC-signed notifications end to end — every way a signature
//! is refused, the long retry window, and each status.

use serde_json::{json, Value};

use crate::helpers::*;

const DOCUMENT: &str = "0d6f4a8c-1b9e-4a51-9f63-2a7d1c5e8b40";
/// An event time (unix seconds); event times are independent of signing times.
const T0: i64 = 1_763_631_000;

/// The hex signature alone (the `s0` of [`boldsign_signature`]), for
/// headers put together by hand.
fn hex_signature(secret: &str, t: i64, body: &[u8]) -> String {
    let header = boldsign_signature(secret, t, body);
    header.split_once("s0=").expect("the header has an s0").1.to_owned()
}

/// A header signed `age` seconds ago with the configured secret.
fn signed_ago(age: i64, body: &[u8]) -> String {
    boldsign_signature(BOLDSIGN_SECRET, unix_now() - age, body)
}

/// `(event_id, tenant)` of every stored BoldSign event, via the admin API.
async fn tenants(app: &TestApp) -> Vec<(String, Option<String>)> {
    let page = app.list_events("provider=boldsign").await;
    let mut tenants: Vec<_> = page["events"]
        .as_array()
        .expect("events array")
        .iter()
        .map(|e| {
            (
                e["event_id"].as_str().expect("event id").to_owned(),
                e["tenant"].as_str().map(str::to_owned),
            )
        })
        .collect();
    tenants.sort();
    tenants
}

#[tokio::test]
async fn signed_notification_is_stored_byte_for_byte_acknowledged_and_applied() {
    let app = spawn_app().await;
    let body = std::fs::read(BOLDSIGN_FIXTURE).unwrap();

    let response = app.post_boldsign_raw(&body).await;

    assert_eq!(response.status(), 200);
    let ack: Value = response.json().await.unwrap();
    assert_eq!(
        (ack["received"].clone(), ack["duplicate"].clone()),
        (json!(true), json!(false))
    );
    let stored: StoredEvent = sqlx::query_as("SELECT * FROM events WHERE provider = 'boldsign'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored.body, body, "raw body kept byte for byte");
    assert_eq!(stored.event_id, "5a3f1f0e-7c55-4d4e-8e0e-0b8f9a6c1d22");
    assert_eq!(stored.event_type, "Completed");
    assert_eq!(stored.tenant.as_deref(), Some("Live"));
    assert_eq!(stored.resource_id.as_deref(), Some(DOCUMENT));
    assert_eq!(stored.resource_type.as_deref(), Some("document"));
    assert_eq!(stored.occurred_at.unwrap().to_rfc3339(), "2025-11-20T09:41:27+00:00");

    app.wait_idle().await;
    let agreement = app.get_agreement("boldsign", DOCUMENT).await;
    assert_eq!(agreement["resource_type"], "document");
    assert_eq!(agreement["status"], "completed");
    assert_eq!(agreement["provider_status"], "Completed");
    assert_eq!(agreement["name"], "Offer letter");
    assert_eq!(agreement["last_event_at"], "2025-11-20T09:41:27Z");
}

#[tokio::test]
async fn full_lifecycle_sent_viewed_signed_completed_is_applied_in_order() {
    let app = spawn_app().await;
    let steps = [
        ("e-sent", "Sent", "InProgress", "in_progress"),
        ("e-viewed", "Viewed", "InProgress", "in_progress"),
        ("e-signed", "Signed", "InProgress", "in_progress"),
        ("e-completed", "Completed", "Completed", "completed"),
    ];
    for (i, (event_id, event_type, provider_status, expected)) in steps.into_iter().enumerate() {
        let event = boldsign_event(
            event_id,
            DOCUMENT,
            event_type,
            Some(provider_status),
            T0 + i as i64 * 60,
        );
        assert_eq!(app.post_boldsign(&event).await.status(), 200, "{event_type}");
        app.wait_idle().await;
        let agreement = app.get_agreement("boldsign", DOCUMENT).await;
        assert_eq!(agreement["status"], expected, "after {event_type}");
        assert_eq!(agreement["provider_status"], provider_status, "after {event_type}");
    }
    let agreement = app.get_agreement("boldsign", DOCUMENT).await;
    let history: Vec<(&str, &str)> = agreement["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["event_type"].as_str().unwrap(), h["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        history,
        [
            ("Sent", "in_progress"),
            ("Viewed", "in_progress"),
            ("Signed", "in_progress"),
            ("Completed", "completed"),
        ]
    );
    for (event_id, ..) in steps {
        assert_eq!(app.event_state("boldsign", event_id).await.0, "processed");
    }
}

#[tokio::test]
async fn requests_without_a_valid_signature_are_refused_and_not_stored() {
    let app = spawn_app().await;
    let body = boldsign_event("e-1", DOCUMENT, "Sent", Some("InProgress"), T0)
        .to_string()
        .into_bytes();
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("\"Sent\"", "\"Completed\"")
        .into_bytes();
    assert_ne!(tampered, body);
    let t = unix_now();
    let good = hex_signature(BOLDSIGN_SECRET, t, &body);
    let cases: Vec<(&str, Option<String>, &[u8], &str)> = vec![
        ("no header", None, &body, "missing_signature"),
        ("empty header", Some(String::new()), &body, "missing_signature"),
        (
            "not key=value",
            Some("garbage".to_owned()),
            &body,
            "malformed_signature",
        ),
        ("no timestamp", Some(format!("s0={good}")), &body, "malformed_signature"),
        ("no signature", Some(format!("t={t}")), &body, "malformed_signature"),
        (
            "non-numeric t",
            Some(format!("t=now, s0={good}")),
            &body,
            "malformed_signature",
        ),
        (
            "non-hex signature",
            Some(format!("t={t}, s0=zz{}", &good[2..])),
            &body,
            "malformed_signature",
        ),
        (
            "wrong secret",
            Some(boldsign_signature("not-the-secret", t, &body)),
            &body,
            "invalid_signature",
        ),
        (
            "tampered body with the original's signature",
            Some(format!("t={t}, s0={good}")),
            &tampered,
            "invalid_signature",
        ),
        (
            "timestamp changed after signing",
            Some(format!("t={}, s0={good}", t - 1)),
            &body,
            "invalid_signature",
        ),
        (
            "t more than 5 minutes ahead",
            Some(boldsign_signature(BOLDSIGN_SECRET, t + 600, &body)),
            &body,
            "timestamp_in_future",
        ),
        (
            "t 40 days old",
            Some(boldsign_signature(BOLDSIGN_SECRET, t - 40 * 86_400, &body)),
            &body,
            "timestamp_too_old",
        ),
    ];
    for (case, header, body, code) in cases {
        let (status, error) = error_of(app.post_boldsign_with(header.as_deref(), body).await).await;
        assert_eq!(status, 401, "{case}: {error}");
        assert_eq!(error["error"]["code"], code, "{case}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.len() > 5 && !message.contains(BOLDSIGN_SECRET),
            "{case}: {message}"
        );
    }
    // Two signature headers are refused rather than guessed between.
    let response = app
        .post(
            "/webhooks/boldsign",
            &[
                ("X-BoldSign-Signature", &format!("t={t}, s0={good}")),
                ("X-BoldSign-Signature", &format!("t={t}, s0={good}")),
            ],
            body.clone(),
        )
        .await;
    let (status, error) = error_of(response).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("malformed_signature"))
    );

    assert_eq!(app.event_count("boldsign").await, 0);
    // The same body, properly signed, is then accepted.
    assert_eq!(app.post_boldsign_raw(&body).await.status(), 200);
}

#[tokio::test]
async fn retry_signed_nine_hours_ago_is_accepted() {
    let app = spawn_app().await;
    let body = boldsign_event("e-retry", DOCUMENT, "Completed", Some("Completed"), T0)
        .to_string()
        .into_bytes();
    let header = signed_ago(9 * 3600, &body);

    assert_eq!(app.post_boldsign_with(Some(&header), &body).await.status(), 200);

    assert_eq!(app.event_count("boldsign").await, 1);
    app.wait_for_agreement_status("boldsign", DOCUMENT, "completed").await;
}

#[tokio::test]
async fn spacing_order_and_case_of_the_signature_header_do_not_matter() {
    let app = spawn_app().await;
    let body = boldsign_event("e-1", DOCUMENT, "Sent", None, T0)
        .to_string()
        .into_bytes();
    let t = unix_now();
    let good = hex_signature(BOLDSIGN_SECRET, t, &body);
    for header in [
        format!("t={t},s0={good}"),
        format!("  s0 = {good} ,  t = {t}  "),
        format!("t={t}, s0={}", good.to_uppercase()),
        format!("t={t}, v9=ignored, s0={good}"),
    ] {
        assert_eq!(
            app.post_boldsign_with(Some(&header), &body).await.status(),
            200,
            "{header}"
        );
    }
    assert_eq!(app.event_count("boldsign").await, 1);
}

#[tokio::test]
async fn a_match_in_s1_is_enough() {
    let app = spawn_app().await;
    let body = boldsign_event("e-s1", DOCUMENT, "Sent", None, T0)
        .to_string()
        .into_bytes();
    let t = unix_now();
    let header = format!(
        "{}, s1={}",
        boldsign_signature("the-rolled-out-secret", t, &body),
        hex_signature(BOLDSIGN_SECRET, t, &body)
    );

    assert_eq!(app.post_boldsign_with(Some(&header), &body).await.status(), 200);
    assert_eq!(app.event_count("boldsign").await, 1);
}

#[tokio::test]
async fn every_configured_secret_is_accepted_during_rotation() {
    let secrets = format!("{BOLDSIGN_SECRET}, {BOLDSIGN_SECRET_2}");
    let app = spawn_app_with(&[("SIGNHOOK_BOLDSIGN_SECRETS", &secrets)]).await;
    let t = unix_now();
    for (event_id, secret, expected) in [
        ("e-old", BOLDSIGN_SECRET, 200),
        ("e-new", BOLDSIGN_SECRET_2, 200),
        ("e-other", "boldsign-test-secret-3", 401),
    ] {
        let body = boldsign_event(event_id, DOCUMENT, "Sent", None, T0)
            .to_string()
            .into_bytes();
        let header = boldsign_signature(secret, t, &body);
        assert_eq!(
            app.post_boldsign_with(Some(&header), &body).await.status(),
            expected,
            "{secret}"
        );
    }
    assert_eq!(app.event_count("boldsign").await, 2);
}

#[tokio::test]
async fn maximum_age_is_configurable_and_zero_means_no_limit() {
    let body = boldsign_event("e-1", DOCUMENT, "Sent", None, T0)
        .to_string()
        .into_bytes();
    let unlimited = spawn_app_with(&[("SIGNHOOK_BOLDSIGN_MAX_AGE_SECS", "0")]).await;
    let signed = signed_ago(400 * 86_400, &body);
    assert_eq!(unlimited.post_boldsign_with(Some(&signed), &body).await.status(), 200);
    let ahead = signed_ago(-3600, &body);
    let (status, error) = error_of(unlimited.post_boldsign_with(Some(&ahead), &body).await).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("timestamp_in_future"))
    );

    let strict = spawn_app_with(&[("SIGNHOOK_BOLDSIGN_MAX_AGE_SECS", "3600")]).await;
    let recent = signed_ago(60, &body);
    assert_eq!(strict.post_boldsign_with(Some(&recent), &body).await.status(), 200);
    let old = signed_ago(9 * 3600, &body);
    let (status, error) = error_of(strict.post_boldsign_with(Some(&old), &body).await).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("timestamp_too_old"))
    );
}

#[tokio::test]
async fn without_secrets_every_request_is_refused_naming_the_setting() {
    let app = spawn_app_with(&[("SIGNHOOK_BOLDSIGN_SECRETS", "")]).await;
    let body = std::fs::read(BOLDSIGN_FIXTURE).unwrap();

    let (status, error) = error_of(app.post_boldsign_raw(&body).await).await;

    assert_eq!(status, 401);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SIGNHOOK_BOLDSIGN_SECRETS"),
        "{error}"
    );
    assert_eq!(app.event_count("boldsign").await, 0);
}

#[tokio::test]
async fn duplicate_notification_is_stored_and_applied_once() {
    let app = spawn_app().await;
    let body = boldsign_event("e-dup", DOCUMENT, "Signed", Some("InProgress"), T0)
        .to_string()
        .into_bytes();

    let first: Value = app.post_boldsign_raw(&body).await.json().await.unwrap();
    // A retry, re-signed later with a different t, is the same event.
    let retry = app.post_boldsign_with(Some(&signed_ago(3600, &body)), &body).await;
    assert_eq!(retry.status(), 200);
    let second: Value = retry.json().await.unwrap();

    assert_eq!(first["duplicate"], false);
    assert_eq!(second["duplicate"], true);
    assert_eq!(first["id"], second["id"]);
    assert_eq!(app.event_count("boldsign").await, 1);
    app.wait_until_processed(1).await;
    assert_eq!(app.history_count("boldsign", DOCUMENT).await, 1);
}

#[tokio::test]
async fn each_status_outcome_is_reached() {
    let app = spawn_app().await;
    let cases = [
        ("doc-completed", "Completed", Some("Completed"), "completed"),
        ("doc-declined", "Declined", Some("Declined"), "declined"),
        ("doc-revoked", "Revoked", Some("Revoked"), "cancelled"),
        ("doc-expired", "Expired", Some("Expired"), "expired"),
        ("doc-draft", "DraftCreated", Some("Draft"), "draft"),
        ("doc-scheduled", "Sent", Some("Scheduled"), "draft"),
        ("doc-send-failed", "SendFailed", None, "failed"),
        ("doc-signed", "Signed", Some("InProgress"), "in_progress"),
    ];
    for (document, event_type, status, _) in cases {
        let event = boldsign_event(&format!("{document}-1"), document, event_type, status, T0);
        assert_eq!(app.post_boldsign(&event).await.status(), 200, "{event_type}");
    }
    app.wait_idle().await;
    for (document, event_type, _, expected) in cases {
        assert_eq!(
            app.get_agreement("boldsign", document).await["status"],
            expected,
            "{event_type}"
        );
    }
}

#[tokio::test]
async fn verification_event_is_stored_without_an_agreement() {
    let app = spawn_app().await;
    let event = json!({
        "event": { "id": "e-verify", "created": T0, "eventType": "Verification", "environment": "Live" },
        "data": null,
        "document": null,
    });

    assert_eq!(app.post_boldsign(&event).await.status(), 200);
    app.wait_idle().await;

    assert_eq!(app.event_state("boldsign", "e-verify").await.0, "processed");
    assert_eq!(app.count("SELECT count(*) FROM agreements").await, 0);
}

#[tokio::test]
async fn template_events_are_stored_without_an_agreement() {
    let app = spawn_app().await;
    let event = json!({
        "event": { "id": "e-template", "created": T0, "eventType": "TemplateCreated", "environment": "Live" },
        "data": { "object": "template", "templateId": "tpl-1", "documentId": "not-a-document" },
    });

    assert_eq!(app.post_boldsign(&event).await.status(), 200);
    app.wait_idle().await;

    assert_eq!(app.event_state("boldsign", "e-template").await.0, "processed");
    assert_eq!(
        app.admin_get("/api/agreements/boldsign/not-a-document").await.status(),
        404
    );
}

#[tokio::test]
async fn unknown_event_types_are_accepted_and_processed_without_a_status() {
    let app = spawn_app().await;
    let event = boldsign_event("e-new", DOCUMENT, "DocumentTeleported", None, T0);

    assert_eq!(app.post_boldsign(&event).await.status(), 200);
    app.wait_idle().await;

    let (state, _, last_error) = app.event_state("boldsign", "e-new").await;
    assert_eq!((state.as_str(), last_error), ("processed", None));
    let agreement = app.get_agreement("boldsign", DOCUMENT).await;
    assert_eq!(agreement["status"], Value::Null);
    assert_eq!(agreement["history"][0]["event_type"], "DocumentTeleported");
    assert_eq!(agreement["history"][0]["status"], Value::Null);
}

/// Authenticated bodies signhook does not understand are kept dead and
/// acknowledged (BoldSign retries anything else, then disables the webhook);
/// the same junk unsigned is refused.
#[tokio::test]
async fn unparseable_signed_bodies_are_kept_dead_and_acknowledged() {
    let app = spawn_app().await;
    let cases: [(&[u8], &str); 7] = [
        (b"not json", "not valid JSON"),
        (b"[1, 2, 3]", "must be a JSON object"),
        (b"\xff\xfe{garbage", "not valid JSON"),
        (b"{}", "event.id is missing"),
        (br#"{"event": {"id": "", "eventType": "Sent"}}"#, "event.id is missing"),
        (
            br#"{"event": {"eventType": "Sent"}, "data": {"documentId": "d"}}"#,
            "event.id is missing",
        ),
        (b"", "not valid JSON"),
    ];
    for (body, _) in cases {
        let response = app.post_boldsign_raw(body).await;
        assert_eq!(response.status(), 200, "{}", String::from_utf8_lossy(body));
    }
    let dead = app.dead_events("boldsign").await;
    assert_eq!(dead.len(), cases.len());
    for ((_, reason), (event_type, error)) in cases.iter().zip(&dead) {
        assert_eq!(event_type, "unparsed");
        assert!(error.as_deref().unwrap_or_default().contains(reason), "{error:?}");
    }
    let junk = b"not json at all";
    for signature in [None, Some(boldsign_signature("not-the-secret", unix_now(), junk))] {
        let (status, _) = error_of(app.post_boldsign_with(signature.as_deref(), junk).await).await;
        assert_eq!(status, 401, "{signature:?}");
    }
    assert_eq!(app.event_count("boldsign").await, cases.len() as i64);
}

/// BoldSign's `Verification` request, as its official .NET SDK example
/// (`examples/WebhookExampleController.cs`) handles it: the
/// `X-BoldSign-Event: Verification` header, a `Verification` body
/// (`WebHookEventType.Verification`), no signature — sent while the webhook
/// is being created, before its secret exists.
fn verification_body() -> Vec<u8> {
    json!({
        "event": { "id": "e-verify", "created": T0, "eventType": "Verification", "clientId": null, "environment": "Live" },
        "data": null,
        "document": null,
    })
    .to_string()
    .into_bytes()
}

async fn post_announced_verification(app: &TestApp, signature: Option<&str>, body: &[u8]) -> reqwest::Response {
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("X-BoldSign-Event", "Verification"),
    ];
    if let Some(signature) = signature {
        headers.push(("X-BoldSign-Signature", signature));
    }
    app.post("/webhooks/boldsign", &headers, body.to_vec()).await
}

#[tokio::test]
async fn unsigned_verification_is_answered_200_before_a_secret_exists_and_stores_nothing() {
    let app = spawn_app_with(&[("SIGNHOOK_BOLDSIGN_SECRETS", "")]).await;
    let response = post_announced_verification(&app, None, &verification_body()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["verification"], true);
    assert_eq!(app.event_count("boldsign").await, 0);
    // Without the header it is an ordinary (here: unauthenticated) event.
    let (status, error) = error_of(app.post_boldsign_with(None, &verification_body()).await).await;
    assert_eq!((status, error["error"]["code"].as_str()), (401, Some("not_configured")));
}

#[tokio::test]
async fn verification_is_answered_200_signed_or_not_once_secrets_are_set() {
    let app = spawn_app().await;
    let body = verification_body();
    assert_eq!(post_announced_verification(&app, None, &body).await.status(), 200);
    let signed = boldsign_signature(BOLDSIGN_SECRET, unix_now(), &body);
    assert_eq!(
        post_announced_verification(&app, Some(&signed), &body).await.status(),
        200
    );
    assert_eq!(
        post_announced_verification(&app, Some("garbage"), &body).await.status(),
        200
    );
    assert_eq!(app.event_count("boldsign").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM agreements").await, 0);
}

/// The header alone proves nothing: over any other event it must be signed.
#[tokio::test]
async fn a_verification_header_over_another_event_must_be_signed() {
    let app = spawn_app().await;
    let completed = boldsign_event("e-forged", DOCUMENT, "Completed", Some("Completed"), T0)
        .to_string()
        .into_bytes();
    let unsigned = post_announced_verification(&app, None, &completed).await;
    assert_eq!(unsigned.status(), 401);
    let t = unix_now();
    let forged = format!("t={t}, s0={}", hex_signature("not-the-secret", t, &completed));
    assert_eq!(
        post_announced_verification(&app, Some(&forged), &completed)
            .await
            .status(),
        401
    );
    assert_eq!(app.event_count("boldsign").await, 0);
    assert_eq!(
        app.admin_get(&format!("/api/agreements/boldsign/{DOCUMENT}"))
            .await
            .status(),
        404
    );
    // Signed, the same request is an ordinary event.
    let signed = boldsign_signature(BOLDSIGN_SECRET, t, &completed);
    assert_eq!(
        post_announced_verification(&app, Some(&signed), &completed)
            .await
            .status(),
        200
    );
    app.wait_for_agreement_status("boldsign", DOCUMENT, "completed").await;
}

/// KBA and identity-verification events name their document
/// (`data.object` `knowledgeBasedAuthentication` / `identityVerification`
/// with `documentId`: official .NET SDK, `WebhookConstants.cs`,
/// `KbaAuthenticationEvent.cs`, `IdentityVerificationEvent.cs`) and reach its history.
#[tokio::test]
async fn kba_and_identity_verification_events_reach_the_document_history() {
    let app = spawn_app().await;
    for (id, event_type, object, at) in [
        ("e-kba", "KBAFailed", "knowledgeBasedAuthentication", T0),
        ("e-idv", "IdentityVerificationSucceeded", "identityVerification", T0 + 1),
    ] {
        let mut event = boldsign_event(id, DOCUMENT, event_type, Some("InProgress"), at);
        event["data"]["object"] = json!(object);
        assert_eq!(app.post_boldsign(&event).await.status(), 200);
    }
    app.wait_idle().await;
    let document = app.get_agreement("boldsign", DOCUMENT).await;
    let history: Vec<_> = document["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["event_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(history, ["KBAFailed", "IdentityVerificationSucceeded"]);
    assert_eq!(document["status"], "in_progress");
}

#[tokio::test]
async fn completion_delivered_before_an_earlier_view_stays_completed() {
    let app = spawn_app().await;
    let completed = boldsign_event("e-completed", DOCUMENT, "Completed", Some("Completed"), T0 + 300);
    let viewed = boldsign_event("e-viewed", DOCUMENT, "Viewed", Some("InProgress"), T0 + 100);

    assert_eq!(app.post_boldsign(&completed).await.status(), 200);
    app.wait_idle().await;
    assert_eq!(app.post_boldsign(&viewed).await.status(), 200);
    app.wait_idle().await;

    let agreement = app.get_agreement("boldsign", DOCUMENT).await;
    assert_eq!(agreement["status"], "completed");
    assert_eq!(agreement["provider_status"], "Completed");
    let history: Vec<&str> = agreement["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["e-viewed", "e-completed"], "both recorded, in event order");
}

#[tokio::test]
async fn tenant_is_the_client_id_or_else_the_environment() {
    let app = spawn_app().await;
    let mut with_client = boldsign_event("e-client", DOCUMENT, "Sent", None, T0);
    with_client["event"]["clientId"] = json!("client-42");
    let mut sandbox = boldsign_event("e-sandbox", DOCUMENT, "Viewed", None, T0 + 1);
    sandbox["event"]["environment"] = json!("Test");
    let mut blank_client = boldsign_event("e-blank", DOCUMENT, "Signed", None, T0 + 2);
    blank_client["event"]["clientId"] = json!("");

    for event in [&with_client, &sandbox, &blank_client] {
        assert_eq!(app.post_boldsign(event).await.status(), 200);
    }

    assert_eq!(
        tenants(&app).await,
        [
            ("e-blank".to_owned(), Some("Live".to_owned())),
            ("e-client".to_owned(), Some("client-42".to_owned())),
            ("e-sandbox".to_owned(), Some("Test".to_owned())),
        ]
    );
}

/// The signing code the tests, the simulator and the server share, checked
/// against the scheme as BoldSign documents it (research/boldsign.md §2:
/// HMAC-SHA256 keyed with the secret's bytes over `<t>.<raw body>`, lowercase
/// hex), computed here independently of signhook's code.
#[test]
fn signature_matches_an_independent_hmac() {
    use hmac::{Hmac, Mac};
    let body = br#"{"event":{"id":"e-1","eventType":"Completed"}}"#;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(BOLDSIGN_SECRET.as_bytes()).unwrap();
    mac.update(b"1668693823.");
    mac.update(body);
    let expected = format!("t=1668693823, s0={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(boldsign_signature(BOLDSIGN_SECRET, 1_668_693_823, body), expected);
}
