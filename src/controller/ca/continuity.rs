//! A CA that still has valid certificates is never swapped out from under its Issuer. The
//! Issuer publishes the CRL of its current CA only, so after an in-place change (other key
//! material in the CA Secret, another KMS key) revoking a certificate of the old CA would no
//! longer reach any CRL. A new CA goes into a new Issuer instead: both Issuers' CRLs then go to
//! the trust anchor (it holds two), and the old Issuer stays until its last certificate expires.

use time::OffsetDateTime;

use crate::controller::ca::LoadedCa;
use crate::controller::context::Context;
use crate::controller::issuer::CaIssuer;
use crate::controller::issuer::fingerprint;
use crate::controller::problem::Problem;
use crate::controller::reasons;
use crate::pki::authority_id;

/// Refuses `loaded` when it is not a CA this Issuer established while one it did establish
/// still has unexpired certificates. The explicit opt-in for a lost local CA
/// (`spec.local.replaceLostCA`) is honoured: that CA's key is gone, nothing could sign its CRL.
pub async fn refuse_stranding_established_ca(
    ctx: &Context,
    issuer: &CaIssuer,
    loaded: &LoadedCa,
) -> Result<(), Problem> {
    let namespace = issuer.ledger_namespace();
    let authority = authority_id(&loaded.certificate.public_key_info);
    if ctx.is_known_established(namespace, &issuer.name, &authority) {
        return Ok(());
    }
    let unavailable = |e: crate::controller::ledger::LedgerError| {
        Problem::transient(reasons::LEDGER_UNAVAILABLE, e.to_string())
    };
    let established = ctx
        .ledger
        .established_by(namespace, &issuer.name)
        .await
        .map_err(unavailable)?;
    if established.iter().any(|r| r.spec.authority == authority) {
        ctx.remember_established(namespace, &issuer.name, &authority);
        return Ok(());
    }
    let replacing_lost = issuer
        .spec
        .local
        .as_ref()
        .and_then(|local| local.replace_lost_ca.as_deref());
    let now = OffsetDateTime::now_utc().unix_timestamp();
    for previous in &established {
        if replacing_lost == Some(previous.spec.ca_fingerprint_sha256.as_str()) {
            continue;
        }
        let Some(last) = ctx
            .ledger
            .last_certificate_expiry(&previous.spec.authority, now)
            .await
            .map_err(unavailable)?
        else {
            continue;
        };
        return Err(Problem::permanent(
            reasons::CA_CHANGE_STRANDS_CERTIFICATES,
            format!(
                "the CA changed to fingerprint {}, but this issuer's CA {} has certificates valid until {}: \
                 its CRL would stop being published, so revoking them would no longer take effect. \
                 Restore the previous CA, or put the new CA in a new Issuer (its CRL goes to the trust \
                 anchor's second slot), move WorkloadCertificates to it, and keep this one until then",
                fingerprint(&loaded.certificate.der),
                previous.spec.ca_fingerprint_sha256,
                last.0,
            ),
        ));
    }
    Ok(())
}
