//! The process harness: each test spawns the real `signhook` binary with its
//! own fresh database (or a shared one, for replicas and restarts), talks to
//! it over HTTP, and reads its log lines.
//!
//! The port: the binary binds `127.0.0.1:0` itself and its `listening` log
//! line names the address. That is the one place a log line is parsed for
//! it, and it cannot race. (Binding a free port in the test and passing it
//! on would leave a window between the test closing its socket and the
//! child binding: any outgoing connection on the machine — the test's own
//! PostgreSQL and HTTP clients, other helpers' tests — may take that
//! ephemeral port meanwhile, and the child then fails to start.)

use std::{
    io::{BufRead, BufReader},
    ops::Deref,
    process::{Child, Command, ExitStatus, Stdio},
    sync::MutexGuard,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::common::{database_url, drop_database, fresh_database_name, test_vars, Api, LogLines};

/// A running `signhook serve` process.
pub struct TestApp {
    api: Api,
    /// Whether dropping this app drops the database (replicas share one).
    owns_db: bool,
    child: Child,
    logs: LogLines,
}

impl Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Spawns the binary with the test configuration plus `env` (an empty value
/// unsets a default; see `common::test_vars`).
pub async fn spawn_app_with(env: &[(&str, &str)]) -> TestApp {
    let db_name = fresh_database_name();
    spawn_process(&database_url(&db_name), db_name, true, env).await
}

/// Another process on an existing database: a replica, or a restart after a
/// crash. It never drops the database.
pub async fn spawn_app_on(db_name: &str, env: &[(&str, &str)]) -> TestApp {
    spawn_process(&database_url(db_name), db_name.to_owned(), false, env).await
}

/// An app whose database lives on another server (a throwaway cluster).
pub async fn spawn_app_at(server: &str, env: &[(&str, &str)]) -> TestApp {
    let url = format!("{server}/signhook");
    spawn_process(&url, "signhook".to_owned(), false, env).await
}

/// An app whose process may open at most `open_files` files (`ulimit -n`,
/// set by util-linux's `prlimit`, which then runs the binary in its place).
pub async fn spawn_app_with_open_files(open_files: u64, env: &[(&str, &str)]) -> TestApp {
    let db_name = fresh_database_name();
    let limit = format!("--nofile={open_files}:{open_files}");
    let mut command = Command::new("prlimit");
    command.args([limit.as_str(), "--", env!("CARGO_BIN_EXE_signhook")]);
    start(command, &database_url(&db_name), db_name, true, env).await
}

async fn spawn_process(url: &str, db_name: String, owns_db: bool, env: &[(&str, &str)]) -> TestApp {
    start(Command::new(env!("CARGO_BIN_EXE_signhook")), url, db_name, owns_db, env).await
}

/// Runs `command serve` with the test configuration for `url` plus `env`.
async fn start(mut command: Command, url: &str, db_name: String, owns_db: bool, env: &[(&str, &str)]) -> TestApp {
    command
        .arg("serve")
        .env_clear()
        // No config/default.toml is found from here, so only the env applies.
        .current_dir(std::env::temp_dir())
        .envs(test_vars(url, env))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the signhook binary starts");

    let logs = LogLines::default();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<String>();
    for stream in [
        Box::new(child.stdout.take().expect("stdout piped")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("stderr piped")),
    ] {
        let logs = logs.clone();
        let addr_tx = addr_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(addr) = listening_addr(&line) {
                    let _ = addr_tx.send(addr);
                }
                logs.lock().expect("log lock").push(line);
            }
        });
    }
    drop(addr_tx);

    let addr = match tokio::task::spawn_blocking(move || addr_rx.recv_timeout(Duration::from_secs(60)))
        .await
        .expect("waiting for the address")
    {
        Ok(addr) => addr,
        Err(_) => {
            let _ = child.kill();
            panic!(
                "signhook did not report its address; logs:\n{}",
                logs.lock().expect("log lock").join("\n")
            );
        }
    };
    let api = Api::connect(format!("http://{addr}"), url, db_name, logs.clone()).await;
    TestApp {
        api,
        owns_db,
        child,
        logs,
    }
}

/// The address of a `listening` line, in either log format (JSON, or
/// pretty: `… INFO signhook: listening addr=127.0.0.1:4321`).
fn listening_addr(line: &str) -> Option<String> {
    if let Ok(entry) = serde_json::from_str::<Value>(line) {
        return (entry["message"] == "listening").then(|| entry["addr"].as_str().map(str::to_owned))?;
    }
    let plain = strip_ansi(line);
    let (_, rest) = plain.split_once(" listening addr=")?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// `line` without ANSI colour sequences (`ESC [ … letter`).
fn strip_ansi(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            plain.push(c);
        }
    }
    plain
}

impl TestApp {
    /// The `/metrics` text: this process's counters alone.
    pub async fn metrics(&self) -> String {
        let response = self.get("/metrics").await;
        assert_eq!(response.status(), 200, "/metrics");
        response.text().await.expect("metrics text")
    }

    /// How many log lines contain `text`.
    pub fn log_count(&self, text: &str) -> usize {
        self.lines().iter().filter(|line| line.contains(text)).count()
    }

    /// The JSON log entries whose message is `message`, in order.
    pub fn log_entries(&self, message: &str) -> Vec<Value> {
        self.lines()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| entry["message"] == message)
            .collect()
    }

    pub fn logs(&self) -> String {
        self.lines().join("\n")
    }

    fn lines(&self) -> MutexGuard<'_, Vec<String>> {
        self.logs.lock().expect("log lock")
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL sent");
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("process status") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit in {timeout:?}; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_db {
            drop_database(&self.api.db_name);
        }
    }
}

/// The value of the Prometheus sample whose line starts with `series`
/// (name and labels, e.g. `signhook_polls_total{provider="adobe-sign",outcome="changed"}`).
pub fn metric_sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Held by the tests whose assertions are about time (deadlines, backoff,
/// shutdown) or that load the machine (kill -9 under load, replica storms,
/// the simulator's load run): they run one at a time, so one test's load
/// does not eat another's time bound on two cores, while the other tests of
/// this binary still run beside them.
/// (An async lock: each test has its own runtime, and the guard is held
/// across awaits; a test that panics holding it releases it.)
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    EXCLUSIVE.lock().await
}

/// Peak and current resident memory of `pid`, in KiB (`/proc/<pid>/status`).
pub fn memory_kib(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .expect("a memory field")
    };
    (field("VmHWM:"), field("VmRSS:"))
}
