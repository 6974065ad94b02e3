//! The worker thread's loop: applies the quality events from the [`Inbox`] to the metrics, batch by batch
//! (the inbox then reports their offsets applied and hands the batch back), and expires idle sessions once a
//! second, traffic or not.

use std::time::{Duration, Instant};

use crate::ingest::batch::Inbox;
use crate::metrics::{unix_now, Applier};

/// How often idle sessions are expired; also the longest the worker waits for a batch.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);

/// Applies records until the poll thread hangs up and the channel is empty.
pub fn worker_loop(mut inbox: Inbox, mut applier: Applier) {
    let mut last_expire = Instant::now();
    loop {
        let mut batch_time = None;
        let open = inbox.apply_batch(EXPIRE_EVERY, |events| {
            // One clock reading per batch, not per event.
            let wall = unix_now();
            let now = Instant::now();
            for ev in events {
                applier.apply(&ev, wall, now);
            }
            batch_time = Some(now);
        });
        if !open {
            break;
        }
        let now = batch_time.unwrap_or_else(Instant::now);
        if now.duration_since(last_expire) >= EXPIRE_EVERY {
            applier.expire_sessions(now);
            last_expire = now;
        }
    }
}
