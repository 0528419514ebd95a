//! A private tansu broker for the Kafka broker-restart scenario: its own
//! port, on tansu's object-store engine over S3, served by a moto S3 server
//! of its own (PyPI `moto[server]`, in the test tools' virtualenv). The S3
//! server outlives broker restarts, so the log, topics, producer ids and
//! committed offsets survive them, as a real Kafka's do (the memory engine
//! of the shared test broker forgets everything on a restart).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

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

/// The S3 bucket tansu keeps its log in.
const BUCKET: &str = "tansu";

/// Opens (appends to) a log file for a child's stdout and stderr.
fn log_to(path: &Path) -> anyhow::Result<(Stdio, Stdio)> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    Ok((f.try_clone()?.into(), f.into()))
}

/// An in-memory S3 server (moto) on a free loopback port with one bucket;
/// stopped when dropped.
struct S3Server {
    port: u16,
    child: Child,
}

impl S3Server {
    fn start(dir: &Path) -> anyhow::Result<Self> {
        let python = std::env::var("SLUICE_TEST_PYTHON")
            .context("SLUICE_TEST_PYTHON (with moto[server]) is not set")?;
        let port = free_port()?;
        let log = dir.join("s3.log");
        let (out, err) = log_to(&log)?;
        let child = Command::new(python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("spawn moto S3 server")?;
        let mut s3 = Self { port, child };
        wait_listening(&mut s3.child, port, Duration::from_secs(30), &log)
            .context("moto S3 server")?;
        s3.create_bucket(BUCKET)?;
        Ok(s3)
    }

    /// `PUT /bucket` (moto takes unsigned requests).
    fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port))?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            conn,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut reply = String::new();
        conn.read_to_string(&mut reply)?;
        if !reply.starts_with("HTTP/1.1 200") {
            bail!(
                "create bucket {name}: {}",
                reply.lines().next().unwrap_or("")
            );
        }
        Ok(())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tansu broker of our own on S3 storage of its own; stopped when dropped.
pub struct PrivateTansu {
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
    // dropped after the broker (fields drop in order), then the temp dir
    s3: S3Server,
    dir: tempfile::TempDir,
}

impl PrivateTansu {
    /// Starts an S3 server and the broker on free loopback ports and waits
    /// until both listen.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("sluice-tansu-").tempdir()?;
        let mut tansu = Self {
            bin: tansu_bin()?,
            port: free_port()?,
            child: None,
            s3: S3Server::start(dir.path())?,
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
        let (out, err) = log_to(&log)?;
        let mut child = Command::new(&self.bin)
            .args(["broker", "--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            .args(["--storage-engine", &format!("s3://{BUCKET}/")])
            .env("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.s3.port))
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "sluice-test")
            .env("AWS_SECRET_ACCESS_KEY", "sluice-test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for PrivateTansu {
    fn drop(&mut self) {
        let _ = self.stop_server();
    }
}
