//! A rollout: twenty sidecars start in the same instant against an emulator that enforces the
//! account's 10 CreateSession/s (a bucket of ten). Their first calls are spread over two seconds
//! and throttled ones back off with full jitter, so every pod gets credentials and fewer than one
//! call in four is refused (measured: none; started without the spread, 8 to 12 of the twenty are
//! refused and up to 30 calls arrive within a second).

use std::time::Duration;

use crate::fixtures::{self, Alg};
use crate::harness::{install_leaf, start_env_with_quota, start_sidecar};

const PODS: usize = 20;

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_of_twenty_pods_gets_credentials_for_all_with_few_refusals() {
    let env = start_env_with_quota(true).await;
    let leaf = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    let (cert, key) = install_leaf(env.dir.path(), &leaf);
    let sidecars =
        futures::future::join_all((0..PODS).map(|_| start_sidecar(&env, &cert, &key, &[]))).await;
    for sidecar in &sidecars {
        sidecar
            .wait_readyz(Duration::from_secs(120), |status, _| status == 200)
            .await;
        assert_eq!(sidecar.credentials().await.0, 200);
    }
    let log = env.shared.session_quota.log();
    eprintln!(
        "rollout: {PODS} pods, {} CreateSession admitted, {} throttled, at most {} arriving in one second",
        log.admitted.len(),
        log.throttled.len(),
        log.most_arrivals_in_one_second()
    );
    assert!(
        log.admitted.len() >= PODS,
        "{} admitted",
        log.admitted.len()
    );
    assert!(
        log.throttled.len() < PODS / 4,
        "{} refusals for {PODS} pods: the calls were not spread",
        log.throttled.len()
    );
}
