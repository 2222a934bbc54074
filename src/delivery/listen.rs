//! `signhook listen`: a local receiver for signhook's outbound webhooks, like
//! `stripe listen`. It verifies each delivery's Standard Webhooks signature
//! with the destination's secret, answers 204 (401 when the signature does
//! not verify), and prints the change, so a user sees exactly what their
//! application will receive.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post, Router};
use serde_json::Value;
use standardwebhooks::Webhook;

/// What `listen` was asked to do.
#[derive(Debug, Clone, clap::Args)]
pub struct ListenArgs {
    /// Address to receive on; point SIGNHOOK_DELIVERY_URL at it.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// The destination's signing secret (whsec_...).
    #[arg(long, env = "SIGNHOOK_DELIVERY_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Print each delivery as one JSON line (headers and body) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("--secret / SIGNHOOK_DELIVERY_SECRET: {0}")]
    Secret(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// One delivery whose signature verified.
#[derive(Debug, Clone)]
pub struct Verified {
    pub webhook_id: String,
    pub webhook_timestamp: String,
    /// This `webhook-id` was received before (at-least-once delivery).
    pub repeat: bool,
    /// The body (`Null` if it is not JSON).
    pub payload: Value,
}

/// What a receiver does with each verified delivery.
pub type OnDelivery = Arc<dyn Fn(Verified) + Send + Sync>;

struct Receiver {
    signer: Webhook,
    seen: Mutex<HashSet<String>>,
    on_delivery: OnDelivery,
}

/// Receives until Ctrl-C. The address is announced on stderr (the changes
/// alone go to stdout, one line each).
pub async fn run(args: ListenArgs) -> Result<(), ListenError> {
    let signer = super::signer(args.secret.trim()).map_err(ListenError::Secret)?;
    let listener = bind(args.listen).await?;
    let addr = listener.local_addr().map_err(ListenError::Serve)?;
    eprintln!("signhook listen: receiving on http://{addr}/ (set SIGNHOOK_DELIVERY_URL=http://{addr}/ on the server); Ctrl-C stops");
    let json = args.json;
    let print: OnDelivery = Arc::new(move |delivery: Verified| match json {
        true => println!(
            "{}",
            serde_json::json!({
                "webhook_id": delivery.webhook_id,
                "webhook_timestamp": delivery.webhook_timestamp,
                "verified": true,
                "repeat": delivery.repeat,
                "payload": delivery.payload,
            })
        ),
        false => println!("{}", describe(&delivery.webhook_id, delivery.repeat, &delivery.payload)),
    });
    serve(listener, signer, print, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

/// Binds the receiving address.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ListenError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError::Bind { addr, source })
}

/// Serves deliveries on `listener` until `shutdown`: each whose signature
/// verifies with `signer` goes to `on_delivery` and is answered 204, any
/// other 401 (so signhook tries it again).
pub async fn serve(
    listener: tokio::net::TcpListener,
    signer: Webhook,
    on_delivery: OnDelivery,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ListenError> {
    let receiver = Arc::new(Receiver {
        signer,
        seen: Mutex::default(),
        on_delivery,
    });
    let router = Router::new()
        .route("/", post(receive))
        .route("/{*path}", post(receive))
        .with_state(receiver);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ListenError::Serve)
}

async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let id = header("webhook-id").to_owned();
    if let Err(error) = receiver.signer.verify(&body, &headers) {
        eprintln!("signhook listen: refused {id:?}: {error} (answered 401)");
        return StatusCode::UNAUTHORIZED;
    }
    let repeat = !receiver.seen.lock().expect("seen lock").insert(id.clone());
    (receiver.on_delivery)(Verified {
        webhook_timestamp: header("webhook-timestamp").to_owned(),
        webhook_id: id,
        repeat,
        payload: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    StatusCode::NO_CONTENT
}

/// One line for people: `chg_12 boldsign doc-1 in_progress -> completed (Completed) webhook evt-1`
/// for a status change, `chg_13 boldsign doc-1 document.available signed 4194304 B sha256:3f2a9c1e…`
/// for stored documents.
fn describe(id: &str, repeat: bool, payload: &Value) -> String {
    let data = &payload["data"];
    let text = |value: &Value| value.as_str().unwrap_or("-").to_owned();
    let again = if repeat { " (again)" } else { "" };
    let agreement = format!("{} {}", text(&data["provider"]), text(&data["agreement_id"]));
    if payload["type"] == "document.available" {
        let documents: Vec<String> = data["documents"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|doc| {
                let sha = text(&doc["sha256"]);
                format!(
                    "{} {} B sha256:{}…",
                    text(&doc["kind"]),
                    doc["size"].as_i64().unwrap_or(0),
                    sha.get(..12).unwrap_or(&sha)
                )
            })
            .collect();
        return format!("{id}{again} {agreement} document.available {}", documents.join(", "));
    }
    format!(
        "{id}{again} {agreement} {} -> {} ({}) {} {}",
        text(&data["previous_status"]),
        text(&data["status"]),
        text(&data["provider_status"]),
        text(&data["source"]),
        text(&data["event_id"]),
    )
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn a_change_is_one_readable_line() {
        let payload = serde_json::json!({"type": "agreement.status_changed", "data": {
            "provider": "boldsign", "agreement_id": "doc-1", "previous_status": "in_progress",
            "status": "completed", "provider_status": "Completed", "source": "webhook", "event_id": "evt-1"}});
        assert_eq!(
            describe("chg_12", false, &payload),
            "chg_12 boldsign doc-1 in_progress -> completed (Completed) webhook evt-1"
        );
        assert!(describe("chg_12", true, &payload).starts_with("chg_12 (again) "));
        let documents = serde_json::json!({"type": "document.available", "data": {
            "provider": "boldsign", "agreement_id": "doc-1", "status": "completed", "source": "document",
            "documents": [
                {"kind": "audit_trail", "sha256": "9".repeat(64), "size": 1200},
                {"kind": "signed", "sha256": format!("3f2a9c1e0b7d{}", "0".repeat(52)), "size": 4194304}]}});
        assert_eq!(
            describe("chg_13", false, &documents),
            "chg_13 boldsign doc-1 document.available audit_trail 1200 B sha256:999999999999…, \
             signed 4194304 B sha256:3f2a9c1e0b7d…"
        );
    }
}
