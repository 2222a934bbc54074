//! Notification bodies for the simulator, rendered fast from each provider's
//! own notification builder, and which agreement of a run goes which way.
//!
//! A body is rendered from a template made once per provider and run: the
//! provider's notification (`providers::traffic`) built with markers in place
//! of the values that change per event, kept as static JSON text with slots,
//! so one body costs a buffer and a handful of writes rather than a JSON
//! serialization.

use chrono::{DateTime, Utc};
use reqwest::Url;

use crate::{
    agreement::AgreementStatus,
    providers::{
        traffic::{Example, IdShape, Step, TimeFormat},
        Registration,
    },
};

/// Which provider (an index into the run's providers) plays agreement number
/// `agreement` of a run, how it ends and the steps it goes through:
/// providers take turns, and each cycles through its lifecycles, so every
/// combination comes up in a run of a dozen agreements.
pub fn assign(providers: &[Registration], agreement: u64) -> (usize, AgreementStatus, &'static [Step]) {
    let turns = providers.len() as u64;
    let provider = (agreement % turns) as usize;
    let lifecycles = providers[provider].traffic.lifecycles;
    let (ending, steps) = lifecycles[((agreement / turns) % lifecycles.len() as u64) as usize];
    (provider, ending, steps)
}

/// What a body needs that changes from one event to the next.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// Index of the provider in the run's providers.
    pub provider: usize,
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

/// Tags that keep event ids and agreement ids of one run apart; an
/// agreement's tag also holds its provider's index in the run.
const EVENT_TAG: u32 = 0x5e17_0e7e;
const AGREEMENT_TAG: u32 = 0xa9e0_0000;

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

    /// Agreement `seq` of the provider at `provider` in the run, shaped as
    /// that provider's ids are.
    pub fn write_agreement_id(&self, buf: &mut Vec<u8>, shape: IdShape, provider: usize, seq: u64) {
        match shape {
            IdShape::PrefixedHex(prefix) => {
                buf.extend_from_slice(prefix.as_bytes());
                push_hex(buf, u64::from(self.run), 8);
                push_hex(buf, provider as u64, 2);
                push_hex(buf, scramble(seq), 16);
            }
            IdShape::Uuid => self.write_uuid(buf, seq, AGREEMENT_TAG | provider as u32),
        }
    }

    pub fn agreement_id(&self, shape: IdShape, provider: usize, seq: u64) -> String {
        let mut buf = Vec::with_capacity(48);
        self.write_agreement_id(&mut buf, shape, provider, seq);
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
    /// The event's time as a JSON token, in the provider's [`TimeFormat`].
    Time,
}

impl Slot {
    const ALL: [Slot; 6] = [
        Slot::EventId,
        Slot::AgreementId,
        Slot::EventType,
        Slot::Status,
        Slot::Description,
        Slot::Time,
    ];

    /// The text that stands for the slot in a template.
    fn marker(self) -> &'static str {
        match self {
            Slot::EventId => "@@event_id@@",
            Slot::AgreementId => "@@agreement_id@@",
            Slot::EventType => "@@event_type@@",
            Slot::Status => "@@status@@",
            Slot::Description => "@@description@@",
            Slot::Time => "@@time@@",
        }
    }

    fn named(marker: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|slot| slot.marker() == marker)
            .unwrap_or_else(|| panic!("template marker `{marker}` is not one of Slot's"))
    }
}

/// The time a template is built with, recognizable in the built text: no
/// run's events happen in 2001.
fn time_marker() -> DateTime<Utc> {
    DateTime::from_timestamp(1_000_000_000, 123_456_700).expect("a valid instant")
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
    /// Which provider of the run, and how it writes ids and times.
    provider: usize,
    id_shape: IdShape,
    time_format: TimeFormat,
}

impl Template {
    /// The notification of the provider at `provider` in the run, built by
    /// the provider with markers for the per-event values.
    fn new(
        registration: &Registration,
        provider: usize,
        created: DateTime<Utc>,
        webhook_url: &str,
        padding: &str,
    ) -> Self {
        let traffic = &registration.traffic;
        let example = Example {
            event_id: Slot::EventId.marker(),
            agreement_id: Slot::AgreementId.marker(),
            event_type: Slot::EventType.marker(),
            status: Slot::Status.marker(),
            description: Slot::Description.marker(),
            at: time_marker(),
            created,
            webhook_url,
            padding,
        };
        let text = (traffic.notification)(&example).to_string();
        let mut time = Vec::new();
        traffic.time_format.write_json(&mut time, &time_marker());
        let time = std::str::from_utf8(&time).expect("a written time is ASCII");
        let text = text.replace(time, Slot::Time.marker());
        Self {
            parts: Self::parts(&text),
            size_hint: text.len() + 64,
            provider,
            id_shape: traffic.id_shape,
            time_format: traffic.time_format,
        }
    }

