//! Copies of completed agreements: fetched when the agreement completes
//! (from the notification itself, or through each provider's API), stored
//! byte-identical, served with their headers, retried or dead as
//! documented, and fetched again on demand.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::{
    common::fake_documents::{fake_pdf, sha256_hex, Failure, FakeDocuments},
    helpers::*,
};

const MB: usize = 1024 * 1024;

/// An app whose providers' APIs are `fake`, with fast document retries.
async fn app_with(fake: &FakeDocuments, extra: &[(&str, &str)]) -> TestApp {
    let vars = fake.vars();
    let mut all: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(&[
        ("SIGNHOOK_DOCUMENT_RETRY_BASE", "100ms"),
        ("SIGNHOOK_DOCUMENT_RETRY_MAX", "400ms"),
        ("SIGNHOOK_DOCUMENT_POLL_INTERVAL", "100ms"),
    ]);
    all.extend_from_slice(extra);
    spawn_app_with(&all).await
}

fn adobe_completed(notification_id: &str, agreement_id: &str) -> Value {
    adobe_event(
        notification_id,
        agreement_id,
        "AGREEMENT_WORKFLOW_COMPLETED",
        Some("SIGNED"),
        "2026-11-20T10:00:00Z",
    )
}

/// The documents listing of an agreement.
async fn documents(app: &TestApp, provider: &str, id: &str) -> Value {
    let response = app
        .admin_get(&format!("/api/agreements/{provider}/{id}/documents"))
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("documents JSON")
}

/// Waits until the agreement's fetch job is `state`; returns the listing.
async fn wait_for_job(app: &TestApp, provider: &str, id: &str, state: &str) -> Value {
    app.wait_until(&format!("{provider}/{id}'s document job to be {state}"), || async {
        let response = app
            .admin_get(&format!("/api/agreements/{provider}/{id}/documents"))
            .await;
        response.status() == 200 && response.json::<Value>().await.expect("JSON")["job"]["state"] == state
    })
    .await;
    documents(app, provider, id).await
}

/// Downloads one document; asserts the headers say what is stored and the
/// bytes are exactly `expected`.
async fn assert_serves(app: &TestApp, provider: &str, id: &str, kind: &str, expected: &[u8]) {
    let response = app
        .admin_get(&format!("/api/agreements/{provider}/{id}/documents/{kind}"))
        .await;
    assert_eq!(response.status(), 200, "{provider}/{id}/{kind}");
    let headers = response.headers().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "application/pdf");
    assert_eq!(header("content-length"), expected.len().to_string());
    assert_eq!(header("etag"), format!("\"{}\"", sha256_hex(expected)));
    let disposition = header("content-disposition");
    assert!(disposition.starts_with("attachment; filename=\""), "{disposition}");
    assert!(disposition.ends_with(".pdf\""), "{disposition}");
    let body = response.bytes().await.expect("the whole body");
    assert_eq!(body.len(), expected.len());
    assert_eq!(
        sha256_hex(&body),
        sha256_hex(expected),
        "{provider}/{id}/{kind} byte-identical"
    );
}

