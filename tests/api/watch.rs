//! Per-agreement Adobe Sign webhooks: `POST`/`DELETE
//! /api/agreements/adobe-sign/{id}/watch` against a fake Adobe API; failed
//! registrations fall back to fast polling and are retried by the reconciler.

use serde_json::{json, Value};

use crate::{
    common::fake_provider::{FakeProvider, ADOBE_API_TOKEN},
    helpers::*,
};

const PUBLIC_URL: &str = "https://hooks.example.com";

async fn watching_app(fake: &FakeProvider) -> TestApp {
    spawn_app_with(&[
        ("SIGNHOOK_ADOBE_SIGN_API_BASE", &fake.base_url),
        ("SIGNHOOK_ADOBE_SIGN_API_TOKEN", ADOBE_API_TOKEN),
        ("SIGNHOOK_PROVIDER_API_MAX_ATTEMPTS", "1"),
        ("SIGNHOOK_PUBLIC_URL", PUBLIC_URL),
        ("SIGNHOOK_RECONCILE_INTERVAL", "100ms"),
        ("SIGNHOOK_RECONCILE_FAST_INTERVAL", "1s"),
        ("SIGNHOOK_RECONCILE_MAX_PER_MINUTE", "6000"),
        // Scheduling mechanics, not the provider's limits (tested on their own).
        ("SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL", "0"),
        ("SIGNHOOK_ADOBE_SIGN_API_REQUESTS_PER_HOUR", "1000000"),
    ])
    .await
}

#[tokio::test]
async fn watch_registers_a_resource_webhook_and_delete_removes_it() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-w", "Mutual NDA", "OUT_FOR_SIGNATURE");
    let app = watching_app(&fake).await;

    let response = app.watch("adobe-sign", "agr-w").await;
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.unwrap();
    let webhooks = fake.webhooks();
    assert_eq!(webhooks.len(), 1);
    let (id, body) = webhooks.iter().next().unwrap();
    assert_eq!(view["webhook_id"], json!(id), "{view}");
    assert_eq!(view["watch_pending"], false);
    assert_eq!(view["agreement_id"], "agr-w");
    assert_eq!(view["status"], Value::Null, "never seen: no status yet");
    // The WebhookInfo shape of Adobe's REST v6 reference.
    assert!(body["name"].as_str().is_some_and(|n| !n.is_empty()), "{body}");
    assert_eq!(
        (
            &body["scope"],
            &body["state"],
            &body["resourceType"],
            &body["resourceId"]
        ),
        (
            &json!("RESOURCE"),
            &json!("ACTIVE"),
            &json!("AGREEMENT"),
            &json!("agr-w")
        )
    );
    assert_eq!(body["webhookSubscriptionEvents"], json!(["AGREEMENT_ALL"]));
    assert_eq!(
        body["webhookUrlInfo"]["url"],
        json!(format!("{PUBLIC_URL}/webhooks/adobe-sign"))
    );
    let conditional = &body["webhookConditionalParams"]["webhookAgreementEvents"];
    assert_eq!(conditional["includeDetailedInfo"], true, "{body}");
    assert_eq!(conditional["includeParticipantsInfo"], true, "{body}");

    // Watching again registers nothing new.
    let again: Value = app.watch("adobe-sign", "agr-w").await.json().await.unwrap();
    assert_eq!(again["webhook_id"], view["webhook_id"]);
    assert_eq!(fake.webhooks().len(), 1);

    let response = app.unwatch("adobe-sign", "agr-w").await;
    assert_eq!(response.status(), 200);
    let removed: Value = response.json().await.unwrap();
    assert_eq!(removed["webhook_id"], Value::Null, "{removed}");
    assert!(fake.webhooks().is_empty());
    assert!(fake
        .requests()
        .iter()
        .any(|r| r.method == "DELETE" && r.path == format!("/api/rest/v6/webhooks/{id}")));
    // Counted in signhook_webhook_registrations_total: tests/process/metrics.rs.
}

#[tokio::test]
async fn a_failed_registration_polls_fast_until_a_retry_succeeds() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-f", "Mutual NDA", "OUT_FOR_SIGNATURE");
    fake.fail_webhook_registrations(1);
    let app = watching_app(&fake).await;

    let (status, error) = error_of(app.watch("adobe-sign", "agr-f").await).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (502, Some("webhook_registration_failed"))
    );
    let pending = app.get_agreement("adobe-sign", "agr-f").await;
    assert_eq!(pending["watch_pending"], true, "{pending}");
    assert!(pending["next_poll_at"].is_string(), "on the fast schedule: {pending}");

    app.wait_until("the reconciler to register the webhook", || async {
        app.get_agreement("adobe-sign", "agr-f").await["webhook_id"].is_string()
    })
    .await;
    let watched = app.get_agreement("adobe-sign", "agr-f").await;
    assert_eq!(watched["watch_pending"], false, "{watched}");
    assert_eq!(
        watched["next_poll_at"],
        Value::Null,
        "back to the normal schedule: {watched}"
    );
    assert_eq!(watched["status"], "in_progress", "polled on the fast schedule");
    assert_eq!(fake.webhooks().len(), 1);
    assert!(fake.request_count("/api/rest/v6/agreements/agr-f") >= 1);
    let calls = |method: &str| {
        fake.requests()
            .iter()
            .filter(|r| r.method == method && r.path == "/api/rest/v6/webhooks")
            .count()
    };
    assert_eq!(calls("POST"), 2, "the failed registration, then the retry that worked");
    assert_eq!(
        calls("GET"),
        1,
        "after the 500, Adobe's webhooks were searched for one it made anyway"
    );
}

