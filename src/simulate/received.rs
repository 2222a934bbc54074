//! `simulate lifecycle --listen`: the run also receives signhook's outbound
//! webhooks (with `signhook listen`'s verifying receiver) and checks, for
//! every agreement it drove, that its status changes arrived in the order
//! they were recorded (rising change ids), without a gap (each change's
//! previous status is the one the change before it arrived with, the first
//! has none) and ending in the agreement's expected status.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::SimulateError;
use crate::{
    delivery::listen::{self, OnDelivery, Verified},
    store::ChangeType,
};

/// How often the received changes are looked at while waiting for the rest.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// One status change as it arrived.
#[derive(Debug, Clone)]
struct Arrived {
    change_id: i64,
    previous_status: Option<String>,
    status: Option<String>,
}

#[derive(Default)]
struct Log {
    /// By (provider, agreement id), in arrival order; repeats left out.
    changes: HashMap<(String, String), Vec<Arrived>>,
    deliveries: u64,
    repeats: u64,
}

/// The receiver of one run; stops when dropped.
pub struct Receiver {
    log: Arc<Mutex<Log>>,
    stop: CancellationToken,
}

impl Receiver {
    /// Starts receiving on `addr` with the destination's `secret`.
    pub async fn start(addr: SocketAddr, secret: &str) -> Result<Self, SimulateError> {
        let signer = crate::delivery::signer(secret.trim())
            .map_err(|error| SimulateError::Usage(format!("--delivery-secret / SIGNHOOK_DELIVERY_SECRET: {error}")))?;
        let listener = listen::bind(addr)
            .await
            .map_err(|error| SimulateError::Failed(error.to_string()))?;
        let log = Arc::new(Mutex::new(Log::default()));
        let into = log.clone();
        let on_delivery: OnDelivery = Arc::new(move |delivery: Verified| {
            let mut log = into.lock().expect("no receiver panics holding the log");
            log.deliveries += 1;
            if delivery.repeat {
                log.repeats += 1;
                return;
            }
            let data = &delivery.payload["data"];
            if delivery.payload["type"] != ChangeType::StatusChanged.as_str() {
                return;
            }
            let text = |key: &str| data[key].as_str().map(str::to_owned);
            let key = (
                text("provider").unwrap_or_default(),
                text("agreement_id").unwrap_or_default(),
            );
            log.changes.entry(key).or_default().push(Arrived {
                change_id: data["change_id"].as_i64().unwrap_or(-1),
                previous_status: text("previous_status"),
                status: text("status"),
            });
        });
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = listen::serve(listener, signer, on_delivery, async move { stopped.cancelled().await }).await;
        });
        Ok(Self { log, stop })
    }

    /// Waits until every agreement in `expected` ((provider, id, status))
    /// received its changes up to its expected status, or `deadline`, and
    /// says how each fared.
    pub async fn check(&self, expected: &[(&'static str, String, &'static str)], deadline: Instant) -> DeliveryCheck {
        loop {
            let check = self.assess(expected);
            if check.complete == check.total || Instant::now() >= deadline {
                return check;
            }
            tokio::time::sleep(CHECK_INTERVAL).await;
        }
    }

    fn assess(&self, expected: &[(&'static str, String, &'static str)]) -> DeliveryCheck {
        let log = self.log.lock().expect("no receiver panics holding the log");
        let mut check = DeliveryCheck {
            total: expected.len() as u64,
            deliveries: log.deliveries,
            repeats: log.repeats,
            ..DeliveryCheck::default()
        };
        for (provider, id, status) in expected {
            let arrived = log
                .changes
                .get(&(provider.to_string(), id.clone()))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let verdict = verdict(arrived, status);
            match verdict {
                None => check.complete += 1,
                Some(problem) => check.problems.push(DeliveryProblem {
                    provider,
                    agreement_id: id.clone(),
                    expected: status,
                    problem,
                    received: arrived
                        .iter()
                        .map(|c| {
                            format!(
                                "{}:{}->{}",
                                c.change_id,
                                c.previous_status.as_deref().unwrap_or("-"),
                                c.status.as_deref().unwrap_or("-")
                            )
                        })
                        .collect(),
                }),
            }
        }
        check
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What is wrong with one agreement's deliveries, if anything.
fn verdict(arrived: &[Arrived], expected: &str) -> Option<&'static str> {
    if arrived.is_empty() {
        return Some("nothing received");
    }
    if arrived.windows(2).any(|pair| pair[0].change_id >= pair[1].change_id) {
        return Some("out of order");
    }
    if arrived[0].previous_status.is_some() || arrived.windows(2).any(|pair| pair[1].previous_status != pair[0].status)
    {
        return Some("a change is missing");
    }
    match arrived.last().and_then(|c| c.status.as_deref()) == Some(expected) {
        true => None,
        false => Some("not yet in its expected status"),
    }
}

/// How the run's agreements' deliveries fared.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeliveryCheck {
    /// Agreements checked.
    pub total: u64,
    /// Of them, received complete, in order, ending in the expected status.
    pub complete: u64,
    /// Deliveries received (verified), repeats included.
    pub deliveries: u64,
    /// Deliveries of a `webhook-id` received before.
    pub repeats: u64,
    pub problems: Vec<DeliveryProblem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryProblem {
    pub provider: &'static str,
    pub agreement_id: String,
    pub expected: &'static str,
    pub problem: &'static str,
    /// `change_id:previous->status` in arrival order.
    pub received: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: i64, previous: Option<&str>, status: &str) -> Arrived {
        Arrived {
            change_id: id,
            previous_status: previous.map(str::to_owned),
            status: Some(status.to_owned()),
        }
    }

    #[test]
    fn a_complete_ordered_chain_passes_and_every_flaw_is_named() {
        let chain = [
            change(1, None, "draft"),
            change(4, Some("draft"), "out_for_signature"),
            change(9, Some("out_for_signature"), "completed"),
        ];
        assert_eq!(verdict(&chain, "completed"), None);
        assert_eq!(
            verdict(&chain[..2], "completed"),
            Some("not yet in its expected status")
        );
        assert_eq!(verdict(&[], "completed"), Some("nothing received"));
        let swapped = [chain[0].clone(), chain[2].clone(), chain[1].clone()];
        assert_eq!(verdict(&swapped, "completed"), Some("out of order"));
        let gap = [chain[0].clone(), chain[2].clone()];
        assert_eq!(verdict(&gap, "completed"), Some("a change is missing"));
        assert_eq!(verdict(&chain[1..], "completed"), Some("a change is missing"));
    }
}
