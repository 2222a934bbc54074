//! Notification bodies shaped like each provider's documented payloads, and
//! the lifecycles the simulator takes agreements through.
//!
//! A body is rendered from a template built once per provider and run: static
//! JSON text with slots for the few values that change per event, so one body
//! costs a buffer and a handful of writes rather than a JSON serialization.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use serde_json::{json, Value};

use crate::providers::{adobe_sign, boldsign, fusesign};

/// The providers the simulator can play.
#[allow(clippy::enum_variant_names)] // their names all end in "Sign"
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    AdobeSign,
    BoldSign,
    FuseSign,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::AdobeSign, Provider::BoldSign, Provider::FuseSign];

    /// The path name the server uses: `/webhooks/{name}`, `/api/agreements/{name}/…`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::AdobeSign => adobe_sign::NAME,
            Provider::BoldSign => boldsign::NAME,
            Provider::FuseSign => fusesign::NAME,
        }
    }

    /// How this provider's agreements can end. FuseSign bundles do not expire.
    pub fn endings(self) -> &'static [Ending] {
        use Ending::*;
        match self {
            Provider::AdobeSign | Provider::BoldSign => &[Completed, Declined, Cancelled, Expired],
            Provider::FuseSign => &[Completed, Declined, Cancelled],
        }
    }

    /// The events of one agreement that ends in `ending` (one of
    /// [`Provider::endings`]), in the order they happen; the last is terminal.
    pub fn lifecycle(self, ending: Ending) -> &'static [Step] {
        use Ending::*;
        debug_assert!(self.endings().contains(&ending), "{self:?} has no {ending:?} ending");
        match self {
            Provider::AdobeSign => match ending {
                Completed => &[
                    adobe::CREATED,
                    adobe::SIGNER_DONE,
                    adobe::SIGNER_DONE,
                    adobe::WORKFLOW_COMPLETED,
                ],
                Declined => &[adobe::CREATED, adobe::SIGNER_DONE, adobe::REJECTED],
                Cancelled => &[adobe::CREATED, adobe::RECALLED],
                Expired => &[adobe::CREATED, adobe::SIGNER_DONE, adobe::EXPIRED],
            },
            Provider::BoldSign => match ending {
                Completed => &[bold::SENT, bold::VIEWED, bold::SIGNED, bold::COMPLETED],
                Declined => &[bold::SENT, bold::VIEWED, bold::DECLINED],
                Cancelled => &[bold::SENT, bold::VIEWED, bold::REVOKED],
                Expired => &[bold::SENT, bold::EXPIRED],
            },
            Provider::FuseSign => match ending {
                // No expiry (see `endings`): never asked for.
                Completed | Expired => &[fuse::CREATED, fuse::SIGNED, fuse::FINALISED],
                Declined => &[fuse::CREATED, fuse::REJECTED],
                Cancelled => &[fuse::CREATED, fuse::RETRACTED],
            },
        }
    }
}

/// Which provider plays agreement number `agreement` of a run, and how it
/// ends: providers take turns, and each cycles through its endings, so every
/// combination comes up in a run of a dozen agreements.
pub fn assign(providers: &[Provider], agreement: u64) -> (Provider, Ending) {
    let turns = providers.len() as u64;
    let provider = providers[(agreement % turns) as usize];
    let endings = provider.endings();
    let ending = endings[((agreement / turns) % endings.len() as u64) as usize];
    (provider, ending)
}

/// The terminal status an agreement's lifecycle ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ending {
    Completed,
    Declined,
    Cancelled,
    Expired,
}

impl Ending {
    /// The normalized status the server should end up showing.
    pub fn status(self) -> &'static str {
        match self {
            Ending::Completed => "completed",
            Ending::Declined => "declined",
            Ending::Cancelled => "cancelled",
            Ending::Expired => "expired",
        }
    }
}

/// One event of a lifecycle, in the provider's own words.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    /// Adobe `event`, BoldSign `event.eventType`, FuseSign `EventType`.
    pub event_type: &'static str,
    /// Adobe `agreement.status`, BoldSign `data.status` (unused by FuseSign).
    pub status: &'static str,
    /// FuseSign's `ActionDescription` (unused by the others).
    pub description: &'static str,
}

