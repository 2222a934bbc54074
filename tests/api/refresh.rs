//! Manual refresh: `POST /api/agreements/{provider}/{id}/refresh` reads the
//! status from the provider's API (a fake the test starts) and applies it.

use serde_json::Value;

use crate::{
    common::fake_provider::{Failure, FakeProvider, ADOBE_API_TOKEN, BOLDSIGN_API_KEY},
    helpers::*,
};

/// An app polling `fake`, with no minimum interval between identical GETs
/// (the interval's own tests set one).
async fn app_polling(fake: &FakeProvider) -> TestApp {
    app_polling_with(fake, &[("SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL", "0")]).await
}

async fn app_polling_with(fake: &FakeProvider, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("SIGNHOOK_ADOBE_SIGN_API_BASE", fake.base_url.as_str()),
        ("SIGNHOOK_ADOBE_SIGN_API_TOKEN", ADOBE_API_TOKEN),
        ("SIGNHOOK_BOLDSIGN_API_BASE", &fake.base_url),
        ("SIGNHOOK_BOLDSIGN_API_KEY", BOLDSIGN_API_KEY),
        ("SIGNHOOK_PROVIDER_API_MAX_ATTEMPTS", "2"),
        ("SIGNHOOK_PROVIDER_API_RETRY_BASE_MS", "10"),
        // The events are dated weeks ago; with the default 6 h their
        // agreements would be stale at once and the reconciler's first pass
        // could poll them between the test's refreshes.
        ("SIGNHOOK_RECONCILE_STALE_AFTER", "8760h"),
    ];
    vars.extend_from_slice(extra);
    spawn_app_with(&vars).await
}

#[tokio::test]
async fn refresh_applies_the_providers_status_and_records_only_changes() {
    let fake = FakeProvider::start().await;
    let app = app_polling(&fake).await;
    let created = adobe_event(
        "n-1",
        "agr-1",
        "AGREEMENT_CREATED",
        Some("OUT_FOR_SIGNATURE"),
        "2026-11-20T09:00:00Z",
    );
    app.deliver_adobe(&created).await;
    fake.set_agreement("agr-1", "Mutual NDA", "OUT_FOR_SIGNATURE");

    let same: Value = app.refresh("adobe-sign", "agr-1").await.json().await.unwrap();
    assert_eq!(same["status"], "in_progress");
    assert_eq!(
        same["history"].as_array().unwrap().len(),
        1,
        "no change, no history entry: {same}"
    );

    // The completion webhook was lost; the refresh finds it.
    fake.set_agreement("agr-1", "Mutual NDA", "SIGNED");
    let response = app.refresh("adobe-sign", "agr-1").await;
    assert_eq!(response.status(), 200);
    let done: Value = response.json().await.unwrap();
    assert_eq!(
        (done["status"].as_str(), done["provider_status"].as_str()),
        (Some("completed"), Some("SIGNED"))
    );
    let history = done["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        (history[1]["source"].as_str(), history[1]["event_id"].as_str()),
        (Some("poll"), None)
    );

    // Refreshing again changes nothing; a stale provider answer cannot reopen it.
    assert_eq!(app.refresh("adobe-sign", "agr-1").await.status(), 200);
    fake.set_agreement("agr-1", "Mutual NDA", "OUT_FOR_SIGNATURE");
    assert_eq!(app.refresh("adobe-sign", "agr-1").await.status(), 200);
    assert_eq!(app.refresh("adobe-sign", "agr-1").await.status(), 200);
    let after = app.get_agreement("adobe-sign", "agr-1").await;
    assert_eq!(after["status"], "completed");
    assert_eq!(
        after["history"].as_array().unwrap().len(),
        3,
        "the stale answer is recorded once: {after}"
    );
}

#[tokio::test]
async fn refresh_of_an_agreement_never_seen_creates_it() {
    let fake = FakeProvider::start().await;
    let app = app_polling(&fake).await;
    fake.set_document("doc-9", "Offer letter", "Declined");

    let view: Value = app.refresh("boldsign", "doc-9").await.json().await.unwrap();

    assert_eq!(
        (view["status"].as_str(), view["name"].as_str()),
        (Some("declined"), Some("Offer letter"))
    );
}

#[tokio::test]
async fn refresh_reports_provider_failures_and_unknown_agreements() {
    let fake = FakeProvider::start().await;
    let app = app_polling(&fake).await;

    let (status, error) = error_of(app.refresh("adobe-sign", "nobody").await).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("not_found")));

    fake.set_agreement("agr-2", "x", "SIGNED");
    fake.fail_next(5, Failure::ServerError);
    let (status, error) = error_of(app.refresh("adobe-sign", "agr-2").await).await;
    assert_eq!((status, error["error"]["code"].as_str()), (502, Some("provider_error")));
    assert!(error["error"]["message"].as_str().unwrap().contains("500"), "{error}");

    let (status, error) = error_of(app.refresh("fusesign", "b-1").await).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("polling_not_configured"))
    );
    assert_eq!(
        app.client
            .post(app.url("/api/agreements/adobe-sign/agr-2/refresh"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}
