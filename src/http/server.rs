//! Accept loop. `axum::serve` sets no timer, so hyper's header-read timeout
//! never fires there and a client trickling headers (slow-loris) could hold a
//! connection forever; this loop configures hyper-util's builder with a timer
//! and drives every connection itself, so that each one has a deadline:
//!
//! - until its first request's headers are in: the HTTP/1-or-2 detection and
//!   the HTTP/2 handshake have no timer of their own, so a socket that sends
//!   nothing, or half an HTTP/2 preface, was held open for good;
//! - while idle between requests, HTTP/1 and HTTP/2 alike (HTTP/2 has no idle
//!   timeout of its own, and a client answering its pings stays forever);
//! - and at most `SIGNHOOK_MAX_CONNECTIONS` are open at once: past it the
//!   listener is not read, new connections wait in the kernel's backlog until
//!   one ends, and the process keeps file descriptors for its database.
//!
//! Body reads are bounded by the request deadline in `webhooks.rs`.

use std::{pin::pin, sync::Arc, time::Duration};

use axum::{body::Body, extract::Request, Router};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto::Builder,
    service::TowerToHyperService,
};
use tokio::{
    net::TcpListener,
    sync::{watch, Semaphore},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// HTTP/2 pings while a request is in flight, to notice a peer that is gone;
/// one unanswered for [`HTTP2_KEEP_ALIVE_TIMEOUT`] closes the connection.
const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
const HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of request head a connection may buffer (HTTP/1 read buffer,
/// HTTP/2 header list): 64 KiB, so unfinished heads cost at most this times
/// the connection cap. Real providers send a few hundred bytes.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// File descriptors left to everything but client connections (database
/// pool aside): the listener, provider API clients, log files, the runtime.
const RESERVED_DESCRIPTORS: usize = 64;

/// How long connections may stay without a request, and how many may be open.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A connection must send a request's headers within this of opening, and
    /// again within this of its last answer (`SIGNHOOK_HEADER_READ_TIMEOUT_MS`).
    pub idle_timeout: Duration,
    /// Open connections per replica (`SIGNHOOK_MAX_CONNECTIONS`, lowered to
    /// fit the open-files limit; see [`connection_cap`]).
    pub max_connections: usize,
}

/// Serves `router` until `shutdown` is cancelled, then stops accepting and
/// waits for open connections to finish their in-flight requests.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken, limits: ConnectionLimits) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEP_ALIVE_TIMEOUT)
        .max_header_list_size(MAX_HEAD_BYTES as u32);
    // One permit per open connection; taking them all back at shutdown is
    // waiting for every connection to end.
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("the connection semaphore is never closed"),
        };
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Typically EMFILE: back off briefly rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (activity, watched) = watch::channel(Activity::new());
        let activity = Arc::new(activity);
        let service = router
            .clone()
            .map_request(|r: Request<Incoming>| r.map(Body::new))
            .map_future(move |answer| {
                let request = InFlight::start(activity.clone());
                async move {
                    let answered = answer.await;
                    drop(request);
                    answered
                }
            });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let shutdown = shutdown.clone();
        let idle_timeout = limits.idle_timeout;
        tokio::spawn(async move {
            let mut connection = pin!(connection);
            let mut watched = watched;
            let mut watching = true;
            // Set once the connection was asked to end: it then gets one more
            // idle period to finish, and is dropped after that.
            let mut closing_since: Option<Instant> = None;
            loop {
                let now = *watched.borrow_and_update();
                let deadline = match closing_since {
                    Some(since) => Some(since + idle_timeout),
                    // While requests are in flight the request deadline bounds them.
                    None => (now.in_flight == 0).then_some(now.idle_since + idle_timeout),
                };
                tokio::select! {
                    biased;
                    served = connection.as_mut() => {
                        if let Err(error) = served {
                            tracing::debug!(%error, "connection ended with an error");
                        }
                        break;
                    }
                    _ = shutdown.cancelled(), if closing_since.is_none() => {
                        connection.as_mut().graceful_shutdown();
                        closing_since = Some(Instant::now());
                    }
                    changed = watched.changed(), if watching => watching = changed.is_ok(),
                    _ = sleep_until(deadline), if deadline.is_some() => {
                        if now.requests == 0 || closing_since.is_some() {
                            // Nothing was asked, or the client does not let go.
                            tracing::debug!(requests = now.requests, "connection dropped at its deadline");
                            break;
                        }
                        connection.as_mut().graceful_shutdown();
                        closing_since = Some(Instant::now());
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = slots.acquire_many(limits.max_connections as u32).await;
}

/// Requests a connection has in flight, how many it ever had, and since when
/// it has had none.
#[derive(Debug, Clone, Copy)]
struct Activity {
    in_flight: usize,
    requests: u64,
    idle_since: Instant,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: 0,
            requests: 0,
            idle_since: Instant::now(),
        }
    }
}

/// One request being answered; the connection is idle again once every
/// one of these is dropped.
struct InFlight(Arc<watch::Sender<Activity>>);

impl InFlight {
    fn start(activity: Arc<watch::Sender<Activity>>) -> Self {
        activity.send_modify(|a| {
            a.in_flight += 1;
            a.requests += 1;
        });
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|a| {
            a.in_flight -= 1;
            if a.in_flight == 0 {
                a.idle_since = Instant::now();
            }
        });
    }
}

/// Sleeps until `deadline`; forever if there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The connection cap to use: `configured`, lowered when the process may
/// not open that many files besides `reserved` others (its database pool and
/// [`RESERVED_DESCRIPTORS`]): past the open-files limit `accept` fails, and
/// so does every new database connection. `None` when the limit is unknown.
pub fn connection_cap(configured: usize, open_files_limit: Option<u64>, reserved: usize) -> usize {
    let Some(limit) = open_files_limit else {
        return configured;
    };
    let available = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_sub(reserved + RESERVED_DESCRIPTORS);
    configured.min(available.max(1))
}

/// The soft open-files limit (`ulimit -n`), if the system says.
pub fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives here.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (read == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_open_files_limit() {
        // (configured, limit, reserved database connections) -> cap
        let cases = [
            (1024, None, 16, 1024),
            (1024, Some(1_048_576), 16, 1024),
            (1024, Some(256), 16, 176),
            (100, Some(256), 16, 100),
            // Below what the reserve needs: one connection still serves.
            (1024, Some(32), 16, 1),
        ];
        for (configured, limit, reserved, cap) in cases {
            assert_eq!(
                connection_cap(configured, limit, reserved),
                cap,
                "{configured} {limit:?} {reserved}"
            );
        }
    }
}
