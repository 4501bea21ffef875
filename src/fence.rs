//! Writes only while leading. A replica that was paused (SIGSTOP, a frozen VM, a long GC-like
//! stall of the node) wakes up with reconciles in flight; its leader-election loop notices the
//! lapsed Lease only when it next runs, and any task that runs first could still write after
//! another replica took over. So every write the reconcilers make (Kubernetes API writes through
//! [`fenced_client`], CRL imports and IAM policy writes through [`LeadershipFence::check`]) first
//! checks, on this replica's monotonic clock, that the renew deadline of the last successful
//! renewal has not passed. The standby waits the longer lease duration, on its own clock, before
//! it takes over, so a write that passes the check was sent before the other replica could lead.
//!
//! What is left: a write that passed the check and was frozen before its bytes left the process
//! (opening a connection can take milliseconds on a loaded node) lands late; Kubernetes has no
//! fencing token that would refuse it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use kube::client::Body;
use tokio::time::Instant;

/// Why a write was not sent.
#[derive(Debug, thiserror::Error)]
#[error("not sent: this replica is not the leader (its leader Lease lapsed or was never held)")]
pub struct LeadershipLapsed;

/// Until when this replica may write.
#[derive(Debug)]
pub struct LeadershipFence {
    /// None: no leader election, every write may go. Some(None): not leading.
    leading_until: Option<Mutex<Option<Instant>>>,
}

impl LeadershipFence {
    /// A single replica without leader election: never fenced.
    pub fn unfenced() -> Self {
        Self {
            leading_until: None,
        }
    }

    /// A candidate for the Lease: fenced until [`LeadershipFence::lead_until`].
    pub fn candidate() -> Self {
        Self {
            leading_until: Some(Mutex::new(None)),
        }
    }

    /// Writes may go until `deadline` (the renew deadline counted from the start of the last
    /// successful acquire or renew).
    pub fn lead_until(&self, deadline: Instant) {
        self.set(Some(deadline));
    }

    /// Leadership is over: no more writes.
    pub fn lapse(&self) {
        self.set(None);
    }

    fn set(&self, deadline: Option<Instant>) {
        if let Some(until) = &self.leading_until
            && let Ok(mut until) = until.lock()
        {
            *until = deadline;
        }
    }

    pub fn is_leading(&self) -> bool {
        match &self.leading_until {
            None => true,
            Some(until) => until
                .lock()
                .ok()
                .and_then(|until| *until)
                .is_some_and(|deadline| Instant::now() < deadline),
        }
    }

    pub fn check(&self) -> Result<(), LeadershipLapsed> {
        if self.is_leading() {
            Ok(())
        } else {
            tracing::warn!("a write was not sent: this replica's leadership has lapsed");
            Err(LeadershipLapsed)
        }
    }
}

/// Requests that only read.
fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `client` with every write checked against `fence` before it is sent; reads (and watches) pass.
pub fn fenced_client(client: kube::Client, fence: std::sync::Arc<LeadershipFence>) -> kube::Client {
    let namespace = client.default_namespace().to_owned();
    kube::Client::new(FencedService { client, fence }, namespace)
}

#[derive(Clone)]
struct FencedService {
    client: kube::Client,
    fence: std::sync::Arc<LeadershipFence>,
}

impl tower::Service<Request<Body>> for FencedService {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, kube::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let client = self.client.clone();
        let read = is_read(request.method());
        let allowed = read || self.fence.check().is_ok();
        if allowed && !read {
            // When each write was let through, for tests of a paused leader.
            tracing::trace!(method = %request.method(), path = request.uri().path(), "write passed the leadership fence");
        }
        Box::pin(async move {
            if !allowed {
                return Err(kube::Error::Service(Box::new(LeadershipLapsed)));
            }
            client.send(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_candidate_writes_only_until_its_renew_deadline() {
        let fence = LeadershipFence::candidate();
        assert!(!fence.is_leading(), "a candidate that never led");
        let renewed = Instant::now();
        fence.lead_until(renewed + Duration::from_secs(10));
        assert!(fence.is_leading());
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(fence.check().is_ok());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(fence.check().is_err(), "the deadline itself is past");
        fence.lead_until(Instant::now() + Duration::from_secs(10));
        assert!(fence.is_leading(), "renewed");
        fence.lapse();
        assert!(!fence.is_leading(), "lost");
    }

    #[test]
    fn without_leader_election_every_write_goes() {
        let fence = LeadershipFence::unfenced();
        fence.lapse();
        assert!(fence.is_leading());
    }

    #[test]
    fn reads_are_never_fenced() {
        assert!(is_read(&Method::GET));
        for write in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(!is_read(&write), "{write}");
        }
    }
}
