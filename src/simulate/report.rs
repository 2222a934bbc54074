//! Counting what the server answered, and the report printed at the end: as
//! text for people, or as one JSON object for scripts (`--json`).

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{
    received::DeliveryCheck,
    target::{Answer, Explain},
};

/// Why a request was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The first delivery of an event.
    First,
    /// Again after an unavailable answer, as a provider retries.
    Retry,
    /// Again after it was acknowledged: the server must deduplicate it.
    Duplicate,
}

/// Counters and ack latencies of one sender; merged at the end.
pub struct Tally {
    pub sent: u64,
    pub events: u64,
    pub duplicates_sent: u64,
    pub retries: u64,
    pub acknowledged: u64,
    pub new_acknowledged: u64,
    pub duplicates_acknowledged: u64,
    pub rejected: u64,
    pub unavailable: u64,
    /// Answers other than 2xx, by status code (`error` when there was none).
    pub answers: BTreeMap<String, u64>,
    /// The first rejection and the first unavailable answer, to show why.
    pub first_rejection: Option<String>,
    pub first_unavailable: Option<String>,
    /// Microseconds until a 2xx answer.
    latency: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            sent: 0,
            events: 0,
            duplicates_sent: 0,
            retries: 0,
            acknowledged: 0,
            new_acknowledged: 0,
            duplicates_acknowledged: 0,
            rejected: 0,
            unavailable: 0,
            answers: BTreeMap::new(),
            first_rejection: None,
            first_unavailable: None,
            // 1 µs to 1 h at 3 significant digits.
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid"),
        }
    }
}

impl Tally {
    pub fn record(&mut self, attempt: Attempt, answer: &Answer, latency: Duration) {
        self.sent += 1;
        match attempt {
            Attempt::First => self.events += 1,
            Attempt::Retry => self.retries += 1,
            Attempt::Duplicate => self.duplicates_sent += 1,
        }
        match answer {
            Answer::Acknowledged => {
                self.acknowledged += 1;
                match attempt {
                    Attempt::Duplicate => self.duplicates_acknowledged += 1,
                    Attempt::First | Attempt::Retry => self.new_acknowledged += 1,
                }
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.latency.saturating_record(micros.max(1));
            }
            Answer::Rejected { status, detail } => {
                self.rejected += 1;
                *self.answers.entry(status.to_string()).or_default() += 1;
                self.first_rejection.get_or_insert_with(|| detail.clone());
            }
            Answer::Unavailable { status, detail } => {
                self.unavailable += 1;
                let key = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
                *self.answers.entry(key).or_default() += 1;
                self.first_unavailable.get_or_insert_with(|| detail.clone());
            }
        }
    }

    /// The error details this tally would still keep.
    pub fn explain(&self) -> Explain {
        Explain {
            rejection: self.first_rejection.is_none(),
            unavailable: self.first_unavailable.is_none(),
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.sent += other.sent;
        self.events += other.events;
        self.duplicates_sent += other.duplicates_sent;
        self.retries += other.retries;
        self.acknowledged += other.acknowledged;
        self.new_acknowledged += other.new_acknowledged;
        self.duplicates_acknowledged += other.duplicates_acknowledged;
        self.rejected += other.rejected;
        self.unavailable += other.unavailable;
        for (key, n) in other.answers {
            *self.answers.entry(key).or_default() += n;
        }
        self.first_rejection = self.first_rejection.take().or(other.first_rejection);
        self.first_unavailable = self.first_unavailable.take().or(other.first_unavailable);
        self.latency
            .add(&other.latency)
            .expect("histograms with the same bounds merge");
    }

    fn latency(&self) -> Option<Latency> {
        let ms = |micros: u64| micros as f64 / 1000.0;
        (!self.latency.is_empty()).then(|| Latency {
            p50: ms(self.latency.value_at_quantile(0.50)),
            p90: ms(self.latency.value_at_quantile(0.90)),
            p99: ms(self.latency.value_at_quantile(0.99)),
            max: ms(self.latency.max()),
        })
    }
}

/// Acknowledgement latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Whether everything acknowledged was processed, per `GET /api/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct Processing {
    /// Nothing pending, processing or failed, and `processed` grew by at least
    /// the number of new events acknowledged.
    pub complete: bool,
    /// From the first send until that was seen.
    pub secs: Option<f64>,
    /// Growth of `processed` since the run started.
    pub processed: i64,
    pub pending: i64,
    pub processing: i64,
    pub failed: i64,
    pub dead: i64,
}

