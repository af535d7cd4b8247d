//! The deployment files: the Kubernetes manifests validate against Kubernetes' own schemas
//! (strict: an unknown or misspelled field fails) with `kubernetes-validate` from PyPI, which
//! works offline (`scripts/test.sh` installs it), and they agree with the server: the grace
//! period outlasts the drain, the probes name real routes, kustomize lists every manifest.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking; expect says what it needed"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

const KUBERNETES_VERSION: &str = "1.31.0";

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

fn validate(files: &[PathBuf]) -> std::process::Output {
    Command::new("kubernetes-validate")
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .args(files)
        .output()
        .expect(
            "kubernetes-validate is needed (pip install kubernetes-validate; scripts/test.sh \
                 installs it)",
        )
}

fn yaml_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifests())
        .unwrap()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn read(name: &str) -> String {
    std::fs::read_to_string(manifests().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The number after `key:` on the first line that has it (quotes allowed).
fn number_after(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|line| line.trim().strip_prefix(key))
        .map(|rest| rest.trim().trim_matches('"'))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {key} number"))
}

#[test]
fn the_kubernetes_manifests_validate_strictly_and_a_typo_does_not() {
    let files: Vec<PathBuf> = yaml_files()
        .into_iter()
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    assert!(files.len() >= 8, "{files:?}");
    let checked = validate(&files);
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    // The validator really validates: one misspelled field fails it.
    let broken = std::env::temp_dir().join(format!("aisocial-broken-{}.yaml", std::process::id()));
    std::fs::write(
        &broken,
        read("deployment.yaml").replace("replicas: 2", "replicaz: 2"),
    )
    .unwrap();
    let refused = validate(std::slice::from_ref(&broken));
    let _ = std::fs::remove_file(&broken);
    assert!(!refused.status.success(), "a misspelled field passed");
}

#[test]
fn the_manifests_agree_with_the_server() {
    let deployment = read("deployment.yaml");
    let config = read("configmap.yaml");
    let grace = number_after(&deployment, "terminationGracePeriodSeconds:");
    let drain = number_after(&config, "SHUTDOWN_TIMEOUT_SECS:");
    let pre_stop: u64 = deployment
        .split("command: [\"sleep\", \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("no preStop sleep");
    assert!(
        grace > pre_stop + drain,
        "the grace period ({grace} s) must outlast the preStop pause ({pre_stop} s) and the drain ({drain} s)"
    );
    for route in ["/health/live", "/health/ready"] {
        assert!(deployment.contains(&format!("path: {route}")), "{route}");
    }
    // Every manifest but the example Secret and the migration Job is applied by kustomize.
    let kustomization = read("kustomization.yaml");
    for file in yaml_files() {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if [
            "kustomization.yaml",
            "secret.example.yaml",
            "migrate-job.yaml",
        ]
        .contains(&name.as_str())
        {
            continue;
        }
        assert!(
            kustomization.contains(&format!("- {name}")),
            "{name} is not in kustomization.yaml"
        );
    }
    // The settings the ConfigMap sets are the server's.
    let help = Command::new(env!("CARGO_BIN_EXE_aisocial"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let data = config.split("\ndata:\n").nth(1).unwrap_or_default();
    for line in data
        .lines()
        .filter(|l| l.starts_with("  ") && !l.trim_start().starts_with('#') && l.contains(':'))
    {
        let name = line.trim().split(':').next().unwrap_or_default();
        if name == "RUST_LOG" {
            continue; // the log filter, read by the tracing subscriber
        }
        assert!(
            help.contains(&format!("[env: {name}")),
            "{name} is not a setting of `aisocial serve`"
        );
    }
}

/// `docker-compose.yml` is what a newcomer runs first, often on a machine others can reach:
/// its defaults must be safe (issue 19). Every published port listens on loopback only; no
/// signing key, admin or dev login by default; the AI emulator only when asked for.
#[test]
fn the_compose_file_defaults_are_safe() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml");
    let compose = std::fs::read_to_string(&path).expect("docker-compose.yml");
    let lines: Vec<&str> = compose
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    let mut published = 0;
    let mut in_ports = false;
    for line in &lines {
        let trimmed = line.trim();
        if trimmed == "ports:" {
            in_ports = true;
            continue;
        }
        if in_ports && trimmed.starts_with("- ") {
            published += 1;
            assert!(
                trimmed
                    .trim_start_matches("- ")
                    .trim_matches('"')
                    .starts_with("127.0.0.1:"),
                "a port published beyond loopback: {trimmed}"
            );
        } else {
            in_ports = false;
        }
    }
    assert!(
        published >= 3,
        "the proxy, Prometheus and Grafana publish ports"
    );
    let setting = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{name} is not set in the compose file"))
            .to_owned()
    };
    assert!(
        setting("JWT_SIGNING_KEY").starts_with("${JWT_SIGNING_KEY:?"),
        "the signing key has no default: compose refuses to start without one"
    );
    assert_eq!(setting("AUTH_DEV_LOGIN"), "${AUTH_DEV_LOGIN:-false}");
    assert_eq!(setting("ADMIN_HANDLES"), "${ADMIN_HANDLES:-}");
    assert_eq!(setting("GEMINI_EMULATOR"), "${GEMINI_EMULATOR:-false}");
    assert!(
        !compose.contains("NOT-SECRET"),
        "no published placeholder key"
    );
}
