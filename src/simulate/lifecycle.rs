//! `simulate lifecycle`: every agreement is planned up front (its provider,
//! how it ends, and the order its events are delivered in, with duplicates and
//! shuffles), delivered one event at a time, several agreements at once, and
//! then checked through the admin API until each shows its expected status
//! (and, with `--listen`, through the outbound webhooks it received).

use std::{
    collections::{BTreeMap, HashSet},
    sync::Mutex,
    time::{Duration, Instant},
};

use futures::{stream, StreamExt};

use super::{
    admin::{Admin, POLL_INTERVAL},
    payloads::{assign, Event},
    received::Receiver,
    report::{AgreementCheck, AgreementSample, Attempt, Mismatch, Report, Tally},
    target::{Answer, Delivery, Explain, Target},
    LifecycleArgs, Setup, SimulateError,
};
use crate::{agreement::AgreementStatus, providers::traffic::Step};

/// Sends of one event before giving up on an unavailable server; the waits
/// between them double from [`FIRST_RETRY_WAIT`] (a provider retries too).
const ATTEMPTS: u32 = 5;
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(100);
/// Event numbers reserved per agreement (lifecycles are shorter).
const EVENTS_PER_AGREEMENT: u64 = 8;
/// Lifecycle steps are this far apart in event time.
const STEP_MINUTES: i64 = 5;

pub async fn run(args: LifecycleArgs) -> Result<Report, SimulateError> {
    let connections = usize::from(args.connections);
    let common = &args.common;
    let setup = Setup::new(common, connections, 0, true).await?;
    let admin = setup.admin.as_ref().expect("lifecycle always sets up the admin API");
    let receiver = match (args.listen, &args.delivery_secret) {
        (Some(addr), Some(secret)) => Some(Receiver::start(addr, secret).await?),
        _ => None,
    };
    let baseline = admin.baseline().await?;

    let mut rng = fastrand::Rng::new();
    let plans: Vec<Plan> = (0..args.agreements)
        .map(|seq| Plan::new(&setup, seq, common.duplicate_ratio, args.out_of_order_ratio, &mut rng))
        .collect();

    let tally = Mutex::new(Tally::default());
    let started = Instant::now();
    stream::iter(&plans)
        .for_each_concurrent(connections, |plan| plan.deliver(&setup, &tally))
        .await;
    let elapsed = started.elapsed();

    let mut report = setup.report("lifecycle", connections);
    report.add_sending(tally.into_inner().expect("no sender panics holding the tally"), elapsed);
    let deadline = Instant::now() + common.timeout;
    let processing = admin
        .wait_processed(baseline, report.new_acknowledged, started, deadline)
        .await;
    report.add_processing(processing, common.timeout);
    report.add_agreements(check(admin, &plans, deadline, connections).await);
    if let Some(receiver) = receiver {
        let expected: Vec<_> = plans
            .iter()
            .map(|plan| (plan.provider_name, plan.id.clone(), plan.ending.as_str()))
            .collect();
        report.add_deliveries(receiver.check(&expected, deadline).await);
    }
    Ok(report)
}

/// One agreement: what happens to it, and in which order the server hears of it.
struct Plan {
    /// Index of the provider in the run's providers.
    provider: usize,
    /// The status the agreement ends in.
    ending: AgreementStatus,
    /// The provider's name.
    provider_name: &'static str,
    seq: u64,
    id: String,
    steps: &'static [Step],
    /// Step indexes in delivery order; `true` marks a re-delivery.
    deliveries: Vec<(usize, bool)>,
}

impl Plan {
    fn new(setup: &Setup, seq: u64, duplicate_ratio: f64, out_of_order_ratio: f64, rng: &mut fastrand::Rng) -> Self {
        let (provider, ending, steps) = assign(setup.providers, seq);
        let deliveries = delivery_order(steps.len(), duplicate_ratio, out_of_order_ratio, rng);
        Self {
            provider,
            ending,
            provider_name: setup.providers[provider].name,
            seq,
            id: setup.payloads.agreement_id(provider, seq),
            steps,
            deliveries,
        }
    }

    /// Event times rise along the lifecycle, whatever the delivery order.
    fn event(&self, setup: &Setup, index: usize) -> Event {
        let offset = (self.seq % 3600) as i64;
        Event {
            provider: self.provider,
            seq: self.seq * EVENTS_PER_AGREEMENT + index as u64,
            agreement: self.seq,
            step: &self.steps[index],
            at: setup.origin
                + chrono::Duration::seconds(offset)
                + chrono::Duration::minutes(STEP_MINUTES * index as i64),
        }
    }

    async fn deliver(&self, setup: &Setup, tally: &Mutex<Tally>) {
        let bodies: Vec<Delivery> = (0..self.steps.len())
            .map(|index| {
                let event = self.event(setup, index);
                setup.target.delivery(self.provider, setup.payloads.render(&event))
            })
            .collect();
        let mut acknowledged = vec![false; self.steps.len()];
        for &(index, again) in &self.deliveries {
            let attempt = match (again, acknowledged[index]) {
                (false, _) => Attempt::First,
                (true, true) => Attempt::Duplicate,
                // The first delivery never got through: this one is a retry.
                (true, false) => Attempt::Retry,
            };
            acknowledged[index] |= send_with_retries(&setup.target, &bodies[index], attempt, tally).await;
        }
    }
}

