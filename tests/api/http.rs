//! HTTP hygiene: deadlines, load shedding, request ids, JSON errors for
//! every refusal, and clients that misbehave.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

/// Room above a configured deadline for a loaded two-core machine to answer.
const SLACK: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_stalled_database_yields_a_fast_503_not_a_provider_timeout() {
    let deadline = Duration::from_millis(1000);
    let app = spawn_app_with(&[("SIGNHOOK_REQUEST_TIMEOUT_MS", "1000")]).await;
    // Hold a lock that blocks every insert, as a stalled database would.
    let mut blocker = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();

    let started = Instant::now();
    let body = adobe_event("stalled", "a", "AGREEMENT_CREATED", None, "2026-11-20T09:00:00Z");
    let response = app.post_adobe(&body).await;

    assert_eq!(response.status(), 503);
    // The provider gives up after 10 s; the deadline answers well before.
    let elapsed = started.elapsed();
    assert!(elapsed >= deadline && elapsed < deadline + SLACK, "{elapsed:?}");
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "deadline_exceeded"
    );

    blocker.rollback().await.unwrap();
    // The provider's retry then succeeds (and dedupes if the first did commit).
    assert_eq!(app.post_adobe(&body).await.status(), 200);
    assert_eq!(app.event_count("adobe-sign").await, 1);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let generated = app.get("/healthz").await;
    assert!(!generated.headers()["x-request-id"].is_empty());
    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-123");
}

#[tokio::test]
async fn unknown_routes_providers_and_methods_get_json_errors() {
    let app = spawn_app().await;
    let cases = [
        (app.client.get(app.url("/nowhere")), 404, "not_found"),
        (
            app.client.post(app.url("/webhooks/docusign")).body("{}"),
            404,
            "not_found",
        ),
        (app.client.get(app.url("/webhooks/boldsign")), 405, "method_not_allowed"),
        (
            app.client.delete(app.url("/webhooks/adobe-sign")),
            405,
            "method_not_allowed",
        ),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status);
        assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], code);
    }
}

#[tokio::test]
async fn a_body_cut_short_by_the_client_stores_nothing_and_harms_nothing() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    let body = adobe_event("cut-short", "a", "AGREEMENT_CREATED", None, "2026-11-20T09:00:00Z").to_string();
    for _ in 0..20 {
        let mut socket = tokio::net::TcpStream::connect(app.socket_addr()).await.unwrap();
        let head = format!(
            "POST /webhooks/adobe-sign HTTP/1.1\r\nHost: x\r\nX-AdobeSign-ClientId: {ADOBE_CLIENT_ID}\r\nContent-Length: {}\r\n\r\n",
            body.len() + 1000
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(body.as_bytes()).await.unwrap();
        drop(socket);
    }
    // A whole request sent after them is stored and applied; by then the
    // cut ones would have been too, had they been taken.
    assert_eq!(app.get("/healthz").await.status(), 200);
    let whole = adobe_event("whole", "a", "AGREEMENT_CREATED", None, "2026-11-20T09:00:00Z");
    assert_eq!(app.post_adobe(&whole).await.status(), 200);
    app.wait_until_processed(1).await;
    let stored: Vec<String> = sqlx::query_scalar("SELECT event_id FROM events")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, ["whole"]);
}

#[tokio::test]
async fn auth_headers_with_non_utf8_bytes_are_refused_cleanly() {
    let app = spawn_app().await;
    let body = adobe_event("bytes", "a", "AGREEMENT_CREATED", None, "2026-11-20T09:00:00Z").to_string();
    let value = reqwest::header::HeaderValue::from_bytes(b"CBJ\xff\xfe-id").unwrap();
    for path in ["/webhooks/adobe-sign", "/webhooks/boldsign", "/webhooks/fusesign"] {
        let response = app
            .client
            .post(app.url(path))
            .header("X-AdobeSign-ClientId", value.clone())
            .header("X-BoldSign-Signature", value.clone())
            .header("Fuse-Signature", value.clone())
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
        assert!(response.json::<Value>().await.unwrap()["error"]["code"].is_string());
    }
    assert_eq!(app.event_count("adobe-sign").await, 0);
}

#[tokio::test]
async fn clients_trickling_headers_are_disconnected_and_do_not_block_others() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let header_timeout = Duration::from_millis(500);
    let app = spawn_app_with(&[("SIGNHOOK_HEADER_READ_TIMEOUT_MS", "500")]).await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut socket = tokio::net::TcpStream::connect(app.socket_addr()).await.unwrap();
        socket
            .write_all(b"POST /webhooks/adobe-sign HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(socket);
    }
    // Everyone else is served meanwhile.
    let body = adobe_event("meanwhile", "a", "AGREEMENT_CREATED", None, "2026-11-20T09:00:00Z");
    assert_eq!(app.post_adobe(&body).await.status(), 200);

    for mut socket in slow {
        let mut buffer = Vec::new();
        let closed = tokio::time::timeout(header_timeout + SLACK, socket.read_to_end(&mut buffer)).await;
        assert!(closed.is_ok(), "the server closed the trickling connection");
    }
}

