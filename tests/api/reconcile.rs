//! The reconciler: stale open agreements are polled from the provider's API
//! (a fake the test starts) and brought up to date; finished ones are left
//! alone; a silent provider's agreements are polled soon, spread over its
//! budget. (Its metrics and log lines: tests/process; replicas polling
//! together: tests/process/faults.rs.)

use serde_json::Value;

use crate::{
    common::fake_provider::{Failure, FakeProvider, ADOBE_API_TOKEN},
    helpers::*,
};

const AGREEMENT_PATH: &str = "/api/rest/v6/agreements/";

/// Adobe Sign with API credentials, a reconciler ticking every 100 ms, and
/// agreements stale after an hour (the fixtures' events are days old).
fn reconciling<'a>(fake: &'a FakeProvider, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("SIGNHOOK_ADOBE_SIGN_API_BASE", fake.base_url.as_str()),
        ("SIGNHOOK_ADOBE_SIGN_API_TOKEN", ADOBE_API_TOKEN),
        ("SIGNHOOK_PROVIDER_API_MAX_ATTEMPTS", "1"),
        ("SIGNHOOK_RECONCILE_INTERVAL", "100ms"),
        ("SIGNHOOK_RECONCILE_STALE_AFTER", "1h"),
        ("SIGNHOOK_RECONCILE_MAX_PER_MINUTE", "6000"),
        // Scheduling mechanics, not the provider's limits (tested on their own).
        ("SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL", "0"),
        ("SIGNHOOK_ADOBE_SIGN_API_REQUESTS_PER_HOUR", "1000000"),
    ];
    env.extend_from_slice(extra);
    env
}

async fn post_created(app: &TestApp, notification: &str, agreement_id: &str, date: &str) {
    let body = adobe_event(
        notification,
        agreement_id,
        "AGREEMENT_CREATED",
        Some("OUT_FOR_SIGNATURE"),
        date,
    );
    app.deliver_adobe(&body).await;
}

#[tokio::test]
async fn a_stale_open_agreement_is_polled_and_completed() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-1", "Mutual NDA", "SIGNED");
    let app = spawn_app_with(&reconciling(&fake, &[])).await;

    // The completion webhook never came; the last event is days old.
    post_created(&app, "n-1", "agr-1", "2026-11-20T09:00:00Z").await;

    let view = app.wait_for_agreement_status("adobe-sign", "agr-1", "completed").await;
    let history = view["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{view}");
    assert_eq!(history[1]["source"], "poll");
    assert_eq!(view["provider_status"], "SIGNED");
    assert!(view["last_polled_at"].is_string(), "{view}");
}

/// Two guards keep a finished agreement from being polled, and each is
/// tested on its own here: the claim's SQL never takes a finished agreement
/// without a webhook (this test), and one taken for its webhook is not polled
/// (the next). Any claim, even one that only removes a webhook, records
/// `last_polled_at`: that is how a claim is seen.
#[tokio::test]
async fn a_finished_agreement_is_never_claimed_for_polling() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-done", "x", "SIGNED");
    fake.set_agreement("agr-open", "y", "OUT_FOR_SIGNATURE");
    // One agreement per claim, in due order: the finished one is due first,
    // so it would be claimed (and recorded) before the open one is polled.
    // Finals applied at once: confirming one (tests/api/trust.rs) polls it.
    let app = spawn_app_with(&reconciling(
        &fake,
        &[
            ("SIGNHOOK_RECONCILE_CONCURRENCY", "1"),
            ("SIGNHOOK_CONFIRM_WEAK_FINALS", "false"),
        ],
    ))
    .await;
    let completed = adobe_event(
        "n-done",
        "agr-done",
        "AGREEMENT_WORKFLOW_COMPLETED",
        Some("SIGNED"),
        "2026-11-19T09:00:00Z",
    );
    app.deliver_adobe(&completed).await;
    post_created(&app, "n-open", "agr-open", "2026-11-20T09:00:00Z").await;

    app.wait_until("the open agreement to be polled", || async {
        app.get_agreement("adobe-sign", "agr-open").await["last_polled_at"].is_string()
    })
    .await;
    let done = app.get_agreement("adobe-sign", "agr-done").await;
    assert_eq!(done["last_polled_at"], Value::Null, "never claimed: {done}");
    assert_eq!(fake.request_count(&format!("{AGREEMENT_PATH}agr-done")), 0);
    assert_eq!(done["status"], "completed");
}

