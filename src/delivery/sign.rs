//! What a delivery sends: the JSON body (the same bytes at every attempt;
//! [`DeliveryPayload`] for `agreement.status_changed`,
//! [`DocumentAvailablePayload`] for `document.available`) and the Standard
//! Webhooks headers — `webhook-id` (the change's, stable
//! across retries and recoveries), `webhook-timestamp` (this attempt's unix
//! time) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of
//! id.timestamp.body>`), signed by the `standardwebhooks` crate.

use chrono::{DateTime, Utc};
use serde::Serialize;
use standardwebhooks::{Webhook, HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP};
use utoipa::ToSchema;

use crate::store::{ChangeDocument, ChangeType, ChangeView};

/// The body of an `agreement.status_changed` delivery: `{"type","timestamp","data"}`
/// as the Standard Webhooks specification shapes a payload.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPayload<'a> {
    /// Always `agreement.status_changed`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When signhook recorded the change.
    pub timestamp: DateTime<Utc>,
    pub data: DeliveryData<'a>,
}

/// The change a delivery carries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryData<'a> {
    /// The change's id (its deliveries' `webhook-id` is `chg_<change_id>`).
    pub change_id: i64,
    pub provider: &'a str,
    pub agreement_id: &'a str,
    pub resource_type: &'a str,
    pub name: Option<&'a str>,
    pub previous_status: Option<&'a str>,
    pub status: Option<&'a str>,
    pub previous_provider_status: Option<&'a str>,
    pub provider_status: Option<&'a str>,
    /// When the provider says it happened (a poll: when it was read).
    pub occurred_at: DateTime<Utc>,
    /// The provider's event id, or `poll` / `refresh`.
    pub event_id: &'a str,
    /// `webhook`, `poll` or `refresh`.
    pub source: &'a str,
}

/// The body of a `document.available` delivery: the completed agreement's
/// signed copy (and audit trail, where the provider has one) is stored and
/// can be downloaded from `GET /api/agreements/{provider}/{id}/documents/{kind}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentAvailablePayload<'a> {
    /// Always `document.available`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When signhook recorded the change.
    pub timestamp: DateTime<Utc>,
    pub data: DocumentAvailableData<'a>,
}

/// The documents a `document.available` delivery announces.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentAvailableData<'a> {
    /// The change's id (its deliveries' `webhook-id` is `chg_<change_id>`).
    pub change_id: i64,
    pub provider: &'a str,
    pub agreement_id: &'a str,
    pub resource_type: &'a str,
    pub name: Option<&'a str>,
    /// Always `completed` (a status filter applies to it as to a completion).
    pub status: Option<&'a str>,
    /// The documents stored when the change was recorded, by kind.
    pub documents: &'a [ChangeDocument],
    /// When the last of them was stored.
    pub occurred_at: DateTime<Utc>,
    /// Always `document`.
    pub source: &'a str,
}

/// The `webhook-id` of every delivery of change `change_id`.
pub fn webhook_id(change_id: i64) -> String {
    format!("chg_{change_id}")
}

/// The body of a delivery of `change`: built from the stored change only, so
/// every attempt sends the same bytes.
pub fn body(change: &ChangeView) -> Vec<u8> {
    let serialized = if change.kind == ChangeType::DocumentAvailable.as_str() {
        serde_json::to_vec(&DocumentAvailablePayload {
            kind: ChangeType::DocumentAvailable.as_str(),
            timestamp: change.recorded_at,
            data: DocumentAvailableData {
                change_id: change.id,
                provider: &change.provider,
                agreement_id: &change.agreement_id,
                resource_type: &change.resource_type,
                name: change.name.as_deref(),
                status: change.status.as_deref(),
                documents: change.documents.as_ref().map_or(&[], |docs| docs.0.as_slice()),
                occurred_at: change.occurred_at,
                source: &change.source,
            },
        })
    } else {
        serde_json::to_vec(&DeliveryPayload {
            kind: ChangeType::StatusChanged.as_str(),
            timestamp: change.recorded_at,
            data: DeliveryData {
                change_id: change.id,
                provider: &change.provider,
                agreement_id: &change.agreement_id,
                resource_type: &change.resource_type,
                name: change.name.as_deref(),
                previous_status: change.previous_status.as_deref(),
                status: change.status.as_deref(),
                previous_provider_status: change.previous_provider_status.as_deref(),
                provider_status: change.provider_status.as_deref(),
                occurred_at: change.occurred_at,
                event_id: &change.event_id,
                source: &change.source,
            },
        })
    };
    serialized.expect("a delivery payload serializes")
}

