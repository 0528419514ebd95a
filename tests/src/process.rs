//! Runs the `sluice` binary as a separate process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context};

/// Path of the `sluice` binary next to the test executable, built on first
/// use when missing (`SLUICE_BIN` overrides).
pub fn sluice_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("SLUICE_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test> or target/<profile>/<bin> → target/<profile>/sluice
        let mut dir = exe.parent().expect("target dir").to_path_buf();
        if dir.file_name().is_some_and(|n| n == "deps") {
            dir = dir.parent().expect("profile dir").to_path_buf();
        }
        let bin = dir.join("sluice");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "sluice", "--bin", "sluice"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p sluice failed");
        assert!(bin.is_file(), "{} missing after build", bin.display());
        bin
    })
    .clone()
}

/// A running `sluice` process whose ingest or health address was read from
/// its first log lines. Killed (SIGKILL) when dropped.
pub struct SluiceProcess {
    child: Child,
    pub addr: SocketAddr,
    pub log: std::sync::Arc<Mutex<Vec<String>>>,
}

impl SluiceProcess {
    /// Starts `sluice <args...>` in `dir` with extra env, and waits (up to
    /// 60 s) for the "listening on http://ADDR" line.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut cmd = Command::new(sluice_bin());
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.env("NO_COLOR", "1").env(
            "RUST_LOG",
            std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "info".into()),
        );
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().context("spawn sluice")?;
        let log = std::sync::Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let log = log.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(addr) = parse_listen(&line) {
                        let _ = tx.send(addr);
                    }
                    if std::env::var("SLUICE_TEST_ECHO").is_ok() {
                        eprintln!("[sluice] {line}");
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        drop(tx);
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => Ok(Self { child, addr, log }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "sluice did not report its listen address; log:\n{}",
                    log.lock().unwrap().join("\n")
                )
            }
        }
    }

    /// The address of a later "<what> listening on http://ADDR" log line
    /// (for example `"admin"`), waiting up to 30 s for it.
    pub fn addr_of(&self, what: &str) -> anyhow::Result<SocketAddr> {
        let marker = format!("{what} listening on http://");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(&marker))
                .and_then(|l| parse_listen(l));
            if let Some(a) = found {
                return Ok(a);
            }
            if std::time::Instant::now() > deadline {
                bail!("no {marker:?} line in the log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Waits (up to `limit`) until `/readyz` answers 200. The listen line
    /// comes before the store is open and the broker's topics are
    /// declared; a producer that publishes to the broker directly must
    /// wait for this, or its first messages may find no queue bound.
    pub async fn wait_ready(&self, limit: Duration) -> anyhow::Result<()> {
        let (client, ready) = (reqwest::Client::new(), self.url("/readyz"));
        crate::eventually(limit, Duration::from_millis(100), || {
            let (c, ready) = (client.clone(), ready.clone());
            async move {
                let r = c.get(&ready).send().await.ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await
        .with_context(|| format!("sluice never became ready; log:\n{}", self.log_text()))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) with `kill`.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -{signal} failed");
        }
        Ok(())
    }

    /// SIGTERM, then waits up to `limit` for exit; returns the exit code.
    pub fn terminate(&mut self, limit: Duration) -> anyhow::Result<Option<i32>> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s.code());
            }
            if std::time::Instant::now() > deadline {
                self.kill9();
                bail!("sluice did not exit within {limit:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for SluiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_listen(line: &str) -> Option<SocketAddr> {
    let i = line.find("listening on http://")?;
    let rest = &line[i + "listening on http://".len()..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Runs `sluice <args>` to completion (bounded by `limit`) and returns
/// (exit code, stdout+stderr).
pub fn run_to_end(
    dir: &Path,
    args: &[&str],
    limit: Duration,
) -> anyhow::Result<(Option<i32>, String)> {
    let mut child = Command::new(sluice_bin())
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + limit;
    loop {
        if child.try_wait()?.is_some() {
            let out = child.wait_with_output()?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return Ok((out.status.code(), text));
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            bail!("sluice {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_listen_line() {
        let l = "2026-11-26T17:00:00Z  INFO sluice ingest+relay+worker listening on http://127.0.0.1:41234 (ingest API)";
        assert_eq!(super::parse_listen(l).unwrap().port(), 41234);
    }
}
