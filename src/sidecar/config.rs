//! `iamra sidecar` flags. Every flag has an environment variable because the mutating webhook
//! configures the injected container through `env`, not through `args`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::rolesanywhere::session::DEFAULT_SESSION_SECONDS;

/// The official helper's `serve` listens here too, so tools configured for it keep working.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9911";
pub const DEFAULT_HEALTH_LISTEN: &str = "127.0.0.1:9912";
/// Kubernetes Secret volumes are updated by a symlink swap about a minute after the Secret
/// changes; a few seconds of polling adds nothing noticeable and survives every swap.
pub const DEFAULT_FILE_POLL_SECONDS: u64 = 5;
/// Two seconds: a start-up cost any pod can afford, and twenty pods started in the same
/// instant then stay at the service's 10/s on average.
pub const DEFAULT_STARTUP_SPREAD_MS: u64 = 2_000;

#[derive(Debug, Clone, clap::Args)]
pub struct SidecarArgs {
    /// Workload certificate (PEM): the leaf first, intermediates after it (sent as the chain).
    #[arg(long, env = "IAMRA_CERTIFICATE")]
    pub certificate: PathBuf,
    /// Private key of the certificate (PEM: PKCS#8, SEC1 or PKCS#1).
    #[arg(long, env = "IAMRA_PRIVATE_KEY")]
    pub private_key: PathBuf,
    /// Trust anchor to authenticate against.
    #[arg(long, env = "IAMRA_TRUST_ANCHOR_ARN")]
    pub trust_anchor_arn: String,
    /// Profile to pull policies from.
    #[arg(long, env = "IAMRA_PROFILE_ARN")]
    pub profile_arn: String,
    /// Role to assume.
    #[arg(long, env = "IAMRA_ROLE_ARN")]
    pub role_arn: String,
    /// Signing region; defaults to the trust anchor's region.
    #[arg(long, env = "IAMRA_REGION")]
    pub region: Option<String>,
    /// CreateSession endpoint, e.g. http://127.0.0.1:8080 for the emulator.
    #[arg(long, env = "IAMRA_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Duration of each session in seconds (900-43200).
    #[arg(long, env = "IAMRA_SESSION_DURATION", default_value_t = DEFAULT_SESSION_SECONDS)]
    pub session_duration: u32,
    /// Role session name (the profile must accept role session names).
    #[arg(long, env = "IAMRA_ROLE_SESSION_NAME")]
    pub role_session_name: Option<String>,
    /// Address of the credentials endpoints (`/credentials` and IMDSv2); must be loopback.
    #[arg(long, env = "IAMRA_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// The authorization token of `/credentials`; generated (mode 0640) when the file is absent.
    /// Point the application's `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` at the same file.
    #[arg(long, env = "IAMRA_TOKEN_FILE")]
    pub token_file: PathBuf,
    /// Permissions of a generated token file, in octal. The default lets the pod's fsGroup
    /// read it; the webhook injects 644 because the file lives in a memory volume only the
    /// pod's own containers mount, and the application may run as any user.
    #[arg(long, env = "IAMRA_TOKEN_FILE_MODE", default_value = "640", value_parser = parse_file_mode)]
    pub token_file_mode: u32,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "IAMRA_HEALTH_LISTEN", default_value = DEFAULT_HEALTH_LISTEN)]
    pub health_listen: SocketAddr,
    /// Serve health on this IP instead of --health-listen's, keeping its port. The webhook
    /// passes the pod IP (`status.podIP`), so the kubelet's probes reach it and nothing
    /// listens on other addresses; a bare IPv6 address needs no brackets here.
    #[arg(long, env = "IAMRA_HEALTH_IP")]
    pub health_ip: Option<std::net::IpAddr>,
    /// Refresh when less than this many seconds of the credentials remain (default:
    /// max(5 min, 1/4 of the lifetime)). For tests, which cannot wait for the default.
    #[arg(long, env = "IAMRA_REFRESH_BEFORE", hide = true)]
    pub refresh_before: Option<u64>,
    /// The first CreateSession, and the one after the certificate files change, wait a random
    /// time up to this many milliseconds, so that pods started or renewed together (a rollout,
    /// a mass re-issue) spread their calls over the account's 10 CreateSession/s. 0: at once.
    #[arg(long, env = "IAMRA_STARTUP_SPREAD_MS", default_value_t = DEFAULT_STARTUP_SPREAD_MS)]
    pub startup_spread_ms: u64,
    /// How often the certificate and key files are checked for changes, in seconds.
    #[arg(long, env = "IAMRA_FILE_POLL_INTERVAL", hide = true, default_value_t = DEFAULT_FILE_POLL_SECONDS)]
    pub file_poll_interval: u64,
}

