//! PostgreSQL for tests: a uniquely named database per test on the server
//! named by `SLUICE_TEST_POSTGRES_URL` (dropped afterwards), and a private
//! server of our own for restart tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::Connection;

/// Whether a missing backend must fail the run instead of skipping.
pub fn backends_required() -> bool {
    std::env::var("SLUICE_TEST_REQUIRE_BACKENDS").is_ok_and(|v| v == "1")
}

/// The server URL for tests, or `None` (skip) when unset and not required.
pub fn server_url() -> Option<String> {
    match std::env::var("SLUICE_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if backends_required() => {
            panic!("SLUICE_TEST_POSTGRES_URL is not set and SLUICE_TEST_REQUIRE_BACKENDS=1")
        }
        _ => {
            eprintln!("skipping: SLUICE_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// A database this test created; dropped (with FORCE) when this is dropped.
pub struct TempDb {
    pub url: String,
    admin_url: String,
    name: String,
}

impl TempDb {
    /// Creates `sluice_e2e_<random>` on `server`.
    pub async fn create(server: &str) -> anyhow::Result<Self> {
        let name = format!("sluice_e2e_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(server)
            .await
            .context("connect to SLUICE_TEST_POSTGRES_URL")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let mut url = url::Url::parse(server)?;
        url.set_path(&format!("/{name}"));
        Ok(Self {
            url: url.to_string(),
            admin_url: server.to_string(),
            name,
        })
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A PostgreSQL server of the test's own (initdb in a temp dir, its own
/// port, run as the `postgres` user), which the test may stop and start.
pub struct PrivatePg {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    _tmp: tempfile::TempDir,
}

fn pg_bin() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL server binaries (Debian package postgresql) are not installed")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .context("no initdb under /usr/lib/postgresql")
}

fn as_postgres(bin: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        bail!("{} {args:?} failed", bin.display());
    }
    Ok(())
}

impl PrivatePg {
    /// initdb and start on a free port, with the Debian package's newest
    /// server.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(pg_bin()?)
    }

    /// initdb and start on a free port, with the server binaries in `bin`
    /// (which the `postgres` user must be able to read and run).
    pub fn start_with(bin: PathBuf) -> anyhow::Result<Self> {
        let tmp = tempfile::Builder::new().prefix("sluice-pg-").tempdir()?;
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )?;
        let dir = tmp.path().join("data");
        as_postgres(
            &bin.join("initdb"),
            &["-D", dir.to_str().unwrap(), "-A", "trust", "-U", "postgres"],
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let pg = Self {
            port,
            dir,
            bin,
            _tmp: tmp,
        };
        pg.start_server()?;
        Ok(pg)
    }

    /// Runs the server's own `psql` on database `db` with `args`, stopping
    /// at the first error.
    pub fn psql(&self, db: &str, args: &[&str]) -> anyhow::Result<()> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", db, "-v", "ON_ERROR_STOP=1", "-q"])
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!("psql {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn start_server(&self) -> anyhow::Result<()> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.dir.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    }

    /// Fast shutdown: connections are cut, as in a crash of the server process.
    pub fn stop_server(&self) -> anyhow::Result<()> {
        as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.dir.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ],
        )
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self.stop_server();
        std::thread::sleep(Duration::from_millis(100));
    }
}
