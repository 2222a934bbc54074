//! `signhook simulate` run as a user would, against a real server: lifecycles
//! end in their expected statuses, load counts agree with the database, and
//! bad credentials or flags are clear errors with the documented exit codes.

use std::process::{Command, Output};

use serde_json::Value;

use crate::{
    common::{sink::DELIVERY_SECRET, ADMIN_TOKEN, ADOBE_CLIENT_ID, BOLDSIGN_SECRET, FUSESIGN_SIGNATURE},
    helpers::{exclusive, spawn_app, spawn_app_with},
};

/// Runs `signhook simulate <args>` with only `env` in its environment.
async fn simulate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_signhook"));
    command
        .arg("simulate")
        .args(args)
        .env_clear()
        .current_dir(std::env::temp_dir());
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::task::spawn_blocking(move || command.output().expect("signhook runs"))
        .await
        .expect("simulate finished")
}

/// The server's own credential variables, as an operator would export them.
fn server_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SIGNHOOK_ADMIN_TOKEN", ADMIN_TOKEN),
        ("SIGNHOOK_ADOBE_SIGN_CLIENT_IDS", ADOBE_CLIENT_ID),
        ("SIGNHOOK_BOLDSIGN_SECRETS", BOLDSIGN_SECRET),
        ("SIGNHOOK_FUSESIGN_SIGNATURES", FUSESIGN_SIGNATURE),
    ]
}

