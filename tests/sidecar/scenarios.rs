//! The sidecar process end to end: endpoints and tokens, rotation, revocation, expired
//! certificates.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fixtures::{self, Alg};
use crate::harness::{
    self, ROLE_NAME, decimal, get, install_leaf, request, start_env, start_ready_sidecar,
    start_sidecar,
};

/// Refresh every ~3 s on a 900 s session, so rotation and revocation show within seconds.
const FAST_REFRESH: [&str; 6] = [
    "--session-duration",
    "900",
    "--refresh-before",
    "897",
    "--file-poll-interval",
    "1",
];

#[tokio::test(flavor = "multi_thread")]
async fn container_endpoint_requires_the_token_and_imds_a_session_token() {
    let env = start_env().await;
    let leaf = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    let (cert, key) = install_leaf(env.dir.path(), &leaf);
    let sidecar = start_ready_sidecar(&env, &cert, &key, &[]).await;
    let issued = env.sessions();
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(issued[0].serial, decimal(&leaf.serial));
    let issued_key = issued[0].access_key_id.clone().unwrap();

    // The generated token file: not world-readable, no trailing newline (SDKs send it as is).
    let token = sidecar.token();
    assert_eq!(token.len(), 64);
    let mode = std::fs::metadata(&sidecar.token_file)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert!(mode == 0o640 || mode == 0o600, "token file mode {mode:o}");

    let url = format!("{}/credentials", sidecar.base);
    assert_eq!(get(&url, &[]).await.0, 401);
    assert_eq!(get(&url, &[("authorization", "wrong")]).await.0, 401);
    assert_eq!(get(&url, &[("authorization", &token[..63])]).await.0, 401);
    let (status, json) = sidecar.credentials().await;
    assert_eq!(status, 200);
    assert_eq!(json["AccessKeyId"], issued_key.as_str());
    assert_eq!(json["SecretAccessKey"].as_str().unwrap().len(), 40);
    assert!(!json["Token"].as_str().unwrap().is_empty());
    let expiration = OffsetDateTime::parse(json["Expiration"].as_str().unwrap(), &Rfc3339).unwrap();
    let remaining = expiration - OffsetDateTime::now_utc();
    assert!(remaining > time::Duration::minutes(55), "{remaining}");

    // IMDSv2.
    let imds = |path: &str| format!("{}/latest{path}", sidecar.base);
    let roles = imds("/meta-data/iam/security-credentials/");
    assert_eq!(get(&roles, &[]).await.0, 401, "no session token");
    assert_eq!(
        get(&roles, &[("x-aws-ec2-metadata-token", "1.forged")])
            .await
            .0,
        401
    );
    let token_url = imds("/api/token");
    assert_eq!(
        request("PUT", &token_url, &[]).await.0,
        400,
        "TTL is required"
    );
    let too_long = [("x-aws-ec2-metadata-token-ttl-seconds", "21601")];
    assert_eq!(request("PUT", &token_url, &too_long).await.0, 400);
    let forwarded = [
        ("x-aws-ec2-metadata-token-ttl-seconds", "60"),
        ("x-forwarded-for", "10.0.0.1"),
    ];
    assert_eq!(request("PUT", &token_url, &forwarded).await.0, 403);
    let (status, session) = request(
        "PUT",
        &token_url,
        &[("x-aws-ec2-metadata-token-ttl-seconds", "21600")],
    )
    .await;
    assert_eq!(status, 200);
    let with_session = [("x-aws-ec2-metadata-token", session.as_str())];
    assert_eq!(
        get(&roles, &with_session).await,
        (200, ROLE_NAME.to_owned())
    );
    let (status, body) = get(&format!("{roles}{ROLE_NAME}"), &with_session).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["Code"], "Success");
    assert_eq!(json["Type"], "AWS-HMAC");
    assert_eq!(json["AccessKeyId"], issued_key.as_str());
    OffsetDateTime::parse(json["LastUpdated"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(
        get(&format!("{roles}other-role"), &with_session).await.0,
        404
    );
    assert_eq!(get(&format!("{roles}{ROLE_NAME}"), &[]).await.0, 401);

    // Health and metrics on their own address; nothing secret in the log.
    assert_eq!(
        get(&format!("{}/healthz", sidecar.health), &[]).await.0,
        200
    );
    let (_, metrics) = get(&format!("{}/metrics", sidecar.health), &[]).await;
    for line in [
        "iamra_sidecar_refreshes_total 1",
        "iamra_sidecar_requests_total{endpoint=\"credentials\",status=\"401\"} 3",
        "iamra_sidecar_requests_total{endpoint=\"credentials\",status=\"200\"} 1",
        "iamra_sidecar_requests_total{endpoint=\"imds_credentials\",status=\"200\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in\n{metrics}"
        );
    }
    assert!(metrics.contains("iamra_sidecar_credentials_expiry_seconds 3"));
    let log = sidecar.log();
    assert!(
        log.contains(&issued_key),
        "the access key id is logged: {log}"
    );
    for secret in [
        json["SecretAccessKey"].as_str().unwrap(),
        json["Token"].as_str().unwrap(),
        token.as_str(),
        session.as_str(),
    ] {
        assert!(
            !log.contains(secret),
            "a secret leaked into the log:\n{log}"
        );
    }
    for key_line in leaf.key_pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(
            !log.contains(key_line),
            "the private key leaked into the log"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_non_loopback_listen_address() {
    let env = start_env().await;
    let leaf = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    let (cert, key) = install_leaf(env.dir.path(), &leaf);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamra"))
        .arg("sidecar")
        .arg("--certificate")
        .arg(&cert)
        .arg("--private-key")
        .arg(&key)
        .args(["--trust-anchor-arn", &env.trust_anchor_arn])
        .args(["--profile-arn", &env.profile_arn])
        .args(["--role-arn", harness::ROLE_ARN])
        .args(["--listen", "0.0.0.0:0", "--token-file"])
        .arg(env.dir.path().join("token"))
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_certificate_is_used_without_restart() {
    let env = start_env().await;
    let old = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    let (cert, key) = install_leaf(env.dir.path(), &old);
    let sidecar = start_ready_sidecar(&env, &cert, &key, &FAST_REFRESH).await;
    assert_eq!(env.sessions()[0].serial, decimal(&old.serial));

    // Rotate (new key, new serial), then revoke the old certificate: from now on only the new
    // one can obtain credentials.
    let new = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    install_leaf(env.dir.path(), &new);
    let new_serial = decimal(&new.serial);
    let granted_to_new = || {
        env.sessions()
            .iter()
            .filter(|s| s.serial == new_serial && s.status == 201)
            .count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while granted_to_new() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no CreateSession with the new certificate: {:?}\n{}",
            env.sessions(),
            sidecar.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.revoke(&[&old.serial], 1).await;
    let seen_at_revocation = env.sessions().len();

    // Credentials keep flowing: more sessions granted to the new serial after the CRL, the
    // served key is one of them, and the sidecar stays ready.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let after: Vec<_> = env.sessions()[seen_at_revocation..].to_vec();
        if after.iter().filter(|s| s.status == 201).count() >= 2 {
            assert!(
                after
                    .iter()
                    .all(|s| s.serial == new_serial && s.status == 201),
                "after rotation every CreateSession uses the new certificate: {after:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no refresh after the revocation: {after:?}\n{}",
            sidecar.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, json) = sidecar.credentials().await;
    assert_eq!(status, 200);
    let served = json["AccessKeyId"].as_str().unwrap();
    assert!(
        env.sessions()
            .iter()
            .any(|s| s.serial == new_serial && s.access_key_id.as_deref() == Some(served)),
        "the served key {served} was issued to the new certificate"
    );
    assert_eq!(sidecar.readyz().await.0, 200);
    assert!(sidecar.log().contains("certificate files changed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_certificate_turns_readyz_red_and_a_new_one_recovers() {
    let env = start_env().await;
    let leaf = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    let (cert, key) = install_leaf(env.dir.path(), &leaf);
    let sidecar = start_ready_sidecar(&env, &cert, &key, &FAST_REFRESH).await;

    env.revoke(&[&leaf.serial], 1).await;
    sidecar
        .wait_readyz(Duration::from_secs(20), |status, body| {
            status == 503 && body.contains("revoked")
        })
        .await;
    assert!(sidecar.log().contains("the certificate is revoked"));
    assert_eq!(
        get(&format!("{}/healthz", sidecar.health), &[]).await.0,
        200
    );
    let (_, metrics) = get(&format!("{}/metrics", sidecar.health), &[]).await;
    assert!(
        metrics.contains("iamra_sidecar_refresh_failures_total{reason=\"certificate_revoked\"}"),
        "{metrics}"
    );
    // Still within their lifetime, the cached credentials are served (the rule that nothing is
    // served past expiration is the cache's unit test: 15 minutes is too long to wait here).
    assert_eq!(sidecar.credentials().await.0, 200);

    // A new certificate, no restart: ready again.
    let renewed = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    install_leaf(env.dir.path(), &renewed);
    sidecar
        .wait_readyz(Duration::from_secs(20), |status, _| status == 200)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_certificate_serves_nothing_and_says_why() {
    let env = start_env().await;
    let leaf = fixtures::expired_leaf(&env.ca, Alg::EcdsaP256);
    let (cert, key) = install_leaf(env.dir.path(), &leaf);
    let sidecar = start_sidecar(&env, &cert, &key, &[]).await;
    sidecar
        .wait_readyz(Duration::from_secs(20), |status, body| {
            status == 503 && body.contains("no valid credentials")
        })
        .await;
    let (status, json) = sidecar.credentials().await;
    assert_eq!(status, 503);
    assert_eq!(json["Code"], "CredentialsUnavailable");
    assert!(
        json["Message"].as_str().unwrap().contains("expired at"),
        "{json}"
    );
    assert!(sidecar.log().contains("expired at"));
    assert!(
        env.sessions().is_empty(),
        "an expired certificate is not even sent"
    );
}
