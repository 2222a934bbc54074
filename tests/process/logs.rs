//! What the log says (and never says): start-up lines naming what is not
//! configured, and no personal data from payloads. (Log lines that go with
//! a metric are checked beside it, in metrics.rs.)

use serde_json::Value;

use crate::{
    common::{
        adobe_event, boldsign_event,
        fake_provider::{
            FakeProvider, ADOBE_API_TOKEN, FUSESIGN_TENANT_ID, OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET,
            OAUTH_REFRESH_TOKEN,
        },
        fuse_event, ADOBE_FIXTURE, BOLDSIGN_FIXTURE, FUSESIGN_FIXTURE,
    },
    helpers::*,
};

#[tokio::test]
async fn start_up_lines_name_what_is_not_configured() {
    let app = spawn_app_with(&[
        ("SIGNHOOK_ADMIN_TOKEN", ""),
        ("SIGNHOOK_FUSESIGN_SIGNATURES", ""),
        ("SIGNHOOK_ADOBE_SIGN_API_BASE", "http://127.0.0.1:9"),
        ("SIGNHOOK_ADOBE_SIGN_API_TOKEN", ADOBE_API_TOKEN),
    ])
    .await;
    assert!(app.logs().contains("SIGNHOOK_ADMIN_TOKEN is not set"), "{}", app.logs());

    let lines = |message: &str| -> Vec<String> {
        app.log_entries(message)
            .iter()
            .map(|entry| entry["provider"].as_str().expect("a provider").to_owned())
            .collect()
    };
    assert_eq!(
        lines("provider has no credentials configured: every webhook from it is refused"),
        ["fusesign"]
    );
    assert_eq!(lines("API credentials configured: polling enabled"), ["adobe-sign"]);
    assert_eq!(lines("no API credentials: polling disabled"), ["boldsign", "fusesign"]);
    assert!(!app.logs().contains(ADOBE_API_TOKEN));
}

#[tokio::test]
async fn logs_never_carry_the_e_mail_addresses_of_payloads() {
    let app = spawn_app().await;
    let fixtures = [ADOBE_FIXTURE, BOLDSIGN_FIXTURE, FUSESIGN_FIXTURE].map(|path| std::fs::read(path).unwrap());
    assert_eq!(app.post_adobe_raw(fixtures[0].clone()).await.status(), 200);
    assert_eq!(app.post_boldsign_raw(&fixtures[1]).await.status(), 200);
    assert_eq!(app.post_fusesign_raw(&fixtures[2]).await.status(), 200);
    let events = [
        adobe_event("n-1", "agr-1", "AGREEMENT_CREATED", None, "2026-11-20T09:00:00Z"),
        boldsign_event("e-1", "doc-1", "Sent", Some("InProgress"), 1_763_631_000),
        fuse_event("h-1", "b-1", "BundleCreated", "2026-11-20T09:00:00Z"),
    ];
    assert_eq!(app.post_adobe(&events[0]).await.status(), 200);
    assert_eq!(app.post_boldsign(&events[1]).await.status(), 200);
    assert_eq!(app.post_fusesign(&events[2]).await.status(), 200);
    // Refused and failing requests are logged too.
    assert_eq!(
        app.post("/webhooks/adobe-sign", &[], fixtures[0].clone())
            .await
            .status(),
        401
    );
    app.wait_until_processed(6).await;

    // Every address any of these payloads holds.
    let mut addresses = Vec::new();
    for body in fixtures
        .iter()
        .cloned()
        .chain(events.iter().map(|e| e.to_string().into_bytes()))
    {
        collect_addresses(&serde_json::from_slice(&body).unwrap(), &mut addresses);
    }
    assert!(addresses.len() >= 4, "{addresses:?}");
    let logs = app.logs();
    assert!(logs.contains("finished processing request"), "the requests were logged");
    for address in addresses {
        assert!(!logs.contains(&address), "{address} is in the log:\n{logs}");
    }
}

/// FuseSign rotates its refresh token at every refresh: the rotation is
/// logged, the tokens (the configured one, the rotated ones, the access
/// tokens) never are.
#[tokio::test]
async fn rotated_refresh_tokens_are_never_logged() {
    let fake = FakeProvider::start().await;
    fake.rotate_refresh_tokens();
    fake.set_bundle("b-1", "Engagement letter", "Live");
    let app = spawn_app_with(&[
        ("SIGNHOOK_FUSESIGN_API_BASE", fake.base_url.as_str()),
        ("SIGNHOOK_FUSESIGN_API_TENANT_ID", FUSESIGN_TENANT_ID),
        ("SIGNHOOK_FUSESIGN_API_CLIENT_ID", OAUTH_CLIENT_ID),
        ("SIGNHOOK_FUSESIGN_API_CLIENT_SECRET", OAUTH_CLIENT_SECRET),
        ("SIGNHOOK_FUSESIGN_API_REFRESH_TOKEN", OAUTH_REFRESH_TOKEN),
        ("RUST_LOG", "debug,sqlx=warn"),
    ])
    .await;
    assert_eq!(app.refresh("fusesign", "b-1").await.status(), 200);
    app.wait_until("the rotation to be logged", || async {
        app.log_count("the provider rotated the OAuth refresh token") == 1
    })
    .await;
    let logs = app.logs();
    for secret in [
        OAUTH_REFRESH_TOKEN.to_owned(),
        OAUTH_CLIENT_SECRET.to_owned(),
        fake.current_refresh_token(),
        "access-token-1".to_owned(),
    ] {
        assert!(!logs.contains(&secret), "{secret} is in the log");
    }
}

fn collect_addresses(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(text) if text.contains('@') => found.push(text.clone()),
        Value::Object(map) => map.values().for_each(|v| collect_addresses(v, found)),
        Value::Array(items) => items.iter().for_each(|v| collect_addresses(v, found)),
        _ => {}
    }
}

/// Path segments are percent-decoded before they reach a handler (an
/// unknown provider's name is quoted in the refusal); a decoded line break
/// must not start a line of its own in the human-readable log, where it
/// would pass for a line signhook wrote.
#[tokio::test]
async fn a_percent_encoded_line_break_cannot_forge_a_pretty_log_line() {
    let app = spawn_app_with(&[("SIGNHOOK_LOG_FORMAT", "pretty")]).await;
    let forged = "FORGED%202026-12-02T09:00:00.000000Z%20%20INFO%20signhook:%20agreement%20completed";
    let paths = [
        format!("/webhooks/nope%0A{forged}"),
        format!("/webhooks/nope%0D%0A{forged}"),
        format!("/api/agreements/nope%0A{forged}/x"),
    ];
    assert_eq!(app.post(&paths[0], &[], "{}").await.status(), 404);
    assert_eq!(app.post(&paths[1], &[], "{}").await.status(), 404);
    assert_eq!(app.admin_get(&paths[2]).await.status(), 404);
    app.wait_until("the three refusals to be logged", || async {
        app.log_count("finished processing request") >= 3
    })
    .await;
    let logs = app.logs();
    assert!(logs.contains("FORGED"), "the name is logged, escaped:\n{logs}");
    let forged: Vec<&str> = logs.lines().filter(|line| line.starts_with("FORGED")).collect();
    assert!(forged.is_empty(), "forged lines: {forged:?}");
    // Every line starts with signhook's timestamp (no colour codes in a pipe).
    for line in logs.lines() {
        assert!(line.starts_with("20"), "{line:?} in\n{logs}");
    }
}
