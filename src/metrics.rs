//! Prometheus metric families rendered by hand in the text exposition format, for the
//! controller and the sidecar alike: a dozen families do not justify a metrics crate and its
//! global registry. Families are `static`s next to the code they count, so the signer and the
//! Roles Anywhere client stay free of any controller type; the controller's `/metrics`
//! renders them all.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Label values of one series, in the order of the family's label names.
type LabelValues<const N: usize> = [String; N];

/// A counter family with `N` labels.
pub struct CounterVec<const N: usize> {
    name: &'static str,
    help: &'static str,
    labels: [&'static str; N],
    values: Mutex<BTreeMap<LabelValues<N>, u64>>,
}

impl<const N: usize> CounterVec<N> {
    pub const fn new(name: &'static str, help: &'static str, labels: [&'static str; N]) -> Self {
        Self {
            name,
            help,
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn inc(&self, values: [&str; N]) {
        let mut series = self.values.lock().unwrap_or_else(|p| p.into_inner());
        *series.entry(values.map(str::to_string)).or_default() += 1;
    }

    pub fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        let series = self.values.lock().unwrap_or_else(|p| p.into_inner());
        // A counter without labels exists from the start; labelled series appear when counted.
        if N == 0 && series.is_empty() {
            let _ = writeln!(out, "{} 0", self.name);
        }
        for (values, count) in series.iter() {
            let _ = writeln!(
                out,
                "{}{} {count}",
                self.name,
                label_set(&self.labels, values)
            );
        }
    }
}

/// A histogram of durations in seconds, without labels.
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    /// Upper bounds in seconds, ascending; `+Inf` is implied.
    buckets: &'static [f64],
    state: Mutex<HistogramState>,
}

#[derive(Default)]
struct HistogramState {
    /// Observations per bucket (not cumulative); one extra slot for `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Buckets for work that is local or one network round trip: 5 ms to 30 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Histogram {
    pub const fn new(name: &'static str, help: &'static str, buckets: &'static [f64]) -> Self {
        Self {
            name,
            help,
            buckets,
            state: Mutex::new(HistogramState {
                counts: Vec::new(),
                sum: 0.0,
                count: 0,
            }),
        }
    }

    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.counts.is_empty() {
            state.counts = vec![0; self.buckets.len() + 1];
        }
        let bucket = self
            .buckets
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.buckets.len());
        state.counts[bucket] += 1;
        state.sum += seconds;
        state.count += 1;
    }

    pub fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut cumulative = 0;
        for (index, bound) in self.buckets.iter().enumerate() {
            cumulative += state.counts.get(index).copied().unwrap_or(0);
            let _ = writeln!(out, "{}_bucket{{le=\"{bound}\"}} {cumulative}", self.name);
        }
        let _ = writeln!(out, "{}_bucket{{le=\"+Inf\"}} {}", self.name, state.count);
        let _ = writeln!(out, "{}_sum {}", self.name, state.sum);
        let _ = writeln!(out, "{}_count {}", self.name, state.count);
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a family.
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// `{a="x",b="y"}`, or nothing without labels.
pub fn label_set<S: AsRef<str>>(names: &[&str], values: &[S]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(name, value)| format!("{name}=\"{}\"", escape(value.as_ref())))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

/// Label values escape backslash, double quote and newline (the exposition format's rule).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
        let mut out = String::new();
        counter.render(&mut out);
        assert_eq!(
            out,
            "# HELP x_total Things.\n# TYPE x_total counter\n\
             x_total{kind=\"a\",outcome=\"success\"} 2\n\
             x_total{kind=\"b\\\"\",outcome=\"error\"} 1\n"
        );
    }

    #[test]
    fn renders_cumulative_histogram_buckets() {
        let histogram = Histogram::new("d_seconds", "Durations.", &[0.1, 1.0]);
        histogram.observe(Duration::from_millis(50));
        histogram.observe(Duration::from_millis(500));
        histogram.observe(Duration::from_secs(5));
        let mut out = String::new();
        histogram.render(&mut out);
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

    #[test]
    fn an_empty_histogram_renders_zero_buckets() {
        let histogram = Histogram::new("e_seconds", "Empty.", &[1.0]);
        let mut out = String::new();
        histogram.render(&mut out);
        assert!(out.contains("e_seconds_bucket{le=\"1\"} 0\n"), "{out}");
        assert!(out.contains("e_seconds_count 0\n"), "{out}");
    }
}
