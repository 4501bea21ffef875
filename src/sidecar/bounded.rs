//! Plain HTTP/1.1 serving within limits: silent connections wait for their first bytes without
//! buffers, a cap on the connections served in which idle ones give way to new ones
//! ([`crate::connection_slots`]), a deadline for a request's headers (an idle or trickling client
//! is dropped), and a bound on the header buffer. No route reads a request body, so a
//! body is never buffered.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::connection_slots::{ConnectionSlots, MAX_SILENT_CONNECTIONS, first_bytes, marking_busy};

/// Limits of one listener.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Connections served at once (silent ones are not counted); a further one takes the place
    /// of the one idle longest.
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers (the first or the next).
    pub header_read_timeout: Duration,
    /// hyper's read buffer, which bounds a request's headers (8 KiB is hyper's minimum).
    pub max_header_bytes: usize,
}

impl ConnectionLimits {
    /// The credentials endpoint: the pod's own processes, a handful of SDK clients.
    pub const CREDENTIALS: Self = Self {
        max_connections: 256,
        header_read_timeout: Duration::from_secs(10),
        max_header_bytes: 16 * 1024,
    };
    /// Health and metrics on the pod IP: the kubelet's probes and a scraper. Anyone on the pod
    /// network can connect, so idle connections are dropped sooner.
    pub const HEALTH: Self = Self {
        max_connections: 64,
        header_read_timeout: Duration::from_secs(5),
        max_header_bytes: 8 * 1024,
    };
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves; connections still
/// open then are dropped with the process.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = ConnectionSlots::new(limits.max_connections);
    let silent = ConnectionSlots::new(MAX_SILENT_CONNECTIONS);
    let accept_loop = async {
        loop {
            let (stream, peer) = crate::accept::accept_with_backoff(&listener, "sidecar").await;
            let router = router.clone();
            let (slots, silent) = (slots.clone(), silent.clone());
            tokio::spawn(async move {
                if !first_bytes(&silent, &stream, limits.header_read_timeout).await {
                    tracing::debug!(%peer, "connection closed before it sent anything");
                    return;
                }
                let slot = Arc::new(slots.admit().await);
                let service = marking_busy(slot.clone(), router);
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(limits.header_read_timeout)
                    .max_buf_size(limits.max_header_bytes)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::select! {
                    served = served => {
                        if let Err(error) = served {
                            tracing::debug!(%error, %peer, "connection ended with an error");
                        }
                    }
                    () = slot.evicted() => {
                        tracing::debug!(%peer, "idle connection closed for a new one");
                    }
                }
            });
        }
    };
    tokio::select! {
        () = accept_loop => {}
        () = shutdown => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn start(limits: ConnectionLimits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(serve(
            listener,
            router,
            limits,
            std::future::pending::<()>(),
        ));
        address
    }

    async fn get(address: SocketAddr, headers: &str) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        let request = format!("GET / HTTP/1.1\r\nhost: x\r\n{headers}connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer).await;
        answer
    }

    #[tokio::test]
    async fn silent_and_stalled_connections_at_the_cap_give_way_to_a_new_request() {
        let limits = ConnectionLimits {
            max_connections: 2,
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 8 * 1024,
        };
        let address = start(limits).await;
        // Silent connections take no place at all: with two of them open, a request is
        // answered at once (not after the 30 s header timeout).
        let silent: Vec<TcpStream> = futures::future::join_all(
            (0..2).map(|_| async { TcpStream::connect(address).await.unwrap() }),
        )
        .await;
        let answer = tokio::time::timeout(Duration::from_secs(5), get(address, ""))
            .await
            .expect("a request waited behind silent connections");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // Two connections stalled in their headers fill the cap; a request on a third is
        // answered at once, and the connection stalled longest was closed for it.
        let mut stalled: Vec<TcpStream> = Vec::new();
        for _ in 0..2 {
            let mut stream = TcpStream::connect(address).await.unwrap();
            stream.write_all(b"GET / HT").await.unwrap();
            stalled.push(stream);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let answer = tokio::time::timeout(Duration::from_secs(5), get(address, ""))
            .await
            .expect("the request waited behind stalled connections");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let mut buffer = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), stalled[0].read(&mut buffer))
            .await
            .expect("the connection stalled longest was kept open");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        drop(silent);
    }

    #[tokio::test]
    async fn oversized_headers_are_refused() {
        let address = start(ConnectionLimits::HEALTH).await;
        let huge = format!("x-padding: {}\r\n", "a".repeat(64 * 1024));
        let answer = get(address, &huge).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "{answer}"
        );
        assert!(get(address, "").await.starts_with("HTTP/1.1 200"));
    }
}
