//! Provider API calls as the real providers allow them, against the fake
//! provider (each behaviour cites its source there): the account's budget
//! and a throttling pause shared by replicas (two apps on one database),
//! Adobe's minimum polling interval and ETags, permission errors, what is
//! polled, base-URI discovery, FuseSign's rotated refresh tokens and
//! per-bundle tenants, and the OAuth client ID accepted on webhooks.

use serde_json::Value;

use crate::{
    common::fake_provider::{
        Failure, FakeProvider, ADOBE_API_TOKEN, BOLDSIGN_API_KEY, FUSESIGN_TENANT_ID, OAUTH_CLIENT_ID,
        OAUTH_CLIENT_SECRET, OAUTH_REFRESH_TOKEN,
    },
    helpers::*,
};

const AGREEMENT_PATH: &str = "/api/rest/v6/agreements/";

/// Adobe Sign and BoldSign pointed at `fake`, with `extra` on top.
fn polling_vars<'a>(fake: &'a FakeProvider, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut vars = vec![
        ("SIGNHOOK_ADOBE_SIGN_API_BASE", fake.base_url.as_str()),
        ("SIGNHOOK_ADOBE_SIGN_API_TOKEN", ADOBE_API_TOKEN),
        ("SIGNHOOK_BOLDSIGN_API_BASE", fake.base_url.as_str()),
        ("SIGNHOOK_BOLDSIGN_API_KEY", BOLDSIGN_API_KEY),
        ("SIGNHOOK_PROVIDER_API_MAX_ATTEMPTS", "1"),
        // The reconciler stays out of the way unless a test wants it.
        ("SIGNHOOK_RECONCILE_STALE_AFTER", "3650d"),
    ];
    vars.extend_from_slice(extra);
    vars
}

async fn created(app: &TestApp, agreement_id: &str, status: &str) {
    let body = adobe_event(
        &format!("n-{agreement_id}"),
        agreement_id,
        "AGREEMENT_CREATED",
        Some(status),
        "2026-11-20T09:00:00Z",
    );
    app.deliver_adobe(&body).await;
    app.wait_until("the agreement to be applied", || async {
        app.get_agreement("adobe-sign", agreement_id).await["status"].is_string()
    })
    .await;
}

async fn json(response: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry_after, response.json().await.expect("a JSON answer"))
}

async fn provider_view(app: &TestApp, name: &str) -> Value {
    let all: Value = app.admin_get("/api/providers").await.json().await.unwrap();
    all["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .expect("listed")
}

#[tokio::test]
async fn a_429_pauses_every_call_to_the_account_on_every_replica_for_as_long_as_asked() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-1", "NDA", "OUT_FOR_SIGNATURE");
    fake.set_agreement("agr-2", "NDA", "OUT_FOR_SIGNATURE");
    let vars = polling_vars(&fake, &[("SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL", "0")]);
    let first = spawn_app_with(&vars).await;
    let second = spawn_app_on(&first.db_name, &vars).await;
    created(&first, "agr-1", "OUT_FOR_SIGNATURE").await;
    created(&first, "agr-2", "OUT_FOR_SIGNATURE").await;

    // Adobe throttles for two hours (429, Retry-After and retryAfter).
    fake.fail_next(1, Failure::TooManyRequests { retry_after_secs: 7200 });
    let (status, retry_after, view) = json(first.refresh("adobe-sign", "agr-1").await).await;
    assert_eq!(status, 200, "answered from the last known state: {view}");
    assert_eq!(view["refresh"]["polled"], false, "{view}");
    assert_eq!(view["refresh"]["reason"], "paused", "{view}");
    assert_eq!(view["status"], "in_progress");
    let secs: u64 = retry_after.expect("a Retry-After header").parse().unwrap();
    assert!((7190..=7200).contains(&secs), "the whole wait, not capped: {secs}");

    // The other replica sends nothing either, for another agreement too.
    let (status, _, view) = json(second.refresh("adobe-sign", "agr-2").await).await;
    assert_eq!(
        (status, view["refresh"]["reason"].as_str()),
        (200, Some("paused")),
        "{view}"
    );
    assert_eq!(fake.api_requests().len(), 1, "only the throttled call reached Adobe");

    let shown = provider_view(&second, "adobe-sign").await;
    assert_eq!(shown["api"]["paused"], true, "{shown}");
    assert_eq!(shown["api"]["budget"]["throttled_total"], 1, "{shown}");
    assert!(
        shown["api"]["budget"]["pause_reason"].as_str().unwrap().contains("429"),
        "{shown}"
    );
    assert!(shown["api"]["budget"]["paused_until"].is_string(), "{shown}");
    // Other providers' accounts are not paused.
    assert_eq!(provider_view(&second, "boldsign").await["api"]["paused"], false);

    // Never seen: nothing to answer from, so 429 with Retry-After.
    let response = second.refresh("adobe-sign", "agr-new").await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let (_, error) = error_of(response).await;
    assert_eq!(error["error"]["code"], "provider_throttled");
}

