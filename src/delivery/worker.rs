//! The dispatcher: one per replica, sending each destination's due
//! deliveries with bounded concurrency. A delivery is claimed in the database
//! with a lease, POSTed outside any transaction with a deadline, and its
//! outcome recorded; the ingest and apply paths never wait for it (they only
//! queue rows).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use metrics::{counter, gauge, histogram};
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::{sign, Destination, RetryPolicy};
use crate::{
    changes::{ChangeSignals, SAFETY_TICK},
    config::DeliverySettings,
    outbound::{error_chain, retry_after},
    store::{Attempt, ClaimedDelivery, DestinationRecord, Store, StoreError},
    telemetry::metric,
};

/// Longest a freed slot waits for others before it is claimed for alone.
const CLAIM_COALESCE: Duration = Duration::from_millis(5);

/// Most bytes of an answer's body kept with a failed attempt.
const EXCERPT_BYTES: usize = 512;

/// Sends deliveries to every configured destination.
pub struct Dispatcher {
    store: Store,
    signals: ChangeSignals,
    lanes: Vec<Lane>,
    shared: Arc<Shared>,
}

/// What every send needs.
struct Shared {
    client: reqwest::Client,
    policy: RetryPolicy,
    lease: Duration,
    timeout: Duration,
    disable_after: Duration,
}

/// One destination and its free sending slots in this replica.
struct Lane {
    destination: Arc<Destination>,
    slots: Arc<Semaphore>,
    /// Free slots worth a claim at once: half of them.
    batch: usize,
    claimed_at: Instant,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        signals: ChangeSignals,
        destinations: Vec<Destination>,
        settings: &DeliverySettings,
    ) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout())
            .timeout(settings.timeout())
            // A redirect is an answer, not a 2xx: the application fixes its URL.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("signhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the delivery HTTP client builds (TLS roots load)");
        Self {
            store,
            signals,
            lanes: destinations
                .into_iter()
                .map(|destination| Lane {
                    destination: Arc::new(destination),
                    slots: Arc::new(Semaphore::new(settings.delivery_concurrency)),
                    batch: settings.delivery_concurrency.div_ceil(2),
                    claimed_at: Instant::now(),
                })
                .collect(),
            shared: Arc::new(Shared {
                client,
                policy: RetryPolicy {
                    schedule: settings.delivery_retry_schedule.iter().map(|d| d.get()).collect(),
                },
                lease: settings.lease(),
                timeout: settings.timeout(),
                disable_after: settings.delivery_disable_after.get(),
            }),
        }
    }

    /// Registers the destinations in the database (so changes are queued for
    /// them from now on); called at start, before any change can be applied.
    pub async fn register(store: &Store, destinations: &[Destination]) -> Result<(), StoreError> {
        let records: Vec<DestinationRecord<'_>> = destinations
            .iter()
            .map(|d| DestinationRecord {
                name: &d.name,
                url: d.url.as_str(),
                providers: &d.providers,
                statuses: &d.statuses,
            })
            .collect();
        store.deliveries().register(&records).await
    }

    /// Claims and sends until `shutdown`, then lets the sends in flight
    /// finish (each is bounded by the delivery timeout).
    pub async fn run(mut self, shutdown: CancellationToken) {
        if self.lanes.is_empty() {
            return;
        }
        let mut sends = JoinSet::new();
        let mut failing = false;
        loop {
            let mut deferred = false;
            for lane in &mut self.lanes {
                // Claims come in batches: one claim per freed slot would cost
                // a round trip per delivery. Fewer free slots than a batch
                // wait a moment for more (never longer than CLAIM_COALESCE).
                let free = lane.slots.available_permits();
                if free == 0 {
                    continue;
                }
                if free < lane.batch && lane.claimed_at.elapsed() < CLAIM_COALESCE {
                    deferred = true;
                    continue;
                }
                lane.claimed_at = Instant::now();
                let claimed = self
                    .store
                    .deliveries()
                    .claim(&lane.destination.name, free, self.shared.lease)
                    .await;
                match claimed {
                    Ok(claims) => {
                        failing = false;
                        for claim in claims {
                            let Ok(permit) = lane.slots.clone().try_acquire_owned() else {
                                break;
                            };
                            let (store, signals, shared, destination) = (
                                self.store.clone(),
                                self.signals.clone(),
                                self.shared.clone(),
                                lane.destination.clone(),
                            );
                            sends.spawn(async move {
                                send(&store, &shared, &destination, claim).await;
                                drop(permit);
                                signals.wake_deliveries();
                            });
                        }
                    }
                    Err(error) => {
                        if !failing {
                            tracing::warn!(%error, destination = %lane.destination.name, "could not claim deliveries; retrying");
                        }
                        failing = true;
                    }
                }
            }
            while sends.try_join_next().is_some() {}
            let tick = if deferred { CLAIM_COALESCE } else { SAFETY_TICK };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.signals.deliveries_woken() => {}
                _ = tokio::time::sleep(tick) => {}
            }
        }
        while sends.join_next().await.is_some() {}
    }
}