    /// Splits text at `@@name@@` markers.
    fn parts(text: &str) -> Vec<Part> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("@@") {
            let end = rest[start + 2..].find("@@").expect("every slot marker is closed") + start + 4;
            parts.push(Part::Text(rest.as_bytes()[..start].into()));
            parts.push(Part::Slot(Slot::named(&rest[start..end])));
            rest = &rest[end..];
        }
        parts.push(Part::Text(rest.as_bytes().into()));
        parts
    }

    fn render(&self, ids: &Ids, event: &Event, buf: &mut Vec<u8>) {
        buf.reserve(self.size_hint);
        for part in &self.parts {
            match part {
                Part::Text(text) => buf.extend_from_slice(text),
                Part::Slot(Slot::EventId) => ids.write_event_id(buf, event.seq),
                Part::Slot(Slot::AgreementId) => {
                    ids.write_agreement_id(buf, self.id_shape, self.provider, event.agreement)
                }
                Part::Slot(Slot::EventType) => buf.extend_from_slice(event.step.event_type.as_bytes()),
                Part::Slot(Slot::Status) => buf.extend_from_slice(event.step.status.as_bytes()),
                Part::Slot(Slot::Description) => buf.extend_from_slice(event.step.description.as_bytes()),
                Part::Slot(Slot::Time) => self.time_format.write_json(buf, &event.at),
            }
        }
    }
}

/// The low `digits` hexadecimal digits of `value`. Hand-rolled: ids are
/// written on the load generator's hot path, where `format!` showed up in
/// profiles.
fn push_hex(buf: &mut Vec<u8>, value: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..digits).rev() {
        buf.push(HEX[((value >> (shift * 4)) & 0xf) as usize]);
    }
}

/// Renders bodies for every provider of a run, padded to about the
/// requested size.
#[derive(Debug)]
pub struct Payloads {
    ids: Ids,
    /// One per provider of the run, in the run's order.
    templates: Vec<Template>,
}

impl Payloads {
    /// `origin` is when the simulated agreements were created; `endpoints`
    /// are where each of `providers` was told to deliver (some payloads
    /// repeat it).
    pub fn new(
        ids: Ids,
        body_bytes: usize,
        origin: DateTime<Utc>,
        providers: &[Registration],
        endpoints: &[Url],
    ) -> Self {
        let templates = providers
            .iter()
            .zip(endpoints)
            .enumerate()
            .map(|(index, (registration, endpoint))| {
                let bare = Template::new(registration, index, origin, endpoint.as_str(), "");
                let (_, steps) = registration.traffic.lifecycles[0];
                let sample = Event {
                    provider: index,
                    seq: 0,
                    agreement: 0,
                    step: &steps[0],
                    at: origin,
                };
                let mut buf = Vec::new();
                bare.render(&ids, &sample, &mut buf);
                let padding = filler(body_bytes.saturating_sub(buf.len()));
                Template::new(registration, index, origin, endpoint.as_str(), &padding)
            })
            .collect();
        Self { ids, templates }
    }

    #[cfg(test)]
    fn ids(&self) -> &Ids {
        &self.ids
    }

    /// The id of agreement `seq` of the provider at `provider` in the run.
    pub fn agreement_id(&self, provider: usize, seq: u64) -> String {
        self.ids.agreement_id(self.templates[provider].id_shape, provider, seq)
    }

    /// A fresh buffer holding the event's body.
    pub fn render(&self, event: &Event) -> Vec<u8> {
        let template = &self.templates[event.provider];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Config,
        providers::{test_support::example_time as at, Providers},
    };

    fn endpoint(name: &str) -> Url {
        Url::parse(&format!("https://hooks.example.com/webhooks/{name}")).expect("valid")
    }

    fn payloads(body_bytes: usize) -> Payloads {
        let endpoints: Vec<Url> = Providers::names().map(endpoint).collect();
        Payloads::new(
            Ids::new(0xabcd_0123),
            body_bytes,
            at(),
            Providers::registered(),
            &endpoints,
        )
    }

