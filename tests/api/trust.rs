//! Events anyone could have sent cannot decide an agreement on their own:
//! an event dated after its receipt (plus the allowed skew) is ordered at its
//! receipt, and a final status from a weakly authenticated webhook (Adobe's
//! client ID alone) waits until the provider's API — the fake, answering as
//! Adobe documents — confirms it. The WARN line and the metric of a
//! contradicted event: tests/process/metrics.rs.

use chrono::{SecondsFormat, Utc};
use serde_json::Value;

use crate::{
    common::fake_provider::{Failure, FakeProvider, ADOBE_API_TOKEN},
    helpers::*,
};

const AGREEMENT_PATH: &str = "/api/rest/v6/agreements/";
/// The time a forged event states: as far in the future as dates go.
const FAR_FUTURE: &str = "9999-12-31T23:59:59Z";

fn now_plus(secs: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Adobe Sign with API credentials at the fake, a reconciler ticking fast,
/// and confirmation on (the default).
fn confirming<'a>(fake: &'a FakeProvider, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("SIGNHOOK_ADOBE_SIGN_API_BASE", fake.base_url.as_str()),
        ("SIGNHOOK_ADOBE_SIGN_API_TOKEN", ADOBE_API_TOKEN),
        ("SIGNHOOK_CONFIRM_WEAK_FINALS", "true"),
        ("SIGNHOOK_PROVIDER_API_MAX_ATTEMPTS", "1"),
        ("SIGNHOOK_RECONCILE_INTERVAL", "100ms"),
        ("SIGNHOOK_RECONCILE_FAST_INTERVAL", "200ms"),
        ("SIGNHOOK_RECONCILE_MAX_PER_MINUTE", "6000"),
        ("SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL", "0"),
        ("SIGNHOOK_ADOBE_SIGN_API_REQUESTS_PER_HOUR", "1000000"),
    ];
    env.extend_from_slice(extra);
    env
}

fn history_entry<'a>(view: &'a Value, event_id: &str) -> &'a Value {
    view["history"]
        .as_array()
        .expect("history")
        .iter()
        .find(|entry| entry["event_id"] == event_id)
        .unwrap_or_else(|| panic!("{event_id} in the history: {view}"))
}

async fn deliver(app: &TestApp, id: &str, agreement: &str, event: &str, status: &str, date: &str) {
    app.deliver_adobe(&adobe_event(id, agreement, event, Some(status), date))
        .await;
}

#[tokio::test]
async fn a_far_future_forged_recall_does_not_freeze_the_agreement() {
    // No API: nothing to confirm with, so only the time bound protects.
    let app = spawn_app().await;
    deliver(
        &app,
        "n-created",
        "agr-1",
        "AGREEMENT_CREATED",
        "OUT_FOR_SIGNATURE",
        &now_plus(-60),
    )
    .await;
    deliver(&app, "n-forged", "agr-1", "AGREEMENT_RECALLED", "CANCELLED", FAR_FUTURE).await;
    let view = app.get_agreement("adobe-sign", "agr-1").await;
    assert_eq!(view["status"], "cancelled", "{view}");
    let forged = history_entry(&view, "n-forged");
    assert_eq!(forged["occurred_at_clamped"], true, "{view}");
    assert_eq!(forged["stated_occurred_at"], "9999-12-31T23:59:59Z", "{view}");
    assert!(
        forged["occurred_at"].as_str().unwrap().starts_with("20"),
        "ordered at receipt: {view}"
    );

    // The genuine completion, dated after the forged event's receipt.
    deliver(
        &app,
        "n-signed",
        "agr-1",
        "AGREEMENT_WORKFLOW_COMPLETED",
        "SIGNED",
        &now_plus(1),
    )
    .await;
    let view = app.get_agreement("adobe-sign", "agr-1").await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["provider_status"], "SIGNED");
    assert_eq!(history_entry(&view, "n-signed")["occurred_at_clamped"], false);
    // last_event_at is the completion's time, not 9999.
    assert!(view["last_event_at"].as_str().unwrap().starts_with("20"), "{view}");
}

