//! The provider interface: everything that differs between Adobe Acrobat Sign,
//! BoldSign and FuseSign sits behind [`Provider`]. The HTTP handler, store and
//! worker only see [`Notification`]s and normalized statuses.
//!
//! Adding a provider is one module and one line:
//! 1. write `providers/<name>.rs` with the provider's knowledge only: a type
//!    implementing [`Provider`], a `build(&Config)` constructor reading its own
//!    settings, and a `pub const REGISTRATION: Registration` naming it, its
//!    `build` and its [`Traffic`] (a notification builder, the headers that
//!    authenticate one, its lifecycles, and the simulator's credential flag);
//! 2. add `<name>::REGISTRATION` to `REGISTRY` below.
//!
//! Everything else finds the provider through the registry: the routes
//! `/webhooks/{name}` and `/api/agreements/{name}/…`, start-up checks, the
//! reconciler, `signhook simulate` (its `--provider` values and credential
//! flags), and the tests in this directory that go over every provider.
//!
//! Besides receiving webhooks, a provider may read an agreement's current
//! status from its REST API ([`Provider::poll`]) and register per-agreement
//! webhooks ([`Provider::watch`]), through [`api`] and the shared client with
//! its retries; that is the backup for lost webhooks and the manual refresh.
//!
//! What the providers share, one file per concern: reading payloads
//! (`payload`), webhook credentials (`credentials`), the HTTP client with its
//! retries and the reading of answers (`client`), OAuth sessions on it
//! (`oauth`), authenticated API calls within the account's budget (`api`),
//! the API settings (`settings`), signhook as the OAuth server of webhook
//! deliveries (`webhook_oauth`) and example traffic for the simulator and
//! tests (`traffic`).

pub mod adobe_sign;
pub mod api;
pub mod boldsign;
pub mod client;
pub mod credentials;
pub mod fusesign;
pub mod oauth;
pub mod payload;
pub mod settings;
pub mod traffic;
pub mod webhook_oauth;

use std::{collections::BTreeMap, future::Future, sync::Arc, time::Duration};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::Value;

pub use self::{client::CallError, traffic::Traffic};
use crate::{
    agreement::AgreementStatus,
    config::{Config, ConfigError},
    documents::{DocumentRef, Download, InlineDocument},
    event::{Notification, Receipt, Subject},
    ledger::{ApiLedger, ApiLimits},
};

/// A provider's entry in the registry (`REGISTRY`, below).
#[derive(Debug)]
pub struct Registration {
    /// The path name used in `/webhooks/{name}` and `/api/agreements/{name}/...`.
    pub name: &'static str,
    /// Builds the provider from the configuration (its settings, secrets,
    /// API client).
    pub build: fn(&Config) -> Result<Arc<dyn Provider>, ConfigError>,
    /// What its webhook traffic looks like, for the simulator and tests.
    pub traffic: Traffic,
}

/// Every provider signhook knows.
const REGISTRY: &[Registration] = &[adobe_sign::REGISTRATION, boldsign::REGISTRATION, fusesign::REGISTRATION];

/// Longest one provider API call ([`Provider::poll`], `watch`, `unwatch`)
/// may take, its retries included.
pub const CALL_DEADLINE: Duration = Duration::from_secs(120);

/// `call`, or after [`CALL_DEADLINE`] a failure as of a call without answer.
pub async fn within_deadline<T, E: From<CallError>>(call: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    tokio::time::timeout(CALL_DEADLINE, call)
        .await
        .unwrap_or_else(|_| Err(CallError::Transport(format!("no answer within {} s", CALL_DEADLINE.as_secs())).into()))
}

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
    /// The provider does not know this agreement (it answered 404, or the
    /// id is blank). Asking again will not help.
    #[error("the provider does not know this agreement")]
    NotFound,
    /// The API call failed otherwise, after its retries.
    #[error(transparent)]
    Call(CallError),
}

impl From<CallError> for PollError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::NotFound => Self::NotFound,
            error => Self::Call(error),
        }
    }
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

impl From<CallError> for WatchError {
    fn from(error: CallError) -> Self {
        Self::Api(error.into())
    }
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

    /// What the headers alone prove, checked before the body is read so that
    /// a refused request costs no body memory: `Some` when they authenticate
    /// the request on their own (a client ID, a static signature), `None`
    /// when [`Provider::authenticate`] needs the body too (an HMAC), after
    /// every check the headers allow (a BoldSign header is parsed and its
    /// timestamp checked). Must refuse whatever `authenticate` refuses on
    /// the headers' account.
    fn authenticate_headers(&self, _headers: &HeaderMap, _now: DateTime<Utc>) -> Result<Option<Sender>, ProviderError> {
        Ok(None)
    }

    /// Whether the headers announce the provider's unauthenticated check of
    /// the URL (BoldSign's `Verification`, sent while a webhook is created,
    /// before it has a secret); [`Provider::is_handshake`] confirms it from
    /// the body. Such a request is authenticated only if it is not one.
    fn announces_handshake(&self, _headers: &HeaderMap) -> bool {
        false
    }

    /// Whether `body` is the URL check that [`Provider::announces_handshake`]
    /// announced: answered 200 with [`Provider::acknowledge_handshake`], never
    /// stored, never applied.
    fn is_handshake(&self, _body: &[u8]) -> bool {
        false
    }

    /// The 200 answer to a URL check.
    fn acknowledge_handshake(&self) -> Ack {
        Ack {
            headers: Vec::new(),
            body: serde_json::json!({ "received": true, "verification": true }),
        }
    }

    /// Extracts the notification. Lenient: unknown fields and unknown event
    /// types are fine; only a body that cannot be identified is an error
    /// (the receive path then keeps it quarantined, with this error).
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

