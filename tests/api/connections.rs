//! Connections that hold a slot without asking anything: every connection
//! has a deadline for its first request's headers (HTTP/1 or HTTP/2, and
//! while the protocol is still being detected), HTTP/2 connections close
//! when idle, and a replica holds at most `SIGNHOOK_MAX_CONNECTIONS`.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::*;

/// The header deadline these tests configure (`SIGNHOOK_HEADER_READ_TIMEOUT_MS`).
const DEADLINE: Duration = Duration::from_millis(500);
/// Room above a deadline for a loaded two-core machine.
const SLACK: Duration = Duration::from_secs(2);

async fn app_with_deadline(extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![("SIGNHOOK_HEADER_READ_TIMEOUT_MS", "500")];
    vars.extend_from_slice(extra);
    spawn_app_with(&vars).await
}

/// Waits for the server to close `socket`; returns how long that took
/// (panics if it stays open past the deadline and the slack).
async fn closed_within(mut socket: TcpStream, what: &str) -> Duration {
    let started = Instant::now();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(DEADLINE + SLACK, socket.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "{what}: still open after {:?}", started.elapsed());
    started.elapsed()
}

#[tokio::test]
async fn connections_that_send_nothing_are_closed_at_the_deadline_and_others_are_served() {
    let app = app_with_deadline(&[]).await;
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(TcpStream::connect(app.socket_addr()).await.unwrap());
    }
    // Everyone else is served while they are open.
    assert_eq!(app.get("/healthz").await.status(), 200);
    let body = adobe_event("meanwhile", "a", "AGREEMENT_CREATED", None, "2026-11-20T09:00:00Z");
    assert_eq!(app.post_adobe(&body).await.status(), 200);

    let opened = Instant::now();
    for socket in idle {
        closed_within(socket, "a connection that sent nothing").await;
    }
    assert!(opened.elapsed() < DEADLINE + SLACK, "all closed by the deadline");
}

#[tokio::test]
async fn half_an_http2_preface_is_closed_at_the_deadline() {
    let app = app_with_deadline(&[]).await;
    let mut socket = TcpStream::connect(app.socket_addr()).await.unwrap();
    // The first 16 of the preface's 24 bytes (RFC 9113, section 3.4).
    socket.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    closed_within(socket, "half an HTTP/2 preface").await;

    // A whole preface, then nothing: no request within the deadline either.
    let mut socket = TcpStream::connect(app.socket_addr()).await.unwrap();
    socket.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    closed_within(socket, "a preface and no request").await;
}

#[tokio::test]
async fn headers_trickled_byte_by_byte_are_cut_at_the_deadline() {
    let app = app_with_deadline(&[]).await;
    let mut socket = TcpStream::connect(app.socket_addr()).await.unwrap();
    let started = Instant::now();
    let head = b"POST /webhooks/adobe-sign HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for byte in head {
        // Each byte well inside the deadline: only a deadline on the whole
        // head can stop this.
        if socket.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(started.elapsed() < DEADLINE + SLACK, "still reading trickled headers");
    }
    closed_within(socket, "trickled headers").await;
    assert!(started.elapsed() < DEADLINE + SLACK, "{:?}", started.elapsed());
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_its_last_answer() {
    let app = app_with_deadline(&[]).await;
    let tcp = TcpStream::connect(app.socket_addr()).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let request = axum::http::Request::get(app.url("/healthz")).body(()).unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);

    // The client keeps its end open and sends nothing more.
    let answered = Instant::now();
    let ended = tokio::time::timeout(DEADLINE + SLACK, connection).await;
    assert!(ended.is_ok(), "an idle HTTP/2 connection stayed open");
    assert!(
        answered.elapsed() >= DEADLINE - Duration::from_millis(50),
        "closed while in use"
    );
    drop(client);
}

#[tokio::test]
async fn open_connections_are_capped_and_idle_ones_make_room() {
    let app = app_with_deadline(&[("SIGNHOOK_MAX_CONNECTIONS", "8")]).await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(app.socket_addr()).await.unwrap());
    }
    // Let the server accept all eight before the ninth arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    assert_eq!(app.get("/healthz").await.status(), 200);
    let waited = started.elapsed();
    // The ninth waited for a slot: it got one when the idle ones hit their
    // deadline, not before (and not much after).
    assert!(waited >= DEADLINE / 2 && waited < DEADLINE + SLACK, "{waited:?}");
    drop(idle);
}
