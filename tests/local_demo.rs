//! The README's first command, `iamra local-demo`, must stay true: it runs to the end, shows
//! credentials before the revocation (from `credential-process` and from the injected sidecar)
//! and "Certificate revoked" after it, the sidecar following the reissued certificate, and
//! cleans up.

use std::process::Command;

#[test]
fn local_demo_shows_the_revoked_certificate_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_iamra"))
        .arg("local-demo")
        .env_remove("IAMRA_TEST_BINS")
        .output()
        .expect("running iamra local-demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "local-demo failed:\n{stdout}\n{stderr}"
    );
    let credentials_at = stdout
        .find("\"AccessKeyId\":\"ASIA")
        .expect("credentials before the revocation");
    let refused_at = stdout
        .find("Certificate revoked")
        .expect("a refusal after the revocation");
    assert!(credentials_at < refused_at, "{stdout}");
    assert!(stdout.contains("==> revoked in "), "{stdout}");
    let json_line = stdout
        .lines()
        .find(|l| l.contains("AccessKeyId"))
        .expect("credentials line");
    let credentials: serde_json::Value =
        serde_json::from_str(json_line.trim()).expect("credentials JSON");
    assert_eq!(
        credentials["SecretAccessKey"], "<redacted>",
        "secrets must not be printed"
    );
    assert_eq!(
        credentials["SessionToken"], "<redacted>",
        "secrets must not be printed"
    );
    let sidecar_line = stdout
        .lines()
        .find(|l| l.contains("the SDK's container credentials provider"))
        .expect("credentials from the sidecar");
    let sidecar_json = &sidecar_line[sidecar_line.find('{').expect("JSON")..];
    let sidecar_credentials: serde_json::Value =
        serde_json::from_str(sidecar_json).expect("sidecar credentials JSON");
    assert!(
        sidecar_credentials["AccessKeyId"]
            .as_str()
            .is_some_and(|k| k.starts_with("ASIA")),
        "{sidecar_line}"
    );
    assert_eq!(
        sidecar_credentials["Token"], "<redacted>",
        "secrets must not be printed"
    );
    assert!(
        stdout.contains("native sidecar iamra-credentials"),
        "the webhook did not inject: {stdout}"
    );
    assert!(
        stdout.contains("without the token file's value: HTTP 401"),
        "{stdout}"
    );
    let rotated_at = stdout
        .find("sidecar, not restarted: {\"AccessKeyId\":\"ASIA")
        .expect("the sidecar serving credentials from the reissued certificate");
    assert!(refused_at < rotated_at, "{stdout}");
    let workdir = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("data and logs in "))
        .and_then(|rest| rest.split(' ').next())
        .expect("the demo names its work directory");
    assert!(
        !std::path::Path::new(workdir).exists(),
        "{workdir} was not cleaned up"
    );
}