/// The second guard (see above): a finished agreement that still has a
/// webhook is claimed, and only its webhook is removed.
#[tokio::test]
async fn a_finished_agreement_claimed_for_its_webhook_is_not_polled() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-w", "Mutual NDA", "OUT_FOR_SIGNATURE");
    // Finals applied at once: confirming one (tests/api/trust.rs) polls it.
    let app = spawn_app_with(&reconciling(
        &fake,
        &[
            ("SIGNHOOK_PUBLIC_URL", "https://hooks.example.com"),
            ("SIGNHOOK_CONFIRM_WEAK_FINALS", "false"),
        ],
    ))
    .await;
    assert_eq!(app.watch("adobe-sign", "agr-w").await.status(), 200);
    assert_eq!(fake.webhooks().len(), 1);

    // Completed now: the agreement is fresh, so it is claimed only because
    // its webhook is left to remove.
    let now = chrono::Utc::now().to_rfc3339();
    let completed = adobe_event("n-w", "agr-w", "AGREEMENT_WORKFLOW_COMPLETED", Some("SIGNED"), &now);
    app.deliver_adobe(&completed).await;
    app.wait_until("the finished agreement to be claimed", || async {
        app.get_agreement("adobe-sign", "agr-w").await["last_polled_at"].is_string()
    })
    .await;

    assert!(fake.webhooks().is_empty(), "its webhook was removed");
    assert_eq!(
        fake.request_count(&format!("{AGREEMENT_PATH}agr-w")),
        0,
        "and it was not polled"
    );
    assert_eq!(app.get_agreement("adobe-sign", "agr-w").await["status"], "completed");
}

#[tokio::test]
async fn polling_an_unchanged_agreement_adds_no_history() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-2", "Mutual NDA", "OUT_FOR_SIGNATURE");
    // Stale after a second: polled again and again during the test.
    let app = spawn_app_with(&reconciling(&fake, &[("SIGNHOOK_RECONCILE_STALE_AFTER", "1s")])).await;
    post_created(&app, "n-2", "agr-2", "2026-11-20T09:00:00Z").await;

    app.wait_until("three polls", || async {
        fake.request_count(&format!("{AGREEMENT_PATH}agr-2")) >= 3
    })
    .await;
    let view = app.get_agreement("adobe-sign", "agr-2").await;
    assert_eq!(view["status"], "in_progress");
    assert_eq!(view["history"].as_array().unwrap().len(), 1, "{view}");
}

#[tokio::test]
async fn failed_and_unknown_polls_are_backed_off() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-ok", "x", "OUT_FOR_SIGNATURE");
    let app = spawn_app_with(&reconciling(&fake, &[("SIGNHOOK_RECONCILE_FAST_INTERVAL", "1h")])).await;
    fake.fail_next(1, Failure::ServerError);
    post_created(&app, "n-f", "agr-ok", "2026-11-20T09:00:00Z").await;
    app.wait_until("the first poll", || async {
        app.get_agreement("adobe-sign", "agr-ok").await["last_polled_at"].is_string()
    })
    .await;
    post_created(&app, "n-g", "agr-gone", "2026-11-20T09:00:00Z").await;
    app.wait_until("the unknown agreement to be polled", || async {
        app.get_agreement("adobe-sign", "agr-gone").await["last_polled_at"].is_string()
    })
    .await;
    let failed = app.get_agreement("adobe-sign", "agr-ok").await;
    assert_eq!(failed["poll_failures"], 1, "{failed}");
    let error = failed["last_poll_error"].as_str().unwrap();
    assert!(error.contains("500") && !error.contains(ADOBE_API_TOKEN), "{failed}");
    assert!(failed["next_poll_at"].is_string(), "backed off: {failed}");
    let gone = app.get_agreement("adobe-sign", "agr-gone").await;
    assert!(gone["next_poll_at"].is_string(), "backed off: {gone}");
    assert_eq!(
        fake.request_count(&format!("{AGREEMENT_PATH}agr-ok")),
        1,
        "not polled again before its backoff ends"
    );
}

