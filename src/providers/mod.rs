//! The provider interface: everything that differs between Adobe Acrobat Sign,
//! BoldSign and FuseSign sits behind [`Provider`]. The HTTP handler, store and
//! worker only see [`Notification`]s and normalized statuses.
//!
//! Adding a provider: write `providers/<name>.rs` implementing [`Provider`] with a
//! `build(&Config)` constructor, and add one line to [`REGISTRY`].
//!
//! Besides receiving webhooks, a provider may read an agreement's current
//! status from its REST API ([`Provider::poll`]), through the shared client in
//! [`api`]; that is the backup for lost webhooks and the manual refresh.

pub mod adobe_sign;
pub mod api;
pub mod boldsign;
pub mod fusesign;

use std::{collections::BTreeMap, sync::Arc};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use chrono::{DateTime, NaiveDateTime, Utc};
use futures::future::BoxFuture;
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::{
    config::{Config, ConfigError},
    event::{Notification, Receipt, Subject},
};

type Build = fn(&Config) -> Result<Arc<dyn Provider>, ConfigError>;

/// Every provider signhook knows, by the path name used in
/// `/webhooks/{name}` and `/api/agreements/{name}/...`.
const REGISTRY: &[(&str, Build)] = &[
    (adobe_sign::NAME, adobe_sign::build),
    (boldsign::NAME, boldsign::build),
    (fusesign::NAME, fusesign::build),
];

