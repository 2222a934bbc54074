//! Adobe Acrobat Sign (REST v6 webhooks).
//!
//! Adobe authenticates with the application's client ID in `X-AdobeSign-ClientId`,
//! and expects it echoed back, in a header and in the JSON body, both on the GET
//! "verification of intent" and on every notification; an echo for an unknown
//! ID would let someone register our URL for their application. The client ID
//! is no secret, so with *Webhooks OAuth 2.0* configured (see
//! `webhook_oauth`) every notification must also carry a bearer token that
//! signhook issued; the guide only names notifications as carrying it, so
//! the verification GET is checked only when it sends one.
//!
//! Polling reads `GET /api/rest/v6/agreements/{id}` at the account's
//! `apiAccessPoint`, authenticated with an integration key or an OAuth refresh
//! token (renewed at `POST /oauth/v2/refresh` on the same access point). The
//! access point is configured, or discovered: the OAuth answer's
//! `api_access_point`, else `GET /api/rest/v6/baseUris` on the non-shard host
//! (`apiAccessPoint`, with a trailing slash), and discovered again on
//! `INVALID_API_ACCESS_POINT` (developer guide, best practices). Only
//! agreements are polled: web forms (`widget`) and bulk sends (`megaSign`)
//! are not (their agreements, each with its own id, are). An identical GET
//! goes at most once per minimum object polling interval (10 minutes below
//! Enterprise, 3 a minute on Enterprise/Global: developer guide, API usage)
//! and carries the last ETag (`If-None-Match`; 304 = unchanged).
//!
//! Watching one agreement registers a `RESOURCE`-scope webhook for it with
//! `POST /api/rest/v6/webhooks` (a `WebhookInfo` delivering to our URL, or
//! linked to the account's OAuth `webhookEndpoint` when one is configured;
//! answered with
//! `WebhookCreationResponse {id}`), sent once: on 400
//! `DUPLICATE_WEBHOOK_CONFIGURATION` or a lost answer the agreement's
//! existing webhook is found with `GET /api/rest/v6/webhooks` and adopted.
//! It is removed with `DELETE /api/rest/v6/webhooks/{webhookId}` carrying
//! `If-Match` with the ETag of `GET /api/rest/v6/webhooks/{webhookId}` (the
//! API definition marks it required). Scopes: `webhook_read` (the GETs),
//! `webhook_write` (POST) and `webhook_retention` (DELETE), besides
//! `agreement_read`.
//!
//! A completed agreement's copy: the signed PDF is
//! `GET /api/rest/v6/agreements/{id}/combinedDocument` (`Accept:
//! application/pdf`, without `attachAuditReport`: the audit trail is kept on
//! its own) and the audit trail `GET /api/rest/v6/agreements/{id}/auditTrail`
//! (API definition `agreements.json`, `getCombinedDocument` and
//! `getAuditTrail`; developer guide, "Download the agreement"), both with
//! `agreement_read`. A notification of a webhook with `includeSignedDocuments`
//! carries the signed PDF as base64 in `agreement.signedDocumentInfo.document`
//! (webhook guide, agreement events); it is taken from there, unless Adobe
//! trimmed it to keep the payload under 10 MB (`conditionalParametersTrimmed`,
//! webhook payload overview): then it is downloaded.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use axum::http::{
    header::{InvalidHeaderValue, AUTHORIZATION},
    HeaderMap, HeaderName, HeaderValue, StatusCode,
};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    api::{self, Api, Base, Credential},
    client::{ApiClient, CallError, Dialect},
    credentials::{matches_any, CredentialHeader},
    payload::{json_object_sparse, parse_time, str_at},
    settings::{base_url, key_or_oauth, Auth, ClientSettings},
    traffic::{CredentialFlag, Example, IdShape, Step, TimeFormat, Traffic},
    webhook_oauth::{WebhookOAuthSettings, WebhookTokens},
    Ack, PollError, Provider, ProviderError, Registration, Sender, WatchError,
};
use crate::{
    agreement::AgreementStatus,
    config::{invalid, mask, optional_string, string_list, Config, ConfigError, HumanDuration},
    documents::{self, DocumentRef, Download, InlineDocument},
    event::{Notification, Parent, Receipt, Subject},
    ledger::{ApiLedger, ApiLimits},
};

pub const NAME: &str = "adobe-sign";
pub const REGISTRATION: Registration = Registration {
    name: NAME,
    build,
    traffic: Traffic {
        notification,
        auth_headers,
        time_format: TimeFormat::Rfc3339Seconds,
        id_shape: IdShape::PrefixedHex("CBJCHBCAABAA"),
        lifecycles: LIFECYCLES,
        credential: CredentialFlag {
            flag: "adobe-client-id",
            variable: "SIGNHOOK_ADOBE_SIGN_CLIENT_IDS",
            what: "a client ID",
            help: "Adobe Sign client ID to send; default: the first of the server's list",
        },
    },
};
const CLIENT_ID_HEADER: CredentialHeader = CredentialHeader {
    name: "X-AdobeSign-ClientId",
    missing_code: "missing_client_id",
    malformed_code: "invalid_client_id",
};
/// Resource objects a notification may carry, in the order we look for them
/// when `eventResourceType` does not name one. Library documents (templates)
/// have no signing lifecycle and are stored without an agreement.
const RESOURCE_KINDS: [&str; 3] = [AGREEMENT, "widget", "megaSign"];
/// The resource kind of an agreement: what is polled and watched.
const AGREEMENT: &str = "agreement";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Settings {
    /// `SIGNHOOK_ADOBE_SIGN_CLIENT_IDS`: application (client) IDs allowed to
    /// register and call this URL.
    #[serde(deserialize_with = "string_list")]
    adobe_sign_client_ids: Vec<String>,
    /// `SIGNHOOK_ADOBE_SIGN_WEBHOOK_EVENTS`: the `webhookSubscriptionEvents`
    /// of per-agreement webhooks; empty means [`DEFAULT_WEBHOOK_EVENTS`].
    #[serde(deserialize_with = "string_list")]
    adobe_sign_webhook_events: Vec<String>,
    /// `SIGNHOOK_ADOBE_SIGN_WEBHOOK_ENDPOINT_ID`: the account's
    /// `webhookEndpoint` (Webhooks OAuth 2.0); set, per-agreement webhooks
    /// are linked to it (`webhookEndpointInfo`), so their notifications carry
    /// its bearer token.
    #[serde(deserialize_with = "optional_string")]
    adobe_sign_webhook_endpoint_id: Option<String>,
}

/// Every agreement event: the status mapping needs the decisive ones.
const DEFAULT_WEBHOOK_EVENTS: &str = "AGREEMENT_ALL";

/// Default of `SIGNHOOK_ADOBE_SIGN_WEBHOOK_OAUTH_TOKEN_TTL`: short-lived;
/// Adobe fetches a token before notifying (developer guide, Webhooks OAuth 2.0).
const DEFAULT_WEBHOOK_TOKEN_TTL: HumanDuration = HumanDuration::from_secs(15 * 60);