#[tokio::test]
async fn an_event_within_the_skew_keeps_its_own_time() {
    let app = spawn_app_with(&[("SIGNHOOK_EVENT_MAX_FUTURE_SKEW", "10m")]).await;
    let soon = now_plus(240);
    deliver(&app, "n-1", "agr-skew", "AGREEMENT_CREATED", "OUT_FOR_SIGNATURE", &soon).await;
    let view = app.get_agreement("adobe-sign", "agr-skew").await;
    let entry = history_entry(&view, "n-1");
    assert_eq!(entry["occurred_at_clamped"], false, "{view}");
    assert_eq!(entry["stated_occurred_at"], Value::Null);
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(entry["occurred_at"].as_str().unwrap()).unwrap(),
        chrono::DateTime::parse_from_rfc3339(&soon).unwrap()
    );
}

#[tokio::test]
async fn a_final_the_provider_confirms_is_applied() {
    let fake = FakeProvider::start().await;
    // Adobe's agreement as `GET /agreements/{id}` answers it: signed.
    fake.set_agreement("agr-ok", "Mutual NDA", "SIGNED");
    let app = spawn_app_with(&confirming(&fake, &[])).await;
    deliver(
        &app,
        "n-created",
        "agr-ok",
        "AGREEMENT_CREATED",
        "OUT_FOR_SIGNATURE",
        &now_plus(-60),
    )
    .await;
    deliver(
        &app,
        "n-signed",
        "agr-ok",
        "AGREEMENT_WORKFLOW_COMPLETED",
        "SIGNED",
        &now_plus(0),
    )
    .await;

    let view = app.wait_for_agreement_status("adobe-sign", "agr-ok", "completed").await;
    assert_eq!(history_entry(&view, "n-signed")["confirmation"], "confirmed", "{view}");
    assert_eq!(history_entry(&view, "n-created")["confirmation"], Value::Null);
    assert_eq!(view["confirm_pending"], false);
    assert!(fake.request_count(&format!("{AGREEMENT_PATH}agr-ok")) >= 1);
}

#[tokio::test]
async fn a_final_the_provider_contradicts_is_not_applied_and_the_genuine_one_is() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-x", "Mutual NDA", "OUT_FOR_SIGNATURE");
    let app = spawn_app_with(&confirming(&fake, &[])).await;
    deliver(
        &app,
        "n-created",
        "agr-x",
        "AGREEMENT_CREATED",
        "OUT_FOR_SIGNATURE",
        &now_plus(-60),
    )
    .await;
    // Forged with the client ID alone, dated now so the time bound does not help.
    deliver(
        &app,
        "n-forged",
        "agr-x",
        "AGREEMENT_RECALLED",
        "CANCELLED",
        &now_plus(0),
    )
    .await;

    app.wait_until("the forged recall to be resolved", || async {
        history_entry(&app.get_agreement("adobe-sign", "agr-x").await, "n-forged")["confirmation"] == "unconfirmed"
    })
    .await;
    let view = app.get_agreement("adobe-sign", "agr-x").await;
    assert_eq!(view["status"], "in_progress", "the provider's answer wins: {view}");
    assert_eq!(view["confirm_pending"], false);

    // Then the agreement really completes.
    fake.set_agreement("agr-x", "Mutual NDA", "SIGNED");
    deliver(
        &app,
        "n-signed",
        "agr-x",
        "AGREEMENT_WORKFLOW_COMPLETED",
        "SIGNED",
        &now_plus(1),
    )
    .await;
    let view = app.wait_for_agreement_status("adobe-sign", "agr-x", "completed").await;
    assert_eq!(history_entry(&view, "n-signed")["confirmation"], "confirmed", "{view}");
    assert_eq!(
        history_entry(&view, "n-forged")["confirmation"],
        "unconfirmed",
        "{view}"
    );
}

