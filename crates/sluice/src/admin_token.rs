//! The admin bearer token: from `admin.token` (or `SLUICE_ADMIN__TOKEN`),
//! else read from `<data_dir>/admin-token`, else generated into that file
//! (32 random bytes as hex, mode 0600). Only the file's path is ever logged.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Name of the token file inside the data dir.
pub const TOKEN_FILE: &str = "admin-token";

/// Where the token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Config,
    File(PathBuf),
    Generated(PathBuf),
}

/// The token file of `data_dir`.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKEN_FILE)
}

/// The configured token, or the token file's (created when missing).
pub fn resolve(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<(String, TokenSource)> {
    if let Some(t) = configured {
        return Ok((t.to_string(), TokenSource::Config));
    }
    let path = token_path(data_dir);
    if let Some(t) = read(&path)? {
        return Ok((t, TokenSource::File(path)));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    match create(&path)? {
        Some(t) => Ok((t, TokenSource::Generated(path))),
        // Another process created it first.
        None => match read(&path)? {
            Some(t) => Ok((t, TokenSource::File(path))),
            None => bail!("admin token file {} is empty", path.display()),
        },
    }
}

/// Logs where the token came from (never the token).
pub fn log_source(source: &TokenSource) {
    match source {
        TokenSource::Config => tracing::info!("admin token from configuration (admin.token)"),
        TokenSource::File(p) => tracing::info!(path = %p.display(), "admin token read from file"),
        TokenSource::Generated(p) => {
            tracing::info!(path = %p.display(), "admin token generated into file (mode 0600)")
        }
    }
}

/// The token in `path`, trimmed; `None` when the file does not exist.
pub fn read(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let t = s.trim();
            if t.is_empty() {
                bail!("admin token file {} is empty", path.display());
            }
            warn_if_readable_by_others(path);
            Ok(Some(t.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => {
            Err(e).with_context(|| format!("cannot read admin token file {}", path.display()))
        }
    }
}

/// Writes a new random token to `path` atomically without replacing an
/// existing file: written in full to a private temporary file (mode 0600
/// from its creation), then hard-linked into place. `None` when `path`
/// appeared meanwhile.
fn create(path: &Path) -> anyhow::Result<Option<String>> {
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = path.with_file_name(format!(
        ".{TOKEN_FILE}.{}.{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut f = open_private(&tmp)?;
        f.write_all(token.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match result {
        Ok(()) => Ok(Some(token)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => {
            Err(e).with_context(|| format!("cannot write admin token file {}", path.display()))
        }
    }
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "admin token file is readable by group or others; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_token_wins_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (t, s) = resolve(Some("from-config-0123456"), dir.path()).unwrap();
        assert_eq!(
            (t.as_str(), s),
            ("from-config-0123456", TokenSource::Config)
        );
        assert!(!token_path(dir.path()).exists());
    }

    #[test]
    fn generated_once_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (t1, s1) = resolve(None, &data).unwrap();
        assert_eq!(s1, TokenSource::Generated(token_path(&data)));
        assert_eq!(t1.len(), 64);
        assert!(t1.bytes().all(|b| b.is_ascii_hexdigit()));
        let (t2, s2) = resolve(None, &data).unwrap();
        assert_eq!(t1, t2);
        assert_eq!(s2, TokenSource::File(token_path(&data)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(token_path(&data))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(TOKEN_FILE)]);
    }

    #[test]
    fn empty_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(token_path(dir.path()), "\n").unwrap();
        assert!(resolve(None, dir.path()).is_err());
    }
}
