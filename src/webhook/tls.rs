//! HTTPS for the webhook: the API server only calls webhooks over TLS. The certificate can be
//! swapped while serving, so a renewed serving certificate takes effect without a restart.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::connection_slots::{ConnectionSlots, MAX_SILENT_CONNECTIONS, first_bytes, marking_busy};
use crate::pki::pem::{blocks_labelled, parse_pem};

/// Bounds on the webhook's connections. The API server is its only client and keeps a few
/// connections open; a peer that connects and stalls, or opens thousands, is someone else and
/// must not starve it.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// From accept to a finished TLS handshake.
    pub handshake_timeout: Duration,
    /// To read a request's headers, from the connection's start or the previous response (an
    /// idle keep-alive connection is closed after it).
    pub header_read_timeout: Duration,
    /// Connections served at once (those that have sent nothing yet are not counted); a
    /// further one takes the place of the one idle longest, and waits only while every
    /// connection is answering a request.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            max_connections: 256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("serving certificate PEM: {0}")]
    Pem(String),
    #[error("serving key: {0}")]
    Key(rustls::Error),
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
    #[error("binding {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// The certificate the server presents, replaceable at any time.
#[derive(Debug)]
pub struct ReloadableCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

fn certified_key(certificate_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = blocks_labelled(certificate_pem, "CERTIFICATE")
        .map_err(|e| TlsError::Pem(e.to_string()))?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::Pem("no CERTIFICATE block".into()));
    }
    let key = parse_pem(key_pem)
        .map_err(|e| TlsError::Pem(e.to_string()))?
        .into_iter()
        .find_map(|block| match block.label.as_str() {
            "PRIVATE KEY" => Some(PrivateKeyDer::Pkcs8(block.der.into())),
            "EC PRIVATE KEY" => Some(PrivateKeyDer::Sec1(block.der.into())),
            "RSA PRIVATE KEY" => Some(PrivateKeyDer::Pkcs1(block.der.into())),
            _ => None,
        })
        .ok_or_else(|| TlsError::Pem("no private key block".into()))?;
    let signing_key = aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(TlsError::Key)?;
    Ok(Arc::new(CertifiedKey::new(chain, signing_key)))
}

impl ReloadableCertificate {
    pub fn new(certificate_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        Ok(Self {
            current: RwLock::new(certified_key(certificate_pem, key_pem)?),
        })
    }

    /// Presents `certificate_pem` to every new connection from now on.
    pub fn replace(&self, certificate_pem: &str, key_pem: &str) -> Result<(), TlsError> {
        let key = certified_key(certificate_pem, key_pem)?;
        if let Ok(mut current) = self.current.write() {
            *current = key;
        }
        Ok(())
    }
}

impl ResolvesServerCert for ReloadableCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|key| key.clone())
    }
}

/// Serves `router` over TLS on `address` in the background, within `limits`; returns the bound
/// address.
pub async fn serve(
    address: SocketAddr,
    certificate: Arc<ReloadableCertificate>,
    router: axum::Router,
    limits: ServeLimits,
) -> Result<SocketAddr, TlsError> {
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| TlsError::Bind { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| TlsError::Bind { address, source })?;
    let slots = ConnectionSlots::new(limits.max_connections);
    let silent = ConnectionSlots::new(MAX_SILENT_CONNECTIONS);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = crate::accept::accept_with_backoff(&listener, "webhook").await;
            let acceptor = acceptor.clone();
            let router = router.clone();
            let (slots, silent) = (slots.clone(), silent.clone());
            tokio::spawn(async move {
                if !first_bytes(&silent, &stream, limits.handshake_timeout).await {
                    tracing::debug!(%peer, "webhook connection closed before its handshake began");
                    return;
                }
                let slot = Arc::new(slots.admit().await);
                let serve = async {
                    let stream = match tokio::time::timeout(
                        limits.handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            tracing::debug!(%error, %peer, "webhook TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "webhook TLS handshake timed out");
                            return;
                        }
                    };
                    if let Err(error) = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(limits.header_read_timeout)
                        .serve_connection(
                            hyper_util::rt::TokioIo::new(stream),
                            marking_busy(slot.clone(), router),
                        )
                        .await
                    {
                        tracing::debug!(%error, %peer, "webhook connection ended with an error");
                    }
                };
                tokio::select! {
                    () = serve => {}
                    () = slot.evicted() => {
                        tracing::debug!(%peer, "idle webhook connection closed for a new one");
                    }
                }
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Peers that connect and never say hello take no place among the served connections: a
    /// real client's handshake completes at once beside them, at a cap of one. They are closed
    /// when the handshake time is up.
    #[tokio::test]
    async fn silent_peers_are_closed_after_the_handshake_timeout_and_take_no_place() {
        let key = rcgen::KeyPair::generate().expect("key");
        let certificate = rcgen::CertificateParams::new(vec!["webhook.test".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let reloadable = Arc::new(
            ReloadableCertificate::new(&certificate.pem(), &key.serialize_pem()).expect("tls"),
        );
        let limits = ServeLimits {
            handshake_timeout: Duration::from_millis(1_500),
            header_read_timeout: Duration::from_secs(1),
            max_connections: 1,
        };
        let bound = serve(
            "127.0.0.1:0".parse().expect("address"),
            reloadable,
            axum::Router::new(),
            limits,
        )
        .await
        .expect("serve");
        let started = tokio::time::Instant::now();
        let mut silent = Vec::new();
        for _ in 0..3 {
            silent.push(
                tokio::net::TcpStream::connect(bound)
                    .await
                    .expect("connect"),
            );
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certificate.der().clone()).expect("root");
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let stream = tokio::net::TcpStream::connect(bound)
            .await
            .expect("connect");
        let name = rustls::pki_types::ServerName::try_from("webhook.test").expect("name");
        tokio::time::timeout(Duration::from_secs(1), connector.connect(name, stream))
            .await
            .expect("the handshake waited behind silent peers")
            .expect("handshake");
        let mut buffer = [0u8; 16];
        for mut peer in silent {
            let read = tokio::time::timeout(Duration::from_secs(5), peer.read(&mut buffer))
                .await
                .expect("a silent peer was never closed");
            assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        }
        assert!(started.elapsed() >= limits.handshake_timeout);
    }
}