const fn step(event_type: &'static str, status: &'static str, description: &'static str) -> Step {
    Step {
        event_type,
        status,
        description,
    }
}

mod adobe {
    use super::{step, Step};
    pub const CREATED: Step = step("AGREEMENT_CREATED", "OUT_FOR_SIGNATURE", "");
    /// One signer of several has signed: the agreement is still out for signature.
    pub const SIGNER_DONE: Step = step("AGREEMENT_ACTION_COMPLETED", "OUT_FOR_SIGNATURE", "");
    pub const WORKFLOW_COMPLETED: Step = step("AGREEMENT_WORKFLOW_COMPLETED", "SIGNED", "");
    /// Adobe shows a rejected agreement as CANCELLED; the event says declined.
    pub const REJECTED: Step = step("AGREEMENT_REJECTED", "CANCELLED", "");
    pub const RECALLED: Step = step("AGREEMENT_RECALLED", "CANCELLED", "");
    pub const EXPIRED: Step = step("AGREEMENT_EXPIRED", "EXPIRED", "");
}

mod bold {
    use super::{step, Step};
    pub const SENT: Step = step("Sent", "InProgress", "");
    pub const VIEWED: Step = step("Viewed", "InProgress", "");
    pub const SIGNED: Step = step("Signed", "InProgress", "");
    pub const COMPLETED: Step = step("Completed", "Completed", "");
    pub const DECLINED: Step = step("Declined", "Declined", "");
    pub const REVOKED: Step = step("Revoked", "Revoked", "");
    pub const EXPIRED: Step = step("Expired", "Expired", "");
}

mod fuse {
    use super::{step, Step};
    pub const CREATED: Step = step("BundleCreated", "", "Bundle Created");
    pub const SIGNED: Step = step("CustomerDocumentSigned", "", "Document Signed: Engagement letter");
    pub const FINALISED: Step = step("BundleFinalised", "", "Bundle Finalised");
    pub const REJECTED: Step = step("CustomerBundleRejected", "", "Bundle Rejected by customer");
    pub const RETRACTED: Step = step("BundleRetracted", "", "Bundle Retracted");
}

/// What a body needs that changes from one event to the next.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub provider: Provider,
    /// Sequence number of the event within the run; unique per run.
    pub seq: u64,
    /// Sequence number of its agreement within the run.
    pub agreement: u64,
    pub step: &'static Step,
    /// When the event happened, as the provider stamps it.
    pub at: DateTime<Utc>,
}

/// Ids look like the providers' (UUIDs; Adobe's `CBJCHBCAABAA…`) and are
/// unique per run: a random run id plus a bijective scramble of the sequence
/// number, so reruns never collide and ids do not sort by sending order.
#[derive(Debug, Clone, Copy)]
pub struct Ids {
    run: u32,
}

/// Tags that keep event ids and agreement ids of one run apart.
const EVENT_TAG: u32 = 0x5e17_0e7e;
const DOCUMENT_TAG: u32 = 0xd0c0_0000;
const BUNDLE_TAG: u32 = 0xb0d1_e000;

impl Ids {
    pub fn new(run: u32) -> Self {
        Self { run }
    }

    pub fn run(&self) -> u32 {
        self.run
    }

    fn write_uuid(&self, buf: &mut Vec<u8>, seq: u64, tag: u32) {
        let mixed = scramble(seq);
        let run = u64::from(self.run);
        push_hex(buf, mixed >> 32, 8);
        buf.push(b'-');
        push_hex(buf, mixed >> 16, 4);
        buf.push(b'-');
        push_hex(buf, mixed, 4);
        buf.push(b'-');
        push_hex(buf, run >> 16, 4);
        buf.push(b'-');
        push_hex(buf, run, 4);
        push_hex(buf, u64::from(tag), 8);
    }

    pub fn write_event_id(&self, buf: &mut Vec<u8>, seq: u64) {
        self.write_uuid(buf, seq, EVENT_TAG);
    }

