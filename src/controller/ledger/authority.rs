//! CertificateAuthorityRecords: one per CA key. Every write carries the resourceVersion it was
//! computed from, so a writer that read an older state (a paused leader, a second replica) loses.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{ListParams, ObjectMeta, PostParams};

use super::{Ledger, LedgerError, is_conflict};
use crate::api::{
    CertificateAuthorityRecord, CertificateAuthorityRecordSpec, CrlImportRecord, EstablishedIssuer,
    PublishedCrlRecord,
};

/// Attempts of a read-modify-write that lost to a concurrent writer before giving up.
const MAX_MERGE_ATTEMPTS: usize = 5;

/// A CRL number now reserved for one signature, with the record that reserved it.
pub struct CrlNumberReserved {
    pub number: i64,
    pub record: CertificateAuthorityRecord,
}

/// Whether this CA may import its CRL under a (trust anchor, CRL name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// No other CA imports under that name on that trust anchor.
    Free,
    /// Another CA does; the name is refused to this one.
    TakenBy { authority: String },
}

impl Ledger {
    /// The record of a CA, if any.
    pub async fn authority(
        &self,
        authority: &str,
    ) -> Result<Option<CertificateAuthorityRecord>, LedgerError> {
        Ok(self.authorities.get_opt(authority).await?)
    }

