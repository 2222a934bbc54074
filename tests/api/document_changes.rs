//! `document.available`: when a completed agreement's documents are stored,
//! the application is told, in the feed and by a signed delivery that comes
//! after the agreement's `completed` status change; a destination whose
//! status filter leaves `completed` out gets neither. A refetch announces
//! again only when it stores different bytes.
//!
//! The provider is `common::fake_documents` (BoldSign's documented
//! `/v1/document/download` and `/downloadAuditLog`); the application is
//! `common::sink`, whose `verify` checks each signature with an HMAC computed
//! in the test, not with signhook's signing code.

use serde_json::Value;

use crate::{
    common::{
        fake_documents::{fake_pdf, sha256_hex, FakeDocuments},
        sink::{verify, Answer, Sink, DELIVERY_SECRET},
    },
    helpers::*,
};

const DOCUMENT: &str = "0f2c7b1e-avail-1";

/// An app whose providers' APIs are `fake`, delivering to `all` (every
/// change), `done` (`statuses=["completed"]`) and `open`
/// (`statuses=["in_progress"]`).
async fn app(fake: &FakeDocuments, all: &Sink, done: &Sink, open: &Sink) -> TestApp {
    let destinations = format!(
        r#"[{{name="done", url="{}", secret="{DELIVERY_SECRET}", statuses=["completed"]}},
            {{name="open", url="{}", secret="{DELIVERY_SECRET}", statuses=["in_progress"]}}]"#,
        done.url, open.url
    );
    // Retried every 200 ms for a minute: long enough for any document fetch.
    let schedule = vec!["200ms"; 300].join(",");
    let vars = fake.vars();
    let mut all_vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all_vars.extend_from_slice(&[
        ("SIGNHOOK_DELIVERY_URL", all.url.as_str()),
        ("SIGNHOOK_DELIVERY_SECRET", DELIVERY_SECRET),
        ("SIGNHOOK_DELIVERY_RETRY_SCHEDULE", &schedule),
        ("SIGNHOOK_DESTINATIONS", &destinations),
        ("SIGNHOOK_DOCUMENT_POLL_INTERVAL", "100ms"),
    ]);
    spawn_app_with(&all_vars).await
}

impl TestApp {
    /// Waits until the agreement's document job is `done`.
    async fn wait_for_documents(&self) {
        self.wait_until("the document job to be done", || async {
            let response = self
                .admin_get(&format!("/api/agreements/boldsign/{DOCUMENT}/documents"))
                .await;
            response.status() == 200 && response.json::<Value>().await.expect("JSON")["job"]["state"] == "done"
        })
        .await;
    }

    /// Waits until no delivery is pending; returns how many were delivered.
    async fn wait_for_deliveries_settled(&self) -> i64 {
        self.wait_until("every delivery to be delivered", || async {
            self.count("SELECT count(*) FROM deliveries WHERE state <> 'delivered'")
                .await
                == 0
        })
        .await;
        self.count("SELECT count(*) FROM deliveries").await
    }

    async fn document_changes(&self) -> i64 {
        self.count("SELECT count(*) FROM changes WHERE kind = 'document.available'")
            .await
    }
}

/// The bodies a sink acknowledged, in the order they arrived, each checked
/// against the Standard Webhooks signature.
fn acknowledged(sink: &Sink) -> Vec<Value> {
    sink.received()
        .iter()
        .filter(|r| r.answered == 200)
        .map(|r| {
            assert!(verify(DELIVERY_SECRET, r), "signature of {}", r.webhook_id);
            let body = r.json();
            assert_eq!(r.webhook_id, format!("chg_{}", body["data"]["change_id"]));
            body
        })
        .collect()
}

