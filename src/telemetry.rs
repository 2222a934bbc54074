//! Logging and metrics. Logs: JSON lines (containers) or human-readable
//! (terminals), filtered by `RUST_LOG`, carrying event ids and provider names,
//! never payload bodies. Metrics: a Prometheus recorder; every metric name is
//! declared here, once.

use std::{
    io::{BufWriter, IsTerminal},
    sync::OnceLock,
};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::LogFormat;

const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// Installs the global subscriber; a second call (tests) is a no-op. Lines
/// are formatted on the calling thread and written to stdout by a background
/// thread in batches (one write per batch rather than a write per line, and
/// a slow stdout holds up requests only once 16k lines wait); the returned
/// guard flushes what is left when dropped, so hold it until exit.
pub fn init(format: LogFormat) -> WorkerGuard {
    let (stdout, guard) = NonBlockingBuilder::default()
        // Block rather than drop lines when the writer falls behind; a
        // bounded queue of lines (its slots are allocated up front).
        .lossy(false)
        .buffered_lines_limit(16 * 1024)
        .finish(BufWriter::new(std::io::stdout()));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(stdout),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .fmt_fields(escaped_fields())
                    // Colour codes only for a terminal, not for a file or a pipe.
                    .with_ansi(std::io::stdout().is_terminal())
                    .with_writer(stdout),
            )
            .try_init(),
    };
    guard
}

/// The pretty format's fields, one line per event whatever they hold: values
/// can carry request input (a percent-decoded path segment quoted in an
/// error message), and a line break in one would start a line that passes
/// for one signhook wrote. Control characters (and the Unicode line and
/// paragraph separators) are written escaped, `\n`, `\u{1b}`. The JSON
/// format needs nothing: JSON strings escape them.
fn escaped_fields() -> impl for<'writer> fmt::FormatFields<'writer> + Send + Sync + 'static {
    use tracing_subscriber::field::MakeExt;
    fmt::format::debug_fn(|writer, field, value| {
        let rendered = escape_line_breaks(&format!("{value:?}"));
        match field.name() {
            "message" => write!(writer, "{rendered}"),
            name => write!(writer, "{name}={rendered}"),
        }
    })
    .delimited(" ")
}

