//! Outbound deliveries of changes to the application: a sink the test starts
//! stands for the application; signatures are checked with an HMAC computed
//! in the test (`common::sink::verify`), not with signhook's signing code.

use std::{collections::HashMap, time::Duration};

use serde_json::Value;

use crate::{
    common::sink::{verify, Answer, Sink, DELIVERY_SECRET},
    helpers::*,
};

/// An app delivering to `sink` as the destination `default`, plus `extra`.
async fn app_delivering_to(sink: &Sink, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("SIGNHOOK_DELIVERY_URL", sink.url.as_str()),
        ("SIGNHOOK_DELIVERY_SECRET", DELIVERY_SECRET),
        ("SIGNHOOK_DELIVERY_RETRY_SCHEDULE", "200ms,200ms,200ms"),
    ];
    vars.extend_from_slice(extra);
    spawn_app_with(&vars).await
}

impl Api {
    /// `GET /api/deliveries?<query>`'s deliveries.
    async fn deliveries(&self, query: &str) -> Vec<Value> {
        let response = self.admin_get(&format!("/api/deliveries?{query}")).await;
        assert_eq!(response.status(), 200, "/api/deliveries?{query}");
        let page: Value = response.json().await.expect("deliveries JSON");
        page["deliveries"].as_array().expect("deliveries").clone()
    }

    /// Waits until `n` deliveries are in `state`; returns them.
    async fn wait_for_deliveries(&self, state: &str, n: usize) -> Vec<Value> {
        self.wait_until(&format!("{n} deliveries {state}"), || async {
            self.deliveries(&format!("state={state}&limit=1000")).await.len() >= n
        })
        .await;
        self.deliveries(&format!("state={state}&limit=1000")).await
    }
}

fn document_events(doc: &str, base: i64) -> Vec<Value> {
    ["Sent", "Viewed", "Signed", "Completed"]
        .iter()
        .enumerate()
        .map(|(n, event_type)| boldsign_event(&format!("{doc}-{event_type}"), doc, event_type, None, base + n as i64))
        .collect()
}

#[tokio::test]
async fn every_change_is_delivered_once_signed_and_in_each_agreements_order() {
    let all = Sink::start().await;
    let done = Sink::start().await;
    // Answers overlap, and a quarter of the attempts fail and are retried
    // later: without per-agreement order a later change would overtake.
    all.jitter(40);
    all.fail_at_random(0.25);
    // A second destination taking only BoldSign completions.
    let destinations = format!(
        r#"[{{name="done", url="{}", secret="{DELIVERY_SECRET}", providers=["boldsign"], statuses=["completed"]}}]"#,
        done.url
    );
    let app = app_delivering_to(
        &all,
        &[
            ("SIGNHOOK_DESTINATIONS", &destinations),
            (
                "SIGNHOOK_DELIVERY_RETRY_SCHEDULE",
                "50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms",
            ),
        ],
    )
    .await;
    // Six documents: even ones in order, odd ones out of order; every event twice.
    let base = unix_now() - 600;
    for round in 0..2 {
        for i in 0..6 {
            let events = document_events(&format!("doc-{i}"), base);
            let order: &[usize] = if i % 2 == 0 { &[0, 1, 2, 3] } else { &[1, 0, 3, 2] };
            for &n in order {
                let response = app.post_boldsign(&events[n]).await;
                assert_eq!(response.status(), 200, "round {round}");
            }
        }
    }
    app.wait_idle().await;
    let changes: i64 = app.count("SELECT count(*) FROM changes").await;
    let feed = app.read_changes(changes as usize).await;
    let delivered = app.wait_for_deliveries("delivered", changes as usize + 6).await;
    assert_eq!(
        delivered.len(),
        changes as usize + 6,
        "one delivery per change, and the completions to `done`"
    );

    let all_received = all.received();
    assert!(all_received.iter().any(|r| r.answered == 500), "some attempts failed");
    let received: Vec<_> = all_received.into_iter().filter(|r| r.answered == 200).collect();
    assert_eq!(received.len(), changes as usize, "each change acknowledged once");
    let mut sent: HashMap<String, Vec<i64>> = HashMap::new();
    for r in &received {
        assert!(verify(DELIVERY_SECRET, r), "signature of {}", r.webhook_id);
        let body = r.json();
        assert_eq!(body["type"], "agreement.status_changed");
        assert!(body["timestamp"].is_string());
        let id = body["data"]["change_id"].as_i64().expect("change_id");
        assert_eq!(r.webhook_id, format!("chg_{id}"));
        let agreement = body["data"]["agreement_id"].as_str().unwrap().to_owned();
        sent.entry(agreement).or_default().push(id);
    }
    // At the application, each agreement's changes arrive in the feed's order,
    // each taking up from the previous one.
    let mut expected: HashMap<String, Vec<i64>> = HashMap::new();
    for change in &feed {
        let agreement = change["agreement_id"].as_str().unwrap().to_owned();
        expected
            .entry(agreement)
            .or_default()
            .push(change["id"].as_i64().unwrap());
    }
    assert_eq!(sent, expected);
    for i in 0..6 {
        let bodies: Vec<Value> = received
            .iter()
            .map(|r| r.json()["data"].clone())
            .filter(|d| d["agreement_id"] == format!("doc-{i}"))
            .collect();
        for pair in bodies.windows(2) {
            assert_eq!(
                pair[1]["previous_provider_status"], pair[0]["provider_status"],
                "doc-{i}"
            );
        }
        assert_eq!(bodies.last().unwrap()["status"], "completed", "doc-{i}");
    }
    // The filtered destination got the six completions only.
    let completions = done.received();
    assert_eq!(completions.len(), 6);
    assert!(completions
        .iter()
        .all(|r| verify(DELIVERY_SECRET, r) && r.json()["data"]["status"] == "completed"));
    // The agreement view shows its deliveries.
    let view = app.get_agreement("boldsign", "doc-0").await;
    assert_eq!(view["deliveries"][0]["destination"], "default");
    assert_eq!(view["deliveries"][0]["delivered"], 4);
    assert_eq!(view["deliveries"][0]["pending"], 0);
    assert_eq!(view["deliveries"][1]["destination"], "done");
}

