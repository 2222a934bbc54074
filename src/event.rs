//! The flow's vocabulary: what a provider said ([`Notification`]), the
//! resource it is about ([`Subject`]), the event handed to the store
//! ([`NewEvent`]) and the store's answer ([`Receipt`]). It sits below both
//! `providers/` and `store/`, so that neither imports the other.

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::agreement::{AgreementStatus, Change, Source};

/// What one notification says, extracted from the raw body.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The provider's id for this event: the dedupe key.
    pub event_id: String,
    pub event_type: String,
    /// The provider's time of the event, when it states one.
    pub occurred_at: Option<DateTime<Utc>>,
    /// The tenant / account / environment named by the payload.
    pub tenant: Option<String>,
    /// The agreement-like resource the event is about, if any (a BoldSign
    /// "Verification" or template event has none).
    pub subject: Option<Subject>,
}

/// The resource a notification (or a poll) is about and what it says of its
/// status.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    /// `agreement`, `widget`, `megaSign`, `document`, `bundle`...
    pub kind: String,
    pub id: String,
    pub name: Option<String>,
    /// The normalized status this event implies; `None` for events that say
    /// nothing about status (they are still recorded in history).
    pub status: Option<AgreementStatus>,
    /// The provider's own word for the status, kept for operators.
    pub provider_status: Option<String>,
}

impl Subject {
    /// What this subject, seen by `source` at `at`, changes in its agreement
    /// (its final status needing no confirmation: see [`Change::confirm_final`]).
    pub fn change(&self, source: Source, at: DateTime<Utc>) -> Change<'_> {
        Change {
            source,
            at,
            status: self.status,
            provider_status: self.provider_status.as_deref(),
            name: self.name.as_deref(),
            confirm_final: false,
        }
    }
}

/// A notification to store, owned so it can cross to a writer task.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub provider: &'static str,
    pub event_id: String,
    pub event_type: String,
    /// What the event says about its agreement, as parsed on receipt; the
    /// worker applies it from these columns without parsing the body again.
    pub subject: Option<Subject>,
    pub tenant: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// The stored row's id, and whether it was already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub id: i64,
    pub duplicate: bool,
}
