//! Reading a controller process's Prometheus metrics.

use anyhow::Context;

use crate::processes::TestProcess;
use crate::revocation::http_get;

/// The text of the process's `/metrics`.
pub async fn scrape(process: &TestProcess) -> anyhow::Result<String> {
    let address = process.http_address.as_deref().context("no HTTP address")?;
    Ok(String::from_utf8(
        http_get(&format!("http://{address}/metrics")).await?,
    )?)
}

/// The value of the series named exactly `series` (name and labels), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