fn escape_line_breaks(text: &str) -> String {
    let unsafe_char = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
    if !text.contains(unsafe_char) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| match unsafe_char(c) {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect()
}

/// Metric names (the README's Operations section lists them).
pub mod metric {
    /// Counter, labels `provider`, `outcome` (accepted, duplicate,
    /// rejected_auth, invalid, too_large, overloaded, unavailable).
    pub const WEBHOOK_REQUESTS: &str = "signhook_webhook_requests_total";
    /// Histogram (seconds), label `provider`: request start to acknowledgement.
    pub const ACK_DURATION: &str = "signhook_ack_duration_seconds";
    /// Gauge (unix seconds), label `provider`: last accepted webhook on any
    /// replica, read at scrape time (see `http::health::metrics`).
    pub const LAST_WEBHOOK: &str = "signhook_last_webhook_timestamp_seconds";
    /// Gauge, label `state`: stored events per processing state.
    pub const EVENTS: &str = "signhook_events";
    /// Gauge (seconds): age of the oldest event not yet processed (0 if none).
    pub const OLDEST_PENDING_AGE: &str = "signhook_oldest_pending_event_age_seconds";
    /// Counter: events applied to their agreement.
    pub const EVENTS_APPLIED: &str = "signhook_events_applied_total";
    /// Counter, label `result` (retry, dead): failed apply attempts.
    pub const APPLY_FAILURES: &str = "signhook_apply_failures_total";
    /// Histogram (seconds): one worker batch, claim to commit.
    pub const APPLY_DURATION: &str = "signhook_apply_batch_duration_seconds";
    /// Counter, labels `provider`, `outcome` (changed, unchanged, not_found,
    /// failed): the reconciler's polls.
    pub const POLLS: &str = "signhook_polls_total";
    /// Counter, labels `provider`, `outcome` (registered, failed, not_found,
    /// removed, remove_failed): per-agreement webhook registrations and removals.
    pub const WEBHOOK_REGISTRATIONS: &str = "signhook_webhook_registrations_total";
    /// Gauge (0/1), label `provider`: the provider has open agreements and
    /// sent no webhook for `SIGNHOOK_SILENCE_AFTER`.
    pub const PROVIDER_SILENT: &str = "signhook_provider_silent";
    /// Gauge (0/1), label `provider`: every call to the provider's API
    /// account is paused because it throttled us (read from the database:
    /// all replicas agree).
    pub const PROVIDER_API_PAUSED: &str = "signhook_provider_api_paused";
    /// Counter, label `provider`: throttling answers (429, or 503 with
    /// `Retry-After`) this replica received.
    pub const PROVIDER_API_THROTTLED: &str = "signhook_provider_api_throttled_total";
    /// Counter, labels `destination`, `outcome` (delivered, retry, failed):
    /// delivery attempts to the application.
    pub const DELIVERIES: &str = "signhook_deliveries_total";
    /// Histogram (seconds), label `destination`: change recorded to the
    /// application's 2xx.
    pub const DELIVERY_LATENCY: &str = "signhook_delivery_latency_seconds";
    /// Gauge, label `destination`: deliveries not yet delivered or failed
    /// (read from the database at scrape time).
    pub const DELIVERY_BACKLOG: &str = "signhook_delivery_backlog";
    /// Gauge (seconds), label `destination`: age of the oldest of them.
    pub const DELIVERY_OLDEST_AGE: &str = "signhook_delivery_oldest_pending_age_seconds";
    /// Gauge (0/1), label `destination`: disabled after failing for
    /// `SIGNHOOK_DELIVERY_DISABLE_AFTER` (read from the database).
    pub const DESTINATION_DISABLED: &str = "signhook_destination_disabled";
    /// Counter, label `destination`: times this replica disabled it.
    pub const DESTINATIONS_DISABLED: &str = "signhook_destination_disabled_total";
    /// Counter, label `provider`: final statuses from weakly authenticated
    /// webhooks that the provider's API contradicted (not applied).
    pub const UNCONFIRMED_EVENTS: &str = "signhook_unconfirmed_events_total";
    /// Counter, label `provider`: such final statuses the API confirmed.
    pub const CONFIRMED_EVENTS: &str = "signhook_confirmed_events_total";
    /// Counter, labels `provider`, `kind` (signed, audit_trail, signed_2…),
    /// `outcome` (stored, failed, deferred): documents of completed agreements.
    pub const DOCUMENTS_FETCHED: &str = "signhook_documents_fetched_total";
    /// Counter (bytes), labels `provider`, `kind`: document bytes stored by
    /// this replica (content already in the store counts too: it was fetched).
    pub const DOCUMENT_BYTES: &str = "signhook_document_bytes_stored_total";
    /// Gauge, label `provider`: completed agreements still without their
    /// signed copy `SIGNHOOK_DOCUMENT_MISSING_AFTER` after completing.
    pub const DOCUMENTS_MISSING: &str = "signhook_documents_missing";
    /// Counter, label `provider`: document fetch jobs that ended dead.
    pub const DOCUMENT_JOBS_DEAD: &str = "signhook_document_jobs_dead_total";
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let buckets = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &buckets)
            .expect("bucket list is not empty");
        let handle = builder.install_recorder().unwrap_or_else(|_| {
            // Another recorder is installed (only in tests embedding the
            // library); keep a detached one so rendering still works.
            PrometheusBuilder::new().build_recorder().handle()
        });
        describe();
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(metric::WEBHOOK_REQUESTS, "Webhook requests by provider and outcome");
    describe_histogram!(metric::ACK_DURATION, Unit::Seconds, "Time to acknowledge a webhook");
    describe_gauge!(
        metric::LAST_WEBHOOK,
        Unit::Seconds,
        "Unix time of the last accepted webhook"
    );
    describe_gauge!(metric::EVENTS, "Stored events by processing state");
    describe_gauge!(
        metric::OLDEST_PENDING_AGE,
        Unit::Seconds,
        "Age of the oldest unprocessed event"
    );
    describe_counter!(metric::EVENTS_APPLIED, "Events applied to their agreement");
    describe_counter!(metric::APPLY_FAILURES, "Failed apply attempts by result (retry, dead)");
    describe_histogram!(metric::APPLY_DURATION, Unit::Seconds, "Duration of one worker batch");
    describe_counter!(metric::POLLS, "Reconciler polls by provider and outcome");
    describe_counter!(
        metric::WEBHOOK_REGISTRATIONS,
        "Per-agreement webhook registrations and removals by provider and outcome"
    );
    describe_gauge!(
        metric::PROVIDER_SILENT,
        "1 while a provider with open agreements sends no webhooks"
    );
    describe_gauge!(
        metric::PROVIDER_API_PAUSED,
        "1 while every call to the provider's API account waits out its Retry-After"
    );
    describe_counter!(
        metric::DELIVERIES,
        "Delivery attempts to the application by destination and outcome"
    );
    describe_histogram!(
        metric::DELIVERY_LATENCY,
        Unit::Seconds,
        "Time from a change being recorded to the application's 2xx"
    );
    describe_gauge!(
        metric::DELIVERY_BACKLOG,
        "Deliveries not yet delivered or failed, per destination"
    );
    describe_gauge!(
        metric::DELIVERY_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest delivery not yet delivered or failed"
    );
    describe_gauge!(metric::DESTINATION_DISABLED, "1 while a destination is disabled");
    describe_counter!(metric::DESTINATIONS_DISABLED, "Times a destination was disabled");
    describe_counter!(
        metric::DOCUMENTS_FETCHED,
        "Documents of completed agreements by provider, kind and outcome"
    );
    describe_counter!(metric::DOCUMENT_BYTES, Unit::Bytes, "Document bytes stored");
    describe_gauge!(
        metric::DOCUMENTS_MISSING,
        "Completed agreements without their signed copy after SIGNHOOK_DOCUMENT_MISSING_AFTER"
    );
    describe_counter!(metric::DOCUMENT_JOBS_DEAD, "Document fetch jobs that ended dead");
    describe_counter!(
        metric::PROVIDER_API_THROTTLED,
        "Throttling answers (429, 503 with Retry-After) from the provider's API"
    );
    describe_counter!(
        metric::UNCONFIRMED_EVENTS,
        "Final statuses from weakly authenticated webhooks the provider's API contradicted"
    );
    describe_counter!(
        metric::CONFIRMED_EVENTS,
        "Final statuses from weakly authenticated webhooks the provider's API confirmed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_control_characters_are_escaped() {
        let cases = [
            ("plain text", "plain text"),
            ("a\nb", "a\\nb"),
            ("a\r\nb", "a\\r\\nb"),
            ("\u{1b}[31mred", "\\u{1b}[31mred"),
            ("a\u{2028}b", "a\\u{2028}b"),
            ("tab\there", "tab\\there"),
            ("ünïcode stays", "ünïcode stays"),
        ];
        for (input, escaped) in cases {
            assert_eq!(escape_line_breaks(input), escaped, "{input:?}");
        }
    }

    #[test]
    fn a_pretty_event_is_one_line_whatever_its_fields_hold() {
        #[derive(Clone, Default)]
        struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("buffer lock").extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(
            fmt::layer()
                .fmt_fields(escaped_fields())
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let name = "nope\n2026-12-02T09:00:00Z  INFO signhook: forged";
            let span = tracing::info_span!("request", path = %name);
            let _entered = span.enter();
            tracing::info!(provider = name, "unknown provider `{name}`");
        });
        let output = String::from_utf8(buffer.0.lock().expect("buffer lock").clone()).expect("UTF-8");
        assert_eq!(output.lines().count(), 1, "{output}");
        assert!(output.contains("nope\\n2026"), "{output}");
    }
}
