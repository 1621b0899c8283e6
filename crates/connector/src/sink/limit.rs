//! A concurrency limit that adapts to Cassandra (AIMD): it grows by one slot per window of
//! successful writes and halves when Cassandra signals overload (timeouts, `Overloaded`,
//! `Unavailable`). Halving is throttled so one burst of failures from the same event counts
//! once instead of collapsing the limit to its floor.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Decreases closer together than this count as one overload event.
const DECREASE_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Debug)]
struct LimitState {
    limit: f64,
    in_flight: usize,
    last_decrease: Option<Instant>,
}

/// The shared limit of concurrent write requests.
#[derive(Debug)]
pub struct AdaptiveLimit {
    state: Mutex<LimitState>,
    released: Notify,
    min: usize,
    max: usize,
}

/// One admitted request. Report how it went with [`Permit::success`] or
/// [`Permit::overloaded`]; dropping it otherwise frees the slot without changing the limit.
#[derive(Debug)]
pub struct Permit {
    owner: Arc<AdaptiveLimit>,
}

impl AdaptiveLimit {
    /// Starts at a quarter of `max` (at least `min`) and moves within `[min, max]`.
    pub fn new(min: usize, max: usize) -> Arc<Self> {
        let min = min.max(1);
        let max = max.max(min);
        Arc::new(Self {
            state: Mutex::new(LimitState {
                limit: (max / 4).max(min) as f64,
                in_flight: 0,
                last_decrease: None,
            }),
            released: Notify::new(),
            min,
            max,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimitState> {
        // The state stays consistent even if a holder panicked: every update is one assignment.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn limit(&self) -> usize {
        self.lock().limit as usize
    }

    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    fn try_acquire(&self) -> bool {
        let mut state = self.lock();
        if state.in_flight < (state.limit as usize).max(1) {
            state.in_flight += 1;
            true
        } else {
            false
        }
    }

    /// Waits for a free slot.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.try_acquire() {
                return Permit {
                    owner: self.clone(),
                };
            }
            released.await;
        }
    }

    fn release(&self) {
        {
            let mut state = self.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
        }
        // Wake one waiter per freed slot: waking all of them (hundreds of pending writes)
        // costs more CPU than the writes. A waiter dropped after being woken passes the
        // wake-up on (tokio's `Notify` guarantees it), so no slot is left unclaimed.
        self.released.notify_one();
    }

    fn grow(&self) {
        let grew = {
            let mut state = self.lock();
            let before = state.limit as usize;
            if state.limit < self.max as f64 {
                state.limit = (state.limit + 1.0 / state.limit).min(self.max as f64);
            }
            state.limit as usize > before
        };
        if grew {
            // The new slot has no release to announce it.
            self.released.notify_one();
        }
    }

    fn shrink(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        if state
            .last_decrease
            .is_some_and(|t| now.duration_since(t) < DECREASE_INTERVAL)
        {
            return;
        }
        state.last_decrease = Some(now);
        state.limit = (state.limit / 2.0).max(self.min as f64);
    }
}

impl Permit {
    pub fn success(self) {
        self.owner.grow();
    }

    pub fn overloaded(self) {
        self.owner.shrink();
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.owner.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admits_up_to_the_limit_then_waits() {
        let limit = AdaptiveLimit::new(1, 8);
        assert_eq!(limit.limit(), 2);
        let a = limit.acquire().await;
        let _b = limit.acquire().await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), limit.acquire()).await;
        assert!(waiting.is_err(), "a third request must wait");
        drop(a);
        let third = tokio::time::timeout(Duration::from_millis(500), limit.acquire()).await;
        assert!(third.is_ok(), "a released slot admits the waiter");
    }

    #[tokio::test]
    async fn grows_while_healthy_and_halves_on_overload() {
        let limit = AdaptiveLimit::new(2, 64);
        assert_eq!(limit.limit(), 16);
        for _ in 0..200 {
            limit.acquire().await.success();
        }
        let grown = limit.limit();
        assert!(grown > 16 && grown <= 64, "grew to {grown}");
        limit.acquire().await.overloaded();
        assert_eq!(limit.limit(), grown / 2);
        // A second overload in the same burst does not halve again.
        limit.acquire().await.overloaded();
        assert_eq!(limit.limit(), grown / 2);
        for _ in 0..10_000 {
            limit.acquire().await.success();
        }
        assert_eq!(limit.limit(), 64, "never above max");
        assert_eq!(limit.in_flight(), 0);
    }

    #[tokio::test]
    async fn never_below_min() {
        let limit = AdaptiveLimit::new(3, 4);
        for _ in 0..5 {
            limit.acquire().await.overloaded();
            tokio::time::sleep(DECREASE_INTERVAL + Duration::from_millis(10)).await;
        }
        assert_eq!(limit.limit(), 3);
    }
}
