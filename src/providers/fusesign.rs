//! FuseSign webhooks.
//!
//! FuseSign authenticates with a shared value in the `Fuse-Signature` header
//! (set when the webhook is registered) and posts one bundle history event per
//! request (`TransactionalBundleWebhookPayload`); a bundle is the signed unit.
//!
//! Polling reads `GET /api/Bundle/Get?TenantId=…&BundleId=…` (FuseSign API
//! reference, "Bundle"), authenticated as FuseSign's OpenAPI document allows:
//! an OAuth 2 access token (`Authorization: Bearer`, "use this for most
//! implementations"), renewed with a refresh token at
//! `POST /api/Session/OAuthRefreshToken`, or a wholesale API token in
//! `X-API-Token`. See `bundle_subject` for what is assumed about the answer.
//! A poll names the bundle's own `TenantId` (the one its webhooks carried,
//! recorded with every stored event), else the configured tenant. FuseSign's
//! refresh answer carries a refresh token; the newest is kept in PostgreSQL
//! (see `oauth`). An error is 400 `{"Result":false,"Message":…}` (API
//! reference, common error model): its `Message` is what is reported.
//!
//! A finalised bundle's copy: `GET /api/Bundle/Get` lists its documents
//! (`Documents[].Document.DocumentId`, with `SignedPDFDownloadUrl`), each
//! downloaded with `GET /api/Document/Download` (QuickStart guide: "retrieve
//! the bundle … Document Ids to be used in /api/Document/Download"). Its
//! query parameters are assumed to be those of `GET /api/Document/Get`
//! (`tenantId`, `documentId`: API reference, "Document"); the
//! `SignedPDFDownloadUrl` is not followed, as it may be on another host that
//! must not see the API credential. FuseSign has no audit trail in its API.
//! FuseSign archives a bundle 60 days after the signed download is
//! registered and deletes its documents (`BundleArchiveWarning` 7 days
//! before): the copy is the one that lasts.

use std::sync::Arc;

use axum::http::{header::InvalidHeaderValue, HeaderMap};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    api::{self, Api, Credential},
    client::{ApiClient, CallError, Dialect},
    credentials::{matches_any, CredentialHeader},
    payload::{json_object_sparse, parse_time, str_at},
    settings::{base_url, key_or_oauth, Auth, ClientSettings},
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

pub const NAME: &str = "fusesign";
pub const REGISTRATION: Registration = Registration {
    name: NAME,
    build,
    traffic: Traffic {
        notification,
        auth_headers,
        time_format: TimeFormat::Rfc3339Ticks,
        id_shape: IdShape::Uuid,
        lifecycles: LIFECYCLES,
        credential: CredentialFlag {
            flag: "fusesign-signature",
            variable: "SIGNHOOK_FUSESIGN_SIGNATURES",
            what: "a Fuse-Signature value",
            help: "Fuse-Signature value to send; default: the first of the server's list",
        },
    },
};
const SIGNATURE_HEADER: CredentialHeader = CredentialHeader {
    name: "Fuse-Signature",
    missing_code: "missing_signature",
    malformed_code: "malformed_signature",
};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Settings {
    /// `SIGNHOOK_FUSESIGN_SIGNATURES`: accepted `Fuse-Signature` values; several
    /// at once while the value is being changed.
    #[serde(deserialize_with = "string_list")]
    fusesign_signatures: Vec<String>,
}

/// Default of `SIGNHOOK_FUSESIGN_API_BASE`, the server in FuseSign's OpenAPI document.
const DEFAULT_API_BASE: &str = "https://api.fuse.work";

/// Default of `SIGNHOOK_FUSESIGN_API_REQUESTS_PER_HOUR`: FuseSign documents
/// no rate limit; its 429s pause the account whatever this says.
const DEFAULT_REQUESTS_PER_HOUR: u32 = 3600;

