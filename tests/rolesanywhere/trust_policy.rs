//! Role trust policies, registered through the emulator-only `PUT /emulator/roles/trust-policy`
//! and evaluated at CreateSession against the certificate's default attribute mapping: one role
//! trusts one namespace's SPIFFE identities and no other. Also the session identity the emulator
//! reports (source identity = subject CN, session name = hex serial).

use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use iamra::rolesanywhere::emulator::{TRUST_POLICY_PATH, control_plane, data_plane};
use iamra::rolesanywhere::errors::CreateSessionError;
use iamra::rolesanywhere::session::{
    SessionRequest, SigningIdentity, create_session, sign_create_session,
};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::fixtures::{self, Alg, Leaf};
use crate::support::{
    ROLE_ARN, TestEnv, credential_process, helper_binary, iamra_binary, start_env,
};

const TEAM_A_PATTERN: &str = "spiffe://cluster.local/ns/team-a/*";

fn identity(leaf: &Leaf) -> SigningIdentity {
    SigningIdentity::from_pem(&leaf.cert_pem, &leaf.key_pem, None).unwrap()
}

fn request(env: &TestEnv, profile_arn: &str, role_session_name: Option<&str>) -> SessionRequest {
    SessionRequest::new(
        &env.trust_anchor_arn,
        profile_arn,
        ROLE_ARN,
        None,
        role_session_name.map(str::to_owned),
        None,
        Some(&env.endpoint()),
    )
    .unwrap()
}

/// One JSON request to the emulator; returns the status and the JSON body.
async fn send_json(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The documented shape (Roles Anywhere User Guide, "Attribute mapping and trust policy"),
/// conditioned on the SPIFFE URI SAN and the trust anchor.
fn team_a_policy(trust_anchor_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "rolesanywhere.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
            "Condition": {
                "StringLike": {"aws:PrincipalTag/x509SAN/URI": TEAM_A_PATTERN},
                "ArnEquals": {"aws:SourceArn": trust_anchor_arn},
            },
        }],
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_trust_policy_admits_only_its_namespace() {
    let env = start_env(Alg::EcdsaP256).await;
    let url = format!("{}{TRUST_POLICY_PATH}", env.endpoint());
    let team_a = fixtures::leaf_with_uri_san(
        &env.ca,
        Alg::EcdsaP256,
        "spiffe://cluster.local/ns/team-a/sa/x",
    );
    let team_b = fixtures::leaf_with_uri_san(
        &env.ca,
        Alg::EcdsaP256,
        "spiffe://cluster.local/ns/team-b/sa/x",
    );
    let to_role = request(&env, &env.profile_arn, None);

    // Without a trust policy the role trusts whatever the profile lets through (as before).
    create_session(&identity(&team_b), &to_role).await.unwrap();

    let policy = team_a_policy(&env.trust_anchor_arn);
    let (status, stored) = send_json(
        "PUT",
        &url,
        Some(&json!({"roleArn": ROLE_ARN, "policy": policy})),
    )
    .await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["policy"], policy);
    let (status, fetched) = send_json("GET", &format!("{url}?roleArn={ROLE_ARN}"), None).await;
    assert_eq!((status, &fetched["policy"]), (200, &policy));

    let credentials = create_session(&identity(&team_a), &to_role).await.unwrap();
    assert!(credentials.access_key_id.starts_with("ASIA"));
    let error = create_session(&identity(&team_b), &to_role)
        .await
        .unwrap_err();
    match error {
        CreateSessionError::AccessDenied { message } => {
            assert!(message.contains("trust policy"), "{message}");
            assert!(message.contains(ROLE_ARN), "{message}");
            assert!(
                message.contains("x509SAN/URI=spiffe://cluster.local/ns/team-b/sa/x"),
                "{message}"
            );
        }
        other => panic!("expected AccessDenied, got {other}"),
    }

    // The workload fixture has no URI SAN at all: a positive condition on an absent key fails.
    let no_uri = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    assert!(matches!(
        create_session(&identity(&no_uri), &to_role).await,
        Err(CreateSessionError::AccessDenied { .. })
    ));

    // Removing the policy restores the old behaviour.
    let (status, _) = send_json("DELETE", &format!("{url}?roleArn={ROLE_ARN}"), None).await;
    assert_eq!(status, 200);
    create_session(&identity(&team_b), &to_role).await.unwrap();
}

