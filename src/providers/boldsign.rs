//! BoldSign webhooks.
//!
//! BoldSign signs every delivery with HMAC-SHA256 over `<t>.<raw body>` and sends
//! it as `X-BoldSign-Signature: t=<unix seconds>, s0=<hex>[, s1=<hex>]` (two
//! signatures while a secret is being rolled). Events are about one document.
//!
//! Polling reads `GET /v1/document/properties?documentId=…` with the account's
//! API key in `X-API-KEY`, within the account's rate limit (2,000 requests an
//! hour live, 50 in sandbox, shared with the account's own sending: BoldSign's
//! developer docs, API overview "rate limit"). An unknown document is 403
//! `{"error":"Invalid Document ID"}` (developer docs, troubleshooting
//! "integration errors"), which is "not found", not a credential problem.
//!
//! A completed document's copy is `GET /v1/document/download?documentId=…`
//! (the signed PDF) and `GET /v1/document/downloadAuditLog?documentId=…`
//! (the audit trail), with the same API key (BoldSign SDKs, `DocumentApi`:
//! `download_document`, `download_audit_log`).

use std::sync::Arc;

use axum::http::{header::InvalidHeaderValue, HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

use super::{
    api::{self, Api, Credential},
    client::{ApiClient, CallError, Dialect},
    credentials::CredentialHeader,
    payload::{json_object_sparse, parse_time, str_at},
    settings::{base_url, ClientSettings},
    traffic::{CredentialFlag, Example, IdShape, Step, TimeFormat, Traffic},
    PollError, Provider, ProviderError, Registration, Sender,
};
use crate::{
    agreement::AgreementStatus,
    config::{invalid, mask, optional_string, string_list, Config, ConfigError},
    documents::{self, DocumentRef, Download},
    event::{Notification, Subject},
    ledger::{ApiLedger, ApiLimits},
};

pub const NAME: &str = "boldsign";
pub const REGISTRATION: Registration = Registration {
    name: NAME,
    build,
    traffic: Traffic {
        notification,
        auth_headers,
        time_format: TimeFormat::UnixSeconds,
        id_shape: IdShape::Uuid,
        lifecycles: LIFECYCLES,
        credential: CredentialFlag {
            flag: "boldsign-secret",
            variable: "SIGNHOOK_BOLDSIGN_SECRETS",
            what: "a signing secret",
            help: "BoldSign secret to sign with; default: the first of the server's list",
        },
    },
};
const SIGNATURE_HEADER: CredentialHeader = CredentialHeader {
    name: "X-BoldSign-Signature",
    missing_code: "missing_signature",
    malformed_code: "malformed_signature",
};
/// The header naming the event type (`WebhookUtility.BoldSignEventHeader` in
/// the official .NET SDK).
const EVENT_HEADER: &str = "X-BoldSign-Event";
/// The event type of BoldSign's URL check (`WebHookEventType.Verification`).
const VERIFICATION: &str = "Verification";
/// How far ahead of our clock a signature timestamp may be: clock skew between
/// BoldSign and this host, not a replay window.
const MAX_FUTURE_SECS: i64 = 300;
/// Default of `SIGNHOOK_BOLDSIGN_MAX_AGE_SECS`: 7 days.
const DEFAULT_MAX_AGE_SECS: u64 = 7 * 24 * 60 * 60;
/// Default of `SIGNHOOK_BOLDSIGN_API_BASE` (BoldSign's US region).
const DEFAULT_API_BASE: &str = "https://api.boldsign.com";

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Settings {
    /// `SIGNHOOK_BOLDSIGN_SECRETS`: webhook signing secrets; several at once
    /// while a secret is being rotated.
    #[serde(deserialize_with = "string_list")]
    boldsign_secrets: Vec<String>,
    /// `SIGNHOOK_BOLDSIGN_MAX_AGE_SECS`: oldest signature timestamp accepted;
    /// 0 = no limit. See [`BoldSign::max_age_secs`] for why it is long.
    boldsign_max_age_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            boldsign_secrets: Vec::new(),
            boldsign_max_age_secs: DEFAULT_MAX_AGE_SECS,
        }
    }
}

/// Settings of the REST API client, for polling. Not `Debug`: it holds a secret.
#[derive(Default, Deserialize)]
#[serde(default)]
struct ApiSettings {
    /// `SIGNHOOK_BOLDSIGN_API_BASE`: unset means [`DEFAULT_API_BASE`]; other
    /// regions have their own host.
    #[serde(deserialize_with = "optional_string")]
    boldsign_api_base: Option<String>,
    /// `SIGNHOOK_BOLDSIGN_API_KEY`: sent as `X-API-KEY`.
    #[serde(deserialize_with = "optional_string")]
    boldsign_api_key: Option<String>,
    /// `SIGNHOOK_BOLDSIGN_API_ENVIRONMENT`: `live` (default) or `sandbox`;
    /// sets the default budget to the account's documented limit.
    boldsign_api_environment: Environment,
    /// `SIGNHOOK_BOLDSIGN_API_REQUESTS_PER_HOUR`: the account's budget for
    /// every replica together; unset: 2,000 live, 50 sandbox.
    boldsign_api_requests_per_hour: Option<u32>,
}

/// A BoldSign account's environment, which decides its rate limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Environment {
    #[default]
    Live,
    Sandbox,
}

impl Environment {
    /// Requests an hour per account (developers.boldsign.com, API overview: rate limit).
    fn documented_limit(self) -> u32 {
        match self {
            Self::Live => 2000,
            Self::Sandbox => 50,
        }
    }
}

