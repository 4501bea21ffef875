//! IMDSv2 session tokens and their TTL header, as any process in the pod sends them to the
//! sidecar.
#![no_main]

use std::sync::OnceLock;

use iamra::sidecar::token::{ImdsTokens, parse_imds_ttl, tokens_match};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_800_000_000;

fn tokens() -> &'static ImdsTokens {
    static TOKENS: OnceLock<ImdsTokens> = OnceLock::new();
    TOKENS.get_or_init(|| ImdsTokens::new().expect("the system's random source"))
}

fuzz_target!(|text: &str| {
    if let Some(ttl) = parse_imds_ttl(Some(text)) {
        assert!((1..=21_600).contains(&ttl));
        let issued = tokens().issue(NOW, ttl);
        assert!(tokens().is_valid(&issued, NOW));
        assert!(!tokens().is_valid(&issued, NOW + i64::try_from(ttl).unwrap_or(i64::MAX)));
    }
    // A token this process did not issue is never valid, whatever expiry it claims.
    assert!(!tokens().is_valid(text, NOW));
    let _ = tokens_match(text.as_bytes(), b"sidecar-token");
});
