//! Durations as tenants write them in `duration`, `renewBefore` and `crlRefreshInterval`.
#![no_main]

use iamra::api::parse_duration;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(duration) = parse_duration(text) else {
        return;
    };
    // Accepted only in the schema's alphabet, and the same duration written in seconds alone
    // parses to the same value (no overflow was silently wrapped).
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_digit() || b"hms".contains(&b))
    );
    let seconds = format!("{}s", duration.as_secs());
    assert_eq!(parse_duration(&seconds), Ok(duration));
});
