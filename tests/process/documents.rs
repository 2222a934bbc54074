//! Copies of completed agreements with the real binary: a fetch cut by
//! `kill -9` is finished after a restart; a 50 MB document goes through in
//! bounded memory (measured in the process's `/proc` status); and the
//! documents are kept on an S3-compatible server the test starts itself
//! (moto in server mode, installed by `.ci/run`).

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde_json::Value;

use crate::{
    common::{
        boldsign_event,
        fake_documents::{fake_pdf, sha256_hex, FakeDocuments},
        unix_now, Api, ADMIN_TOKEN,
    },
    helpers::*,
};

const MB: usize = 1024 * 1024;

fn vars<'a>(fake: &'a [(&'static str, String)], extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all: Vec<(&str, &str)> = fake.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(&[
        ("SIGNHOOK_DOCUMENT_RETRY_BASE", "100ms"),
        ("SIGNHOOK_DOCUMENT_POLL_INTERVAL", "100ms"),
    ]);
    all.extend_from_slice(extra);
    all
}

async fn complete_boldsign(app: &Api, document_id: &str) {
    let event = boldsign_event(
        &format!("e-{document_id}"),
        document_id,
        "Completed",
        Some("Completed"),
        unix_now(),
    );
    assert_eq!(app.post_boldsign(&event).await.status(), 200);
}

async fn wait_for_done(app: &Api, id: &str) {
    app.wait_until(&format!("boldsign/{id}'s documents to be stored"), || async {
        let response = app.admin_get(&format!("/api/agreements/boldsign/{id}/documents")).await;
        response.status() == 200 && response.json::<Value>().await.expect("JSON")["job"]["state"] == "done"
    })
    .await;
}

/// The signed document as the API serves it, hashed as it streams in.
async fn served_sha256(app: &Api, id: &str) -> (String, usize) {
    use sha2::{Digest, Sha256};
    let mut response = app
        .client
        .get(app.url(&format!("/api/agreements/boldsign/{id}/documents/signed")))
        .bearer_auth(ADMIN_TOKEN)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let mut hasher = Sha256::new();
    let mut size = 0;
    while let Some(chunk) = response.chunk().await.expect("body") {
        size += chunk.len();
        hasher.update(&chunk);
    }
    (hex::encode(hasher.finalize()), size)
}

#[tokio::test]
async fn a_fetch_cut_by_kill_9_is_finished_after_restart() {
    let _exclusive = exclusive().await;
    let fake = FakeDocuments::start().await;
    let pdf = fake_pdf(4 * MB, 21);
    fake.boldsign_document("bold-kill-1", pdf.clone(), fake_pdf(3000, 22));
    // 64 pieces of 64 KiB, 100 ms apart: the download takes over 6 s.
    fake.set_piece_delay(Duration::from_millis(100));
    let fake_vars = fake.vars();
    let env = vars(&fake_vars, &[("SIGNHOOK_DOCUMENT_LEASE", "3s")]);
    let mut app = spawn_app_with(&env).await;
    complete_boldsign(&app, "bold-kill-1").await;
    app.wait_until("the download to start", || async { !fake.downloads().is_empty() })
        .await;
    app.kill9();
    let stored = app
        .count("SELECT count(*) FROM documents WHERE agreement_id = 'bold-kill-1'")
        .await;
    assert_eq!(stored, 0, "nothing recorded by the killed fetch");

    fake.set_piece_delay(Duration::ZERO);
    let db_name = app.db_name.clone();
    let restarted = spawn_app_on(&db_name, &env).await;
    wait_for_done(&restarted, "bold-kill-1").await;
    assert_eq!(
        served_sha256(&restarted, "bold-kill-1").await,
        (sha256_hex(&pdf), pdf.len())
    );
    assert!(fake.downloads().len() >= 3, "fetched again: {:?}", fake.downloads());
    drop(restarted);
    drop(app);
}