/// The first destination as `GET /api/destinations` shows it.
async fn destination(app: &TestApp) -> Value {
    let response = app.admin_get("/api/destinations").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["destinations"][0].clone()
}

async fn one_change(app: &TestApp) {
    app.deliver_adobe(&adobe_created(1)).await;
}

#[tokio::test]
async fn a_500_and_a_retry_after_are_retried_under_the_same_webhook_id() {
    let sink = Sink::start().await;
    sink.plan([
        Answer {
            body: "boom",
            ..Answer::status(500)
        },
        Answer {
            retry_after: Some("2"),
            ..Answer::status(503)
        },
    ]);
    let app = app_delivering_to(&sink, &[]).await;
    one_change(&app).await;
    let delivered = app.wait_for_deliveries("delivered", 1).await;
    assert_eq!(delivered[0]["attempts"], 3);
    assert_eq!(delivered[0]["last_status"], 200);
    let received = sink.received();
    assert_eq!(received.len(), 3);
    assert!(received
        .iter()
        .all(|r| r.webhook_id == received[0].webhook_id && verify(DELIVERY_SECRET, r)));
    assert!(
        received.iter().all(|r| r.body == received[0].body),
        "the same body at every attempt"
    );
    // The schedule says 200 ms; the application asked for 2 s.
    let gap = received[2].at - received[1].at;
    assert!(gap >= Duration::from_millis(1900), "Retry-After honoured: {gap:?}");
}

#[tokio::test]
async fn an_answer_that_does_not_come_in_time_is_retried() {
    let sink = Sink::start().await;
    sink.plan([Answer {
        delay: Duration::from_secs(5),
        ..Answer::status(200)
    }]);
    let app = app_delivering_to(
        &sink,
        &[
            ("SIGNHOOK_DELIVERY_TIMEOUT_MS", "500"),
            ("SIGNHOOK_DELIVERY_LEASE_SECS", "3"),
        ],
    )
    .await;
    one_change(&app).await;
    let delivered = app.wait_for_deliveries("delivered", 1).await;
    assert_eq!(delivered[0]["attempts"], 2);
    let received = sink.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].webhook_id, received[1].webhook_id);
    assert!(
        received[1].at - received[0].at < Duration::from_secs(4),
        "retried after the timeout, not the answer"
    );
}

