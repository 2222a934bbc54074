//! `GET /api/providers` and `GET /api/openapi.json`.

use serde_json::{json, Value};

use crate::{
    common::fake_provider::{FakeProvider, ADOBE_API_TOKEN},
    helpers::*,
};

#[tokio::test]
async fn providers_shows_setup_activity_and_counts_without_secrets() {
    let fake = FakeProvider::start().await;
    let app = spawn_app_with(&[
        ("SIGNHOOK_ADOBE_SIGN_API_BASE", &fake.base_url),
        ("SIGNHOOK_ADOBE_SIGN_API_TOKEN", ADOBE_API_TOKEN),
    ])
    .await;
    let created = adobe_event(
        "p-1",
        "agr-p",
        "AGREEMENT_CREATED",
        Some("OUT_FOR_SIGNATURE"),
        "2026-11-24T09:00:00Z",
    );
    app.deliver_adobe(&created).await;

    let response = app.admin_get("/api/providers").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for secret in [ADOBE_API_TOKEN, ADOBE_CLIENT_ID, BOLDSIGN_SECRET, FUSESIGN_SIGNATURE] {
        assert!(!text.contains(secret), "{text}");
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    let providers = body["providers"].as_array().unwrap();
    let names: Vec<_> = providers.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["adobe-sign", "boldsign", "fusesign"]);
    let adobe = &providers[0];
    assert_eq!(adobe["webhook_auth"], json!({"configured": true, "kind": "client_id"}));
    assert_eq!(
        (&adobe["polling"], &adobe["watch_supported"]),
        (&json!(true), &json!(true))
    );
    assert!(adobe["last_webhook_at"].is_string(), "{adobe}");
    assert_eq!(adobe["silent"], false);
    assert_eq!(adobe["agreements"], json!({"in_progress": 1}));
    assert_eq!(adobe["events"], json!({"processed": 1}));
    let boldsign = &providers[1];
    assert_eq!(
        boldsign["webhook_auth"],
        json!({"configured": true, "kind": "hmac_sha256"})
    );
    assert_eq!(
        (&boldsign["polling"], &boldsign["watch_supported"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(boldsign["last_webhook_at"], Value::Null);
    assert_eq!(boldsign["agreements"], json!({}));
    assert_eq!(providers[2]["webhook_auth"]["kind"], "shared_signature");

    assert_eq!(app.get("/api/providers").await.status(), 401);
    // The start-up lines saying which providers poll: tests/process/logs.rs.
}

#[tokio::test]
async fn openapi_document_lists_every_api_route() {
    let app = spawn_app().await;
    // No token needed: the document holds no data.
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let routes = [
        ("get", "/api/agreements/{provider}/{agreement_id}"),
        ("post", "/api/agreements/{provider}/{agreement_id}/refresh"),
        ("post", "/api/agreements/{provider}/{agreement_id}/watch"),
        ("delete", "/api/agreements/{provider}/{agreement_id}/watch"),
        ("get", "/api/events"),
        ("post", "/api/events/{id}/replay"),
        ("get", "/api/stats"),
        ("get", "/api/providers"),
        ("get", "/api/agreements/{provider}/{agreement_id}/documents"),
        ("get", "/api/agreements/{provider}/{agreement_id}/documents/{kind}"),
        ("post", "/api/agreements/{provider}/{agreement_id}/documents/refetch"),
        ("get", "/api/openapi.json"),
        ("get", "/api/agreements"),
        ("get", "/api/changes"),
        ("get", "/api/deliveries"),
        ("post", "/api/deliveries/{id}/retry"),
        ("get", "/api/destinations"),
        ("post", "/api/destinations/{name}/recover"),
        ("post", "/api/destinations/{name}/enable"),
        ("get", "/webhooks/{provider}"),
        ("post", "/webhooks/{provider}"),
        ("post", "/webhooks/{provider}/oauth/token"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    ];
    for (method, path) in routes {
        assert!(
            document["paths"][path][method].is_object(),
            "{method} {path} is documented"
        );
    }
    let documented: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, routes.len(), "no undocumented extras or missing routes");
    assert!(document["components"]["securitySchemes"]["admin_token"].is_object());
    // The body of an outbound delivery is documented too.
    assert!(document["components"]["schemas"]["DeliveryPayload"].is_object());

    let disabled = spawn_app_with(&[("SIGNHOOK_ADMIN_TOKEN", "")]).await;
    let response = disabled.get("/api/openapi.json").await;
    assert_eq!(response.status(), 404, "no admin API, no document");
}

/// The answers every operation can give are in the document (a schema-based
/// fuzz run, `scripts/schemathesis.sh`, found the admin API's 401s and the
/// webhooks' 404 for an unknown provider missing).
#[tokio::test]
async fn openapi_document_lists_the_common_refusals_of_every_operation() {
    let app = spawn_app().await;
    let document: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            let mut expected = vec!["500"];
            if path.starts_with("/api/") && path != "/api/openapi.json" {
                expected.extend(["401", "404", "503"]);
            }
            if path.starts_with("/api/") && path.contains('{') {
                expected.push("400");
            }
            if path.starts_with("/webhooks/") {
                expected.push("404");
            }
            for status in expected {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} documents {status}: {responses:?}"
                );
            }
        }
    }
}