/// A 50 MB document through the PostgreSQL store: fetched and served back
/// while the process's peak RSS grows by a bounded amount. Prints what it
/// measured (BENCHMARKS.md quotes it).
#[tokio::test]
async fn a_50_mb_document_is_streamed_in_bounded_memory() {
    let _exclusive = exclusive().await;
    let fake = FakeDocuments::start().await;
    fake.boldsign_document("bold-warm-1", fake_pdf(2 * MB, 23), fake_pdf(1000, 24));
    let pdf = fake_pdf(50 * MB, 25);
    fake.boldsign_document("bold-large-1", pdf.clone(), fake_pdf(1000, 26));
    let fake_vars = fake.vars();
    let app = spawn_app_with(&vars(&fake_vars, &[])).await;
    let pid = app.pid().as_raw();

    // Warm up every path once with a small document.
    complete_boldsign(&app, "bold-warm-1").await;
    wait_for_done(&app, "bold-warm-1").await;
    served_sha256(&app, "bold-warm-1").await;
    let (peak_before, _) = memory_kib(pid);

    let started = Instant::now();
    complete_boldsign(&app, "bold-large-1").await;
    wait_for_done(&app, "bold-large-1").await;
    let fetched_in = started.elapsed();
    let (peak_after_fetch, _) = memory_kib(pid);
    let started = Instant::now();
    let served = served_sha256(&app, "bold-large-1").await;
    let served_in = started.elapsed();
    let (peak_after_serve, rss_now) = memory_kib(pid);
    assert_eq!(served, (sha256_hex(&pdf), pdf.len()), "byte-identical");

    let grown_mib = (peak_after_serve.saturating_sub(peak_before)) as f64 / 1024.0;
    println!(
        "50 MiB document, PostgreSQL store: fetched and stored in {:.2} s ({:.1} MiB/s), served in {:.2} s \
         ({:.1} MiB/s); peak RSS {} KiB before, {} KiB after the fetch, {} KiB after serving \
         (+{grown_mib:.1} MiB), RSS now {} KiB",
        fetched_in.as_secs_f64(),
        50.0 / fetched_in.as_secs_f64(),
        served_in.as_secs_f64(),
        50.0 / served_in.as_secs_f64(),
        peak_before,
        peak_after_fetch,
        peak_after_serve,
        rss_now,
    );
    // Buffered whole, the document alone would add 50 MiB (and a copy, 100);
    // streamed, it is 1 MiB chunks and the buffers around them. Runs measured
    // +2.9 to +19.4 MiB, the spread arising while serving and larger the
    // faster it served (see BENCHMARKS.md); the bound leaves room for that on
    // a faster machine and still fails for one buffered copy.
    assert!(
        grown_mib < 32.0,
        "peak RSS grew by {grown_mib:.1} MiB for a 50 MiB document; logs:\n{}",
        app.logs()
    );
}