/// BoldSign's 429 says when the hourly window resets, in
/// `X-RateLimit-Reset` (unix seconds; support KB "API calls quota
/// exceeded"), not how long to wait.
fn rate_limit_reset(headers: &HeaderMap, _: &Value, now: DateTime<Utc>) -> Option<std::time::Duration> {
    let at: i64 = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim().parse().ok()?;
    let at = DateTime::from_timestamp(at, 0)?;
    Some((at - now).to_std().unwrap_or_default())
}

/// BoldSign's answer for a document it does not know: 403
/// `{"error":"Invalid Document ID"}` (developer docs, troubleshooting: integration errors; the SDKs
/// declare no 404). Other 403s are credential problems.
fn classify(status: StatusCode, body: &Value) -> Option<CallError> {
    let unknown = status == StatusCode::FORBIDDEN
        && body
            .get("error")
            .and_then(Value::as_str)
            .is_some_and(|error| error.trim().eq_ignore_ascii_case("Invalid Document ID"));
    unknown.then_some(CallError::NotFound)
}

impl ApiSettings {
    /// The API client; `None` (polling off) without an API key.
    fn api(&self, config: &Config) -> Result<Option<Api>, ConfigError> {
        let client_settings = ClientSettings::from_config(config)?;
        let base = base_url(
            "boldsign_api_base",
            self.boldsign_api_base.as_deref().unwrap_or(DEFAULT_API_BASE),
        )?;
        let Some(key) = self.boldsign_api_key.as_deref() else {
            return Ok(None);
        };
        let credential = Credential::header("x-api-key", key, "boldsign_api_key")?;
        let per_hour = self
            .boldsign_api_requests_per_hour
            .unwrap_or_else(|| self.boldsign_api_environment.documented_limit());
        if per_hour == 0 {
            return Err(invalid("boldsign_api_requests_per_hour", "must be greater than 0"));
        }
        let limits = ApiLimits {
            per_hour,
            min_interval: std::time::Duration::ZERO,
        };
        Ok(Some(Api::new(
            ApiClient::new(&client_settings, NAME)?,
            api::Base::Fixed(base),
            credential,
            limits,
            Dialect {
                classify,
                wait_hint: rate_limit_reset,
            },
        )))
    }
}

pub struct BoldSign {
    secrets: Vec<String>,
    /// How old a signature timestamp may be (0 = no limit).
    ///
    /// BoldSign documents `t` as the time of the *event*, and retries a failed
    /// delivery for about 34 hours (after 1 min, 15 min, 45 min, 1 h, 8 h and
    /// 24 h). Whether a retry is re-signed with a fresh `t` is undocumented, so
    /// the usual 5-minute replay window would refuse every legitimate retry and
    /// lose the event for good. A replay of a genuine event is harmless here:
    /// it is deduplicated by its event id. Hence a window of days, not minutes.
    max_age_secs: u64,
    api_settings: ApiSettings,
    /// The REST API client; `None` when no API key is configured.
    api: Option<Api>,
}

pub fn build(config: &Config) -> Result<Arc<dyn Provider>, ConfigError> {
    let settings: Settings = config.extract()?;
    let api_settings: ApiSettings = config.extract()?;
    Ok(Arc::new(BoldSign {
        secrets: settings.boldsign_secrets,
        max_age_secs: settings.boldsign_max_age_secs,
        api: api_settings.api(config)?,
        api_settings,
    }))
}

/// The parts of an `X-BoldSign-Signature` header we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    /// `t`: unix seconds.
    pub timestamp: i64,
    /// `t` exactly as received: the signed bytes start with it, so that
    /// `t=000<T>` does not pass for a signature made over `<T>`.
    pub signed_timestamp: String,
    /// `s0`, `s1`...: decoded HMAC-SHA256 values, in header order.
    pub signatures: Vec<Vec<u8>>,
}

/// Parses `t=<unix seconds>, s0=<hex>[, s1=<hex>...]`. Whitespace around `,`
/// and `=` and the order of parts do not matter; keys other than `t` and `sN`
/// are ignored so that BoldSign can add some. Errors say what is wrong, for
/// the 401 message.
pub fn parse_signature_header(header: &str) -> Result<SignatureHeader, String> {
    let mut timestamp = None;
    let mut signed_timestamp = String::new();
    let mut signatures = Vec::new();
    for part in header.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .map(|(key, value)| (key.trim(), value.trim()))
            .ok_or_else(|| format!("`{part}` is not a key=value pair"))?;
        if key.eq_ignore_ascii_case("t") {
            if timestamp.is_some() {
                return Err("the timestamp t appears more than once".to_owned());
            }
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err("the timestamp t is not a number of seconds".to_owned());
            }
            timestamp = Some(
                value
                    .parse::<i64>()
                    .map_err(|_| "the timestamp t is out of range".to_owned())?,
            );
            value.clone_into(&mut signed_timestamp);
        } else if is_signature_key(key) {
            if value.is_empty() {
                return Err(format!("the signature {key} is empty"));
            }
            signatures.push(hex::decode(value).map_err(|_| format!("the signature {key} is not hexadecimal"))?);
        }
    }
    let timestamp = timestamp.ok_or("the timestamp t is missing")?;
    if signatures.is_empty() {
        return Err("no signature s0 is present".to_owned());
    }
    Ok(SignatureHeader {
        timestamp,
        signed_timestamp,
        signatures,
    })
}

