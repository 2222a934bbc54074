//! Adobe Sign's Webhooks OAuth 2.0 with signhook as the authorization
//! server (developer guide, `acrobat_sign_events/webhooks-oauth-2-0`): the
//! client-credentials token endpoint, and notifications refused without a
//! valid bearer token. The requests below are what Adobe sends as the guide
//! describes it: a token request to the `authorizationServerUrl` with the
//! `webhookEndpoint`'s `clientId`/`clientSecret` (and `scope`), then each
//! notification with `Authorization: Bearer <access_token>` besides the
//! usual `X-AdobeSign-ClientId`.

use base64::Engine;
use reqwest::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::Value;

use crate::helpers::*;

const CLIENT_ID: &str = "adobe-webhooks";
const CLIENT_SECRET: &str = "webhook-client-secret-0123456789abcdef";
const SIGNING_KEY: &str = "webhook-signing-key-0123456789abcdef";

async fn oauth_app(ttl: &str) -> TestApp {
    let clients = format!("{CLIENT_ID}:{CLIENT_SECRET}");
    spawn_app_with(&[
        ("SIGNHOOK_ADOBE_SIGN_WEBHOOK_OAUTH_CLIENTS", &clients),
        ("SIGNHOOK_ADOBE_SIGN_WEBHOOK_OAUTH_SIGNING_KEYS", SIGNING_KEY),
        ("SIGNHOOK_ADOBE_SIGN_WEBHOOK_OAUTH_TOKEN_TTL", ttl),
    ])
    .await
}

/// `POST /webhooks/adobe-sign/oauth/token` with a form body.
async fn token_request(app: &TestApp, form: &str, basic: Option<(&str, &str)>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/webhooks/adobe-sign/oauth/token"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form.to_owned());
    if let Some((id, secret)) = basic {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        request = request.header(AUTHORIZATION, format!("Basic {encoded}"));
    }
    request.send().await.expect("request sent")
}

async fn issued_token(app: &TestApp) -> String {
    let form =
        format!("grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}&scope=webhook");
    let response = token_request(app, &form, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["token_type"], "Bearer", "{answer}");
    assert!(answer["expires_in"].as_u64().is_some_and(|s| s > 0), "{answer}");
    answer["access_token"].as_str().expect("access_token").to_owned()
}

/// A notification as Adobe sends it with OAuth: client ID and, if given, a bearer token.
async fn post_notification(app: &TestApp, token: Option<&str>, id: &str) -> reqwest::Response {
    let body = adobe_event(
        id,
        "agr-oauth",
        "AGREEMENT_CREATED",
        Some("OUT_FOR_SIGNATURE"),
        "2026-11-20T09:00:00Z",
    );
    let mut request = app
        .client
        .post(app.url("/webhooks/adobe-sign"))
        .header("X-AdobeSign-ClientId", ADOBE_CLIENT_ID)
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request sent")
}

#[tokio::test]
async fn an_issued_token_is_accepted_on_notifications() {
    let app = oauth_app("15m").await;
    let token = issued_token(&app).await;
    let response = post_notification(&app, Some(&token), "n-1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-adobesign-clientid"], ADOBE_CLIENT_ID);
    assert_eq!(app.event_count("adobe-sign").await, 1);

    // HTTP Basic client authentication works the same (RFC 6749 §2.3.1).
    let response = token_request(&app, "grant_type=client_credentials", Some((CLIENT_ID, CLIENT_SECRET))).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("JSON");
    let token = answer["access_token"].as_str().expect("token");
    assert_eq!(post_notification(&app, Some(token), "n-2").await.status(), 200);
}

