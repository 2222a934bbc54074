//! `simulate load`: one sender per connection, each sending one request at a
//! time, taking event numbers from a shared counter until the count or the
//! duration is reached. Senders share nothing else: each renders its own
//! bodies and keeps its own counters and latency histogram, merged at the end.
//!
//! The senders run on a few threads, each with a single-threaded runtime and
//! its own HTTP client, like wrk's event loops: a request and its connection
//! stay on one thread, with no cross-thread wake-ups, which keeps the
//! simulator's cost per request low enough that it is not the bottleneck.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use chrono::{DateTime, Utc};

use super::{
    payloads::{assign, Event, Payloads},
    report::{Attempt, Report, Tally},
    target::{Answer, Delivery, Target},
    LoadArgs, Setup, SimulateError,
};
use crate::providers::Registration;

/// Each agreement gets this many events: the first steps of its lifecycle,
/// then its terminal event.
const EVENTS_PER_AGREEMENT: u64 = 4;
/// A duplicate is re-sent after this many of its sender's later events, as a
/// provider's re-delivery comes later, not at once.
const DUPLICATE_DELAY: usize = 4;

pub async fn run(args: LoadArgs) -> Result<Report, SimulateError> {
    let connections = usize::from(args.connections);
    let setup = Setup::new(&args.common, connections, args.body_bytes as usize, args.verify).await?;
    let baseline = match &setup.admin {
        Some(admin) => Some(admin.baseline().await?),
        None => None,
    };
    let threads = args
        .threads
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .min(connections);
    let started = Instant::now();
    let shared = Arc::new(Shared {
        payloads: setup.payloads.clone(),
        providers: setup.providers,
        origin: setup.origin,
        next: AtomicU64::new(0),
        limit: args.events,
        deadline: args.duration.map(|duration| started + duration),
        schedule: args.rate.map(|rate| (started, f64::from(rate))),
        duplicate_ratio: args.common.duplicate_ratio,
    });
    let seed = fastrand::u64(..);
    let mut senders = Vec::with_capacity(threads);
    for thread in 0..threads {
        // Connections dealt out evenly; each thread seeds its senders apart.
        let share = connections / threads + usize::from(thread < connections % threads);
        let target = setup.target.with_own_client(share)?;
        let shared = shared.clone();
        let seed = seed.wrapping_add((thread * connections) as u64);
        let sender = std::thread::Builder::new()
            .name(format!("simulate-{thread}"))
            .spawn(move || send_from_thread(&shared, &target, share, seed))
            .map_err(|error| SimulateError::Failed(format!("cannot start a sender thread: {error}")))?;
        senders.push(sender);
    }
    let finished = tokio::task::spawn_blocking(move || senders.into_iter().map(|s| s.join()).collect::<Vec<_>>())
        .await
        .map_err(|error| SimulateError::Failed(format!("waiting for the senders failed: {error}")))?;
    let mut tally = Tally::default();
    for sent in finished {
        tally.merge(sent.map_err(|_| SimulateError::Failed("a sender thread panicked".to_owned()))??);
    }
    let elapsed = started.elapsed();

    let mut report = setup.report("load", connections);
    report.add_sending(tally, elapsed);
    if let (Some(admin), Some(baseline)) = (&setup.admin, baseline) {
        let deadline = Instant::now() + args.common.timeout;
        let processing = admin
            .wait_processed(baseline, report.new_acknowledged, started, deadline)
            .await;
        report.add_processing(processing, args.common.timeout);
    }
    Ok(report)
}

/// Runs `connections` senders on this thread until the run is over.
fn send_from_thread(shared: &Shared, target: &Target, connections: usize, seed: u64) -> Result<Tally, SimulateError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| SimulateError::Failed(format!("cannot start a sender runtime: {error}")))?;
    let senders = (0..connections).map(|n| send_events(shared, target, seed.wrapping_add(n as u64)));
    let mut tally = Tally::default();
    for sent in runtime.block_on(futures::future::join_all(senders)) {
        tally.merge(sent);
    }
    Ok(tally)
}

struct Shared {
    payloads: Arc<Payloads>,
    providers: &'static [Registration],
    /// When this run's agreements were created.
    origin: DateTime<Utc>,
    next: AtomicU64,
    limit: Option<u64>,
    deadline: Option<Instant>,
    /// With `--rate`: the start and the events per second.
    schedule: Option<(Instant, f64)>,
    duplicate_ratio: f64,
}

impl Shared {
    /// The next event number to send, until the run is over.
    fn next_event(&self) -> Option<u64> {
        if self.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return None;
        }
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let past_deadline = matches!((self.due(seq), self.deadline), (Some(due), Some(end)) if due >= end);
        match self.limit {
            Some(limit) if seq >= limit => None,
            _ if past_deadline => None,
            _ => Some(seq),
        }
    }

    /// When event `seq` is due under `--rate`.
    fn due(&self, seq: u64) -> Option<Instant> {
        let (started, rate) = self.schedule?;
        Some(started + std::time::Duration::from_secs_f64(seq as f64 / rate))
    }

    /// Event `seq` is step `seq % 4` of agreement `seq / 4`: consecutive
    /// events go to the same agreement, so the server sees agreements move
    /// through their lifecycles while many are in flight at once.
    fn event(&self, seq: u64) -> Event {
        let agreement = seq / EVENTS_PER_AGREEMENT;
        let position = seq % EVENTS_PER_AGREEMENT;
        let (provider, _, steps) = assign(self.providers, agreement);
        let step = match position {
            p if p == EVENTS_PER_AGREEMENT - 1 => &steps[steps.len() - 1],
            p => &steps[(p as usize).min(steps.len() - 2)],
        };
        Event {
            provider,
            seq,
            agreement,
            step,
            at: self.origin + chrono::Duration::minutes(position as i64),
        }
    }
}

/// One connection's worth of traffic.
async fn send_events(shared: &Shared, target: &Target, seed: u64) -> Tally {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tally = Tally::default();
    let mut to_repeat: VecDeque<Delivery> = VecDeque::with_capacity(DUPLICATE_DELAY + 1);
    while let Some(seq) = shared.next_event() {
        if let Some(due) = shared.due(seq) {
            tokio::time::sleep_until(due.into()).await;
        }
        let event = shared.event(seq);
        let delivery = target.delivery(event.provider, shared.payloads.render(&event));
        let (answer, latency) = target.send(&delivery, tally.explain()).await;
        tally.record(Attempt::First, &answer, latency);
        if answer == Answer::Acknowledged && rng.f64() < shared.duplicate_ratio {
            to_repeat.push_back(delivery);
        }
        if to_repeat.len() > DUPLICATE_DELAY {
            if let Some(duplicate) = to_repeat.pop_front() {
                send_duplicate(target, &duplicate, &mut tally).await;
            }
        }
    }
    for duplicate in to_repeat {
        send_duplicate(target, &duplicate, &mut tally).await;
    }
    tally
}

async fn send_duplicate(target: &Target, delivery: &Delivery, tally: &mut Tally) {
    let (answer, latency) = target.send(delivery, tally.explain()).await;
    tally.record(Attempt::Duplicate, &answer, latency);
}