/// `(kind, sha256)` of each document a `document.available` body lists.
fn announced(body: &Value) -> Vec<(String, String)> {
    body["data"]["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_stored_copy_is_announced_after_the_completion_in_the_feed_and_to_matching_destinations() {
    let fake = FakeDocuments::start().await;
    let (pdf, audit) = (fake_pdf(2 * 1024 * 1024 + 7, 31), fake_pdf(80 * 1024, 32));
    fake.boldsign_document(DOCUMENT, pdf.clone(), audit.clone());
    let (all, done, open) = (Sink::start().await, Sink::start().await, Sink::start().await);
    // The application is down until the documents are stored: then the
    // completion and the document.available are both waiting, and only the
    // per-agreement order keeps the second behind the first.
    all.answer_by_default(Some(Answer::status(503)));
    done.answer_by_default(Some(Answer::status(503)));
    let app = app(&fake, &all, &done, &open).await;

    let now = unix_now();
    for (id, event_type, status, at) in [
        ("e-avail-sent", "Sent", None, now - 60),
        ("e-avail-completed", "Completed", Some("Completed"), now),
    ] {
        let event = boldsign_event(id, DOCUMENT, event_type, status, at);
        assert_eq!(app.post_boldsign(&event).await.status(), 200);
    }
    app.wait_for_documents().await;
    all.answer_by_default(None);
    done.answer_by_default(None);
    // all: sent, completed, document.available; done: the last two; open: sent.
    assert_eq!(app.wait_for_deliveries_settled().await, 6);

    let expected_documents = {
        let mut docs = vec![
            ("audit_trail".to_owned(), sha256_hex(&audit)),
            ("signed".to_owned(), sha256_hex(&pdf)),
        ];
        docs.sort();
        docs
    };
    let to_all = acknowledged(&all);
    let types: Vec<(&str, &str)> = to_all
        .iter()
        .map(|b| (b["type"].as_str().unwrap(), b["data"]["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        types,
        [
            ("agreement.status_changed", "in_progress"),
            ("agreement.status_changed", "completed"),
            ("document.available", "completed"),
        ]
    );
    let available = &to_all[2];
    assert_eq!(announced(available), expected_documents, "{available}");
    assert_eq!(available["data"]["provider"], "boldsign");
    assert_eq!(available["data"]["agreement_id"], DOCUMENT);
    assert_eq!(available["data"]["resource_type"], "document");
    assert_eq!(available["data"]["source"], "document");
    assert!(available["data"].get("event_id").is_none(), "{available}");
    let signed = available["data"]["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "signed")
        .expect("the signed copy");
    assert_eq!(signed["size"], pdf.len());
    assert_eq!(signed["content_type"], "application/pdf");
    assert_eq!(signed["source"], "api");
    // The status change's payload is the one it always was.
    assert!(to_all[1]["data"].get("documents").is_none());
    assert_eq!(to_all[1]["data"]["event_id"], "e-avail-completed");

    // A filter with `completed` gets the completion and its documents; one
    // without gets neither.
    let to_done: Vec<String> = acknowledged(&done)
        .iter()
        .map(|b| b["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(to_done, ["agreement.status_changed", "document.available"]);
    let to_open = acknowledged(&open);
    assert_eq!(to_open.len(), 1, "{to_open:?}");
    assert_eq!(to_open[0]["data"]["status"], "in_progress");
    assert_eq!(open.count(), 1, "nothing else was even attempted");

    // The feed lists the three in order, each with its type.
    let feed = app.read_changes(3).await;
    let feed_types: Vec<&str> = feed.iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(
        feed_types,
        [
            "agreement.status_changed",
            "agreement.status_changed",
            "document.available"
        ]
    );
    assert!(feed
        .windows(2)
        .all(|p| p[0]["cursor"].as_i64() < p[1]["cursor"].as_i64()));
    assert_eq!(feed[2]["id"], available["data"]["change_id"]);
    assert_eq!(feed[2]["status"], "completed");
    let mut feed_documents: Vec<(String, String)> = feed[2]["documents"]
        .as_array()
        .expect("the feed lists the documents")
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    feed_documents.sort();
    assert_eq!(feed_documents, expected_documents);
    assert!(feed[1].get("documents").is_none(), "{}", feed[1]);
}

#[tokio::test]
async fn a_refetch_announces_new_bytes_and_not_identical_ones() {
    let fake = FakeDocuments::start().await;
    let (pdf, audit) = (fake_pdf(512 * 1024, 41), fake_pdf(20 * 1024, 42));
    fake.boldsign_document(DOCUMENT, pdf.clone(), audit.clone());
    let (all, done, open) = (Sink::start().await, Sink::start().await, Sink::start().await);
    let app = app(&fake, &all, &done, &open).await;
    let completed = boldsign_event("e-refetch-1", DOCUMENT, "Completed", Some("Completed"), unix_now());
    assert_eq!(app.post_boldsign(&completed).await.status(), 200);
    app.wait_for_documents().await;
    assert_eq!(app.document_changes().await, 1);

    // The same bytes again: stored, and nothing to tell.
    let refetch = format!("/api/agreements/boldsign/{DOCUMENT}/refresh?documents=refetch");
    let response: Value = app.admin_post(&refetch).await.json().await.expect("JSON");
    assert_eq!(response["document_fetch"]["outcome"], "done", "{response}");
    assert_eq!(response["document_fetch"]["fetched"].as_array().map(Vec::len), Some(2));
    assert_eq!(app.document_changes().await, 1, "identical bytes announce nothing");

    // The provider serves a new signed PDF: announced, with its new digest.
    let corrected = fake_pdf(600 * 1024, 43);
    fake.boldsign_document(DOCUMENT, corrected.clone(), audit.clone());
    let response: Value = app.admin_post(&refetch).await.json().await.expect("JSON");
    assert_eq!(response["document_fetch"]["outcome"], "done", "{response}");
    assert_eq!(app.document_changes().await, 2);
    // completion, first copy, corrected copy: to `all` and to `done`.
    assert_eq!(app.wait_for_deliveries_settled().await, 6);
    let to_all = acknowledged(&all);
    assert_eq!(to_all.len(), 3);
    let latest = announced(&to_all[2]);
    assert!(
        latest.contains(&("signed".to_owned(), sha256_hex(&corrected))),
        "{latest:?}"
    );
    assert!(announced(&to_all[1]).contains(&("signed".to_owned(), sha256_hex(&pdf))));
    // Each delivery keeps the documents of its own time.
    assert_ne!(to_all[1]["data"]["documents"], to_all[2]["data"]["documents"]);
}