/// Settings of the REST API client, for polling. Not `Debug`: it holds secrets.
#[derive(Deserialize)]
#[serde(default)]
struct ApiSettings {
    /// `SIGNHOOK_FUSESIGN_API_REQUESTS_PER_HOUR`: the account's budget for
    /// every replica together.
    fusesign_api_requests_per_hour: u32,
    /// `SIGNHOOK_FUSESIGN_API_BASE`: unset means [`DEFAULT_API_BASE`].
    #[serde(deserialize_with = "optional_string")]
    fusesign_api_base: Option<String>,
    /// `SIGNHOOK_FUSESIGN_API_TENANT_ID`: the FuseSign tenant (business) whose
    /// bundles are read; every bundle request names it.
    #[serde(deserialize_with = "optional_string")]
    fusesign_api_tenant_id: Option<String>,
    /// `SIGNHOOK_FUSESIGN_API_TOKEN`: a wholesale API token, sent as `X-API-Token`.
    #[serde(deserialize_with = "optional_string")]
    fusesign_api_token: Option<String>,
    /// `SIGNHOOK_FUSESIGN_API_CLIENT_ID`, `..._CLIENT_SECRET` and
    /// `..._REFRESH_TOKEN`: the OAuth client FuseSign issued at onboarding and
    /// a refresh token from its authorization-code grant (scope `FUSESIGN`);
    /// instead of an API token. FuseSign's refresh answer carries a refresh
    /// token; the newest is used from then on and kept in PostgreSQL, so a
    /// restart uses it too (configuring another refresh token starts over).
    #[serde(deserialize_with = "optional_string")]
    fusesign_api_client_id: Option<String>,
    #[serde(deserialize_with = "optional_string")]
    fusesign_api_client_secret: Option<String>,
    #[serde(deserialize_with = "optional_string")]
    fusesign_api_refresh_token: Option<String>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            fusesign_api_requests_per_hour: DEFAULT_REQUESTS_PER_HOUR,
            fusesign_api_base: None,
            fusesign_api_tenant_id: None,
            fusesign_api_token: None,
            fusesign_api_client_id: None,
            fusesign_api_client_secret: None,
            fusesign_api_refresh_token: None,
        }
    }
}

impl ApiSettings {
    /// The API client and tenant; `None` (polling off) when no credential is set.
    fn api(&self, config: &Config) -> Result<Option<(Api, String)>, ConfigError> {
        let client_settings = ClientSettings::from_config(config)?;
        let base = base_url(
            "fusesign_api_base",
            self.fusesign_api_base.as_deref().unwrap_or(DEFAULT_API_BASE),
        )?;
        let auth = key_or_oauth(
            ("fusesign_api_token", self.fusesign_api_token.as_deref()),
            [
                ("fusesign_api_client_id", self.fusesign_api_client_id.as_deref()),
                ("fusesign_api_client_secret", self.fusesign_api_client_secret.as_deref()),
                ("fusesign_api_refresh_token", self.fusesign_api_refresh_token.as_deref()),
            ],
        )?;
        let Some(auth) = auth else { return Ok(None) };
        let tenant_id = self.fusesign_api_tenant_id.clone().ok_or_else(|| {
            invalid(
                "fusesign_api_tenant_id",
                "is required with API credentials: every FuseSign bundle request names its tenant",
            )
        })?;
        let credential = match auth {
            Auth::Key(token) => Credential::header("x-api-token", token, "fusesign_api_token")?,
            Auth::OAuth(grant) => {
                Credential::oauth(api::endpoint(&base, &["api", "Session", "OAuthRefreshToken"]), grant)
            }
        };
        if self.fusesign_api_requests_per_hour == 0 {
            return Err(invalid("fusesign_api_requests_per_hour", "must be greater than 0"));
        }
        let limits = ApiLimits {
            per_hour: self.fusesign_api_requests_per_hour,
            min_interval: std::time::Duration::ZERO,
        };
        let api = Api::new(
            ApiClient::new(&client_settings, NAME)?,
            api::Base::Fixed(base),
            credential,
            limits,
            Dialect::PLAIN,
        );
        Ok(Some((api, tenant_id)))
    }
}

