//! The configuration files shipped in deploy/ start the real binary: each
//! one loads, validates, finds its payload schemas (relative to the working
//! directory, as in the image, whose working directory holds `schemas/`),
//! and gets `sluice serve` ready; then SIGTERM drains it to exit 0. The
//! store, broker and data directory are overridden with `SLUICE_*`
//! variables, as the compose file and the Kubernetes manifests do.

use std::path::Path;
use std::time::Duration;

use sluice_tests::jobs::SERVE_EPHEMERAL;
use sluice_tests::SluiceProcess;

const CONFIGS: &[&str] = &[
    "deploy/sluice.toml",
    "deploy/compose/sluice.toml",
    "deploy/k8s/base/sluice.toml",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_configs_start_serve() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for config in CONFIGS {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let store = format!("sqlite://{}", tmp.path().join("sluice.db").display());
        let broker = format!("embedded://{}", tmp.path().join("broker").display());
        let config_path = root.join(config);
        let env = [
            ("SLUICE_CONFIG", config_path.to_str().unwrap()),
            ("SLUICE_DATA_DIR", data.to_str().unwrap()),
            ("SLUICE_STORE__URL", store.as_str()),
            ("SLUICE_BROKER__URL", broker.as_str()),
        ];
        let mut sluice = SluiceProcess::start(&root, SERVE_EPHEMERAL, &env)
            .unwrap_or_else(|e| panic!("{config}: {e}"));
        let ready = sluice.wait_ready(Duration::from_secs(30)).await;
        assert!(ready.is_ok(), "{config}: not ready:\n{}", sluice.log_text());
        let code = sluice.terminate(Duration::from_secs(20)).unwrap();
        assert_eq!(
            code,
            Some(0),
            "{config}: exit after SIGTERM:\n{}",
            sluice.log_text()
        );
        assert!(
            !sluice.log_text().contains("ERROR"),
            "{config}:\n{}",
            sluice.log_text()
        );
    }
}
