//! Changes of an agreement's status are recorded with the agreement and read
//! through the change feed (`GET /api/changes`), which never skips one.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use serde_json::Value;
use signhook::{
    agreement::{AgreementStatus, Previous},
    store::{record_changes, ChangeOrigin, ChangeType, NewChange},
};

use crate::{
    common::fake_provider::{FakeProvider, ADOBE_API_TOKEN},
    helpers::*,
};

fn at(minute: u32) -> String {
    format!("2026-11-20T09:{minute:02}:00Z")
}

#[tokio::test]
async fn only_events_that_move_a_status_are_changes() {
    let app = spawn_app().await;
    let created = adobe_event("n-1", "agr-1", "AGREEMENT_CREATED", Some("OUT_FOR_SIGNATURE"), &at(0));
    app.deliver_adobe(&created).await;
    // A duplicate, an event that leaves both statuses as they are, the
    // completion, and a late event from before it.
    app.deliver_adobe(&created).await;
    app.deliver_adobe(&adobe_event(
        "n-2",
        "agr-1",
        "AGREEMENT_ACTION_COMPLETED",
        Some("OUT_FOR_SIGNATURE"),
        &at(5),
    ))
    .await;
    app.deliver_adobe(&adobe_event(
        "n-3",
        "agr-1",
        "AGREEMENT_WORKFLOW_COMPLETED",
        Some("SIGNED"),
        &at(10),
    ))
    .await;
    app.deliver_adobe(&adobe_event(
        "n-4",
        "agr-1",
        "AGREEMENT_ACTION_DELEGATED",
        Some("OUT_FOR_SIGNATURE"),
        &at(3),
    ))
    .await;

    let changes = app.read_changes(2).await;
    let summary: Vec<_> = changes
        .iter()
        .map(|c| {
            (
                c["previous_status"].clone(),
                c["status"].clone(),
                c["previous_provider_status"].clone(),
                c["provider_status"].clone(),
                c["event_id"].clone(),
                c["source"].clone(),
            )
        })
        .collect();
    let v = |s: &str| Value::from(s);
    assert_eq!(
        summary,
        [
            (
                Value::Null,
                v("in_progress"),
                Value::Null,
                v("OUT_FOR_SIGNATURE"),
                v("n-1"),
                v("webhook")
            ),
            (
                v("in_progress"),
                v("completed"),
                v("OUT_FOR_SIGNATURE"),
                v("SIGNED"),
                v("n-3"),
                v("webhook")
            ),
        ]
    );
    assert_eq!(changes[1]["occurred_at"], "2026-11-20T09:10:00Z");
    assert_eq!(
        (changes[1]["provider"].as_str(), changes[1]["agreement_id"].as_str()),
        (Some("adobe-sign"), Some("agr-1"))
    );
    assert_eq!(changes[1]["name"], "Mutual NDA");
    assert!(changes[0]["cursor"].as_i64() < changes[1]["cursor"].as_i64());
    // Nothing else was recorded, and the feed has nothing after the last.
    assert_eq!(app.count("SELECT count(*) FROM changes").await, 2);
    let cursor = changes[1]["cursor"].as_i64().unwrap();
    let rest = app.changes(&format!("after={cursor}&wait=1")).await;
    assert_eq!(rest["changes"], serde_json::json!([]));
    assert_eq!(rest["next_cursor"], cursor);
}

#[tokio::test]
async fn a_refresh_that_finds_a_new_status_is_a_change() {
    let fake = FakeProvider::start().await;
    let app = spawn_app_with(&[
        ("SIGNHOOK_ADOBE_SIGN_API_BASE", fake.base_url.as_str()),
        ("SIGNHOOK_ADOBE_SIGN_API_TOKEN", ADOBE_API_TOKEN),
        ("SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL", "0"),
        // The events are dated weeks ago: with the default 6 h the agreement
        // would be stale at once, and the reconciler's first pass, when late
        // on a loaded machine, polled it and saw the completion before the
        // refresh did (seen in CI: the change came from `poll`).
        ("SIGNHOOK_RECONCILE_STALE_AFTER", "8760h"),
    ])
    .await;
    app.deliver_adobe(&adobe_event(
        "n-1",
        "agr-1",
        "AGREEMENT_CREATED",
        Some("OUT_FOR_SIGNATURE"),
        &at(0),
    ))
    .await;
    fake.set_agreement("agr-1", "Mutual NDA", "OUT_FOR_SIGNATURE");
    assert_eq!(app.refresh("adobe-sign", "agr-1").await.status(), 200);
    // The completion webhook was lost; the refresh finds it.
    fake.set_agreement("agr-1", "Mutual NDA", "SIGNED");
    assert_eq!(app.refresh("adobe-sign", "agr-1").await.status(), 200);
    assert_eq!(app.refresh("adobe-sign", "agr-1").await.status(), 200);

    let changes = app.read_changes(2).await;
    assert_eq!(changes[1]["status"], "completed");
    assert_eq!(changes[1]["previous_status"], "in_progress");
    assert_eq!(
        (changes[1]["event_id"].as_str(), changes[1]["source"].as_str()),
        (Some("refresh"), Some("refresh"))
    );
    assert_eq!(
        app.count("SELECT count(*) FROM changes").await,
        2,
        "unchanged refreshes add none"
    );
}

