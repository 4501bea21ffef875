//! What the benches share: peak memory of a process, a free port, and the emulator seeded with a
//! CA and a workload certificate that `iamra sidecar` and the official helper are started with.

#![allow(dead_code)]

pub mod api_requests;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use iamra::rolesanywhere::emulator::{self, EmulatorConfig, RunningEmulator, SeededArns};

pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/iamra-bench";
/// AWS's official credential helper, as `bash tests/install-deps.sh` builds it, below $HOME.
pub const HELPER: &str =
    ".cache/iamra-test-bins/rolesanywhere-credential-helper-v1.4.0/aws_signing_helper";

/// Peak resident memory (VmHWM) of `pid`, in KiB; 0 when unreadable.
pub fn vm_hwm_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM:")
}

/// Resident memory now (VmRSS) of `pid`, in KiB; 0 when unreadable.
#[allow(dead_code)] // not every bench reads it
pub fn vm_rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:")
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) `pid` has used so far; 0 when unreadable.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name; utime and stime are fields 14 and 15 of the line, in
    // USER_HZ (100 per second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// The official helper, when it was built.
pub fn official_helper() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(HELPER))
        .filter(|h| h.is_file())
}

/// An in-process emulator trusting a fresh CA, and a certificate of that CA on disk.
pub struct Credentials {
    pub running: RunningEmulator,
    pub seeded: SeededArns,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Credentials {
    pub async fn start() -> Self {
        let running = emulator::start(EmulatorConfig {
            listen: "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
            region: "us-east-1".into(),
            state_file: None,
            enforce_crl_quota: false,
            enforce_session_quota: false,
        })
        .await
        .unwrap_or_else(|e| panic!("emulator: {e}"));
        let ca = crate::fixtures::ca("iamra bench CA", crate::fixtures::Alg::EcdsaP256);
        let seeded = emulator::seed(&running.shared, &ca.pem, &[ROLE_ARN.to_owned()])
            .unwrap_or_else(|e| panic!("seed: {e}"));
        let leaf = crate::fixtures::leaf(&ca, crate::fixtures::Alg::EcdsaP256);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let (cert, key) = crate::fixtures::write_leaf(dir.path(), "bench", &leaf);
        Self {
            running,
            seeded,
            cert,
            key,
            dir,
        }
    }

    /// `program subcommand` with the flags `iamra` and the official helper share.
    pub fn command(&self, program: &Path, subcommand: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(program);
        command
            .arg(subcommand)
            .arg("--certificate")
            .arg(&self.cert)
            .arg("--private-key")
            .arg(&self.key)
            .args(["--trust-anchor-arn", &self.seeded.trust_anchor_arn])
            .args(["--profile-arn", &self.seeded.profile_arn])
            .args(["--role-arn", ROLE_ARN])
            .args(["--endpoint", &self.running.endpoint()])
            .args(["--region", "us-east-1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        command
    }
}
