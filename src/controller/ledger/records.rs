//! CertificateRecords: one per serial, created at issuance, revoked once, deleted after expiry.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::ResourceExt;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use time::OffsetDateTime;

use super::{
    AUTHORITY_LABEL, ISSUED_CERTIFICATE_LABEL, ISSUED_NAMESPACE_LABEL, KEY_LABEL, Ledger,
    LedgerError, REVOKED_BY_LABEL, REVOKED_LABEL, certificate_label, key_label, record_name,
};
use crate::api::{
    CertificateRecord, CertificateRecordSpec, IssuedCertificate, RecordedRevocation,
    RevocationReason,
};
use crate::pki::{RevokedCertificate, parse_serial_hex};

/// How long after its notAfter a record is kept, so a Revocation that arrives just after expiry
/// (a slow clock somewhere) still finds what was issued.
pub const EXPIRY_GRACE_SECONDS: i64 = 3600;

impl Ledger {
    /// Records an issuance. Called before the certificate is written anywhere a workload can
    /// read it, so no certificate of this controller exists that the ledger does not know.
    pub async fn record_issuance(
        &self,
        authority: &str,
        serial_hex: &str,
        not_after: Time,
        issued: IssuedCertificate,
    ) -> Result<CertificateRecord, LedgerError> {
        let labels = BTreeMap::from([
            (AUTHORITY_LABEL.to_string(), authority.to_string()),
            (ISSUED_NAMESPACE_LABEL.to_string(), issued.namespace.clone()),
            (
                ISSUED_CERTIFICATE_LABEL.to_string(),
                certificate_label(&issued.namespace, &issued.certificate),
            ),
            (KEY_LABEL.to_string(), key_label(&issued.key_fingerprint)),
        ]);
        let record = CertificateRecord {
            metadata: ObjectMeta {
                name: Some(record_name(authority, serial_hex)),
                labels: Some(labels),
                ..Default::default()
            },
            spec: CertificateRecordSpec {
                authority: authority.to_string(),
                serial_number: serial_hex.to_string(),
                not_after,
                issued: Some(issued),
                revocation: None,
            },
        };
        Ok(self.records.create(&PostParams::default(), &record).await?)
    }

    /// The record of one serial, if the ledger has it.
    pub async fn record(
        &self,
        authority: &str,
        serial_hex: &str,
    ) -> Result<Option<CertificateRecord>, LedgerError> {
        Ok(self
            .records
            .get_opt(&record_name(authority, serial_hex))
            .await?)
    }

    async fn list(&self, selector: &str) -> Result<Vec<CertificateRecord>, LedgerError> {
        Ok(self
            .records
            .list(&ListParams::default().labels(selector))
            .await?
            .items)
    }

