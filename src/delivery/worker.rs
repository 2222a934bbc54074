//! The dispatcher: one per replica, sending each destination's due
//! deliveries with bounded concurrency. A delivery is claimed in the database
//! with a lease, POSTed outside any transaction with a deadline, and its
//! outcome recorded; the ingest and apply paths never wait for it (they only
//! queue rows).

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use metrics::{counter, gauge, histogram};
use tokio::{
    sync::{mpsc, oneshot, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use super::{sign, Destination, RetryPolicy};
use crate::{
    changes::{ChangeSignals, SAFETY_TICK},
    config::DeliverySettings,
    outbound::{error_chain, retry_after},
    store::{Attempt, ClaimedDelivery, DestinationRecord, Store, StoreError},
    telemetry::metric,
};

/// Longest a claim waits to be worth a round trip (see [`Lane::wanted`]).
const CLAIM_COALESCE: Duration = Duration::from_millis(5);

/// Deliveries claimed or in flight per sending slot.
const CLAIM_AHEAD: usize = 4;

/// Most 2xx outcomes recorded in one statement.
const RECORD_BATCH: usize = 512;

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
    /// A claimed delivery is sent only while its lease has this long to run:
    /// the timeout and half the lease's slack beyond it. One that waited
    /// longer is given back and claimed afresh, so a delivery is never in
    /// flight from two replicas at once.
    send_within: Duration,
    disable_after: Duration,
}

/// One destination in this replica: its sending slots, and deliveries
/// claimed ahead of them (up to three times as many as there are slots), so
/// a freed slot starts its next send at once and a claim fetches many
/// (claims twice as far ahead drained a backlog 25 % slower: 4,256 against
/// 5,436 deliveries/s, BENCHMARKS.md).
/// Claiming ahead keeps each agreement in order: a claimed delivery stays
/// its agreement's first pending one until its outcome is recorded.
struct Lane {
    destination: Arc<Destination>,
    slots: Arc<Semaphore>,
    concurrency: usize,
    ready: VecDeque<ClaimedDelivery>,
    /// The claim in progress, if any (one at a time).
    claiming: Option<tokio::task::JoinHandle<Result<Vec<ClaimedDelivery>, StoreError>>>,
    claimed_at: Instant,
}

impl Lane {
    /// How many deliveries to claim now: room for [`CLAIM_AHEAD`] × concurrency claimed
    /// or in flight, once that room is at least `concurrency` or the last
    /// claim is [`CLAIM_COALESCE`] old (one claim per freed slot would cost
    /// a round trip per delivery). `Err(())`: later, there is little room.
    fn wanted(&self) -> Result<usize, ()> {
        let in_flight = self.concurrency - self.slots.available_permits();
        let room = (CLAIM_AHEAD * self.concurrency).saturating_sub(self.ready.len() + in_flight);
        match room {
            0 => Ok(0),
            room if room >= self.concurrency || self.claimed_at.elapsed() >= CLAIM_COALESCE => Ok(room),
            _ => Err(()),
        }
    }

    /// Sends claimed deliveries while there are free slots.
    fn start_sends(
        &mut self,
        sends: &mut JoinSet<()>,
        store: &Store,
        signals: &ChangeSignals,
        shared: &Arc<Shared>,
        recorder: &Recorder,
    ) {
        let mut stale = Vec::new();
        while !self.ready.is_empty() {
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                break;
            };
            let Some(claim) = self.ready.pop_front() else { break };
            let lasts = (claim.lease - Utc::now()).to_std().unwrap_or_default();
            if lasts < shared.send_within {
                stale.push((claim.id, claim.lease));
                continue;
            }
            let (store, signals, shared, destination, recorder) = (
                store.clone(),
                signals.clone(),
                shared.clone(),
                self.destination.clone(),
                recorder.clone(),
            );
            sends.spawn(async move {
                send(&store, &recorder, &shared, &destination, claim, permit, &signals).await;
                signals.wake_deliveries();
            });
        }
        // Claims that waited too long (the destination is slow): given back,
        // to be claimed afresh, rather than left for their lease to run out.
        if !stale.is_empty() {
            tracing::debug!(
                deliveries = stale.len(),
                "claimed deliveries waited too long; giving them back"
            );
            let (store, signals) = (store.clone(), signals.clone());
            sends.spawn(async move {
                give_back(&store, &stale).await;
                signals.wake_deliveries();
            });
        }
    }
}

/// Gives claims back (due again at once); if that fails they are sent
/// after their lease.
async fn give_back(store: &Store, claims: &[(i64, DateTime<Utc>)]) {
    if let Err(error) = store.deliveries().release(claims).await {
        tracing::warn!(%error, deliveries = claims.len(), "could not give back claimed deliveries; they are sent after their lease");
    }
}