#[tokio::test]
async fn completed_agreements_of_every_provider_are_kept_byte_identical() {
    let fake = FakeDocuments::start().await;
    let (adobe_pdf, adobe_audit) = (fake_pdf(3 * MB + 17, 1), fake_pdf(200 * 1024, 2));
    let (bold_pdf, bold_audit) = (fake_pdf(4 * MB, 3), fake_pdf(150 * 1024, 4));
    let (fuse_one, fuse_two) = (fake_pdf(2 * MB + 5, 5), fake_pdf(MB, 6));
    fake.adobe_agreement("CBJ-adobe-1", adobe_pdf.clone(), adobe_audit.clone());
    fake.boldsign_document("0f2c7b1e-bold-1", bold_pdf.clone(), bold_audit.clone());
    fake.fusesign_bundle(
        "69d3400e-fuse-1",
        &[
            ("5ec03200-doc-1", "Engagement letter", fuse_one.clone()),
            ("5ec03200-doc-2", "Terms.pdf", fuse_two.clone()),
        ],
    );
    let app = app_with(&fake, &[]).await;

    // Adobe trimmed the signed document off this payload (10 MB limit):
    // it is downloaded.
    let mut trimmed = adobe_completed("n-adobe-1", "CBJ-adobe-1");
    trimmed["conditionalParametersTrimmed"] = json!(["includeSignedDocuments"]);
    app.deliver_adobe(&trimmed).await;
    let completed = boldsign_event(
        "e-bold-1",
        "0f2c7b1e-bold-1",
        "Completed",
        Some("Completed"),
        unix_now(),
    );
    assert_eq!(app.post_boldsign(&completed).await.status(), 200);
    let finalised = fuse_event(
        "h-fuse-1",
        "69d3400e-fuse-1",
        "BundleFinalised",
        "2026-11-20T10:00:00.1234567Z",
    );
    assert_eq!(app.post_fusesign(&finalised).await.status(), 200);

    for (provider, id, kinds) in [
        ("adobe-sign", "CBJ-adobe-1", vec!["audit_trail", "signed"]),
        ("boldsign", "0f2c7b1e-bold-1", vec!["audit_trail", "signed"]),
        ("fusesign", "69d3400e-fuse-1", vec!["signed", "signed_2"]),
    ] {
        let listing = wait_for_job(&app, provider, id, "done").await;
        let listed: Vec<&str> = listing["documents"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|d| d["kind"].as_str().expect("a kind"))
            .collect();
        assert_eq!(listed, kinds, "{provider}: {listing}");
        assert!(listing["documents"]
            .as_array()
            .expect("a list")
            .iter()
            .all(|d| d["source"] == "api"));
        // The agreement view lists them too.
        let agreement = app.get_agreement(provider, id).await;
        assert_eq!(
            agreement["documents"].as_array().map(Vec::len),
            Some(kinds.len()),
            "{agreement}"
        );
    }
    assert_serves(&app, "adobe-sign", "CBJ-adobe-1", "signed", &adobe_pdf).await;
    assert_serves(&app, "adobe-sign", "CBJ-adobe-1", "audit_trail", &adobe_audit).await;
    assert_serves(&app, "boldsign", "0f2c7b1e-bold-1", "signed", &bold_pdf).await;
    assert_serves(&app, "boldsign", "0f2c7b1e-bold-1", "audit_trail", &bold_audit).await;
    assert_serves(&app, "fusesign", "69d3400e-fuse-1", "signed", &fuse_one).await;
    assert_serves(&app, "fusesign", "69d3400e-fuse-1", "signed_2", &fuse_two).await;

    // Each provider's documented download endpoints were the ones asked.
    let downloads = fake.downloads();
    for expected in [
        "/api/rest/v6/agreements/CBJ-adobe-1/combinedDocument",
        "/api/rest/v6/agreements/CBJ-adobe-1/auditTrail",
        "/v1/document/download?documentId=0f2c7b1e-bold-1",
        "/v1/document/downloadAuditLog?documentId=0f2c7b1e-bold-1",
        "/api/Document/Download?tenantId=7ffcbae4-9f50-4136-8de6-edb6f796dc3f&documentId=5ec03200-doc-1",
    ] {
        assert!(downloads.iter().any(|d| d == expected), "{expected} in {downloads:?}");
    }
    // Content is stored once: 6 documents, 6 blobs, each chunk at most 1 MiB.
    assert_eq!(app.count("SELECT count(*) FROM document_blobs").await, 6);
    assert_eq!(
        app.count("SELECT count(*) FROM document_chunks WHERE octet_length(data) > 1048576")
            .await,
        0
    );
}

