//! The library client (`create_session`) against the emulator: typed errors, signing in Rust and
//! altering after signing, clock skew, ARNs in the body, profile/role checks.

use iamra::pki::private_key::PrivateKey;
use iamra::rolesanywhere::errors::CreateSessionError;
use iamra::rolesanywhere::session::{
    ArnPlacement, SessionRequest, SigningIdentity, create_session, send_create_session,
    sign_create_session, sign_create_session_with,
};
use time::{Duration, OffsetDateTime};

use crate::fixtures::{self, Alg, Leaf};
use crate::support::{self, ROLE_ARN, TestEnv, start_env};

fn identity(leaf: &Leaf) -> SigningIdentity {
    SigningIdentity::from_pem(&leaf.cert_pem, &leaf.key_pem, None).unwrap()
}

fn request(env: &TestEnv, role: &str) -> SessionRequest {
    SessionRequest::new(
        &env.trust_anchor_arn,
        &env.profile_arn,
        role,
        None,
        None,
        None,
        Some(&env.endpoint()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn client_maps_refusals_to_typed_errors() {
    let env = start_env(Alg::EcdsaP256).await;
    let good = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    let credentials = create_session(&identity(&good), &request(&env, ROLE_ARN))
        .await
        .unwrap();
    assert!(credentials.access_key_id.starts_with("ASIA"));
    assert!(
        !format!("{credentials:?}").contains(&credentials.secret_access_key),
        "Debug must not print the secret"
    );

    let foreign = fixtures::leaf(&fixtures::ca("other", Alg::EcdsaP256), Alg::EcdsaP256);
    let error = create_session(&identity(&foreign), &request(&env, ROLE_ARN))
        .await
        .unwrap_err();
    assert!(
        matches!(error, CreateSessionError::UntrustedCertificate { .. }),
        "{error}"
    );

    let error = create_session(
        &identity(&good),
        &request(&env, "arn:aws:iam::123456789012:role/not-in-profile"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, CreateSessionError::AccessDenied { .. }),
        "{error}"
    );

    let mut unknown_profile = request(&env, ROLE_ARN);
    unknown_profile.profile_arn = unknown_profile.profile_arn.replace("profile/", "profile/0");
    let error = create_session(&identity(&good), &unknown_profile)
        .await
        .unwrap_err();
    assert!(
        matches!(error, CreateSessionError::ResourceNotFound { .. }),
        "{error}"
    );

    let mut too_short = request(&env, ROLE_ARN);
    too_short.duration_seconds = 60;
    let error = create_session(&identity(&good), &too_short)
        .await
        .unwrap_err();
    assert!(
        matches!(error, CreateSessionError::Validation { .. }),
        "{error}"
    );

    let revoked = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    support::import_enabled_crl(
        &env,
        "crl",
        &fixtures::crl_pem(&env.ca, &[&revoked.serial], 1),
    )
    .await;
    let error = create_session(&identity(&revoked), &request(&env, ROLE_ARN))
        .await
        .unwrap_err();
    assert!(
        matches!(error, CreateSessionError::CertificateRevoked { .. }),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn altering_a_signed_request_breaks_the_signature() {
    let env = start_env(Alg::Rsa2048).await;
    let leaf = fixtures::leaf(&env.ca, Alg::Rsa2048);
    let id = identity(&leaf);
    let req = request(&env, ROLE_ARN);
    let now = OffsetDateTime::now_utc();

    let signed = sign_create_session(&id, &req, now).unwrap();
    send_create_session(signed.clone(), &req.endpoint)
        .await
        .expect("the unaltered request is accepted");

    let mut body_changed = signed.clone();
    let last = body_changed.body.len() - 2; // a digit of durationSeconds
    body_changed.body[last] = if body_changed.body[last] == b'0' {
        b'1'
    } else {
        b'0'
    };
    let error = send_create_session(body_changed, &req.endpoint)
        .await
        .unwrap_err();
    assert!(
        matches!(error, CreateSessionError::InvalidSignature { .. }),
        "{error}"
    );

    let mut header_changed = signed.clone();
    for (name, value) in &mut header_changed.headers {
        if name == "X-Amz-Date" {
            *value = iamra::rolesanywhere::sigv4x509::format_amz_date(now + Duration::seconds(1));
        }
    }
    let error = send_create_session(header_changed, &req.endpoint)
        .await
        .unwrap_err();
    assert!(
        matches!(error, CreateSessionError::InvalidSignature { .. }),
        "{error}"
    );

    let mut query_changed = signed;
    query_changed.url = query_changed.url.replace("iamra-test", "iamra-tesu");
    let error = send_create_session(query_changed, &req.endpoint)
        .await
        .unwrap_err();
    assert!(
        matches!(error, CreateSessionError::InvalidSignature { .. }),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn x_amz_date_more_than_five_minutes_off_is_refused() {
    let env = start_env(Alg::EcdsaP256).await;
    let leaf = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    let id = identity(&leaf);
    let req = request(&env, ROLE_ARN);
    let now = OffsetDateTime::now_utc();
    for skew in [Duration::minutes(-6), Duration::minutes(6)] {
        let signed = sign_create_session(&id, &req, now + skew).unwrap();
        let error = send_create_session(signed, &req.endpoint)
            .await
            .unwrap_err();
        match error {
            CreateSessionError::AccessDenied { message } => {
                assert!(message.starts_with("Signature expired"), "{message}")
            }
            other => panic!("skew {skew}: {other}"),
        }
    }
    let signed = sign_create_session(&id, &req, now - Duration::minutes(4)).unwrap();
    send_create_session(signed, &req.endpoint)
        .await
        .expect("4 minutes of skew is tolerated");
}

#[tokio::test(flavor = "multi_thread")]
async fn arns_are_accepted_in_the_json_body() {
    let env = start_env(Alg::EcdsaP256).await;
    let leaf = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    let req = request(&env, ROLE_ARN);
    let signed = sign_create_session_with(
        &identity(&leaf),
        &req,
        OffsetDateTime::now_utc(),
        ArnPlacement::Body,
    )
    .unwrap();
    assert!(!signed.url.contains('?'));
    assert!(String::from_utf8_lossy(&signed.body).contains("trustAnchorArn"));
    send_create_session(signed, &req.endpoint).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn chain_through_an_intermediate_sent_in_x_amz_x509_chain() {
    let env = start_env(Alg::EcdsaP256).await;
    let intermediate = fixtures::intermediate_ca(&env.ca, "iamra intermediate", Alg::Rsa2048);
    let leaf = fixtures::leaf(&intermediate, Alg::EcdsaP256);
    let req = request(&env, ROLE_ARN);
    let without_chain = identity(&leaf);
    let error = create_session(&without_chain, &req).await.unwrap_err();
    assert!(
        matches!(error, CreateSessionError::UntrustedCertificate { .. }),
        "{error}"
    );
    let with_chain = SigningIdentity::new(
        pem_der(&leaf.cert_pem),
        vec![pem_der(&intermediate.pem)],
        PrivateKey::from_pem(&leaf.key_pem).unwrap(),
    )
    .unwrap();
    create_session(&with_chain, &req).await.unwrap();

    // Revoking the leaf with a CRL of the intermediate (the leaf's issuer) is honoured.
    support::import_enabled_crl(
        &env,
        "intermediate-crl",
        &fixtures::crl_pem(&intermediate, &[&leaf.serial], 1),
    )
    .await;
    let error = create_session(&with_chain, &req).await.unwrap_err();
    assert!(
        matches!(error, CreateSessionError::CertificateRevoked { .. }),
        "{error}"
    );
}

fn pem_der(pem: &str) -> Vec<u8> {
    iamra::pki::pem::parse_pem(pem).unwrap().remove(0).der
}