    pub fn write_agreement_id(&self, buf: &mut Vec<u8>, provider: Provider, seq: u64) {
        match provider {
            Provider::AdobeSign => {
                buf.extend_from_slice(b"CBJCHBCAABAA");
                push_hex(buf, u64::from(self.run), 8);
                push_hex(buf, scramble(seq), 16);
            }
            Provider::BoldSign => self.write_uuid(buf, seq, DOCUMENT_TAG),
            Provider::FuseSign => self.write_uuid(buf, seq, BUNDLE_TAG),
        }
    }

    pub fn agreement_id(&self, provider: Provider, seq: u64) -> String {
        let mut buf = Vec::with_capacity(48);
        self.write_agreement_id(&mut buf, provider, seq);
        String::from_utf8(buf).expect("ids are ASCII")
    }

    #[cfg(test)]
    pub fn event_id(&self, seq: u64) -> String {
        let mut buf = Vec::with_capacity(40);
        self.write_event_id(&mut buf, seq);
        String::from_utf8(buf).expect("ids are ASCII")
    }
}

/// A bijection on u64 (xor-shifts and multiplications by odd constants are
/// each invertible), so distinct sequence numbers give distinct ids.
fn scramble(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The per-event values a template leaves open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    EventId,
    AgreementId,
    EventType,
    Status,
    Description,
    /// `2026-11-20T09:41:27Z` (Adobe).
    Rfc3339,
    /// `2020-09-14T03:54:07.2844251Z`, .NET's seven fractional digits (FuseSign).
    Rfc3339Ticks,
    /// Unix seconds as a JSON number (BoldSign); the template's quotes go.
    UnixSeconds,
}

impl Slot {
    fn named(name: &str) -> Self {
        match name {
            "event_id" => Slot::EventId,
            "agreement_id" => Slot::AgreementId,
            "event_type" => Slot::EventType,
            "status" => Slot::Status,
            "description" => Slot::Description,
            "rfc3339" => Slot::Rfc3339,
            "rfc3339_ticks" => Slot::Rfc3339Ticks,
            "unix_seconds" => Slot::UnixSeconds,
            other => panic!("template slot `{other}` is not one of Slot's names"),
        }
    }
}

#[derive(Debug)]
enum Part {
    Text(Box<[u8]>),
    Slot(Slot),
}

/// One provider's body as static text and slots.
#[derive(Debug)]
struct Template {
    parts: Vec<Part>,
    /// Size of a rendered body, for the buffer's capacity.
    size_hint: usize,
}

impl Template {
    /// Splits JSON text at `"@@name@@"` markers; a number slot also takes the
    /// quotes around its marker.
    fn parse(text: &str) -> Self {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("@@") {
            let after = &rest[start + 2..];
            let end = after.find("@@").expect("every slot marker is closed");
            let slot = Slot::named(&after[..end]);
            let mut before = &rest[..start];
            rest = &after[end + 2..];
            if slot == Slot::UnixSeconds {
                before = before.strip_suffix('"').expect("a number slot is a quoted marker");
                rest = rest.strip_prefix('"').expect("a number slot is a quoted marker");
            }
            parts.push(Part::Text(before.as_bytes().into()));
            parts.push(Part::Slot(slot));
        }
        parts.push(Part::Text(rest.as_bytes().into()));
        Self {
            parts,
            size_hint: text.len() + 64,
        }
    }

    fn render(&self, ids: &Ids, event: &Event, buf: &mut Vec<u8>) {
        buf.reserve(self.size_hint);
        for part in &self.parts {
            match part {
                Part::Text(text) => buf.extend_from_slice(text),
                Part::Slot(Slot::EventId) => ids.write_event_id(buf, event.seq),
                Part::Slot(Slot::AgreementId) => ids.write_agreement_id(buf, event.provider, event.agreement),
                Part::Slot(Slot::EventType) => buf.extend_from_slice(event.step.event_type.as_bytes()),
                Part::Slot(Slot::Status) => buf.extend_from_slice(event.step.status.as_bytes()),
                Part::Slot(Slot::Description) => buf.extend_from_slice(event.step.description.as_bytes()),
                Part::Slot(Slot::Rfc3339) => {
                    push_date_time(buf, &event.at);
                    buf.push(b'Z');
                }
                Part::Slot(Slot::Rfc3339Ticks) => {
                    push_date_time(buf, &event.at);
                    buf.push(b'.');
                    push_decimal(buf, u64::from(event.at.timestamp_subsec_nanos() / 100), 7);
                    buf.push(b'Z');
                }
                Part::Slot(Slot::UnixSeconds) => {
                    push_decimal(buf, u64::try_from(event.at.timestamp()).unwrap_or_default(), 1)
                }
            }
        }
    }
}

