//! Prometheus counters of the sidecar, rendered by hand in the text exposition format (a
//! handful of series does not justify a metrics crate).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::rolesanywhere::errors::CreateSessionError;

#[derive(Default)]
pub struct Metrics {
    refreshes: AtomicU64,
    failures: Mutex<BTreeMap<&'static str, u64>>,
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

/// The `reason` label of a failed refresh: bounded, so the series count stays bounded.
pub fn failure_reason(error: &CreateSessionError) -> &'static str {
    match error {
        CreateSessionError::CertificateRevoked { .. } => "certificate_revoked",
        CreateSessionError::UntrustedCertificate { .. } => "untrusted_certificate",
        CreateSessionError::InvalidSignature { .. } => "invalid_signature",
        CreateSessionError::AccessDenied { .. } => "access_denied",
        CreateSessionError::Validation { .. } => "validation",
        CreateSessionError::ResourceNotFound { .. } => "resource_not_found",
        CreateSessionError::Throttled { .. } => "throttled",
        CreateSessionError::Service { .. } => "service_error",
        CreateSessionError::InvalidInput(_) => "invalid_input",
        CreateSessionError::Certificate(_) => "certificate",
        CreateSessionError::PrivateKey(_) => "private_key",
        CreateSessionError::Transport { .. } => "transport",
        CreateSessionError::MalformedResponse { .. } => "malformed_response",
    }
}

impl Metrics {
    pub fn refresh_succeeded(&self) {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refresh_failed(&self, reason: &'static str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        *failures.entry(reason).or_default() += 1;
    }

    /// One answered request of `endpoint` (a fixed route name, never the raw path).
    pub fn request_served(&self, endpoint: &'static str, status: u16) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *requests.entry((endpoint, status)).or_default() += 1;
    }

    /// The exposition text; `seconds_until_expiry` is `None` before the first credentials.
    pub fn render(&self, seconds_until_expiry: Option<f64>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP iamra_sidecar_refreshes_total Successful CreateSession calls.\n\
             # TYPE iamra_sidecar_refreshes_total counter\n\
             iamra_sidecar_refreshes_total {}",
            self.refreshes.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP iamra_sidecar_refresh_failures_total Failed CreateSession attempts by reason.\n\
             # TYPE iamra_sidecar_refresh_failures_total counter"
        );
        for (reason, count) in self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "iamra_sidecar_refresh_failures_total{{reason=\"{reason}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP iamra_sidecar_credentials_expiry_seconds Seconds until the cached credentials expire.\n\
             # TYPE iamra_sidecar_credentials_expiry_seconds gauge"
        );
        if let Some(seconds) = seconds_until_expiry {
            let _ = writeln!(out, "iamra_sidecar_credentials_expiry_seconds {seconds:.0}");
        }
        let _ = writeln!(
            out,
            "# HELP iamra_sidecar_requests_total Credential requests answered, by endpoint and status.\n\
             # TYPE iamra_sidecar_requests_total counter"
        );
        for ((endpoint, status), count) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "iamra_sidecar_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {count}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::default();
        metrics.refresh_succeeded();
        metrics.refresh_failed("certificate_revoked");
        metrics.refresh_failed("certificate_revoked");
        metrics.request_served("credentials", 200);
        metrics.request_served("credentials", 401);
        let text = metrics.render(Some(899.6));
        for line in [
            "iamra_sidecar_refreshes_total 1",
            "iamra_sidecar_refresh_failures_total{reason=\"certificate_revoked\"} 2",
            "iamra_sidecar_credentials_expiry_seconds 900",
            "iamra_sidecar_requests_total{endpoint=\"credentials\",status=\"200\"} 1",
            "iamra_sidecar_requests_total{endpoint=\"credentials\",status=\"401\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(!Metrics::default().render(None).contains("expiry_seconds 0"));
    }
}