#[tokio::test]
async fn two_replicas_share_one_budget() {
    let fake = FakeProvider::start().await;
    fake.set_document("doc-1", "Offer", "InProgress");
    fake.set_document("doc-2", "Offer", "InProgress");
    // 60 an hour: one call now, the next a minute later, for both replicas.
    let vars = polling_vars(&fake, &[("SIGNHOOK_BOLDSIGN_API_REQUESTS_PER_HOUR", "60")]);
    let first = spawn_app_with(&vars).await;
    let second = spawn_app_on(&first.db_name, &vars).await;

    let (status, _, view) = json(first.refresh("boldsign", "doc-1").await).await;
    assert_eq!(
        (status, view["refresh"]["polled"].as_bool()),
        (200, Some(true)),
        "{view}"
    );

    let response = second.refresh("boldsign", "doc-2").await;
    assert_eq!(response.status(), 429, "the budget is spent on every replica");
    let secs: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((50..=60).contains(&secs), "{secs}");
    let (_, error) = error_of(response).await;
    assert!(
        error["error"]["message"].as_str().unwrap().contains("budget"),
        "{error}"
    );
    assert_eq!(fake.api_requests().len(), 1);

    let shown = provider_view(&second, "boldsign").await;
    assert_eq!(shown["api"]["requests_per_hour"], 60, "{shown}");
    assert!(shown["api"]["budget"]["available"].as_f64().unwrap() < 1.0, "{shown}");
}

#[tokio::test]
async fn boldsign_defaults_to_its_documented_limits() {
    let fake = FakeProvider::start().await;
    let live = spawn_app_with(&polling_vars(&fake, &[])).await;
    assert_eq!(provider_view(&live, "boldsign").await["api"]["requests_per_hour"], 2000);
    let sandbox = spawn_app_with(&polling_vars(
        &fake,
        &[("SIGNHOOK_BOLDSIGN_API_ENVIRONMENT", "sandbox")],
    ))
    .await;
    assert_eq!(
        provider_view(&sandbox, "boldsign").await["api"]["requests_per_hour"],
        50
    );
    let adobe = provider_view(&sandbox, "adobe-sign").await;
    assert_eq!(adobe["api"]["min_interval_secs"], 600, "{adobe}");
}

/// Adobe allows one identical GET per 10 minutes below Enterprise; a
/// refresh inside it answers from the last poll and sends nothing, on any
/// replica.
#[tokio::test]
async fn a_refresh_inside_the_minimum_interval_answers_from_the_last_poll() {
    let fake = FakeProvider::start().await;
    fake.set_min_poll_interval(std::time::Duration::from_secs(600));
    fake.set_agreement("agr-1", "NDA", "OUT_FOR_SIGNATURE");
    let vars = polling_vars(&fake, &[]);
    let first = spawn_app_with(&vars).await;
    let second = spawn_app_on(&first.db_name, &vars).await;
    created(&first, "agr-1", "OUT_FOR_SIGNATURE").await;

    let (_, _, polled) = json(first.refresh("adobe-sign", "agr-1").await).await;
    assert_eq!(polled["refresh"]["polled"], true, "{polled}");
    fake.set_agreement("agr-1", "NDA", "SIGNED");
    for app in [&first, &second] {
        let (status, retry_after, view) = json(app.refresh("adobe-sign", "agr-1").await).await;
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["refresh"]["polled"], false, "{view}");
        assert_eq!(view["refresh"]["reason"], "min_interval", "{view}");
        assert!(
            view["refresh"]["message"]
                .as_str()
                .unwrap()
                .contains("minimum polling interval"),
            "{view}"
        );
        assert_eq!(view["status"], "in_progress", "as last polled: {view}");
        let secs: u64 = retry_after.unwrap().parse().unwrap();
        assert!((590..=600).contains(&secs), "{secs}");
    }
    assert_eq!(
        fake.request_count(&format!("{AGREEMENT_PATH}agr-1")),
        1,
        "Adobe saw one GET"
    );
    assert!(fake.api_requests().iter().all(|r| r.status != Some(429)));
}

