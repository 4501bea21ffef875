//! The test PKI is what a real CA would issue: openssl, strict, accepts the leaves for client
//! authentication and honours the CRLs the revocation tests import.

use std::process::Command;

use crate::fixtures::{self, Alg};

fn openssl_verify(args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .arg("verify")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn openssl_accepts_the_leaves_and_the_crl() {
    for alg in [Alg::EcdsaP256, Alg::Rsa2048] {
        let dir = tempfile::tempdir().unwrap();
        let ca = fixtures::ca("openssl CA", alg);
        let good = fixtures::leaf(&ca, alg);
        let revoked = fixtures::leaf(&ca, alg);
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        std::fs::write(path("ca.pem"), &ca.pem).unwrap();
        std::fs::write(path("good.pem"), &good.cert_pem).unwrap();
        std::fs::write(path("revoked.pem"), &revoked.cert_pem).unwrap();
        std::fs::write(
            path("crl.pem"),
            fixtures::crl_pem(&ca, &[&revoked.serial], 1),
        )
        .unwrap();
        let strict = ["-x509_strict", "-purpose", "sslclient"];
        let (ca_path, crl_path) = (path("ca.pem"), path("crl.pem"));
        let (ok, out) = openssl_verify(
            &[
                &strict[..],
                &["-CAfile", &path("ca.pem"), &path("good.pem")],
            ]
            .concat(),
        );
        assert!(ok, "{alg:?}: {out}");
        let with_crl = [
            &strict[..],
            &["-crl_check", "-CAfile", &ca_path, "-CRLfile", &crl_path],
        ]
        .concat();
        let (ok, out) = openssl_verify(&[&with_crl[..], &[&path("good.pem")]].concat());
        assert!(ok, "{alg:?} good with CRL: {out}");
        let (ok, out) = openssl_verify(&[&with_crl[..], &[&path("revoked.pem")]].concat());
        assert!(!ok && out.contains("revoked"), "{alg:?} revoked: {out}");
        let expired = fixtures::expired_leaf(&ca, alg);
        std::fs::write(path("expired.pem"), &expired.cert_pem).unwrap();
        let (ok, out) = openssl_verify(
            &[
                &strict[..],
                &["-CAfile", &path("ca.pem"), &path("expired.pem")],
            ]
            .concat(),
        );
        assert!(!ok && out.contains("expired"), "{alg:?} expired: {out}");
    }
}