/// moto's S3 server (`python -m moto.server`), from the venv `.ci/run`
/// installs it in; stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python with moto installed: `SIGNHOOK_TEST_MOTO_PYTHON`, else the CI venv.
fn moto_python() -> Option<std::path::PathBuf> {
    let python = std::env::var_os("SIGNHOOK_TEST_MOTO_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(std::path::PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".cache")))
                .unwrap_or_else(|| "/nonexistent".into());
            cache.join("signhook/ci-venv/bin/python")
        });
    let has_moto = Command::new(&python)
        .args(["-c", "import moto.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    has_moto.then_some(python)
}

async fn start_moto(python: &std::path::Path) -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(python)
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto starts");
    let endpoint = format!("http://127.0.0.1:{port}");
    let moto = Moto { child, endpoint };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(format!("{}/moto-api/", moto.endpoint)).send().await.is_err() {
        assert!(Instant::now() < deadline, "moto did not start on port {port}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    moto
}

#[tokio::test]
async fn documents_are_kept_byte_identical_on_an_s3_compatible_server() {
    let Some(python) = moto_python() else {
        eprintln!(
            "\n\n*** SKIPPED documents_are_kept_byte_identical_on_an_s3_compatible_server: moto is not installed. \
             Run .ci/run (it installs moto[server] into ~/.cache/signhook/ci-venv) or set \
             SIGNHOOK_TEST_MOTO_PYTHON to a python with moto[server]. ***\n"
        );
        return;
    };
    let moto = start_moto(&python).await;
    // moto accepts any credentials; the bucket is made with a plain PUT.
    let created = reqwest::Client::new()
        .put(format!("{}/signhook-documents", moto.endpoint))
        .send()
        .await
        .expect("bucket created");
    assert!(created.status().is_success(), "{}", created.status());

    let fake = FakeDocuments::start().await;
    // Above the 5 MiB part size: a real multipart upload of three parts.
    let pdf = fake_pdf(12 * MB + 7, 27);
    let audit = fake_pdf(40 * 1024, 28);
    fake.boldsign_document("bold-s3-1", pdf.clone(), audit.clone());
    let fake_vars = fake.vars();
    let env = vars(
        &fake_vars,
        &[
            ("SIGNHOOK_DOCUMENT_STORE", "s3://signhook-documents/kept"),
            ("AWS_ENDPOINT", &moto.endpoint),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    let app = spawn_app_with(&env).await;
    let started = Instant::now();
    complete_boldsign(&app, "bold-s3-1").await;
    wait_for_done(&app, "bold-s3-1").await;
    let fetched_in = started.elapsed();
    let started = Instant::now();
    assert_eq!(served_sha256(&app, "bold-s3-1").await, (sha256_hex(&pdf), pdf.len()));
    println!(
        "12 MiB document, S3 store (moto): fetched and stored in {:.2} s, served in {:.2} s",
        fetched_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    // The object itself, read from the S3 server directly at its address
    // (with object_store's own client, which signs the request).
    let sha = sha256_hex(&pdf);
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&moto.endpoint)
        .with_allow_http(true)
        .with_bucket_name("signhook-documents")
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .expect("an S3 client");
    let address = object_store::path::Path::from(format!("kept/sha256/{}/{sha}", &sha[..2]));
    let object = object_store::ObjectStore::get(&s3, &address)
        .await
        .expect("the object is at its address")
        .bytes()
        .await
        .expect("its bytes");
    assert_eq!(sha256_hex(&object), sha);
    let staged = object_store::ObjectStore::list(&s3, Some(&object_store::path::Path::from("kept/tmp")))
        .collect::<Vec<_>>()
        .await;
    assert!(staged.is_empty(), "nothing left in staging: {staged:?}");
    assert_eq!(
        app.count("SELECT count(*) FROM document_blobs").await,
        0,
        "nothing in PostgreSQL"
    );
}

/// The counters say what was stored; a completed agreement that cannot get
/// its copy (no API credentials, nothing in the payload) ends dead at once
/// with an error that says what to do, and after
/// `SIGNHOOK_DOCUMENT_MISSING_AFTER` shows in the gauge and a WARN.
#[tokio::test]
async fn documents_are_counted_and_a_missing_copy_is_reported() {
    let fake = FakeDocuments::start().await;
    let pdf = fake_pdf(MB + 9, 29);
    fake.boldsign_document("bold-metrics-1", pdf.clone(), fake_pdf(2048, 30));
    let fake_vars = fake.vars();
    let env = vars(
        &fake_vars,
        &[
            ("SIGNHOOK_FUSESIGN_API_TOKEN", ""),
            ("SIGNHOOK_DOCUMENT_MISSING_AFTER", "1s"),
        ],
    );
    let app = spawn_app_with(&env).await;
    complete_boldsign(&app, "bold-metrics-1").await;
    wait_for_done(&app, "bold-metrics-1").await;
    let finalised = crate::common::fuse_event(
        "h-metrics-1",
        "fuse-metrics-1",
        "BundleFinalised",
        "2026-11-20T10:00:00Z",
    );
    assert_eq!(app.post_fusesign(&finalised).await.status(), 200);
    app.wait_until("the FuseSign job to be dead", || async {
        let response = app.admin_get("/api/agreements/fusesign/fuse-metrics-1/documents").await;
        response.status() == 200 && response.json::<Value>().await.expect("JSON")["job"]["state"] == "dead"
    })
    .await;
    let listing: Value = app
        .admin_get("/api/agreements/fusesign/fuse-metrics-1/documents")
        .await
        .json()
        .await
        .expect("JSON");
    let error = listing["job"]["last_error"].as_str().expect("an error");
    assert!(
        error.contains("no API credentials") && error.contains("refetch"),
        "{error}"
    );
    assert_eq!(
        listing["job"]["attempts"], 1,
        "not retried: nothing changes without configuration"
    );

    app.wait_until("the missing copy to show in the gauge", || async {
        metric_sample(
            &app.metrics().await,
            "signhook_documents_missing{provider=\"fusesign\"}",
        ) == Some(1.0)
    })
    .await;
    let text = app.metrics().await;
    assert_eq!(
        metric_sample(&text, "signhook_documents_missing{provider=\"boldsign\"}"),
        Some(0.0)
    );
    let stored = |kind: &str| {
        metric_sample(
            &text,
            &format!("signhook_documents_fetched_total{{provider=\"boldsign\",kind=\"{kind}\",outcome=\"stored\"}}"),
        )
    };
    assert_eq!(
        (stored("signed"), stored("audit_trail")),
        (Some(1.0), Some(1.0)),
        "{text}"
    );
    assert_eq!(
        metric_sample(
            &text,
            "signhook_document_bytes_stored_total{provider=\"boldsign\",kind=\"signed\"}"
        ),
        Some(pdf.len() as f64)
    );
    assert_eq!(
        metric_sample(&text, "signhook_document_jobs_dead_total{provider=\"fusesign\"}"),
        Some(1.0)
    );
    let warned = app.log_entries("completed agreements still have no signed copy (see GET /api/agreements/{provider}/{id}/documents for each job's last error)");
    assert!(
        warned
            .iter()
            .any(|entry| entry["provider"] == "fusesign" && entry["level"] == "WARN"),
        "{}",
        app.logs()
    );
}

/// The database stops (like a crash) while a document is being downloaded
/// into it: the fetch fails, nothing half-written is kept, and once the
/// database is back the job is fetched again by itself, without a restart.
#[tokio::test]
async fn a_database_outage_during_a_fetch_is_recovered_from() {
    let _exclusive = exclusive().await;
    let cluster = crate::cluster::TempCluster::start();
    let fake = FakeDocuments::start().await;
    let pdf = fake_pdf(3 * MB, 31);
    fake.boldsign_document("bold-outage-1", pdf.clone(), fake_pdf(3000, 32));
    // 48 pieces, 100 ms apart: the outage lands in the middle.
    fake.set_piece_delay(Duration::from_millis(100));
    let fake_vars = fake.vars();
    let env = vars(
        &fake_vars,
        &[
            ("SIGNHOOK_DOCUMENT_LEASE", "5s"),
            ("SIGNHOOK_DB_ACQUIRE_TIMEOUT_MS", "500"),
        ],
    );
    let app = spawn_app_at(&cluster.url(), &env).await;
    complete_boldsign(&app, "bold-outage-1").await;
    app.wait_until("the download to start", || async { !fake.downloads().is_empty() })
        .await;
    cluster.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.restart();
    fake.set_piece_delay(Duration::ZERO);

    wait_for_done(&app, "bold-outage-1").await;
    assert_eq!(
        served_sha256(&app, "bold-outage-1").await,
        (sha256_hex(&pdf), pdf.len())
    );
    assert_eq!(
        app.count("SELECT count(*) FROM document_blobs").await,
        2,
        "the signed PDF and the audit trail, each once"
    );
    let chunks = app.count("SELECT count(*) FROM document_chunks").await;
    assert_eq!(chunks, 3 + 1, "no chunk of the cut-off write survived");
}
