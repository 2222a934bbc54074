//! The flow's vocabulary: what a provider said ([`Notification`]), the
//! resource it is about ([`Subject`]), the event handed to the store
//! ([`NewEvent`]) and the store's answer ([`Receipt`]). It sits below both
//! `providers/` and `store/`, so that neither imports the other.

use std::borrow::Cow;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

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
    /// The resource this one was made from (an Adobe Sign agreement signed
    /// from a web form or sent in bulk), when the provider says.
    pub parent: Option<Parent>,
}

/// A link from an agreement to the resource it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    /// `widget`, `megaSign`.
    pub kind: String,
    pub id: String,
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
///
/// Built with [`NewEvent::understood`] or [`NewEvent::quarantined`], which
/// make every value storable: no value a provider sends can fail the insert
/// (and with it the group commit of other requests).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub provider: &'static str,
    /// The dedupe key: the provider's event id ([`event_key`]), or for a body
    /// without one the hash of the body ([`body_key`]).
    pub event_id: String,
    pub event_type: String,
    /// What the event says about its agreement, as parsed on receipt; the
    /// worker applies it from these columns without parsing the body again.
    pub subject: Option<Subject>,
    pub tenant: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// Why this body is kept without being applied: it is stored `dead`
    /// with this as its `last_error`, and applied once a replay parses it.
    pub quarantined: Option<String>,
}

/// Longest id (event id or agreement id), in bytes, stored as it is. Real
/// ids are far shorter (Adobe's are ~44 characters, BoldSign's and FuseSign's
/// UUIDs 36), and keys this long stay well inside a B-tree entry (~2.7 KB).
pub const MAX_ID_BYTES: usize = 256;

/// The one rule for ids, event and agreement ids alike: an id is kept as it
/// is when it has at most [`MAX_ID_BYTES`] bytes and no NUL (which a
/// PostgreSQL text value cannot hold). `Err` says why it does not fit.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.len() > MAX_ID_BYTES {
        return Err(format!("it is {} bytes long, more than {MAX_ID_BYTES}", id.len()));
    }
    if id.contains('\0') {
        return Err("it contains a NUL character".to_owned());
    }
    Ok(())
}

/// The dedupe key of an event id: the id itself when it fits
/// ([`check_id`]), else `sha256:<hex of its bytes>`, which has a fixed size.
/// The original id stays in the stored body, byte for byte.
pub fn event_key(id: &str) -> Cow<'_, str> {
    match check_id(id) {
        Ok(()) => Cow::Borrowed(id),
        Err(_) => Cow::Owned(format!("sha256:{}", hex::encode(Sha256::digest(id.as_bytes())))),
    }
}

/// The dedupe key of a body that has no event id signhook can read: a retry
/// of the same bytes is then stored once.
pub fn body_key(body: &[u8]) -> String {
    format!("body-sha256:{}", hex::encode(Sha256::digest(body)))
}

/// Text as a text column holds it: NUL (the one character PostgreSQL text
/// refuses) replaced by U+FFFD. Rust strings are valid UTF-8 already.
pub fn storable_text(text: String) -> String {
    match text.contains('\0') {
        true => text.replace('\0', "\u{FFFD}"),
        false => text,
    }
}

impl Notification {
    /// This notification with every value storable: text without NUL, the
    /// event id as its dedupe key ([`event_key`]). `Err` when its subject's
    /// id does not fit ([`check_id`]): such an event cannot name an
    /// agreement, so it is kept dead with that reason.
    pub fn into_storable(self) -> Result<Self, String> {
        let subject = match self.subject {
            Some(subject) => {
                check_id(&subject.id).map_err(|why| format!("the {} id cannot be stored: {why}", subject.kind))?;
                if let Some(parent) = &subject.parent {
                    check_id(&parent.id)
                        .map_err(|why| format!("the parent {} id cannot be stored: {why}", parent.kind))?;
                }
                Some(Subject {
                    kind: storable_text(subject.kind),
                    id: subject.id,
                    name: subject.name.map(storable_text),
                    status: subject.status,
                    provider_status: subject.provider_status.map(storable_text),
                    parent: subject.parent,
                })
            }
            None => None,
        };
        Ok(Self {
            event_id: event_key(&self.event_id).into_owned(),
            event_type: storable_text(self.event_type),
            occurred_at: self.occurred_at,
            tenant: self.tenant.map(storable_text),
            subject,
        })
    }
}