/// The same decision through the real clients: AWS's official helper and `iamra
/// credential-process` get credentials for team-a and print the refusal for team-b.
#[tokio::test(flavor = "multi_thread")]
async fn credential_process_clients_report_a_trust_policy_refusal() {
    let env = start_env(Alg::EcdsaP256).await;
    iamra::rolesanywhere::emulator::set_role_trust_policy(
        &env.emulator.shared,
        ROLE_ARN,
        &team_a_policy(&env.trust_anchor_arn),
    )
    .unwrap();
    let write = |name: &str, uri: &str| {
        let leaf = fixtures::leaf_with_uri_san(&env.ca, Alg::EcdsaP256, uri);
        fixtures::write_leaf(env.dir.path(), name, &leaf)
    };
    let (a_cert, a_key) = write("team-a", "spiffe://cluster.local/ns/team-a/sa/x");
    let (b_cert, b_key) = write("team-b", "spiffe://cluster.local/ns/team-b/sa/x");
    for program in [helper_binary(), iamra_binary()] {
        credential_process(&program, &env, &a_cert, &a_key, &env.endpoint())
            .await
            .credentials();
        credential_process(&program, &env, &b_cert, &b_key, &env.endpoint())
            .await
            .assert_refused_with("trust policy");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_trust_policy_is_refused_when_stored() {
    let env = start_env(Alg::EcdsaP256).await;
    let url = format!("{}{TRUST_POLICY_PATH}", env.endpoint());
    let mut unknown_operator = team_a_policy(&env.trust_anchor_arn);
    unknown_operator["Statement"][0]["Condition"] =
        json!({"StringMatchesRegex": {"aws:PrincipalTag/x509SAN/URI": ".*"}});
    let cases = [
        (
            json!({"roleArn": ROLE_ARN, "policy": "{not json"}),
            "not valid JSON",
        ),
        (
            json!({"roleArn": ROLE_ARN, "policy": unknown_operator}),
            "StringMatchesRegex",
        ),
        (json!({"policy": {}}), "roleArn is required"),
    ];
    for (body, needle) in cases {
        let (status, reply) = send_json("PUT", &url, Some(&body)).await;
        assert_eq!(status, 400, "{reply}");
        assert_eq!(reply["__type"], "ValidationException");
        let message = reply["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message}");
    }
    let (status, reply) = send_json("GET", &format!("{url}?roleArn={ROLE_ARN}"), None).await;
    assert_eq!(
        (status, &reply["__type"]),
        (404, &json!("ResourceNotFoundException"))
    );
}

/// Runs CreateSession in process, to read the whole reply (the client returns credentials only).
fn create_session_reply(
    env: &TestEnv,
    leaf: &Leaf,
    request: &SessionRequest,
) -> Result<Value, String> {
    let now = OffsetDateTime::now_utc();
    let signed = sign_create_session(&identity(leaf), request, now).unwrap();
    let uri: Uri = signed.url.parse().unwrap();
    let mut headers = HeaderMap::new();
    for (name, value) in &signed.headers {
        headers.append(
            HeaderName::try_from(name.as_str()).unwrap(),
            HeaderValue::try_from(value.as_str()).unwrap(),
        );
    }
    data_plane::handle_create_session(&env.emulator.shared, &uri, &headers, &signed.body, now)
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_carry_the_certificate_identity() {
    let env = start_env(Alg::EcdsaP256).await;
    let leaf = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    let reply = create_session_reply(&env, &leaf, &request(&env, &env.profile_arn, None)).unwrap();
    let set = &reply["credentialSet"][0];
    assert_eq!(set["sourceIdentity"], "workload", "the subject CN");
    let serial_hex = iamra::pki::serial_hex(&leaf.serial);
    assert_eq!(
        set["assumedRoleUser"]["arn"],
        format!("arn:aws:sts::123456789012:assumed-role/iamra-test/{serial_hex}"),
        "the default session name is the hex serial"
    );

    // The seeded profile accepts a role session name; one that does not refuses it.
    let named = create_session_reply(
        &env,
        &leaf,
        &request(&env, &env.profile_arn, Some("build-42")),
    )
    .unwrap();
    assert!(
        named["credentialSet"][0]["assumedRoleUser"]["arn"]
            .as_str()
            .unwrap()
            .ends_with("/iamra-test/build-42")
    );
    let strict = control_plane::create_profile_record(
        &env.emulator.shared,
        "no-session-names",
        vec![ROLE_ARN.to_owned()],
        true,
        None,
        false,
    )
    .unwrap();
    let error = create_session_reply(&env, &leaf, &request(&env, &strict.arn, Some("build-42")))
        .unwrap_err();
    assert!(
        error.contains("does not accept role session names"),
        "{error}"
    );
}