    /// Every record of one WorkloadCertificate, expired ones included.
    pub async fn records_of_certificate(
        &self,
        authority: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<CertificateRecord>, LedgerError> {
        let selector = format!(
            "{AUTHORITY_LABEL}={authority},{ISSUED_CERTIFICATE_LABEL}={}",
            certificate_label(namespace, name)
        );
        Ok(self
            .list(&selector)
            .await?
            .into_iter()
            .filter(|record| {
                record.spec.issued.as_ref().is_some_and(|issued| {
                    issued.namespace == namespace && issued.certificate == name
                })
            })
            .collect())
    }

    /// Every record of certificates with this key.
    pub async fn records_with_key(
        &self,
        authority: &str,
        key_fingerprint: &str,
    ) -> Result<Vec<CertificateRecord>, LedgerError> {
        let selector = format!(
            "{AUTHORITY_LABEL}={authority},{KEY_LABEL}={}",
            key_label(key_fingerprint)
        );
        Ok(self
            .list(&selector)
            .await?
            .into_iter()
            .filter(|record| {
                record
                    .spec
                    .issued
                    .as_ref()
                    .is_some_and(|issued| issued.key_fingerprint == key_fingerprint)
            })
            .collect())
    }

    /// Every revoked record of the CA: what its CRL carries (expired ones are left to the caller).
    pub async fn revoked(&self, authority: &str) -> Result<Vec<CertificateRecord>, LedgerError> {
        self.list(&format!(
            "{AUTHORITY_LABEL}={authority},{REVOKED_LABEL}=true"
        ))
        .await
    }

    /// The records a Revocation (by uid) revoked first, across every CA.
    pub async fn revoked_by(&self, uid: &str) -> Result<Vec<CertificateRecord>, LedgerError> {
        self.list(&format!("{REVOKED_BY_LABEL}={uid}")).await
    }

    /// Records the revocation of `record`. A record revoked already keeps its first revocation
    /// (the API server refuses to change it); the record as it now stands is returned.
    pub async fn revoke(
        &self,
        record: &CertificateRecord,
        revocation: &RecordedRevocation,
    ) -> Result<CertificateRecord, LedgerError> {
        if record.spec.revocation.is_some() {
            return Ok(record.clone());
        }
        let patch = json!({
            "metadata": {"labels": {
                REVOKED_LABEL: "true",
                REVOKED_BY_LABEL: revocation.requested_by.uid,
            }},
            "spec": {"revocation": revocation},
        });
        match self
            .records
            .patch(
                &record.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(revoked) => Ok(revoked),
            // Revoked by another request meanwhile: the API server keeps the first revocation.
            Err(kube::Error::Api(status)) if status.code == 422 => {
                match self
                    .record(&record.spec.authority, &record.spec.serial_number)
                    .await?
                {
                    Some(current) if current.spec.revocation.is_some() => Ok(current),
                    _ => Err(kube::Error::Api(status).into()),
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Revokes a serial the ledger has no issuance of: the record lives until the CA's notAfter,
    /// the latest any certificate of the CA can be valid.
    pub async fn revoke_unissued(
        &self,
        authority: &str,
        serial_hex: &str,
        ca_not_after: Time,
        revocation: &RecordedRevocation,
    ) -> Result<CertificateRecord, LedgerError> {
        let record = CertificateRecord {
            metadata: ObjectMeta {
                name: Some(record_name(authority, serial_hex)),
                labels: Some(BTreeMap::from([
                    (AUTHORITY_LABEL.to_string(), authority.to_string()),
                    (REVOKED_LABEL.to_string(), "true".to_string()),
                    (
                        REVOKED_BY_LABEL.to_string(),
                        revocation.requested_by.uid.clone(),
                    ),
                ])),
                ..Default::default()
            },
            spec: CertificateRecordSpec {
                authority: authority.to_string(),
                serial_number: serial_hex.to_string(),
                not_after: ca_not_after,
                issued: None,
                revocation: Some(revocation.clone()),
            },
        };
        match self.records.create(&PostParams::default(), &record).await {
            Ok(created) => Ok(created),
            // Issued (or revoked) in the meantime: revoke what is there.
            Err(error) if super::is_conflict(&error) => {
                match self.record(authority, serial_hex).await? {
                    Some(existing) => self.revoke(&existing, revocation).await,
                    None => Err(error.into()),
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    /// When the last unexpired certificate of `authority` expires; None when none is left.
    pub async fn last_certificate_expiry(
        &self,
        authority: &str,
        now: i64,
    ) -> Result<Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>, LedgerError> {
        Ok(self
            .list(&format!("{AUTHORITY_LABEL}={authority}"))
            .await?
            .into_iter()
            .map(|record| record.spec.not_after)
            .filter(|not_after| not_after.0.as_second() > now)
            .max_by_key(|not_after| not_after.0))
    }

    /// Deletes the records of `authority` whose certificate expired more than
    /// [`EXPIRY_GRACE_SECONDS`] ago; returns how many.
    pub async fn delete_expired(&self, authority: &str, now: i64) -> Result<usize, LedgerError> {
        let mut deleted = 0;
        // Page by page: a CA has as many records as the certificates it issued.
        let mut params = ListParams::default()
            .labels(&format!("{AUTHORITY_LABEL}={authority}"))
            .limit(500);
        loop {
            let page = self.records.list(&params).await?;
            for record in &page.items {
                if record.spec.not_after.0.as_second() + EXPIRY_GRACE_SECONDS >= now {
                    continue;
                }
                match self
                    .records
                    .delete(&record.name_any(), &Default::default())
                    .await
                {
                    Ok(_) => deleted += 1,
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(error) => return Err(error.into()),
                }
            }
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(deleted),
            }
        }
    }
}

/// The revocation to record for a request.
pub fn revocation_for(
    reason: RevocationReason,
    revocation_time: Time,
    requested_by: crate::api::RevocationRequester,
) -> RecordedRevocation {
    RecordedRevocation {
        reason,
        revocation_time,
        accepted_at: MicroTime(jiff::Timestamp::now()),
        requested_by,
    }
}

/// The CRL entries of revoked, unexpired records, sorted by serial, and the serials that could
/// not be used (a record the schema should have refused): reported, never blocking the others.
pub fn revoked_entries(
    records: &[CertificateRecord],
    now: OffsetDateTime,
) -> (Vec<RevokedCertificate>, Vec<String>) {
    let mut entries = Vec::new();
    let mut unusable = Vec::new();
    for record in records {
        let Some(revocation) = &record.spec.revocation else {
            continue;
        };
        // An expired certificate is refused anyway; dropping it keeps the CRL small.
        if record.spec.not_after.0.as_second() <= now.unix_timestamp() {
            continue;
        }
        let Ok(serial) = parse_serial_hex(&record.spec.serial_number) else {
            unusable.push(record.name_any());
            continue;
        };
        let revoked_at =
            OffsetDateTime::from_unix_timestamp(revocation.revocation_time.0.as_second())
                .unwrap_or(now);
        entries.push(RevokedCertificate {
            serial,
            revoked_at,
            reason: revocation.reason.into(),
        });
    }
    entries.sort_by(|a, b| a.serial.cmp(&b.serial));
    entries.dedup_by(|a, b| a.serial == b.serial);
    (entries, unusable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RevocationRequester;

    fn record(serial: &str, not_after: i64, revoked: bool) -> CertificateRecord {
        let time = |s| Time(jiff::Timestamp::from_second(s).unwrap());
        CertificateRecord::new(
            &record_name("a", serial),
            CertificateRecordSpec {
                authority: "a".into(),
                serial_number: serial.into(),
                not_after: time(not_after),
                issued: None,
                revocation: revoked.then(|| RecordedRevocation {
                    reason: RevocationReason::KeyCompromise,
                    revocation_time: time(1_000),
                    accepted_at: MicroTime(jiff::Timestamp::from_second(1_000).unwrap()),
                    requested_by: RevocationRequester {
                        namespace: "n".into(),
                        name: "r".into(),
                        uid: "u".into(),
                    },
                }),
            },
        )
    }

    #[test]
    fn entries_are_the_revoked_unexpired_records_and_bad_ones_never_block() {
        let now = OffsetDateTime::from_unix_timestamp(100_000).unwrap();
        let records = vec![
            record("0b", 200_000, true),
            record("0a", 200_000, true),
            record("0c", 200_000, false),
            // Expired: off the CRL.
            record("0d", 100_000, true),
            // Valid for one more second: still listed.
            record("0e", 100_001, true),
            record("zz-not-hex", 200_000, true),
        ];
        let (entries, unusable) = revoked_entries(&records, now);
        let serials: Vec<Vec<u8>> = entries.iter().map(|e| e.serial.clone()).collect();
        assert_eq!(serials, vec![vec![0x0a], vec![0x0b], vec![0x0e]]);
        assert_eq!(unusable, vec![record_name("a", "zz-not-hex")]);
    }
}