impl NewEvent {
    /// A notification the provider module understood, ready to store; kept
    /// [`NewEvent::quarantined`] instead when one of its ids cannot be stored.
    pub fn understood(
        provider: &'static str,
        notification: Notification,
        tenant: Option<String>,
        content_type: Option<String>,
        body: Bytes,
    ) -> Self {
        match notification.into_storable() {
            Ok(notification) => Self {
                provider,
                event_id: notification.event_id,
                event_type: notification.event_type,
                subject: notification.subject,
                tenant: tenant.map(storable_text).or(notification.tenant),
                occurred_at: notification.occurred_at,
                content_type: content_type.map(storable_text),
                body,
                quarantined: None,
            },
            Err(why) => Self::quarantined(provider, why, tenant, content_type, body),
        }
    }

    /// An authenticated body signhook does not understand (not JSON, no
    /// event id, a value that cannot be stored): kept byte for byte, deduped
    /// on the hash of the body, stored `dead` with `why` as its error.
    pub fn quarantined(
        provider: &'static str,
        why: String,
        tenant: Option<String>,
        content_type: Option<String>,
        body: Bytes,
    ) -> Self {
        Self {
            provider,
            event_id: body_key(&body),
            event_type: QUARANTINED_TYPE.to_owned(),
            subject: None,
            tenant: tenant.map(storable_text),
            occurred_at: None,
            content_type: content_type.map(storable_text),
            body,
            quarantined: Some(storable_text(why)),
        }
    }

    /// The same body kept [`NewEvent::quarantined`], for an insert that
    /// failed on one of this event's values.
    pub fn into_quarantined(self, why: String) -> Self {
        Self::quarantined(self.provider, why, self.tenant, self.content_type, self.body)
    }
}

/// `event_type` of a quarantined event until a replay parses it.
pub const QUARANTINED_TYPE: &str = "unparsed";

/// The stored row's id, and whether it was already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub id: i64,
    pub duplicate: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(event_id: &str, subject_id: &str, name: &str) -> Notification {
        Notification {
            event_id: event_id.to_owned(),
            event_type: "Sent\0".to_owned(),
            occurred_at: None,
            tenant: Some("t\0".to_owned()),
            subject: Some(Subject {
                kind: "document".to_owned(),
                id: subject_id.to_owned(),
                name: Some(name.to_owned()),
                status: None,
                provider_status: Some("\0".to_owned()),
                parent: None,
            }),
        }
    }

    #[test]
    fn ids_that_do_not_fit_get_a_fixed_size_key() {
        let at_limit = "a".repeat(MAX_ID_BYTES);
        assert_eq!(event_key(&at_limit), at_limit.as_str());
        assert_eq!(event_key("e-1"), "e-1");
        for id in ["a".repeat(MAX_ID_BYTES + 1), "a".repeat(10 * 1024), "e\0-1".to_owned()] {
            let key = event_key(&id);
            assert!(key.starts_with("sha256:") && key.len() == 71, "{key}");
            assert_eq!(key, event_key(&id), "stable");
        }
        assert_ne!(event_key(&"a".repeat(300)), event_key(&"b".repeat(300)));
        assert_eq!(body_key(b"x"), body_key(b"x"));
        assert_ne!(body_key(b"x"), body_key(b"y"));
    }

    #[test]
    fn storable_notifications_hold_no_nul_and_refuse_unstorable_subject_ids() {
        let stored = notification(&"e".repeat(5000), "d1", "Offer\0letter")
            .into_storable()
            .expect("storable");
        assert!(stored.event_id.starts_with("sha256:"));
        assert_eq!(stored.event_type, "Sent\u{FFFD}");
        assert_eq!(stored.tenant.as_deref(), Some("t\u{FFFD}"));
        let subject = stored.subject.expect("kept");
        assert_eq!(subject.name.as_deref(), Some("Offer\u{FFFD}letter"));
        assert_eq!(subject.provider_status.as_deref(), Some("\u{FFFD}"));
        for id in ["d\0-1".to_owned(), "d".repeat(MAX_ID_BYTES + 1)] {
            let why = notification("e", &id, "n").into_storable().expect_err("not storable");
            assert!(why.starts_with("the document id cannot be stored"), "{why}");
        }
    }

    #[test]
    fn events_with_unstorable_ids_are_kept_quarantined_under_their_body_hash() {
        let body = Bytes::from_static(b"{\"long\": true}");
        let event = NewEvent::understood(
            "boldsign",
            notification("e", &"d".repeat(1000), "n"),
            None,
            None,
            body.clone(),
        );
        assert_eq!(event.event_id, body_key(&body));
        assert_eq!(event.event_type, QUARANTINED_TYPE);
        assert!(event.subject.is_none());
        assert!(event.quarantined.expect("a reason").contains("1000 bytes long"));
        assert_eq!(event.body, body, "byte for byte");
    }
}
