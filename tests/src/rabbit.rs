//! A private RabbitMQ node for restart tests: its own node name, ports,
//! database and logs in a temp dir, so restarting it never touches the shared
//! server on 5672. Needs Debian's `rabbitmq-server` installed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Where Debian keeps RabbitMQ's own scripts (the `/usr/sbin` wrappers switch
/// to the `rabbitmq` user and its fixed directories).
const SBIN_GLOB_DIR: &str = "/usr/lib/rabbitmq/lib";
const START_LIMIT: Duration = Duration::from_secs(120);

/// A RabbitMQ node of our own; stopped when dropped.
pub struct PrivateRabbit {
    sbin: PathBuf,
    node: String,
    port: u16,
    dist_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn sbin() -> anyhow::Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(SBIN_GLOB_DIR)
        .with_context(|| format!("RabbitMQ is not installed ({SBIN_GLOB_DIR} is missing)"))?
        .filter_map(Result::ok)
        .map(|e| e.path().join("sbin"))
        .filter(|p| p.join("rabbitmq-server").is_file())
        .collect();
    found.sort();
    found
        .pop()
        .context("no rabbitmq_server-*/sbin/rabbitmq-server found")
}

pub(crate) fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Waits up to `limit` for `port` to listen while `child` runs; fails
/// with the child's log (`log`) when it exits or the time is up.
pub(crate) fn wait_listening(
    child: &mut Child,
    port: u16,
    limit: Duration,
    log: &Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !port_open(port) {
        if let Some(status) = child.try_wait()? {
            bail!(
                "exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "not listening on {port} within {limit:?}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

impl PrivateRabbit {
    /// Starts a fresh node on free loopback ports and waits until it accepts
    /// AMQP connections.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("sluice-rabbit-")
            .tempdir()?;
        let port = free_port()?;
        let mut dist_port = free_port()?;
        while dist_port == port {
            dist_port = free_port()?;
        }
        let d = dir.path();
        std::fs::write(
            d.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )?;
        std::fs::write(d.join("enabled_plugins"), "[].\n")?;
        std::fs::write(d.join("env.conf"), "")?;
        let mut rabbit = Self {
            sbin: sbin()?,
            node: format!(
                "sluice-test-{}@localhost",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            port,
            dist_port,
            dir,
            child: None,
        };
        rabbit.start_server()?;
        Ok(rabbit)
    }

    /// The AMQP URL of this node.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn command(&self, script: &str) -> Command {
        let d: &Path = self.dir.path();
        let mut cmd = Command::new(self.sbin.join(script));
        cmd.current_dir(d)
            .env("HOME", d)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_PID_FILE", d.join("rabbit.pid"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("env.conf"));
        cmd
    }

    /// Starts the node (after [`PrivateRabbit::stop_server`]) and waits for it.
    pub fn start_server(&mut self) -> anyhow::Result<()> {
        let log = self.dir.path().join("server.out");
        let out = std::fs::File::create(&log)?;
        let mut child = self
            .command("rabbitmq-server")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("spawn rabbitmq-server")?;
        let up = wait_listening(&mut child, self.port, START_LIMIT, &log);
        self.child = Some(child);
        up.context("private RabbitMQ")
    }

    /// Stops the node cleanly (`rabbitmqctl stop`), as an operator's restart.
    pub fn stop_server(&mut self) -> anyhow::Result<()> {
        let out = self
            .command("rabbitmqctl")
            .args(["-n", &self.node, "stop"])
            .output()
            .context("rabbitmqctl stop")?;
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(60);
            while c.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    bail!(
                        "private RabbitMQ did not stop: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        if self.child.is_some() && self.stop_server().is_err() {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