/// A deployment configured below the account's real interval (Enterprise
/// settings on a lower tier) gets Adobe's 429 with the retry penalty; that
/// pauses the account rather than retrying inside the interval.
#[tokio::test]
async fn adobes_polling_threshold_throttle_pauses_the_account() {
    let fake = FakeProvider::start().await;
    fake.set_min_poll_interval(std::time::Duration::from_secs(600));
    fake.set_agreement("agr-1", "NDA", "OUT_FOR_SIGNATURE");
    fake.set_agreement("agr-2", "NDA", "OUT_FOR_SIGNATURE");
    let app = spawn_app_with(&polling_vars(
        &fake,
        &[("SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL", "20s")],
    ))
    .await;
    created(&app, "agr-1", "OUT_FOR_SIGNATURE").await;
    created(&app, "agr-2", "OUT_FOR_SIGNATURE").await;

    assert_eq!(
        json(app.refresh("adobe-sign", "agr-1").await).await.2["refresh"]["polled"],
        true
    );
    // Past signhook's 20 s, inside Adobe's 10 minutes: the next identical GET
    // is throttled by Adobe (moved back in the record, as if 21 s had passed).
    sqlx::query(
        "UPDATE provider_requests SET called_at = called_at - interval '21 seconds' WHERE account = 'adobe-sign'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let (_, retry_after, view) = json(app.refresh("adobe-sign", "agr-1").await).await;
    assert_eq!(view["refresh"]["reason"], "paused", "{view}");
    assert_eq!(retry_after.as_deref(), Some("600"));
    // The pause covers every agreement of the account.
    let (_, _, other) = json(app.refresh("adobe-sign", "agr-2").await).await;
    assert_eq!(other["refresh"]["polled"], false, "{other}");
    assert_eq!(fake.api_requests().len(), 2, "nothing sent after the 429");
}

/// After the interval, a poll carries the last ETag; Adobe's 304 means
/// unchanged and is answered from the kept body.
#[tokio::test]
async fn polls_after_the_interval_ask_if_none_match_and_a_304_is_unchanged() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-1", "NDA", "OUT_FOR_SIGNATURE");
    let app = spawn_app_with(&polling_vars(&fake, &[("SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL", "1s")])).await;
    created(&app, "agr-1", "OUT_FOR_SIGNATURE").await;
    let refreshed = || async {
        let (_, _, view) = json(app.refresh("adobe-sign", "agr-1").await).await;
        (view["refresh"]["polled"] == true).then_some(view)
    };

    assert!(refreshed().await.is_some());
    app.wait_until("a poll after the interval", || async { refreshed().await.is_some() })
        .await;
    let gets: Vec<_> = fake.api_requests();
    let last = gets.last().unwrap();
    assert!(last.if_none_match.is_some(), "{last:?}");
    assert_eq!(last.status, Some(304));
    assert_eq!(app.get_agreement("adobe-sign", "agr-1").await["status"], "in_progress");

    fake.set_agreement("agr-1", "NDA", "SIGNED");
    app.wait_until("the change to be read", || async {
        refreshed().await.is_some_and(|view| view["status"] == "completed")
    })
    .await;
    assert_eq!(fake.api_requests().last().unwrap().status, Some(200));
}

