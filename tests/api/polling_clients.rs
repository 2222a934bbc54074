//! The providers' API clients (`Provider::poll`) against a fake provider API:
//! status mapping, not-found, retries, timeouts, OAuth token renewal, and
//! configuration. Library-level: providers are built from a `Config` as the
//! service builds them; no app, no database.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use signhook::{
    agreement::AgreementStatus,
    config::Config,
    ledger::WaitReason,
    providers::{CallError, PollError, Provider, Providers},
};

use crate::common::fake_provider::{
    Failure, FakeProvider, ADOBE_API_TOKEN, BOLDSIGN_API_KEY, FUSESIGN_API_TOKEN, FUSESIGN_TENANT_ID, OAUTH_CLIENT_ID,
    OAUTH_CLIENT_SECRET, OAUTH_REFRESH_TOKEN,
};

/// Settings fast enough for tests: short backoff and timeouts.
const FAST: [(&str, &str); 4] = [
    ("SIGNHOOK_PROVIDER_API_RETRY_BASE_MS", "10"),
    ("SIGNHOOK_PROVIDER_API_RETRY_MAX_MS", "2000"),
    ("SIGNHOOK_PROVIDER_API_TIMEOUT_MS", "2000"),
    ("SIGNHOOK_PROVIDER_API_CONNECT_TIMEOUT_MS", "1000"),
];

/// The providers built from environment-style variables (parsed as the
/// environment is), or the message of the first error.
fn build(vars: &[(&str, &str)]) -> Result<Providers, String> {
    let config = Config::from_vars(vars.iter().copied()).map_err(|e| e.to_string())?;
    Providers::from_config(&config).map_err(|e| e.to_string())
}

/// The providers, pointed at `fake` with `vars` on top of the fast settings
/// (a later variable replaces an earlier one).
fn providers(fake: &FakeProvider, vars: &[(&str, &str)]) -> Providers {
    let base = fake.base_url.as_str();
    let mut all = FAST.to_vec();
    all.extend([
        ("SIGNHOOK_ADOBE_SIGN_API_BASE", base),
        ("SIGNHOOK_BOLDSIGN_API_BASE", base),
        ("SIGNHOOK_FUSESIGN_API_BASE", base),
    ]);
    all.extend_from_slice(vars);
    build(&all).expect("the test configuration is valid")
}

/// Every provider with a fixed API key or token.
fn with_keys(fake: &FakeProvider, extra: &[(&str, &str)]) -> Providers {
    let mut vars = vec![
        ("SIGNHOOK_ADOBE_SIGN_API_TOKEN", ADOBE_API_TOKEN),
        ("SIGNHOOK_BOLDSIGN_API_KEY", BOLDSIGN_API_KEY),
        ("SIGNHOOK_FUSESIGN_API_TOKEN", FUSESIGN_API_TOKEN),
        ("SIGNHOOK_FUSESIGN_API_TENANT_ID", FUSESIGN_TENANT_ID),
    ];
    vars.extend_from_slice(extra);
    providers(fake, &vars)
}

/// Adobe Sign with an OAuth refresh token instead of an integration key.
fn adobe_with_oauth(fake: &FakeProvider) -> Arc<dyn Provider> {
    let providers = providers(
        fake,
        &[
            ("SIGNHOOK_ADOBE_SIGN_OAUTH_CLIENT_ID", OAUTH_CLIENT_ID),
            ("SIGNHOOK_ADOBE_SIGN_OAUTH_CLIENT_SECRET", OAUTH_CLIENT_SECRET),
            ("SIGNHOOK_ADOBE_SIGN_OAUTH_REFRESH_TOKEN", OAUTH_REFRESH_TOKEN),
        ],
    );
    get(&providers, "adobe-sign")
}

fn get(providers: &Providers, name: &str) -> Arc<dyn Provider> {
    providers.get(name).cloned().expect("registered provider")
}