impl SidecarArgs {
    /// Where health is served: --health-listen, on --health-ip when that is given.
    pub fn health_address(&self) -> SocketAddr {
        match self.health_ip {
            Some(ip) => SocketAddr::new(ip, self.health_listen.port()),
            None => self.health_listen,
        }
    }

    pub fn refresh_before(&self) -> Option<Duration> {
        self.refresh_before.map(Duration::from_secs)
    }

    pub fn startup_spread(&self) -> Duration {
        Duration::from_millis(self.startup_spread_ms)
    }

    pub fn file_poll_interval(&self) -> Duration {
        Duration::from_secs(self.file_poll_interval.max(1))
    }

    /// The role's name (the last path segment of its ARN): what IMDS lists under
    /// `security-credentials/`.
    pub fn role_name(&self) -> String {
        role_name(&self.role_arn)
    }
}

pub fn role_name(role_arn: &str) -> String {
    role_arn
        .rsplit('/')
        .next()
        .filter(|name| !name.is_empty())
        .unwrap_or("iamra")
        .to_owned()
}

/// An octal file mode such as `640`, at most `777`.
fn parse_file_mode(text: &str) -> Result<u32, String> {
    match u32::from_str_radix(text.trim_start_matches("0o"), 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!("{text:?} is not an octal file mode such as 640")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_name_is_the_last_path_segment() {
        assert_eq!(
            role_name("arn:aws:iam::123456789012:role/team/app-reader"),
            "app-reader"
        );
        assert_eq!(role_name("arn:aws:iam::123456789012:role/app"), "app");
        assert_eq!(role_name("arn:aws:iam::123456789012:role/"), "iamra");
    }

    #[test]
    fn token_file_mode_is_octal() {
        assert_eq!(super::parse_file_mode("644"), Ok(0o644));
        assert_eq!(super::parse_file_mode("0o640"), Ok(0o640));
        assert!(super::parse_file_mode("999").is_err());
        assert!(super::parse_file_mode("1777").is_err());
    }

    #[test]
    fn health_ip_replaces_the_listen_ip_and_keeps_the_port() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: SidecarArgs,
        }
        let base = [
            "iamra",
            "--certificate=/c",
            "--private-key=/k",
            "--trust-anchor-arn=arn:aws:rolesanywhere:eu-west-1:111122223333:trust-anchor/a",
            "--profile-arn=arn:aws:rolesanywhere:eu-west-1:111122223333:profile/p",
            "--role-arn=arn:aws:iam::111122223333:role/r",
            "--token-file=/t",
            "--health-listen=0.0.0.0:9912",
        ];
        let parse = |extra: &[&str]| {
            Cli::try_parse_from(base.iter().chain(extra))
                .map(|cli| cli.args.health_address().to_string())
        };
        assert_eq!(parse(&[]).unwrap(), "0.0.0.0:9912");
        assert_eq!(parse(&["--health-ip=10.1.2.3"]).unwrap(), "10.1.2.3:9912");
        assert_eq!(parse(&["--health-ip=fd00::7"]).unwrap(), "[fd00::7]:9912");
        assert!(parse(&["--health-ip=pod"]).is_err());
    }
}