fn is_signature_key(key: &str) -> bool {
    key.strip_prefix(['s', 'S'])
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The HMAC-SHA256 of `<timestamp>.<body>` under `secret`, ready to finalize
/// or verify: what BoldSign signs, and what [`BoldSign::authenticate`] checks.
fn signed_content(secret: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-BoldSign-Signature` value BoldSign sends for `body` signed with
/// `secret` at `timestamp` (unix seconds): `t=<timestamp>, s0=<lowercase hex
/// HMAC-SHA256 of "<timestamp>.<body>">`.
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let mac = signed_content(secret, &timestamp, body);
    format!("t={timestamp}, s0={}", hex::encode(mac.finalize().into_bytes()))
}

impl BoldSign {
    /// The signature header, parsed, with its timestamp within the window:
    /// everything that can be checked before the body is read.
    fn signature_header(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Result<SignatureHeader, ProviderError> {
        if self.secrets.is_empty() {
            return Err(ProviderError::InvalidCredential {
                code: "not_configured",
                message: "no BoldSign signing secret is configured (SIGNHOOK_BOLDSIGN_SECRETS)".to_owned(),
            });
        }
        let header = SIGNATURE_HEADER.read(headers)?;
        let header = parse_signature_header(header).map_err(|reason| ProviderError::InvalidCredential {
            code: "malformed_signature",
            message: format!("the X-BoldSign-Signature header is malformed: {reason}"),
        })?;
        self.check_age(header.timestamp, now)?;
        Ok(header)
    }

    /// Whether any signature in the header is the HMAC of `<t>.<body>` under
    /// any configured secret. Every pair is compared (in constant time), so
    /// timing does not tell which secret or signature matched.
    fn signed_by_us(&self, header: &SignatureHeader, body: &[u8]) -> bool {
        self.secrets.iter().fold(false, |found, secret| {
            let mac = signed_content(secret, &header.signed_timestamp, body);
            header.signatures.iter().fold(found, |found, signature| {
                found | mac.clone().verify_slice(signature).is_ok()
            })
        })
    }

    /// Refuses timestamps from the future (beyond clock skew) and, unless the
    /// limit is 0, older than the maximum age.
    fn check_age(&self, timestamp: i64, now: DateTime<Utc>) -> Result<(), ProviderError> {
        let age = now.timestamp().saturating_sub(timestamp);
        if age < -MAX_FUTURE_SECS {
            return Err(ProviderError::InvalidCredential {
                code: "timestamp_in_future",
                message: format!(
                    "the X-BoldSign-Signature timestamp is {} s ahead of this server's clock \
                     (at most {MAX_FUTURE_SECS} s allowed)",
                    age.unsigned_abs()
                ),
            });
        }
        let max_age = i64::try_from(self.max_age_secs).unwrap_or(i64::MAX);
        if max_age > 0 && age > max_age {
            return Err(ProviderError::InvalidCredential {
                code: "timestamp_too_old",
                message: format!(
                    "the X-BoldSign-Signature timestamp is {age} s old, \
                     more than SIGNHOOK_BOLDSIGN_MAX_AGE_SECS ({max_age})"
                ),
            });
        }
        Ok(())
    }
}

/// The fields [`Provider::parse`] reads; the rest of a payload is skipped.
const PAYLOAD_FIELDS: &[&str] = &[
    "event/id",
    "event/eventType",
    "event/clientId",
    "event/environment",
    "event/created",
    "data/object",
    "data/status",
    "data/documentId",
    "data/messageTitle",
];

impl Provider for BoldSign {
    fn name(&self) -> &'static str {
        NAME
    }

    /// The header is parsed and its timestamp checked before the body is
    /// read ([`Provider::authenticate_headers`]); the HMAC needs the body.
    fn authenticate(&self, headers: &HeaderMap, body: &[u8], now: DateTime<Utc>) -> Result<Sender, ProviderError> {
        let header = self.signature_header(headers, now)?;
        if !self.signed_by_us(&header, body) {
            return Err(ProviderError::InvalidCredential {
                code: "invalid_signature",
                message: "the X-BoldSign-Signature does not match the body under any configured secret".to_owned(),
            });
        }
        Ok(Sender::default())
    }

    fn authenticate_headers(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Result<Option<Sender>, ProviderError> {
        self.signature_header(headers, now).map(|_| None)
    }

    /// BoldSign's SDK example (`examples/WebhookExampleController.cs`, official
    /// .NET SDK boldsign/api-csharp-sdk) answers 200 to a request whose
    /// `X-BoldSign-Event` header is `Verification` before any signature
    /// check: BoldSign sends it while the webhook is being created, before a
    /// signing secret exists.
    fn announces_handshake(&self, headers: &HeaderMap) -> bool {
        headers
            .get(EVENT_HEADER)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim() == VERIFICATION)
    }

    /// Only a body whose `event.eventType` is `Verification` too: any other
    /// event under that header must be signed like every other.
    fn is_handshake(&self, body: &[u8]) -> bool {
        json_object_sparse(body, &["event/eventType"])
            .is_ok_and(|payload| str_at(&Value::Object(payload), "/event/eventType").as_deref() == Some(VERIFICATION))
    }

    fn parse(&self, body: &[u8]) -> Result<Notification, ProviderError> {
        let payload = Value::Object(json_object_sparse(body, PAYLOAD_FIELDS)?);
        let event_id = str_at(&payload, "/event/id")
            .ok_or_else(|| ProviderError::InvalidPayload {
                code: "missing_event_id",
                message: "event.id is missing or empty".to_owned(),
            })?
            .into_owned();
        let event_type = str_at(&payload, "/event/eventType").map_or_else(|| "Unknown".to_owned(), |e| e.into_owned());
        let tenant = str_at(&payload, "/event/clientId")
            .or_else(|| str_at(&payload, "/event/environment"))
            .map(|t| t.into_owned());
        Ok(Notification {
            subject: subject(&payload, &event_type),
            occurred_at: payload.pointer("/event/created").and_then(parse_time),
            tenant,
            event_id,
            event_type,
        })
    }

    fn is_configured(&self) -> bool {
        !self.secrets.is_empty()
    }

    fn webhook_auth(&self) -> &'static str {
        "hmac_sha256"
    }

    fn settings(&self) -> Value {
        let secrets: Vec<_> = self.secrets.iter().map(|s| mask(s)).collect();
        let api = &self.api_settings;
        json!({
            "boldsign_secrets": secrets,
            "boldsign_max_age_secs": self.max_age_secs,
            "boldsign_api_base": api.boldsign_api_base.as_deref().unwrap_or(DEFAULT_API_BASE),
            "boldsign_api_key": api.boldsign_api_key.as_deref().map(mask),
            "boldsign_api_environment": api.boldsign_api_environment,
            "boldsign_api_requests_per_hour": api.boldsign_api_requests_per_hour,
            "polling": Api::describe(self.api.as_ref()),
        })
    }

    fn can_poll(&self) -> bool {
        self.api.is_some()
    }

    fn poll_in<'a>(
        &'a self,
        agreement_id: &'a str,
        _tenant: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subject, PollError>> {
        Box::pin(async move {
            let api = api::for_agreement(self.api.as_ref(), agreement_id)?;
            let document = api
                .get_json(&["v1", "document", "properties"], &[("documentId", agreement_id)])
                .await?;
            Ok(document_subject(agreement_id, &document)?)
        })
    }

    fn poll_kinds(&self) -> &'static [&'static str] {
        &["document"]
    }

    fn documents<'a>(
        &'a self,
        agreement_id: &'a str,
        _tenant: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<DocumentRef>, PollError>> {
        Box::pin(async move {
            api::for_agreement(self.api.as_ref(), agreement_id)?;
            let document = |kind: &str, endpoint: &str, suffix: &str| DocumentRef {
                kind: kind.to_owned(),
                file_name: format!("{agreement_id}{suffix}.pdf"),
                path: vec!["v1".to_owned(), "document".to_owned(), endpoint.to_owned()],
                query: vec![("documentId".to_owned(), agreement_id.to_owned())],
                accept: "application/pdf",
            };
            Ok(vec![
                document(documents::SIGNED, "download", ""),
                document(documents::AUDIT_TRAIL, "downloadAuditLog", "-audit-trail"),
            ])
        })
    }

    fn download<'a>(&'a self, document: &'a DocumentRef) -> BoxFuture<'a, Result<Download, PollError>> {
        Box::pin(api::download(self.api.as_ref(), document))
    }

    fn api_limits(&self) -> Option<ApiLimits> {
        self.api.as_ref().map(Api::limits)
    }

    fn attach(&self, ledger: Arc<dyn ApiLedger>) {
        if let Some(api) = &self.api {
            api.attach(ledger);
        }
    }
}