pub struct FuseSign {
    signatures: Vec<String>,
    api_settings: ApiSettings,
    /// The REST API client and the tenant it reads; `None` when no API
    /// credential is configured.
    api: Option<(Api, String)>,
}

pub fn build(config: &Config) -> Result<Arc<dyn Provider>, ConfigError> {
    let settings: Settings = config.extract()?;
    let api_settings: ApiSettings = config.extract()?;
    Ok(Arc::new(FuseSign {
        signatures: settings.fusesign_signatures,
        api: api_settings.api(config)?,
        api_settings,
    }))
}

/// The fields [`Provider::parse`] reads; the rest of a payload is skipped.
const PAYLOAD_FIELDS: &[&str] = &[
    "BundleHistoryEvent/Id",
    "BundleHistoryEvent/Action",
    "BundleHistoryEvent/BundleId",
    "BundleHistoryEvent/DateTime",
    "WebhookId",
    "EventType",
    "BundleId",
    "TenantId",
];

impl Provider for FuseSign {
    fn name(&self) -> &'static str {
        NAME
    }

    fn authenticate(&self, headers: &HeaderMap, _body: &[u8], _now: DateTime<Utc>) -> Result<Sender, ProviderError> {
        if self.signatures.is_empty() {
            return Err(ProviderError::InvalidCredential {
                code: "not_configured",
                message: "no Fuse-Signature value is configured (SIGNHOOK_FUSESIGN_SIGNATURES)".to_owned(),
            });
        }
        let signature = SIGNATURE_HEADER.read(headers)?;
        if !matches_any(signature.as_bytes(), &self.signatures) {
            return Err(ProviderError::InvalidCredential {
                code: "invalid_signature",
                message: "this Fuse-Signature is not in SIGNHOOK_FUSESIGN_SIGNATURES".to_owned(),
            });
        }
        Ok(Sender::default())
    }

    /// The static signature is all there is: checked before the body is read.
    fn authenticate_headers(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Result<Option<Sender>, ProviderError> {
        self.authenticate(headers, &[], now).map(Some)
    }

    fn parse(&self, body: &[u8]) -> Result<Notification, ProviderError> {
        let payload = Value::Object(json_object_sparse(body, PAYLOAD_FIELDS)?);
        let event_id = str_at(&payload, "/BundleHistoryEvent/Id")
            .or_else(|| str_at(&payload, "/WebhookId"))
            .ok_or_else(|| ProviderError::InvalidPayload {
                code: "missing_event_id",
                message: "neither BundleHistoryEvent.Id nor WebhookId is present".to_owned(),
            })?
            .into_owned();
        let event_type = str_at(&payload, "/EventType")
            .or_else(|| str_at(&payload, "/BundleHistoryEvent/Action"))
            .map_or_else(|| "Unknown".to_owned(), |e| e.into_owned());
        let subject = str_at(&payload, "/BundleId")
            .or_else(|| str_at(&payload, "/BundleHistoryEvent/BundleId"))
            .map(|id| Subject {
                kind: "bundle".to_owned(),
                id: id.into_owned(),
                name: None,
                status: status_of(&event_type),
                provider_status: Some(event_type.clone()),
                parent: None,
            });
        Ok(Notification {
            occurred_at: payload.pointer("/BundleHistoryEvent/DateTime").and_then(parse_time),
            tenant: str_at(&payload, "/TenantId").map(|t| t.into_owned()),
            subject,
            event_id,
            event_type,
        })
    }

    fn is_configured(&self) -> bool {
        !self.signatures.is_empty()
    }

    fn webhook_auth(&self) -> &'static str {
        "shared_signature"
    }

    /// `Fuse-Signature` is the same static value on every request (seed
    /// `001`, "Fuse-Signature"): whoever saw one request can send others.
    fn weakly_authenticated(&self) -> bool {
        true
    }

    fn settings(&self) -> Value {
        let signatures: Vec<_> = self.signatures.iter().map(|s| mask(s)).collect();
        let api = &self.api_settings;
        json!({
            "fusesign_signatures": signatures,
            "fusesign_api_base": api.fusesign_api_base.as_deref().unwrap_or(DEFAULT_API_BASE),
            "fusesign_api_tenant_id": api.fusesign_api_tenant_id,
            "fusesign_api_token": api.fusesign_api_token.as_deref().map(mask),
            "fusesign_api_client_id": api.fusesign_api_client_id,
            "fusesign_api_client_secret": api.fusesign_api_client_secret.as_deref().map(mask),
            "fusesign_api_refresh_token": api.fusesign_api_refresh_token.as_deref().map(mask),
            "fusesign_api_requests_per_hour": api.fusesign_api_requests_per_hour,
            "polling": Api::describe(self.api.as_ref().map(|(api, _)| api)),
        })
    }

    fn can_poll(&self) -> bool {
        self.api.is_some()
    }

    /// In the bundle's own tenant when its webhooks named one.
    fn poll_in<'a>(
        &'a self,
        agreement_id: &'a str,
        tenant: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subject, PollError>> {
        Box::pin(async move {
            let (api, configured) = api::for_agreement(self.api.as_ref(), agreement_id)?;
            let tenant = tenant.filter(|t| !t.trim().is_empty()).unwrap_or(configured);
            let bundle = api
                .get_json(
                    &["api", "Bundle", "Get"],
                    &[("TenantId", tenant), ("BundleId", agreement_id)],
                )
                .await?;
            Ok(bundle_subject(agreement_id, &bundle)?)
        })
    }

    fn poll_kinds(&self) -> &'static [&'static str] {
        &["bundle"]
    }

    fn documents<'a>(
        &'a self,
        agreement_id: &'a str,
        tenant: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<DocumentRef>, PollError>> {
        Box::pin(async move {
            let (api, configured) = api::for_agreement(self.api.as_ref(), agreement_id)?;
            let tenant = tenant.filter(|t| !t.trim().is_empty()).unwrap_or(configured);
            let bundle = api
                .get_json(
                    &["api", "Bundle", "Get"],
                    &[("TenantId", tenant), ("BundleId", agreement_id)],
                )
                .await?;
            Ok(bundle_documents(&bundle, tenant)?)
        })
    }

    fn download<'a>(&'a self, document: &'a DocumentRef) -> BoxFuture<'a, Result<Download, PollError>> {
        Box::pin(api::download(self.api.as_ref().map(|(api, _)| api), document))
    }

    fn api_limits(&self) -> Option<ApiLimits> {
        self.api.as_ref().map(|(api, _)| api.limits())
    }

    fn attach(&self, ledger: Arc<dyn ApiLedger>) {
        if let Some((api, _)) = &self.api {
            api.attach(ledger);
        }
    }
}