/// Settings of Webhooks OAuth 2.0, where signhook is the authorization
/// server the account's `webhookEndpoint` names. Not `Debug`: secrets.
#[derive(Deserialize)]
#[serde(default)]
struct WebhookOAuthConfig {
    /// `SIGNHOOK_ADOBE_SIGN_WEBHOOK_OAUTH_CLIENTS`: `client_id:client_secret`
    /// pairs, as given in the `webhookEndpoint`'s `oAuth20`; set, every
    /// notification needs a token from `POST /webhooks/adobe-sign/oauth/token`.
    #[serde(deserialize_with = "string_list")]
    adobe_sign_webhook_oauth_clients: Vec<String>,
    /// `SIGNHOOK_ADOBE_SIGN_WEBHOOK_OAUTH_SIGNING_KEYS`: HMAC keys of the
    /// tokens, the same on every replica; the first signs, all verify.
    #[serde(deserialize_with = "string_list")]
    adobe_sign_webhook_oauth_signing_keys: Vec<String>,
    /// `SIGNHOOK_ADOBE_SIGN_WEBHOOK_OAUTH_TOKEN_TTL`: tokens' lifetime.
    adobe_sign_webhook_oauth_token_ttl: HumanDuration,
}

impl Default for WebhookOAuthConfig {
    fn default() -> Self {
        Self {
            adobe_sign_webhook_oauth_clients: Vec::new(),
            adobe_sign_webhook_oauth_signing_keys: Vec::new(),
            adobe_sign_webhook_oauth_token_ttl: DEFAULT_WEBHOOK_TOKEN_TTL,
        }
    }
}

impl WebhookOAuthConfig {
    fn tokens(&self) -> Result<Option<WebhookTokens>, ConfigError> {
        WebhookTokens::from_settings(
            NAME,
            WebhookOAuthSettings {
                clients: (
                    "adobe_sign_webhook_oauth_clients",
                    &self.adobe_sign_webhook_oauth_clients,
                ),
                signing_keys: (
                    "adobe_sign_webhook_oauth_signing_keys",
                    &self.adobe_sign_webhook_oauth_signing_keys,
                ),
                token_ttl: (
                    "adobe_sign_webhook_oauth_token_ttl",
                    self.adobe_sign_webhook_oauth_token_ttl,
                ),
            },
        )
    }
}

impl Settings {
    /// The configured webhook events, checked to look like Adobe event names
    /// (`AGREEMENT_ALL`, `AGREEMENT_WORKFLOW_COMPLETED`).
    fn webhook_events(&self) -> Result<Vec<String>, ConfigError> {
        if self.adobe_sign_webhook_events.is_empty() {
            return Ok(vec![DEFAULT_WEBHOOK_EVENTS.to_owned()]);
        }
        match self
            .adobe_sign_webhook_events
            .iter()
            .find(|event| !event.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        {
            Some(bad) => Err(invalid(
                "adobe_sign_webhook_events",
                format!("`{bad}` is not an Adobe Sign event name like AGREEMENT_ALL or AGREEMENT_WORKFLOW_COMPLETED"),
            )),
            None => Ok(self.adobe_sign_webhook_events.clone()),
        }
    }
}

/// Default of `SIGNHOOK_ADOBE_SIGN_API_DISCOVERY_URL`: Adobe's non-shard
/// host, where `GET /api/rest/v6/baseUris` answers for any account.
const DEFAULT_DISCOVERY_URL: &str = "https://api.echosign.com";
/// Default of `SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL`: Adobe's minimum object
/// polling interval below Enterprise tier (1 identical GET per 10 minutes).
const DEFAULT_MIN_POLL_INTERVAL: HumanDuration = HumanDuration::from_secs(600);
/// Default of `SIGNHOOK_ADOBE_SIGN_API_REQUESTS_PER_HOUR`. Adobe publishes no
/// number for the account as a whole (its limits are per endpoint and plan);
/// its 429s pause the account whatever this says.
const DEFAULT_REQUESTS_PER_HOUR: u32 = 3600;
/// Adobe's fixed client ID for webhooks created in its web UI (third-party
/// sourced, see the README); only mentioned in messages.
const UI_CLIENT_ID: &str = "UB7E5BXCXY";

/// Settings of the REST API client, for polling. Not `Debug`: it holds secrets.
#[derive(Deserialize)]
#[serde(default)]
struct ApiSettings {
    /// `SIGNHOOK_ADOBE_SIGN_API_BASE`: the account's `apiAccessPoint`, e.g.
    /// `https://api.na1.adobesign.com` (it differs per account and shard);
    /// unset: discovered.
    #[serde(deserialize_with = "optional_string")]
    adobe_sign_api_base: Option<String>,
    /// `SIGNHOOK_ADOBE_SIGN_API_DISCOVERY_URL`: where the access point is
    /// asked (`/api/rest/v6/baseUris`) and, while it is unknown, OAuth
    /// tokens refreshed (`/oauth/v2/refresh`).
    adobe_sign_api_discovery_url: String,
    /// `SIGNHOOK_ADOBE_SIGN_MIN_POLL_INTERVAL`: shortest time between two
    /// identical GETs; `10m` below Enterprise tier, `20s` on Enterprise/Global.
    adobe_sign_min_poll_interval: HumanDuration,
    /// `SIGNHOOK_ADOBE_SIGN_API_REQUESTS_PER_HOUR`: the account's budget, for
    /// every replica together.
    adobe_sign_api_requests_per_hour: u32,
    /// `SIGNHOOK_ADOBE_SIGN_API_TOKEN`: an integration key, sent as a bearer token.
    #[serde(deserialize_with = "optional_string")]
    adobe_sign_api_token: Option<String>,
    /// `SIGNHOOK_ADOBE_SIGN_OAUTH_CLIENT_ID`, `..._CLIENT_SECRET` and
    /// `..._REFRESH_TOKEN`: an OAuth application and a refresh token granted
    /// to it (with at least `agreement_read`); instead of an integration key.
    #[serde(deserialize_with = "optional_string")]
    adobe_sign_oauth_client_id: Option<String>,
    #[serde(deserialize_with = "optional_string")]
    adobe_sign_oauth_client_secret: Option<String>,
    #[serde(deserialize_with = "optional_string")]
    adobe_sign_oauth_refresh_token: Option<String>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            adobe_sign_api_base: None,
            adobe_sign_api_discovery_url: DEFAULT_DISCOVERY_URL.to_owned(),
            adobe_sign_min_poll_interval: DEFAULT_MIN_POLL_INTERVAL,
            adobe_sign_api_requests_per_hour: DEFAULT_REQUESTS_PER_HOUR,
            adobe_sign_api_token: None,
            adobe_sign_oauth_client_id: None,
            adobe_sign_oauth_client_secret: None,
            adobe_sign_oauth_refresh_token: None,
        }
    }
}