/// The document as `GET /v1/document/properties` describes it. A status this
/// module does not know is kept as `provider_status` with no normalized status.
fn document_subject(document_id: &str, document: &Value) -> Result<Subject, CallError> {
    let status = str_at(document, "/status")
        .ok_or_else(|| CallError::InvalidResponse("the document has no status".to_owned()))?
        .into_owned();
    Ok(Subject {
        kind: "document".to_owned(),
        id: document_id.to_owned(),
        name: str_at(document, "/messageTitle").map(|s| s.into_owned()),
        status: document_status_of(&status),
        provider_status: Some(status),
        parent: None,
    })
}

/// `data.object` values of events about one document, each with its
/// `documentId`: documents, and the signer's knowledge-based authentication
/// and identity verification on one (official .NET SDK, `WebhookConstants.cs`:
/// `Document`, `KBA`, `IdentityVerification`; `KbaAuthenticationEvent.cs` and
/// `IdentityVerificationEvent.cs` carry `documentId`, `messageTitle`, `status`).
const DOCUMENT_OBJECTS: [&str; 3] = ["document", "knowledgeBasedAuthentication", "identityVerification"];

/// The document an event is about. `Verification` (the URL check BoldSign
/// sends when a webhook is set up), template and sender identity events have
/// none.
fn subject(payload: &Value, event_type: &str) -> Option<Subject> {
    if event_type == "Verification" || event_type.starts_with("Template") || event_type.starts_with("SenderIdentity") {
        return None;
    }
    let data = payload.get("data")?;
    if data
        .get("object")
        .and_then(Value::as_str)
        .is_some_and(|object| !DOCUMENT_OBJECTS.iter().any(|known| object.eq_ignore_ascii_case(known)))
    {
        return None;
    }
    let provider_status = str_at(data, "/status").map(|s| s.into_owned());
    Some(Subject {
        kind: "document".to_owned(),
        id: str_at(data, "/documentId")?.into_owned(),
        name: str_at(data, "/messageTitle").map(|s| s.into_owned()),
        status: status_of(event_type, provider_status.as_deref()),
        provider_status: provider_status.or_else(|| Some(event_type.to_owned())),
        parent: None,
    })
}

/// The event decides when it is decisive, else the document's own status,
/// else a known progress event means the document is in flight. An unknown
/// event with no known status says nothing (recorded in history only).
fn status_of(event_type: &str, data_status: Option<&str>) -> Option<AgreementStatus> {
    use AgreementStatus::*;
    match event_type {
        "Completed" => return Some(Completed),
        "Declined" => return Some(Declined),
        "Revoked" => return Some(Cancelled),
        "Expired" => return Some(Expired),
        "DraftCreated" => return Some(Draft),
        "SendFailed" => return Some(Failed),
        _ => {}
    }
    document_status_of(data_status.unwrap_or_default()).or_else(|| {
        let progress = matches!(
            event_type,
            "Sent"
                | "Viewed"
                | "Signed"
                | "Reassigned"
                | "Edited"
                | "EditFailed"
                | "Reminder"
                | "SignerSaved"
                | "AuthenticationFailed"
                | "DeliveryFailed"
        ) || event_type.starts_with("KBA")
            || event_type.starts_with("IdentityVerification");
        progress.then_some(InProgress)
    })
}