/// The final statuses of a lifecycle run's agreements.
#[derive(Debug, Clone, Serialize)]
pub struct AgreementCheck {
    pub total: u64,
    pub matched: u64,
    /// Number of agreements expected to end in each status.
    pub expected: BTreeMap<&'static str, u64>,
    /// One agreement per provider and ending, to look at by hand.
    pub samples: Vec<AgreementSample>,
    pub mismatches: Vec<Mismatch>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgreementSample {
    pub provider: &'static str,
    pub agreement_id: String,
    pub expected: &'static str,
    /// Distinct events of its lifecycle (its history should hold this many).
    pub events: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub provider: &'static str,
    pub agreement_id: String,
    pub expected: &'static str,
    /// The status last seen; `None` when the agreement was never found.
    pub actual: Option<String>,
}

/// Everything a run found out.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub run_id: String,
    pub url: String,
    pub provider: &'static str,
    pub connections: usize,
    /// Requests sent, duplicates and retries included.
    pub sent: u64,
    /// Distinct events sent at least once.
    pub events: u64,
    pub duplicates_sent: u64,
    pub retries: u64,
    /// 2xx answers, duplicates included.
    pub acknowledged: u64,
    /// Distinct events acknowledged (the server stores exactly these).
    pub new_acknowledged: u64,
    pub duplicates_acknowledged: u64,
    pub rejected: u64,
    pub unavailable: u64,
    /// Answers other than 2xx by status code, `error` for no answer.
    pub answers: BTreeMap<String, u64>,
    pub first_rejection: Option<String>,
    pub first_unavailable: Option<String>,
    /// From the first send until the last answer.
    pub elapsed_secs: f64,
    pub acks_per_sec: f64,
    pub latency_ms: Option<Latency>,
    pub processing: Option<Processing>,
    pub agreements: Option<AgreementCheck>,
    /// With `lifecycle --listen`: the outbound webhooks received.
    pub deliveries: Option<DeliveryCheck>,
    /// What made the run fail; empty when it passed.
    pub failures: Vec<String>,
}

impl Report {
    pub fn new(mode: &'static str, run_id: String, url: String, provider: &'static str, connections: usize) -> Self {
        Self {
            mode,
            run_id,
            url,
            provider,
            connections,
            sent: 0,
            events: 0,
            duplicates_sent: 0,
            retries: 0,
            acknowledged: 0,
            new_acknowledged: 0,
            duplicates_acknowledged: 0,
            rejected: 0,
            unavailable: 0,
            answers: BTreeMap::new(),
            first_rejection: None,
            first_unavailable: None,
            elapsed_secs: 0.0,
            acks_per_sec: 0.0,
            latency_ms: None,
            processing: None,
            agreements: None,
            deliveries: None,
            failures: Vec::new(),
        }
    }

    /// Takes the counters of the sending phase, which took `elapsed`.
    pub fn add_sending(&mut self, tally: Tally, elapsed: Duration) {
        self.latency_ms = tally.latency();
        self.sent = tally.sent;
        self.events = tally.events;
        self.duplicates_sent = tally.duplicates_sent;
        self.retries = tally.retries;
        self.acknowledged = tally.acknowledged;
        self.new_acknowledged = tally.new_acknowledged;
        self.duplicates_acknowledged = tally.duplicates_acknowledged;
        self.rejected = tally.rejected;
        self.unavailable = tally.unavailable;
        self.answers = tally.answers;
        self.first_rejection = tally.first_rejection;
        self.first_unavailable = tally.first_unavailable;
        self.elapsed_secs = round3(elapsed.as_secs_f64());
        self.acks_per_sec = match elapsed.as_secs_f64() {
            secs if secs > 0.0 => (self.acknowledged as f64 / secs * 10.0).round() / 10.0,
            _ => 0.0,
        };
        if self.acknowledged == 0 {
            self.failures.push("no request was acknowledged".to_owned());
        }
        if self.rejected > 0 {
            self.failures.push(format!(
                "{} requests were rejected (first: {})",
                self.rejected,
                self.first_rejection.as_deref().unwrap_or("?")
            ));
        }
    }

    pub fn add_processing(&mut self, processing: Processing, timeout: Duration) {
        if !processing.complete {
            self.failures.push(format!(
                "acknowledged events were not all processed within {} s \
                 (processed {} of {} new, pending {}, processing {}, failed {}, dead {})",
                timeout.as_secs_f64(),
                processing.processed,
                self.new_acknowledged,
                processing.pending,
                processing.processing,
                processing.failed,
                processing.dead
            ));
        }
        self.processing = Some(processing);
    }

    pub fn add_agreements(&mut self, check: AgreementCheck) {
        if !check.mismatches.is_empty() {
            self.failures.push(format!(
                "{} of {} agreements do not have their expected status",
                check.mismatches.len(),
                check.total
            ));
        }
        self.agreements = Some(check);
    }

