//! The application's side of outbound deliveries: a local HTTP server that
//! records every POST (headers, body) and answers as a test plans (a status,
//! a `Retry-After`, a delay), 200 by default. [`verify`] checks a delivery's
//! signature by the Standard Webhooks specification, computed here with
//! `hmac`/`sha2`, not with the crate signhook signs with.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use tokio::task::JoinHandle;

/// A signing secret as the Standard Webhooks specification shapes it
/// (`whsec_` + base64 of 24 random bytes; this one is the specification's
/// test vector key).
pub const DELIVERY_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    pub webhook_id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: std::time::Instant,
    /// The status the sink answered.
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a delivery body is JSON")
    }
}

/// How the sink answers one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<&'static str>,
    pub delay: Duration,
    pub body: &'static str,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
            delay: Duration::ZERO,
            body: "",
        }
    }
}

#[derive(Default)]
struct SinkState {
    received: Vec<Received>,
    /// Answers for the next requests, in order; then `default`.
    planned: VecDeque<Answer>,
    default: Option<Answer>,
    /// Every request waits this long before its answer (besides its plan's).
    jitter_ms: u64,
    /// Share of requests beyond the plan answered 500 at random.
    fail_ratio: f64,
}

pub struct Sink {
    /// `http://127.0.0.1:<port>/hooks`
    pub url: String,
    state: Arc<Mutex<SinkState>>,
    server: JoinHandle<()>,
}

impl Sink {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(SinkState::default()));
        let router = Router::new().route("/hooks", post(receive)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the sink binds a free port");
        let url = format!("http://{}/hooks", listener.local_addr().expect("bound address"));
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("the sink serves");
        });
        Self { url, state, server }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.state.lock().expect("sink state lock")
    }

    /// The next requests get these answers, in order.
    pub fn plan(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state().planned.extend(answers);
    }

    /// Requests beyond the plan get this answer (default: 200).
    pub fn answer_by_default(&self, answer: Option<Answer>) {
        self.state().default = answer;
    }

    /// Every answer waits up to `ms` (uniformly drawn), so deliveries overlap.
    pub fn jitter(&self, ms: u64) {
        self.state().jitter_ms = ms;
    }

    /// Answers this share of the requests beyond the plan with a 500.
    pub fn fail_at_random(&self, ratio: f64) {
        self.state().fail_ratio = ratio;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state().received.clone()
    }

    pub fn count(&self) -> usize {
        self.state().received.len()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(State(state): State<Arc<Mutex<SinkState>>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (answer, jitter) = {
        let mut state = state.lock().expect("sink state lock");
        let answer = match state.planned.pop_front() {
            Some(planned) => planned,
            None if fastrand::f64() < state.fail_ratio => Answer::status(500),
            None => state.default.clone().unwrap_or_else(|| Answer::status(200)),
        };
        state.received.push(Received {
            webhook_id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            body: body.to_vec(),
            at: std::time::Instant::now(),
            answered: answer.status,
        });
        (answer, state.jitter_ms)
    };
    let wait = answer.delay + Duration::from_millis(fastrand::u64(0..=jitter));
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let status = StatusCode::from_u16(answer.status).expect("a planned status is valid");
    let mut response = (status, answer.body).into_response();
    if let Some(retry_after) = answer.retry_after {
        response
            .headers_mut()
            .insert("retry-after", retry_after.parse().expect("a header value"));
    }
    response
}

/// Whether `received` is signed with `secret` by the Standard Webhooks
/// specification: `webhook-signature` lists `v1,<base64>` where the base64
/// is HMAC-SHA256, under the base64-decoded part of the secret after
/// `whsec_`, of `<webhook-id>.<webhook-timestamp>.<body>`.
pub fn verify(secret: &str, received: &Received) -> bool {
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine
        .decode(secret.trim_start_matches("whsec_"))
        .expect("a base64 secret");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes any key");
    mac.update(format!("{}.{}.", received.webhook_id, received.timestamp).as_bytes());
    mac.update(&received.body);
    let expected = engine.encode(mac.finalize().into_bytes());
    received
        .signature
        .split(' ')
        .any(|signature| signature == format!("v1,{expected}"))
}