/// `GET /api/providers` shows the silence; the gauge and the one warning:
/// tests/process/metrics.rs.
#[tokio::test]
async fn a_silent_provider_has_its_open_agreements_polled_at_once() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-s", "Mutual NDA", "SIGNED");
    fake.set_agreement("agr-open", "Lease", "OUT_FOR_SIGNATURE");
    let app = spawn_app_with(&reconciling(&fake, &[("SIGNHOOK_SILENCE_AFTER", "2s")])).await;
    // Fresh events: not stale for an hour.
    let now = chrono::Utc::now().to_rfc3339();
    post_created(&app, "n-s", "agr-s", &now).await;
    post_created(&app, "n-o", "agr-open", &now).await;
    let adobe_silent = || async {
        let providers: Value = app.admin_get("/api/providers").await.json().await.unwrap();
        assert_eq!(providers["providers"][0]["name"], "adobe-sign");
        providers["providers"][0]["silent"].as_bool()
    };
    assert_eq!(adobe_silent().await, Some(false));

    app.wait_until("the silence to be noticed", || async {
        adobe_silent().await == Some(true)
    })
    .await;
    app.wait_for_agreement_status("adobe-sign", "agr-s", "completed").await;
    app.wait_until("the other open agreement to be polled too", || async {
        app.get_agreement("adobe-sign", "agr-open").await["last_polled_at"].is_string()
    })
    .await;

    // The next webhook ends the silence (until the next one).
    let viewed = adobe_event("n-v", "agr-open", "AGREEMENT_EMAIL_VIEWED", None, &now);
    assert_eq!(app.post_adobe(&viewed).await.status(), 200);
    app.wait_until("the silence to end", || async { adobe_silent().await == Some(false) })
        .await;
}

/// A silence makes the provider's open agreements due spread over its API
/// budget (here 3,600 an hour: one a second), not all at once.
#[tokio::test]
async fn a_silence_spreads_the_polls_over_the_budget() {
    let fake = FakeProvider::start().await;
    let ids = ["agr-1", "agr-2", "agr-3"];
    for id in ids {
        fake.set_agreement(id, "Lease", "OUT_FOR_SIGNATURE");
    }
    let app = spawn_app_with(&reconciling(
        &fake,
        &[
            ("SIGNHOOK_SILENCE_AFTER", "2s"),
            ("SIGNHOOK_ADOBE_SIGN_API_REQUESTS_PER_HOUR", "3600"),
        ],
    ))
    .await;
    let now = chrono::Utc::now().to_rfc3339();
    for id in ids {
        post_created(&app, &format!("n-{id}"), id, &now).await;
    }
    app.wait_until("all three to be polled", || async {
        let mut polled = 0;
        for id in ids {
            polled += usize::from(app.get_agreement("adobe-sign", id).await["last_polled_at"].is_string());
        }
        polled == 3
    })
    .await;
    let mut times = Vec::new();
    for id in ids {
        let at = app.get_agreement("adobe-sign", id).await["last_polled_at"]
            .as_str()
            .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap())
            .unwrap();
        times.push(at);
    }
    times.sort();
    // Admitted a second apart (2 s from first to third); `last_polled_at` is
    // written when each answer is recorded, which on a loaded machine can
    // shift a poll by a few hundred ms (1.70 s was seen). A burst would put
    // all three within a fraction of a second.
    let spread = times[2] - times[0];
    assert!(
        spread >= chrono::Duration::milliseconds(1200),
        "three polls a second apart, not a burst: {times:?}"
    );
}

/// `.` and `..` are agreement ids as far as a webhook is concerned, but as
/// URL path segments they are dropped or climb a level: polled as
/// `agreements/{id}`, they asked Adobe for the whole agreement list. They
/// name no agreement the provider can have, so they are "not found" without
/// a call; every other id is still polled.
#[tokio::test]
async fn dot_segment_agreement_ids_never_reach_another_endpoint() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-ok", "Mutual NDA", "SIGNED");
    let app = spawn_app_with(&reconciling(&fake, &[])).await;
    for (n, id) in [".", "..", "agr-ok"].into_iter().enumerate() {
        post_created(&app, &format!("n-{n}"), id, "2026-11-20T09:00:00Z").await;
    }

    app.wait_for_agreement_status("adobe-sign", "agr-ok", "completed").await;
    app.wait_until("the dot ids to be looked at", || async {
        app.count("SELECT count(*) FROM agreements WHERE agreement_id IN ('.', '..') AND last_polled_at IS NOT NULL")
            .await
            == 2
    })
    .await;
    let paths: Vec<String> = fake.api_requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [format!("{AGREEMENT_PATH}agr-ok")],
        "only the real agreement was asked for"
    );
    let not_found = app
        .count("SELECT count(*) FROM agreements WHERE agreement_id IN ('.', '..') AND not_found_at IS NOT NULL")
        .await;
    assert_eq!(not_found, 2);
}