/// A document's own `status`, from an event's `data` or from the API.
///
/// `Scheduled` maps to draft: a scheduled document has not been sent yet.
fn document_status_of(status: &str) -> Option<AgreementStatus> {
    use AgreementStatus::*;
    match status {
        "InProgress" => Some(InProgress),
        "Completed" => Some(Completed),
        "Declined" => Some(Declined),
        "Expired" => Some(Expired),
        "Revoked" => Some(Cancelled),
        "Draft" | "Scheduled" => Some(Draft),
        _ => None,
    }
}

/// How documents go: sent, viewed and signed until completed, or declined,
/// revoked or expired. The event decides the status (see [`status_of`]); the
/// document's own `status` is still in progress until it ends.
const LIFECYCLES: &[(AgreementStatus, &[Step])] = {
    const SENT: Step = Step::new("Sent", "InProgress", "");
    const VIEWED: Step = Step::new("Viewed", "InProgress", "");
    const SIGNED: Step = Step::new("Signed", "InProgress", "");
    const COMPLETED: Step = Step::new("Completed", "Completed", "");
    const DECLINED: Step = Step::new("Declined", "Declined", "");
    const REVOKED: Step = Step::new("Revoked", "Revoked", "");
    const EXPIRED: Step = Step::new("Expired", "Expired", "");
    &[
        (AgreementStatus::Completed, &[SENT, VIEWED, SIGNED, COMPLETED]),
        (AgreementStatus::Declined, &[SENT, VIEWED, DECLINED]),
        (AgreementStatus::Cancelled, &[SENT, VIEWED, REVOKED]),
        (AgreementStatus::Expired, &[SENT, EXPIRED]),
    ]
};

/// A document event shaped like BoldSign's documented webhook payload; the
/// padding goes in the document's description. The document expires 30 days
/// after it was created.
pub fn notification(example: &Example<'_>) -> Value {
    json!({
        "event": {
            "id": example.event_id,
            "created": TimeFormat::UnixSeconds.value(example.at),
            "eventType": example.event_type,
            "clientId": null,
            "environment": "Live",
        },
        "data": {
            "object": "document",
            "documentId": example.agreement_id,
            "messageTitle": "Offer letter",
            "documentDescription": example.padding,
            "status": example.status,
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
            "createdDate": example.created.timestamp(),
            "expiryDate": (example.created + chrono::Duration::days(30)).timestamp(),
            "enableSigningOrder": false,
            "disableEmails": false,
        },
        "document": null,
    })
}

