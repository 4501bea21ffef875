//! API requests as the API server counts them (`apiserver_request_total` on its `/metrics`), by
//! verb, for the resources the controller works on.

use std::collections::BTreeMap;

/// Requests the API server makes of itself (its own Lease, the `kubernetes` Service's
/// endpoints), left out so the counts are the clients' only.
const OWN_RESOURCES: [&str; 4] = ["leases", "endpoints", "endpointslices", "services"];

/// Request totals by verb.
#[derive(Clone, Debug, Default)]
pub struct RequestCounts(BTreeMap<String, f64>);

impl RequestCounts {
    /// Parses the exposition text of `apiserver_request_total`.
    pub fn parse(metrics: &str) -> Self {
        let mut counts = BTreeMap::<String, f64>::new();
        for line in metrics.lines() {
            let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let label = |name: &str| {
                labels.split(',').find_map(|pair| {
                    pair.strip_prefix(name)?
                        .strip_prefix("=\"")?
                        .strip_suffix('"')
                })
            };
            // No resource: a non-resource URL such as the bench's own read of /metrics.
            if label("resource").is_none_or(|r| r.is_empty() || OWN_RESOURCES.contains(&r)) {
                continue;
            }
            let (Some(verb), Ok(value)) = (label("verb"), value.trim().parse::<f64>()) else {
                continue;
            };
            *counts.entry(verb.to_string()).or_default() += value;
        }
        Self(counts)
    }

    /// The requests made since `earlier`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self(
            self.0
                .iter()
                .map(|(verb, total)| {
                    let before = earlier.0.get(verb).copied().unwrap_or(0.0);
                    (verb.clone(), (total - before).max(0.0))
                })
                .filter(|(_, n)| *n > 0.0)
                .collect(),
        )
    }

    /// Takes out requests someone else made (the bench's own).
    pub fn subtract(&mut self, verb: &str, requests: f64) {
        if let Some(total) = self.0.get_mut(verb) {
            *total = (*total - requests).max(0.0);
        }
        self.0.retain(|_, n| *n > 0.0);
    }

    pub fn total(&self) -> f64 {
        self.0.values().sum()
    }

    /// "9.0 GET, 3.0 POST" per one of `count`.
    pub fn per_verb(&self, count: usize) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|(verb, n)| format!("{:.2} {verb}", n / count as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The API server's request totals now.
pub async fn request_counts(client: &kube::Client) -> anyhow::Result<RequestCounts> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    Ok(RequestCounts::parse(&client.request_text(request).await?))
}
