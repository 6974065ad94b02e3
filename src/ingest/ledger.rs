//! The applied-offsets ledger: how many records were sent to the worker, how many it applied, and the next
//! offset to consume per partition that it applied but the poll thread has not stored yet. The batch channel
//! ([`super::batch`]) writes it (sent on the poll thread, applied on the worker); the offset protocol
//! ([`super::offsets`]) takes the positions to store and waits on it before a commit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// What was sent and what was applied; shared by the channel's ends and the offset book.
#[derive(Default)]
pub(super) struct Ledger {
    /// Records sent to the worker. Written only when a batch is sent, on the poll thread, and read there.
    sent: AtomicU64,
    applied: Mutex<Applied>,
    applied_changed: Condvar,
}

#[derive(Default)]
struct Applied {
    count: u64,
    /// The next offset to consume per partition, applied but not yet stored.
    next: HashMap<i32, i64>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, Applied> {
        self.applied.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `count` more records were sent to the worker.
    pub(super) fn sent(&self, count: u64) {
        self.sent.fetch_add(count, Ordering::SeqCst);
    }

    /// Records sent to the worker so far.
    #[cfg(test)]
    pub(super) fn sent_count(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Records the worker applied so far.
    #[cfg(test)]
    pub(super) fn applied_count(&self) -> u64 {
        self.lock().count
    }

    /// `count` more records were applied; `next` (emptied) holds the next offset per partition.
    pub(super) fn report(&self, count: u64, next: &mut HashMap<i32, i64>) {
        let mut a = self.lock();
        a.count += count;
        for (p, o) in next.drain() {
            let e = a.next.entry(p).or_insert(o);
            *e = (*e).max(o);
        }
        drop(a);
        self.applied_changed.notify_all();
    }

    /// The next offset per partition applied since the last call.
    pub(super) fn take_next(&self) -> HashMap<i32, i64> {
        std::mem::take(&mut self.lock().next)
    }

    /// Waits until every record sent has been applied, or `timeout`; true if all were.
    pub(super) fn wait_applied(&self, timeout: Duration) -> bool {
        let sent = self.sent.load(Ordering::SeqCst);
        let (_guard, waited) = self
            .applied_changed
            .wait_timeout_while(self.lock(), timeout, |a| a.count < sent)
            .unwrap_or_else(|p| p.into_inner());
        !waited.timed_out()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_keep_the_highest_offset_per_partition() {
        let ledger = Ledger::default();
        ledger.report(1, &mut HashMap::from([(0, 7)]));
        ledger.report(1, &mut HashMap::from([(0, 5), (1, 1)]));
        assert_eq!(ledger.take_next(), HashMap::from([(0, 7), (1, 1)]));
        assert!(ledger.take_next().is_empty());
    }

    #[test]
    fn waiting_ends_once_everything_sent_is_applied() {
        let ledger = Ledger::default();
        assert!(ledger.wait_applied(Duration::ZERO), "nothing sent yet");
        ledger.sent(2);
        assert!(!ledger.wait_applied(Duration::from_millis(10)));
        ledger.report(1, &mut HashMap::new());
        assert!(!ledger.wait_applied(Duration::ZERO));
        ledger.report(1, &mut HashMap::new());
        assert!(ledger.wait_applied(Duration::ZERO));
        assert_eq!((ledger.sent_count(), ledger.applied_count()), (2, 2));
    }
}