    fn event(provider: usize, step: &'static Step) -> Event {
        Event {
            provider,
            seq: 7,
            agreement: 3,
            step,
            at: at(),
        }
    }

    /// Every step of every provider, rendered from its template, is the body
    /// the provider's own builder makes for the same values, and parses back
    /// into them.
    #[test]
    fn rendered_bodies_are_the_providers_own_notifications() {
        let config = Config::from_vars([("SIGNHOOK_LOG_FORMAT", "json")]).expect("valid");
        let providers = Providers::from_config(&config).expect("providers build");
        let payloads = payloads(0);
        let event_id = payloads.ids().event_id(7);
        for (index, registration) in Providers::registered().iter().enumerate() {
            let agreement_id = payloads.agreement_id(index, 3);
            let endpoint = endpoint(registration.name);
            for (_, steps) in registration.traffic.lifecycles {
                for step in *steps {
                    let what = format!("{} {}", registration.name, step.event_type);
                    let body = payloads.render(&event(index, step));
                    let example = Example {
                        created: at(),
                        webhook_url: endpoint.as_str(),
                        ..Example::of(step, &event_id, &agreement_id, at())
                    };
                    let rendered: serde_json::Value = serde_json::from_slice(&body).expect("the body is JSON");
                    assert_eq!(rendered, (registration.traffic.notification)(&example), "{what}");
                    let parsed = providers
                        .get(registration.name)
                        .expect("built")
                        .parse(&body)
                        .expect(&what);
                    assert_eq!(parsed.event_id, event_id, "{what}");
                    assert_eq!(parsed.event_type, step.event_type, "{what}");
                    assert_eq!(
                        parsed.occurred_at.map(|t| t.timestamp()),
                        Some(at().timestamp()),
                        "{what}"
                    );
                    assert_eq!(parsed.subject.map(|s| s.id), Some(agreement_id.clone()), "{what}");
                }
            }
        }
    }

    #[test]
    fn bodies_are_padded_to_about_the_requested_size() {
        let (natural, requested, big) = (payloads(0), payloads(2048), payloads(64 * 1024));
        for (index, registration) in Providers::registered().iter().enumerate() {
            for (_, steps) in registration.traffic.lifecycles {
                for step in *steps {
                    let name = registration.name;
                    let body = natural.render(&event(index, step));
                    assert!(body.len() < 2048, "{name} {step:?}: {}", body.len());
                    let body = requested.render(&event(index, step));
                    assert!(body.len().abs_diff(2048) < 80, "{name} {step:?}: {}", body.len());
                    let body = big.render(&event(index, step));
                    assert!(body.len().abs_diff(64 * 1024) < 80, "{name} {step:?}: {}", body.len());
                }
            }
        }
    }

    #[test]
    fn hand_rolled_hex_matches_the_standard_one() {
        let mut buf = Vec::new();
        push_hex(&mut buf, 0xabc, 8);
        assert_eq!(String::from_utf8(buf).unwrap(), format!("{:08x}", 0xabc));
    }

    #[test]
    fn ids_are_unique_per_run_and_sequence() {
        let mut seen = std::collections::HashSet::new();
        for run in [1, 2] {
            let ids = Ids::new(run);
            for seq in 0..1000 {
                assert!(seen.insert(ids.event_id(seq)));
                for (index, registration) in Providers::registered().iter().enumerate() {
                    assert!(seen.insert(ids.agreement_id(registration.traffic.id_shape, index, seq)));
                }
            }
        }
        assert_eq!(Ids::new(9).event_id(5).len(), 36, "UUID-shaped");
        assert_eq!(Ids::new(9).agreement_id(IdShape::Uuid, 1, 5).len(), 36, "UUID-shaped");
    }

    #[test]
    fn providers_take_turns_and_every_lifecycle_comes_up() {
        let providers = Providers::registered();
        let mut seen = std::collections::HashSet::new();
        for agreement in 0..64 {
            let (provider, ending, steps) = assign(providers, agreement);
            assert_eq!(provider, (agreement % providers.len() as u64) as usize);
            assert_eq!(providers[provider].traffic.lifecycle(ending), Some(steps));
            seen.insert((provider, ending));
        }
        let all: usize = providers.iter().map(|r| r.traffic.lifecycles.len()).sum();
        assert_eq!(seen.len(), all);
    }
}
