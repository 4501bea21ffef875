//! A TCP proxy between the controller and what it calls (the API server, KMS, Roles Anywhere),
//! whose behaviour a test switches while traffic flows, on connections already open as well as
//! new ones:
//! - `BlackHole`: nothing moves in either direction until the fault is cleared (a partition),
//!   and new connections wait too; connections open during it are reset when it ends, as a
//!   partition long enough for their peers to give up leaves them dead (so no request abandoned
//!   by its client is delivered late);
//! - `Reset`: every connection is reset (RST), new ones as soon as they are accepted;
//! - `HttpError`: each new request gets a canned HTTP error (plain HTTP upstreams only);
//! - `Delay`: every chunk from the upstream is held back for a while (a slow server);
//! - `Trickle`: the upstream's bytes are passed on a few at a time (slow bodies).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    None,
    BlackHole,
    Reset,
    /// Status, `x-amzn-ErrorType` / `__type`, message.
    HttpError(u16, &'static str, &'static str),
    Delay(Duration),
    Trickle {
        bytes: usize,
        every: Duration,
    },
}

/// How often a paused or slowed connection looks at the fault again.
const POLL: Duration = Duration::from_millis(50);

pub struct FaultProxy {
    pub addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    /// Requests answered with a canned error.
    pub errors_served: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`. Runs on the current runtime.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let fault = Arc::new(Mutex::new(Fault::None));
        let errors_served = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (fault, errors_served) = (fault.clone(), errors_served.clone());
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        tokio::time::sleep(POLL).await;
                        continue;
                    };
                    let (fault, errors_served) = (fault.clone(), errors_served.clone());
                    tokio::spawn(async move {
                        let _ = serve(client, upstream, fault, errors_served).await;
                    });
                }
            }
        });
        Ok(Self {
            addr,
            fault,
            errors_served,
            task,
        })
    }

    /// `scheme://127.0.0.1:<port>`.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        eprintln!("fault proxy {}: {fault:?}", self.addr);
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }
}

fn current(fault: &Mutex<Fault>) -> Fault {
    fault.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

// The deprecation is about a blocking close with a positive linger; zero resets at once.
#[allow(deprecated)]
fn reset(stream: TcpStream) {
    // Linger 0: close sends RST instead of FIN.
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

async fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    errors_served: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let mut partitioned = false;
    loop {
        match current(&fault) {
            Fault::BlackHole => {
                partitioned = true;
                tokio::time::sleep(POLL).await;
            }
            // Accepted during a partition: its client has given up by now.
            _ if partitioned => {
                reset(client);
                return Ok(());
            }
            Fault::Reset => {
                reset(client);
                return Ok(());
            }
            Fault::HttpError(status, error_type, message) => {
                return answer_with_error(client, status, error_type, message, &errors_served)
                    .await;
            }
            Fault::None | Fault::Delay(_) | Fault::Trickle { .. } => break,
        }
    }
    let server = TcpStream::connect(upstream).await?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let dead = Arc::new(tokio::sync::Notify::new());
    let requests = pump(
        client_read,
        server_write,
        fault.clone(),
        false,
        dead.clone(),
    );
    let responses = pump(server_read, client_write, fault, true, dead.clone());
    // Both directions to their ends (a half-closed request still gets its response), unless
    // one direction found the connection dead: then both sockets go at once.
    tokio::select! {
        _ = async { tokio::join!(requests, responses) } => {}
        () = dead.notified() => {}
    }
    Ok(())
}

/// Makes both sockets of a dead connection send RST when they are dropped.
#[allow(deprecated)]
fn mark_dead(
    from: &tokio::net::tcp::OwnedReadHalf,
    to: &tokio::net::tcp::OwnedWriteHalf,
    dead: &tokio::sync::Notify,
) {
    let _ = from.as_ref().set_linger(Some(Duration::ZERO));
    let _ = to.as_ref().set_linger(Some(Duration::ZERO));
    dead.notify_one();
}

/// Copies one direction, applying the fault to each chunk; `from_upstream` chunks may be slowed.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    fault: Arc<Mutex<Fault>>,
    from_upstream: bool,
    dead: Arc<tokio::sync::Notify>,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 16 * 1024];
    let mut partitioned = false;
    loop {
        while current(&fault) == Fault::BlackHole {
            partitioned = true;
            tokio::time::sleep(POLL).await;
        }
        if partitioned {
            mark_dead(&from, &to, &dead);
            return Ok(());
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read?,
            // A read that waits through a partition must notice it too.
            () = wait_for_black_hole(&fault) => {
                partitioned = true;
                continue;
            }
        };
        if read == 0 {
            return to.shutdown().await;
        }
        let mut chunk = &buffer[..read];
        loop {
            match current(&fault) {
                Fault::BlackHole => {
                    partitioned = true;
                    tokio::time::sleep(POLL).await;
                }
                _ if partitioned => {
                    mark_dead(&from, &to, &dead);
                    return Ok(());
                }
                // A canned error needs a fresh request: open connections are cut, so the
                // client's next request comes on a new one.
                Fault::Reset | Fault::HttpError(..) => {
                    let stream = from
                        .reunite(to)
                        .map_err(|e| std::io::Error::other(format!("reuniting the halves: {e}")))?;
                    reset(stream);
                    return Ok(());
                }
                Fault::Delay(delay) if from_upstream => {
                    tokio::time::sleep(delay).await;
                    to.write_all(chunk).await?;
                    break;
                }
                Fault::Trickle { bytes, every } if from_upstream => {
                    let (now, rest) = chunk.split_at(bytes.min(chunk.len()));
                    to.write_all(now).await?;
                    chunk = rest;
                    if chunk.is_empty() {
                        break;
                    }
                    tokio::time::sleep(every).await;
                }
                _ => {
                    to.write_all(chunk).await?;
                    break;
                }
            }
        }
    }
}

async fn wait_for_black_hole(fault: &Mutex<Fault>) {
    while current(fault) != Fault::BlackHole {
        tokio::time::sleep(POLL).await;
    }
}

/// Reads one HTTP request (head and Content-Length body) and answers it with an error.
async fn answer_with_error(
    mut client: TcpStream,
    status: u16,
    error_type: &str,
    message: &str,
    errors_served: &AtomicU64,
) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        let read = client.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buffer[..read]);
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if request.len() > 1 << 20 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while request.len() < head_end + length {
        let read = client.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..read]);
    }
    let body = format!("{{\"__type\":\"{error_type}\",\"message\":\"{message}\"}}");
    let response = format!(
        "HTTP/1.1 {status} Fault\r\ncontent-type: application/json\r\nx-amzn-errortype: {error_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(response.as_bytes()).await?;
    errors_served.fetch_add(1, Ordering::Relaxed);
    client.shutdown().await
}