/// Why a request is refused before anything is stored. Each variant maps to
/// one HTTP status in `http::error`.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// No credential at all (missing header): 401.
    #[error("{message}")]
    MissingCredential { code: &'static str, message: String },
    /// A credential that does not verify (bad signature, stale timestamp): 401.
    #[error("{message}")]
    InvalidCredential { code: &'static str, message: String },
    /// A well-formed credential we do not accept (unknown Adobe client ID): 403.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The body is not a notification of this provider: 400.
    #[error("{message}")]
    InvalidPayload { code: &'static str, message: String },
    /// The provider has no GET handshake: 405.
    #[error("this provider does not use a GET verification request")]
    NoHandshake,
}

impl ProviderError {
    pub fn invalid_payload(message: impl Into<String>) -> Self {
        Self::InvalidPayload {
            code: "invalid_payload",
            message: message.into(),
        }
    }
}

/// Why [`Provider::poll`] could not read an agreement's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    /// No API credentials are configured for this provider: polling is off
    /// for it, not failing ([`Provider::can_poll`] is false).
    #[error("no API credentials are configured for this provider")]
    NotConfigured,
    /// The provider answered 404: it does not know this agreement (or this
    /// account cannot see it). Asking again will not help.
    #[error("the provider does not know this agreement")]
    NotFound,
    /// The provider answered an error, after retries for 429 and 5xx. `message`
    /// is a short reason taken from the answer, never the whole body. 401/403
    /// mean the credentials are wrong or lack a permission.
    #[error("the provider answered {status}: {message}")]
    Provider { status: u16, message: String },
    /// No answer, after retries: timeout, connection refused, TLS or DNS error.
    #[error("could not reach the provider: {0}")]
    Transport(String),
    /// A 2xx answer that is not what the provider documents (not JSON, no status).
    #[error("unexpected answer from the provider: {0}")]
    InvalidResponse(String),
}

/// Why [`Provider::watch`] or [`Provider::unwatch`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// The provider has no per-agreement webhooks (or signhook does not
    /// register them for it).
    #[error("this provider does not support per-agreement webhooks")]
    Unsupported,
    /// The API call failed, as a poll would ([`PollError::NotConfigured`]
    /// without API credentials).
    #[error(transparent)]
    Api(#[from] PollError),
}

/// Who sent a request, once authenticated.
#[derive(Debug, Clone, Default)]
pub struct Sender {
    /// The account the event belongs to as the credential proves it (Adobe
    /// client ID); payload-level tenants come from [`Notification::tenant`].
    pub tenant: Option<String>,
}

/// What the webhook answers on success.
#[derive(Debug, Clone)]
pub struct Ack {
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Value,
}

pub trait Provider: Send + Sync + 'static {
    /// Path name: `adobe-sign`, `boldsign`, `fusesign`.
    fn name(&self) -> &'static str;

    /// Answers a GET on the webhook URL (Adobe's verification of intent).
    fn verify_intent(&self, _headers: &HeaderMap) -> Result<Ack, ProviderError> {
        Err(ProviderError::NoHandshake)
    }

    /// Proves the request comes from the provider, from the headers and the
    /// raw body bytes exactly as received.
    fn authenticate(&self, headers: &HeaderMap, body: &[u8], now: DateTime<Utc>) -> Result<Sender, ProviderError>;

    /// Extracts the notification. Lenient: unknown fields and unknown event
    /// types are fine; only a body that cannot be identified is an error.
    fn parse(&self, body: &[u8]) -> Result<Notification, ProviderError>;

    /// The 200 answer once the event is durable.
    fn acknowledge(&self, _sender: &Sender, receipt: Receipt) -> Ack {
        Ack {
            headers: Vec::new(),
            body: serde_json::json!({ "received": true, "duplicate": receipt.duplicate, "id": receipt.id }),
        }
    }

    /// Whether this deployment can accept anything from the provider; used for
    /// start-up warnings.
    fn is_configured(&self) -> bool;

    /// How this provider's webhooks are authenticated (`client_id`,
    /// `hmac_sha256`, ...), for `GET /api/providers`; never a secret.
    fn webhook_auth(&self) -> &'static str;

    /// This provider's settings with secrets masked, for `check-config`;
    /// includes whether polling is configured.
    fn settings(&self) -> Value;

    /// Whether API credentials are configured, so that [`Provider::poll`] can
    /// reach the provider.
    fn can_poll(&self) -> bool {
        false
    }

    /// Reads the agreement's current status from the provider's REST API.
    ///
    /// The [`Subject`] uses the same status mapping as this provider's
    /// webhooks, with `provider_status` the provider's raw status; its `id` is
    /// `agreement_id`. Throttling (429), server errors (5xx) and transport
    /// errors are retried with backoff inside this call, so an `Err` is final
    /// for this attempt.
    fn poll<'a>(&'a self, _agreement_id: &'a str) -> BoxFuture<'a, Result<Subject, PollError>> {
        Box::pin(async { Err(PollError::NotConfigured) })
    }

    /// Whether the provider has per-agreement webhooks that
    /// [`Provider::watch`] registers (API credentials are needed as well:
    /// without them it answers [`PollError::NotConfigured`]).
    fn can_watch(&self) -> bool {
        false
    }

    /// Registers a webhook for this one agreement, delivering to
    /// `webhook_url`; returns the provider's id of the webhook.
    fn watch<'a>(&'a self, _agreement_id: &'a str, _webhook_url: &'a str) -> BoxFuture<'a, Result<String, WatchError>> {
        Box::pin(async { Err(WatchError::Unsupported) })
    }

    /// Deletes a webhook [`Provider::watch`] registered. A webhook the
    /// provider no longer knows is [`PollError::NotFound`].
    fn unwatch<'a>(&'a self, _webhook_id: &'a str) -> BoxFuture<'a, Result<(), WatchError>> {
        Box::pin(async { Err(WatchError::Unsupported) })
    }
}

/// The configured providers, looked up by path name.
#[derive(Clone)]
pub struct Providers(Arc<BTreeMap<&'static str, Arc<dyn Provider>>>);

impl Providers {
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let mut map = BTreeMap::new();
        for (name, build) in REGISTRY {
            map.insert(*name, build(config)?);
        }
        Ok(Self(Arc::new(map)))
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.0.values()
    }

    pub fn names() -> impl Iterator<Item = &'static str> {
        REGISTRY.iter().map(|(name, _)| *name)
    }
}

