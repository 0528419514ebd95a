//! The operators' CLI against a real `sluice serve`: dead letters made by a
//! queue whose downstream is a closed port, then `sluice queues`, `sluice
//! dlq list|show|replay` as tables and `--json`, a bulk replay with its
//! progress and final counts, and server errors.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

const CONFIG: &str = r#"
[[queues]]
name = "q"
max_attempts = 1
handler = { type = "http", url = "http://127.0.0.1:9/", timeout_ms = 2000 }
"#;

/// A running `sluice serve`, killed when dropped.
struct Server {
    child: Child,
    ingest: SocketAddr,
    admin: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listen_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on http://")? + "listening on http://".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// Starts `sluice serve` on ephemeral ports in `dir`; waits (at most 60 s)
/// for both "listening on" lines.
fn start(dir: &Path) -> Server {
    start_with(dir, &[])
}

/// [`start`] with these environment variables set.
fn start_with(dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env_remove("SLUICE_ADMIN__TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sluice serve");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(a) = listen_addr(&line) {
                let _ = tx.send((line.contains("(admin API)"), a));
            }
        }
    });
    let (mut ingest, mut admin) = (None, None);
    while ingest.is_none() || admin.is_none() {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok((true, a)) => admin = Some(a),
            Ok((false, a)) => {
                assert!(admin.is_none(), "the ingest line comes first");
                ingest = Some(a)
            }
            Err(_) => panic!("sluice serve did not report both addresses"),
        }
    }
    Server {
        child,
        ingest: ingest.unwrap(),
        admin: admin.unwrap(),
    }
}

/// POSTs a job with a minimal HTTP/1.1 client; the status code.
fn post_job(addr: SocketAddr, n: u32) -> u16 {
    let body = format!("{{\"payload\":{{\"n\":{n}}}}}");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /v1/queues/q/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Runs the CLI in `dir` against the server (token from the token file);
/// bounded by 60 s.
fn cli(dir: &Path, server: &Server, args: &[&str]) -> Output {
    cli_with(dir, server, &[], args)
}

/// [`cli`] with these environment variables set.
fn cli_with(dir: &Path, server: &Server, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("SLUICE_ADMIN_URL", format!("http://{}", server.admin))
        .env_remove("SLUICE_ADMIN__TOKEN")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sluice {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok_json(o: &Output) -> Value {
    assert!(o.status.success(), "stderr: {}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

/// Waits (at most 60 s) until `n` dead letters are listed.
fn wait_dead(dir: &Path, server: &Server, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = ok_json(&cli(dir, server, &["dlq", "list", "--json"]));
        if v["dead_letters"].as_array().unwrap().len() == n {
            return;
        }
        assert!(Instant::now() < deadline, "not {n} dead letters: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn cli_over_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sluice.toml"), CONFIG).unwrap();
    let server = start(dir.path());
    for n in 0..6 {
        assert_eq!(post_job(server.ingest, n), 202);
    }
    // Every job dies on its only attempt (the downstream port is closed).
    wait_dead(dir.path(), &server, 6);

    // queues: a table and JSON.
    let o = cli(dir.path(), &server, &["queues"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("QUEUE") && lines[0].contains("DEAD"),
        "{table}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!((row[0], row[4]), ("q", "6"), "{table}");
    let v = ok_json(&cli(dir.path(), &server, &["queues", "--json"]));
    assert_eq!(v["queues"][0]["name"], "q");
    assert_eq!(v["queues"][0]["dead"], 6);

    // dlq list: a table with a cursor, then the next page.
    let o = cli(dir.path(), &server, &["dlq", "list", "--limit", "4"]);
    let text = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(text.lines().next().unwrap().starts_with("ID"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains("downstream")).count(),
        4,
        "{text}"
    );
    let cursor = text
        .lines()
        .find_map(|l| l.strip_prefix("next cursor: "))
        .unwrap_or_else(|| panic!("no cursor in {text}"));
    let v = ok_json(&cli(
        dir.path(),
        &server,
        &["dlq", "list", "--json", "--cursor", cursor],
    ));
    assert_eq!(v["dead_letters"].as_array().unwrap().len(), 2);
    assert_eq!(v["next_cursor"], Value::Null);

    // dlq show: payload and history.
    let id = v["dead_letters"][0]["id"].as_str().unwrap().to_string();
    let v = ok_json(&cli(dir.path(), &server, &["dlq", "show", &id, "--json"]));
    assert_eq!(v["history"].as_array().unwrap().len(), 1);
    let o = cli(dir.path(), &server, &["dlq", "show", &id]);
    assert!(
        stdout(&o).contains("history:") && stdout(&o).contains("\"n\""),
        "{}",
        stdout(&o)
    );

    // dlq replay in bulk at a rate: progress, then the final counts.
    let dry = ok_json(&cli(
        dir.path(),
        &server,
        &["dlq", "replay", "--queue", "q", "--dry-run", "--json"],
    ));
    assert_eq!(dry["matched"], 6);
    let o = cli(
        dir.path(),
        &server,
        &["dlq", "replay", "--queue", "q", "--rate", "10"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let progress: Vec<String> = stderr(&o)
        .lines()
        .filter_map(|l| l.strip_prefix("progress: "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert_eq!(
        progress.last().map(String::as_str),
        Some("6/6"),
        "{}",
        stderr(&o)
    );
    assert!(
        progress.len() >= 2,
        "no progress while running: {}",
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("completed: matched 6, replayed 6, skipped 0"),
        "{}",
        stdout(&o)
    );
    // They die again; one is replayed alone, as JSON.
    wait_dead(dir.path(), &server, 6);
    let v = ok_json(&cli(dir.path(), &server, &["dlq", "replay", &id, "--json"]));
    assert_eq!(
        (v["id"].as_str(), v["status"].as_str()),
        (Some(id.as_str()), Some("pending"))
    );
    assert_eq!(v["replay_count"], 2);

    // Errors from the server: the problem's title and detail, exit non-zero.
    let unknown = "01a218e6-0000-7000-8000-000000000000";
    let o = cli(dir.path(), &server, &["dlq", "show", unknown]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Dead letter not found"),
        "{}",
        stderr(&o)
    );
    let o = cli(
        dir.path(),
        &server,
        &["dlq", "replay", "--queue", "q", "--rate", "0"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("rate_per_second"), "{}", stderr(&o));
    let o = cli(dir.path(), &server, &["queues", "--token", "wrong-token"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("Unauthorized"), "{}", stderr(&o));
}

/// An all-digit token set through `SLUICE_ADMIN__TOKEN` is taken as written
/// (leading zeros included) by the server and by the CLI, not read as a
/// number and refused.
#[test]
fn an_all_digit_admin_token_from_the_environment_is_a_token() {
    const TOKEN: &str = "0012345678901234567";
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), &[("SLUICE_ADMIN__TOKEN", TOKEN)]);
    let o = cli(dir.path(), &server, &["queues", "--token", TOKEN]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli_with(
        dir.path(),
        &server,
        &[("SLUICE_ADMIN__TOKEN", TOKEN)],
        &["queues"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli(
        dir.path(),
        &server,
        &["queues", "--token", "12345678901234567"],
    );
    assert!(
        !o.status.success(),
        "a token without its leading zeros was accepted"
    );
}