/// The order in which `steps` events are delivered: shuffled with probability
/// `out_of_order_ratio` (never back into lifecycle order), and each event
/// re-delivered with probability `duplicate_ratio`, some time after its first
/// delivery. Entries are step indexes; `true` marks a re-delivery.
fn delivery_order(
    steps: usize,
    duplicate_ratio: f64,
    out_of_order_ratio: f64,
    rng: &mut fastrand::Rng,
) -> Vec<(usize, bool)> {
    let mut order: Vec<usize> = (0..steps).collect();
    if rng.f64() < out_of_order_ratio {
        rng.shuffle(&mut order);
        if order.windows(2).all(|pair| pair[0] < pair[1]) {
            // Out of order means out of order: the terminal event first.
            order.rotate_right(1);
        }
    }
    let mut deliveries: Vec<(usize, bool)> = order.into_iter().map(|step| (step, false)).collect();
    for step in 0..steps {
        if rng.f64() < duplicate_ratio {
            let first = deliveries
                .iter()
                .position(|&delivery| delivery == (step, false))
                .expect("every step is delivered once");
            let at = rng.usize(first + 1..=deliveries.len());
            deliveries.insert(at, (step, true));
        }
    }
    deliveries
}

/// Sends until acknowledged or rejected, retrying unavailable answers.
async fn send_with_retries(target: &Target, delivery: &Delivery, first: Attempt, tally: &Mutex<Tally>) -> bool {
    let mut attempt = first;
    let mut wait = FIRST_RETRY_WAIT;
    for _ in 0..ATTEMPTS {
        let (answer, latency) = target.send(delivery, Explain::ALL).await;
        tally
            .lock()
            .expect("no sender panics holding the tally")
            .record(attempt, &answer, latency);
        match answer {
            Answer::Acknowledged => return true,
            Answer::Rejected { .. } => return false,
            Answer::Unavailable { .. } => {}
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
        attempt = Attempt::Retry;
    }
    false
}

/// Polls every agreement not yet in its expected status until all are, or
/// `deadline` passes.
async fn check(admin: &Admin, plans: &[Plan], deadline: Instant, connections: usize) -> AgreementCheck {
    let mut actual: Vec<Option<String>> = vec![None; plans.len()];
    let mut waiting: Vec<usize> = (0..plans.len()).collect();
    loop {
        let answers: Vec<(usize, Result<Option<String>, String>)> = stream::iter(waiting.iter().copied())
            .map(|index| async move {
                let plan = &plans[index];
                (index, admin.agreement_status(plan.provider_name, &plan.id).await)
            })
            .buffer_unordered(connections)
            .collect()
            .await;
        waiting.clear();
        for (index, answer) in answers {
            if let Ok(status) = answer {
                actual[index] = status;
            }
            if actual[index].as_deref() != Some(plans[index].ending.as_str()) {
                waiting.push(index);
            }
        }
        if waiting.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    waiting.sort_unstable();

    let mut expected = BTreeMap::new();
    let mut seen = HashSet::new();
    let mut samples = Vec::new();
    for plan in plans {
        *expected.entry(plan.ending.as_str()).or_default() += 1;
        if seen.insert((plan.provider, plan.ending)) {
            samples.push(AgreementSample {
                provider: plan.provider_name,
                agreement_id: plan.id.clone(),
                expected: plan.ending.as_str(),
                events: plan.steps.len(),
            });
        }
    }
    let mismatches: Vec<Mismatch> = waiting
        .into_iter()
        .map(|index| Mismatch {
            provider: plans[index].provider_name,
            agreement_id: plans[index].id.clone(),
            expected: plans[index].ending.as_str(),
            actual: actual[index].take(),
        })
        .collect();
    AgreementCheck {
        total: plans.len() as u64,
        matched: (plans.len() - mismatches.len()) as u64,
        expected,
        samples,
        mismatches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_order(deliveries: &[(usize, bool)]) -> bool {
        let firsts: Vec<usize> = deliveries.iter().filter(|d| !d.1).map(|d| d.0).collect();
        firsts.windows(2).all(|pair| pair[0] < pair[1])
    }

    #[test]
    fn plain_delivery_is_each_event_once_in_lifecycle_order() {
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(
            delivery_order(4, 0.0, 0.0, &mut rng),
            vec![(0, false), (1, false), (2, false), (3, false)]
        );
    }

    #[test]
    fn shuffled_deliveries_are_never_in_lifecycle_order() {
        let mut rng = fastrand::Rng::with_seed(7);
        for steps in 2..=4 {
            for _ in 0..200 {
                assert!(!in_order(&delivery_order(steps, 0.0, 1.0, &mut rng)));
            }
        }
    }

    #[test]
    fn duplicates_come_after_their_first_delivery() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..200 {
            let deliveries = delivery_order(4, 1.0, 0.5, &mut rng);
            assert_eq!(deliveries.len(), 8);
            for step in 0..4 {
                let first = deliveries.iter().position(|&d| d == (step, false));
                let again = deliveries.iter().position(|&d| d == (step, true));
                assert!(first < again, "{deliveries:?}");
            }
        }
    }
}