#[tokio::test]
async fn notifications_without_a_valid_token_are_refused() {
    let app = oauth_app("15m").await;
    let token = issued_token(&app).await;
    let mut tampered = token.clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    // A token signed with another key (an HS256 JWT of the same shape).
    let forged = {
        let clients = format!("{CLIENT_ID}:{CLIENT_SECRET}");
        let other = spawn_app_with(&[
            ("SIGNHOOK_ADOBE_SIGN_WEBHOOK_OAUTH_CLIENTS", &clients),
            (
                "SIGNHOOK_ADOBE_SIGN_WEBHOOK_OAUTH_SIGNING_KEYS",
                "another-signing-key-0123456789abcdef",
            ),
        ])
        .await;
        issued_token(&other).await
    };
    for (token, code) in [
        (None, "missing_bearer_token"),
        (Some("not-a-jwt"), "invalid_bearer_token"),
        (Some(tampered.as_str()), "invalid_bearer_token"),
        (Some(forged.as_str()), "invalid_bearer_token"),
    ] {
        let response = post_notification(&app, token, "n-refused").await;
        assert!(response.headers().get(WWW_AUTHENTICATE).is_some());
        let (status, body) = error_of(response).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some(code)),
            "{token:?}: {body}"
        );
    }
    assert_eq!(app.event_count("adobe-sign").await, 0, "nothing stored");
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = oauth_app("1s").await;
    let token = issued_token(&app).await;
    // Accepted until it expires (a second), then refused: wait for that.
    let deadline = std::time::Instant::now() + WAIT_LIMIT;
    let mut n = 0;
    let (status, body) = loop {
        n += 1;
        let response = post_notification(&app, Some(&token), &format!("n-{n}")).await;
        if response.status() != 200 {
            break error_of(response).await;
        }
        assert!(std::time::Instant::now() < deadline, "the token was never refused");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("expired_bearer_token")),
        "{body}"
    );
}

#[tokio::test]
async fn a_wrong_client_secret_gets_the_oauth_error() {
    let app = oauth_app("15m").await;
    for response in [
        token_request(
            &app,
            &format!("grant_type=client_credentials&client_id={CLIENT_ID}&client_secret=wrong-secret"),
            None,
        )
        .await,
        token_request(&app, "grant_type=client_credentials", Some((CLIENT_ID, "wrong-secret"))).await,
        token_request(
            &app,
            &format!("grant_type=client_credentials&client_id=someone&client_secret={CLIENT_SECRET}"),
            None,
        )
        .await,
    ] {
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()[WWW_AUTHENTICATE], r#"Basic realm="signhook""#);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["error"], "invalid_client", "RFC 6749 §5.2: {body}");
        assert!(body["error_description"].is_string());
        assert!(body.get("access_token").is_none());
    }
    let wrong_grant = format!("grant_type=password&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}");
    let response = token_request(&app, &wrong_grant, None).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"], "unsupported_grant_type", "{body}");
}

#[tokio::test]
async fn the_verification_request_needs_no_token() {
    // Adobe's guide names notifications as carrying the token, not the GET.
    let app = oauth_app("15m").await;
    assert_eq!(app.verify_adobe(Some(ADOBE_CLIENT_ID)).await.status(), 200);
    // One that carries a token must carry a valid one.
    let response = app
        .client
        .get(app.url("/webhooks/adobe-sign"))
        .header("X-AdobeSign-ClientId", ADOBE_CLIENT_ID)
        .bearer_auth("not-a-jwt")
        .send()
        .await
        .expect("request sent");
    assert!(response.headers().get("x-adobesign-clientid").is_none());
    let (status, body) = error_of(response).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_bearer_token")),
        "{body}"
    );
    let token = issued_token(&app).await;
    let response = app
        .client
        .get(app.url("/webhooks/adobe-sign"))
        .header("X-AdobeSign-ClientId", ADOBE_CLIENT_ID)
        .bearer_auth(token)
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn without_webhook_oauth_the_token_endpoint_does_not_exist() {
    let app = spawn_app().await;
    let response = token_request(&app, "grant_type=client_credentials", Some((CLIENT_ID, CLIENT_SECRET))).await;
    let (status, body) = error_of(response).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    // And the client ID alone still authenticates notifications.
    assert_eq!(post_notification(&app, None, "n-plain").await.status(), 200);
}
