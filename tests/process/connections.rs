//! The connection cap against the process's open-files limit, which only a
//! process of its own has: more idle sockets than the process may open files
//! must not leave it unable to accept a probe or reach its database.

use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::{
    common::adobe_event,
    helpers::{exclusive, spawn_app_with_open_files},
};

/// The header deadline this test configures (`SIGNHOOK_HEADER_READ_TIMEOUT_MS`).
const DEADLINE: Duration = Duration::from_millis(1000);
/// Room above the deadline for a loaded two-core machine.
const SLACK: Duration = Duration::from_secs(3);

#[tokio::test]
async fn more_idle_sockets_than_open_files_cannot_starve_the_server() {
    let _exclusive = exclusive().await;
    let app = spawn_app_with_open_files(256, &[("SIGNHOOK_HEADER_READ_TIMEOUT_MS", "1000")]).await;
    let lowered = app.log_entries(
        "SIGNHOOK_MAX_CONNECTIONS lowered to fit the open-files limit (ulimit -n) beside the database pool",
    );
    assert_eq!(lowered.len(), 1, "{}", app.logs());
    // 256 files, less the database pool (16) and 64 others.
    assert_eq!(lowered[0]["max_connections"], 176);

    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(app.socket_addr()).await.unwrap());
    }
    // Past the cap they wait in the backlog; the ones taken are closed at the
    // deadline, and the probe gets a slot then.
    let started = Instant::now();
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert!(started.elapsed() < DEADLINE + SLACK, "{:?}", started.elapsed());
    let body = adobe_event(
        "after-the-flood",
        "a",
        "AGREEMENT_CREATED",
        None,
        "2026-11-20T09:00:00Z",
    );
    assert_eq!(
        app.post_adobe(&body).await.status(),
        200,
        "the database is reachable too"
    );
    assert_eq!(
        app.log_count("accept failed"),
        0,
        "never out of descriptors:\n{}",
        app.logs()
    );
    drop(idle);
}
