//! The admin API as the simulator reads it: `GET /api/stats` to tell when every
//! acknowledged event has been processed, `GET /api/agreements/{provider}/{id}`
//! to check the status an agreement ended in.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;

use crate::outbound::error_chain;

use super::{
    report::{round3, Processing},
    target::Target,
    SimulateError,
};

/// How often the admin API is polled while waiting.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

pub struct Admin {
    client: reqwest::Client,
    base: String,
    token: String,
}

/// `GET /api/stats` → `events`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Stats {
    pub pending: i64,
    pub processing: i64,
    pub processed: i64,
    pub failed: i64,
    pub dead: i64,
}

#[derive(Deserialize)]
struct StatsBody {
    events: Stats,
}

#[derive(Deserialize)]
struct AgreementBody {
    status: Option<String>,
}

impl Admin {
    pub fn new(target: &Target, token: String) -> Self {
        Self {
            client: target.client().clone(),
            base: target.url("/api"),
            token,
        }
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response, String> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|error| format!("GET /api{path}: {}", error_chain(&error)))?;
        match response.status() {
            StatusCode::UNAUTHORIZED => Err(format!(
                "GET /api{path}: the admin API refused the token (401); \
                 pass the server's token with --admin-token or SIGNHOOK_ADMIN_TOKEN"
            )),
            _ => Ok(response),
        }
    }

    pub async fn stats(&self) -> Result<Stats, String> {
        let response = self.get("/stats").await?;
        match response.status() {
            StatusCode::OK => response
                .json::<StatsBody>()
                .await
                .map(|body| body.events)
                .map_err(|error| format!("GET /api/stats: unexpected answer: {}", error_chain(&error))),
            StatusCode::NOT_FOUND => Err("GET /api/stats answers 404: the server's admin API is off \
                 (it needs SIGNHOOK_ADMIN_TOKEN), or the URL is not a signhook deployment"
                .to_owned()),
            status => Err(format!("GET /api/stats answers {status}")),
        }
    }

    /// The counters before the run; an admin API that does not work stops the
    /// run before anything is sent.
    pub async fn baseline(&self) -> Result<Stats, SimulateError> {
        self.stats().await.map_err(SimulateError::Failed)
    }

    /// The agreement's normalized status; `Ok(None)` when the server has not
    /// seen it (yet).
    pub async fn agreement_status(&self, provider: &str, agreement_id: &str) -> Result<Option<String>, String> {
        let path = format!("/agreements/{provider}/{agreement_id}");
        let response = self.get(&path).await?;
        match response.status() {
            StatusCode::OK => response
                .json::<AgreementBody>()
                .await
                .map(|body| body.status)
                .map_err(|error| format!("GET /api{path}: unexpected answer: {}", error_chain(&error))),
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(format!("GET /api{path} answers {status}")),
        }
    }

    /// Polls until nothing is pending, processing or failed and `processed`
    /// has grown by at least `new_events` since `baseline`, or `deadline`
    /// passes. Errors while polling (a busy server) are retried.
    pub async fn wait_processed(
        &self,
        baseline: Stats,
        new_events: u64,
        first_send: Instant,
        deadline: Instant,
    ) -> Processing {
        let wanted = baseline
            .processed
            .saturating_add(i64::try_from(new_events).unwrap_or(i64::MAX));
        let mut last = baseline;
        loop {
            if let Ok(stats) = self.stats().await {
                last = stats;
                let idle = stats.pending + stats.processing + stats.failed == 0;
                if idle && stats.processed >= wanted {
                    return processing(baseline, stats, Some(first_send.elapsed()));
                }
            }
            if Instant::now() >= deadline {
                return processing(baseline, last, None);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

fn processing(baseline: Stats, now: Stats, done_after: Option<Duration>) -> Processing {
    Processing {
        complete: done_after.is_some(),
        secs: done_after.map(|d| round3(d.as_secs_f64())),
        processed: now.processed - baseline.processed,
        pending: now.pending,
        processing: now.processing,
        failed: now.failed,
        dead: now.dead,
    }
}