/// `X-BoldSign-Signature` for `body` signed with `secret` at `now`, as
/// BoldSign signs a delivery.
pub fn auth_headers(secret: &str, body: &[u8], now: DateTime<Utc>) -> Result<HeaderMap, InvalidHeaderValue> {
    SIGNATURE_HEADER.carrying(&signature_header(secret, now.timestamp(), body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::{code, headers};

    const NOW: i64 = 1_763_631_700;
    const BODY: &[u8] = include_bytes!("../../tests/fixtures/boldsign-completed.json");

    fn boldsign(secrets: &[&str], max_age_secs: u64) -> BoldSign {
        BoldSign {
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            max_age_secs,
            api_settings: ApiSettings::default(),
            api: None,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(NOW, 0).expect("valid test timestamp")
    }

    /// The hex signature of `<t>.<body>`, computed independently of the code
    /// under test (BoldSign's documented scheme, research/boldsign.md §2).
    fn sign(secret: &str, t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    /// BoldSign's documented answers: 403 `{"error":"Invalid Document ID"}`
    /// for an unknown document (developer docs, troubleshooting: integration
    /// errors), and the
    /// quota's reset time in `X-RateLimit-Reset` (support KB).
    #[test]
    fn unknown_documents_and_quota_resets_are_read_as_documented() {
        let forbidden = axum::http::StatusCode::FORBIDDEN;
        assert_eq!(
            classify(forbidden, &json!({"error": "Invalid Document ID"})),
            Some(CallError::NotFound)
        );
        assert_eq!(
            classify(forbidden, &json!({"error": "Forbidden"})),
            None,
            "a credential problem"
        );
        assert_eq!(
            classify(
                axum::http::StatusCode::BAD_REQUEST,
                &json!({"error": "Invalid Document ID"})
            ),
            None
        );
        let now = Utc::now();
        let headers =
            crate::providers::test_support::headers(&[("X-RateLimit-Reset", &(now.timestamp() + 600).to_string())]);
        let wait = rate_limit_reset(&headers, &Value::Null, now).expect("a reset time");
        assert!(wait > std::time::Duration::from_secs(598) && wait <= std::time::Duration::from_secs(600));
        assert_eq!(rate_limit_reset(&HeaderMap::new(), &Value::Null, now), None);
    }

    #[test]
    fn signature_header_is_what_boldsign_sends() {
        let header = signature_header("secret-1", 1_763_631_687, BODY);
        assert_eq!(
            header,
            format!("t=1763631687, s0={}", sign("secret-1", 1_763_631_687, BODY))
        );
        let parsed = parse_signature_header(&header).expect("well-formed");
        assert_eq!(parsed.timestamp, 1_763_631_687);
        let provider = boldsign(&["secret-1"], 0);
        let signed = headers(&[("X-BoldSign-Signature", &header)]);
        assert_eq!(code(provider.authenticate(&signed, BODY, now())), "ok");
    }

    #[test]
    fn signature_header_table() {
        let ab = || vec![vec![0xab]];
        let ok = |timestamp: i64, signatures| {
            Ok(SignatureHeader {
                timestamp,
                signed_timestamp: timestamp.to_string(),
                signatures,
            })
        };
        let cases: Vec<(&str, Result<SignatureHeader, ()>)> = vec![
            ("t=100, s0=ab", ok(100, ab())),
            ("t=100,s0=ab", ok(100, ab())),
            ("  t = 100 ,   s0 =  ab  ", ok(100, ab())),
            ("s0=ab, t=100", ok(100, ab())),
            ("t=100, s0=AB", ok(100, ab())),
            ("t=100, s0=ab, s1=cd", ok(100, vec![vec![0xab], vec![0xcd]])),
            ("s1=cd, t=100", ok(100, vec![vec![0xcd]])),
            ("t=100, v1=zz, s0=ab, ", ok(100, ab())),
            ("t=100, sig=zz, s0=ab", ok(100, ab())),
            ("s0=ab", Err(())),
            ("t=100", Err(())),
            ("t=100, v1=ab", Err(())),
            ("t=abc, s0=ab", Err(())),
            ("t=-5, s0=ab", Err(())),
            ("t=+5, s0=ab", Err(())),
            ("t=, s0=ab", Err(())),
            ("t=99999999999999999999, s0=ab", Err(())),
            ("t=100, s0=xyz", Err(())),
            ("t=100, s0=abc", Err(())),
            ("t=100, s0=", Err(())),
            ("t=100, t=100, s0=ab", Err(())),
            ("t=100, garbage, s0=ab", Err(())),
            ("", Err(())),
            (",,", Err(())),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_signature_header(input).map_err(|_| ()), expected, "{input:?}");
        }
    }

    #[test]
    fn authentication_table() {
        let t = NOW - 60;
        let good = sign("secret-1", t, BODY);
        let second = sign("secret-2", t, BODY);
        let wrong = sign("other", t, BODY);
        let tampered = sign("secret-1", t, b"{\"event\":{}}");
        let header = |value: String| headers(&[("X-BoldSign-Signature", &value)]);
        let at = |t: i64| format!("t={t}, s0={}", sign("secret-1", t, BODY));
        let provider = boldsign(&["secret-1", "secret-2"], DEFAULT_MAX_AGE_SECS);
        let cases = [
            (header(format!("t={t}, s0={good}")), "ok"),
            (header(format!("t={t}, s0={}", good.to_uppercase())), "ok"),
            (headers(&[("x-boldsign-signature", &format!("t={t},s0={good}"))]), "ok"),
            (header(format!("t={t}, s0={second}")), "ok"),
            (header(format!("t={t}, s0={wrong}, s1={good}")), "ok"),
            (header(format!("t={t}, s0={wrong}")), "invalid_signature"),
            (header(format!("t={t}, s0={tampered}")), "invalid_signature"),
            (header(format!("t={}, s0={good}", t + 1)), "invalid_signature"),
            (header(at(NOW + 299)), "ok"),
            (header(at(NOW + 301)), "timestamp_in_future"),
            (header(at(NOW - 9 * 3600)), "ok"),
            (header(at(NOW - 40 * 86400)), "timestamp_too_old"),
            (header(format!("t={t}")), "malformed_signature"),
            (header("nonsense".to_owned()), "malformed_signature"),
            (
                headers(&[
                    ("x-boldsign-signature", &format!("t={t}, s0={good}")),
                    ("x-boldsign-signature", &format!("t={t}, s0={good}")),
                ]),
                "malformed_signature",
            ),
            (header(String::new()), "missing_signature"),
            (headers(&[]), "missing_signature"),
        ];
        for (headers, expected) in cases {
            assert_eq!(
                code(provider.authenticate(&headers, BODY, now())),
                expected,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn max_age_zero_accepts_any_age_but_not_the_future() {
        let provider = boldsign(&["secret-1"], 0);
        for (t, expected) in [
            (0, "ok"),
            (NOW - 400 * 86400, "ok"),
            (NOW + 3600, "timestamp_in_future"),
        ] {
            let value = format!("t={t}, s0={}", sign("secret-1", t, BODY));
            let result = provider.authenticate(&headers(&[("x-boldsign-signature", &value)]), BODY, now());
            assert_eq!(code(result), expected, "t={t}");
        }
    }

    #[test]
    fn refuses_everything_without_secrets_and_never_shows_one() {
        let t = NOW;
        let value = format!("t={t}, s0={}", sign("secret-1", t, BODY));
        let signed = headers(&[("x-boldsign-signature", &value)]);
        match boldsign(&[], 0).authenticate(&signed, BODY, now()) {
            Err(ProviderError::InvalidCredential { message, .. }) => {
                assert!(message.contains("SIGNHOOK_BOLDSIGN_SECRETS"), "{message}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let provider = boldsign(&["secret-1"], DEFAULT_MAX_AGE_SECS);
        for value in [
            format!("t={t}, s0=00"),
            format!("t=1, s0={}", sign("secret-1", 1, BODY)),
        ] {
            let error = provider
                .authenticate(&headers(&[("x-boldsign-signature", &value)]), BODY, now())
                .expect_err("refused");
            assert!(!error.to_string().contains("secret-1"), "{error}");
        }
        assert!(!provider.settings().to_string().contains("secret-1"));
        assert!(provider.is_configured());
        assert!(!boldsign(&[], 0).is_configured());
    }

    /// Every event type of the official .NET SDK's `WebHookEventType.cs`
    /// (boldsign/api-csharp-sdk, `src/BoldSign/Model/Webhook/`), with the
    /// document's own `status` (`DocumentStatus`) where it decides.
    #[test]
    fn status_table() {
        use AgreementStatus::*;
        let cases = [
            ("Sent", None, Some(InProgress)),
            ("Signed", None, Some(InProgress)),
            ("Completed", Some("InProgress"), Some(Completed)),
            ("Declined", None, Some(Declined)),
            ("Revoked", Some("InProgress"), Some(Cancelled)),
            ("Reassigned", None, Some(InProgress)),
            ("Expired", None, Some(Expired)),
            ("Viewed", None, Some(InProgress)),
            ("AuthenticationFailed", None, Some(InProgress)),
            ("DeliveryFailed", None, Some(InProgress)),
            ("SendFailed", Some("Draft"), Some(Failed)),
            ("DraftCreated", None, Some(Draft)),
            ("IdentityVerificationInitiated", None, Some(InProgress)),
            ("IdentityVerificationSucceeded", None, Some(InProgress)),
            ("IdentityVerificationFailed", None, Some(InProgress)),
            ("Reminder", None, Some(InProgress)),
            ("SignerSaved", None, Some(InProgress)),
            ("Edited", None, Some(InProgress)),
            ("EditFailed", None, Some(InProgress)),
            ("KBAInitiated", None, Some(InProgress)),
            ("KBASucceeded", None, Some(InProgress)),
            ("KBAFailed", None, Some(InProgress)),
            // The document's status decides for events that are not decisive.
            ("Signed", Some("Completed"), Some(Completed)),
            ("Signed", Some("InProgress"), Some(InProgress)),
            ("Sent", Some("Scheduled"), Some(Draft)),
            ("Edited", Some("Draft"), Some(Draft)),
            ("Reminder", Some("Revoked"), Some(Cancelled)),
            ("Viewed", Some("Declined"), Some(Declined)),
            ("Viewed", Some("Expired"), Some(Expired)),
            ("KBAFailed", Some("Declined"), Some(Declined)),
            ("Viewed", Some("SomethingNew"), Some(InProgress)),
            ("SomethingNew", Some("InProgress"), Some(InProgress)),
            ("SomethingNew", None, None),
            ("SomethingNew", Some("SomethingElse"), None),
        ];
        for (event, status, expected) in cases {
            assert_eq!(status_of(event, status), expected, "{event} {status:?}");
        }
        // Events about no document: Verification, templates, sender identities.
        for event in [
            "Verification",
            "TemplateCreated",
            "TemplateCreateFailed",
            "TemplateDraftCreated",
            "TemplateSendFailed",
            "TemplateEdited",
            "SenderIdentityCreated",
            "SenderIdentityUpdated",
            "SenderIdentityDeleted",
            "SenderIdentityRevoked",
            "SenderIdentityVerified",
            "SenderIdentityDenied",
        ] {
            let payload = json!({"data": {"object": "document", "documentId": "d1"}});
            assert_eq!(subject(&payload, event), None, "{event}");
        }
    }

    /// KBA and identity-verification events carry `data.object`
    /// `knowledgeBasedAuthentication` / `identityVerification` with the
    /// document's id (official .NET SDK, `WebhookConstants.cs`,
    /// `KbaAuthenticationEvent.cs`, `IdentityVerificationEvent.cs`).
    #[test]
    fn kba_and_identity_verification_events_are_about_their_document() {
        for (event, object) in [
            ("KBAFailed", "knowledgeBasedAuthentication"),
            ("IdentityVerificationSucceeded", "identityVerification"),
            ("Sent", "document"),
        ] {
            let body = json!({"event": {"id": "e", "eventType": event},
                              "data": {"object": object, "documentId": "d1", "messageTitle": "Offer", "status": "InProgress"}});
            let n = boldsign(&[], 0).parse(body.to_string().as_bytes()).expect("parses");
            let subject = n.subject.unwrap_or_else(|| panic!("{event} names its document"));
            assert_eq!(
                (subject.id.as_str(), subject.status),
                ("d1", Some(AgreementStatus::InProgress)),
                "{event}"
            );
        }
        let senders = json!({"event": {"id": "e", "eventType": "SenderIdentityVerified"},
                             "data": {"object": "senderIdentity", "documentId": "d1"}});
        assert_eq!(
            boldsign(&[], 0)
                .parse(senders.to_string().as_bytes())
                .expect("parses")
                .subject,
            None
        );
    }

    /// `X-BoldSign-Event: Verification` over a `Verification` body is the
    /// URL check (official .NET SDK, `examples/WebhookExampleController.cs`);
    /// the header over any other body is not.
    #[test]
    fn verification_needs_the_header_and_the_body() {
        let provider = boldsign(&[], 0);
        let verification = br#"{"event": {"id": "e", "eventType": "Verification"}, "data": null}"#;
        assert!(provider.announces_handshake(&headers(&[("X-BoldSign-Event", "Verification")])));
        assert!(provider.announces_handshake(&headers(&[("x-boldsign-event", "Verification")])));
        assert!(!provider.announces_handshake(&headers(&[("X-BoldSign-Event", "Completed")])));
        assert!(!provider.announces_handshake(&headers(&[])));
        assert!(provider.is_handshake(verification));
        assert!(!provider.is_handshake(BODY), "a Completed event");
        assert!(!provider.is_handshake(b"not json"));
        assert!(!provider.is_handshake(b"{}"));
    }

    /// The signed bytes start with `t` as the header carries it: a signature
    /// BoldSign made over `<T>.<body>` does not verify under `t=000<T>`.
    #[test]
    fn the_timestamp_is_signed_as_received() {
        let provider = boldsign(&["secret-1"], 0);
        let t = NOW - 60;
        let signature = sign("secret-1", t, BODY);
        let padded = headers(&[("X-BoldSign-Signature", &format!("t=000{t}, s0={signature}"))]);
        assert_eq!(code(provider.authenticate(&padded, BODY, now())), "invalid_signature");
        let exact = headers(&[("X-BoldSign-Signature", &format!("t={t}, s0={signature}"))]);
        assert_eq!(code(provider.authenticate(&exact, BODY, now())), "ok");
        // What the header alone shows is checked before the body is read.
        let stale = headers(&[("X-BoldSign-Signature", &format!("t={}, s0=00", NOW + 3600))]);
        assert_eq!(
            code(provider.authenticate_headers(&stale, now()).map(|_| Sender::default())),
            "timestamp_in_future"
        );
        assert!(matches!(provider.authenticate_headers(&exact, now()), Ok(None)));
    }

    #[test]
    fn documents_from_the_api_use_the_status_table() {
        use AgreementStatus::*;
        let cases = [
            ("InProgress", Some(InProgress)),
            ("Completed", Some(Completed)),
            ("Declined", Some(Declined)),
            ("Expired", Some(Expired)),
            ("Revoked", Some(Cancelled)),
            ("Draft", Some(Draft)),
            ("Scheduled", Some(Draft)),
            ("SomethingNew", None),
        ];
        for (status, expected) in cases {
            let document = json!({"documentId": "d1", "messageTitle": "Offer letter", "status": status,
                                  "signerDetails": [{"signerEmail": "a@example.com", "status": "NotCompleted"}]});
            let subject = document_subject("d1", &document).expect("has a status");
            assert_eq!(subject.status, expected, "{status}");
            assert_eq!(subject.provider_status.as_deref(), Some(status));
            assert_eq!(
                (subject.kind.as_str(), subject.id.as_str(), subject.name.as_deref()),
                ("document", "d1", Some("Offer letter"))
            );
        }
        for bad in [json!({"documentId": "d1"}), json!({"status": null}), json!("Completed")] {
            assert!(
                matches!(document_subject("d1", &bad), Err(CallError::InvalidResponse(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn parses_the_documented_example() {
        let n = boldsign(&[], 0).parse(BODY).expect("fixture parses");
        assert_eq!(n.event_id, "5a3f1f0e-7c55-4d4e-8e0e-0b8f9a6c1d22");
        assert_eq!(n.event_type, "Completed");
        assert_eq!(
            n.occurred_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2025-11-20T09:41:27+00:00")
        );
        assert_eq!(n.tenant.as_deref(), Some("Live"));
        let subject = n.subject.expect("document subject");
        assert_eq!(subject.kind, "document");
        assert_eq!(subject.id, "0d6f4a8c-1b9e-4a51-9f63-2a7d1c5e8b40");
        assert_eq!(subject.name.as_deref(), Some("Offer letter"));
        assert_eq!(subject.status, Some(AgreementStatus::Completed));
        assert_eq!(subject.provider_status.as_deref(), Some("Completed"));
    }

    #[test]
    fn extraction_table() {
        // (body, tenant, subject id, provider status)
        let cases = [
            (
                json!({"event": {"id": "e", "eventType": "Sent", "clientId": "c1", "environment": "Test",
                                 "created": "2026-01-02T03:04:05Z"},
                       "data": {"documentId": "d1"}}),
                Some("c1"),
                Some("d1"),
                Some("Sent"),
            ),
            (
                json!({"event": {"id": "e", "eventType": "Verification", "environment": "Live"},
                       "data": {"documentId": "d1"}}),
                Some("Live"),
                None,
                None,
            ),
            (
                json!({"event": {"id": "e", "eventType": "TemplateCreated", "clientId": ""},
                       "data": {"object": "template", "templateId": "t1", "documentId": "d1"}}),
                None,
                None,
                None,
            ),
            (
                json!({"event": {"id": "e", "eventType": "SenderIdentityVerified"}, "data": {"documentId": "d1"}}),
                None,
                None,
                None,
            ),
            (
                json!({"event": {"id": "e", "eventType": "Sent"}, "data": {"object": "document"}}),
                None,
                None,
                None,
            ),
            (
                json!({"event": {"id": "e", "eventType": "Signed"},
                       "data": {"object": "document", "documentId": "d2", "status": "InProgress"}}),
                None,
                Some("d2"),
                Some("InProgress"),
            ),
        ];
        for (body, tenant, subject_id, provider_status) in cases {
            let n = boldsign(&[], 0).parse(body.to_string().as_bytes()).expect("parses");
            assert_eq!(n.tenant.as_deref(), tenant, "{body}");
            assert_eq!(n.subject.as_ref().map(|s| s.id.as_str()), subject_id, "{body}");
            assert_eq!(
                n.subject.as_ref().and_then(|s| s.provider_status.as_deref()),
                provider_status,
                "{body}"
            );
        }
        let n = boldsign(&[], 0)
            .parse(br#"{"event": {"id": 42, "created": "2026-01-02T03:04:05Z"}}"#)
            .expect("parses");
        assert_eq!((n.event_id.as_str(), n.event_type.as_str()), ("42", "Unknown"));
        assert_eq!(n.occurred_at.map(|t| t.timestamp()), Some(1_767_323_045));
    }

    #[test]
    fn rejects_bodies_it_cannot_identify() {
        for body in [
            &b"not json"[..],
            b"[1,2]",
            b"{}",
            br#"{"event": {"id": ""}}"#,
            br#"{"event": {"id": null, "eventType": "Sent"}}"#,
            b"",
        ] {
            assert!(
                matches!(boldsign(&[], 0).parse(body), Err(ProviderError::InvalidPayload { .. })),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