// Hand-rolled formatting: bodies are rendered on the load generator's hot
// path, where `format!` and strftime parsing showed up in profiles.

/// The low `digits` hexadecimal digits of `value`.
fn push_hex(buf: &mut Vec<u8>, value: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..digits).rev() {
        buf.push(HEX[((value >> (shift * 4)) & 0xf) as usize]);
    }
}

/// `value` in decimal, zero-padded to at least `digits` (at most 20).
fn push_decimal(buf: &mut Vec<u8>, mut value: u64, digits: usize) {
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

/// Renders bodies for every provider, padded to about the requested size.
#[derive(Debug)]
pub struct Payloads {
    ids: Ids,
    templates: [Template; 3],
}

impl Payloads {
    /// `origin` is when the simulated agreements were created; `webhook_url`
    /// is where the providers were told to deliver (Adobe repeats it).
    pub fn new(ids: Ids, body_bytes: usize, origin: DateTime<Utc>, webhook_url: &str) -> Self {
        let templates = Provider::ALL.map(|provider| {
            let sample = Event {
                provider,
                seq: 0,
                agreement: 0,
                step: &provider.lifecycle(Ending::Completed)[0],
                at: origin,
            };
            let bare = Template::parse(&template_json(provider, ids, origin, webhook_url, ""));
            let mut buf = Vec::new();
            bare.render(&ids, &sample, &mut buf);
            let padding = filler(body_bytes.saturating_sub(buf.len()));
            Template::parse(&template_json(provider, ids, origin, webhook_url, &padding))
        });
        Self { ids, templates }
    }

    pub fn ids(&self) -> &Ids {
        &self.ids
    }

    /// A fresh buffer holding the event's body.
    pub fn render(&self, event: &Event) -> Vec<u8> {
        let template = &self.templates[event.provider as usize];
        let mut buf = Vec::with_capacity(template.size_hint);
        template.render(&self.ids, event, &mut buf);
        buf
    }
}

/// Readable text of exactly `len` bytes that needs no JSON escaping.
fn filler(len: usize) -> String {
    const TEXT: &str = "Please review and sign the attached documents at your earliest convenience. ";
    TEXT.chars().cycle().take(len).collect()
}

/// The provider's payload with slot markers; `padding` goes into a free-text
/// field the provider documents (agreement message, document description,
/// history action notes).
fn template_json(provider: Provider, ids: Ids, origin: DateTime<Utc>, webhook_url: &str, padding: &str) -> String {
    let value: Value = match provider {
        Provider::AdobeSign => json!({
            "webhookId": "CBJCHBCAABAAsignhookSimulateWebhookId",
            "webhookName": "signhook simulate",
            "webhookNotificationId": "@@event_id@@",
            "webhookUrlInfo": { "url": webhook_url },
            "webhookScope": "ACCOUNT",
            "webhookNotificationApplicableUsers": [{
                "id": "CBJCHBCAABAAsenderUserId",
                "email": "sender@example.com",
                "role": "SENDER",
                "payloadApplicable": true,
            }],
            "event": "@@event_type@@",
            "eventDate": "@@rfc3339@@",
            "eventResourceType": "agreement",
            "eventResourceParentType": "",
            "eventResourceParentId": "",
            "participantUserEmail": "signer@example.com",
            "actingUserEmail": "signer@example.com",
            "actingUserIpAddress": "203.0.113.10",
            "initiatingUserEmail": "sender@example.com",
            "agreement": {
                "id": "@@agreement_id@@",
                "name": "Mutual NDA",
                "signatureType": "ESIGN",
                "status": "@@status@@",
                "createdDate": origin.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "locale": "en_US",
                "message": padding,
                "senderEmail": "sender@example.com",
                "documentVisibilityEnabled": false,
                "participantSetsInfo": { "participantSets": [{
                    "memberInfos": [{
                        "id": "CBJCHBCAABAAmemberId1",
                        "email": "signer@example.com",
                        "name": "Sam Signer",
                        "status": "ACTIVE",
                        "securityOption": { "authenticationMethod": "NONE" },
                    }],
                    "order": 1,
                    "role": "SIGNER",
                    "id": "CBJCHBCAABAAparticipantSet1",
                }]},
            },
        }),
        Provider::BoldSign => json!({
            "event": {
                "id": "@@event_id@@",
                "created": "@@unix_seconds@@",
                "eventType": "@@event_type@@",
                "clientId": null,
                "environment": "Live",
            },
            "data": {
                "object": "document",
                "documentId": "@@agreement_id@@",
                "messageTitle": "Offer letter",
                "documentDescription": padding,
                "status": "@@status@@",
                "senderDetail": { "name": "HR", "emailAddress": "hr@example.com" },
                "signerDetails": [{
                    "signerName": "Alex Signer",
                    "signerRole": "",
                    "signerEmail": "alex@example.com",
                    "status": "NotCompleted",
                    "enableAccessCode": false,
                    "isAuthenticationFailed": null,
                    "enableEmailOTP": false,
                    "isDeliveryFailed": false,
                    "isViewed": false,
                    "order": 1,
                    "signerType": "Signer",
                }],
                "ccDetails": [],
                "onBehalfOf": null,
                "createdDate": origin.timestamp(),
                "expiryDate": (origin + Duration::days(30)).timestamp(),
                "enableSigningOrder": false,
                "disableEmails": false,
            },
            "document": null,
        }),
        Provider::FuseSign => {
            let notes = match padding {
                "" => "@@description@@".to_owned(),
                padding => format!("@@description@@. {padding}"),
            };
            json!({
                "WebhookId": format!("{:08x}-f05e-4b1d-8e00-00000000a0b0", ids.run()),
                "BundleId": "@@agreement_id@@",
                "EventType": "@@event_type@@",
                "BundleHistoryEvent": {
                    "Id": "@@event_id@@",
                    "DateTime": "@@rfc3339_ticks@@",
                    "BundleId": "@@agreement_id@@",
                    "DocumentId": "5ec03200-1db1-40ec-a553-95b55e30bacc",
                    "CustomerId": "a960f86a-e9ba-49c8-ae1c-646a4ec76ac5",
                    "Action": "@@event_type@@",
                    "ActionNotes": notes,
                    "IP": "203.0.113.10",
                },
                "ActionDescription": "@@description@@",
                "TenantId": "7ffcbae4-9f50-4136-8de6-edb6f796dc3f",
            })
        }
    };
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-20T09:41:27.123456789Z")
            .expect("valid test time")
            .with_timezone(&Utc)
    }

    fn render(provider: Provider, step: &'static Step, body_bytes: usize) -> (Vec<u8>, Value) {
        let payloads = Payloads::new(Ids::new(0xabcd_0123), body_bytes, at(), "https://hooks.example.com/x");
        let body = payloads.render(&Event {
            provider,
            seq: 7,
            agreement: 3,
            step,
            at: at(),
        });
        let value = serde_json::from_slice(&body).expect("the body is JSON");
        (body, value)
    }

    #[test]
    fn bodies_carry_the_fields_each_provider_reads() {
        let ids = Ids::new(0xabcd_0123);
        let (_, adobe) = render(Provider::AdobeSign, &adobe::WORKFLOW_COMPLETED, 0);
        assert_eq!(adobe["webhookNotificationId"], ids.event_id(7));
        assert_eq!(adobe["event"], "AGREEMENT_WORKFLOW_COMPLETED");
        assert_eq!(adobe["eventDate"], "2026-11-20T09:41:27Z");
        assert_eq!(adobe["agreement"]["id"], ids.agreement_id(Provider::AdobeSign, 3));
        assert_eq!(adobe["agreement"]["status"], "SIGNED");

        let (_, bold) = render(Provider::BoldSign, &bold::DECLINED, 0);
        assert_eq!(bold["event"]["id"], ids.event_id(7));
        assert_eq!(bold["event"]["created"], at().timestamp());
        assert_eq!(bold["event"]["eventType"], "Declined");
        assert_eq!(bold["data"]["documentId"], ids.agreement_id(Provider::BoldSign, 3));
        assert_eq!(bold["data"]["status"], "Declined");

        let (_, fuse) = render(Provider::FuseSign, &fuse::SIGNED, 0);
        assert_eq!(fuse["BundleHistoryEvent"]["Id"], ids.event_id(7));
        assert_eq!(fuse["BundleHistoryEvent"]["DateTime"], "2026-11-20T09:41:27.1234567Z");
        assert_eq!(fuse["BundleId"], ids.agreement_id(Provider::FuseSign, 3));
        assert_eq!(fuse["EventType"], "CustomerDocumentSigned");
        assert_eq!(fuse["ActionDescription"], "Document Signed: Engagement letter");
    }

    #[test]
    fn bodies_are_padded_to_about_the_requested_size() {
        for provider in Provider::ALL {
            for ending in provider.endings() {
                for step in provider.lifecycle(*ending) {
                    let (natural, _) = render(provider, step, 0);
                    assert!(natural.len() < 2048, "{provider:?} {step:?}: {}", natural.len());
                    let (body, _) = render(provider, step, 2048);
                    assert!(body.len().abs_diff(2048) < 80, "{provider:?} {step:?}: {}", body.len());
                    let (big, _) = render(provider, step, 64 * 1024);
                    assert!(big.len().abs_diff(64 * 1024) < 80, "{provider:?}: {}", big.len());
                }
            }
        }
    }

    #[test]
    fn hand_rolled_formatting_matches_the_standard_one() {
        let mut buf = Vec::new();
        push_hex(&mut buf, 0xabc, 8);
        push_decimal(&mut buf, 0, 1);
        push_decimal(&mut buf, 42, 4);
        push_decimal(&mut buf, u64::MAX, 1);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            format!("{:08x}0{:04}{}", 0xabc, 42, u64::MAX)
        );
        let mut buf = Vec::new();
        push_date_time(&mut buf, &at());
        assert_eq!(String::from_utf8(buf).unwrap(), "2026-11-20T09:41:27");
    }

    #[test]
    fn ids_are_unique_per_run_and_sequence() {
        let mut seen = std::collections::HashSet::new();
        for run in [1, 2] {
            let ids = Ids::new(run);
            for seq in 0..1000 {
                assert!(seen.insert(ids.event_id(seq)));
                for provider in Provider::ALL {
                    assert!(seen.insert(ids.agreement_id(provider, seq)));
                }
            }
        }
        assert_eq!(Ids::new(9).event_id(5).len(), 36, "UUID-shaped");
    }

    #[test]
    fn every_lifecycle_ends_in_one_terminal_event() {
        for provider in Provider::ALL {
            for ending in provider.endings() {
                let steps = provider.lifecycle(*ending);
                assert!(steps.len() >= 2, "{provider:?} {ending:?}");
                let terminal = |step: &Step| {
                    matches!(
                        step.event_type,
                        "AGREEMENT_WORKFLOW_COMPLETED"
                            | "AGREEMENT_REJECTED"
                            | "AGREEMENT_RECALLED"
                            | "AGREEMENT_EXPIRED"
                            | "Completed"
                            | "Declined"
                            | "Revoked"
                            | "Expired"
                            | "BundleFinalised"
                            | "CustomerBundleRejected"
                            | "BundleRetracted"
                    )
                };
                assert!(terminal(&steps[steps.len() - 1]));
                assert!(!steps[..steps.len() - 1].iter().any(terminal));
            }
        }
    }
}
