//! What the CLI needs from the configuration: the admin address, the data
//! dir (for the token file) and `admin.token`. Nothing else is read or
//! checked, so the CLI works without a valid store or broker config.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

use crate::{admin_token, config};

#[derive(Debug, Default, Deserialize)]
struct Light {
    data_dir: Option<PathBuf>,
    #[serde(default)]
    http: LightHttp,
    #[serde(default)]
    admin: LightAdmin,
}

#[derive(Debug, Default, Deserialize)]
struct LightHttp {
    admin_listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct LightAdmin {
    token: Option<String>,
}

/// Where and how the CLI reaches the admin API.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub token: String,
}

/// Not `admin.token`: its variable is the `--token` flag's, read by clap as
/// set (figment would read it as TOML, an all-digit token as a number).
const ENV_KEYS: &[&str] = &["data_dir", "http.admin_listen"];

/// The admin URL and token: flags (and their env vars) first, then the
/// config file and `SLUICE_*` env, then `<data_dir>/admin-token`.
pub fn resolve(
    config: Option<&Path>,
    url: Option<String>,
    token: Option<String>,
) -> anyhow::Result<Target> {
    let light = load(config)?;
    let url = match url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => default_url(
            light
                .http
                .admin_listen
                .as_deref()
                .unwrap_or("127.0.0.1:8081"),
        )?,
    };
    let token = match token.or(light.admin.token) {
        Some(t) => t,
        None => {
            let dir = light
                .data_dir
                .unwrap_or_else(|| PathBuf::from("./sluice-data"));
            let path = admin_token::token_path(&dir);
            match admin_token::read(&path)? {
                Some(t) => t,
                None => bail!(
                    "no admin token: pass --token, set SLUICE_ADMIN__TOKEN, or run where {} exists",
                    path.display()
                ),
            }
        }
    };
    Ok(Target { url, token })
}

fn load(config: Option<&Path>) -> anyhow::Result<Light> {
    let file = match config {
        Some(p) if !p.is_file() => bail!("config error: file {} does not exist", p.display()),
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from("sluice.toml")).filter(|p| p.is_file()),
    };
    let mut fig = Figment::new();
    if let Some(f) = &file {
        fig = fig.merge(Toml::file(f));
    }
    fig = fig.merge(
        Env::prefixed("SLUICE_")
            .split("__")
            .filter(|k| ENV_KEYS.contains(&k.as_str().to_ascii_lowercase().as_str())),
    );
    let light: Light = fig
        .extract()
        .map_err(|e| {
            let msgs: Vec<String> = e.into_iter().map(|e| config::describe(&e)).collect();
            anyhow::anyhow!("{}", msgs.join("; "))
        })
        .with_context(|| match &file {
            Some(f) => format!("config error in {}", f.display()),
            None => "config error in the environment".to_string(),
        })?;
    Ok(light)
}

/// `http://ADDR` for a listen address; an unspecified IP (`0.0.0.0`, `::`)
/// becomes loopback.
fn default_url(listen: &str) -> anyhow::Result<String> {
    let mut addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("key `http.admin_listen`: {listen:?} is not an address"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(format!("http://{addr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_from_listen_addresses() {
        assert_eq!(
            default_url("127.0.0.1:8081").unwrap(),
            "http://127.0.0.1:8081"
        );
        assert_eq!(
            default_url("0.0.0.0:9000").unwrap(),
            "http://127.0.0.1:9000"
        );
        assert_eq!(default_url("[::]:9000").unwrap(), "http://[::1]:9000");
        assert!(default_url("nope").is_err());
    }

    #[test]
    fn reads_only_what_it_needs_and_the_token_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("admin-token"), "tok-from-file\n").unwrap();
        let cfg = dir.path().join("sluice.toml");
        // An invalid store section does not matter to the CLI.
        std::fs::write(
            &cfg,
            format!(
                "data_dir = {:?}\n[store]\nbogus = 1\n[http]\nadmin_listen = \"127.0.0.1:7001\"\n",
                data.display().to_string()
            ),
        )
        .unwrap();
        let t = resolve(Some(&cfg), None, None).unwrap();
        assert_eq!(t.url, "http://127.0.0.1:7001");
        assert_eq!(t.token, "tok-from-file");
        let t = resolve(Some(&cfg), Some("http://h:1/".into()), Some("flag".into())).unwrap();
        assert_eq!((t.url.as_str(), t.token.as_str()), ("http://h:1", "flag"));
    }
}
