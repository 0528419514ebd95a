//! `SLUICE_<SECTION>__<KEY>` environment variables override the config file,
//! checked with the real binary (each run gets its own environment).

use std::process::Command;

fn sluice(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(args).current_dir(dir).env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run sluice");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sluice.toml"),
        "[store]\nurl = \"sqlite://./from-file.db\"\n",
    )
    .unwrap();
    let env = [
        ("SLUICE_STORE__URL", "sqlite://./from-env.db"),
        ("SLUICE_TEST_UNRELATED", "ignored"),
    ];
    let (ok, out) = sluice(dir.path(), &env, &["migrate"]);
    assert!(ok, "{out}");
    assert!(
        dir.path().join("from-env.db").is_file(),
        "SLUICE_STORE__URL was not applied: {out}"
    );
    assert!(!dir.path().join("from-file.db").exists());
}

#[test]
fn environment_values_are_validated_like_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = sluice(
        dir.path(),
        &[("SLUICE_HTTP__LISTEN", "not-an-address")],
        &["migrate"],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("http.listen"), "{out}");
}

#[test]
fn a_backend_that_cannot_open_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let listen = ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"];
    let args = [&["serve"][..], &listen[..]].concat();
    let (ok, out) = sluice(dir.path(), &[("SLUICE_STORE__URL", "nosuch://x")], &args);
    assert!(!ok, "{out}");
    assert!(out.contains("key `store.url`"), "{out}");
    let (ok, out) = sluice(dir.path(), &[("SLUICE_BROKER__URL", "nosuch://x")], &args);
    assert!(!ok, "{out}");
    assert!(out.contains("key `broker.url`"), "{out}");
}

#[test]
fn a_queue_variable_is_an_error_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = sluice(
        dir.path(),
        &[("SLUICE_QUEUES__0__NAME", "emails")],
        &["migrate"],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("SLUICE_QUEUES__0__NAME") && out.contains("[[queues]]"),
        "{out}"
    );
}

#[test]
fn a_bad_worker_thread_count_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["0", "two", "-1"] {
        let (ok, out) = sluice(dir.path(), &[("TOKIO_WORKER_THREADS", bad)], &["migrate"]);
        assert!(!ok, "{bad}: {out}");
        assert!(
            out.contains("TOKIO_WORKER_THREADS must be a positive whole number"),
            "{bad}: {out}"
        );
        assert!(!out.contains("panicked"), "{bad}: {out}");
    }
    let env = [
        ("TOKIO_WORKER_THREADS", "1"),
        ("SLUICE_STORE__URL", "sqlite://./one-thread.db"),
    ];
    let (ok, out) = sluice(dir.path(), &env, &["migrate"]);
    assert!(ok, "{out}");
}
