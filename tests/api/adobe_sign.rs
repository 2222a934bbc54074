//! Adobe Acrobat Sign: verification of intent, notifications end to end, and
//! the admin API over them.

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::*;

const AGREEMENT: &str = "CBJCHBCAABAAagreement1";

#[tokio::test]
async fn verification_echoes_an_allowed_client_id_whatever_the_header_case() {
    let app = spawn_app().await;
    for name in ["X-AdobeSign-ClientId", "x-adobesign-clientid", "X-ADOBESIGN-CLIENTID"] {
        let response = app
            .client
            .get(app.url("/webhooks/adobe-sign"))
            .header(name, ADOBE_CLIENT_ID)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(response.headers()["x-adobesign-clientid"], ADOBE_CLIENT_ID);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({ "xAdobeSignClientId": ADOBE_CLIENT_ID }));
    }
}

#[tokio::test]
async fn verification_refuses_unknown_or_missing_client_ids_without_echo() {
    let app = spawn_app().await;
    for (header, expected) in [(None, 401), (Some("someone-else"), 403), (Some(""), 401)] {
        let response = app.verify_adobe(header).await;
        assert_eq!(response.status(), expected, "{header:?}");
        assert!(response.headers().get("x-adobesign-clientid").is_none());
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{body}");
        assert!(body.get("xAdobeSignClientId").is_none());
    }
}

#[tokio::test]
async fn notification_is_stored_byte_for_byte_acknowledged_and_applied() {
    let app = spawn_app().await;
    let body = std::fs::read(ADOBE_FIXTURE).unwrap();

    let response = app.post_adobe_raw(body.clone()).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-adobesign-clientid"], ADOBE_CLIENT_ID);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "xAdobeSignClientId": ADOBE_CLIENT_ID })
    );
    let (stored, tenant, event_type, occurred): (
        Vec<u8>,
        Option<String>,
        String,
        Option<chrono::DateTime<chrono::Utc>>,
    ) = sqlx::query_as("SELECT body, tenant, event_type, occurred_at FROM events WHERE provider = 'adobe-sign'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, body, "raw body kept byte for byte");
    assert_eq!(tenant.as_deref(), Some(ADOBE_CLIENT_ID));
    assert_eq!(event_type, "AGREEMENT_ACTION_COMPLETED");
    assert_eq!(occurred.unwrap().to_rfc3339(), "2026-11-20T09:41:27+00:00");

    let agreement = app
        .wait_for_agreement_status("adobe-sign", "CBJCHBCAABAAexampleAgreementId", "in_progress")
        .await;
    assert_eq!(agreement["status"], "in_progress");
    assert_eq!(agreement["provider_status"], "OUT_FOR_SIGNATURE");
    assert_eq!(agreement["name"], "Mutual NDA");
    assert_eq!(agreement["last_event_at"], "2026-11-20T09:41:27Z");
    assert_eq!(agreement["history"].as_array().unwrap().len(), 1);
    assert_eq!(
        agreement["history"][0]["event_id"],
        "b2b0e6a4-2c1e-4b8e-9d59-3f0c8b7f8d21"
    );
    // Logs never carry the e-mail addresses: tests/process/logs.rs.
}

#[tokio::test]
async fn notifications_without_an_allowed_client_id_are_refused_and_not_stored() {
    let app = spawn_app().await;
    let body = adobe_event(
        "n-1",
        AGREEMENT,
        "AGREEMENT_CREATED",
        Some("OUT_FOR_SIGNATURE"),
        "2026-11-20T09:00:00Z",
    )
    .to_string();
    let cases: [(&[(&str, &str)], u16); 3] = [
        (&[], 401),
        (&[("X-AdobeSign-ClientId", "not-ours")], 403),
        (
            &[
                ("X-AdobeSign-ClientId", ADOBE_CLIENT_ID),
                ("X-AdobeSign-ClientId", "not-ours"),
            ],
            401,
        ),
    ];
    for (headers, expected) in cases {
        let response = app.post("/webhooks/adobe-sign", headers, body.clone()).await;
        assert_eq!(response.status(), expected, "{headers:?}");
        assert!(response.headers().get("x-adobesign-clientid").is_none());
    }
    assert_eq!(app.event_count("adobe-sign").await, 0);
}