    pub fn add_deliveries(&mut self, check: DeliveryCheck) {
        if check.complete < check.total {
            self.failures.push(format!(
                "{} of {} agreements did not receive their changes complete and in order",
                check.total - check.complete,
                check.total
            ));
        }
        self.deliveries = Some(check);
    }

    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out).expect("writing to a String cannot fail");
        out
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        writeln!(
            out,
            "signhook simulate {}: run {} against {} ({}, {} connections)",
            self.mode, self.run_id, self.url, self.provider, self.connections
        )?;
        let mut sent = format!("{} events", self.events);
        if self.duplicates_sent > 0 {
            write!(sent, ", {} duplicates", self.duplicates_sent)?;
        }
        if self.retries > 0 {
            write!(sent, ", {} retries", self.retries)?;
        }
        writeln!(out, "  sent                {} requests ({sent})", self.sent)?;
        writeln!(
            out,
            "  acknowledged (2xx)  {} ({} duplicates)",
            self.acknowledged, self.duplicates_acknowledged
        )?;
        writeln!(out, "  rejected (4xx)      {}", self.rejected)?;
        if let Some(first) = &self.first_rejection {
            writeln!(out, "    first: {first}")?;
        }
        writeln!(out, "  unavailable (5xx)   {}", self.unavailable)?;
        if let Some(first) = &self.first_unavailable {
            writeln!(out, "    first: {first}")?;
        }
        writeln!(
            out,
            "  throughput          {} acks/s over {:.2} s",
            self.acks_per_sec, self.elapsed_secs
        )?;
        if let Some(latency) = &self.latency_ms {
            writeln!(
                out,
                "  ack latency         p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
                latency.p50, latency.p90, latency.p99, latency.max
            )?;
        }
        if let Some(processing) = &self.processing {
            match processing.secs {
                Some(secs) if processing.complete => writeln!(
                    out,
                    "  processed           all {} new events, {secs:.2} s after the first send",
                    self.new_acknowledged
                )?,
                _ => writeln!(
                    out,
                    "  processed           {} of {} new events (pending {}, processing {}, failed {}, dead {})",
                    processing.processed,
                    self.new_acknowledged,
                    processing.pending,
                    processing.processing,
                    processing.failed,
                    processing.dead
                )?,
            }
        }
        if let Some(check) = &self.agreements {
            let expected: Vec<String> = check.expected.iter().map(|(s, n)| format!("{s} {n}")).collect();
            writeln!(
                out,
                "  agreements          {} of {} with the expected status ({})",
                check.matched,
                check.total,
                expected.join(", ")
            )?;
            for mismatch in check.mismatches.iter().take(20) {
                writeln!(
                    out,
                    "    {} {}: expected {}, found {}",
                    mismatch.provider,
                    mismatch.agreement_id,
                    mismatch.expected,
                    mismatch.actual.as_deref().unwrap_or("nothing")
                )?;
            }
            if check.mismatches.len() > 20 {
                writeln!(out, "    … and {} more", check.mismatches.len() - 20)?;
            }
        }
        if let Some(check) = &self.deliveries {
            writeln!(
                out,
                "  deliveries          {} of {} agreements received every change in order ({} deliveries, {} repeats)",
                check.complete, check.total, check.deliveries, check.repeats
            )?;
            for problem in check.problems.iter().take(20) {
                writeln!(
                    out,
                    "    {} {}: {} (expected {}; received {})",
                    problem.provider,
                    problem.agreement_id,
                    problem.problem,
                    problem.expected,
                    match problem.received.is_empty() {
                        true => "nothing".to_owned(),
                        false => problem.received.join(", "),
                    }
                )?;
            }
            if check.problems.len() > 20 {
                writeln!(out, "    … and {} more", check.problems.len() - 20)?;
            }
        }
        match self.failures.as_slice() {
            [] => write!(out, "result: passed"),
            failures => write!(out, "result: FAILED: {}", failures.join("; ")),
        }
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_each_kind_of_answer() {
        let ms = Duration::from_millis;
        let mut tally = Tally::default();
        tally.record(Attempt::First, &Answer::Acknowledged, ms(2));
        tally.record(Attempt::Duplicate, &Answer::Acknowledged, ms(4));
        let unavailable = Answer::Unavailable {
            status: Some(503),
            detail: "503 overloaded".to_owned(),
        };
        tally.record(Attempt::First, &unavailable, ms(1));
        let mut other = Tally::default();
        other.record(Attempt::Retry, &Answer::Acknowledged, ms(6));
        let rejected = Answer::Rejected {
            status: 401,
            detail: "401 invalid_signature: no".to_owned(),
        };
        other.record(Attempt::First, &rejected, ms(1));
        tally.merge(other);

        assert_eq!(
            (tally.sent, tally.events, tally.retries, tally.duplicates_sent),
            (5, 3, 1, 1)
        );
        assert_eq!(
            (
                tally.acknowledged,
                tally.new_acknowledged,
                tally.duplicates_acknowledged
            ),
            (3, 2, 1)
        );
        assert_eq!((tally.rejected, tally.unavailable), (1, 1));
        assert_eq!(tally.answers.get("401"), Some(&1));
        assert_eq!(tally.answers.get("503"), Some(&1));
        let latency = tally.latency().expect("acks were timed");
        assert!((latency.max - 6.0).abs() < 0.01, "{latency:?}");

        let mut report = Report::new("load", "r".to_owned(), "u".to_owned(), "mixed", 1);
        report.add_sending(tally, Duration::from_secs(1));
        assert!(!report.passed(), "a rejection fails the run");
        assert!(report.to_text().contains("401 invalid_signature"));
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("JSON");
        assert_eq!(json["acknowledged"], 3);
        assert_eq!(json["acks_per_sec"], 3.0);
    }
}
