//! A PostgreSQL cluster of the test's own (initdb in a temporary directory, a free port), so
//! that killing it disturbs no other test. Uses the machine's PostgreSQL binaries; as root the
//! server runs as the `postgres` user, as PostgreSQL requires.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::free_port;

pub struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// More server options (`-c name=value …`).
    options: String,
}

/// A new empty folder for a cluster, owned by `postgres` when running as root.
pub fn cluster_folder() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("aisocial-pg-{}", crate::helpers::unique_name()));
    std::fs::create_dir_all(&dir).unwrap();
    give_to_postgres(&dir);
    dir
}

/// Makes `postgres` own `path` (and what is in it) when the test runs as root.
pub fn give_to_postgres(path: &Path) {
    if is_root() {
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .expect("chown");
        assert!(chown.success());
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The newest `/usr/lib/postgresql/<version>/bin`.
fn binaries() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's binaries are not under /usr/lib/postgresql")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().expect("no initdb under /usr/lib/postgresql")
}

impl PrivatePostgres {
    /// A PostgreSQL command, run as `postgres` when the test runs as root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"))
    }

    pub async fn start() -> Self {
        Self::start_with("").await
    }

    /// A new cluster started with more server options (`-c name=value …`).
    pub async fn start_with(options: &str) -> Self {
        let this = Self {
            bin: binaries(),
            dir: cluster_folder(),
            port: free_port(),
            options: options.to_owned(),
        };
        let data = this.data();
        let init = this.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        this.pg_ctl_start().await;
        this
    }

    /// Starts a cluster whose data directory `dir/data` was prepared elsewhere (a restored
    /// backup), on a port of its own.
    pub async fn adopt(dir: PathBuf) -> Self {
        give_to_postgres(&dir);
        let this = Self {
            bin: binaries(),
            dir,
            port: free_port(),
            options: String::new(),
        };
        this.pg_ctl_start().await;
        this
    }

    /// A streaming replica (`pg_basebackup -R`) of the primary that answers on `upstream_port`
    /// of 127.0.0.1 (its own port, or a proxy in front of it, which replication then crosses),
    /// hot standby on.
    pub async fn replica_of(upstream_port: u16) -> Self {
        let this = Self {
            bin: binaries(),
            dir: cluster_folder(),
            port: free_port(),
            options: "-c hot_standby=on -c hot_standby_feedback=on".to_owned(),
        };
        let data = this.data();
        let port = upstream_port.to_string();
        let mut backup = this.command("pg_basebackup");
        backup.args([
            "-D",
            &data,
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-X",
            "stream",
            "-R",
            "-c",
            "fast",
            "--no-sync",
        ]);
        // Off the test's own thread: a proxy in the way runs on it.
        let backup = tokio::task::spawn_blocking(move || backup.output())
            .await
            .unwrap()
            .expect("pg_basebackup");
        assert!(
            backup.status.success(),
            "pg_basebackup: {}",
            String::from_utf8_lossy(&backup.stderr)
        );
        this.pg_ctl_start().await;
        this
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Ends recovery: the replica becomes a primary of its own (a failover).
    pub fn promote(&self) {
        let promoted = self.run("pg_ctl", &["-D", &self.data(), "-w", "promote"]);
        assert!(
            promoted.status.success(),
            "pg_ctl promote: {}",
            String::from_utf8_lossy(&promoted.stderr)
        );
    }

    /// Waits until recovery has ended and the server takes writes (a restored backup replays
    /// its WAL, then promotes).
    pub async fn wait_until_writable(&self) {
        let client = self.client("postgres").await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let in_recovery: bool = client
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await
                .map(|r| r.get(0))
                .unwrap_or(true);
            if !in_recovery {
                return;
            }
            assert!(Instant::now() < deadline, "still in recovery after 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    async fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=60 {}",
            self.port,
            self.dir.display(),
            self.options
        );
        let log = self.dir.join("log").display().to_string();
        // After a SIGKILL the old backends may hold shared memory for a moment: retry.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let started = self.run(
                "pg_ctl",
                &[
                    "-D",
                    &self.data(),
                    "-o",
                    &options,
                    "-l",
                    &log,
                    "-w",
                    "-t",
                    "20",
                    "start",
                ],
            );
            if started.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pg_ctl start: {} {}",
                String::from_utf8_lossy(&started.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    pub fn base_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// SIGKILL to the postmaster: no shutdown, no checkpoint.
    pub fn kill9(&self) {
        let pid = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
            .expect("no postmaster.pid");
        let killed = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }

    /// A fast shutdown (`pg_ctl -m fast stop`): sessions are disconnected, open transactions
    /// rolled back, a checkpoint written.
    #[allow(
        dead_code,
        reason = "the checker's nemesis restarts PostgreSQL so; faults kill it"
    )]
    pub fn stop_fast(&self) {
        let stopped = self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
        assert!(
            stopped.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&stopped.stderr)
        );
    }

    /// Starts the server again on the same port (crash recovery replays the WAL).
    pub async fn restart(&self) {
        self.pg_ctl_start().await;
    }

    pub async fn client(&self, database: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(
            &format!("{}/{database}", self.base_url()),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        actix_rt::spawn(async move {
            let _ = connection.await;
        });
        client
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