#[tokio::test]
async fn duplicate_storm_is_stored_and_applied_once() {
    let app = spawn_app().await;
    let body = adobe_event(
        "storm-1",
        AGREEMENT,
        "AGREEMENT_CREATED",
        Some("OUT_FOR_SIGNATURE"),
        "2026-11-20T09:00:00Z",
    );

    let responses = futures::future::join_all((0..16).map(|_| app.post_adobe(&body))).await;

    for response in responses {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(app.event_count("adobe-sign").await, 1);
    app.wait_idle().await;
    assert_eq!(app.history_count("adobe-sign", AGREEMENT).await, 1);
    // A later redelivery is still acknowledged and still stores nothing.
    assert_eq!(app.post_adobe(&body).await.status(), 200);
    assert_eq!(app.event_count("adobe-sign").await, 1);
}

#[tokio::test]
async fn out_of_order_completion_never_regresses() {
    let app = spawn_app().await;
    let events = [
        (
            "n-3",
            "AGREEMENT_WORKFLOW_COMPLETED",
            Some("SIGNED"),
            "2026-11-20T09:03:00Z",
        ),
        (
            "n-2",
            "AGREEMENT_ACTION_COMPLETED",
            Some("OUT_FOR_SIGNATURE"),
            "2026-11-20T09:02:00Z",
        ),
        (
            "n-1",
            "AGREEMENT_CREATED",
            Some("OUT_FOR_SIGNATURE"),
            "2026-11-20T09:01:00Z",
        ),
        ("n-4", "AGREEMENT_EMAIL_VIEWED", None, "2026-11-20T09:04:00Z"),
    ];
    for (id, event, status, date) in events {
        assert_eq!(
            app.post_adobe(&adobe_event(id, AGREEMENT, event, status, date))
                .await
                .status(),
            200
        );
        app.wait_idle().await;
    }

    let agreement = app.get_agreement("adobe-sign", AGREEMENT).await;
    assert_eq!(agreement["status"], "completed");
    assert_eq!(agreement["provider_status"], "SIGNED");
    let history: Vec<&str> = agreement["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        ["n-1", "n-2", "n-3", "n-4"],
        "every event recorded, ordered by event time"
    );
}

#[tokio::test]
async fn each_terminal_outcome_is_reached() {
    let app = spawn_app().await;
    let cases = [
        (
            "a-completed",
            "AGREEMENT_WORKFLOW_COMPLETED",
            Some("SIGNED"),
            "completed",
        ),
        ("a-declined", "AGREEMENT_REJECTED", None, "declined"),
        ("a-cancelled", "AGREEMENT_RECALLED", None, "cancelled"),
        ("a-expired", "AGREEMENT_EXPIRED", Some("EXPIRED"), "expired"),
        (
            "a-approved",
            "AGREEMENT_ACTION_COMPLETED",
            Some("APPROVED"),
            "completed",
        ),
        ("a-draft", "AGREEMENT_CREATED", Some("AUTHORING"), "draft"),
    ];
    for (agreement, event, status, _) in cases {
        let created = adobe_event(
            &format!("{agreement}-1"),
            agreement,
            "AGREEMENT_CREATED",
            Some("OUT_FOR_SIGNATURE"),
            "2026-11-20T09:00:00Z",
        );
        let outcome = adobe_event(
            &format!("{agreement}-2"),
            agreement,
            event,
            status,
            "2026-11-20T10:00:00Z",
        );
        assert_eq!(app.post_adobe(&created).await.status(), 200);
        assert_eq!(app.post_adobe(&outcome).await.status(), 200);
    }
    app.wait_idle().await;
    for (agreement, event, _, expected) in cases {
        assert_eq!(
            app.get_agreement("adobe-sign", agreement).await["status"],
            expected,
            "{event}"
        );
    }
}

#[tokio::test]
async fn unknown_event_types_are_accepted_and_processed() {
    let app = spawn_app().await;
    let body = adobe_event("n-new", AGREEMENT, "AGREEMENT_TELEPORTED", None, "2026-11-20T09:00:00Z");

    app.deliver_adobe(&body).await;

    assert_eq!(app.event_state("adobe-sign", "n-new").await.0, "processed");
    let agreement = app.get_agreement("adobe-sign", AGREEMENT).await;
    assert_eq!(agreement["history"][0]["event_type"], "AGREEMENT_TELEPORTED");
}

#[tokio::test]
async fn widget_and_megasign_notifications_are_accepted() {
    let app = spawn_app().await;
    let widget = json!({
        "webhookNotificationId": "w-1", "event": "WIDGET_CREATED", "eventDate": "2026-11-20T09:00:00Z",
        "eventResourceType": "widget", "widget": { "id": "CBJwidget1", "name": "Sign-up form", "status": "ACTIVE" }
    });
    let mega = json!({
        "webhookNotificationId": "m-1", "event": "MEGASIGN_RECALLED", "eventDate": "2026-11-20T09:00:00Z",
        "eventResourceType": "megaSign", "megaSign": { "id": "CBJmega1", "name": "Bulk NDA", "status": "IN_PROCESS" }
    });
    assert_eq!(app.post_adobe(&widget).await.status(), 200);
    app.deliver_adobe(&mega).await;

    let widget = app.get_agreement("adobe-sign", "CBJwidget1").await;
    assert_eq!(
        (widget["resource_type"].as_str(), widget["status"].as_str()),
        (Some("widget"), Some("in_progress"))
    );
    let mega = app.get_agreement("adobe-sign", "CBJmega1").await;
    assert_eq!(
        (mega["resource_type"].as_str(), mega["status"].as_str()),
        (Some("megaSign"), Some("cancelled"))
    );
}

/// Authenticated bodies signhook does not understand are kept, not refused:
/// a refusal would be retried and hold back every later notification of the
/// webhook (Adobe delivers in order; seed 000: "the entire webhook train
/// stops"). Each is stored byte for byte as a dead event naming the problem,
/// once per body, and answered 200 with the client-ID echo.
#[tokio::test]
async fn unparseable_authenticated_bodies_are_kept_dead_and_acknowledged_with_the_echo() {
    let app = spawn_app().await;
    let cases: [(&[u8], &str); 7] = [
        (b"not json", "not valid JSON"),
        (b"[1, 2, 3]", "must be a JSON object"),
        (b"\"a string\"", "must be a JSON object"),
        (b"{}", "webhookNotificationId is missing"),
        (
            br#"{"webhookNotificationId": null}"#,
            "webhookNotificationId is missing",
        ),
        (b"\xff\xfe{garbage", "not valid JSON"),
        (b"", "not valid JSON"),
    ];
    for (body, _) in cases {
        for copy in ["first", "retry"] {
            let response = app.post_adobe_raw(body.to_vec()).await;
            let shown = String::from_utf8_lossy(body);
            assert_eq!(response.status(), 200, "{copy} {shown:?}");
            assert_eq!(response.headers()["x-adobesign-clientid"], ADOBE_CLIENT_ID, "{shown:?}");
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer, json!({ "xAdobeSignClientId": ADOBE_CLIENT_ID }));
        }
    }
    let kept: Vec<(Vec<u8>, String, Option<String>)> = sqlx::query_as(
        "SELECT body, event_type, last_error FROM events WHERE provider = 'adobe-sign' AND state = 'dead' ORDER BY id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(kept.len(), cases.len(), "each body once, its retry a duplicate");
    for ((body, reason), (stored, event_type, error)) in cases.iter().zip(&kept) {
        assert_eq!(stored.as_slice(), *body, "byte for byte");
        assert_eq!(event_type, "unparsed");
        let error = error.as_deref().unwrap_or_default();
        assert!(error.contains(reason), "{error}");
    }
    assert_eq!(app.stats().await["events"]["dead"], cases.len() as i64);

    // The same junk without an allowed client ID is refused; nothing stored.
    for (headers, expected) in [(&[][..], 401), (&[("X-AdobeSign-ClientId", "not-ours")][..], 403)] {
        let response = app
            .post("/webhooks/adobe-sign", headers, b"not json at all".to_vec())
            .await;
        assert_eq!(response.status(), expected);
    }
    assert_eq!(app.event_count("adobe-sign").await, cases.len() as i64);

    // A replay parses the body again with the running code: still not a
    // notification, so dead again at once, now saying the stored body does not parse.
    let id: i64 = sqlx::query_scalar("SELECT id FROM events WHERE body = 'not json'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(app.replay(id).await.status(), 202);
    app.wait_until("the replayed junk to be dead again", || async {
        let (state, error): (String, Option<String>) =
            sqlx::query_as("SELECT state, last_error FROM events WHERE id = $1")
                .bind(id)
                .fetch_one(&app.db)
                .await
                .unwrap();
        state == "dead" && error.is_some_and(|e| e.starts_with("stored body no longer parses"))
    })
    .await;

    assert_eq!(app.get("/healthz").await.status(), 200);
    let valid = adobe_event("after", AGREEMENT, "AGREEMENT_CREATED", None, "2026-11-20T09:00:00Z");
    assert_eq!(app.post_adobe(&valid).await.status(), 200);
}

/// A value PostgreSQL cannot hold (a NUL in any extracted text) or an id
/// longer than a B-tree entry never fails a request, nor the other requests
/// of its group commit: 60 good notifications sent at the same time are all
/// answered 200 and applied.
#[tokio::test]
async fn values_postgres_cannot_hold_fail_no_request_and_no_neighbour() {
    let app = spawn_app_with(&[("SIGNHOOK_INGEST_WRITERS", "1")]).await;
    let date = "2026-11-20T09:00:00Z";
    let long_event_id = "n".repeat(10 * 1024);
    let long_agreement_id = "a".repeat(10 * 1024);
    let with_name = |id: &str, name: &str| {
        let mut event = adobe_event(
            id,
            &format!("agr-{id}"),
            "AGREEMENT_CREATED",
            Some("OUT_FOR_SIGNATURE"),
            date,
        );
        event["agreement"]["name"] = json!(name);
        event
    };
    let bad = [
        (
            "nul in the event id",
            adobe_event("bad\u{0}id", "agr-nul-event", "AGREEMENT_CREATED", None, date),
        ),
        (
            "10 KB event id",
            adobe_event(&long_event_id, "agr-long-event", "AGREEMENT_CREATED", None, date),
        ),
        ("nul in the name", with_name("bad-name", "Mutual\u{0}NDA")),
        (
            "nul in the event type",
            adobe_event("bad-type", "agr-bad-type", "AGREEMENT\u{0}CREATED", None, date),
        ),
        (
            "nul in the status",
            adobe_event(
                "bad-status",
                "agr-bad-status",
                "AGREEMENT_CREATED",
                Some("OUT\u{0}"),
                date,
            ),
        ),
        (
            "nul in the agreement id",
            adobe_event("bad-agr", "agr\u{0}1", "AGREEMENT_CREATED", None, date),
        ),
        (
            "10 KB agreement id",
            adobe_event("long-agr", &long_agreement_id, "AGREEMENT_CREATED", None, date),
        ),
    ];
    for round in 0..2 {
        let good = (0..60).map(|i| {
            adobe_event(
                &format!("good-{round}-{i}"),
                &format!("ok-{round}-{i}"),
                "AGREEMENT_CREATED",
                None,
                date,
            )
        });
        let requests = bad
            .iter()
            .map(|(case, event)| (case.to_string(), event.clone()))
            .chain(good.map(|event| ("good".to_owned(), event)));
        let answers = futures::future::join_all(requests.map(|(case, event)| {
            let app = &app;
            async move { (case, app.post_adobe(&event).await.status().as_u16()) }
        }))
        .await;
        for (case, status) in answers {
            assert_eq!(status, 200, "round {round}: {case}");
        }
    }
    app.wait_idle().await;
    for round in 0..2 {
        for i in 0..60 {
            let agreement = app.get_agreement("adobe-sign", &format!("ok-{round}-{i}")).await;
            assert_eq!(agreement["status"], "in_progress", "ok-{round}-{i}");
        }
    }
    // Storable once made so: applied, each stored once for its two rounds.
    for agreement_id in [
        "agr-nul-event",
        "agr-long-event",
        "agr-bad-name",
        "agr-bad-type",
        "agr-bad-status",
    ] {
        let agreement = app.get_agreement("adobe-sign", agreement_id).await;
        assert_eq!(
            agreement["history"].as_array().unwrap().len(),
            1,
            "{agreement_id}: {agreement}"
        );
    }
    assert_eq!(
        app.get_agreement("adobe-sign", "agr-bad-name").await["name"],
        "Mutual\u{FFFD}NDA"
    );
    // An agreement id that cannot be stored names no agreement: kept dead.
    let dead = app.dead_events("adobe-sign").await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    for (_, error) in &dead {
        assert!(
            error
                .as_deref()
                .unwrap_or_default()
                .contains("the agreement id cannot be stored"),
            "{dead:?}"
        );
    }
    assert_eq!(app.event_count("adobe-sign").await, 120 + bad.len() as i64);
}

/// `ABORTED` (the current name of `CANCELLED`, developer guide
/// `webhookeventsagreements.md`) ends the agreement; an upper-case
/// `eventResourceType` (as the payload overview documents its values) still
/// finds the agreement; a child agreement of a web form shows its parent
/// (`eventResourceParentType` / `eventResourceParentId`, payload overview).
#[tokio::test]
async fn aborted_upper_case_resource_types_and_parent_links_are_understood() {
    let app = spawn_app().await;
    let mut aborted = adobe_event(
        "n-aborted",
        "agr-aborted",
        "AGREEMENT_MODIFIED",
        Some("ABORTED"),
        "2026-11-20T09:00:00Z",
    );
    aborted["eventResourceType"] = json!("AGREEMENT");
    let mut child = adobe_event(
        "n-child",
        "agr-child",
        "AGREEMENT_CREATED",
        Some("OUT_FOR_SIGNATURE"),
        "2026-11-20T09:00:00Z",
    );
    child["eventResourceType"] = json!("AGREEMENT");
    child["eventResourceParentType"] = json!("WIDGET");
    child["eventResourceParentId"] = json!("CBJwidget1");
    let discarded = json!({
        "webhookNotificationId": "w-2", "event": "WIDGET_MODIFIED", "eventDate": "2026-11-20T09:00:00Z",
        "eventResourceType": "WIDGET", "widget": { "id": "CBJwidget1", "name": "Sign-up form", "status": "DISCARDED" }
    });
    for event in [&aborted, &child, &discarded] {
        assert_eq!(app.post_adobe(event).await.status(), 200);
    }
    app.wait_idle().await;
    let agreement = app.get_agreement("adobe-sign", "agr-aborted").await;
    assert_eq!(
        (agreement["status"].as_str(), agreement["provider_status"].as_str()),
        (Some("cancelled"), Some("ABORTED"))
    );
    let child = app.get_agreement("adobe-sign", "agr-child").await;
    assert_eq!(
        (
            child["status"].as_str(),
            child["parent_type"].as_str(),
            child["parent_id"].as_str()
        ),
        (Some("in_progress"), Some("widget"), Some("CBJwidget1"))
    );
    let widget = app.get_agreement("adobe-sign", "CBJwidget1").await;
    assert_eq!(
        (widget["resource_type"].as_str(), widget["status"].as_str()),
        (Some("widget"), Some("cancelled"))
    );
}

#[tokio::test]
async fn oversize_bodies_get_413_with_or_without_content_length() {
    let app = spawn_app_with(&[("SIGNHOOK_MAX_BODY_BYTES", "1024")]).await;
    let mut big = adobe_event("big", AGREEMENT, "AGREEMENT_CREATED", None, "2026-11-20T09:00:00Z");
    big["padding"] = json!("x".repeat(4096));
    let bytes = big.to_string().into_bytes();

    let response = app.post_adobe_raw(bytes.clone()).await;
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "payload_too_large"
    );

    // Chunked: no Content-Length, the limit is enforced while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes.chunks(512).map(|c| Ok(c.to_vec())).collect();
    let response = app
        .post_adobe_raw(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .await;
    assert_eq!(response.status(), 413);
    assert_eq!(app.event_count("adobe-sign").await, 0);
}

#[tokio::test]
async fn nine_mib_notification_with_a_signed_document_is_accepted() {
    let app = spawn_app().await;
    let document: Vec<u8> = (0..(9 * 1024 * 1024 / 4 * 3)).map(|i| (i * 31 % 251) as u8).collect();
    let mut body = adobe_event(
        "big-doc",
        AGREEMENT,
        "AGREEMENT_WORKFLOW_COMPLETED",
        Some("SIGNED"),
        "2026-11-20T09:00:00Z",
    );
    body["agreement"]["signedDocumentInfo"] = json!({
        "document": base64::engine::general_purpose::STANDARD.encode(&document),
        "mimeType": "application/pdf",
    });
    let bytes = body.to_string().into_bytes();
    assert!(bytes.len() > 9 * 1024 * 1024 - 1024, "{}", bytes.len());

    let response = app.post_adobe_raw(bytes.clone()).await;

    assert_eq!(response.status(), 200);
    let stored: i32 = sqlx::query_scalar("SELECT length(body) FROM events WHERE event_id = 'big-doc'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored as usize, bytes.len());
    app.wait_idle().await;
    assert_eq!(app.get_agreement("adobe-sign", AGREEMENT).await["status"], "completed");
}

/// Numeric event ids beyond `u64` are kept as written, never rounded
/// through `f64`: two different ids are two events, not a duplicate.
#[tokio::test]
async fn numeric_event_ids_beyond_u64_are_exact() {
    let app = spawn_app().await;
    for (n, id) in ["18446744073709551617", "18446744073709551618"].into_iter().enumerate() {
        let body = adobe_event(
            "placeholder",
            &format!("agr-{n}"),
            "AGREEMENT_CREATED",
            None,
            "2026-11-20T09:00:00Z",
        )
        .to_string()
        .replace("\"placeholder\"", id);
        let response = app.post_adobe_raw(body.into_bytes()).await;
        assert_eq!(response.status(), 200);
    }
    app.wait_idle().await;
    let ids: Vec<String> = sqlx::query_scalar("SELECT event_id FROM events ORDER BY id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(ids, ["18446744073709551617", "18446744073709551618"]);
}
