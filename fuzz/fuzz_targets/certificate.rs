//! Certificates from Secrets and requests: the CA Secret's `tls.crt`, a workload's chain, and
//! the emulator's `x-amz-x509` header (DER), checked against the leaf profile.
#![no_main]

use iamra::pki::pem::encode_pem;
use iamra::pki::{parse_certificate_der, parse_certificate_pem};
use iamra::rolesanywhere::emulator::verify::check_leaf_profile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = parse_certificate_der(data) {
        // Signature checks on hostile input give an answer, never a panic.
        let _ = parsed.is_signed_by(&parsed.public_key_info);
        // The same certificate read from PEM (as a Secret holds it) gives the same facts.
        let pem = encode_pem("CERTIFICATE", data);
        let from_pem = parse_certificate_pem(&pem).expect("a DER certificate parses from PEM");
        assert_eq!(from_pem, parsed);
    }
    if let Ok((_, certificate)) = x509_parser::parse_x509_certificate(data) {
        let _ = check_leaf_profile(&certificate);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_certificate_pem(text);
    }
});