#[tokio::test]
async fn an_adobe_payload_carrying_the_signed_document_is_stored_without_an_api_call() {
    let fake = FakeDocuments::start().await;
    // No Adobe API credentials at all: the payload is the only source.
    let app = app_with(&fake, &[("SIGNHOOK_ADOBE_SIGN_API_TOKEN", "")]).await;
    let pdf = fake_pdf(MB + 3, 7);
    let mut payload = adobe_completed("n-inline-1", "CBJ-inline-1");
    payload["agreement"]["signedDocumentInfo"] =
        json!({"document": base64::engine::general_purpose::STANDARD.encode(&pdf)});
    app.deliver_adobe(&payload).await;

    let listing = wait_for_job(&app, "adobe-sign", "CBJ-inline-1", "done").await;
    let documents = listing["documents"].as_array().expect("a list");
    assert_eq!(documents.len(), 1, "{listing}");
    assert_eq!(documents[0]["kind"], "signed");
    assert_eq!(documents[0]["source"], "webhook");
    assert_eq!(documents[0]["sha256"], sha256_hex(&pdf));
    assert_serves(&app, "adobe-sign", "CBJ-inline-1", "signed", &pdf).await;
    assert!(fake.downloads().is_empty(), "no API call: {:?}", fake.downloads());
    // The stored event keeps the body as Adobe sent it (the evidence).
    let body: Vec<u8> = sqlx::query_scalar("SELECT body FROM events WHERE event_id = 'n-inline-1'")
        .fetch_one(&app.db)
        .await
        .expect("stored");
    assert_eq!(body, payload.to_string().into_bytes());
}

#[tokio::test]
async fn server_errors_and_cut_off_bodies_are_retried_and_throttling_waits() {
    let fake = FakeDocuments::start().await;
    let pdf = fake_pdf(2 * MB, 8);
    fake.boldsign_document("bold-retry-1", pdf.clone(), fake_pdf(1000, 9));
    // The first download is cut off half way, the next answers 500, the
    // third asks to wait a second; then it works.
    fake.fail_next(1, Failure::Truncated);
    fake.fail_next(1, Failure::ServerError);
    fake.fail_next(1, Failure::TooManyRequests { retry_after_secs: 1 });
    let app = app_with(&fake, &[]).await;
    let completed = boldsign_event("e-retry-1", "bold-retry-1", "Completed", Some("Completed"), unix_now());
    assert_eq!(app.post_boldsign(&completed).await.status(), 200);

    let listing = wait_for_job(&app, "boldsign", "bold-retry-1", "done").await;
    // Two failed attempts and the successful one; the throttled call was
    // not an attempt.
    assert_eq!(listing["job"]["attempts"], 3, "{listing}");
    assert_serves(&app, "boldsign", "bold-retry-1", "signed", &pdf).await;
    // Nothing of the cut-off body was kept.
    assert_eq!(app.count("SELECT count(*) FROM document_blobs").await, 2);
}

#[tokio::test]
async fn a_document_the_provider_does_not_have_ends_dead_with_its_error_and_can_be_refetched() {
    let fake = FakeDocuments::start().await;
    let pdf = fake_pdf(MB, 10);
    fake.adobe_agreement("CBJ-missing-1", pdf.clone(), fake_pdf(2000, 11));
    // Completed, but Adobe answers 404 INVALID_AGREEMENT_ID for its
    // documents three times.
    fake.fail_next(3, Failure::NotFound);
    let app = app_with(&fake, &[("SIGNHOOK_DOCUMENT_MAX_ATTEMPTS", "3")]).await;
    app.deliver_adobe(&adobe_completed("n-404-1", "CBJ-missing-1")).await;
    let listing = wait_for_job(&app, "adobe-sign", "CBJ-missing-1", "dead").await;
    assert_eq!(listing["job"]["attempts"], 3, "{listing}");
    let error = listing["job"]["last_error"].as_str().expect("an error");
    assert!(error.contains("does not know"), "{error}");
    let response = app
        .admin_get("/api/agreements/adobe-sign/CBJ-missing-1/documents/signed")
        .await;
    assert_eq!(response.status(), 404);

    // The provider has it now: a refetch queues the dead job again.
    let response = app
        .admin_post("/api/agreements/adobe-sign/CBJ-missing-1/documents/refetch")
        .await;
    assert_eq!(response.status(), 202);
    wait_for_job(&app, "adobe-sign", "CBJ-missing-1", "done").await;
    assert_serves(&app, "adobe-sign", "CBJ-missing-1", "signed", &pdf).await;
}