/// The bundle as `GET /api/Bundle/Get` describes it: `Subject` is its name.
///
/// **Assumed, not documented** in what we could read of FuseSign's reference:
/// the answer has a "current bundle state" field, but its JSON name and values
/// are not shown. We read `Status` (the answer is PascalCase; camelCase, which
/// an older version of the reference shows, is accepted too) and map it with
/// [`bundle_status_of`]. A bundle without that field is an
/// [`CallError::InvalidResponse`] naming it, so a wrong guess shows at once.
fn bundle_subject(bundle_id: &str, bundle: &Value) -> Result<Subject, CallError> {
    let field = |pascal: &str, camel: &str| str_at(bundle, pascal).or_else(|| str_at(bundle, camel));
    let status = field("/Status", "/status")
        .ok_or_else(|| CallError::InvalidResponse("the bundle has no Status".to_owned()))?
        .into_owned();
    Ok(Subject {
        kind: "bundle".to_owned(),
        id: bundle_id.to_owned(),
        name: field("/Subject", "/subject").map(|s| s.into_owned()),
        status: bundle_status_of(&status),
        provider_status: Some(status),
        parent: None,
    })
}

/// The documents of a bundle as `GET /api/Bundle/Get` lists them
/// (`Documents[]` in `DocumentOrder`, each `Document.DocumentId` and
/// `DisplayName`; camelCase accepted too), as downloads of
/// `/api/Document/Download`. A bundle without documents is an invalid answer:
/// a finalised bundle has at least one.
fn bundle_documents(bundle: &Value, tenant: &str) -> Result<Vec<DocumentRef>, CallError> {
    let field = |value: &Value, pascal: &str, camel: &str| {
        value
            .get(pascal)
            .or_else(|| value.get(camel))
            .filter(|v| !v.is_null())
            .cloned()
    };
    let mut entries: Vec<(i64, String, String)> = field(bundle, "Documents", "documents")
        .and_then(|documents| documents.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|entry| {
            let document = field(entry, "Document", "document")?;
            let id = str_at(&document, "/DocumentId")
                .or_else(|| str_at(&document, "/documentId"))?
                .into_owned();
            let name = str_at(&document, "/DisplayName")
                .or_else(|| str_at(&document, "/displayName"))
                .map_or_else(|| id.clone(), |name| name.into_owned());
            let order = field(entry, "DocumentOrder", "documentOrder")
                .and_then(|order| order.as_i64())
                .unwrap_or(i64::MAX);
            Some((order, id, name))
        })
        .collect();
    if entries.is_empty() {
        return Err(CallError::InvalidResponse("the bundle lists no documents".to_owned()));
    }
    entries.sort_by_key(|(order, _, _)| *order);
    Ok(entries
        .into_iter()
        .enumerate()
        .map(|(index, (_, id, name))| DocumentRef {
            kind: documents::signed_kind(index),
            file_name: match name.to_ascii_lowercase().ends_with(".pdf") {
                true => name,
                false => format!("{name}.pdf"),
            },
            path: ["api", "Document", "Download"].map(str::to_owned).to_vec(),
            query: vec![
                ("tenantId".to_owned(), tenant.to_owned()),
                ("documentId".to_owned(), id),
            ],
            accept: "application/pdf",
        })
        .collect())
}

