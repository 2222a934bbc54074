//! What a provider's webhook traffic looks like, for `signhook simulate` and
//! tests: realistic notifications built by the provider's own module, the
//! headers that authenticate them (made with the code the server verifies
//! with), and the lifecycles agreements go through. Nothing on the receive
//! path uses this file.

use axum::http::{header::InvalidHeaderValue, HeaderMap};
use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::Value;

use crate::agreement::AgreementStatus;

/// A provider's traffic, as its registry entry describes it.
#[derive(Debug)]
pub struct Traffic {
    /// The notification for one event, shaped like the provider's documented
    /// payload. The strings of the [`Example`] appear verbatim in the body
    /// (the simulator marks them to render bodies from a template) and its
    /// time as [`Traffic::time_format`] writes it.
    pub notification: fn(&Example<'_>) -> Value,
    /// The headers that authenticate `body` with `credential` (what the
    /// server is configured with: a client ID, a signing secret...), as sent
    /// at `now`.
    pub auth_headers: AuthHeaders,
    /// How [`Traffic::notification`] writes [`Example::at`].
    pub time_format: TimeFormat,
    /// What the agreement ids of this provider look like.
    pub id_shape: IdShape,
    /// The lifecycles this provider's agreements go through, one per way an
    /// agreement of this provider can end, each with the normalized status
    /// the server ends up showing. The last step of each is its one terminal
    /// event.
    pub lifecycles: &'static [(AgreementStatus, &'static [Step])],
    /// The credential the simulator sends, as its command line names it.
    pub credential: CredentialFlag,
}

/// See [`Traffic::auth_headers`].
pub type AuthHeaders = fn(credential: &str, body: &[u8], now: DateTime<Utc>) -> Result<HeaderMap, InvalidHeaderValue>;

impl Traffic {
    /// The steps of the lifecycle that ends in `ending`, if this provider has one.
    pub fn lifecycle(&self, ending: AgreementStatus) -> Option<&'static [Step]> {
        self.lifecycles
            .iter()
            .find(|(status, _)| *status == ending)
            .map(|(_, steps)| *steps)
    }
}

/// The command-line flag and environment variable of a provider's credential
/// in `signhook simulate`; the variable is the server's own setting, so the
/// simulator finds what the server was given.
#[derive(Debug)]
pub struct CredentialFlag {
    /// `adobe-client-id`, used as `--adobe-client-id`.
    pub flag: &'static str,
    /// `SIGNHOOK_ADOBE_SIGN_CLIENT_IDS`: the first entry of the list is used.
    pub variable: &'static str,
    /// `a client ID`, for the message when it is missing.
    pub what: &'static str,
    /// The flag's help text.
    pub help: &'static str,
}

/// One event of a lifecycle, in the provider's own words.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    /// The provider's event name.
    pub event_type: &'static str,
    /// The provider's word for the agreement's status the payload carries
    /// after the event; empty when its payloads carry none.
    pub status: &'static str,
    /// A free-text description of the event the payload carries; empty when
    /// its payloads carry none.
    pub description: &'static str,
}

impl Step {
    pub const fn new(event_type: &'static str, status: &'static str, description: &'static str) -> Self {
        Self {
            event_type,
            status,
            description,
        }
    }
}

/// The values one example notification is built from.
#[derive(Debug, Clone, Copy)]
pub struct Example<'a> {
    /// The provider's id of the event: the server's dedupe key.
    pub event_id: &'a str,
    pub agreement_id: &'a str,
    /// [`Step::event_type`].
    pub event_type: &'a str,
    /// [`Step::status`].
    pub status: &'a str,
    /// [`Step::description`].
    pub description: &'a str,
    /// When the event happened, as the provider stamps it.
    pub at: DateTime<Utc>,
    /// When the agreement was created.
    pub created: DateTime<Utc>,
    /// Where the provider delivers (some payloads repeat it).
    pub webhook_url: &'a str,
    /// Text for a free-text field the provider documents (a message, a
    /// description, notes), to make a body of a given size; usually empty.
    pub padding: &'a str,
}

impl<'a> Example<'a> {
    /// The example of `step` for the given event and agreement at `at`: created
    /// an hour before, delivered to a made-up URL, no padding.
    pub fn of(step: &'a Step, event_id: &'a str, agreement_id: &'a str, at: DateTime<Utc>) -> Self {
        Self {
            event_id,
            agreement_id,
            event_type: step.event_type,
            status: step.status,
            description: step.description,
            at,
            created: at - chrono::Duration::hours(1),
            webhook_url: "https://hooks.example.com/webhooks",
            padding: "",
        }
    }
}

/// How a provider writes an event's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// `"2026-11-20T09:41:27Z"` (Adobe).
    Rfc3339Seconds,
    /// `"2020-09-14T03:54:07.2844251Z"`, .NET's seven fractional digits (FuseSign).
    Rfc3339Ticks,
    /// Unix seconds as a JSON number (BoldSign).
    UnixSeconds,
}

impl TimeFormat {
    /// `at` as a JSON value.
    pub fn value(self, at: DateTime<Utc>) -> Value {
        let mut buf = Vec::with_capacity(32);
        self.write_json(&mut buf, &at);
        serde_json::from_slice(&buf).expect("a written time is a JSON token")
    }