/// Fires `bodies` at once while the events table is locked (so admitted
/// requests hold their slot until the deadline); returns (status, code, elapsed).
async fn fire_while_stalled(app: &TestApp, bodies: Vec<String>) -> Vec<(u16, String, Duration)> {
    let mut blocker = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let results = futures::future::join_all(bodies.into_iter().map(|body| async move {
        let started = Instant::now();
        let response = app.post_adobe_raw(body).await;
        let status = response.status().as_u16();
        let code = response.json::<Value>().await.unwrap()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        (status, code, started.elapsed())
    }))
    .await;
    blocker.rollback().await.unwrap();
    results
}

#[tokio::test]
async fn beyond_capacity_requests_are_shed_at_once() {
    let deadline = Duration::from_millis(2000);
    let app = spawn_app_with(&[
        ("SIGNHOOK_MAX_CONCURRENT_REQUESTS", "4"),
        ("SIGNHOOK_REQUEST_TIMEOUT_MS", "2000"),
    ])
    .await;
    let bodies = (0..20)
        .map(|i| {
            adobe_event(
                &format!("o-{i}"),
                "a",
                "AGREEMENT_CREATED",
                None,
                "2026-11-20T09:00:00Z",
            )
            .to_string()
        })
        .collect();

    let results = fire_while_stalled(&app, bodies).await;

    // Four are admitted and wait for the stalled database until the
    // deadline; the rest are shed without waiting for it. (Queued instead
    // of shed, they could not be answered before an admitted one left at
    // the deadline.)
    let (shed, admitted): (Vec<_>, Vec<_>) = results.iter().partition(|(_, code, _)| code == "overloaded");
    assert!(shed.len() >= 12, "{results:?}");
    assert!(
        shed.iter()
            .all(|(status, _, elapsed)| *status == 503 && *elapsed < deadline),
        "{shed:?}"
    );
    assert!(
        admitted
            .iter()
            .all(|(status, code, elapsed)| *status == 503 && code == "deadline_exceeded" && *elapsed >= deadline),
        "{admitted:?}"
    );
    let ok = adobe_event("o-after", "a", "AGREEMENT_CREATED", None, "2026-11-20T09:00:00Z");
    assert_eq!(app.post_adobe(&ok).await.status(), 200, "capacity comes back");
}

#[tokio::test]
async fn bodies_in_flight_are_bounded_in_bytes() {
    let app = spawn_app_with(&[
        ("SIGNHOOK_MAX_BODY_BYTES", "65536"),
        // Five times the largest body: the least allowed.
        ("SIGNHOOK_MAX_INFLIGHT_BODY_BYTES", "327680"),
        ("SIGNHOOK_REQUEST_TIMEOUT_MS", "1500"),
    ])
    .await;
    let bodies = (0..3)
        .map(|i| {
            let mut body = adobe_event(
                &format!("b-{i}"),
                "a",
                "AGREEMENT_CREATED",
                None,
                "2026-11-20T09:00:00Z",
            );
            body["padding"] = serde_json::json!("x".repeat(40_000));
            body.to_string()
        })
        .collect();

    let results = fire_while_stalled(&app, bodies).await;

    let shed = results.iter().filter(|(_, code, _)| code == "overloaded").count();
    // A 40 KB body costs its 64 KiB buffer and the four copies storing it
    // makes (about 224 KiB): five buffers alone would fit, two bodies do not.
    assert_eq!(shed, 2, "only one 40 KB body fits a 320 KiB budget: {results:?}");
}

