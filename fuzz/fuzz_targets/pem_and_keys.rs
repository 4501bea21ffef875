//! PEM text and private keys from Secrets: the sidecar's `tls.key`, a CA Secret's key, bundles.
#![no_main]

use iamra::pki::pem::{encode_pem, parse_pem};
use iamra::pki::pem_blocks;
use iamra::pki::private_key::PrivateKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(blocks) = parse_pem(text) {
        // Re-encoding gives the same blocks: nothing decoded is lost or invented.
        let encoded: String = blocks
            .iter()
            .map(|block| encode_pem(&block.label, &block.der))
            .collect();
        assert_eq!(parse_pem(&encoded).as_ref(), Ok(&blocks));
    }
    let _ = pem_blocks(text);
    if let Ok(key) = PrivateKey::from_pem(text) {
        // A key that loads can sign.
        key.sign_sha256(b"fuzz").expect("a loaded key signs");
    }
    // The CA Secret's key goes through rcgen (aws-lc-rs underneath).
    let _ = rcgen::KeyPair::from_pem(text);
});