#[tokio::test]
async fn a_final_waits_while_the_provider_fails_and_is_confirmed_after() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-e", "Mutual NDA", "SIGNED");
    let app = spawn_app_with(&confirming(&fake, &[])).await;
    deliver(
        &app,
        "n-created",
        "agr-e",
        "AGREEMENT_CREATED",
        "OUT_FOR_SIGNATURE",
        &now_plus(-60),
    )
    .await;
    // Three failed polls; while the third is still to come, look.
    fake.fail_next(3, Failure::ServerError);
    deliver(
        &app,
        "n-signed",
        "agr-e",
        "AGREEMENT_WORKFLOW_COMPLETED",
        "SIGNED",
        &now_plus(0),
    )
    .await;

    app.wait_until("two failed confirmation polls", || async {
        fake.requests().iter().filter(|r| r.status == Some(500)).count() >= 2
    })
    .await;
    // The failed polls left the status held: not applied, not dropped.
    let view = app.get_agreement("adobe-sign", "agr-e").await;
    assert_eq!(view["status"], "in_progress", "{view}");
    assert_eq!(view["confirm_pending"], true, "{view}");
    assert_eq!(history_entry(&view, "n-signed")["confirmation"], "pending", "{view}");
    assert_eq!(
        history_entry(&view, "n-signed")["status"],
        "completed",
        "what it claims: {view}"
    );
    let view = app.wait_for_agreement_status("adobe-sign", "agr-e", "completed").await;
    assert_eq!(history_entry(&view, "n-signed")["confirmation"], "confirmed", "{view}");
}

#[tokio::test]
async fn a_final_waits_out_the_providers_throttling() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-t", "Mutual NDA", "SIGNED");
    let app = spawn_app_with(&confirming(&fake, &[])).await;
    deliver(
        &app,
        "n-created",
        "agr-t",
        "AGREEMENT_CREATED",
        "OUT_FOR_SIGNATURE",
        &now_plus(-60),
    )
    .await;
    // Adobe's throttling answer: 429, Retry-After and retryAfter (1 s).
    fake.fail_next(1, Failure::TooManyRequests { retry_after_secs: 1 });
    deliver(
        &app,
        "n-signed",
        "agr-t",
        "AGREEMENT_WORKFLOW_COMPLETED",
        "SIGNED",
        &now_plus(0),
    )
    .await;

    let view = app.wait_for_agreement_status("adobe-sign", "agr-t", "completed").await;
    assert_eq!(history_entry(&view, "n-signed")["confirmation"], "confirmed", "{view}");
    let polls: Vec<_> = fake
        .api_requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/agr-t"))
        .map(|r| r.status)
        .collect();
    assert_eq!(polls.first(), Some(&Some(429)), "first throttled: {polls:?}");
    assert_eq!(polls.last(), Some(&Some(200)), "then answered: {polls:?}");
}

#[tokio::test]
async fn a_final_for_an_agreement_the_provider_does_not_know_is_unconfirmed() {
    let fake = FakeProvider::start().await;
    let app = spawn_app_with(&confirming(&fake, &[])).await;
    deliver(
        &app,
        "n-forged",
        "agr-none",
        "AGREEMENT_RECALLED",
        "CANCELLED",
        &now_plus(0),
    )
    .await;
    app.wait_until("the forged recall to be resolved", || async {
        history_entry(&app.get_agreement("adobe-sign", "agr-none").await, "n-forged")["confirmation"] == "unconfirmed"
    })
    .await;
    let view = app.get_agreement("adobe-sign", "agr-none").await;
    assert_eq!(view["status"], Value::Null, "nothing applied: {view}");
    assert_eq!(view["confirm_pending"], false);
}

#[tokio::test]
async fn confirmation_can_be_turned_off() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-off", "Mutual NDA", "OUT_FOR_SIGNATURE");
    let app = spawn_app_with(&confirming(&fake, &[("SIGNHOOK_CONFIRM_WEAK_FINALS", "false")])).await;
    deliver(
        &app,
        "n-signed",
        "agr-off",
        "AGREEMENT_WORKFLOW_COMPLETED",
        "SIGNED",
        &now_plus(0),
    )
    .await;
    let view = app.get_agreement("adobe-sign", "agr-off").await;
    assert_eq!(view["status"], "completed", "applied at once: {view}");
    assert_eq!(history_entry(&view, "n-signed")["confirmation"], Value::Null);
    assert_eq!(fake.request_count(&format!("{AGREEMENT_PATH}agr-off")), 0);
}