/// Body memory is drawn from the in-flight budget as bytes arrive, and only
/// once the headers' credentials pass: twelve uploads trickling a body
/// declared as large as the largest accepted one (with its copies, the whole
/// budget) — without credentials (refused before a byte of the body is read)
/// or with a BoldSign signature header that looks right (read, 1 KiB at a
/// time, until the HMAC fails) — leave room for every authenticated
/// notification.
#[tokio::test]
async fn trickled_uploads_cannot_spend_the_body_budget_of_authenticated_requests() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const BUDGET: &str = "1048576";
    let app = spawn_app_with(&[
        ("SIGNHOOK_MAX_BODY_BYTES", BUDGET),
        // The least allowed: the largest body and its copies.
        ("SIGNHOOK_MAX_INFLIGHT_BODY_BYTES", "5242880"),
    ])
    .await;
    let looks_signed = format!("t={}, s0={}", unix_now(), "ab".repeat(32));
    let mut tricklers = Vec::new();
    for n in 0..12 {
        let credential = match n % 3 {
            0 => String::new(),
            1 => "X-AdobeSign-ClientId: not-ours\r\n".to_owned(),
            _ => format!("X-BoldSign-Signature: {looks_signed}\r\n"),
        };
        let path = if n % 3 == 2 {
            "/webhooks/boldsign"
        } else {
            "/webhooks/adobe-sign"
        };
        let mut socket = tokio::net::TcpStream::connect(app.socket_addr()).await.unwrap();
        let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\n{credential}Content-Length: {BUDGET}\r\n\r\n{{\"a\":");
        socket.write_all(head.as_bytes()).await.unwrap();
        tricklers.push((n, socket));
    }
    // Authenticated notifications of every provider while they trickle.
    for i in 0..5 {
        let adobe = adobe_event(
            &format!("t-{i}"),
            "a",
            "AGREEMENT_CREATED",
            None,
            "2026-11-20T09:00:00Z",
        );
        assert_eq!(app.post_adobe(&adobe).await.status(), 200, "adobe {i}");
        let bold = boldsign_event(&format!("b-{i}"), "d", "Sent", None, unix_now());
        assert_eq!(app.post_boldsign(&bold).await.status(), 200, "boldsign {i}");
        for (_, socket) in &mut tricklers {
            let _ = socket.write_all(b" ").await;
        }
    }
    // The ones without valid header credentials were answered without their body.
    for (n, socket) in &mut tricklers {
        if *n % 3 == 2 {
            continue;
        }
        let mut answer = vec![0; 12];
        let read = tokio::time::timeout(WAIT_LIMIT, socket.read_exact(&mut answer)).await;
        assert!(read.is_ok(), "trickler {n} was answered");
        let status = String::from_utf8_lossy(&answer).into_owned();
        assert!(
            status.ends_with(if *n % 3 == 0 { "401" } else { "403" }),
            "trickler {n}: {status}"
        );
    }
    assert_eq!(app.event_count("adobe-sign").await, 5);
    assert_eq!(app.event_count("boldsign").await, 5);
}

/// `/metrics` reads its queue gauges from the database, but at most about
/// once a second, whatever the scrape rate: while those queries are stuck
/// (a lock held here), one scrape waits for them and the rest answer from
/// the last values at once.
#[tokio::test]
async fn metrics_scrapes_do_not_each_query_the_database() {
    let app = spawn_app().await;
    assert_eq!(app.get("/metrics").await.status(), 200);
    let mut blocker = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE event_totals IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    // Past the refresh interval, so the next scrape wants fresh values.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let scrapes = futures::future::join_all((0..20).map(|_| async {
        let started = Instant::now();
        let response = app.get("/metrics").await;
        (response.status().as_u16(), started.elapsed())
    }))
    .await;
    blocker.rollback().await.unwrap();
    assert!(scrapes.iter().all(|(status, _)| *status == 200), "{scrapes:?}");
    let quick = scrapes
        .iter()
        .filter(|(_, elapsed)| *elapsed < Duration::from_millis(500))
        .count();
    assert!(
        quick >= 18,
        "only {quick} of 20 scrapes answered without waiting: {scrapes:?}"
    );
}

/// Readiness answers from the last database check (made about once a
/// second, not per request) with a reason code; the database's own error
/// text goes to the log, never to an unauthenticated caller.
#[tokio::test]
async fn readiness_gives_a_reason_code_and_no_database_text() {
    let app = spawn_app().await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&database_url("postgres"))
        .await
        .unwrap();
    let allow = |allowed: bool| format!(r#"ALTER DATABASE "{}" ALLOW_CONNECTIONS {allowed}"#, app.db_name);
    // The database refuses this app's connections from now on.
    sqlx::query(&allow(false)).execute(&admin).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&app.db_name)
        .execute(&admin)
        .await
        .unwrap();
    app.wait_until("readiness to fail", || async {
        app.get("/readyz").await.status() == 503
    })
    .await;
    let body: Value = app.get("/readyz").await.json().await.unwrap();
    sqlx::query(&allow(true)).execute(&admin).await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({ "status": "unavailable", "reason": "database_unreachable" })
    );
    app.wait_until("readiness to recover", || async {
        app.get("/readyz").await.status() == 200
    })
    .await;
}

/// With `SIGNHOOK_OPS_LISTEN` the probes and the metrics move to a listener
/// of their own (one the public never reaches), and the webhook listener
/// no longer has them.
#[tokio::test]
async fn ops_endpoints_can_move_to_a_listener_of_their_own() {
    let app = spawn_app_with(&[("SIGNHOOK_OPS_LISTEN", "127.0.0.1:0")]).await;
    let ops = app.ops_address.clone().expect("an ops listener");
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = app.client.get(format!("{ops}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path} on the ops listener");
        assert_eq!(app.get(path).await.status(), 404, "{path} on the webhook listener");
    }
    for path in ["/webhooks/adobe-sign", "/api/stats"] {
        let response = app.client.get(format!("{ops}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path} on the ops listener");
    }
    let body = adobe_event("ops-apart", "a", "AGREEMENT_CREATED", None, "2026-11-20T09:00:00Z");
    assert_eq!(app.post_adobe(&body).await.status(), 200);
}