#[tokio::test]
async fn each_provider_polls_its_api_and_maps_the_status_like_its_webhooks() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("CBJCHBCAABAA1", "Mutual NDA", "OUT_FOR_SIGNATURE");
    fake.set_document("0d6f4a8c-1", "Offer letter", "Revoked");
    fake.set_bundle("69d3400e-1", "Engagement letter", "Finalised");
    let providers = with_keys(&fake, &[]);

    let cases = [
        (
            "adobe-sign",
            "CBJCHBCAABAA1",
            "agreement",
            "Mutual NDA",
            "OUT_FOR_SIGNATURE",
            AgreementStatus::InProgress,
        ),
        (
            "boldsign",
            "0d6f4a8c-1",
            "document",
            "Offer letter",
            "Revoked",
            AgreementStatus::Cancelled,
        ),
        (
            "fusesign",
            "69d3400e-1",
            "bundle",
            "Engagement letter",
            "Finalised",
            AgreementStatus::Completed,
        ),
    ];
    for (name, id, kind, title, raw, status) in cases {
        let provider = get(&providers, name);
        assert!(provider.can_poll(), "{name}");
        let subject = provider.poll(id).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(subject.id, id, "{name}");
        assert_eq!(subject.kind, kind, "{name}");
        assert_eq!(subject.name.as_deref(), Some(title), "{name}");
        assert_eq!(subject.status, Some(status), "{name}");
        assert_eq!(subject.provider_status.as_deref(), Some(raw), "{name}");
    }

    let seen = fake.requests();
    let calls: Vec<_> = seen
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.query.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("GET", "/api/rest/v6/agreements/CBJCHBCAABAA1", ""),
            ("GET", "/v1/document/properties", "documentId=0d6f4a8c-1"),
            (
                "GET",
                "/api/Bundle/Get",
                "TenantId=7ffcbae4-9f50-4136-8de6-edb6f796dc3f&BundleId=69d3400e-1"
            ),
        ]
    );
    assert!(seen.iter().all(|r| r.authenticated), "{seen:?}");
}

/// Adobe 404 `INVALID_AGREEMENT_ID` and BoldSign 403 `{"error":"Invalid
/// Document ID"}` are "not found"; FuseSign documents no 404 and answers 400
/// `{"Result":false,"Message":…}`, whose message is reported.
#[tokio::test]
async fn an_agreement_the_provider_does_not_know_is_not_found_at_once() {
    let fake = FakeProvider::start().await;
    let providers = with_keys(&fake, &[]);
    for name in ["adobe-sign", "boldsign"] {
        assert_eq!(
            get(&providers, name).poll("no-such-id").await,
            Err(PollError::NotFound),
            "{name}"
        );
    }
    assert_eq!(
        get(&providers, "fusesign").poll("no-such-id").await,
        Err(PollError::Call(CallError::Status {
            status: 400,
            message: "Bundle not found in this tenant".to_owned()
        }))
    );
    for name in ["adobe-sign", "boldsign", "fusesign"] {
        assert_eq!(
            get(&providers, name).poll(" ").await,
            Err(PollError::NotFound),
            "{name}"
        );
    }
    assert_eq!(fake.requests().len(), 3, "one request each, no retries");
}

/// Adobe's `PERMISSION_DENIED` comes as 403 (API definition) or 404 (webhook
/// guide): either way a permission failure that names what to fix, never
/// "not found".
#[tokio::test]
async fn permission_denied_is_a_permission_failure_whatever_its_status() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("mine", "NDA", "SIGNED");
    let adobe = get(&with_keys(&fake, &[]), "adobe-sign");
    for status in [403, 404] {
        let id = format!("theirs-{status}");
        fake.deny_agreement(&id, status);
        match adobe.poll(&id).await {
            Err(PollError::Call(CallError::PermissionDenied(message))) => {
                assert!(message.contains(&format!("{status} PERMISSION_DENIED")), "{message}");
                assert!(message.contains("agreement_read:account"), "names the scope: {message}");
            }
            other => panic!("{status}: expected a permission failure, got {other:?}"),
        }
    }
    assert_eq!(
        fake.request_count("/api/rest/v6/agreements/theirs-404"),
        1,
        "not retried"
    );
}