impl ApiSettings {
    /// The API client; `None` (polling off) when no credential is set.
    fn api(&self, config: &Config) -> Result<Option<Api>, ConfigError> {
        let client_settings = ClientSettings::from_config(config)?;
        let base = self
            .adobe_sign_api_base
            .as_deref()
            .map(|base| base_url("adobe_sign_api_base", base))
            .transpose()?;
        let auth = key_or_oauth(
            ("adobe_sign_api_token", self.adobe_sign_api_token.as_deref()),
            [
                ("adobe_sign_oauth_client_id", self.adobe_sign_oauth_client_id.as_deref()),
                (
                    "adobe_sign_oauth_client_secret",
                    self.adobe_sign_oauth_client_secret.as_deref(),
                ),
                (
                    "adobe_sign_oauth_refresh_token",
                    self.adobe_sign_oauth_refresh_token.as_deref(),
                ),
            ],
        )?;
        let Some(auth) = auth else { return Ok(None) };
        if self.adobe_sign_api_requests_per_hour == 0 {
            return Err(invalid("adobe_sign_api_requests_per_hour", "must be greater than 0"));
        }
        let discovery = base_url("adobe_sign_api_discovery_url", &self.adobe_sign_api_discovery_url)?;
        let token_base = base.clone().unwrap_or_else(|| discovery.clone());
        let base = match base {
            Some(base) => Base::Fixed(base),
            None => Base::Discovered {
                discovery: api::endpoint(&discovery, &["api", "rest", "v6", "baseUris"]),
                field: "apiAccessPoint",
                found: RwLock::new(None),
            },
        };
        let credential = match auth {
            Auth::Key(key) => Credential::bearer(key, "adobe_sign_api_token")?,
            Auth::OAuth(grant) => Credential::oauth(api::endpoint(&token_base, &["oauth", "v2", "refresh"]), grant),
        };
        let limits = ApiLimits {
            per_hour: self.adobe_sign_api_requests_per_hour,
            min_interval: self.adobe_sign_min_poll_interval.get(),
        };
        Ok(Some(Api::new(
            ApiClient::new(&client_settings, NAME)?,
            base,
            credential,
            limits,
            Dialect {
                classify,
                wait_hint: retry_after_in_body,
            },
        )))
    }
}

/// What Adobe's error codes mean (API definition `agreements.json`,
/// `webhooks.json`; developer guide, webhook APIs and best practices):
/// `PERMISSION_DENIED` (403 in the API definition, 404 in the webhook
/// guide's table) is a credential problem, not an unknown agreement;
/// `DUPLICATE_WEBHOOK_CONFIGURATION` means the webhook exists;
/// `INVALID_API_ACCESS_POINT` means the account moved shard. Any other 404
/// (`INVALID_AGREEMENT_ID`, `INVALID_WEBHOOK_ID`) is "not found".
/// Adobe's throttling answers carry the wait in seconds in `retryAfter`
/// besides the `Retry-After` header (developer guide, API usage; a 2022
/// release note says some calls lacked it then).
fn retry_after_in_body(_: &HeaderMap, body: &Value, _: DateTime<Utc>) -> Option<Duration> {
    let secs = body.get("retryAfter")?;
    let secs = secs.as_f64().or_else(|| secs.as_str()?.trim().parse().ok())?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)))
}

fn classify(status: StatusCode, body: &Value) -> Option<CallError> {
    let code = body.get("code").and_then(Value::as_str).unwrap_or_default();
    match (status.as_u16(), code) {
        (403 | 404, "PERMISSION_DENIED") => Some(CallError::PermissionDenied(format!(
            "Adobe Sign answered {} PERMISSION_DENIED: the API user cannot see or change this resource. \
             Give the OAuth grant the scope modifier that reaches its owner (agreement_read:account or :group \
             for other users' agreements; webhook_read, webhook_write and webhook_retention for webhooks), \
             or use the credentials of the user who sent or shares it",
            status.as_u16()
        ))),
        (400, "DUPLICATE_WEBHOOK_CONFIGURATION") => Some(CallError::Duplicate),
        (_, "INVALID_API_ACCESS_POINT") => Some(CallError::WrongAccessPoint),
        _ => None,
    }
}

pub struct AdobeSign {
    client_ids: Vec<String>,
    webhook_events: Vec<String>,
    /// The `webhookEndpoint` per-agreement webhooks are linked to, if any.
    webhook_endpoint_id: Option<String>,
    api_settings: ApiSettings,
    /// The REST API client; `None` when no API credential is configured.
    api: Option<Api>,
    /// Webhooks OAuth 2.0; `None`: the client ID alone authenticates.
    webhook_tokens: Option<WebhookTokens>,
    webhook_token_ttl: HumanDuration,
}

pub fn build(config: &Config) -> Result<Arc<dyn Provider>, ConfigError> {
    let settings: Settings = config.extract()?;
    let api_settings: ApiSettings = config.extract()?;
    let oauth: WebhookOAuthConfig = config.extract()?;
    let mut client_ids = settings.adobe_sign_client_ids.clone();
    // The webhooks that watch registers are notified with the OAuth
    // application's client ID: it is accepted without being listed.
    if let Some(oauth_client_id) = &api_settings.adobe_sign_oauth_client_id {
        if !client_ids.contains(oauth_client_id) {
            client_ids.push(oauth_client_id.clone());
        }
    }
    Ok(Arc::new(AdobeSign {
        webhook_events: settings.webhook_events()?,
        webhook_endpoint_id: settings.adobe_sign_webhook_endpoint_id.clone(),
        client_ids,
        api: api_settings.api(config)?,
        api_settings,
        webhook_tokens: oauth.tokens()?,
        webhook_token_ttl: oauth.adobe_sign_webhook_oauth_token_ttl,
    }))
}

impl AdobeSign {
    fn allowed_client_id(&self, headers: &HeaderMap) -> Result<String, ProviderError> {
        let client_id = CLIENT_ID_HEADER.read(headers)?;
        if !matches_any(client_id.as_bytes(), &self.client_ids) {
            return Err(ProviderError::Forbidden {
                code: "unknown_client_id",
                message: format!(
                    "this X-AdobeSign-ClientId is not in SIGNHOOK_ADOBE_SIGN_CLIENT_IDS (webhooks created in Adobe's web UI use {UI_CLIENT_ID})"
                ),
            });
        }
        Ok(client_id.to_owned())
    }

    fn echo(client_id: &str) -> Ack {
        let value = HeaderValue::from_str(client_id).expect("client id was read from a valid header value");
        Ack {
            headers: vec![(HeaderName::from_static("x-adobesign-clientid"), value)],
            body: json!({ "xAdobeSignClientId": client_id }),
        }
    }
}

/// The fields [`Provider::parse`] reads; the rest of a payload is skipped.
const PAYLOAD_FIELDS: &[&str] = &[
    "webhookNotificationId",
    "event",
    "eventDate",
    "eventResourceType",
    "agreement/id",
    "agreement/name",
    "agreement/status",
    "widget/id",
    "widget/name",
    "widget/status",
    "megaSign/id",
    "megaSign/name",
    "megaSign/status",
    "megasign/id",
    "megasign/name",
    "megasign/status",
    "eventResourceParentType",
    "eventResourceParentId",
];