fn report_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("a JSON report; got:\n{}", describe(output)))
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn lifecycle_run_leaves_every_agreement_in_its_expected_status() {
    let _exclusive = exclusive().await;
    let app = spawn_app().await;
    let output = simulate(
        &[
            "lifecycle",
            "--url",
            &app.address,
            "--provider",
            "mixed",
            "--agreements",
            "30",
            "--duplicate-ratio",
            "0.3",
            "--out-of-order-ratio",
            "0.5",
            "--timeout",
            "20s",
            "--json",
        ],
        &server_env(),
    )
    .await;
    assert!(output.status.success(), "{}", describe(&output));
    let report = report_of(&output);
    assert_eq!(report["agreements"]["total"], 30);
    assert_eq!(report["agreements"]["matched"], 30, "{report:#}");
    assert_eq!(report["rejected"], 0);
    assert!(report["duplicates_acknowledged"].as_u64() > Some(0), "{report:#}");
    assert_eq!(report["processing"]["complete"], true);

    // Look for ourselves: one agreement of each provider and ending, through
    // the admin API; each event is in its history exactly once.
    let samples = report["agreements"]["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 4 + 4 + 3, "every provider with every ending it has");
    for sample in samples {
        let provider = sample["provider"].as_str().expect("provider");
        let id = sample["agreement_id"].as_str().expect("id");
        let agreement = app.get_agreement(provider, id).await;
        assert_eq!(agreement["status"], sample["expected"], "{agreement:#}");
        assert_eq!(
            agreement["history"].as_array().map(Vec::len),
            sample["events"].as_u64().map(|n| n as usize),
            "{agreement:#}"
        );
    }

    // And the database as a whole: the statuses the run expected, every event once.
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM agreements GROUP BY status ORDER BY status")
            .fetch_all(&app.db)
            .await
            .expect("statuses");
    let expected: Vec<(String, i64)> = report["agreements"]["expected"]
        .as_object()
        .expect("expected counts")
        .iter()
        .map(|(status, n)| (status.clone(), n.as_i64().expect("count")))
        .collect();
    assert_eq!(statuses, expected);
    assert_eq!(
        app.count("SELECT count(*) FROM events").await,
        report["new_acknowledged"].as_i64().expect("count")
    );
    assert_eq!(report["new_acknowledged"], report["events"]);
}

#[tokio::test]
async fn load_run_counts_agree_with_the_database() {
    let _exclusive = exclusive().await;
    let app = spawn_app().await;
    let output = simulate(
        &[
            "load",
            "--url",
            &app.address,
            "--provider",
            "mixed",
            "--events",
            "500",
            "--connections",
            "8",
            "--duplicate-ratio",
            "0.2",
            "--verify",
            "--timeout",
            "20s",
            "--json",
            "--admin-token",
            ADMIN_TOKEN,
            "--adobe-client-id",
            ADOBE_CLIENT_ID,
            "--boldsign-secret",
            BOLDSIGN_SECRET,
            "--fusesign-signature",
            FUSESIGN_SIGNATURE,
        ],
        &[],
    )
    .await;
    assert!(output.status.success(), "{}", describe(&output));
    let report = report_of(&output);
    assert_eq!(report["events"], 500);
    assert_eq!(report["new_acknowledged"], 500);
    assert_eq!(report["acknowledged"], report["sent"]);
    assert_eq!(report["duplicates_acknowledged"], report["duplicates_sent"]);
    let duplicates = report["duplicates_sent"].as_i64().expect("count");
    assert!((40..=160).contains(&duplicates), "about 20% of 500: {duplicates}");
    assert_eq!(report["rejected"], 0);
    assert_eq!(report["unavailable"], 0);
    assert_eq!(report["processing"]["complete"], true, "{report:#}");
    assert!(report["latency_ms"]["p99"].as_f64() > Some(0.0));

    assert_eq!(
        app.count("SELECT count(*) FROM events").await,
        500,
        "duplicates stored once"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM events WHERE state = 'processed'").await,
        500
    );
    for provider in ["adobe-sign", "boldsign", "fusesign"] {
        assert!(app.event_count(provider).await > 100, "{provider} got its share");
    }
    assert!(
        app.count("SELECT count(*) FROM agreements").await >= 100,
        "events are spread over many agreements"
    );
}

#[tokio::test]
async fn wrong_credentials_fail_the_run_and_say_why() {
    let app = spawn_app().await;
    let output = simulate(
        &[
            "load",
            "--url",
            &app.address,
            "--provider",
            "boldsign",
            "--events",
            "20",
            "--connections",
            "2",
            "--boldsign-secret",
            "not-the-secret",
        ],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("rejected (4xx)      20"), "{text}");
    assert!(text.contains("invalid_signature"), "{text}");
    assert_eq!(app.event_count("boldsign").await, 0);
}

#[tokio::test]
async fn missing_credentials_are_usage_errors_naming_the_variable() {
    let cases: [(&[&str], &[&str]); 3] = [
        (
            &["load", "--provider", "boldsign", "--events", "1"],
            &["--boldsign-secret", "SIGNHOOK_BOLDSIGN_SECRETS"],
        ),
        (
            &["load", "--provider", "mixed", "--events", "1", "--boldsign-secret", "s"],
            &["--fusesign-signature", "SIGNHOOK_FUSESIGN_SIGNATURES"],
        ),
        (
            &["lifecycle", "--agreements", "1"],
            &["--admin-token", "SIGNHOOK_ADMIN_TOKEN"],
        ),
    ];
    for (args, named) in cases {
        let mut args = args.to_vec();
        // Nothing listens there: the check must come before any request.
        args.extend(["--url", "http://127.0.0.1:9"]);
        let output = simulate(&args, &[("SIGNHOOK_ADOBE_SIGN_CLIENT_IDS", "id, other")]).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        for name in named {
            assert!(stderr.contains(name), "{args:?}: {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test]
async fn unreachable_servers_and_bad_urls_are_clear_errors() {
    let credentials = ["--adobe-client-id", "id", "--events", "1"];
    let unreachable = simulate(
        &[&["load", "--url", "http://127.0.0.1:9"], &credentials[..]].concat(),
        &[],
    )
    .await;
    assert_eq!(unreachable.status.code(), Some(1), "{}", describe(&unreachable));
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(stderr.contains("cannot reach http://127.0.0.1:9"), "{stderr}");

    for url in ["127.0.0.1:8080", "ftp://127.0.0.1", "http://"] {
        let output = simulate(&[&["load", "--url", url], &credentials[..]].concat(), &[]).await;
        assert_eq!(output.status.code(), Some(2), "{url}: {}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--url"), "{url}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    let no_count = simulate(&["load", "--url", "http://127.0.0.1:9", "--adobe-client-id", "id"], &[]).await;
    assert_eq!(no_count.status.code(), Some(2), "--events or --duration is required");
}

/// `lifecycle --listen`: the simulator receives the server's outbound
/// webhooks itself and checks every agreement's changes arrived verified, in
/// order and complete; with the wrong secret nothing verifies and the run
/// fails, naming the agreements.
#[tokio::test]
async fn lifecycle_run_checks_the_changes_delivered_to_its_own_receiver() {
    let _exclusive = exclusive().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}/hooks");
    let listen = format!("127.0.0.1:{port}");
    let app = spawn_app_with(&[
        ("SIGNHOOK_DELIVERY_URL", url.as_str()),
        ("SIGNHOOK_DELIVERY_SECRET", DELIVERY_SECRET),
        ("SIGNHOOK_DELIVERY_RETRY_SCHEDULE", "100ms,100ms,100ms,100ms,100ms"),
    ])
    .await;
    let run = |secret: &'static str, timeout: &'static str| {
        let (address, listen) = (app.address.clone(), listen.clone());
        async move {
            let mut env = server_env();
            env.push(("SIGNHOOK_DELIVERY_SECRET", secret));
            simulate(
                &[
                    "lifecycle",
                    "--url",
                    &address,
                    "--provider",
                    "mixed",
                    "--agreements",
                    "20",
                    "--duplicate-ratio",
                    "0.3",
                    "--out-of-order-ratio",
                    "0.5",
                    "--timeout",
                    timeout,
                    "--listen",
                    &listen,
                    "--json",
                ],
                &env,
            )
            .await
        }
    };
    let output = run(DELIVERY_SECRET, "20s").await;
    assert!(output.status.success(), "{}", describe(&output));
    let report = report_of(&output);
    assert_eq!(report["deliveries"]["total"], 20, "{report:#}");
    assert_eq!(report["deliveries"]["complete"], 20, "{report:#}");
    let changes = app.count("SELECT count(*) FROM changes").await;
    assert!(
        report["deliveries"]["deliveries"].as_i64() >= Some(changes),
        "{report:#} against {changes} changes"
    );

    let wrong = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let output = run(wrong, "3s").await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let report = report_of(&output);
    assert_eq!(report["deliveries"]["complete"], 0, "{report:#}");
    assert_eq!(
        report["deliveries"]["problems"][0]["problem"], "nothing received",
        "{report:#}"
    );
}
