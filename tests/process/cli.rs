//! The command line: check-config, migrate, and start-up errors that name the
//! setting at fault.

use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{database_url, drop_database, fresh_database_name};

fn signhook(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_signhook"));
    command.args(args).env_clear().current_dir(std::env::temp_dir());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("signhook runs")
}

/// The value of the setting `key` in `check-config`'s output, wherever the
/// output groups it; panics unless exactly one such key exists.
fn setting<'a>(config: &'a Value, key: &str) -> &'a Value {
    fn find<'a>(value: &'a Value, key: &str, found: &mut Vec<&'a Value>) {
        match value {
            Value::Object(map) => {
                for (name, inner) in map {
                    if name == key {
                        found.push(inner);
                    }
                    find(inner, key, found);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| find(item, key, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    find(config, key, &mut found);
    assert_eq!(found.len(), 1, "one `{key}` in {config:#}");
    found[0]
}

#[test]
fn check_config_prints_the_effective_configuration_with_secrets_masked() {
    let output = signhook(
        &["check-config"],
        &[
            ("DATABASE_URL", "postgres://app:db-password@db.internal:5432/signhook"),
            ("SIGNHOOK_ADMIN_TOKEN", "admin-token-that-is-secret"),
            ("SIGNHOOK_ADOBE_SIGN_CLIENT_IDS", "client-a, client-b"),
            ("SIGNHOOK_BOLDSIGN_SECRETS", "boldsign-secret-value"),
            ("SIGNHOOK_FUSESIGN_SIGNATURES", "fuse-signature-value"),
            ("SIGNHOOK_LISTEN", "0.0.0.0:9999"),
        ],
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).unwrap();
    let config: Value = serde_json::from_str(&printed).expect("JSON");
    assert_eq!(setting(&config, "listen"), "0.0.0.0:9999");
    assert_eq!(
        setting(&config, "adobe_sign_client_ids"),
        &serde_json::json!(["client-a", "client-b"])
    );
    for secret in [
        "db-password",
        "admin-token-that-is-secret",
        "boldsign-secret-value",
        "fuse-signature-value",
    ] {
        assert!(!printed.contains(secret), "{secret} leaked:\n{printed}");
    }
}

#[test]
fn invalid_settings_fail_with_a_message_naming_the_variable() {
    let cases = [
        ("SIGNHOOK_MAX_BODY_BYTES", "lots"),
        ("SIGNHOOK_LISTEN", "localhost"),
        ("SIGNHOOK_LOG_FORMAT", "xml"),
        ("SIGNHOOK_REQUEST_TIMEOUT_MS", "30000"),
        ("SIGNHOOK_REQUEST_TIMEOUT_MS", "5000"),
        ("DATABASE_URL", "mysql://localhost/x"),
        ("SIGNHOOK_BOLDSIGN_MAX_AGE_SECS", "-1"),
    ];
    for (name, value) in cases {
        for command in ["check-config", "serve"] {
            let output = signhook(&[command], &[(name, value)]);
            assert!(!output.status.success(), "{command} {name}={value} accepted");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains(name), "{command} {name}={value}: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
    let missing = signhook(&["check-config", "--config", "/nonexistent/signhook.toml"], &[]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/signhook.toml"));
}

#[test]
fn config_file_is_layered_under_the_environment() {
    let dir = std::env::temp_dir().join(format!("signhook-config-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("signhook.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:7000\"\nmax_body_bytes = 2048\nadobe_sign_client_ids = [\"from-file\"]\n",
    )
    .unwrap();
    let output = signhook(
        &["check-config", "--config", file.to_str().unwrap()],
        &[("SIGNHOOK_MAX_BODY_BYTES", "4096")],
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let config: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(setting(&config, "listen"), "127.0.0.1:7000", "file over defaults");
    assert_eq!(setting(&config, "max_body_bytes"), 4096, "environment over file");
    assert_eq!(
        setting(&config, "adobe_sign_client_ids"),
        &serde_json::json!(["from-file"])
    );
}

#[tokio::test]
async fn migrate_creates_and_migrates_a_missing_database() {
    let name = fresh_database_name();
    let url = database_url(&name);
    let output = signhook(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let pool = sqlx::PgPool::connect(&url).await.expect("database created");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('events', 'agreements', 'agreement_history')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 3);
    pool.close().await;
    // Idempotent: a second run (another replica) succeeds too.
    assert!(signhook(&["migrate"], &[("DATABASE_URL", &url)]).status.success());
    drop_database(&name);
}
