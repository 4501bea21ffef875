//! Every sample in `config/samples/` is accepted by the API server and reads back unchanged.

use anyhow::Context;
use kube::api::{DynamicObject, Patch, PatchParams};
use libtest_mimic::Trial;

use crate::cluster::{TestCluster, api_for, sample, trial};

const SAMPLES: &[&str] = &[
    "issuer-local.yaml",
    "issuer-kms.yaml",
    "workloadcertificate.yaml",
    "revocation.yaml",
    "rolesanywherebinding.yaml",
    "clusterissuer.yaml",
    "workloadcertificate-shared.yaml",
];

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    let mut trials: Vec<Trial> = SAMPLES
        .iter()
        .map(|file| {
            trial(
                &format!("samples::applies_and_reads_back::{file}"),
                cluster,
                move |cluster| applies_and_reads_back(cluster, file),
            )
        })
        .collect();
    trials.push(trial(
        "samples::directory_lists_every_sample",
        cluster,
        |_| async { directory_lists_every_sample() },
    ));
    trials
}

async fn applies_and_reads_back(cluster: TestCluster, file: &'static str) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "samples").await?;
    let manifest = sample(file)?;
    let api = api_for(&client, &namespace, &manifest)?;
    let name = manifest["metadata"]["name"]
        .as_str()
        .context("sample has no name")?;
    let object: DynamicObject = serde_json::from_value(manifest.clone())?;
    api.patch(
        name,
        &PatchParams::apply("iamra-tests").force(),
        &Patch::Apply(&object),
    )
    .await
    .with_context(|| format!("applying {file}"))?;
    let stored = api.get(name).await?;
    anyhow::ensure!(
        stored.data["spec"] == manifest["spec"],
        "{file}: spec read back differs:\napplied {}\nstored  {}",
        manifest["spec"],
        stored.data["spec"]
    );
    Ok(())
}

/// Keeps the list above honest: a sample added to the directory must be tested too.
fn directory_lists_every_sample() -> anyhow::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/samples");
    let mut found: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    found.sort();
    let mut listed: Vec<String> = SAMPLES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    anyhow::ensure!(
        found == listed,
        "config/samples has {found:?} but the test lists {listed:?}"
    );
    Ok(())
}