    /// The record of a CA, created the first time and with `issuer` listed as having
    /// established it. `first_crl_number` continues the numbering of a CA that published CRLs
    /// before the ledger existed.
    pub async fn ensure_authority(
        &self,
        authority: &str,
        ca_fingerprint: &str,
        ca_not_after: Time,
        issuer: (&str, &str),
        first_crl_number: i64,
    ) -> Result<CertificateAuthorityRecord, LedgerError> {
        let (namespace, name) = issuer;
        let established = || EstablishedIssuer {
            namespace: namespace.to_string(),
            name: name.to_string(),
            since: Time(jiff::Timestamp::now()),
        };
        for _ in 0..MAX_MERGE_ATTEMPTS {
            let Some(mut record) = self.authority(authority).await? else {
                let record = CertificateAuthorityRecord {
                    metadata: ObjectMeta {
                        name: Some(authority.to_string()),
                        ..Default::default()
                    },
                    spec: CertificateAuthorityRecordSpec {
                        authority: authority.to_string(),
                        ca_fingerprint_sha256: ca_fingerprint.to_string(),
                        ca_not_after: ca_not_after.clone(),
                        crl_number: first_crl_number.max(0),
                        published: None,
                        imports: Vec::new(),
                        issuers: vec![established()],
                    },
                };
                match self
                    .authorities
                    .create(&PostParams::default(), &record)
                    .await
                {
                    Ok(created) => return Ok(created),
                    Err(error) if is_conflict(&error) => continue,
                    Err(error) => return Err(error.into()),
                }
            };
            let listed = record
                .spec
                .issuers
                .iter()
                .any(|i| i.namespace == namespace && i.name == name);
            let current = record.spec.ca_fingerprint_sha256 == ca_fingerprint
                && record.spec.ca_not_after == ca_not_after;
            if listed && current {
                return Ok(record);
            }
            if !listed {
                record.spec.issuers.push(established());
            }
            // A renewed CA certificate for the same key: the later expiry bounds its certificates.
            if record.spec.ca_not_after.0 < ca_not_after.0 {
                record.spec.ca_not_after = ca_not_after.clone();
            }
            record.spec.ca_fingerprint_sha256 = ca_fingerprint.to_string();
            match self.replace(&record).await {
                Ok(replaced) => return Ok(replaced),
                Err(LedgerError::Conflict(_)) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(LedgerError::Conflict(authority.to_string()))
    }

    /// Writes `record` only if nobody changed it since it was read.
    async fn replace(
        &self,
        record: &CertificateAuthorityRecord,
    ) -> Result<CertificateAuthorityRecord, LedgerError> {
        match self
            .authorities
            .replace(&record.name_any(), &PostParams::default(), record)
            .await
        {
            Ok(replaced) => Ok(replaced),
            Err(error) if is_conflict(&error) => Err(LedgerError::Conflict(record.name_any())),
            Err(error) => Err(error.into()),
        }
    }

    /// Reserves the next CRL number on the record as read: fails with
    /// [`LedgerError::Conflict`] when another writer got there first.
    pub async fn reserve_crl_number(
        &self,
        record: &CertificateAuthorityRecord,
    ) -> Result<CrlNumberReserved, LedgerError> {
        let mut next = record.clone();
        next.spec.crl_number = record.spec.crl_number.checked_add(1).ok_or_else(|| {
            LedgerError::Conflict(format!("{}: CRL numbers exhausted", record.name_any()))
        })?;
        let record = self.replace(&next).await?;
        Ok(CrlNumberReserved {
            number: record.spec.crl_number,
            record,
        })
    }

    /// Records the CRL signed under a reservation. Fails with [`LedgerError::Conflict`] when
    /// the record changed since the reservation (a newer CRL may exist): nothing is published then.
    pub async fn record_published(
        &self,
        reserved: &CrlNumberReserved,
        published: PublishedCrlRecord,
    ) -> Result<CertificateAuthorityRecord, LedgerError> {
        let mut next = reserved.record.clone();
        next.spec.published = Some(published);
        self.replace(&next).await
    }

    /// Applies `change` to the CA record and writes it, read again and retried when another
    /// writer got there first. `change` returns whether it changed anything; None: no record.
    async fn merge(
        &self,
        authority: &str,
        change: impl Fn(&mut CertificateAuthorityRecordSpec) -> bool,
    ) -> Result<Option<CertificateAuthorityRecord>, LedgerError> {
        for _ in 0..MAX_MERGE_ATTEMPTS {
            let Some(mut record) = self.authority(authority).await? else {
                return Ok(None);
            };
            if !change(&mut record.spec) {
                return Ok(Some(record));
            }
            match self.replace(&record).await {
                Ok(replaced) => return Ok(Some(replaced)),
                Err(LedgerError::Conflict(_)) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(LedgerError::Conflict(authority.to_string()))
    }

    /// Records (or refreshes) where the CRL is imported, or a claim before the first import;
    /// merged with concurrent writes.
    pub async fn record_import(
        &self,
        authority: &str,
        import: CrlImportRecord,
    ) -> Result<CertificateAuthorityRecord, LedgerError> {
        let merged = self
            .merge(authority, |spec| {
                let mut import = import.clone();
                if let Some(existing) = spec.imports.iter().find(|existing| {
                    existing.trust_anchor_arn == import.trust_anchor_arn
                        && existing.crl_name == import.crl_name
                }) {
                    // The claim keeps its first date: it decides who owns the name.
                    import.claimed_at = existing.claimed_at.clone();
                    // A writer that read an older state (a paused leader) never lowers the
                    // number; Roles Anywhere's copy is then checked again, so an older CRL it
                    // pushed is found.
                    if existing.number > import.number {
                        import.number = existing.number;
                        import.crl_id = existing.crl_id.clone().or(import.crl_id);
                        import.verified_at = None;
                    }
                }
                spec.imports.retain(|existing| {
                    !(existing.trust_anchor_arn == import.trust_anchor_arn
                        && existing.crl_name == import.crl_name)
                });
                spec.imports.push(import);
                true
            })
            .await?;
        merged.ok_or_else(|| LedgerError::Conflict(authority.to_string()))
    }

    /// Withdraws this CA's claim on (trust anchor, CRL name), after losing it to another CA.
    pub async fn forget_import(
        &self,
        authority: &str,
        trust_anchor_arn: &str,
        crl_name: &str,
    ) -> Result<(), LedgerError> {
        self.merge(authority, |spec| {
            let before = spec.imports.len();
            spec.imports.retain(|existing| {
                !(existing.trust_anchor_arn == trust_anchor_arn && existing.crl_name == crl_name)
            });
            spec.imports.len() != before
        })
        .await?;
        Ok(())
    }

    /// Every CA record, for questions across CAs (who owns a CRL name, which CA an Issuer
    /// established). There is one per CA, so this stays small.
    pub async fn authorities(&self) -> Result<Vec<CertificateAuthorityRecord>, LedgerError> {
        Ok(self.authorities.list(&ListParams::default()).await?.items)
    }

    /// Whether `der` is the CRL some CA's record says it published last.
    pub async fn is_latest_published(&self, der: &[u8]) -> Result<bool, LedgerError> {
        let sha256 = crate::pki::sha256_hex(der);
        Ok(self.authorities().await?.iter().any(|record| {
            record
                .spec
                .published
                .as_ref()
                .is_some_and(|published| published.sha256 == sha256)
        }))
    }

    /// Whether `authority` may import under (trust anchor, CRL name): the first CA to record an
    /// import there owns it.
    pub async fn claim(
        &self,
        authority: &str,
        trust_anchor_arn: &str,
        crl_name: &str,
    ) -> Result<ClaimOutcome, LedgerError> {
        Ok(claim_outcome(
            &self.authorities().await?,
            authority,
            trust_anchor_arn,
            crl_name,
        ))
    }

    /// The CAs the Issuer `namespace/name` has established, latest first.
    pub async fn established_by(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<CertificateAuthorityRecord>, LedgerError> {
        let mut established: Vec<(jiff::Timestamp, CertificateAuthorityRecord)> = self
            .authorities()
            .await?
            .into_iter()
            .filter_map(|record| {
                let since = record
                    .spec
                    .issuers
                    .iter()
                    .find(|i| i.namespace == namespace && i.name == name)?
                    .since
                    .0;
                Some((since, record))
            })
            .collect();
        established.sort_by_key(|(since, _)| std::cmp::Reverse(*since));
        Ok(established.into_iter().map(|(_, record)| record).collect())
    }
}

/// The owner of (trust anchor, CRL name) among `records`: the CA that recorded the earliest
/// claim there (ties: the lower authority id), so two claimants agree on one winner.
pub fn claim_outcome(
    records: &[CertificateAuthorityRecord],
    authority: &str,
    trust_anchor_arn: &str,
    crl_name: &str,
) -> ClaimOutcome {
    let owner = records
        .iter()
        .filter_map(|record| {
            let import = record
                .spec
                .imports
                .iter()
                .find(|i| i.trust_anchor_arn == trust_anchor_arn && i.crl_name == crl_name)?;
            Some((import.claimed_at.0, record.spec.authority.clone()))
        })
        .min();
    match owner {
        Some((_, owner)) if owner != authority => ClaimOutcome::TakenBy { authority: owner },
        _ => ClaimOutcome::Free,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(authority: &str, imports: &[(&str, &str, i64)]) -> CertificateAuthorityRecord {
        let time = |s| Time(jiff::Timestamp::from_second(s).unwrap());
        CertificateAuthorityRecord::new(
            authority,
            CertificateAuthorityRecordSpec {
                authority: authority.into(),
                ca_fingerprint_sha256: String::new(),
                ca_not_after: time(10_000_000),
                crl_number: 1,
                published: None,
                imports: imports
                    .iter()
                    .map(|(anchor, name, at)| CrlImportRecord {
                        trust_anchor_arn: anchor.to_string(),
                        crl_name: name.to_string(),
                        claimed_at: time(*at),
                        crl_id: Some("id".into()),
                        number: 1,
                        pem_sha256: None,
                        imported_at: None,
                        verified_at: None,
                    })
                    .collect(),
                issuers: Vec::new(),
            },
        )
    }

    #[test]
    fn the_first_importer_owns_a_crl_name() {
        let records = vec![
            record("aaaa", &[("anchor-1", "crl", 200)]),
            record("bbbb", &[("anchor-1", "crl", 100), ("anchor-2", "x", 5)]),
        ];
        assert_eq!(
            claim_outcome(&records, "aaaa", "anchor-1", "crl"),
            ClaimOutcome::TakenBy {
                authority: "bbbb".into()
            }
        );
        assert_eq!(
            claim_outcome(&records, "bbbb", "anchor-1", "crl"),
            ClaimOutcome::Free
        );
        assert_eq!(
            claim_outcome(&records, "aaaa", "anchor-2", "other"),
            ClaimOutcome::Free
        );
        // The same name on another trust anchor is another CRL.
        assert_eq!(
            claim_outcome(&records, "aaaa", "anchor-3", "crl"),
            ClaimOutcome::Free
        );
    }
}
