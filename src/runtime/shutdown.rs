//! One coordinator for the process's life, shared by every thread: the shutdown request (from SIGINT/SIGTERM
//! or a failed thread), liveness of the pipeline threads (`/-/healthy`) and readiness (`/-/ready`). The HTTP
//! threads are told to stop separately and last, so a final scrape still sees every applied event. Also a
//! rate limit for log lines that can repeat quickly.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    requested: bool,
    failed: bool,
    running: usize,
}

/// Shared by every thread of the pipeline.
#[derive(Default)]
pub struct Lifecycle {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    http_stop: AtomicBool,
    ready: AtomicBool,
    expected: AtomicUsize,
    alive: AtomicUsize,
}

impl Lifecycle {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks every thread to stop (idempotent).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.lock().requested = true;
        self.changed.notify_all();
    }

    /// Asks every thread to stop because something failed; the process will exit non-zero.
    pub fn fail(&self) {
        self.lock().failed = true;
        self.request_stop();
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The HTTP threads stop last, after the pipeline has drained and committed, so that a final scrape can
    /// still see every applied event.
    pub fn stop_http(&self) {
        self.http_stop.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    pub fn http_stop_requested(&self) -> bool {
        self.http_stop.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> bool {
        self.lock().failed
    }

    /// Blocks until a stop is requested.
    pub fn wait_for_stop(&self) {
        let _s = self.changed.wait_while(self.lock(), |s| !s.requested).unwrap_or_else(|p| p.into_inner());
    }

    /// Blocks until a stop is requested or `timeout` passes; true if a stop was requested.
    pub fn wait_for_stop_timeout(&self, timeout: Duration) -> bool {
        let (_guard, waited) =
            self.changed.wait_timeout_while(self.lock(), timeout, |s| !s.requested).unwrap_or_else(|p| p.into_inner());
        !waited.timed_out()
    }

    /// Registers a pipeline thread; the guard marks it dead when dropped (on return or panic).
    pub fn thread(&self, name: &'static str) -> ThreadGuard<'_> {
        self.expected.fetch_add(1, Ordering::SeqCst);
        self.alive.fetch_add(1, Ordering::SeqCst);
        self.lock().running += 1;
        ThreadGuard { life: self, name }
    }

    /// Waits until every registered thread has ended, or the deadline; true if they all ended.
    pub fn wait_threads(&self, deadline: Instant) -> bool {
        self.wait_running_at_most(0, deadline)
    }

    /// Waits until at most `n` registered threads are running, or the deadline; true if reached.
    pub fn wait_running_at_most(&self, n: usize, deadline: Instant) -> bool {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let (_guard, waited) =
            self.changed.wait_timeout_while(self.lock(), timeout, |s| s.running > n).unwrap_or_else(|p| p.into_inner());
        !waited.timed_out()
    }

    /// `/-/healthy`: every pipeline thread is running and no stop was requested for a failure.
    pub fn healthy(&self) -> bool {
        let e = self.expected.load(Ordering::SeqCst);
        e > 0 && self.alive.load(Ordering::SeqCst) == e
    }

    /// `/-/ready`: the consumer has a working connection to the cluster.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.stop_requested()
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
}

/// Marks a thread alive while it exists.
pub struct ThreadGuard<'a> {
    life: &'a Lifecycle,
    name: &'static str,
}

impl Drop for ThreadGuard<'_> {
    fn drop(&mut self) {
        self.life.alive.fetch_sub(1, Ordering::SeqCst);
        if std::thread::panicking() {
            log::error!("thread {} panicked; shutting down", self.name);
            self.life.fail();
        } else if !self.life.stop_requested() {
            log::error!("thread {} ended unexpectedly; shutting down", self.name);
            self.life.fail();
        }
        self.life.lock().running -= 1;
        self.life.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_threads() {
        let l = Lifecycle::new();
        assert!(!l.healthy(), "nothing running yet");
        let g1 = l.thread("a");
        let g2 = l.thread("b");
        assert!(l.healthy());
        l.request_stop();
        drop(g1);
        assert!(!l.healthy());
        assert!(!l.failed(), "an ordinary stop is not a failure");
        drop(g2);
        assert!(l.wait_threads(Instant::now()));
    }

    #[test]
    fn an_unexpected_thread_end_fails_the_process() {
        let l = Lifecycle::new();
        let g = l.thread("worker");
        drop(g);
        assert!(l.failed());
        assert!(l.stop_requested());
    }

    #[test]
    fn waits_end_at_the_condition_or_the_timeout() {
        let l = Lifecycle::new();
        assert!(!l.wait_for_stop_timeout(Duration::from_millis(10)));
        let g = l.thread("a");
        assert!(!l.wait_running_at_most(0, Instant::now() + Duration::from_millis(10)));
        assert!(l.wait_running_at_most(1, Instant::now()), "reached already: no wait, even at the deadline");
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                l.request_stop();
                drop(g);
            });
            assert!(l.wait_for_stop_timeout(Duration::from_secs(10)));
            assert!(l.wait_threads(Instant::now() + Duration::from_secs(10)));
        });
        l.wait_for_stop();
        assert!(l.wait_for_stop_timeout(Duration::ZERO));
    }

    #[test]
    fn readiness_is_off_once_stopping() {
        let l = Lifecycle::new();
        assert!(!l.ready());
        l.set_ready(true);
        assert!(l.ready());
        l.request_stop();
        assert!(!l.ready());
    }
}