#[tokio::test]
async fn a_long_poll_answers_when_a_change_arrives() {
    let app = spawn_app().await;
    let started = Instant::now();
    let poll = app.changes("after=0&wait=20");
    let post = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.deliver_adobe(&adobe_event(
            "n-1",
            "agr-1",
            "AGREEMENT_CREATED",
            Some("OUT_FOR_SIGNATURE"),
            &at(0),
        ))
        .await;
    };
    let (page, ()) = tokio::join!(poll, post);
    assert_eq!(page["changes"].as_array().map(Vec::len), Some(1), "{page}");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    // With nothing to return, the wait is served in full and the page is empty.
    let cursor = page["next_cursor"].as_i64().unwrap();
    let started = Instant::now();
    let empty = app.changes(&format!("after={cursor}&wait=1")).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(empty["changes"], serde_json::json!([]));
}

#[tokio::test]
async fn bad_feed_queries_are_refused_with_the_parameter_named() {
    let app = spawn_app().await;
    for (query, name) in [
        ("wait=61", "wait"),
        ("wait=soon", "wait"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("after=-1", "after"),
        ("after=x", "after"),
        ("provider=docusign", "docusign"),
    ] {
        let (status, body) = error_of(app.admin_get(&format!("/api/changes?{query}")).await).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_query");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(name),
            "{query}: {body}"
        );
    }
}

/// Many writers record changes at once, some holding their transaction
/// open before committing, so changes commit out of id order; a reader that
/// follows the cursor meanwhile must see every change exactly once, each
/// agreement's changes in order.
#[tokio::test]
async fn the_feed_never_skips_a_change_under_concurrent_writers() {
    const WRITERS: usize = 8;
    const TRANSACTIONS: usize = 15;
    let app = spawn_app().await;
    let writers = (0..WRITERS).map(|w| {
        let db = app.db.clone();
        tokio::spawn(async move {
            for t in 0..TRANSACTIONS {
                let mut tx = db.begin().await.expect("begin");
                let agreement = format!("agr-{w}-{}", t % 3);
                let changes: Vec<NewChange> = (0..1 + (w + t) % 3)
                    .map(|_| NewChange {
                        kind: ChangeType::StatusChanged,
                        provider: "boldsign",
                        agreement_id: &agreement,
                        resource_type: "document",
                        name: None,
                        previous: Previous {
                            status: None,
                            provider_status: None,
                        },
                        status: Some(AgreementStatus::InProgress),
                        provider_status: None,
                        occurred_at: chrono::Utc::now(),
                        event_id: None,
                        origin: ChangeOrigin::Poll,
                        documents: Vec::new(),
                    })
                    .collect();
                record_changes(&mut tx, &changes).await.expect("recorded");
                // Every third transaction commits long after the others.
                let hold = if (w + t) % 3 == 0 { 400 } else { fastrand::u64(0..30) };
                tokio::time::sleep(Duration::from_millis(hold)).await;
                tx.commit().await.expect("commit");
            }
        })
    });
    let writers: Vec<_> = writers.collect();
    let mut seen: Vec<Value> = Vec::new();
    let mut cursor = 0;
    let deadline = Instant::now() + WAIT_LIMIT * 2;
    loop {
        let done = writers.iter().all(|w| w.is_finished());
        let page = app.changes(&format!("after={cursor}&limit=7&wait=1")).await;
        cursor = page["next_cursor"].as_i64().unwrap();
        let got = page["changes"].as_array().unwrap().clone();
        if done && got.is_empty() {
            break;
        }
        seen.extend(got);
        assert!(Instant::now() < deadline, "the feed did not settle");
    }
    for writer in writers {
        writer.await.expect("writer finished");
    }
    let written: Vec<i64> = sqlx::query_scalar("SELECT id FROM changes ORDER BY id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    let ids: Vec<i64> = seen.iter().map(|c| c["id"].as_i64().unwrap()).collect();
    let unique: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a change was read twice");
    assert_eq!(
        unique,
        written.iter().copied().collect::<HashSet<_>>(),
        "every change read"
    );
    // The scenario did happen: some change committed (and was numbered)
    // after one with a higher id.
    let inversions: i64 = app
        .count("SELECT count(*) FROM changes a JOIN changes b ON a.id < b.id AND a.seq > b.seq")
        .await;
    assert!(
        inversions > 0,
        "no change committed out of id order; the test proves nothing"
    );
    // Each agreement's changes in id order, cursors increasing.
    let mut last: HashMap<String, i64> = HashMap::new();
    let mut last_cursor = 0;
    for change in &seen {
        let (id, cursor) = (change["id"].as_i64().unwrap(), change["cursor"].as_i64().unwrap());
        assert!(cursor > last_cursor);
        last_cursor = cursor;
        let agreement = change["agreement_id"].as_str().unwrap().to_owned();
        if let Some(previous) = last.insert(agreement.clone(), id) {
            assert!(previous < id, "{agreement}: {previous} after {id}");
        }
    }
}