#[tokio::test]
async fn permission_denied_is_counted_failed_and_shown_on_the_agreement() {
    let fake = FakeProvider::start().await;
    fake.deny_agreement("agr-x", 404);
    let app = spawn_app_with(&polling_vars(
        &fake,
        &[
            ("SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL", "0"),
            ("SIGNHOOK_RECONCILE_INTERVAL", "100ms"),
            ("SIGNHOOK_RECONCILE_STALE_AFTER", "1h"),
        ],
    ))
    .await;
    created(&app, "agr-x", "OUT_FOR_SIGNATURE").await;

    app.wait_until("the failed poll", || async {
        app.get_agreement("adobe-sign", "agr-x").await["poll_failures"] == 1
    })
    .await;
    let view = app.get_agreement("adobe-sign", "agr-x").await;
    let error = view["last_poll_error"].as_str().unwrap();
    assert!(error.contains("404 PERMISSION_DENIED"), "{error}");
    assert!(error.contains("agreement_read:account"), "{error}");
    assert!(view["next_poll_at"].is_string(), "backed off, not 'not found': {view}");

    let (status, error) = error_of(app.refresh("adobe-sign", "agr-x").await).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (502, Some("provider_permission_denied"))
    );
}

/// Drafts and web forms / bulk sends are never polled by the reconciler;
/// a refresh reads a draft, and refuses a web form clearly.
#[tokio::test]
async fn only_what_can_move_is_polled() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-draft", "NDA", "AUTHORING");
    fake.set_agreement("agr-open", "NDA", "OUT_FOR_SIGNATURE");
    let app = spawn_app_with(&polling_vars(
        &fake,
        &[
            ("SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL", "0"),
            ("SIGNHOOK_RECONCILE_INTERVAL", "100ms"),
            ("SIGNHOOK_RECONCILE_STALE_AFTER", "1h"),
            ("SIGNHOOK_RECONCILE_CONCURRENCY", "1"),
        ],
    ))
    .await;
    created(&app, "agr-draft", "AUTHORING").await;
    let widget = serde_json::json!({
        "webhookNotificationId": "n-w", "event": "WIDGET_CREATED", "eventResourceType": "widget",
        "eventDate": "2026-11-19T09:00:00Z",
        "widget": {"id": "wid-1", "name": "Sign-up form", "status": "ACTIVE"},
    });
    app.deliver_adobe(&widget).await;
    app.wait_until("the web form to be applied", || async {
        app.get_agreement("adobe-sign", "wid-1").await["status"].is_string()
    })
    .await;
    // Due last: the draft and the web form are older.
    created(&app, "agr-open", "OUT_FOR_SIGNATURE").await;

    app.wait_until("the open agreement to be polled", || async {
        app.get_agreement("adobe-sign", "agr-open").await["last_polled_at"].is_string()
    })
    .await;
    for id in ["agr-draft", "wid-1"] {
        assert_eq!(
            app.get_agreement("adobe-sign", id).await["last_polled_at"],
            Value::Null,
            "{id}"
        );
    }
    assert_eq!(fake.api_requests().len(), 1, "{:?}", fake.api_requests());

    assert_eq!(
        app.refresh("adobe-sign", "agr-draft").await.status(),
        200,
        "a refresh reads a draft"
    );
    let (status, error) = error_of(app.refresh("adobe-sign", "wid-1").await).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("not_pollable")));
    assert!(
        error["error"]["message"].as_str().unwrap().contains("widget"),
        "{error}"
    );
}

/// Without `SIGNHOOK_ADOBE_SIGN_API_BASE` the access point comes from
/// `GET /baseUris`; when the account moves shard (`INVALID_API_ACCESS_POINT`)
/// it is discovered again and the call repeated there.
#[tokio::test]
async fn adobes_access_point_is_discovered_and_rediscovered_after_a_shard_move() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-1", "NDA", "OUT_FOR_SIGNATURE");
    let app = spawn_app_with(&polling_vars(
        &fake,
        &[
            ("SIGNHOOK_ADOBE_SIGN_API_BASE", ""),
            ("SIGNHOOK_ADOBE_SIGN_API_DISCOVERY_URL", fake.base_url.as_str()),
            ("SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL", "0"),
        ],
    ))
    .await;

    let first_shard = fake.access_point();
    let (status, _, view) = json(app.refresh("adobe-sign", "agr-1").await).await;
    assert_eq!(status, 200, "{view}");
    let paths: Vec<String> = fake.api_requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        ["/api/rest/v6/baseUris", "/shard-a/api/rest/v6/agreements/agr-1"],
        "discovered at {first_shard}"
    );

    fake.move_shard();
    fake.set_agreement("agr-1", "NDA", "SIGNED");
    let (status, _, view) = json(app.refresh("adobe-sign", "agr-1").await).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("completed")), "{view}");
    let paths: Vec<String> = fake.api_requests().iter().skip(2).map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/shard-a/api/rest/v6/agreements/agr-1",
            "/api/rest/v6/baseUris",
            "/shard-b/api/rest/v6/agreements/agr-1"
        ]
    );
}

