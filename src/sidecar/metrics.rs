//! Prometheus metrics of the sidecar, on the same `prometheus-client` families as the
//! controller's (`crate::metrics`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::metrics::{CounterVec, encode, register};
use crate::rolesanywhere::errors::CreateSessionError;

pub struct Metrics {
    refreshes: Counter,
    failures: CounterVec<1>,
    requests: CounterVec<2>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            refreshes: Counter::default(),
            failures: CounterVec::new(
                "iamra_sidecar_refresh_failures_total",
                "Failed CreateSession attempts by reason.",
                ["reason"],
            ),
            requests: CounterVec::new(
                "iamra_sidecar_requests_total",
                "Credential requests answered, by endpoint and status.",
                ["endpoint", "status"],
            ),
        }
    }
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
        self.refreshes.inc();
    }

    pub fn refresh_failed(&self, reason: &'static str) {
        self.failures.inc([reason]);
    }

    /// One answered request of `endpoint` (a fixed route name, never the raw path).
    pub fn request_served(&self, endpoint: &'static str, status: u16) {
        self.requests.inc([endpoint, &status.to_string()]);
    }

    /// The exposition text; `seconds_until_expiry` is `None` before the first credentials.
    pub fn render(&self, seconds_until_expiry: Option<f64>) -> String {
        let mut registry = Registry::default();
        register(
            &mut registry,
            "iamra_sidecar_refreshes_total",
            "Successful CreateSession calls.",
            self.refreshes.clone(),
        );
        self.failures.register(&mut registry);
        // No sample before the first credentials: a 0 would read as "expired".
        if let Some(seconds) = seconds_until_expiry {
            register(
                &mut registry,
                "iamra_sidecar_credentials_expiry_seconds",
                "Seconds until the cached credentials expire.",
                ConstGauge::new(seconds.round() as i64),
            );
        }
        self.requests.register(&mut registry);
        encode(&registry)
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
        let fresh = Metrics::default().render(None);
        assert!(!fresh.contains("expiry_seconds 0"));
        assert!(
            fresh
                .lines()
                .any(|l| l == "iamra_sidecar_refreshes_total 0")
        );
    }
}