/// A 429 is not retried inside the call, and its whole `Retry-After` is
/// reported, however long (Adobe penalises a retry inside the interval).
#[tokio::test]
async fn a_throttled_answer_is_not_retried_and_its_wait_is_not_capped() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("a1", "NDA", "SIGNED");
    fake.set_document("d1", "Offer letter", "Completed");
    let providers = with_keys(&fake, &[("SIGNHOOK_PROVIDER_API_RETRY_MAX_MS", "100")]);

    fake.fail_next(1, Failure::TooManyRequests { retry_after_secs: 3600 });
    let started = Instant::now();
    assert_eq!(
        get(&providers, "adobe-sign").poll("a1").await,
        Err(PollError::Call(CallError::Throttled {
            wait: Duration::from_secs(3600),
            reason: WaitReason::Paused
        }))
    );
    assert!(started.elapsed() < Duration::from_secs(2), "no waiting inside the call");

    fake.fail_next(1, Failure::HighSystemLoad { retry_after_secs: 900 });
    assert!(matches!(
        get(&providers, "adobe-sign").poll("a1").await,
        Err(PollError::Call(CallError::Throttled { wait, .. })) if wait == Duration::from_secs(900)
    ));

    // BoldSign says when its hourly window resets, not how long to wait.
    fake.fail_next(1, Failure::QuotaExceeded { reset_in_secs: 1800 });
    match get(&providers, "boldsign").poll("d1").await {
        Err(PollError::Call(CallError::Throttled { wait, .. })) => {
            assert!(
                wait > Duration::from_secs(1790) && wait <= Duration::from_secs(1800),
                "{wait:?}"
            )
        }
        other => panic!("expected a throttled call, got {other:?}"),
    }
    fake.fail_next(1, Failure::Unavailable { retry_after_secs: 120 });
    assert!(matches!(
        get(&providers, "boldsign").poll("d1").await,
        Err(PollError::Call(CallError::Throttled { wait, .. })) if wait == Duration::from_secs(120)
    ));
    assert_eq!(fake.requests().len(), 4, "one request each");
}

/// The token endpoint's 429 is throttling too: not retried, and the API
/// call it was for is not sent.
#[tokio::test]
async fn a_throttled_token_refresh_is_throttling_too() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("a1", "NDA", "SIGNED");
    let adobe = adobe_with_oauth(&fake);
    fake.fail_next(1, Failure::TooManyRequests { retry_after_secs: 600 });
    assert_eq!(
        adobe.poll("a1").await,
        Err(PollError::Call(CallError::Throttled {
            wait: Duration::from_secs(600),
            reason: WaitReason::Paused
        }))
    );
    assert_eq!(fake.token_requests(), 0, "refused before the grant was looked at");
    assert_eq!(fake.requests().len(), 1);
    assert!(fake.api_requests().is_empty());
}