/// FuseSign rotates refresh tokens; the newest is kept in PostgreSQL, so
/// the next process (or replica) uses it rather than the configured one.
#[tokio::test]
async fn a_rotated_fusesign_refresh_token_survives_a_restart() {
    let fake = FakeProvider::start().await;
    fake.rotate_refresh_tokens();
    fake.set_bundle("b-1", "Engagement letter", "Live");
    let vars = [
        ("SIGNHOOK_FUSESIGN_API_BASE", fake.base_url.as_str()),
        ("SIGNHOOK_FUSESIGN_API_TENANT_ID", FUSESIGN_TENANT_ID),
        ("SIGNHOOK_FUSESIGN_API_CLIENT_ID", OAUTH_CLIENT_ID),
        ("SIGNHOOK_FUSESIGN_API_CLIENT_SECRET", OAUTH_CLIENT_SECRET),
        ("SIGNHOOK_FUSESIGN_API_REFRESH_TOKEN", OAUTH_REFRESH_TOKEN),
    ];
    let first = spawn_app_with(&vars).await;
    assert_eq!(first.refresh("fusesign", "b-1").await.status(), 200);
    let rotated = fake.current_refresh_token();
    assert_ne!(rotated, OAUTH_REFRESH_TOKEN, "the fake rotated it");
    let kept: String = sqlx::query_scalar("SELECT refresh_token FROM provider_oauth_tokens WHERE account = 'fusesign'")
        .fetch_one(&first.db)
        .await
        .unwrap();
    assert_eq!(kept, rotated);

    // A new process with the same configuration: the configured token was
    // refused by FuseSign since the rotation.
    let restarted = spawn_app_on(&first.db_name, &vars).await;
    let response = restarted.refresh("fusesign", "b-1").await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    assert_eq!(fake.token_requests(), 2);
}

/// A bundle is polled in the tenant its webhooks named, not the configured one.
#[tokio::test]
async fn fusesign_bundles_are_polled_in_their_own_tenant() {
    const OTHER_TENANT: &str = "0c1b5f52-3b8f-4e36-9a57-1f2d3c4b5a69";
    let fake = FakeProvider::start().await;
    fake.set_bundle_in(OTHER_TENANT, "b-2", "Letter", "Finalised");
    let app = spawn_app_with(&[
        ("SIGNHOOK_FUSESIGN_API_BASE", fake.base_url.as_str()),
        ("SIGNHOOK_FUSESIGN_API_TENANT_ID", FUSESIGN_TENANT_ID),
        ("SIGNHOOK_FUSESIGN_API_TOKEN", "fusesign-wholesale-token-1"),
    ])
    .await;
    let mut event = fuse_event("h-1", "b-2", "CustomerDocumentSigned", "2026-11-20T09:00:00Z");
    event["TenantId"] = serde_json::json!(OTHER_TENANT);
    assert_eq!(app.post_fusesign(&event).await.status(), 200);
    app.wait_until("the bundle to be applied", || async {
        app.admin_get("/api/agreements/fusesign/b-2").await.status() == 200
    })
    .await;

    let (status, _, view) = json(app.refresh("fusesign", "b-2").await).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("completed")), "{view}");
    let last = fake.api_requests().last().cloned().unwrap();
    assert!(last.query.contains(&format!("TenantId={OTHER_TENANT}")), "{last:?}");
}