/// Parses a JSON body that must be an object.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, ProviderError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ProviderError::invalid_payload("the body must be a JSON object")),
        Err(e) => Err(ProviderError::invalid_payload(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// Parses a JSON object body keeping only the values at `paths` (`"a/b"` is
/// key `b` of the object at key `a`; a kept value is kept whole). The whole
/// body is still checked to be JSON, but everything else is skipped without
/// being built: providers read a handful of fields from payloads of a few
/// kilobytes to megabytes, and building the full tree was most of the cost of
/// receiving a notification. Arrays on the way to a path are not descended
/// into (kept as empty). Errors are worded as [`json_object`]'s.
pub fn json_object_sparse(body: &[u8], paths: &[&str]) -> Result<serde_json::Map<String, Value>, ProviderError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = serde::de::DeserializeSeed::deserialize(Sparse(paths), &mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        // Not JSON, or not an object: let the full parser word the error.
        _ => json_object(body),
    }
}

/// The paths still wanted below the current value.
struct Sparse<'p>(&'p [&'p str]);

impl<'de> serde::de::DeserializeSeed<'de> for Sparse<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Sparse<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Value::Array(Vec::new()))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut kept = serde_json::Map::new();
        while let Some(key) = map.next_key_seed(Key)? {
            let key = key.as_ref();
            if self.0.contains(&key) {
                kept.insert(key.to_owned(), map.next_value::<Value>()?);
                continue;
            }
            let below: Vec<&str> = self
                .0
                .iter()
                .filter_map(|path| path.strip_prefix(key)?.strip_prefix('/'))
                .collect();
            if below.is_empty() {
                map.next_value::<serde::de::IgnoredAny>()?;
            } else {
                kept.insert(key.to_owned(), map.next_value_seed(Sparse(&below))?);
            }
        }
        Ok(Value::Object(kept))
    }
}

/// An object key, borrowed from the body unless it has escapes.
struct Key;

impl<'de> serde::de::DeserializeSeed<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v.to_owned()))
    }
}

/// A non-empty string at `pointer` (e.g. `/event/id`); numbers are accepted as
/// ids since providers are not always consistent.
pub fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<std::borrow::Cow<'a, str>> {
    match value.pointer(pointer)? {
        Value::String(s) if !s.trim().is_empty() => Some(std::borrow::Cow::Borrowed(s.as_str())),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// Parses a provider timestamp: RFC 3339 with any number of fractional digits
/// (FuseSign sends seven), a zone-less ISO-8601 time taken as UTC, or unix
/// seconds (BoldSign).
pub fn parse_time(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => n.as_i64().and_then(|secs| DateTime::from_timestamp(secs, 0)),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t.with_timezone(&Utc));
            }
            if let Ok(secs) = s.parse::<i64>() {
                return DateTime::from_timestamp(secs, 0);
            }
            [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S%.f%z",
                "%Y-%m-%dT%H:%M:%S%.f%#z",
            ]
            .iter()
            .find_map(|format| {
                DateTime::parse_from_str(s, format)
                    .map(|t| t.with_timezone(&Utc))
                    .ok()
                    .or_else(|| NaiveDateTime::parse_from_str(s, format).ok().map(|t| t.and_utc()))
            })
        }
        _ => None,
    }
}

/// A provider's authentication header, and the error codes for its absence
/// and its misuse.
pub struct CredentialHeader {
    /// As documented (`X-BoldSign-Signature`); lookups are case-insensitive.
    pub name: &'static str,
    pub missing_code: &'static str,
    pub malformed_code: &'static str,
}

impl CredentialHeader {
    /// The header's single, non-empty, visible-ASCII value. Several copies are
    /// refused rather than guessed between.
    pub fn read<'a>(&self, headers: &'a HeaderMap) -> Result<&'a str, ProviderError> {
        let malformed = |message: String| ProviderError::InvalidCredential {
            code: self.malformed_code,
            message,
        };
        let mut values = headers.get_all(self.name).iter();
        let value = match (values.next(), values.next()) {
            (Some(value), None) => value
                .to_str()
                .map_err(|_| malformed(format!("the {} header is not visible ASCII", self.name)))?
                .trim(),
            (Some(_), Some(_)) => return Err(malformed(format!("the {} header appears more than once", self.name))),
            (None, _) => "",
        };
        if value.is_empty() {
            return Err(ProviderError::MissingCredential {
                code: self.missing_code,
                message: format!("the {} header is required", self.name),
            });
        }
        Ok(value)
    }
}

