//! HTTP hygiene: deadlines, request ids, JSON errors for every refusal.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[tokio::test]
async fn a_stalled_database_yields_a_fast_503_not_a_provider_timeout() {
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
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
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
    let generated = app.client.get(app.url("/healthz")).send().await.unwrap();
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
        let mut socket = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
            .await
            .unwrap();
        let head = format!(
            "POST /webhooks/adobe-sign HTTP/1.1\r\nHost: x\r\nX-AdobeSign-ClientId: {ADOBE_CLIENT_ID}\r\nContent-Length: {}\r\n\r\n",
            body.len() + 1000
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(body.as_bytes()).await.unwrap();
        drop(socket);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.event_count("adobe-sign").await, 0);
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    let whole = adobe_event("whole", "a", "AGREEMENT_CREATED", None, "2026-11-20T09:00:00Z");
    assert_eq!(app.post_adobe(&whole).await.status(), 200);
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
    let app = spawn_app_with(&[("SIGNHOOK_HEADER_READ_TIMEOUT_MS", "500")]).await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut socket = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
            .await
            .unwrap();
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
        let closed = tokio::time::timeout(Duration::from_secs(3), socket.read_to_end(&mut buffer)).await;
        assert!(closed.is_ok(), "the server closed the trickling connection");
    }
}
