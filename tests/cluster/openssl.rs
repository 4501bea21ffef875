//! openssl as the independent judge of every certificate the tests get.

use std::process::Command;

use anyhow::Context;

/// Runs openssl with `args` (file paths inside `dir`), returning stdout+stderr.
fn run(dir: &std::path::Path, args: &[&str]) -> anyhow::Result<(bool, String)> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl (install it: apt-get install openssl)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), text))
}

/// `openssl verify -x509_strict -purpose sslclient`: what Roles Anywhere demands of a leaf.
pub fn verify_client_certificate(ca_pem: &str, leaf_pem: &str) -> anyhow::Result<()> {
    verify_for_purpose(ca_pem, leaf_pem, "sslclient")
}

/// `openssl verify -x509_strict -purpose sslserver`: the webhook's serving certificate.
pub fn verify_server_certificate(ca_pem: &str, leaf_pem: &str) -> anyhow::Result<()> {
    verify_for_purpose(ca_pem, leaf_pem, "sslserver")
}

fn verify_for_purpose(ca_pem: &str, leaf_pem: &str, purpose: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("ca.pem"), ca_pem)?;
    std::fs::write(dir.path().join("leaf.pem"), leaf_pem)?;
    let (ok, text) = run(
        dir.path(),
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            purpose,
            "-CAfile",
            "ca.pem",
            "leaf.pem",
        ],
    )?;
    anyhow::ensure!(
        ok && text.contains("leaf.pem: OK"),
        "openssl verify refused the certificate for {purpose}:\n{text}"
    );
    Ok(())
}

/// `openssl x509 -noout -text` of a PEM certificate.
pub fn certificate_text(pem: &str) -> anyhow::Result<String> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("cert.pem"), pem)?;
    let (ok, text) = run(dir.path(), &["x509", "-noout", "-text", "-in", "cert.pem"])?;
    anyhow::ensure!(ok, "openssl x509 could not read the certificate:\n{text}");
    Ok(text)
}

/// `openssl x509 -noout -serial`, as lowercase hex without the `serial=` prefix.
pub fn serial(pem: &str) -> anyhow::Result<String> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("cert.pem"), pem)?;
    let (ok, text) = run(
        dir.path(),
        &["x509", "-noout", "-serial", "-in", "cert.pem"],
    )?;
    anyhow::ensure!(ok, "openssl x509 -serial failed:\n{text}");
    Ok(text.trim().trim_start_matches("serial=").to_lowercase())
}

/// Whether the PEM private key belongs to the PEM certificate, by comparing public keys.
pub fn key_matches_certificate(key_pem: &str, cert_pem: &str) -> anyhow::Result<bool> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("key.pem"), key_pem)?;
    std::fs::write(dir.path().join("cert.pem"), cert_pem)?;
    let (ok_key, from_key) = run(dir.path(), &["pkey", "-in", "key.pem", "-pubout"])?;
    let (ok_cert, from_cert) = run(
        dir.path(),
        &["x509", "-in", "cert.pem", "-noout", "-pubkey"],
    )?;
    anyhow::ensure!(
        ok_key && ok_cert,
        "openssl could not read key or certificate:\n{from_key}\n{from_cert}"
    );
    Ok(from_key.trim() == from_cert.trim())
}

/// `openssl verify -x509_strict` of a self-signed CA against itself: its signature and
/// extensions are well-formed.
pub fn verify_self_signed_ca(ca_pem: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("ca.pem"), ca_pem)?;
    let (ok, text) = run(
        dir.path(),
        &["verify", "-x509_strict", "-CAfile", "ca.pem", "ca.pem"],
    )?;
    anyhow::ensure!(
        ok && text.contains("ca.pem: OK"),
        "openssl verify refused the CA:\n{text}"
    );
    Ok(())
}

/// `openssl verify -crl_check -x509_strict -purpose sslclient` with `crl_pem`: Ok when the
/// outcome is what `expect_valid` says (valid, or "certificate revoked").
pub fn verify_with_crl(
    ca_pem: &str,
    crl_pem: &str,
    leaf_pem: &str,
    expect_valid: bool,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("ca.pem"), ca_pem)?;
    std::fs::write(dir.path().join("crl.pem"), crl_pem)?;
    std::fs::write(dir.path().join("leaf.pem"), leaf_pem)?;
    let (ok, text) = run(
        dir.path(),
        &[
            "verify",
            "-crl_check",
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-CAfile",
            "ca.pem",
            "-CRLfile",
            "crl.pem",
            "leaf.pem",
        ],
    )?;
    if expect_valid {
        anyhow::ensure!(
            ok && text.contains("leaf.pem: OK"),
            "openssl -crl_check refused a certificate that is not revoked:\n{text}"
        );
    } else {
        anyhow::ensure!(
            !ok && text.contains("certificate revoked"),
            "openssl -crl_check did not report the certificate revoked:\n{text}"
        );
    }
    Ok(())
}

/// `openssl crl -verify` of a CRL against its CA.
pub fn verify_crl(ca_pem: &str, crl_pem: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("ca.pem"), ca_pem)?;
    std::fs::write(dir.path().join("crl.pem"), crl_pem)?;
    let (ok, text) = run(
        dir.path(),
        &[
            "crl", "-in", "crl.pem", "-CAfile", "ca.pem", "-verify", "-noout",
        ],
    )?;
    anyhow::ensure!(
        ok && text.contains("verify OK"),
        "openssl crl -verify failed:\n{text}"
    );
    Ok(())
}

/// The serials a CRL lists, lowercase hex without leading zero octets.
pub fn crl_serials(crl_pem: &str) -> anyhow::Result<Vec<String>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("crl.pem"), crl_pem)?;
    let (ok, text) = run(dir.path(), &["crl", "-in", "crl.pem", "-noout", "-text"])?;
    anyhow::ensure!(ok, "openssl crl could not read the CRL:\n{text}");
    Ok(text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Serial Number: "))
        .map(|serial| serial.trim().to_lowercase())
        .collect())
}

/// The CRL number openssl reads from the CRL.
pub fn crl_number(crl_pem: &str) -> anyhow::Result<i64> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("crl.pem"), crl_pem)?;
    let (ok, text) = run(
        dir.path(),
        &["crl", "-in", "crl.pem", "-noout", "-crlnumber"],
    )?;
    anyhow::ensure!(ok, "openssl crl -crlnumber failed:\n{text}");
    let hex = text
        .trim()
        .trim_start_matches("crlNumber=")
        .trim_start_matches("0x");
    Ok(i64::from_str_radix(hex, 16)?)
}
