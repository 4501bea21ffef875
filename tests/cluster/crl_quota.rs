//! The Roles Anywhere CRL API allows one request per second per account, shared by every CRL
//! operation. Many Issuers importing at once (here against an emulator that refuses a call over
//! the quota, as the service does) queue behind one pacer: nothing is throttled, and no second
//! ever holds two calls.

use std::time::Duration;

use anyhow::Context;
use iamra::api::*;
use kube::api::Api;
use libtest_mimic::Trial;

use crate::cluster::{TestCluster, trial, wait_for};
use crate::issuance::{SETTLE, apply, local_issuer, wait_issuer_ready};
use crate::revocation::{seed, start_emulator};

const ISSUERS: usize = 6;

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![trial(
        "crl_quota::many_issuers_importing_at_once_make_at_most_one_crl_call_per_second",
        cluster,
        many_issuers_importing_at_once_make_at_most_one_crl_call_per_second,
    )]
}

async fn many_issuers_importing_at_once_make_at_most_one_crl_call_per_second(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "crlquota").await?;
    let emulator = start_emulator("127.0.0.1:0".parse()?, None).await?;
    let _controller =
        cluster.start_controller_for_rolesanywhere(&namespace, &emulator.endpoint(), &[])?;
    let issuers: Api<Issuer> = Api::namespaced(client.clone(), &namespace);

    let names: Vec<String> = (0..ISSUERS).map(|i| format!("ca-{i}")).collect();
    for name in &names {
        apply(&issuers, &local_issuer(name, &format!("{name}-key"))).await?;
    }
    let mut targets = Vec::new();
    for name in &names {
        let ca_pem = wait_issuer_ready(&issuers, name)
            .await?
            .status
            .and_then(|s| s.ca_certificate)
            .context("no CA certificate")?;
        targets.push(seed(&emulator, &ca_pem)?.trust_anchor_arn);
    }
    let before = emulator.shared.crl_quota.log().admitted.len();
    anyhow::ensure!(before == 0, "{before} CRL calls before any import target");
    // Every Issuer gets its import target at once.
    for (name, anchor) in names.iter().zip(&targets) {
        let mut issuer = local_issuer(name, &format!("{name}-key"));
        issuer.spec.roles_anywhere = Some(RolesAnywhereCrlTarget {
            trust_anchor_arn: anchor.clone(),
            region: None,
            crl_name: None,
        });
        apply(&issuers, &issuer).await?;
    }
    // Each import is one ListCrls and one ImportCrl at least: the queue takes 2 s per Issuer.
    let deadline = SETTLE + Duration::from_secs(3 * ISSUERS as u64);
    for (name, anchor) in names.iter().zip(&targets) {
        wait_for(&format!("{name}'s CRL imported"), deadline, || async {
            let issuer = issuers.get(name).await?;
            let imported = issuer
                .status
                .iter()
                .flat_map(|s| s.conditions.iter())
                .any(|c| c.type_ == "CrlImported" && c.status == "True");
            let held = emulator
                .shared
                .read(|state| state.crls_of(anchor).filter(|crl| crl.enabled).count());
            Ok((imported && held == 1).then_some(()))
        })
        .await?;
    }
    let log = emulator.shared.crl_quota.log();
    let gap = log.smallest_gap().context("fewer than two CRL calls")?;
    println!(
        "crl_quota: {} Issuers imported with {} CRL calls; most in one second {}, smallest gap {gap:?}, throttled {}",
        ISSUERS,
        log.admitted.len(),
        log.most_in_one_second(),
        log.throttled
    );
    anyhow::ensure!(
        log.admitted.len() >= 2 * ISSUERS,
        "only {} CRL calls for {ISSUERS} imports",
        log.admitted.len()
    );
    anyhow::ensure!(log.throttled == 0, "{} CRL calls throttled", log.throttled);
    anyhow::ensure!(
        log.most_in_one_second() <= 1,
        "{} CRL calls within one second (smallest gap {gap:?})",
        log.most_in_one_second()
    );
    Ok(())
}