    /// Whether this provider's webhooks, as configured, are authenticated
    /// only by a value an outsider may know (Adobe's client ID, FuseSign's
    /// static `Fuse-Signature`): their final statuses are then confirmed with
    /// the provider's API before they apply (see `crate::confirmation`).
    fn weakly_authenticated(&self) -> bool {
        false
    }

    /// The bearer tokens this provider's webhooks must carry, when signhook
    /// is their OAuth authorization server (`POST /webhooks/{name}/oauth/token`).
    fn webhook_tokens(&self) -> Option<&webhook_oauth::WebhookTokens> {
        None
    }

    /// Whether `polled` (the agreement as this provider's API reads it now)
    /// confirms the final status `claimed` a webhook brought.
    fn confirms_final(&self, claimed: AgreementStatus, polled: &Subject) -> bool {
        polled.status == Some(claimed)
    }

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
    /// `agreement_id`. Server errors (5xx) and transport errors are retried
    /// with backoff inside this call, so an `Err` is final for this attempt;
    /// throttling is not retried (see `api`): it is
    /// [`CallError::Throttled`], for the caller to schedule.
    fn poll<'a>(&'a self, agreement_id: &'a str) -> BoxFuture<'a, Result<Subject, PollError>> {
        self.poll_in(agreement_id, None)
    }

    /// [`Provider::poll`] in the provider account's `tenant` (FuseSign: the
    /// `TenantId` the bundle's webhooks carried); `None` uses the configured one.
    fn poll_in<'a>(
        &'a self,
        _agreement_id: &'a str,
        _tenant: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subject, PollError>> {
        Box::pin(async { Err(PollError::NotConfigured) })
    }

    /// The resource kinds [`Provider::poll`] can read (as their subjects name
    /// them); others are never polled.
    fn poll_kinds(&self) -> &'static [&'static str] {
        &[]
    }

    /// The API account's configured limits; `None` without API credentials.
    fn api_limits(&self) -> Option<ApiLimits> {
        None
    }

    /// Draws every API call from `ledger`, the budget all replicas share.
    fn attach(&self, _ledger: Arc<dyn ApiLedger>) {}

    /// The kind of resource [`Provider::watch`] registers per-agreement
    /// webhooks for (`agreement`), as its subjects name it; `None` when the
    /// provider has none. API credentials are needed as well: without them
    /// watching answers [`PollError::NotConfigured`].
    fn watch_kind(&self) -> Option<&'static str> {
        None
    }

    /// Whether the provider has per-agreement webhooks (see [`Provider::watch_kind`]).
    fn can_watch(&self) -> bool {
        self.watch_kind().is_some()
    }

    /// Registers a webhook for this one agreement, delivering to
    /// `webhook_url`; returns the provider's id of the webhook. It never
    /// creates a second one: a webhook that already exists (or that a
    /// registration whose answer was lost created) is adopted.
    fn watch<'a>(&'a self, _agreement_id: &'a str, _webhook_url: &'a str) -> BoxFuture<'a, Result<String, WatchError>> {
        Box::pin(async { Err(WatchError::Unsupported) })
    }

    /// The documents to keep of the completed agreement `agreement_id` (in
    /// `tenant`, as for [`Provider::poll_in`]): the signed document(s) and,
    /// where the provider has one, the audit trail. May ask the API (FuseSign
    /// lists a bundle's documents); [`PollError::NotConfigured`] without API
    /// credentials.
    fn documents<'a>(
        &'a self,
        _agreement_id: &'a str,
        _tenant: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<DocumentRef>, PollError>> {
        Box::pin(async { Err(PollError::NotConfigured) })
    }

    /// Starts downloading one of [`Provider::documents`], through the
    /// account's shared budget (see [`api::Api::download`]).
    fn download<'a>(&'a self, _document: &'a DocumentRef) -> BoxFuture<'a, Result<Download, PollError>> {
        Box::pin(async { Err(PollError::NotConfigured) })
    }

    /// The signed document a notification's body carries itself, if it does
    /// (Adobe's `signedDocumentInfo`); then no API call is needed for it.
    fn inline_document(&self, _body: &[u8]) -> Option<InlineDocument> {
        None
    }

    /// Deletes a webhook [`Provider::watch`] registered. A webhook the
    /// provider no longer knows is [`PollError::NotFound`]; a refused delete
    /// is an error, never success.
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
        for registration in REGISTRY {
            map.insert(registration.name, (registration.build)(config)?);
        }
        Ok(Self(Arc::new(map)))
    }

    /// Draws every provider's API calls from `ledger` from now on.
    pub fn attach(&self, ledger: Arc<dyn ApiLedger>) {
        for provider in self.iter() {
            provider.attach(ledger.clone());
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.0.values()
    }

    pub fn names() -> impl Iterator<Item = &'static str> {
        REGISTRY.iter().map(|registration| registration.name)
    }

    /// Every provider's registry entry, in registry order.
    pub fn registered() -> &'static [Registration] {
        REGISTRY
    }
}

/// Helpers for the providers' unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use axum::http::{HeaderMap, HeaderName, HeaderValue};
    use chrono::{DateTime, Utc};

    use super::{ProviderError, Sender};

    pub fn time(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("valid test time")
            .with_timezone(&Utc)
    }

    /// The instant example traffic is built at in tests, with nanoseconds so
    /// that every time format has digits to drop.
    pub fn example_time() -> DateTime<Utc> {
        time("2026-11-20T09:41:27.123456789Z")
    }

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
            let config = Config::from_vars(
                Providers::registered()
                    .iter()
                    .map(|registration| (registration.traffic.credential.variable, "credential-1, credential-2")),
            )
            .expect("test configuration is valid");
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
