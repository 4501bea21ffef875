//! The controller's idea of the current time, for the decisions that depend on it: when a
//! certificate is due for renewal, when a CRL is re-signed, when a revoked certificate has
//! expired and its Revocation may go. In production it is the system clock. The tests move it
//! forward instead of waiting (`IAMRA_CLOCK_OFFSET_FILE`, dev-tools builds only), and every
//! move revisits the objects whose decisions depend on it. Times that record when something
//! happened (issuedAt, event times, the Lease) always use the system clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use futures::Stream;
use time::OffsetDateTime;
use tokio::sync::watch;

/// What the tests write, in seconds, to move the controller's clock forward.
pub const CLOCK_OFFSET_FILE_ENV: &str = "IAMRA_CLOCK_OFFSET_FILE";

#[derive(Clone, Debug)]
pub struct Clock {
    offset_seconds: Arc<AtomicI64>,
    moved: watch::Receiver<i64>,
    /// The system clock's own sender, kept so that [`Clock::moves`] waits forever instead of
    /// ending.
    _never_moved: Option<Arc<watch::Sender<i64>>>,
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The system clock, never moved.
    pub fn system() -> Self {
        let (sender, moved) = watch::channel(0);
        Self {
            offset_seconds: Arc::new(AtomicI64::new(0)),
            moved,
            _never_moved: Some(Arc::new(sender)),
        }
    }

    /// A clock that tests can move forward, with the sender that moves it.
    pub fn movable() -> (Self, ClockHand) {
        let (sender, moved) = watch::channel(0);
        let offset_seconds = Arc::new(AtomicI64::new(0));
        (
            Self {
                offset_seconds: offset_seconds.clone(),
                moved,
                _never_moved: None,
            },
            ClockHand {
                offset_seconds,
                sender,
            },
        )
    }

    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
            + time::Duration::seconds(self.offset_seconds.load(Ordering::Relaxed))
    }

    pub fn unix_seconds(&self) -> i64 {
        self.now().unix_timestamp()
    }

    pub fn timestamp(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
            + jiff::SignedDuration::from_secs(self.offset_seconds.load(Ordering::Relaxed))
    }

    /// Yields once every time the clock is moved; never for the system clock.
    pub fn moves(&self) -> impl Stream<Item = ()> + Send + 'static {
        let mut moved = self.moved.clone();
        moved.mark_unchanged();
        futures::stream::unfold(moved, |mut moved| async move {
            moved.changed().await.ok()?;
            Some(((), moved))
        })
    }
}

/// Moves a [`Clock`] made by [`Clock::movable`].
#[derive(Debug)]
pub struct ClockHand {
    offset_seconds: Arc<AtomicI64>,
    sender: watch::Sender<i64>,
}

impl ClockHand {
    /// Sets the clock `seconds` ahead of the system clock (never back: time a decision was
    /// taken on does not return).
    pub fn set_ahead(&self, seconds: i64) {
        let previous = self.offset_seconds.fetch_max(seconds, Ordering::Relaxed);
        if seconds > previous {
            self.sender.send_replace(seconds);
        }
    }

    /// Follows `path`: its content, a number of seconds, is how far ahead the clock runs.
    /// Checked every 100 ms until the process ends.
    pub fn follow_file(self, path: std::path::PathBuf) {
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(std::time::Duration::from_millis(100));
            loop {
                interval.tick().await;
                let Ok(text) = tokio::fs::read_to_string(&path).await else {
                    continue;
                };
                match text.trim().parse::<i64>() {
                    Ok(seconds) => self.set_ahead(seconds),
                    Err(_) if text.trim().is_empty() => {}
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "clock offset file is not a number of seconds");
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_moved_clock_runs_ahead_and_says_so_once_per_move() {
        let (clock, hand) = Clock::movable();
        let before = clock.unix_seconds();
        let mut moves = Box::pin(clock.moves());
        hand.set_ahead(120);
        assert!(moves.next().await.is_some());
        assert!(clock.unix_seconds() >= before + 120);
        // Never back.
        hand.set_ahead(10);
        assert!(clock.unix_seconds() >= before + 120);
        let again = tokio::time::timeout(std::time::Duration::from_millis(50), moves.next()).await;
        assert!(again.is_err(), "moving back is no move");
    }

    #[tokio::test]
    async fn the_system_clock_never_moves_and_its_moves_never_end() {
        let clock = Clock::system();
        let mut moves = Box::pin(clock.moves());
        // Pending, not ended: a controller's trigger streams stay open.
        let moved = tokio::time::timeout(std::time::Duration::from_millis(50), moves.next()).await;
        assert!(moved.is_err(), "{moved:?}");
    }
}