impl Provider for AdobeSign {
    fn name(&self) -> &'static str {
        NAME
    }

    fn verify_intent(&self, headers: &HeaderMap) -> Result<Ack, ProviderError> {
        if let (Some(tokens), true) = (&self.webhook_tokens, headers.contains_key(AUTHORIZATION)) {
            tokens.verify(headers, Utc::now())?;
        }
        self.allowed_client_id(headers).map(|id| Self::echo(&id))
    }

    fn authenticate(&self, headers: &HeaderMap, _body: &[u8], now: DateTime<Utc>) -> Result<Sender, ProviderError> {
        if let Some(tokens) = &self.webhook_tokens {
            tokens.verify(headers, now)?;
        }
        let client_id = self.allowed_client_id(headers)?;
        Ok(Sender {
            tenant: Some(client_id),
        })
    }

    /// The client ID is all there is: checked before the body is read.
    fn authenticate_headers(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Result<Option<Sender>, ProviderError> {
        self.authenticate(headers, &[], now).map(Some)
    }

    fn parse(&self, body: &[u8]) -> Result<Notification, ProviderError> {
        let payload = Value::Object(json_object_sparse(body, PAYLOAD_FIELDS)?);
        let event_id = str_at(&payload, "/webhookNotificationId")
            .ok_or_else(|| ProviderError::InvalidPayload {
                code: "missing_event_id",
                message: "webhookNotificationId is missing or empty".to_owned(),
            })?
            .into_owned();
        let event_type = str_at(&payload, "/event").map_or_else(|| "UNKNOWN".to_owned(), |e| e.into_owned());
        Ok(Notification {
            subject: subject(&payload, &event_type),
            occurred_at: payload.get("eventDate").and_then(parse_time),
            tenant: None,
            event_id,
            event_type,
        })
    }

    fn acknowledge(&self, sender: &Sender, _receipt: Receipt) -> Ack {
        Self::echo(sender.tenant.as_deref().unwrap_or_default())
    }

    fn is_configured(&self) -> bool {
        !self.client_ids.is_empty()
    }

    fn webhook_auth(&self) -> &'static str {
        match self.webhook_tokens {
            Some(_) => "oauth2_bearer",
            None => "client_id",
        }
    }

    /// The client ID is an application id, not a secret (webhooks made in
    /// Adobe's web UI all carry the same one); a bearer token is.
    fn weakly_authenticated(&self) -> bool {
        self.webhook_tokens.is_none()
    }

    /// Adobe shows a rejected agreement as `CANCELLED` (README's status
    /// table), so that answer confirms an `AGREEMENT_REJECTED` too.
    fn confirms_final(&self, claimed: AgreementStatus, polled: &Subject) -> bool {
        polled.status == Some(claimed)
            || (claimed == AgreementStatus::Declined && polled.status == Some(AgreementStatus::Cancelled))
    }

    fn webhook_tokens(&self) -> Option<&WebhookTokens> {
        self.webhook_tokens.as_ref()
    }

    fn settings(&self) -> Value {
        let api = &self.api_settings;
        let oauth = WebhookTokens::describe(self.webhook_tokens.as_ref());
        json!({
            "adobe_sign_client_ids": self.client_ids,
            "adobe_sign_webhook_endpoint_id": self.webhook_endpoint_id,
            "adobe_sign_webhook_oauth": oauth,
            "adobe_sign_webhook_oauth_token_ttl": self.webhook_token_ttl,
            "adobe_sign_webhook_events": self.webhook_events,
            "adobe_sign_api_base": api.adobe_sign_api_base,
            "adobe_sign_api_discovery_url": api.adobe_sign_api_discovery_url,
            "adobe_sign_min_poll_interval": api.adobe_sign_min_poll_interval.get().as_secs(),
            "adobe_sign_api_requests_per_hour": api.adobe_sign_api_requests_per_hour,
            "adobe_sign_api_token": api.adobe_sign_api_token.as_deref().map(mask),
            "adobe_sign_oauth_client_id": api.adobe_sign_oauth_client_id,
            "adobe_sign_oauth_client_secret": api.adobe_sign_oauth_client_secret.as_deref().map(mask),
            "adobe_sign_oauth_refresh_token": api.adobe_sign_oauth_refresh_token.as_deref().map(mask),
            "polling": Api::describe(self.api.as_ref()),
        })
    }

    fn can_poll(&self) -> bool {
        self.api.is_some()
    }

    /// Agreements only: a web form's (`widget`) or bulk send's (`megaSign`)
    /// id is not an agreement id (see [`Provider::poll_kinds`]).
    fn poll_in<'a>(
        &'a self,
        agreement_id: &'a str,
        _tenant: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subject, PollError>> {
        Box::pin(async move {
            let api = api::for_agreement(self.api.as_ref(), agreement_id)?;
            let agreement = api.get_json(&[API, REST, V6, "agreements", agreement_id], &[]).await?;
            Ok(agreement_subject(agreement_id, &agreement)?)
        })
    }

    fn poll_kinds(&self) -> &'static [&'static str] {
        &[AGREEMENT]
    }

    fn api_limits(&self) -> Option<ApiLimits> {
        self.api.as_ref().map(Api::limits)
    }

    fn attach(&self, ledger: Arc<dyn ApiLedger>) {
        if let Some(api) = &self.api {
            api.attach(ledger);
        }
    }

    fn watch_kind(&self) -> Option<&'static str> {
        Some(AGREEMENT)
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
                path: [API, REST, V6, "agreements", agreement_id, endpoint]
                    .map(str::to_owned)
                    .to_vec(),
                query: Vec::new(),
                accept: PDF,
            };
            Ok(vec![
                document(documents::SIGNED, "combinedDocument", ""),
                document(documents::AUDIT_TRAIL, "auditTrail", "-audit-trail"),
            ])
        })
    }

    fn download<'a>(&'a self, document: &'a DocumentRef) -> BoxFuture<'a, Result<Download, PollError>> {
        Box::pin(api::download(self.api.as_ref(), document))
    }

    fn inline_document(&self, body: &[u8]) -> Option<InlineDocument> {
        signed_document_in(body)
    }

    fn watch<'a>(&'a self, agreement_id: &'a str, webhook_url: &'a str) -> BoxFuture<'a, Result<String, WatchError>> {
        Box::pin(async move {
            let api = api::for_agreement(self.api.as_ref(), agreement_id)?;
            let target = match &self.webhook_endpoint_id {
                Some(id) => WebhookTarget::Endpoint(id),
                None => WebhookTarget::Url(webhook_url),
            };
            let body = webhook_info(agreement_id, target, &self.webhook_events);
            let error = match api.post_json(&[API, REST, V6, "webhooks"], &body).await {
                Ok(created) => {
                    let id = str_at(&created, "/id").ok_or_else(|| {
                        CallError::InvalidResponse("the webhook creation answer has no id".to_owned())
                    })?;
                    return Ok(id.into_owned());
                }
                // Adobe has it already, or may have made it before the answer was lost.
                Err(error @ (CallError::Duplicate | CallError::Transport(_) | CallError::InvalidResponse(_))) => error,
                Err(error @ CallError::Status { status: 500.., .. }) => error,
                Err(error) => return Err(error.into()),
            };
            match existing_webhook(api, agreement_id, target).await? {
                Some(id) => {
                    tracing::info!(provider = NAME, agreement_id, webhook_id = %id, after = %error,
                        "adopted the agreement's existing webhook instead of creating another");
                    Ok(id)
                }
                None => Err(error.into()),
            }
        })
    }

    /// Reads the webhook's ETag, then deletes it with `If-Match`.
    fn unwatch<'a>(&'a self, webhook_id: &'a str) -> BoxFuture<'a, Result<(), WatchError>> {
        Box::pin(async move {
            let api = api::for_agreement(self.api.as_ref(), webhook_id)?;
            let path = [API, REST, V6, "webhooks", webhook_id];
            let current = api.get(&path, &[]).await?;
            api.delete(&path, current.etag.as_deref()).await?;
            Ok(())
        })
    }
}

const API: &str = "api";
const PDF: &str = "application/pdf";
const REST: &str = "rest";
const V6: &str = "v6";
/// Pages of `GET /webhooks` read when looking for an existing webhook.
const MAX_WEBHOOK_PAGES: usize = 50;