#[tokio::test]
async fn a_later_forged_final_on_a_finished_agreement_is_resolved_too() {
    let fake = FakeProvider::start().await;
    fake.set_agreement("agr-f", "Mutual NDA", "SIGNED");
    let app = spawn_app_with(&confirming(&fake, &[])).await;
    deliver(
        &app,
        "n-signed",
        "agr-f",
        "AGREEMENT_WORKFLOW_COMPLETED",
        "SIGNED",
        &now_plus(-60),
    )
    .await;
    app.wait_for_agreement_status("adobe-sign", "agr-f", "completed").await;
    // A later final on the finished agreement would replace it: held, polled, contradicted.
    deliver(&app, "n-forged", "agr-f", "AGREEMENT_EXPIRED", "EXPIRED", &now_plus(0)).await;
    app.wait_until("the forged expiry to be resolved", || async {
        history_entry(&app.get_agreement("adobe-sign", "agr-f").await, "n-forged")["confirmation"] == "unconfirmed"
    })
    .await;
    let view = app.get_agreement("adobe-sign", "agr-f").await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["confirm_pending"], false, "{view}");
}

/// FuseSign's `Fuse-Signature` is a static value (seed 001): its finals are
/// held too, and resolved by `GET /api/Bundle/Get` (the fake answers a
/// bundle's `Status` as FuseSign's API reference shows it).
#[tokio::test]
async fn fusesign_finals_are_confirmed_with_its_api() {
    use crate::common::fake_provider::{FUSESIGN_API_TOKEN, FUSESIGN_TENANT_ID};
    let fake = FakeProvider::start().await;
    fake.set_bundle("b-1", "Offer", "Live");
    let app = spawn_app_with(&[
        ("SIGNHOOK_FUSESIGN_API_BASE", fake.base_url.as_str()),
        ("SIGNHOOK_FUSESIGN_API_TOKEN", FUSESIGN_API_TOKEN),
        ("SIGNHOOK_FUSESIGN_API_TENANT_ID", FUSESIGN_TENANT_ID),
        ("SIGNHOOK_CONFIRM_WEAK_FINALS", "true"),
        ("SIGNHOOK_PROVIDER_API_MAX_ATTEMPTS", "1"),
        ("SIGNHOOK_RECONCILE_INTERVAL", "100ms"),
        ("SIGNHOOK_RECONCILE_MAX_PER_MINUTE", "6000"),
    ])
    .await;
    let forged = fuse_event("h-forged", "b-1", "BundleRetracted", &now_plus(0));
    assert_eq!(app.post_fusesign(&forged).await.status(), 200);
    app.wait_idle().await;
    app.wait_until("the forged retraction to be resolved", || async {
        history_entry(&app.get_agreement("fusesign", "b-1").await, "h-forged")["confirmation"] == "unconfirmed"
    })
    .await;
    assert_eq!(app.get_agreement("fusesign", "b-1").await["status"], "in_progress");

    fake.set_bundle("b-1", "Offer", "Finalised");
    let finalised = fuse_event("h-final", "b-1", "BundleFinalised", &now_plus(1));
    assert_eq!(app.post_fusesign(&finalised).await.status(), 200);
    app.wait_idle().await;
    let view = app.wait_for_agreement_status("fusesign", "b-1", "completed").await;
    assert_eq!(history_entry(&view, "h-final")["confirmation"], "confirmed", "{view}");
}

/// BoldSign signs every webhook with HMAC-SHA256: its finals apply at once,
/// without asking the API, even with confirmation on.
#[tokio::test]
async fn boldsign_finals_need_no_confirmation() {
    use crate::common::fake_provider::BOLDSIGN_API_KEY;
    let fake = FakeProvider::start().await;
    fake.set_document("doc-1", "Offer letter", "InProgress");
    let app = spawn_app_with(&[
        ("SIGNHOOK_BOLDSIGN_API_BASE", fake.base_url.as_str()),
        ("SIGNHOOK_BOLDSIGN_API_KEY", BOLDSIGN_API_KEY),
        ("SIGNHOOK_CONFIRM_WEAK_FINALS", "true"),
        ("SIGNHOOK_RECONCILE_INTERVAL", "100ms"),
    ])
    .await;
    let completed = boldsign_event("e-1", "doc-1", "Completed", Some("Completed"), unix_now());
    assert_eq!(app.post_boldsign(&completed).await.status(), 200);
    app.wait_idle().await;
    let view = app.get_agreement("boldsign", "doc-1").await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(history_entry(&view, "e-1")["confirmation"], Value::Null);
    assert!(fake.api_requests().is_empty(), "{:?}", fake.api_requests());
}