#[tokio::test]
async fn a_finished_agreement_loses_its_webhook() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-t", "Mutual NDA", "OUT_FOR_SIGNATURE");
    let app = watching_app(&fake).await;
    assert_eq!(app.watch("adobe-sign", "agr-t").await.status(), 200);
    assert_eq!(fake.webhooks().len(), 1);

    // Adobe has it signed: the completion, sent with the client ID alone, is
    // confirmed by reading the agreement before it applies.
    fake.set_agreement("agr-t", "Mutual NDA", "SIGNED");
    let completed = adobe_event(
        "n-t",
        "agr-t",
        "AGREEMENT_WORKFLOW_COMPLETED",
        Some("SIGNED"),
        "2026-11-24T09:00:00Z",
    );
    assert_eq!(app.post_adobe(&completed).await.status(), 200);
    app.wait_until("the webhook to be removed", || async { fake.webhooks().is_empty() })
        .await;
    app.wait_until("the agreement to forget it", || async {
        app.get_agreement("adobe-sign", "agr-t").await["webhook_id"].is_null()
    })
    .await;
    let (status, error) = error_of(app.watch("adobe-sign", "agr-t").await).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("agreement_finished"))
    );
}

#[tokio::test]
async fn watch_refusals_are_json_errors() {
    let fake = FakeProvider::start().await;
    let app = watching_app(&fake).await;

    let (status, error) = error_of(app.watch("boldsign", "doc-1").await).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("watch_not_supported"))
    );
    let (status, error) = error_of(app.unwatch("fusesign", "b-1").await).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("watch_not_supported"))
    );
    let (status, error) = error_of(app.watch("nobody", "x").await).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, error) = error_of(app.watch("adobe-sign", "unknown").await).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, error) = error_of(app.unwatch("adobe-sign", "never-seen").await).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("not_found")));
    assert_eq!(
        app.client
            .post(app.url("/api/agreements/adobe-sign/x/watch"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    let no_public_url = spawn_app_with(&[
        ("SIGNHOOK_ADOBE_SIGN_API_BASE", &fake.base_url),
        ("SIGNHOOK_ADOBE_SIGN_API_TOKEN", ADOBE_API_TOKEN),
    ])
    .await;
    let (status, error) = error_of(no_public_url.watch("adobe-sign", "a").await).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("public_url_not_configured"))
    );
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("SIGNHOOK_PUBLIC_URL"));

    let no_api = spawn_app_with(&[("SIGNHOOK_PUBLIC_URL", PUBLIC_URL)]).await;
    let (status, error) = error_of(no_api.watch("adobe-sign", "a").await).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("polling_not_configured"))
    );
}

/// The `WebhookInfo` signhook registers for `agreement_id`, as a webhook
/// already at Adobe would carry it (an earlier registration, or one whose
/// answer was lost).
fn registered_before(agreement_id: &str) -> Value {
    json!({
        "name": format!("signhook agreement {agreement_id}"), "scope": "RESOURCE", "state": "ACTIVE",
        "resourceType": "AGREEMENT", "resourceId": agreement_id,
        "webhookSubscriptionEvents": ["AGREEMENT_ALL"],
        "webhookUrlInfo": { "url": format!("{PUBLIC_URL}/webhooks/adobe-sign") },
    })
}

/// Adobe refuses a second identical webhook with 400
/// `DUPLICATE_WEBHOOK_CONFIGURATION`; signhook finds the existing one with
/// `GET /webhooks` (paged) and adopts it.
#[tokio::test]
async fn a_duplicate_registration_adopts_the_existing_webhook() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-d", "Mutual NDA", "OUT_FOR_SIGNATURE");
    // Others first, so the match is on a later page of GET /webhooks.
    for other in ["agr-o1", "agr-o2"] {
        fake.set_agreement(other, "x", "OUT_FOR_SIGNATURE");
        fake.add_webhook(registered_before(other));
    }
    let existing = fake.add_webhook(registered_before("agr-d"));
    let app = watching_app(&fake).await;

    let response = app.watch("adobe-sign", "agr-d").await;
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["webhook_id"], json!(existing), "{view}");
    assert_eq!(view["watch_pending"], false);
    assert_eq!(fake.webhooks().len(), 3, "nothing new at Adobe");
    let posts = fake.requests().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 1, "POST /webhooks is never retried blindly");
    let pages: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/api/rest/v6/webhooks")
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages[1].contains("cursor=2"), "{pages:?}");
}