/// Where a per-agreement webhook delivers: a URL (`webhookUrlInfo`), or the
/// account's `webhookEndpoint` (`webhookEndpointInfo`, "do not provide a
/// webhookUrlInfo" with it: developer guide, webhook APIs).
#[derive(Clone, Copy)]
enum WebhookTarget<'a> {
    Url(&'a str),
    Endpoint(&'a str),
}

impl WebhookTarget<'_> {
    /// Whether a `UserWebhook` of the list delivers there (a linked one names
    /// its `webhookEndpointInfo.webhookEndpointId`: developer guide, `GET /webhooks`).
    fn is_of(&self, hook: &Value) -> bool {
        match self {
            Self::Url(url) => str_at(hook, "/webhookUrlInfo/url").as_deref() == Some(*url),
            Self::Endpoint(id) => str_at(hook, "/webhookEndpointInfo/webhookEndpointId").as_deref() == Some(*id),
        }
    }
}

/// The id of the webhook (made by this API user) that delivers the
/// agreement's events to `target`, from `GET /webhooks` (`UserWebhooks`:
/// `userWebhookList`, paged by `page.nextCursor`).
async fn existing_webhook(
    api: &Api,
    agreement_id: &str,
    target: WebhookTarget<'_>,
) -> Result<Option<String>, CallError> {
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_WEBHOOK_PAGES {
        let mut query = vec![("scope", "RESOURCE"), ("resourceType", "AGREEMENT")];
        if let Some(cursor) = cursor.as_deref() {
            query.push(("cursor", cursor));
        }
        let page = api.get_json(&[API, REST, V6, "webhooks"], &query).await?;
        let found = page
            .get("userWebhookList")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|hook| str_at(hook, "/resourceId").as_deref() == Some(agreement_id) && target.is_of(hook))
            .and_then(|hook| str_at(hook, "/id"));
        if let Some(id) = found {
            return Ok(Some(id.into_owned()));
        }
        match str_at(&page, "/page/nextCursor") {
            Some(next) => cursor = Some(next.into_owned()),
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// The signed PDF a notification carries in
/// `agreement.signedDocumentInfo.document` (base64), if it does and it
/// decodes; a trimmed payload (`conditionalParametersTrimmed`) has none.
/// Only the fields read are deserialized (borrowed, not copied).
fn signed_document_in(body: &[u8]) -> Option<InlineDocument> {
    #[derive(Deserialize)]
    struct Payload<'a> {
        #[serde(borrow)]
        agreement: Option<AgreementPart<'a>>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct AgreementPart<'a> {
        #[serde(borrow)]
        id: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        signed_document_info: Option<SignedDocumentInfo<'a>>,
    }
    #[derive(Deserialize)]
    struct SignedDocumentInfo<'a> {
        #[serde(borrow)]
        document: Option<std::borrow::Cow<'a, str>>,
    }
    use base64::Engine as _;
    let agreement = serde_json::from_slice::<Payload<'_>>(body).ok()?.agreement?;
    let encoded = agreement.signed_document_info?.document?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim().as_bytes())
        .ok()
        .filter(|bytes| !bytes.is_empty())?;
    Some(InlineDocument {
        kind: documents::SIGNED.to_owned(),
        file_name: format!("{}.pdf", agreement.id.as_deref().unwrap_or("agreement")),
        content_type: PDF.to_owned(),
        bytes,
    })
}

/// The `WebhookInfo` of a webhook for one agreement: `RESOURCE` scope, active
/// at once, delivering to `target`, with the agreement's detailed info and
/// participants so that its notifications carry the status (signed documents
/// are left out: they can make a payload megabytes long).
fn webhook_info(agreement_id: &str, target: WebhookTarget<'_>, events: &[String]) -> Value {
    let mut info = json!({
        "name": format!("signhook agreement {agreement_id}"),
        "scope": "RESOURCE",
        "state": "ACTIVE",
        "resourceType": "AGREEMENT",
        "resourceId": agreement_id,
        "webhookSubscriptionEvents": events,
        "webhookConditionalParams": {
            "webhookAgreementEvents": {
                "includeDetailedInfo": true,
                "includeDocumentsInfo": false,
                "includeParticipantsInfo": true,
                "includeSignedDocuments": false
            }
        }
    });
    match target {
        WebhookTarget::Url(url) => info["webhookUrlInfo"] = json!({ "url": url }),
        WebhookTarget::Endpoint(id) => info["webhookEndpointInfo"] = json!({ "webhookEndpointId": id }),
    }
    info
}

/// The agreement as `GET /agreements/{id}` describes it; its `status` goes
/// through the same table as a notification's resource status.
fn agreement_subject(agreement_id: &str, agreement: &Value) -> Result<Subject, CallError> {
    let status = str_at(agreement, "/status")
        .ok_or_else(|| CallError::InvalidResponse("the agreement has no status".to_owned()))?
        .into_owned();
    Ok(Subject {
        kind: AGREEMENT.to_owned(),
        id: agreement_id.to_owned(),
        name: str_at(agreement, "/name").map(|s| s.into_owned()),
        status: Some(resource_status_of(&status)),
        provider_status: Some(status),
        parent: None,
    })
}

/// The resource a notification is about: the one `eventResourceType` names
/// (Adobe documents its values as `AGREEMENT`, `WIDGET`, `MEGASIGN`, its
/// examples write `agreement`: compared without case), else — unnamed, named
/// otherwise, or named without its object — the resource object present.
/// Agreements made from a web form or a bulk send name it in
/// `eventResourceParentType` / `eventResourceParentId` (developer guide,
/// `acrobat_sign_events/webhookpayloadoverview.md`).
fn subject(payload: &Value, event_type: &str) -> Option<Subject> {
    let named = payload
        .get("eventResourceType")
        .and_then(Value::as_str)
        .and_then(|named| {
            RESOURCE_KINDS
                .into_iter()
                .find(|kind| kind.eq_ignore_ascii_case(named.trim()))
        });
    let (kind, resource) = named
        .and_then(|kind| Some((kind, resource_object(payload, kind)?)))
        .or_else(|| {
            RESOURCE_KINDS
                .into_iter()
                .find_map(|kind| Some((kind, resource_object(payload, kind)?)))
        })?;
    let provider_status = str_at(resource, "/status").map(|s| s.into_owned());
    let parent = payload
        .get("eventResourceParentType")
        .and_then(Value::as_str)
        .and_then(|parent| {
            RESOURCE_KINDS
                .into_iter()
                .find(|kind| kind.eq_ignore_ascii_case(parent.trim()))
        })
        .zip(str_at(payload, "/eventResourceParentId"))
        .map(|(kind, id)| Parent {
            kind: kind.to_owned(),
            id: id.into_owned(),
        });
    Some(Subject {
        kind: kind.to_owned(),
        id: str_at(resource, "/id")?.into_owned(),
        name: str_at(resource, "/name").map(|s| s.into_owned()),
        status: Some(status_of(event_type, provider_status.as_deref())),
        provider_status: provider_status.or_else(|| Some(event_type.to_owned())),
        parent,
    })
}

/// The payload's object for `kind`, its key compared without case (the
/// payload overview writes `megasign`, the examples `megaSign`).
fn resource_object<'a>(payload: &'a Value, kind: &str) -> Option<&'a Value> {
    payload
        .as_object()?
        .iter()
        .find(|(key, value)| key.eq_ignore_ascii_case(kind) && value.is_object())
        .map(|(_, value)| value)
}