#[tokio::test]
async fn refresh_of_a_completed_agreement_fetches_its_missing_copy_and_reports_it() {
    let fake = FakeDocuments::start().await;
    let pdf = fake_pdf(MB + 1, 12);
    let audit = fake_pdf(4000, 13);
    fake.adobe_agreement("CBJ-refresh-1", pdf.clone(), audit.clone());
    // No fetch loop: only the refresh fetches.
    let app = app_with(&fake, &[("SIGNHOOK_DOCUMENT_WORKERS", "0")]).await;

    let response = app.refresh("adobe-sign", "CBJ-refresh-1").await;
    assert_eq!(response.status(), 200);
    let refreshed: Value = response.json().await.expect("JSON");
    assert_eq!(refreshed["status"], "completed");
    assert_eq!(refreshed["document_fetch"]["outcome"], "done", "{refreshed}");
    let fetched = refreshed["document_fetch"]["fetched"].as_array().expect("a list");
    assert_eq!(fetched.len(), 2, "{refreshed}");
    assert!(fetched
        .iter()
        .any(|d| d["kind"] == "signed" && d["sha256"] == sha256_hex(&pdf)));
    assert_eq!(
        refreshed["document_fetch"]
            .get("kept")
            .and_then(Value::as_array)
            .map(Vec::len),
        Some(0)
    );
    assert_serves(&app, "adobe-sign", "CBJ-refresh-1", "signed", &pdf).await;

    // Kept now: a plain refresh fetches nothing more.
    let downloads = fake.downloads().len();
    let again: Value = app
        .refresh("adobe-sign", "CBJ-refresh-1")
        .await
        .json()
        .await
        .expect("JSON");
    assert!(again.get("document_fetch").is_none(), "{again}");
    assert_eq!(fake.downloads().len(), downloads);

    // `?documents=refetch` fetches them all again, with the same content.
    let response = app
        .admin_post("/api/agreements/adobe-sign/CBJ-refresh-1/refresh?documents=refetch")
        .await;
    let refetched: Value = response.json().await.expect("JSON");
    assert_eq!(refetched["document_fetch"]["outcome"], "done", "{refetched}");
    assert_eq!(refetched["document_fetch"]["fetched"].as_array().map(Vec::len), Some(2));
    assert_eq!(fake.downloads().len(), downloads + 2);
    assert_eq!(
        app.count("SELECT count(*) FROM document_blobs").await,
        2,
        "written once"
    );

    let (status, body) = error_of(
        app.admin_post("/api/agreements/adobe-sign/CBJ-refresh-1/refresh?documents=all")
            .await,
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_query")));
}

#[tokio::test]
async fn the_document_endpoints_answer_clearly() {
    let fake = FakeDocuments::start().await;
    let pdf = fake_pdf(300 * 1024, 14);
    fake.adobe_agreement("CBJ-api-1", pdf.clone(), fake_pdf(100, 15));
    let app = app_with(&fake, &[]).await;
    app.deliver_adobe(&adobe_completed("n-api-1", "CBJ-api-1")).await;
    wait_for_job(&app, "adobe-sign", "CBJ-api-1", "done").await;

    // If-None-Match with the ETag: 304, no body.
    let etag = format!("\"{}\"", sha256_hex(&pdf));
    let response = app
        .client
        .get(app.url("/api/agreements/adobe-sign/CBJ-api-1/documents/signed"))
        .bearer_auth(ADMIN_TOKEN)
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 304);

    let cases = [
        (
            "/api/agreements/adobe-sign/CBJ-api-1/documents/original",
            400,
            "invalid_document_kind",
        ),
        (
            "/api/agreements/adobe-sign/CBJ-unknown/documents/signed",
            404,
            "not_found",
        ),
        ("/api/agreements/adobe-sign/CBJ-unknown/documents", 404, "not_found"),
        ("/api/agreements/nosign/CBJ-api-1/documents", 404, "not_found"),
        (
            "/api/agreements/adobe-sign/CBJ-api-1/documents/signed_2",
            404,
            "not_found",
        ),
    ];
    for (path, status, code) in cases {
        let (got, body) = error_of(app.admin_get(path).await).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }
    // Only a completed agreement has documents to refetch.
    app.deliver_adobe(&adobe_event(
        "n-api-2",
        "CBJ-open-1",
        "AGREEMENT_CREATED",
        Some("OUT_FOR_SIGNATURE"),
        "2026-11-20T09:00:00Z",
    ))
    .await;
    let (status, body) = error_of(
        app.admin_post("/api/agreements/adobe-sign/CBJ-open-1/documents/refetch")
            .await,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("agreement_not_completed"))
    );
    let listing = documents(&app, "adobe-sign", "CBJ-open-1").await;
    assert_eq!(listing["job"], Value::Null, "no job for an open agreement");
    // Without the token, nothing.
    assert_eq!(
        app.get("/api/agreements/adobe-sign/CBJ-api-1/documents/signed")
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn documents_can_be_kept_in_a_local_directory() {
    let fake = FakeDocuments::start().await;
    let pdf = fake_pdf(6 * MB + 11, 16);
    fake.boldsign_document("bold-file-1", pdf.clone(), fake_pdf(5000, 17));
    let dir = std::env::temp_dir().join(format!("signhook-documents-{}", uuid::Uuid::new_v4().simple()));
    let url = format!("file://{}", dir.display());
    let app = app_with(&fake, &[("SIGNHOOK_DOCUMENT_STORE", &url)]).await;
    let completed = boldsign_event("e-file-1", "bold-file-1", "Completed", Some("Completed"), unix_now());
    assert_eq!(app.post_boldsign(&completed).await.status(), 200);
    wait_for_job(&app, "boldsign", "bold-file-1", "done").await;
    assert_serves(&app, "boldsign", "bold-file-1", "signed", &pdf).await;

    // On disk at its address, byte-identical; nothing left in staging, and
    // nothing in PostgreSQL's store.
    let sha = sha256_hex(&pdf);
    let on_disk = std::fs::read(dir.join("sha256").join(&sha[..2]).join(&sha)).expect("stored at its address");
    assert_eq!(sha256_hex(&on_disk), sha);
    let staging = std::fs::read_dir(dir.join("tmp")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(staging, 0);
    assert_eq!(app.count("SELECT count(*) FROM document_blobs").await, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_agreement_the_reconciler_finds_completed_gets_its_copy() {
    let fake = FakeDocuments::start().await;
    let pdf = fake_pdf(MB + 21, 18);
    fake.adobe_agreement("CBJ-polled-1", pdf.clone(), fake_pdf(3000, 19));
    let app = app_with(
        &fake,
        &[
            ("SIGNHOOK_RECONCILE_INTERVAL", "100ms"),
            ("SIGNHOOK_RECONCILE_STALE_AFTER", "1s"),
            ("SIGNHOOK_RECONCILE_MAX_PER_MINUTE", "6000"),
        ],
    )
    .await;
    // The webhook said "out for signature"; the completion webhook is lost,
    // and the reconciler's poll reads SIGNED.
    app.deliver_adobe(&adobe_event(
        "n-polled-1",
        "CBJ-polled-1",
        "AGREEMENT_CREATED",
        Some("OUT_FOR_SIGNATURE"),
        "2026-11-20T09:00:00Z",
    ))
    .await;
    app.wait_for_agreement_status("adobe-sign", "CBJ-polled-1", "completed")
        .await;
    wait_for_job(&app, "adobe-sign", "CBJ-polled-1", "done").await;
    assert_serves(&app, "adobe-sign", "CBJ-polled-1", "signed", &pdf).await;
}
