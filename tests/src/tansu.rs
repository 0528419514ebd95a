//! A private tansu broker for the Kafka broker-restart scenario: its own
//! port, on tansu's PostgreSQL storage engine, backed by a PostgreSQL server
//! of its own. tansu 0.6 needs PostgreSQL 16 or later, so that server runs
//! from the binaries the test command unpacks (`SLUICE_TANSU_PG_HOME`, PyPI's
//! pgserver wheel), with the schema the test command generates from tansu's
//! package (`SLUICE_TANSU_PG_SCHEMA`). The database outlives broker restarts,
//! so the log, topics, producer ids and committed offsets survive them, as a
//! real Kafka's do (the memory engine of the shared test broker forgets
//! everything on a restart).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::pg::PrivatePg;
use crate::rabbit::{free_port, wait_listening};

/// The tansu binary (`SLUICE_TANSU_BIN`, set by the test command).
fn tansu_bin() -> anyhow::Result<PathBuf> {
    let bin = std::env::var("SLUICE_TANSU_BIN").context("SLUICE_TANSU_BIN is not set")?;
    let bin = PathBuf::from(bin);
    if !bin.is_file() {
        bail!("no tansu binary at {}", bin.display());
    }
    Ok(bin)
}

/// The database tansu keeps its log in.
const DATABASE: &str = "tansu";

/// Opens (appends to) a log file for a child's stdout and stderr.
fn log_to(path: &Path) -> anyhow::Result<(Stdio, Stdio)> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    Ok((f.try_clone()?.into(), f.into()))
}

/// A PostgreSQL server for tansu, from a copy of the binaries under
/// `SLUICE_TANSU_PG_HOME` in `dir` (the `postgres` user cannot read root's
/// home), with tansu's schema in database [`DATABASE`].
fn start_postgres(dir: &Path) -> anyhow::Result<PrivatePg> {
    let home = std::env::var("SLUICE_TANSU_PG_HOME")
        .context("SLUICE_TANSU_PG_HOME (PostgreSQL 16 binaries, set by scripts/test) is not set")?;
    let schema = std::env::var("SLUICE_TANSU_PG_SCHEMA")
        .context("SLUICE_TANSU_PG_SCHEMA (set by scripts/test) is not set")?;
    let copy = dir.join("pg");
    std::fs::create_dir(&copy)?;
    // the binaries find their libraries relative to themselves
    let status = Command::new("cp")
        .arg("-a")
        .args(["pgserver", "pgserver.libs"].map(|p| Path::new(&home).join(p)))
        .arg(&copy)
        .status()?;
    if !status.success() {
        bail!("copy the PostgreSQL binaries from {home}");
    }
    let pg = PrivatePg::start_with(copy.join("pgserver/pginstall/bin"))?;
    pg.psql("postgres", &["-c", &format!("CREATE DATABASE {DATABASE}")])?;
    pg.psql(DATABASE, &["-f", &schema])?;
    Ok(pg)
}

/// A tansu broker of our own on a PostgreSQL server of its own; stopped when
/// dropped.
pub struct PrivateTansu {
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
    // dropped after the broker (fields drop in order), then the temp dir
    pg: PrivatePg,
    dir: tempfile::TempDir,
}

impl PrivateTansu {
    /// Starts a PostgreSQL server and the broker on free loopback ports and
    /// waits until both listen.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("sluice-tansu-").tempdir()?;
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        let mut tansu = Self {
            bin: tansu_bin()?,
            port: free_port()?,
            child: None,
            pg: start_postgres(dir.path())?,
            dir,
        };
        tansu.start_server()?;
        Ok(tansu)
    }

    /// `host:port` for Kafka clients.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker (again) on the same port and storage.
    pub fn start_server(&mut self) -> anyhow::Result<()> {
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let log = self.dir.path().join("tansu.log");
        let storage = format!(
            "postgres://postgres@127.0.0.1:{}/{DATABASE}?sslmode=disable",
            self.pg.port
        );
        let (out, err) = log_to(&log)?;
        let mut child = Command::new(&self.bin)
            .args(["broker", "--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            .args(["--storage-engine", &storage])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("spawn tansu")?;
        let up = wait_listening(&mut child, self.port, Duration::from_secs(30), &log);
        self.child = Some(child);
        up.context("private tansu")
    }

    /// Stops the broker with SIGTERM (SIGKILL after 10 s).
    pub fn stop_server(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let t0 = Instant::now();
        while child.try_wait()?.is_none() {
            if t0.elapsed() > Duration::from_secs(10) {
                eprintln!("tansu still running 10 s after SIGTERM; killed");
                let _ = child.kill();
                let _ = child.wait();
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "tansu stopped {:.1} s after SIGTERM",
            t0.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

impl Drop for PrivateTansu {
    fn drop(&mut self) {
        let _ = self.stop_server();
    }
}