/// Whether `candidate` equals one of `accepted`, comparing every entry in
/// constant time so timing reveals neither which entry nor how much matched.
pub fn matches_any(candidate: &[u8], accepted: &[impl AsRef<[u8]>]) -> bool {
    accepted
        .iter()
        .fold(subtle::Choice::from(0), |found, secret| {
            found | candidate.ct_eq(secret.as_ref())
        })
        .into()
}

/// Helpers for the providers' unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use axum::http::{HeaderMap, HeaderName, HeaderValue};

    use super::{ProviderError, Sender};

    pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("valid test header name"),
                HeaderValue::from_str(value).expect("valid test header value"),
            );
        }
        map
    }

    /// The error code of an authentication result, `ok` for success.
    pub fn code(result: Result<Sender, ProviderError>) -> &'static str {
        match result {
            Ok(_) => "ok",
            Err(
                ProviderError::MissingCredential { code, .. }
                | ProviderError::InvalidCredential { code, .. }
                | ProviderError::Forbidden { code, .. },
            ) => code,
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sparse_parsing_keeps_exactly_the_wanted_paths() {
        let body = br#"{"id":"e1","skip":{"deep":[1,{"x":2}],"s":"a\"b"},"obj":{"id":7,"name":null,"big":[1,2,3],
                        "inner":{"status":"SIGNED","other":true}},"esc\u0061ped":"yes","arr":[{"id":"no"}],
                        "whole":{"a":[1,2],"b":{"c":3}},"prim":"not an object","id":"e2"}"#;
        let paths = [
            "id",
            "obj/id",
            "obj/name",
            "obj/inner/status",
            "escaped",
            "arr/id",
            "whole",
            "prim/id",
            "gone",
        ];
        let sparse = Value::Object(json_object_sparse(body, &paths).expect("valid object"));
        assert_eq!(
            sparse,
            json!({
                "id": "e2",
                "obj": {"id": 7, "name": null, "inner": {"status": "SIGNED"}},
                "escaped": "yes",
                "arr": [],
                "whole": {"a": [1, 2], "b": {"c": 3}},
                "prim": "not an object",
            })
        );
        // The kept values are the full parse's.
        let full = Value::Object(json_object(body).expect("valid object"));
        for pointer in ["/id", "/obj/id", "/obj/inner/status", "/whole", "/prim"] {
            assert_eq!(sparse.pointer(pointer), full.pointer(pointer), "{pointer}");
        }
    }

    #[test]
    fn sparse_parsing_words_errors_as_the_full_parser() {
        for body in [
            &b"[1,2]"[..],
            b"\"text\"",
            b"{\"id\": ",
            b"{\"id\":1} trailing",
            b"\xff",
            b"",
        ] {
            let sparse = json_object_sparse(body, &["id"]).map_err(|e| e.to_string());
            let full = json_object(body).map_err(|e| e.to_string());
            assert!(sparse.is_err(), "{body:?}");
            assert_eq!(sparse, full, "{body:?}");
        }
    }

    #[test]
    fn parses_provider_timestamps() {
        let cases = [
            (json!("2026-11-20T09:41:27Z"), "2026-11-20T09:41:27+00:00"),
            (
                json!("2020-09-14T03:54:07.2844251Z"),
                "2020-09-14T03:54:07.284425100+00:00",
            ),
            (
                json!("2020-09-14T03:54:07.2844251"),
                "2020-09-14T03:54:07.284425100+00:00",
            ),
            (json!("2026-11-20T10:41:27+01:00"), "2026-11-20T09:41:27+00:00"),
            (json!("2026-11-20T09:41:27.000-0000"), "2026-11-20T09:41:27+00:00"),
            (json!(1763631687), "2025-11-20T09:41:27+00:00"),
            (json!("1763631687"), "2025-11-20T09:41:27+00:00"),
        ];
        for (input, expected) in cases {
            let parsed = parse_time(&input).unwrap_or_else(|| panic!("{input} parses"));
            assert_eq!(parsed.to_rfc3339(), expected, "{input}");
        }
        for bad in [json!("yesterday"), json!(null), json!({}), json!(""), json!(1e300)] {
            assert_eq!(parse_time(&bad), None, "{bad}");
        }
    }

    #[test]
    fn matches_any_compares_whole_values() {
        let accepted = ["alpha", "beta"];
        assert!(matches_any(b"beta", &accepted));
        assert!(!matches_any(b"bet", &accepted));
        assert!(!matches_any(b"", &accepted));
        assert!(!matches_any(b"alpha", &[] as &[&str]));
    }

    #[test]
    fn every_registered_provider_has_a_unique_name() {
        let names: Vec<_> = Providers::names().collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(names.len(), unique.len());
        assert_eq!(names, ["adobe-sign", "boldsign", "fusesign"]);
    }

    mod properties {
        use super::*;
        use axum::http::HeaderValue;
        use figment::{providers::Serialized, Figment};
        use proptest::prelude::*;

        const FIXTURES: [&[u8]; 3] = [
            include_bytes!("../../tests/fixtures/adobe-sign-agreement-action-completed.json"),
            include_bytes!("../../tests/fixtures/boldsign-completed.json"),
            include_bytes!("../../tests/fixtures/fusesign-customer-document-signed.json"),
        ];
        const AUTH_HEADERS: [&str; 4] = [
            "x-adobesign-clientid",
            "x-boldsign-signature",
            "fuse-signature",
            "x-other",
        ];

        /// Every registered provider, with credentials so authentication runs deep.
        fn providers() -> Providers {
            let figment = Figment::from(Serialized::defaults(crate::config::Settings::default()))
                .merge(Serialized::default("adobe_sign_client_ids", ["client-1"]))
                .merge(Serialized::default("boldsign_secrets", ["secret-1", "secret-2"]))
                .merge(Serialized::default("fusesign_signatures", ["fuse-1"]));
            let config = Config::from_figment(figment).expect("test configuration is valid");
            Providers::from_config(&config).expect("providers build")
        }

        fn arb_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                ".{0,40}".prop_map(Value::from),
                "[0-9T:.Z+-]{0,35}".prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 24, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                    prop::collection::btree_map(".{0,12}", inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// JSON pointers to every node of `value`.
        fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => map.iter().for_each(|(k, v)| pointers(v, format!("{at}/{k}"), out)),
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .for_each(|(i, v)| pointers(v, format!("{at}/{i}"), out)),
                _ => {}
            }
            out.push(at);
        }

        proptest! {
            #[test]
            fn parsers_never_panic_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
                for provider in providers().iter() {
                    let _ = provider.parse(&body);
                }
            }

            #[test]
            fn parsers_never_panic_on_mutated_documented_payloads(
                fixture in 0..FIXTURES.len(),
                pick in any::<prop::sample::Index>(),
                value in arb_json(),
            ) {
                let mut document: Value = serde_json::from_slice(FIXTURES[fixture]).expect("fixture is JSON");
                let mut all = Vec::new();
                pointers(&document, String::new(), &mut all);
                let pointer = pick.get(&all).clone();
                match document.pointer_mut(&pointer) {
                    Some(node) => *node = value,
                    None => document = value,
                }
                let body = serde_json::to_vec(&document).expect("serializes");
                for provider in providers().iter() {
                    if let Ok(notification) = provider.parse(&body) {
                        prop_assert!(!notification.event_id.trim().is_empty());
                    }
                }
            }

            #[test]
            fn authentication_never_panics_on_arbitrary_headers(
                headers in prop::collection::vec((0..AUTH_HEADERS.len(), prop::collection::vec(any::<u8>(), 0..120)), 0..4),
                body in prop::collection::vec(any::<u8>(), 0..64),
                offset in -10_000_000i64..10_000_000,
            ) {
                let mut map = HeaderMap::new();
                for (name, value) in headers {
                    if let Ok(value) = HeaderValue::from_bytes(&value) {
                        map.append(AUTH_HEADERS[name], value);
                    }
                }
                let now = Utc::now() + chrono::Duration::seconds(offset);
                for provider in providers().iter() {
                    let _ = provider.verify_intent(&map);
                    let _ = provider.authenticate(&map, &body, now);
                }
            }
        }
    }
}
