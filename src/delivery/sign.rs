//! What a delivery sends: the JSON body (the same bytes at every attempt)
//! and the Standard Webhooks headers — `webhook-id` (the change's, stable
//! across retries and recoveries), `webhook-timestamp` (this attempt's unix
//! time) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of
//! id.timestamp.body>`), signed by the `standardwebhooks` crate.

use chrono::{DateTime, Utc};
use serde::Serialize;
use standardwebhooks::{Webhook, HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP};
use utoipa::ToSchema;

use crate::store::ChangeView;

/// The `type` of every delivery.
pub const EVENT_TYPE: &str = "agreement.status_changed";

/// A delivery's body: `{"type","timestamp","data"}` as the Standard Webhooks
/// specification shapes a payload.
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

/// The `webhook-id` of every delivery of change `change_id`.
pub fn webhook_id(change_id: i64) -> String {
    format!("chg_{change_id}")
}

/// The body of a delivery of `change`: built from the stored change only, so
/// every attempt sends the same bytes.
pub fn body(change: &ChangeView) -> Vec<u8> {
    let payload = DeliveryPayload {
        kind: EVENT_TYPE,
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
    };
    serde_json::to_vec(&payload).expect("a delivery payload serializes")
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
