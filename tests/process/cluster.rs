//! A throwaway PostgreSQL cluster (initdb + pg_ctl on a random port) for tests
//! that stop, pause or kill the database — never the shared server.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
};

pub struct TempCluster {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl TempCluster {
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .max()
            .expect("an initdb binary");
        let dir = std::env::temp_dir().join(format!("signhook-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cluster = Self { port, dir, bin };
        // initdb and pg_ctl refuse to run as root; the postgres user owns the cluster.
        if is_root() {
            run(Command::new("chown").args(["postgres:postgres", cluster.dir.to_str().unwrap()]));
        }
        cluster.pg(&[
            "initdb",
            "-D",
            &cluster.data(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        cluster.restart();
        cluster
    }

    /// `postgres://postgres@127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    pub fn restart(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        self.pg(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-o",
            &options,
            "-l",
            log.to_str().unwrap(),
            "-w",
            "start",
        ]);
    }

    /// Stops at once, like a crash: no checkpoint, clients cut off.
    pub fn stop(&self) {
        self.pg(&["pg_ctl", "-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }

    /// Freezes every server process (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal_all("STOP");
    }

    pub fn resume(&self) {
        self.signal_all("CONT");
    }

    /// The postmaster first: once it is stopped it forks no new backend, so
    /// none escapes the signal (the other order let a connection opened in
    /// between answer while "frozen").
    fn signal_all(&self, signal: &str) {
        let pid = self.postmaster_pid();
        run(Command::new("kill").args([&format!("-{signal}"), &pid]));
        let _ = Command::new("pkill").args([&format!("-{signal}"), "-P", &pid]).status();
    }

    fn postmaster_pid(&self) -> String {
        let pidfile = std::fs::read_to_string(Path::new(&self.data()).join("postmaster.pid")).expect("postmaster.pid");
        pidfile.lines().next().expect("pid line").trim().to_owned()
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn pg(&self, args: &[&str]) {
        run(&mut self.pg_command(args));
    }

    fn pg_command(&self, args: &[&str]) -> Command {
        let program = self.bin.join(args[0]);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(&args[1..]).current_dir(&self.dir);
        command
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if Path::new(&self.data()).join("postmaster.pid").exists() {
            self.resume();
            let data = self.data();
            let _ = self
                .pg_command(&["pg_ctl", "-D", &data, "-m", "immediate", "-w", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

fn run(command: &mut Command) {
    let output = command.output().expect("command runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