/// A bundle's state. The values are assumed as well: the words FuseSign's
/// documentation uses for a bundle's stages (Draft, Active or "live",
/// Finalised, Rejected, Retracted, Archived) and for its `BundleError` event,
/// compared without case. Archived says nothing about how the bundle ended,
/// like the `BundleArchived` event; nor does a state we do not know. FuseSign
/// bundles do not expire.
fn bundle_status_of(state: &str) -> Option<AgreementStatus> {
    use AgreementStatus::*;
    match state.to_ascii_lowercase().as_str() {
        "draft" => Some(Draft),
        "live" | "active" | "sent" | "inprogress" => Some(InProgress),
        "finalised" | "finalized" | "completed" => Some(Completed),
        "rejected" => Some(Declined),
        "retracted" => Some(Cancelled),
        "error" => Some(Failed),
        _ => None,
    }
}

/// FuseSign's event type is its history action. Customer (signer) and document
/// actions mean the bundle is in flight, except a customer's rejection; archive
/// and housekeeping events say nothing about status (history only), nor does
/// an event type we do not know.
fn status_of(event_type: &str) -> Option<AgreementStatus> {
    use AgreementStatus::*;
    match event_type {
        "BundleFinalised" => Some(Completed),
        "CustomerBundleRejected" => Some(Declined),
        "BundleRetracted" | "DraftBundleDeleted" => Some(Cancelled),
        "BundleError" => Some(Failed),
        "BundleCreated" => Some(InProgress),
        "BundleArchived" | "BundleArchiveWarning" | "BundleClosureRegistered" | "WebhookURLChanged" => None,
        other if other.starts_with("Customer") || other.starts_with("Document") => Some(InProgress),
        _ => None,
    }
}