/// Adobe made the webhook but its answer was lost (a 502 on the way back):
/// the webhook is adopted, not made a second time.
#[tokio::test]
async fn a_registration_whose_answer_was_lost_adopts_what_adobe_made() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-l", "Mutual NDA", "OUT_FOR_SIGNATURE");
    fake.lose_webhook_answers(1);
    let app = watching_app(&fake).await;

    let view: Value = app.watch("adobe-sign", "agr-l").await.json().await.unwrap();
    let webhooks = fake.webhooks();
    assert_eq!(webhooks.len(), 1, "one webhook at Adobe");
    assert_eq!(view["webhook_id"], json!(webhooks.keys().next().unwrap()), "{view}");
    assert_eq!(view["watch_pending"], false, "{view}");
}

/// Adobe's DELETE needs `If-Match` with the ETag of `GET /webhooks/{id}`;
/// a refused delete leaves the webhook on record.
#[tokio::test]
async fn unwatch_deletes_with_if_match_and_a_refused_delete_is_not_done() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-u", "Mutual NDA", "OUT_FOR_SIGNATURE");
    fake.set_agreement("agr-r", "Mutual NDA", "OUT_FOR_SIGNATURE");
    let app = watching_app(&fake).await;
    assert_eq!(app.watch("adobe-sign", "agr-u").await.status(), 200);
    assert_eq!(app.watch("adobe-sign", "agr-r").await.status(), 200);
    let id_u = app.get_agreement("adobe-sign", "agr-u").await["webhook_id"].clone();

    assert_eq!(app.unwatch("adobe-sign", "agr-u").await.status(), 200);
    assert_eq!(fake.webhooks_deleted(), 1);
    let delete = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .expect("a DELETE was sent");
    assert_eq!(delete.path, format!("/api/rest/v6/webhooks/{}", id_u.as_str().unwrap()));
    assert!(delete.if_match.is_some(), "{delete:?}");
    assert_eq!(delete.status, Some(204));

    // The API user may not delete it (e.g. no webhook_retention scope), as
    // 403 or, per the webhook guide's table, 404 PERMISSION_DENIED: neither
    // is "already gone".
    for status in [403, 404] {
        fake.refuse_webhook_deletes(status, "PERMISSION_DENIED");
        let (answer, error) = error_of(app.unwatch("adobe-sign", "agr-r").await).await;
        assert_eq!(answer, 502, "{status}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains("PERMISSION_DENIED"), "{error}");
        let kept = app.get_agreement("adobe-sign", "agr-r").await;
        assert!(kept["webhook_id"].is_string(), "still on record: {kept}");
        assert_eq!(fake.webhooks().len(), 1);
    }
}

/// With Adobe's Webhooks OAuth 2.0, a per-agreement webhook is linked to the
/// account's `webhookEndpoint` (`webhookEndpointInfo`, no `webhookUrlInfo`:
/// developer guide, webhook APIs), so its notifications carry the token; a
/// registration whose answer was lost is found again by that link.
#[tokio::test]
async fn with_a_webhook_endpoint_watch_links_the_webhook_to_it() {
    const ENDPOINT: &str = "e6a238bc-1c67-463c-992c-9edc9ba637a7";
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-e1", "Mutual NDA", "OUT_FOR_SIGNATURE");
    fake.set_agreement("agr-e2", "Mutual NDA", "OUT_FOR_SIGNATURE");
    let app = spawn_app_with(&[
        ("SIGNHOOK_ADOBE_SIGN_API_BASE", &fake.base_url),
        ("SIGNHOOK_ADOBE_SIGN_API_TOKEN", ADOBE_API_TOKEN),
        ("SIGNHOOK_PROVIDER_API_MAX_ATTEMPTS", "1"),
        ("SIGNHOOK_PUBLIC_URL", PUBLIC_URL),
        ("SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL", "0"),
        ("SIGNHOOK_ADOBE_SIGN_WEBHOOK_ENDPOINT_ID", ENDPOINT),
    ])
    .await;
    assert_eq!(app.watch("adobe-sign", "agr-e1").await.status(), 200);
    let hooks = fake.webhooks();
    let (_, body) = hooks.iter().next().expect("one webhook");
    assert_eq!(body["webhookEndpointInfo"]["webhookEndpointId"], ENDPOINT, "{body}");
    assert!(body.get("webhookUrlInfo").is_none(), "{body}");

    // The answer is lost: the webhook made is adopted, not made twice.
    fake.lose_webhook_answers(1);
    let view: Value = app.watch("adobe-sign", "agr-e2").await.json().await.expect("JSON");
    let e2: Vec<_> = fake
        .webhooks()
        .into_iter()
        .filter(|(_, hook)| hook["resourceId"] == "agr-e2")
        .collect();
    assert_eq!(e2.len(), 1, "{e2:?}");
    assert_eq!(view["webhook_id"], e2[0].0.as_str(), "{view}");
}
