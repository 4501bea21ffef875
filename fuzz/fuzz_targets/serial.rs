//! Certificate serials as a Revocation's `spec.serialNumber` and the ledger write them (hex).
#![no_main]

use iamra::pki::{parse_serial_hex, serial_hex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(bytes) = parse_serial_hex(text) else {
        return;
    };
    // The canonical form parses back to the same serial, and is its own canonical form.
    let canonical = serial_hex(&bytes);
    let again = parse_serial_hex(&canonical).expect("a canonical serial parses");
    assert_eq!(again, bytes);
    assert_eq!(serial_hex(&again), canonical);
});