#[tokio::test]
async fn server_errors_until_the_attempts_run_out_are_a_provider_error() {
    let fake = FakeProvider::start().await;
    fake.set_bundle("b1", "Letter", "Live");
    fake.fail_next(10, Failure::ServerError);
    let fusesign = get(
        &with_keys(&fake, &[("SIGNHOOK_PROVIDER_API_MAX_ATTEMPTS", "3")]),
        "fusesign",
    );

    match fusesign.poll("b1").await {
        Err(PollError::Call(CallError::Status { status: 500, message })) => assert_eq!(message, "something broke"),
        other => panic!("expected a 500 provider error, got {other:?}"),
    }
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let fake = FakeProvider::start().await;
    fake.set_document("d1", "Offer letter", "Completed");
    let boldsign = get(
        &with_keys(&fake, &[("SIGNHOOK_BOLDSIGN_API_KEY", "wrong-key")]),
        "boldsign",
    );

    match boldsign.poll("d1").await {
        Err(PollError::Call(CallError::Status { status: 401, message })) => assert_eq!(message, "Unauthorized"),
        other => panic!("expected a 401 provider error, got {other:?}"),
    }
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_a_transport_error() {
    let fake = FakeProvider::start().await;
    fake.set_document("a1", "NDA", "Completed");
    fake.set_delay(Duration::from_secs(3));
    let boldsign = get(
        &with_keys(
            &fake,
            &[
                ("SIGNHOOK_PROVIDER_API_TIMEOUT_MS", "200"),
                ("SIGNHOOK_PROVIDER_API_MAX_ATTEMPTS", "2"),
            ],
        ),
        "boldsign",
    );

    let started = Instant::now();
    match boldsign.poll("a1").await {
        Err(PollError::Call(CallError::Transport(message))) => assert!(message.starts_with("timed out"), "{message}"),
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(fake.requests().len(), 2, "a timeout is retried");
}

#[tokio::test]
async fn an_unreachable_provider_is_a_transport_error() {
    let fake = FakeProvider::start().await;
    let providers = with_keys(&fake, &[("SIGNHOOK_BOLDSIGN_API_BASE", "http://127.0.0.1:1")]);
    match get(&providers, "boldsign").poll("d1").await {
        Err(PollError::Call(CallError::Transport(message))) => {
            assert!(message.starts_with("could not connect"), "{message}")
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_oauth_access_token_is_renewed_before_it_expires() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("a1", "NDA", "OUT_FOR_SIGNATURE");
    fake.set_token_lifetime(Duration::from_secs(1));
    let adobe = adobe_with_oauth(&fake);

    adobe.poll("a1").await.expect("first poll");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    adobe
        .poll("a1")
        .await
        .expect("second poll, after the first token expired");

    assert_eq!(fake.token_requests(), 2);
    let calls = fake.api_requests();
    assert_eq!(calls.len(), 2, "no request was refused: {calls:?}");
    assert!(calls.iter().all(|r| r.authenticated && !r.expired_token), "{calls:?}");
    let token_calls: Vec<_> = fake.requests().into_iter().filter(|r| r.is_token_request()).collect();
    assert!(token_calls
        .iter()
        .all(|r| r.path == "/oauth/v2/refresh" && r.method == "POST"));
}

#[tokio::test]
async fn a_valid_token_is_reused_and_concurrent_polls_share_one_refresh() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("a1", "NDA", "SIGNED");
    // Slow answers, so the five polls are certainly in flight together.
    fake.set_delay(Duration::from_millis(100));
    let adobe = adobe_with_oauth(&fake);

    let polls = (0..5).map(|_| adobe.poll("a1"));
    for result in futures::future::join_all(polls).await {
        assert_eq!(result.expect("poll").status, Some(AgreementStatus::Completed));
    }
    assert_eq!(fake.max_in_flight("/api/rest/v6/agreements/a1"), 5, "concurrent polls");
    adobe.poll("a1").await.expect("one more poll");
    assert_eq!(fake.token_requests(), 1);
    assert_eq!(fake.max_in_flight("/oauth/v2/refresh"), 1);
    assert_eq!(fake.api_requests().len(), 6);
}

#[tokio::test]
async fn a_refused_access_token_is_refreshed_once_and_the_request_sent_again() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("a1", "NDA", "SIGNED");
    let adobe = adobe_with_oauth(&fake);

    adobe.poll("a1").await.expect("first poll");
    fake.expire_access_tokens();
    let subject = adobe.poll("a1").await.expect("second poll, after one refresh");

    assert_eq!(subject.status, Some(AgreementStatus::Completed));
    assert_eq!(fake.token_requests(), 2);
    let expired: Vec<_> = fake.api_requests().iter().map(|r| r.expired_token).collect();
    assert_eq!(expired, [false, true, false]);
}

#[tokio::test]
async fn a_token_refused_again_after_the_refresh_is_a_provider_error() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("a1", "NDA", "SIGNED");
    fake.set_token_lifetime(Duration::ZERO);
    let adobe = adobe_with_oauth(&fake);

    match adobe.poll("a1").await {
        Err(PollError::Call(CallError::Status { status: 401, .. })) => {}
        other => panic!("expected a 401 provider error, got {other:?}"),
    }
    assert_eq!(fake.token_requests(), 2, "one refresh for the poll, one after the 401");
    assert_eq!(fake.api_requests().len(), 2);
}

#[tokio::test]
async fn a_refused_refresh_token_is_a_provider_error() {
    let fake = FakeProvider::start().await;
    let providers = providers(
        &fake,
        &[
            ("SIGNHOOK_ADOBE_SIGN_OAUTH_CLIENT_ID", OAUTH_CLIENT_ID),
            ("SIGNHOOK_ADOBE_SIGN_OAUTH_CLIENT_SECRET", OAUTH_CLIENT_SECRET),
            ("SIGNHOOK_ADOBE_SIGN_OAUTH_REFRESH_TOKEN", "revoked-refresh-token"),
        ],
    );
    match get(&providers, "adobe-sign").poll("a1").await {
        Err(PollError::Call(CallError::Status { status: 400, message })) => {
            assert_eq!(message, "OAuth token refresh: refresh token is invalid")
        }
        other => panic!("expected a 400 provider error, got {other:?}"),
    }
    assert!(fake.api_requests().is_empty());
}

#[tokio::test]
async fn fusesign_polls_with_an_oauth_token_from_its_refresh_endpoint() {
    let fake = FakeProvider::start().await;
    fake.set_bundle("b1", "Engagement letter", "Rejected");
    let providers = providers(
        &fake,
        &[
            ("SIGNHOOK_FUSESIGN_API_TENANT_ID", FUSESIGN_TENANT_ID),
            ("SIGNHOOK_FUSESIGN_API_CLIENT_ID", OAUTH_CLIENT_ID),
            ("SIGNHOOK_FUSESIGN_API_CLIENT_SECRET", OAUTH_CLIENT_SECRET),
            ("SIGNHOOK_FUSESIGN_API_REFRESH_TOKEN", OAUTH_REFRESH_TOKEN),
        ],
    );
    let fusesign = get(&providers, "fusesign");

    for _ in 0..2 {
        let subject = fusesign.poll("b1").await.expect("poll");
        assert_eq!(subject.status, Some(AgreementStatus::Declined));
    }
    let paths: Vec<_> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/api/Session/OAuthRefreshToken", "/api/Bundle/Get", "/api/Bundle/Get"],
        "the token's date-time expiry is an hour away, so it is reused"
    );
}