/// The three Standard Webhooks headers for sending `body` as `id` at `timestamp`.
pub fn headers(signer: &Webhook, id: &str, timestamp: i64, body: &[u8]) -> [(&'static str, String); 3] {
    let signature = signer
        .sign(id, timestamp, body)
        .expect("a delivery body is JSON, hence UTF-8");
    [
        (HEADER_WEBHOOK_ID, id.to_owned()),
        (HEADER_WEBHOOK_TIMESTAMP, timestamp.to_string()),
        (HEADER_WEBHOOK_SIGNATURE, signature),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use serde_json::{json, Value};

    fn change(kind: ChangeType, documents: Option<Vec<ChangeDocument>>) -> ChangeView {
        let at = DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z")
            .expect("a time")
            .with_timezone(&Utc);
        ChangeView {
            kind: kind.as_str().to_owned(),
            cursor: Some(3),
            id: 7,
            provider: "boldsign".to_owned(),
            agreement_id: "doc-1".to_owned(),
            resource_type: "document".to_owned(),
            name: Some("NDA".to_owned()),
            previous_status: Some("in_progress".to_owned()).filter(|_| documents.is_none()),
            status: Some("completed".to_owned()),
            previous_provider_status: None,
            provider_status: Some("Completed".to_owned()).filter(|_| documents.is_none()),
            occurred_at: at,
            event_id: if documents.is_some() { "document" } else { "evt-1" }.to_owned(),
            source: if documents.is_some() { "document" } else { "webhook" }.to_owned(),
            recorded_at: at,
            documents: documents.map(sqlx::types::Json),
        }
    }

    /// Each kind of change has its own payload; a status change's is the one
    /// it always was (no `documents`).
    #[test]
    fn each_change_type_has_its_payload() {
        let status: Value = serde_json::from_slice(&body(&change(ChangeType::StatusChanged, None))).expect("JSON");
        assert_eq!(
            status,
            json!({"type": "agreement.status_changed", "timestamp": "2026-12-02T10:00:00Z", "data": {
                "change_id": 7, "provider": "boldsign", "agreement_id": "doc-1", "resource_type": "document",
                "name": "NDA", "previous_status": "in_progress", "status": "completed",
                "previous_provider_status": null, "provider_status": "Completed",
                "occurred_at": "2026-12-02T10:00:00Z", "event_id": "evt-1", "source": "webhook"}})
        );
        let signed = ChangeDocument {
            kind: "signed".to_owned(),
            sha256: "ab".repeat(32),
            size: 42,
            content_type: "application/pdf".to_owned(),
            source: "api".to_owned(),
        };
        let documents = change(ChangeType::DocumentAvailable, Some(vec![signed]));
        let available: Value = serde_json::from_slice(&body(&documents)).expect("JSON");
        assert_eq!(
            available,
            json!({"type": "document.available", "timestamp": "2026-12-02T10:00:00Z", "data": {
                "change_id": 7, "provider": "boldsign", "agreement_id": "doc-1", "resource_type": "document",
                "name": "NDA", "status": "completed",
                "documents": [{"kind": "signed", "sha256": "ab".repeat(32), "size": 42,
                               "content_type": "application/pdf", "source": "api"}],
                "occurred_at": "2026-12-02T10:00:00Z", "source": "document"}})
        );
    }

    /// The signature is the one the specification defines, computed here
    /// without the crate: HMAC-SHA256 under the base64-decoded key of
    /// `id.timestamp.body`, base64, behind `v1,`.
    #[test]
    fn signature_is_the_standard_webhooks_hmac() {
        let key_b64 = "C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let signer = Webhook::new(&format!("whsec_{key_b64}")).expect("valid secret");
        let body = br#"{"type":"agreement.status_changed"}"#;
        let [id, ts, signature] = headers(&signer, "chg_7", 1_700_000_000, body);
        assert_eq!(id, ("webhook-id", "chg_7".to_owned()));
        assert_eq!(ts, ("webhook-timestamp", "1700000000".to_owned()));
        let key = base64::engine::general_purpose::STANDARD
            .decode(key_b64)
            .expect("base64");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
        mac.update(b"chg_7.1700000000.");
        mac.update(body);
        let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(signature, ("webhook-signature", format!("v1,{expected}")));
    }
}
