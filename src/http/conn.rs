//! What the relay of one admitted connection publishes for the gate, and why a relay ended.
//!
//! The relay thread writes, the gate thread reads: when every slot is taken, the gate picks a connection to
//! close from this state (docs/http.md). Both sides settle a connection's fate once, so each close
//! is counted once.

use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::Instant;

use prometheus::IntCounter;

use super::request::Refusal;
use crate::metrics::CloseReason;
use crate::table::PerKey;

/// `Conn::header_since` when no request header is in progress.
pub(super) const NO_HEADER: u64 = u64::MAX;

/// What the relay of one admitted connection publishes for the gate, which picks a connection to close when
/// all slots are taken.
pub(super) struct Conn {
    /// Handles on the client socket and (once connected) the socket to tiny_http: shutting both down ends
    /// the relay, also when it is blocked writing to either.
    pub tcp: TcpStream,
    pub backend: std::sync::Mutex<Option<UnixStream>>,
    /// Microseconds (since `epoch`) when the request header now being received began (accept time for a new
    /// connection); `NO_HEADER` when none is in progress.
    pub header_since: AtomicU64,
    /// Microseconds (since `epoch`) of the last byte moved in either direction.
    pub last: AtomicU64,
    /// A complete request header was passed on and no byte of an answer has come back since.
    pub awaiting: AtomicBool,
    /// `LIVE`, then `ENDING` (set by the relay as it ends on its own) or `EVICTED` (set by the gate), once:
    /// each close is counted by whichever of the two set it.
    fate: AtomicU8,
    pub epoch: Instant,
    /// `dashstream_exporter_http_connections_closed_total` by reason.
    closed: PerKey<CloseReason, IntCounter>,
}

const LIVE: u8 = 0;
const ENDING: u8 = 1;
const EVICTED: u8 = 2;

impl Conn {
    /// A connection accepted just now: its first request header counts as begun (`epoch`: the gate's).
    pub fn accepted(tcp: TcpStream, epoch: Instant, closed: PerKey<CloseReason, IntCounter>) -> Conn {
        let now = us_since(epoch, Instant::now());
        Conn {
            tcp,
            backend: std::sync::Mutex::new(None),
            header_since: AtomicU64::new(now),
            last: AtomicU64::new(now),
            awaiting: AtomicBool::new(false),
            fate: AtomicU8::new(LIVE),
            epoch,
            closed,
        }
    }
    pub fn now_us(&self) -> u64 {
        us_since(self.epoch, Instant::now())
    }
    pub fn evicted(&self) -> bool {
        self.fate.load(Ordering::SeqCst) == EVICTED
    }
    /// Neither the relay nor the gate has settled how the connection ends.
    pub fn is_live(&self) -> bool {
        self.fate.load(Ordering::SeqCst) == LIVE
    }
    /// The gate's side of `settle`: marks the connection evicted unless its relay is ending on its own
    /// already; true when this call decided it (and the gate counts it).
    pub fn mark_evicted(&self) -> bool {
        self.fate.compare_exchange(LIVE, EVICTED, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }
    /// Settles, once, why the relay ends (unless the gate evicted it first) and counts it, before the client
    /// sees the close: a client that has seen it can read the counter. An eviction is counted by the gate,
    /// which decided it.
    pub fn settle(&self, why: Closed) -> Closed {
        match self.fate.compare_exchange(LIVE, ENDING, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => {
                if let Some(reason) = why.counted_here() {
                    self.closed[reason].inc();
                }
                why
            }
            Err(_) => Closed::Evicted,
        }
    }
}

/// Why a relay ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Closed {
    IdleTimeout,
    HeaderTimeout,
    /// The relay answered the request itself (400, 413, 431 or 505) and closed.
    Refused(Refusal),
    /// The client did not take an answer within the idle timeout.
    WriteTimeout,
    /// The gate closed it to admit a new connection (counted by the gate, which decided it).
    Evicted,
    /// The client or tiny_http closed, or a socket error.
    Normal,
}

impl Closed {
    /// The reason `settle` counts for a relay that ends on its own: the server's own closes, but for an
    /// eviction, which the gate counts.
    fn counted_here(self) -> Option<CloseReason> {
        match self {
            Closed::IdleTimeout => Some(CloseReason::IdleTimeout),
            Closed::HeaderTimeout => Some(CloseReason::HeaderTimeout),
            Closed::Refused(Refusal::BadRequest) => Some(CloseReason::BadRequest),
            Closed::Refused(Refusal::RequestBody) => Some(CloseReason::RequestBody),
            Closed::Refused(Refusal::HeaderTooLarge) => Some(CloseReason::HeaderTooLarge),
            Closed::Refused(Refusal::HttpVersion) => Some(CloseReason::HttpVersion),
            Closed::WriteTimeout => Some(CloseReason::WriteTimeout),
            Closed::Evicted | Closed::Normal => None,
        }
    }
}

pub(super) fn us_since(epoch: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(epoch).as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_close_is_counted_under_its_own_label() {
        assert_eq!(Closed::IdleTimeout.counted_here().map(CloseReason::label), Some("idle_timeout"));
        assert_eq!(Closed::HeaderTimeout.counted_here().map(CloseReason::label), Some("header_timeout"));
        assert_eq!(Closed::WriteTimeout.counted_here().map(CloseReason::label), Some("write_timeout"));
        // Each refusal under the label of the same name.
        for r in Refusal::ALL {
            assert_eq!(Closed::Refused(r).counted_here().map(CloseReason::label), Some(r.label()));
        }
        assert_eq!(Closed::Evicted.counted_here(), None, "the gate counts evictions");
        assert_eq!(Closed::Normal.counted_here(), None);
        assert_eq!(CloseReason::Evicted.label(), "evicted");
    }
}
