//! Accepting connections without spinning: a failed accept (out of file descriptors, say) is
//! retried after a pause that doubles up to a second, so a persistent failure is not a busy loop.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// The next connection of `listener`; `server` names it in the log of a failed accept.
pub async fn accept_with_backoff(listener: &TcpListener, server: &str) -> (TcpStream, SocketAddr) {
    let mut pause = FIRST_PAUSE;
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(error) => {
                tracing::warn!(%error, server, retry_in = ?pause, "accept failed");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    }
}