/// How bundles go: created, a document signed, then finalised, or rejected
/// by the customer or retracted. Bundles do not expire. The payload carries
/// no status, only the action and its description.
const LIFECYCLES: &[(AgreementStatus, &[Step])] = {
    const CREATED: Step = Step::new("BundleCreated", "", "Bundle Created");
    const SIGNED: Step = Step::new("CustomerDocumentSigned", "", "Document Signed: Engagement letter");
    const FINALISED: Step = Step::new("BundleFinalised", "", "Bundle Finalised");
    const REJECTED: Step = Step::new("CustomerBundleRejected", "", "Bundle Rejected by customer");
    const RETRACTED: Step = Step::new("BundleRetracted", "", "Bundle Retracted");
    &[
        (AgreementStatus::Completed, &[CREATED, SIGNED, FINALISED]),
        (AgreementStatus::Declined, &[CREATED, REJECTED]),
        (AgreementStatus::Cancelled, &[CREATED, RETRACTED]),
    ]
};

/// A bundle history event shaped like FuseSign's
/// `TransactionalBundleWebhookPayload`; the padding goes after the
/// description in the history event's notes.
pub fn notification(example: &Example<'_>) -> Value {
    let notes = match example.padding {
        "" => example.description.to_owned(),
        padding => format!("{}. {padding}", example.description),
    };
    json!({
        "WebhookId": "dd7be5ec-1560-49b1-a1a7-02be393dc7fe",
        "BundleId": example.agreement_id,
        "EventType": example.event_type,
        "BundleHistoryEvent": {
            "Id": example.event_id,
            "DateTime": TimeFormat::Rfc3339Ticks.value(example.at),
            "BundleId": example.agreement_id,
            "DocumentId": "5ec03200-1db1-40ec-a553-95b55e30bacc",
            "CustomerId": "a960f86a-e9ba-49c8-ae1c-646a4ec76ac5",
            "Action": example.event_type,
            "ActionNotes": notes,
            "IP": "203.0.113.10",
        },
        "ActionDescription": example.description,
        "TenantId": "7ffcbae4-9f50-4136-8de6-edb6f796dc3f",
    })
}