/// One attempt: POST, classify, record.
async fn send(store: &Store, shared: &Shared, destination: &Destination, claim: ClaimedDelivery) {
    let name = destination.name.as_str();
    let body = sign::body(&claim.change);
    let id = sign::webhook_id(claim.change.id);
    let mut request = shared
        .client
        .post(destination.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    for (header, value) in sign::headers(&destination.signer, &id, Utc::now().timestamp(), &body) {
        request = request.header(header, value);
    }
    let answered = tokio::time::timeout(shared.timeout, async {
        let response = request.body(body).send().await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|value| retry_after(value, Utc::now()));
        let excerpt = match status.is_success() {
            true => String::new(),
            false => excerpt(response).await,
        };
        Ok::<_, reqwest::Error>((status, retry_after, excerpt))
    })
    .await;
    let attempts = u32::try_from(claim.attempts).unwrap_or(0).saturating_add(1);
    let failed = |status: Option<u16>, error: String, asked: Option<Duration>| Attempt::Failed {
        status,
        error,
        retry_in: shared.policy.next(attempts, asked),
    };
    let attempt = match answered {
        Ok(Ok((status, _, _))) if status.is_success() => Attempt::Delivered {
            status: status.as_u16(),
        },
        Ok(Ok((status, asked, excerpt))) => failed(Some(status.as_u16()), format!("HTTP {status}: {excerpt}"), asked),
        Ok(Err(error)) => failed(None, error_chain(&error), None),
        Err(_) => failed(
            None,
            format!("no answer within {} ms", shared.timeout.as_millis()),
            None,
        ),
    };
    let outcome = match &attempt {
        Attempt::Delivered { .. } => "delivered",
        Attempt::Failed { retry_in: Some(_), .. } => "retry",
        Attempt::Failed { retry_in: None, .. } => "failed",
    };
    counter!(metric::DELIVERIES, "destination" => name.to_owned(), "outcome" => outcome).increment(1);
    match &attempt {
        Attempt::Delivered { .. } => {
            let waited = (Utc::now() - claim.change.recorded_at).to_std().unwrap_or_default();
            histogram!(metric::DELIVERY_LATENCY, "destination" => name.to_owned()).record(waited.as_secs_f64());
        }
        Attempt::Failed { error, retry_in, .. } => tracing::warn!(
            destination = name,
            delivery_id = claim.id,
            webhook_id = %id,
            attempts,
            error = %error,
            retry_in_ms = retry_in.map(|d| d.as_millis() as u64),
            "delivery attempt failed"
        ),
    }
    match store.deliveries().record(&claim, &attempt, shared.disable_after).await {
        Ok(true) => {
            counter!(metric::DESTINATIONS_DISABLED, "destination" => name.to_owned()).increment(1);
            gauge!(metric::DESTINATION_DISABLED, "destination" => name.to_owned()).set(1.0);
            tracing::warn!(
                destination = name,
                disable_after_secs = shared.disable_after.as_secs(),
                "destination disabled: every delivery failed for SIGNHOOK_DELIVERY_DISABLE_AFTER; \
                 enable it with POST /api/destinations/{name}/enable"
            );
        }
        Ok(false) => {}
        // The lease runs out and the delivery is sent again: at least once.
        Err(error) => {
            tracing::warn!(%error, destination = name, delivery_id = claim.id, "could not record a delivery attempt; it will be sent again")
        }
    }
}

/// The first bytes of an answer's body, as text.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(EXCERPT_BYTES);
    String::from_utf8_lossy(&bytes).into_owned()
}