/// Webhooks that watch registers carry the OAuth application's client ID;
/// it is accepted without being listed in SIGNHOOK_ADOBE_SIGN_CLIENT_IDS.
#[tokio::test]
async fn the_oauth_client_id_is_accepted_on_webhooks() {
    let fake = FakeProvider::start().await;
    let app = spawn_app_with(&[
        ("SIGNHOOK_ADOBE_SIGN_CLIENT_IDS", ""),
        ("SIGNHOOK_ADOBE_SIGN_API_BASE", fake.base_url.as_str()),
        ("SIGNHOOK_ADOBE_SIGN_OAUTH_CLIENT_ID", OAUTH_CLIENT_ID),
        ("SIGNHOOK_ADOBE_SIGN_OAUTH_CLIENT_SECRET", OAUTH_CLIENT_SECRET),
        ("SIGNHOOK_ADOBE_SIGN_OAUTH_REFRESH_TOKEN", OAUTH_REFRESH_TOKEN),
    ])
    .await;
    let verified = app.verify_adobe(Some(OAUTH_CLIENT_ID)).await;
    assert_eq!(verified.status(), 200);
    assert_eq!(verified.headers()["x-adobesign-clientid"], OAUTH_CLIENT_ID);
    let refused = app.verify_adobe(Some("UB7E5BXCXY")).await;
    assert_eq!(
        refused.status(),
        403,
        "Adobe's UI client ID is not accepted unless listed"
    );
    let (_, error) = error_of(refused).await;
    assert!(
        error["error"]["message"].as_str().unwrap().contains("UB7E5BXCXY"),
        "{error}"
    );
}

/// With OAuth and no configured base, the token is refreshed on the
/// discovery host and the access point its answer names is used: no
/// `GET /baseUris` is needed.
#[tokio::test]
async fn adobes_access_point_can_come_from_the_oauth_answer() {
    let fake = FakeProvider::start().await;
    fake.name_access_point_in_token_answers();
    fake.set_agreement("agr-1", "NDA", "SIGNED");
    let app = spawn_app_with(&[
        ("SIGNHOOK_ADOBE_SIGN_API_DISCOVERY_URL", fake.base_url.as_str()),
        ("SIGNHOOK_ADOBE_SIGN_OAUTH_CLIENT_ID", OAUTH_CLIENT_ID),
        ("SIGNHOOK_ADOBE_SIGN_OAUTH_CLIENT_SECRET", OAUTH_CLIENT_SECRET),
        ("SIGNHOOK_ADOBE_SIGN_OAUTH_REFRESH_TOKEN", OAUTH_REFRESH_TOKEN),
        ("SIGNHOOK_RECONCILE_STALE_AFTER", "3650d"),
    ])
    .await;

    let (status, _, view) = json(app.refresh("adobe-sign", "agr-1").await).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("completed")), "{view}");
    let paths: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| !r.is_document_download())
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(paths, ["/oauth/v2/refresh", "/shard-a/api/rest/v6/agreements/agr-1"]);
}

/// `GET /baseUris` is a GET like any other under Adobe's minimum interval: a
/// second replica discovering within it uses the answer the first one got,
/// and does not ask again.
#[tokio::test]
async fn replicas_discovering_together_ask_for_the_base_uris_once() {
    let fake = FakeProvider::start().await;
    fake.set_min_poll_interval(std::time::Duration::from_secs(600));
    fake.set_agreement("agr-1", "NDA", "OUT_FOR_SIGNATURE");
    fake.set_agreement("agr-2", "NDA", "SIGNED");
    let vars = polling_vars(
        &fake,
        &[
            ("SIGNHOOK_ADOBE_SIGN_API_BASE", ""),
            ("SIGNHOOK_ADOBE_SIGN_API_DISCOVERY_URL", fake.base_url.as_str()),
        ],
    );
    let first = spawn_app_with(&vars).await;
    let second = spawn_app_on(&first.db_name, &vars).await;

    assert_eq!(first.refresh("adobe-sign", "agr-1").await.status(), 200);
    let (status, _, view) = json(second.refresh("adobe-sign", "agr-2").await).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("completed")), "{view}");
    assert_eq!(fake.request_count("/api/rest/v6/baseUris"), 1);
    assert!(
        fake.api_requests().iter().all(|r| r.status == Some(200)),
        "{:?}",
        fake.api_requests()
    );
}
