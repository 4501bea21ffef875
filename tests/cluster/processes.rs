//! Processes the tests start: the iamra controller and the moto KMS emulator.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use iamra::localenv::free_loopback_port;

/// Dummy credentials: moto accepts any, and the controller must never reach real AWS.
pub const AWS_TEST_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", "eu-west-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// A child process killed when dropped, with its output in a log file.
pub struct TestProcess {
    child: Child,
    pub log: PathBuf,
    /// The HTTP address the process serves on, when it has one.
    pub http_address: Option<String>,
    /// The file a controller's clock follows (`IAMRA_CLOCK_OFFSET_FILE`).
    clock_offset_file: Option<PathBuf>,
}

impl TestProcess {
    fn spawn(command: &mut Command, log: PathBuf) -> anyhow::Result<Self> {
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        Ok(Self {
            child,
            log,
            http_address: None,
            clock_offset_file: None,
        })
    }

    /// Moves the controller's clock `ahead` of the system clock (instead of waiting that long):
    /// the controller revisits every object whose renewal, CRL refresh or release depends on it.
    pub fn move_clock_ahead(&self, ahead: Duration) -> anyhow::Result<()> {
        let path = self
            .clock_offset_file
            .as_ref()
            .context("not a controller: it has no clock to move")?;
        // Written whole, then renamed: the controller never reads half a number.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, ahead.as_secs().to_string())?;
        std::fs::rename(&partial, path)?;
        Ok(())
    }

    /// Kills the process at once (SIGKILL): no graceful shutdown, like a crashed pod.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the process to stop (SIGTERM, what the kubelet sends) and waits for its exit code.
    pub fn terminate(mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        self.signal(libc::SIGTERM)?;
        self.wait_exit(timeout)
    }

    /// Sends `signal` (SIGSTOP and SIGCONT pause and resume it, like a frozen node).
    pub fn signal(&self, signal: libc::c_int) -> anyhow::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id())?;
        // SAFETY: kill(2) with a pid this struct owns and has not yet reaped.
        if unsafe { libc::kill(pid, signal) } != 0 {
            anyhow::bail!("kill -{signal} {pid}: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for the process to exit by itself; its exit code (None: killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "process {} did not exit within {timeout:?}",
                self.child.id()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process has not exited (a crash shows as false).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The log so far, for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TestProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `iamra controller --namespace <namespace>` against the test cluster, with more
/// arguments and environment variables.
pub fn start_controller(
    kubeconfig: &Path,
    namespace: &str,
    log_dir: &Path,
    extra_args: &[&str],
    extra_env: &[(&str, &str)],
) -> anyhow::Result<TestProcess> {
    let port = free_loopback_port()?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_iamra"));
    command
        .args(["controller", "--namespace", namespace])
        .arg(format!("--http-address=127.0.0.1:{port}"))
        .args(extra_args)
        .env("KUBECONFIG", kubeconfig)
        // IAMRA_TEST_CONTROLLER_LOG overrides the controllers' log filter, for debugging a test.
        .env(
            "RUST_LOG",
            std::env::var("IAMRA_TEST_CONTROLLER_LOG").unwrap_or("info,iamra=debug".into()),
        )
        .envs(AWS_TEST_ENV.iter().copied())
        .envs(extra_env.iter().copied());
    let suffix = unique_suffix();
    let log = log_dir.join(format!("controller-{namespace}-{suffix}.log"));
    let clock_offset_file = log_dir.join(format!("controller-{namespace}-{suffix}.clock"));
    command.env(iamra::clock::CLOCK_OFFSET_FILE_ENV, &clock_offset_file);
    let mut process = TestProcess::spawn(&mut command, log)?;
    process.http_address = Some(format!("127.0.0.1:{port}"));
    process.clock_offset_file = Some(clock_offset_file);
    Ok(process)
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// Which moto server to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MotoFlavor {
    /// tests/fixtures/moto_kms_server.py: KMS `Sign` honours `MessageType=DIGEST` like AWS.
    DigestAware,
    /// moto as released, which signs a digest as if it were the message.
    AsReleased,
}

/// moto's server mode on a loopback port: the KMS the tests sign with.
pub struct MotoServer {
    _process: TestProcess,
    pub url: String,
}

impl MotoServer {
    pub fn start(log_dir: &Path, flavor: MotoFlavor) -> anyhow::Result<Self> {
        let port = free_loopback_port()?;
        let mut command = Command::new("python3");
        match flavor {
            MotoFlavor::DigestAware => command.arg(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/moto_kms_server.py"),
            ),
            MotoFlavor::AsReleased => command.args(["-m", "moto.server"]),
        };
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let process = TestProcess::spawn(&mut command, log_dir.join(format!("moto-{port}.log")))?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "moto server did not listen on {url}: {} (install with `pip install 'moto[server]'`)",
                process.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self {
            _process: process,
            url,
        })
    }
}