#[tokio::test]
async fn a_delivery_fails_after_its_last_attempt_and_can_be_retried() {
    let sink = Sink::start().await;
    sink.answer_by_default(Some(Answer {
        body: "no such customer",
        ..Answer::status(422)
    }));
    let app = app_delivering_to(&sink, &[("SIGNHOOK_DELIVERY_RETRY_SCHEDULE", "100ms")]).await;
    one_change(&app).await;
    let failed = app.wait_for_deliveries("failed", 1).await;
    assert_eq!(failed[0]["attempts"], 2);
    assert_eq!(failed[0]["last_status"], 422);
    let error = failed[0]["last_error"].as_str().unwrap();
    assert!(error.contains("422") && error.contains("no such customer"), "{error}");
    assert_eq!(sink.count(), 2);

    sink.answer_by_default(None);
    let id = failed[0]["id"].as_i64().unwrap();
    let response = app.admin_post(&format!("/api/deliveries/{id}/retry")).await;
    assert_eq!(response.status(), 202);
    let delivered = app.wait_for_deliveries("delivered", 1).await;
    assert_eq!(delivered[0]["id"], id);
    let received = sink.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.webhook_id == received[0].webhook_id));
    // Unknown and malformed ids.
    assert_eq!(app.admin_post("/api/deliveries/999999/retry").await.status(), 404);
    assert_eq!(app.admin_post("/api/deliveries/x/retry").await.status(), 400);
}

#[tokio::test]
async fn a_destination_failing_for_too_long_is_disabled_then_enabled_and_recovered() {
    let sink = Sink::start().await;
    sink.answer_by_default(Some(Answer::status(503)));
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    let app = app_delivering_to(
        &sink,
        &[
            ("SIGNHOOK_DELIVERY_DISABLE_AFTER", "1s"),
            (
                "SIGNHOOK_DELIVERY_RETRY_SCHEDULE",
                "200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms",
            ),
        ],
    )
    .await;
    one_change(&app).await;
    app.wait_until("the destination to be disabled", || async {
        !destination(&app).await["disabled_at"].is_null()
    })
    .await;
    // Disabled: a new change waits, nothing is sent.
    let attempts = sink.count();
    app.deliver_adobe(&adobe_event(
        "n-2",
        "agr-2",
        "AGREEMENT_CREATED",
        Some("OUT_FOR_SIGNATURE"),
        "2026-11-20T09:00:00Z",
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.count(), attempts, "nothing sent while disabled");
    let shown = destination(&app).await;
    assert_eq!(shown["pending"], 2, "{shown}");

    sink.answer_by_default(None);
    let response = app.admin_post("/api/destinations/default/enable").await;
    assert_eq!(response.status(), 200);
    let enabled: Value = response.json().await.unwrap();
    assert!(enabled["disabled_at"].is_null(), "{enabled}");
    app.wait_for_deliveries("delivered", 2).await;

    // Recover: everything since `since` is sent again, under the same ids.
    let ids_before: Vec<String> = sink.received().iter().map(|r| r.webhook_id.clone()).collect();
    let response = app
        .admin_post(&format!(
            "/api/destinations/default/recover?since={}",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))
        .await;
    assert_eq!(response.status(), 202);
    let recovered: Value = response.json().await.unwrap();
    assert_eq!(recovered["queued"], 2, "{recovered}");
    app.wait_for_deliveries("delivered", 4).await;
    let again: Vec<String> = sink.received()[ids_before.len()..]
        .iter()
        .map(|r| r.webhook_id.clone())
        .collect();
    let mut expected: Vec<String> = ids_before.clone();
    expected.sort();
    expected.dedup();
    let mut got = again.clone();
    got.sort();
    assert_eq!(got, expected);

    // Bad operator input.
    assert_eq!(app.admin_post("/api/destinations/nope/enable").await.status(), 404);
    let (status, body) = error_of(app.admin_post("/api/destinations/default/recover").await).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_query")));
    let (status, _) = error_of(
        app.admin_post("/api/destinations/default/recover?since=yesterday")
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        app.admin_post("/api/destinations/nope/recover?since=2026-01-01T00:00:00Z")
            .await
            .status(),
        404
    );
    let (status, _) = error_of(app.admin_get("/api/deliveries?state=lost").await).await;
    assert_eq!(status, 400);
}
