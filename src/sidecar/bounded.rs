//! Plain HTTP/1.1 serving within limits: a connection cap in which idle connections give way to
//! new ones ([`ConnectionSlots`]), a deadline for a request's headers (an idle or trickling
//! client is dropped), and a bound on the header buffer. No route reads a request body, so a
//! body is never buffered.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::connection_slots::{ConnectionSlots, marking_busy};

/// Limits of one listener.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Connections open at once; a further one takes the place of the one idle longest.
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
    let accept_loop = async {
        loop {
            let (stream, peer) = crate::accept::accept_with_backoff(&listener, "sidecar").await;
            let slot = Arc::new(slots.admit().await);
            let service = marking_busy(slot.clone(), router.clone());
            tokio::spawn(async move {
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
    async fn idle_connections_at_the_cap_give_way_to_a_new_request() {
        let limits = ConnectionLimits {
            max_connections: 2,
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 8 * 1024,
        };
        let address = start(limits).await;
        // Two idle connections fill the cap; a request on a third is answered at once (not after
        // the 30 s header timeout), and the connection idle longest was closed for it.
        let mut idle: Vec<TcpStream> = Vec::new();
        for _ in 0..2 {
            idle.push(TcpStream::connect(address).await.unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let answer = tokio::time::timeout(Duration::from_secs(5), get(address, ""))
            .await
            .expect("the request waited behind idle connections");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let mut buffer = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), idle[0].read(&mut buffer))
            .await
            .expect("the oldest idle connection was kept open");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
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