#[tokio::test]
async fn without_credentials_polling_is_not_configured() {
    let fake = FakeProvider::start().await;
    let providers = providers(&fake, &[("SIGNHOOK_FUSESIGN_API_TENANT_ID", FUSESIGN_TENANT_ID)]);
    for name in ["adobe-sign", "boldsign", "fusesign"] {
        let provider = get(&providers, name);
        assert!(!provider.can_poll(), "{name}");
        assert_eq!(provider.poll("a1").await, Err(PollError::NotConfigured), "{name}");
        assert_eq!(provider.settings()["polling"]["configured"], false, "{name}");
    }
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn settings_mask_secrets_and_say_how_polling_authenticates() {
    let fake = FakeProvider::start().await;
    let keys = with_keys(&fake, &[]);
    let oauth = providers(
        &fake,
        &[
            ("SIGNHOOK_FUSESIGN_API_TENANT_ID", FUSESIGN_TENANT_ID),
            ("SIGNHOOK_FUSESIGN_API_CLIENT_ID", OAUTH_CLIENT_ID),
            ("SIGNHOOK_FUSESIGN_API_CLIENT_SECRET", OAUTH_CLIENT_SECRET),
            ("SIGNHOOK_FUSESIGN_API_REFRESH_TOKEN", OAUTH_REFRESH_TOKEN),
        ],
    );
    for provider in keys.iter() {
        let shown = provider.settings();
        assert_eq!(shown["polling"]["configured"], true, "{shown}");
        assert_eq!(shown["polling"]["auth"], "api_key", "{shown}");
        for secret in [ADOBE_API_TOKEN, BOLDSIGN_API_KEY, FUSESIGN_API_TOKEN] {
            assert!(!shown.to_string().contains(secret), "{shown}");
        }
    }
    let shown = get(&oauth, "fusesign").settings();
    assert_eq!(shown["polling"]["auth"], "oauth_refresh_token", "{shown}");
    assert_eq!(shown["fusesign_api_base"], fake.base_url.as_str());
    for secret in [OAUTH_CLIENT_SECRET, OAUTH_REFRESH_TOKEN] {
        assert!(!shown.to_string().contains(secret), "{shown}");
    }
}

#[test]
fn configuration_errors_name_the_variable() {
    let oauth_partial = [
        ("SIGNHOOK_ADOBE_SIGN_API_BASE", "https://api.na1.adobesign.com"),
        ("SIGNHOOK_ADOBE_SIGN_OAUTH_CLIENT_ID", "id"),
        ("SIGNHOOK_ADOBE_SIGN_OAUTH_REFRESH_TOKEN", "refresh"),
    ];
    let cases: [(&[(&str, &str)], &str); 9] = [
        (
            &[("SIGNHOOK_ADOBE_SIGN_API_BASE", "api.na1.adobesign.com")],
            "SIGNHOOK_ADOBE_SIGN_API_BASE",
        ),
        (
            &[("SIGNHOOK_BOLDSIGN_API_BASE", "ftp://api.boldsign.com")],
            "SIGNHOOK_BOLDSIGN_API_BASE",
        ),
        (
            &[("SIGNHOOK_FUSESIGN_API_BASE", "fuse.work")],
            "SIGNHOOK_FUSESIGN_API_BASE",
        ),
        (&oauth_partial, "SIGNHOOK_ADOBE_SIGN_OAUTH_CLIENT_SECRET"),
        (
            &[
                ("SIGNHOOK_ADOBE_SIGN_API_TOKEN", "key"),
                ("SIGNHOOK_ADOBE_SIGN_API_DISCOVERY_URL", "api.echosign.com"),
            ],
            "SIGNHOOK_ADOBE_SIGN_API_DISCOVERY_URL",
        ),
        (
            &[
                ("SIGNHOOK_ADOBE_SIGN_API_BASE", "https://api.na1.adobesign.com"),
                ("SIGNHOOK_ADOBE_SIGN_API_TOKEN", "key"),
                ("SIGNHOOK_ADOBE_SIGN_OAUTH_CLIENT_ID", "id"),
                ("SIGNHOOK_ADOBE_SIGN_OAUTH_CLIENT_SECRET", "secret"),
                ("SIGNHOOK_ADOBE_SIGN_OAUTH_REFRESH_TOKEN", "refresh"),
            ],
            "SIGNHOOK_ADOBE_SIGN_API_TOKEN",
        ),
        (
            &[("SIGNHOOK_FUSESIGN_API_TOKEN", "token")],
            "SIGNHOOK_FUSESIGN_API_TENANT_ID",
        ),
        (
            &[("SIGNHOOK_PROVIDER_API_MAX_ATTEMPTS", "0")],
            "SIGNHOOK_PROVIDER_API_MAX_ATTEMPTS",
        ),
        (
            &[
                ("SIGNHOOK_PROVIDER_API_RETRY_BASE_MS", "500"),
                ("SIGNHOOK_PROVIDER_API_RETRY_MAX_MS", "100"),
            ],
            "SIGNHOOK_PROVIDER_API_RETRY_MAX_MS",
        ),
    ];
    for (vars, name) in cases {
        let error = match build(vars) {
            Ok(_) => panic!("{vars:?} should be refused"),
            Err(error) => error,
        };
        assert!(error.starts_with(name), "{vars:?}: {error}");
    }
}