/// One 2xx to record: delivery id, lease, HTTP status, and who waits for it.
type Outcome = (i64, DateTime<Utc>, u16, oneshot::Sender<()>);

/// Collects 2xx outcomes and records them in batches (see
/// [`Deliveries::record_delivered`](crate::store::Deliveries::record_delivered)).
#[derive(Clone)]
struct Recorder {
    outcomes: mpsc::UnboundedSender<Outcome>,
}

impl Recorder {
    /// Starts the recording task; it ends when every handle is dropped.
    /// After each write it wakes the dispatcher: the next change of those
    /// agreements can be claimed now.
    fn start(store: Store, signals: ChangeSignals) -> Self {
        let (outcomes, mut queue) = mpsc::unbounded_channel::<Outcome>();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![first];
                while batch.len() < RECORD_BATCH {
                    match queue.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let rows: Vec<_> = batch
                    .iter()
                    .map(|(id, lease, status, _)| (*id, *lease, *status))
                    .collect();
                if let Err(error) = store.deliveries().record_delivered(&rows).await {
                    // The leases run out and these are sent again: at least once.
                    tracing::warn!(%error, deliveries = rows.len(), "could not record delivered deliveries; they will be sent again");
                }
                signals.wake_deliveries();
                for (.., done) in batch {
                    let _ = done.send(());
                }
            }
        });
        Self { outcomes }
    }

    /// Records one 2xx; returns once it is written (or failed to be), so a
    /// send's task — which shutdown waits for — outlasts its outcome's write.
    async fn delivered(&self, claim: &ClaimedDelivery, status: u16) {
        let (done, written) = oneshot::channel();
        if self.outcomes.send((claim.id, claim.lease, status, done)).is_ok() {
            let _ = written.await;
        }
    }
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
                    concurrency: settings.delivery_concurrency,
                    ready: VecDeque::new(),
                    claiming: None,
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
                send_within: settings.timeout() + settings.lease().saturating_sub(settings.timeout()) / 2,
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
        let recorder = Recorder::start(self.store.clone(), self.signals.clone());
        let mut sends = JoinSet::new();
        let mut failing = false;
        loop {
            let mut deferred = false;
            for lane in &mut self.lanes {
                // A claim runs beside the sends (a freed slot does not wait
                // for its round trip); its answer is picked up here.
                if lane.claiming.as_ref().is_some_and(|claim| claim.is_finished()) {
                    let claim = lane.claiming.take().expect("checked above");
                    match claim.await {
                        Ok(Ok(claims)) => {
                            failing = false;
                            lane.ready.extend(claims);
                        }
                        Ok(Err(error)) => {
                            if !failing {
                                tracing::warn!(%error, destination = %lane.destination.name, "could not claim deliveries; retrying");
                            }
                            failing = true;
                        }
                        Err(error) => tracing::error!(%error, "a delivery claim task failed"),
                    }
                }
                lane.start_sends(&mut sends, &self.store, &self.signals, &self.shared, &recorder);
                if lane.claiming.is_none() {
                    match lane.wanted() {
                        Ok(0) => {}
                        Ok(wanted) => {
                            lane.claimed_at = Instant::now();
                            let (store, signals, name, lease) = (
                                self.store.clone(),
                                self.signals.clone(),
                                lane.destination.name.clone(),
                                self.shared.lease,
                            );
                            lane.claiming = Some(tokio::spawn(async move {
                                let claimed = store.deliveries().claim(&name, wanted, lease).await;
                                signals.wake_deliveries();
                                claimed
                            }));
                        }
                        Err(()) => deferred = true,
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
        // Claimed but not sent: given back, so another replica sends them
        // now rather than after their lease.
        let mut unsent: Vec<(i64, DateTime<Utc>)> = Vec::new();
        for lane in &mut self.lanes {
            if let Some(claim) = lane.claiming.take() {
                if let Ok(Ok(claims)) = claim.await {
                    lane.ready.extend(claims);
                }
            }
            unsent.extend(lane.ready.drain(..).map(|claim| (claim.id, claim.lease)));
        }
        give_back(&self.store, &unsent).await;
        while sends.join_next().await.is_some() {}
    }
}

/// One attempt: POST, classify, record. The sending slot (`permit`) is
/// freed as soon as the answer is in: recording needs no slot, and the
/// agreement's next change stays unclaimable until it is recorded (the
/// claim's order rule), so a slot never waits for a database commit.
async fn send(
    store: &Store,
    recorder: &Recorder,
    shared: &Shared,
    destination: &Destination,
    claim: ClaimedDelivery,
    permit: tokio::sync::OwnedSemaphorePermit,
    signals: &ChangeSignals,
) {
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
    drop(permit);
    signals.wake_deliveries();
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
    if let Attempt::Delivered { status } = attempt {
        recorder.delivered(&claim, status).await;
        return;
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
