//! Bounded sets of open connections in which idle ones give way. A cap alone (a semaphore, with
//! further connections left in the listen backlog) lets anyone who opens more idle connections
//! than the cap starve the real client: the webhook's API server, the sidecar's application,
//! each waiting behind thousands of stalled peers, one header timeout after another.
//!
//! So a connection first waits, silent, until it has bytes to read ([`first_bytes`]): that costs
//! a socket and a small task, no buffer, and up to [`MAX_SILENT_CONNECTIONS`] may wait at once
//! (then the one silent longest is closed). Only then does it take a place among the connections
//! being served (a few hundred, with hyper's and rustls's buffers): a free place, or the place of
//! the connection idle longest (a stalled header, or keep-alive between requests); it waits only
//! while every connection is in the middle of a request. Closing idle peers early would only make
//! them reconnect at once, which costs more than letting them wait out their timeout.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Connections that have sent nothing yet, per listener. Each costs a socket and a few hundred
/// bytes of task, so ten thousand idle peers stay within a few MiB.
pub const MAX_SILENT_CONNECTIONS: usize = 16_384;

/// Waits, holding a place in `silent`, until `stream` has bytes to read (or was closed), at most
/// `timeout`. False: it stayed silent, was closed, or a newer silent connection took its place.
pub async fn first_bytes(
    silent: &Arc<ConnectionSlots>,
    stream: &TcpStream,
    timeout: std::time::Duration,
) -> bool {
    let place = silent.admit().await;
    // A peek of one byte, not `readable()`: readiness may be reported before any byte arrived.
    let mut first = [0u8; 1];
    tokio::select! {
        peeked = tokio::time::timeout(timeout, stream.peek(&mut first)) => {
            matches!(peeked, Ok(Ok(read)) if read > 0)
        }
        () = place.evicted() => false,
    }
}

/// The open connections of one listener.
pub struct ConnectionSlots {
    max: usize,
    open: Mutex<Open>,
    /// A connection closed (or went idle): a waiting admission may look again.
    freed: Notify,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    connections: BTreeMap<u64, Connection>,
}

struct Connection {
    /// Requests being answered.
    busy: usize,
    idle_since: Instant,
    evict: Arc<Notify>,
}

impl ConnectionSlots {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            open: Mutex::new(Open::default()),
            freed: Notify::new(),
        })
    }

    /// A slot for a new connection: a free one, or the one idle longest, whose connection is
    /// told to close ([`Slot::evicted`]). Waits while every connection is busy.
    pub async fn admit(self: &Arc<Self>) -> Slot {
        loop {
            let freed = self.freed.notified();
            if let Some(slot) = self.try_admit() {
                return slot;
            }
            freed.await;
        }
    }

    fn try_admit(self: &Arc<Self>) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.connections.len() >= self.max {
            let longest_idle = open
                .connections
                .iter()
                .filter(|(_, connection)| connection.busy == 0)
                .min_by_key(|(_, connection)| connection.idle_since)
                .map(|(id, _)| *id)?;
            if let Some(evicted) = open.connections.remove(&longest_idle) {
                evicted.evict.notify_one();
            }
        }
        let id = open.next_id;
        open.next_id += 1;
        let evict = Arc::new(Notify::new());
        open.connections.insert(
            id,
            Connection {
                busy: 0,
                idle_since: Instant::now(),
                evict: evict.clone(),
            },
        );
        Some(Slot {
            slots: self.clone(),
            id,
            evict,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .connections
            .len()
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut Connection)) {
        if let Some(connection) = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .connections
            .get_mut(&id)
        {
            change(connection);
        }
    }
}

/// One connection's place; dropping it frees the place.
pub struct Slot {
    slots: Arc<ConnectionSlots>,
    id: u64,
    evict: Arc<Notify>,
}

impl Slot {
    /// Resolves when a newer connection took this one's place: close it.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// Marks a request in progress until the guard drops; a busy connection is never evicted.
    pub fn busy(&self) -> Busy {
        self.slots
            .update(self.id, |connection| connection.busy += 1);
        Busy {
            slots: self.slots.clone(),
            id: self.id,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .connections
            .remove(&self.id);
        self.slots.freed.notify_waiters();
    }
}

/// A request in progress on a connection.
pub struct Busy {
    slots: Arc<ConnectionSlots>,
    id: u64,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.slots.update(self.id, |connection| {
            connection.busy = connection.busy.saturating_sub(1);
            connection.idle_since = Instant::now();
        });
        self.slots.freed.notify_waiters();
    }
}

/// `router` as a connection's service, marking `slot` busy while each request is answered.
pub fn marking_busy(
    slot: Arc<Slot>,
    router: axum::Router,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send,
> {
    hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let busy = slot.busy();
        let mut router = router.clone();
        async move {
            let response = tower::Service::call(&mut router, request).await;
            drop(busy);
            response
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_takes_the_place_of_the_one_idle_longest() {
        let slots = ConnectionSlots::new(2);
        let first = slots.admit().await;
        tokio::time::advance(Duration::from_secs(1)).await;
        let second = slots.admit().await;
        let third = slots.admit().await;
        assert_eq!(slots.open(), 2);
        tokio::time::timeout(Duration::from_millis(1), first.evicted())
            .await
            .expect("the oldest idle connection is told to go");
        assert!(
            tokio::time::timeout(Duration::from_millis(1), second.evicted())
                .await
                .is_err(),
            "the younger one stays"
        );
        drop((first, second, third));
        assert_eq!(slots.open(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn busy_connections_are_never_evicted_and_admission_waits_for_one_to_finish() {
        let slots = ConnectionSlots::new(1);
        let only = slots.admit().await;
        let busy = only.busy();
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.admit().await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished(), "admitted beside a busy connection");
        drop(busy);
        let admitted = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("admitted once the request finished")
            .expect("task");
        tokio::time::timeout(Duration::from_millis(1), only.evicted())
            .await
            .expect("the now idle connection gave way");
        drop(admitted);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_was_busy_counts_as_idle_from_its_last_request() {
        let slots = ConnectionSlots::new(2);
        let old = slots.admit().await;
        tokio::time::advance(Duration::from_secs(1)).await;
        let young = slots.admit().await;
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(old.busy());
        let _new = slots.admit().await;
        tokio::time::timeout(Duration::from_millis(1), young.evicted())
            .await
            .expect("the connection idle longest is the younger one now");
    }
}