    /// `at` as JSON text (with its quotes, for a string). Hand-rolled: the
    /// simulator renders bodies on its load generator's hot path, where
    /// `format!` and strftime parsing showed up in profiles.
    pub fn write_json(self, buf: &mut Vec<u8>, at: &DateTime<Utc>) {
        match self {
            TimeFormat::Rfc3339Seconds => {
                buf.push(b'"');
                push_date_time(buf, at);
                buf.extend_from_slice(b"Z\"");
            }
            TimeFormat::Rfc3339Ticks => {
                buf.push(b'"');
                push_date_time(buf, at);
                buf.push(b'.');
                push_decimal(buf, u64::from(at.timestamp_subsec_nanos() / 100), 7);
                buf.extend_from_slice(b"Z\"");
            }
            TimeFormat::UnixSeconds => push_decimal(buf, u64::try_from(at.timestamp()).unwrap_or_default(), 1),
        }
    }
}

/// What a provider's agreement ids look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdShape {
    /// A UUID (BoldSign documents, FuseSign bundles).
    Uuid,
    /// A fixed prefix and hexadecimal digits (Adobe's `CBJCHBCAABAA…`).
    PrefixedHex(&'static str),
}

/// `value` in decimal, zero-padded to at least `digits` (at most 20).
pub fn push_decimal(buf: &mut Vec<u8>, mut value: u64, digits: usize) {
    let mut reversed = [0u8; 20];
    let mut len = 0;
    while len < reversed.len() && (value > 0 || len < digits) {
        reversed[len] = b'0' + (value % 10) as u8;
        value /= 10;
        len += 1;
    }
    buf.extend(reversed[..len].iter().rev());
}

/// `2026-11-20T09:41:27`.
fn push_date_time(buf: &mut Vec<u8>, at: &DateTime<Utc>) {
    push_decimal(buf, u64::try_from(at.year()).unwrap_or_default(), 4);
    for (separator, value) in [
        (b'-', at.month()),
        (b'-', at.day()),
        (b'T', at.hour()),
        (b':', at.minute()),
        (b':', at.second()),
    ] {
        buf.push(separator);
        push_decimal(buf, u64::from(value), 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Config,
        providers::{test_support::example_time as at, Providers},
    };

    #[test]
    fn times_are_written_as_the_providers_write_them() {
        assert_eq!(TimeFormat::Rfc3339Seconds.value(at()), "2026-11-20T09:41:27Z");
        assert_eq!(TimeFormat::Rfc3339Ticks.value(at()), "2026-11-20T09:41:27.1234567Z");
        assert_eq!(TimeFormat::UnixSeconds.value(at()), at().timestamp());
        let mut buf = Vec::new();
        push_decimal(&mut buf, 0, 1);
        push_decimal(&mut buf, 42, 4);
        push_decimal(&mut buf, u64::MAX, 1);
        assert_eq!(String::from_utf8(buf).unwrap(), format!("0{:04}{}", 42, u64::MAX));
    }

    /// Every step of every lifecycle, built by its provider and signed with
    /// its credential, is accepted and parsed by the same provider into the
    /// event it is: only the last step is terminal, in the lifecycle's status.
    #[test]
    fn every_lifecycle_is_understood_by_its_own_provider() {
        // Every provider configured with the credential the simulator finds
        // under the same variable.
        const CREDENTIAL: &str = "credential-1";
        let config = Config::from_vars(
            Providers::registered()
                .iter()
                .map(|registration| (registration.traffic.credential.variable, CREDENTIAL)),
        )
        .expect("test configuration is valid");
        let providers = Providers::from_config(&config).expect("providers build");
        for registration in Providers::registered() {
            let provider = providers
                .get(registration.name)
                .expect("registered providers are built");
            let traffic = &registration.traffic;
            assert!(!traffic.lifecycles.is_empty(), "{}", registration.name);
            for (ending, steps) in traffic.lifecycles {
                assert!(
                    ending.is_terminal() && steps.len() >= 2,
                    "{} {ending:?}",
                    registration.name
                );
                for (index, step) in steps.iter().enumerate() {
                    let example = Example::of(step, "e-1", "a-1", at());
                    let body = (traffic.notification)(&example).to_string();
                    let headers = (traffic.auth_headers)(CREDENTIAL, body.as_bytes(), Utc::now()).expect("valid");
                    let what = format!("{} {ending:?} {}", registration.name, step.event_type);
                    assert!(
                        provider.authenticate(&headers, body.as_bytes(), Utc::now()).is_ok(),
                        "{what}"
                    );
                    let notification = provider.parse(body.as_bytes()).expect(&what);
                    assert_eq!(notification.event_id, "e-1", "{what}");
                    assert_eq!(notification.event_type, step.event_type, "{what}");
                    assert_eq!(notification.occurred_at.map(|t| t.timestamp()), Some(at().timestamp()));
                    let subject = notification.subject.expect(&what);
                    assert_eq!(subject.id, "a-1", "{what}");
                    match index == steps.len() - 1 {
                        true => assert_eq!(subject.status, Some(*ending), "{what}"),
                        false => assert!(!subject.status.is_some_and(AgreementStatus::is_terminal), "{what}"),
                    }
                }
            }
        }
    }
}