/// The status table: the event decides when it is decisive, else the
/// resource's own status ([`resource_status_of`]). Events as listed in the
/// developer guide (`acrobat_sign_events/webhookeventsagreements.md`,
/// `webhookeventswidget.md`, `webhookeventsmegasign.md`); the README's table
/// is this one.
fn status_of(event_type: &str, resource_status: Option<&str>) -> AgreementStatus {
    use AgreementStatus::*;
    match event_type {
        "AGREEMENT_WORKFLOW_COMPLETED" => return Completed,
        "AGREEMENT_REJECTED" => return Declined,
        "AGREEMENT_RECALLED" | "AGREEMENT_RECALLED_MAX_SIGNING_EMAIL_OTP_ATTEMPTS" | "MEGASIGN_RECALLED" => {
            return Cancelled
        }
        "AGREEMENT_AUTO_CANCELLED_CONVERSION_PROBLEM" | "WIDGET_AUTO_CANCELLED_CONVERSION_PROBLEM" => return Cancelled,
        "AGREEMENT_EXPIRED" => return Expired,
        _ => {}
    }
    resource_status_of(resource_status.unwrap_or_default())
}

/// A resource's own `status` (agreement, widget or megaSign), from a
/// notification or from the API; statuses as the developer guide lists them
/// (`webhookeventsagreements.md`, `webhookeventswidget.md`). Anything else
/// (`OUT_FOR_*`, `WAITING_FOR_*`, `ACTIVE`, a new one) is in progress.
///
/// - `ABORTED` ("Cancelled (by sender) OR rejected (by recipient) — Terminal
///   State"; `CANCELLED` is its legacy name: developer guide,
///   `techblog/tldr/api-agreement-statuses.md`) is cancelled: the status alone does not say which
///   of the two, and the event that ended it (`AGREEMENT_REJECTED` or
///   `AGREEMENT_RECALLED`) decides when it is the one delivered.
/// - A web form `DISCARDED` is gone for good: cancelled. One `DISABLED`
///   accepts no signatures but can be enabled again, so it must not be
///   terminal (a terminal status is never reopened): draft, "not open for
///   signing", until `ACTIVE` makes it in progress again.
fn resource_status_of(status: &str) -> AgreementStatus {
    use AgreementStatus::*;
    match status {
        "SIGNED" | "APPROVED" | "ACCEPTED" | "DELIVERED" | "FORM_FILLED" | "ARCHIVED" | "COMPLETED" => Completed,
        "CANCELLED" | "ABORTED" | "RECALLED" | "DISCARDED" => Cancelled,
        "EXPIRED" => Expired,
        "DRAFT" | "AUTHORING" | "PREFILL" | "DOCUMENTS_NOT_YET_PROCESSED" | "DISABLED" => Draft,
        _ => InProgress,
    }
}

/// How agreements go: several signers sign (`AGREEMENT_ACTION_COMPLETED`
/// while the agreement is still out for signature) until the workflow
/// completes, or it is rejected, recalled or expires. Adobe shows a rejected
/// agreement as `CANCELLED`; the event says declined.
const LIFECYCLES: &[(AgreementStatus, &[Step])] = {
    const CREATED: Step = Step::new("AGREEMENT_CREATED", "OUT_FOR_SIGNATURE", "");
    const SIGNER_DONE: Step = Step::new("AGREEMENT_ACTION_COMPLETED", "OUT_FOR_SIGNATURE", "");
    const WORKFLOW_COMPLETED: Step = Step::new("AGREEMENT_WORKFLOW_COMPLETED", "SIGNED", "");
    const REJECTED: Step = Step::new("AGREEMENT_REJECTED", "CANCELLED", "");
    const RECALLED: Step = Step::new("AGREEMENT_RECALLED", "CANCELLED", "");
    const EXPIRED: Step = Step::new("AGREEMENT_EXPIRED", "EXPIRED", "");
    &[
        (
            AgreementStatus::Completed,
            &[CREATED, SIGNER_DONE, SIGNER_DONE, WORKFLOW_COMPLETED],
        ),
        (AgreementStatus::Declined, &[CREATED, SIGNER_DONE, REJECTED]),
        (AgreementStatus::Cancelled, &[CREATED, RECALLED]),
        (AgreementStatus::Expired, &[CREATED, SIGNER_DONE, EXPIRED]),
    ]
};

