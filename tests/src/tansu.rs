//! A private tansu broker for the Kafka broker-restart scenario: its own
//! port, on tansu's SQLite storage engine in a temp dir, so the log, topics
//! and committed offsets survive a restart (as a real Kafka's do; the memory
//! engine of the shared test broker forgets everything).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::rabbit::{free_port, port_open};

/// The tansu binary (`SLUICE_TANSU_BIN`, set by the test command).
fn tansu_bin() -> anyhow::Result<PathBuf> {
    let bin = std::env::var("SLUICE_TANSU_BIN").context("SLUICE_TANSU_BIN is not set")?;
    let bin = PathBuf::from(bin);
    if !bin.is_file() {
        bail!("no tansu binary at {}", bin.display());
    }
    Ok(bin)
}

/// A tansu broker of our own; stopped when dropped.
pub struct PrivateTansu {
    bin: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateTansu {
    /// Starts on a free loopback port and waits until it listens.
    pub fn start() -> anyhow::Result<Self> {
        let mut tansu = Self {
            bin: tansu_bin()?,
            port: free_port()?,
            dir: tempfile::Builder::new().prefix("sluice-tansu-").tempdir()?,
            child: None,
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
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))?;
        let child = Command::new(&self.bin)
            .args(["broker", "--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn tansu")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !port_open(self.port) {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok()?) {
                bail!("tansu exited with {status}: {}", self.output());
            }
            if Instant::now() > deadline {
                bail!("private tansu not up within 30 s: {}", self.output());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
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

    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }
}

impl Drop for PrivateTansu {
    fn drop(&mut self) {
        let _ = self.stop_server();
    }
}
