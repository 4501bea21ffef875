//! Prometheus metrics on `prometheus-client`, served in the Prometheus text format (0.0.4) that
//! every scraper reads. Families are statics next to the code they count, so the signer and the
//! Roles Anywhere client stay free of any controller type; each `/metrics` handler registers
//! the families it serves into a [`Registry`] and encodes it.

use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The `Content-Type` of what [`encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Label names and values of one series.
pub type Labels = Vec<(&'static str, String)>;

/// Buckets for work that is local or one network round trip: 5 ms to 30 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Registers `metric` as `name` (a counter's without its `_total`, which the encoder adds)
/// with `help` as written here (the encoder adds the final period).
pub fn register(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: impl prometheus_client::registry::Metric,
) {
    let name = name.strip_suffix("_total").unwrap_or(name);
    registry.register(name, help.strip_suffix('.').unwrap_or(help), metric);
}

/// The exposition text of `registry`.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut out, registry);
    out
}

/// A counter family with `N` labels.
#[derive(Debug)]
pub struct CounterVec<const N: usize> {
    name: &'static str,
    help: &'static str,
    labels: [&'static str; N],
    family: Family<Labels, Counter>,
}

impl<const N: usize> CounterVec<N> {
    pub fn new(name: &'static str, help: &'static str, labels: [&'static str; N]) -> Self {
        Self {
            name,
            help,
            labels,
            family: Family::default(),
        }
    }

    pub fn inc(&self, values: [&str; N]) {
        let labels: Labels = self
            .labels
            .iter()
            .zip(values)
            .map(|(name, value)| (*name, value.to_string()))
            .collect();
        self.family.get_or_create(&labels).inc();
    }

    pub fn register(&self, registry: &mut Registry) {
        register(registry, self.name, self.help, self.family.clone());
    }
}

/// A histogram of durations in seconds, without labels.
#[derive(Debug)]
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    histogram: prometheus_client::metrics::histogram::Histogram,
}

impl Histogram {
    pub fn new(name: &'static str, help: &'static str, buckets: &'static [f64]) -> Self {
        Self {
            name,
            help,
            histogram: prometheus_client::metrics::histogram::Histogram::new(
                buckets.iter().copied(),
            ),
        }
    }

    pub fn observe(&self, duration: Duration) {
        self.histogram.observe(duration.as_secs_f64());
    }

    pub fn register(&self, registry: &mut Registry) {
        register(registry, self.name, self.help, self.histogram.clone());
    }
}

/// The `outcome` label of an AWS SDK call: bounded, so the series count stays bounded.
pub fn aws_outcome<T, E, R>(result: &Result<T, aws_sdk_kms::error::SdkError<E, R>>) -> &'static str
where
    E: aws_sdk_kms::error::ProvideErrorMetadata,
{
    use aws_sdk_kms::error::SdkError;
    match result {
        Ok(_) => "success",
        Err(SdkError::ServiceError(error)) => match error.err().code() {
            Some(code) if code.contains("Throttl") || code.contains("TooManyRequests") => {
                "throttled"
            }
            _ => "service_error",
        },
        Err(SdkError::TimeoutError(_)) => "timeout",
        Err(SdkError::DispatchFailure(_)) => "unreachable",
        Err(_) => "error",
    }
}

/// A stable, readable message for an AWS SDK call's error: the service's code and message, or the
/// transport failure with its causes. (The debug form carries request ids and dates, which would
/// change a status on every retry.) Every SDK crate shares this `SdkError` type.
pub fn aws_error_message<E, R>(error: &aws_sdk_kms::error::SdkError<E, R>) -> String
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("ServiceError"),
            service.message().unwrap_or("no message")
        ),
        None => {
            let mut message = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                message.push_str(": ");
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            message
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_escaped_labels() {
        let counter = CounterVec::new("x_total", "Things.", ["kind", "outcome"]);
        counter.inc(["a", "success"]);
        counter.inc(["a", "success"]);
        counter.inc(["b\"", "error"]);
        let mut registry = Registry::default();
        counter.register(&mut registry);
        let out = encode(&registry);
        for line in [
            "# HELP x_total Things.",
            "# TYPE x_total counter",
            "x_total{kind=\"a\",outcome=\"success\"} 2",
            "x_total{kind=\"b\\\"\",outcome=\"error\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing in\n{out}");
        }
    }

    #[test]
    fn renders_cumulative_histogram_buckets() {
        let histogram = Histogram::new("d_seconds", "Durations.", &[0.1, 1.0]);
        histogram.observe(Duration::from_millis(50));
        histogram.observe(Duration::from_millis(500));
        histogram.observe(Duration::from_secs(5));
        let mut registry = Registry::default();
        histogram.register(&mut registry);
        let out = encode(&registry);
        for line in [
            "d_seconds_bucket{le=\"0.1\"} 1",
            "d_seconds_bucket{le=\"1\"} 2",
            "d_seconds_bucket{le=\"+Inf\"} 3",
            "d_seconds_sum 5.55",
            "d_seconds_count 3",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing in\n{out}");
        }
    }
}