/// An account-scope notification about an agreement, shaped like Adobe's
/// documented `AGREEMENT_ACTION_COMPLETED` example (with the agreement's
/// info, as when the webhook includes it); the padding goes in the
/// agreement's message.
pub fn notification(example: &Example<'_>) -> Value {
    json!({
        "webhookId": "CBJCHBCAABAAsignhookSimulateWebhookId",
        "webhookName": "signhook simulate",
        "webhookNotificationId": example.event_id,
        "webhookUrlInfo": { "url": example.webhook_url },
        "webhookScope": "ACCOUNT",
        "webhookNotificationApplicableUsers": [{
            "id": "CBJCHBCAABAAsenderUserId",
            "email": "sender@example.com",
            "role": "SENDER",
            "payloadApplicable": true,
        }],
        "event": example.event_type,
        "eventDate": TimeFormat::Rfc3339Seconds.value(example.at),
        "eventResourceType": AGREEMENT,
        "eventResourceParentType": "",
        "eventResourceParentId": "",
        "participantUserEmail": "signer@example.com",
        "actingUserEmail": "signer@example.com",
        "actingUserIpAddress": "203.0.113.10",
        "initiatingUserEmail": "sender@example.com",
        "agreement": {
            "id": example.agreement_id,
            "name": "Mutual NDA",
            "signatureType": "ESIGN",
            "status": example.status,
            "createdDate": TimeFormat::Rfc3339Seconds.value(example.created),
            "locale": "en_US",
            "message": example.padding,
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
    })
}

/// `X-AdobeSign-ClientId: <client_id>`; Adobe sends the same on every request.
pub fn auth_headers(client_id: &str, _body: &[u8], _now: DateTime<Utc>) -> Result<HeaderMap, InvalidHeaderValue> {
    CLIENT_ID_HEADER.carrying(client_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::headers;

    fn adobe(ids: &[&str]) -> AdobeSign {
        AdobeSign {
            client_ids: ids.iter().map(|s| s.to_string()).collect(),
            webhook_events: vec![DEFAULT_WEBHOOK_EVENTS.to_owned()],
            webhook_endpoint_id: None,
            api_settings: ApiSettings::default(),
            api: None,
            webhook_tokens: None,
            webhook_token_ttl: DEFAULT_WEBHOOK_TOKEN_TTL,
        }
    }

    /// Every event of the developer guide (`acrobat_sign_events/
    /// webhookeventsagreements.md`, `webhookeventswidget.md`,
    /// `webhookeventsmegasign.md`) and every resource status it lists, to
    /// its normalized status.
    #[test]
    fn status_table() {
        use AgreementStatus::*;
        // Decisive events, whatever the resource says.
        for (event, expected) in [
            ("AGREEMENT_WORKFLOW_COMPLETED", Completed),
            ("AGREEMENT_REJECTED", Declined),
            ("AGREEMENT_RECALLED", Cancelled),
            ("AGREEMENT_RECALLED_MAX_SIGNING_EMAIL_OTP_ATTEMPTS", Cancelled),
            ("AGREEMENT_AUTO_CANCELLED_CONVERSION_PROBLEM", Cancelled),
            ("AGREEMENT_EXPIRED", Expired),
            ("WIDGET_AUTO_CANCELLED_CONVERSION_PROBLEM", Cancelled),
            ("MEGASIGN_RECALLED", Cancelled),
        ] {
            for status in [None, Some("OUT_FOR_SIGNATURE"), Some("CANCELLED")] {
                assert_eq!(status_of(event, status), expected, "{event} {status:?}");
            }
        }
        // Every other documented event: the resource's status decides.
        for event in [
            "AGREEMENT_ACTION_COMPLETED",
            "AGREEMENT_ACTION_DELEGATED",
            "AGREEMENT_ACTION_REPLACED_SIGNER",
            "AGREEMENT_ACTION_REQUESTED",
            "AGREEMENT_CREATED",
            "AGREEMENT_DELETED",
            "AGREEMENT_DOCUMENTS_DELETED",
            "AGREEMENT_DOCUMENTS_VIEWED",
            "AGREEMENT_DOCUMENTS_VIEWED_PASSWORD_PROTECTED",
            "AGREEMENT_EMAIL_BOUNCED",
            "AGREEMENT_EMAIL_OTP_AUTHENTICATED",
            "AGREEMENT_EMAIL_VIEWED",
            "AGREEMENT_EXPIRATION_UPDATED",
            "AGREEMENT_KBA_AUTHENTICATED",
            "AGREEMENT_MODIFIED",
            "AGREEMENT_OFFLINE_SYNC",
            "AGREEMENT_PARTICIPANT_COMPLETED",
            "AGREEMENT_PARTICIPANT_REPLACED",
            "AGREEMENT_READY_TO_NOTARIZE",
            "AGREEMENT_READY_TO_VAULT",
            "AGREEMENT_REMINDER_INITIATED",
            "AGREEMENT_REMINDER_SENT",
            "AGREEMENT_RESTARTED",
            "AGREEMENT_SHARED",
            "AGREEMENT_SIGNER_NAME_CHANGED_BY_SIGNER",
            "AGREEMENT_UNSHARED",
            "AGREEMENT_UNSHARED_AUTO",
            "AGREEMENT_USER_ACK_AGREEMENT_MODIFIED",
            "AGREEMENT_VAULTED",
            "AGREEMENT_WEB_IDENTITY_AUTHENTICATED",
            "WIDGET_CREATED",
            "WIDGET_DISABLED",
            "WIDGET_ENABLED",
            "WIDGET_MODIFIED",
            "WIDGET_SHARED",
            "MEGASIGN_CREATED",
            "MEGASIGN_REMINDER_INITIATED",
            "MEGASIGN_REMINDER_SENT",
            "MEGASIGN_SHARED",
            "SOMETHING_NEW",
        ] {
            assert_eq!(status_of(event, Some("SIGNED")), Completed, "{event}");
            assert_eq!(status_of(event, Some("OUT_FOR_SIGNATURE")), InProgress, "{event}");
            assert_eq!(status_of(event, None), InProgress, "{event}");
        }
        // Every documented agreement and web form status.
        for (status, expected) in [
            ("OUT_FOR_SIGNATURE", InProgress),
            ("OUT_FOR_DELIVERY", InProgress),
            ("OUT_FOR_ACCEPTANCE", InProgress),
            ("OUT_FOR_FORM_FILLING", InProgress),
            ("OUT_FOR_APPROVAL", InProgress),
            ("WAITING_FOR_FAXING", InProgress),
            ("WAITING_FOR_VERIFICATION", InProgress),
            ("WIDGET_WAITING_FOR_VERIFICATION", InProgress),
            ("AUTHORING", Draft),
            ("DRAFT", Draft),
            ("PREFILL", Draft),
            ("DOCUMENTS_NOT_YET_PROCESSED", Draft),
            ("SIGNED", Completed),
            ("APPROVED", Completed),
            ("DELIVERED", Completed),
            ("ACCEPTED", Completed),
            ("FORM_FILLED", Completed),
            ("ARCHIVED", Completed),
            ("ABORTED", Cancelled),
            ("CANCELLED", Cancelled),
            ("EXPIRED", Expired),
            ("ACTIVE", InProgress),
            ("DISABLED", Draft),
            ("DISCARDED", Cancelled),
            ("SOMETHING_ELSE", InProgress),
        ] {
            assert_eq!(resource_status_of(status), expected, "{status}");
        }
    }

    /// `eventResourceType` as documented (`AGREEMENT`, `WIDGET`, `MEGASIGN`)
    /// or as the examples write it; the object present when it names
    /// nothing known or its object is missing; parents of child agreements
    /// (developer guide, `webhookpayloadoverview.md`).
    #[test]
    fn resources_are_found_whatever_the_case_and_parents_are_kept() {
        let subject_of = |payload: Value| subject(&payload, "AGREEMENT_CREATED");
        let found = |payload: Value| subject_of(payload).map(|s| (s.kind, s.id));
        let pair = |kind: &str, id: &str| Some((kind.to_owned(), id.to_owned()));
        let agreement = json!({"id": "a1", "status": "OUT_FOR_SIGNATURE"});
        for named in ["AGREEMENT", "agreement", "Agreement", "", "LIBRARY_DOCUMENT"] {
            assert_eq!(
                found(json!({"eventResourceType": named, "agreement": agreement})),
                pair("agreement", "a1"),
                "{named}"
            );
        }
        assert_eq!(found(json!({"agreement": agreement})), pair("agreement", "a1"));
        assert_eq!(
            found(json!({"eventResourceType": "WIDGET", "widget": {"id": "w1"}})),
            pair("widget", "w1")
        );
        assert_eq!(
            found(json!({"eventResourceType": "MEGASIGN", "megasign": {"id": "m1"}})),
            pair("megaSign", "m1")
        );
        assert_eq!(
            found(json!({"eventResourceType": "MEGASIGN", "agreement": agreement})),
            pair("agreement", "a1"),
            "named but absent: the object present"
        );
        assert_eq!(
            found(json!({"eventResourceType": "LIBRARY_DOCUMENT", "libraryDocument": {"id": "l1"}})),
            None
        );
        let child = subject_of(json!({"eventResourceType": "AGREEMENT", "agreement": agreement,
                                      "eventResourceParentType": "WIDGET", "eventResourceParentId": "w1"}))
        .expect("an agreement");
        assert_eq!(
            child.parent,
            Some(Parent {
                kind: "widget".to_owned(),
                id: "w1".to_owned()
            })
        );
        let parsed = adobe(&[])
            .parse(
                json!({"webhookNotificationId": "n1", "event": "AGREEMENT_CREATED", "eventResourceType": "AGREEMENT",
                       "eventResourceParentType": "MEGASIGN", "eventResourceParentId": "m1", "agreement": agreement})
                .to_string()
                .as_bytes(),
            )
            .expect("parses");
        assert_eq!(
            parsed.subject.and_then(|s| s.parent).map(|p| (p.kind, p.id)),
            pair("megaSign", "m1")
        );
    }

    #[test]
    fn agreements_from_the_api_use_the_status_table() {
        use AgreementStatus::*;
        let cases = [
            ("OUT_FOR_SIGNATURE", InProgress),
            ("WAITING_FOR_MY_SIGNATURE", InProgress),
            ("SIGNED", Completed),
            ("APPROVED", Completed),
            ("CANCELLED", Cancelled),
            ("EXPIRED", Expired),
            ("AUTHORING", Draft),
            ("DRAFT", Draft),
            ("SOMETHING_NEW", InProgress),
        ];
        for (status, expected) in cases {
            let agreement = json!({"id": "CBJ1", "name": "Mutual NDA", "status": status, "type": "AGREEMENT"});
            let subject = agreement_subject("CBJ1", &agreement).expect("has a status");
            assert_eq!(subject.status, Some(expected), "{status}");
            assert_eq!(subject.provider_status.as_deref(), Some(status));
            assert_eq!(
                (subject.kind.as_str(), subject.id.as_str(), subject.name.as_deref()),
                ("agreement", "CBJ1", Some("Mutual NDA"))
            );
        }
        for bad in [
            json!({"id": "CBJ1"}),
            json!({"status": ""}),
            json!([]),
            json!({"status": {}}),
        ] {
            assert!(
                matches!(agreement_subject("CBJ1", &bad), Err(CallError::InvalidResponse(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn throttling_answers_say_how_long_in_retry_after() {
        let now = Utc::now();
        let hint = |body: Value| retry_after_in_body(&HeaderMap::new(), &body, now);
        let body = |retry: Value| json!({"code": "THROTTLING_TOO_MANY_REQUESTS", "message": "x", "retryAfter": retry});
        assert_eq!(hint(body(json!(1800))), Some(Duration::from_secs(1800)));
        assert_eq!(hint(body(json!("600"))), Some(Duration::from_secs(600)));
        assert_eq!(hint(body(json!(-1))), None);
        assert_eq!(hint(json!({"code": "THROTTLING_HIGH_SYSTEM_LOAD"})), None);
    }

    /// Error answers as Adobe's API definition (`agreements.json`,
    /// `webhooks.json`) and webhook guide (404 `PERMISSION_DENIED`) give them.
    #[test]
    fn error_codes_are_classified_by_what_they_mean() {
        let answer = |status: u16, code: &str| {
            classify(
                StatusCode::from_u16(status).expect("valid"),
                &json!({"code": code, "message": "x"}),
            )
        };
        for status in [403, 404] {
            match answer(status, "PERMISSION_DENIED") {
                Some(CallError::PermissionDenied(message)) => {
                    assert!(message.contains(&format!("{status} PERMISSION_DENIED")), "{message}");
                    assert!(message.contains("agreement_read:account"), "{message}");
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        assert_eq!(
            answer(400, "DUPLICATE_WEBHOOK_CONFIGURATION"),
            Some(CallError::Duplicate)
        );
        assert_eq!(
            answer(401, "INVALID_API_ACCESS_POINT"),
            Some(CallError::WrongAccessPoint)
        );
        assert_eq!(answer(404, "INVALID_AGREEMENT_ID"), None, "a plain not found");
        assert_eq!(answer(400, "MISSING_IF_MATCH_HEADER"), None);
    }

    #[test]
    fn webhook_events_default_to_all_and_must_be_event_names() {
        let events = |list: &[&str]| {
            Settings {
                adobe_sign_webhook_events: list.iter().map(|s| s.to_string()).collect(),
                ..Settings::default()
            }
            .webhook_events()
        };
        assert_eq!(events(&[]).expect("default"), ["AGREEMENT_ALL"]);
        assert_eq!(
            events(&["AGREEMENT_WORKFLOW_COMPLETED", "AGREEMENT_REJECTED"]).expect("names"),
            ["AGREEMENT_WORKFLOW_COMPLETED", "AGREEMENT_REJECTED"]
        );
        let error = events(&["agreement all"]).expect_err("not a name").to_string();
        assert!(error.starts_with("SIGNHOOK_ADOBE_SIGN_WEBHOOK_EVENTS"), "{error}");
    }

    #[test]
    fn client_id_header_is_checked() {
        let adobe = adobe(&["good-id"]);
        assert!(adobe
            .verify_intent(&headers(&[("X-AdobeSign-ClientId", "good-id")]))
            .is_ok());
        assert!(adobe
            .verify_intent(&headers(&[("x-adobesign-clientid", "good-id")]))
            .is_ok());
        let refused = [
            headers(&[]),
            headers(&[("x-adobesign-clientid", "")]),
            headers(&[("x-adobesign-clientid", "other")]),
            headers(&[("x-adobesign-clientid", "good-id"), ("x-adobesign-clientid", "other")]),
        ];
        for h in refused {
            assert!(adobe.verify_intent(&h).is_err(), "{h:?}");
        }
        assert!(self::adobe(&[])
            .verify_intent(&headers(&[("x-adobesign-clientid", "good-id")]))
            .is_err());
    }

    #[test]
    fn parses_the_documented_example() {
        let body = include_bytes!("../../tests/fixtures/adobe-sign-agreement-action-completed.json");
        let n = adobe(&[]).parse(body).expect("fixture parses");
        assert_eq!(n.event_id, "b2b0e6a4-2c1e-4b8e-9d59-3f0c8b7f8d21");
        assert_eq!(n.event_type, "AGREEMENT_ACTION_COMPLETED");
        assert_eq!(
            n.occurred_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-11-20T09:41:27+00:00")
        );
        let subject = n.subject.expect("agreement subject");
        assert_eq!(subject.kind, "agreement");
        assert_eq!(subject.id, "CBJCHBCAABAAexampleAgreementId");
        assert_eq!(subject.name.as_deref(), Some("Mutual NDA"));
        assert_eq!(subject.status, Some(AgreementStatus::InProgress));
    }

    #[test]
    fn widget_and_megasign_resources_are_subjects() {
        for (kind, event) in [("widget", "WIDGET_CREATED"), ("megaSign", "MEGASIGN_CREATED")] {
            let body = json!({"webhookNotificationId": "n1", "event": event, "eventResourceType": kind,
                              kind: {"id": "r1", "name": "x", "status": "OUT_FOR_SIGNATURE"}});
            let n = adobe(&[]).parse(body.to_string().as_bytes()).expect("parses");
            let subject = n.subject.expect("has subject");
            assert_eq!((subject.kind.as_str(), subject.id.as_str()), (kind, "r1"));
        }
    }

    /// A completion with `includeSignedDocuments` carries the PDF in
    /// `agreement.signedDocumentInfo.document`; a trimmed one (or a broken
    /// base64) does not, and is fetched through the API instead.
    #[test]
    fn signed_documents_are_read_from_the_payload_unless_trimmed() {
        use base64::Engine as _;
        let pdf = b"%PDF-1.7 signed".to_vec();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&pdf);
        let with = json!({"webhookNotificationId": "n1", "event": "AGREEMENT_WORKFLOW_COMPLETED",
            "agreement": {"id": "CBJ1", "status": "SIGNED", "signedDocumentInfo": {"document": encoded}}});
        let document = adobe(&[])
            .inline_document(with.to_string().as_bytes())
            .expect("carried");
        assert_eq!((document.kind.as_str(), document.bytes), ("signed", pdf));
        assert_eq!(document.file_name, "CBJ1.pdf");
        let trimmed = json!({"webhookNotificationId": "n1", "event": "AGREEMENT_WORKFLOW_COMPLETED",
            "conditionalParametersTrimmed": ["includeSignedDocuments"], "agreement": {"id": "CBJ1", "status": "SIGNED"}});
        let broken = json!({"agreement": {"id": "CBJ1", "signedDocumentInfo": {"document": "%%not base64"}}});
        for body in [trimmed.to_string(), broken.to_string(), "not json".to_owned()] {
            assert_eq!(adobe(&[]).inline_document(body.as_bytes()), None, "{body}");
        }
    }

    #[test]
    fn rejects_bodies_it_cannot_identify() {
        for body in [
            &b"not json"[..],
            b"[1,2]",
            b"{}",
            br#"{"webhookNotificationId": ""}"#,
            b"",
        ] {
            assert!(matches!(
                adobe(&[]).parse(body),
                Err(ProviderError::InvalidPayload { .. })
            ));
        }
    }
}