/// `Fuse-Signature: <signature>`, the value set when the webhook was
/// registered; FuseSign sends the same on every request.
pub fn auth_headers(signature: &str, _body: &[u8], _now: DateTime<Utc>) -> Result<HeaderMap, InvalidHeaderValue> {
    SIGNATURE_HEADER.carrying(signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::{code, headers};

    const BODY: &[u8] = include_bytes!("../../tests/fixtures/fusesign-customer-document-signed.json");

    /// `GET /api/Bundle/Get` lists `Documents[]` with `Document.DocumentId`
    /// and `DocumentOrder` (API reference, Bundle): downloaded in that order
    /// as `signed`, `signed_2`…, in the bundle's tenant; camelCase too.
    #[test]
    fn a_bundles_documents_are_downloaded_in_their_order() {
        let bundle = json!({"Id": "b1", "Status": "Finalised", "Documents": [
            {"Document": {"DocumentId": "d2", "DisplayName": "Terms.PDF"}, "DocumentOrder": 2},
            {"Document": {"DocumentId": "d1", "DisplayName": "Engagement letter"}, "DocumentOrder": 1},
            {"Document": {"DisplayName": "no id"}, "DocumentOrder": 3},
        ]});
        let documents = bundle_documents(&bundle, "t1").expect("documents");
        let summary: Vec<_> = documents
            .iter()
            .map(|d| (d.kind.as_str(), d.file_name.as_str(), d.query.clone()))
            .collect();
        let query = |id: &str| {
            vec![
                ("tenantId".to_owned(), "t1".to_owned()),
                ("documentId".to_owned(), id.to_owned()),
            ]
        };
        assert_eq!(
            summary,
            [
                ("signed", "Engagement letter.pdf", query("d1")),
                ("signed_2", "Terms.PDF", query("d2")),
            ]
        );
        assert!(documents.iter().all(|d| d.path == ["api", "Document", "Download"]));
        let camel = json!({"documents": [{"document": {"documentId": "d9"}}]});
        assert_eq!(
            bundle_documents(&camel, "t1").expect("camelCase")[0].file_name,
            "d9.pdf"
        );
        for empty in [json!({"Documents": []}), json!({"Status": "Finalised"}), json!([])] {
            assert!(
                matches!(bundle_documents(&empty, "t1"), Err(CallError::InvalidResponse(_))),
                "{empty}"
            );
        }
    }

    fn fusesign(signatures: &[&str]) -> FuseSign {
        FuseSign {
            signatures: signatures.iter().map(|s| s.to_string()).collect(),
            api_settings: ApiSettings::default(),
            api: None,
        }
    }

    #[test]
    fn bundles_from_the_api_use_the_state_table() {
        use AgreementStatus::*;
        let cases = [
            ("Draft", Some(Draft)),
            ("Live", Some(InProgress)),
            ("Active", Some(InProgress)),
            ("Finalised", Some(Completed)),
            ("FINALISED", Some(Completed)),
            ("Rejected", Some(Declined)),
            ("Retracted", Some(Cancelled)),
            ("Error", Some(Failed)),
            ("Archived", None),
            ("SomethingNew", None),
        ];
        for (state, expected) in cases {
            let bundle = json!({"Id": "b1", "TenantId": "t1", "Subject": "Engagement letter", "Status": state});
            let subject = bundle_subject("b1", &bundle).expect("has a state");
            assert_eq!(subject.status, expected, "{state}");
            assert_eq!(subject.provider_status.as_deref(), Some(state));
            assert_eq!(
                (subject.kind.as_str(), subject.id.as_str(), subject.name.as_deref()),
                ("bundle", "b1", Some("Engagement letter"))
            );
        }
        let camel = bundle_subject("b1", &json!({"id": "b1", "subject": "s", "status": "Live"})).expect("camelCase");
        assert_eq!((camel.status, camel.name.as_deref()), (Some(InProgress), Some("s")));
        for bad in [json!({"Id": "b1"}), json!({"Status": ""}), json!(null)] {
            assert!(
                matches!(bundle_subject("b1", &bad), Err(CallError::InvalidResponse(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn status_table() {
        use AgreementStatus::*;
        let cases = [
            ("BundleFinalised", Some(Completed)),
            ("CustomerBundleRejected", Some(Declined)),
            ("BundleRetracted", Some(Cancelled)),
            ("DraftBundleDeleted", Some(Cancelled)),
            ("BundleError", Some(Failed)),
            ("BundleCreated", Some(InProgress)),
            ("CustomerDocumentSigned", Some(InProgress)),
            ("CustomerBundleViewed", Some(InProgress)),
            ("DocumentAdded", Some(InProgress)),
            ("BundleArchived", None),
            ("BundleArchiveWarning", None),
            ("BundleClosureRegistered", None),
            ("WebhookURLChanged", None),
            ("SomethingNew", None),
            ("Unknown", None),
        ];
        for (event, expected) in cases {
            assert_eq!(status_of(event), expected, "{event}");
        }
    }

    #[test]
    fn authentication_table() {
        let provider = fusesign(&["fuse-1", "fuse-2"]);
        let cases = [
            (headers(&[("Fuse-Signature", "fuse-1")]), "ok"),
            (headers(&[("fuse-signature", "fuse-2")]), "ok"),
            (headers(&[("fuse-signature", " fuse-1 ")]), "ok"),
            (headers(&[("fuse-signature", "fuse-")]), "invalid_signature"),
            (headers(&[("fuse-signature", "FUSE-1")]), "invalid_signature"),
            (headers(&[("fuse-signature", "other")]), "invalid_signature"),
            (
                headers(&[("fuse-signature", "fuse-1"), ("fuse-signature", "other")]),
                "malformed_signature",
            ),
            (headers(&[("fuse-signature", "")]), "missing_signature"),
            (headers(&[]), "missing_signature"),
        ];
        for (headers, expected) in cases {
            assert_eq!(
                code(provider.authenticate(&headers, BODY, Utc::now())),
                expected,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn refuses_everything_without_signatures_and_never_shows_one() {
        let signed = headers(&[("fuse-signature", "fuse-1")]);
        match fusesign(&[]).authenticate(&signed, BODY, Utc::now()) {
            Err(ProviderError::InvalidCredential { message, .. }) => {
                assert!(message.contains("SIGNHOOK_FUSESIGN_SIGNATURES"), "{message}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let provider = fusesign(&["fuse-1"]);
        let error = provider
            .authenticate(&headers(&[("fuse-signature", "fuse-")]), BODY, Utc::now())
            .expect_err("refused");
        assert!(!error.to_string().contains("fuse-1"), "{error}");
        assert!(!provider.settings().to_string().contains("fuse-1"));
        assert!(provider.is_configured());
        assert!(!fusesign(&[]).is_configured());
    }

    #[test]
    fn parses_the_documented_example() {
        let n = fusesign(&[]).parse(BODY).expect("fixture parses");
        assert_eq!(n.event_id, "cc0c0745-7ba1-4134-b946-674d78c98fef");
        assert_eq!(n.event_type, "CustomerDocumentSigned");
        assert_eq!(
            n.occurred_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2020-09-14T03:54:07.284425100+00:00")
        );
        assert_eq!(n.tenant.as_deref(), Some("7ffcbae4-9f50-4136-8de6-edb6f796dc3f"));
        let subject = n.subject.expect("bundle subject");
        assert_eq!(subject.kind, "bundle");
        assert_eq!(subject.id, "69d3400e-1af1-44c7-9315-b80dd6e1e798");
        assert_eq!(subject.name, None);
        assert_eq!(subject.status, Some(AgreementStatus::InProgress));
        assert_eq!(subject.provider_status.as_deref(), Some("CustomerDocumentSigned"));
    }

    #[test]
    fn extraction_table() {
        // (body, event id, event type, subject id)
        let cases = [
            (
                json!({"WebhookId": "w1", "BundleId": "b1", "EventType": "BundleFinalised"}),
                "w1",
                "BundleFinalised",
                Some("b1"),
            ),
            (
                json!({"WebhookId": "w1",
                       "BundleHistoryEvent": {"Id": "h1", "BundleId": "b2", "Action": "BundleCreated"}}),
                "h1",
                "BundleCreated",
                Some("b2"),
            ),
            (
                json!({"WebhookId": "w1", "EventType": "WebhookURLChanged", "BundleHistoryEvent": null}),
                "w1",
                "WebhookURLChanged",
                None,
            ),
            (json!({"BundleHistoryEvent": {"Id": "h2"}}), "h2", "Unknown", None),
        ];
        for (body, event_id, event_type, subject_id) in cases {
            let n = fusesign(&[]).parse(body.to_string().as_bytes()).expect("parses");
            assert_eq!(n.event_id, event_id, "{body}");
            assert_eq!(n.event_type, event_type, "{body}");
            assert_eq!(n.subject.as_ref().map(|s| s.id.as_str()), subject_id, "{body}");
        }
    }

    #[test]
    fn rejects_bodies_it_cannot_identify() {
        for body in [
            &b"not json"[..],
            b"[1,2]",
            b"{}",
            br#"{"WebhookId": "", "BundleHistoryEvent": {"Id": ""}}"#,
            br#"{"BundleId": "b1", "EventType": "BundleFinalised"}"#,
            b"",
        ] {
            assert!(
                matches!(fusesign(&[]).parse(body), Err(ProviderError::InvalidPayload { .. })),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
