//! Event-time order within a bounded reorder window.
//!
//! `backfill` reads the partitions merged by their next record's event time (`source.rs`), so records come
//! out nearly in order; what is left is skew inside a partition (producers whose stamps are a little out of
//! order). [`Reorder`] holds records until the newest event time seen is a full window past them, then releases
//! them oldest first; it also releases the oldest when it holds [`Reorder::cap`] records, so memory stays bounded
//! whatever the traffic. A record older than one already released (later than the window allows) is released
//! at once, stamped with the time of the last released record, and counted in [`Reorder::late`]: it is
//! still counted, at the next boundary.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

struct Held<T> {
    t_us: i64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.t_us, self.seq) == (other.t_us, other.seq)
    }
}
impl<T> Eq for Held<T> {}
impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Held<T> {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the oldest, and among equal times the first pushed.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.t_us, other.seq).cmp(&(self.t_us, self.seq))
    }
}

/// Releases records in event-time order, holding each until the newest time seen is `window_us` past it.
pub struct Reorder<T> {
    heap: BinaryHeap<Held<T>>,
    window_us: i64,
    cap: usize,
    seq: u64,
    newest_us: i64,
    /// Event time of the last record released (`i64::MIN` before the first).
    released_us: i64,
    /// Records that came later than the window allowed (released at the last released time).
    pub late: u64,
}

impl<T> Reorder<T> {
    /// A window of `window_us` microseconds, holding at most `cap` records (at least 1).
    pub fn new(window_us: i64, cap: usize) -> Self {
        Reorder {
            heap: BinaryHeap::new(),
            window_us: window_us.max(0),
            cap: cap.max(1),
            seq: 0,
            newest_us: i64::MIN,
            released_us: i64::MIN,
            late: 0,
        }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// How many records are held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Takes a record stamped `t_us`; calls `release(time, item)` for every record now due, in order.
    pub fn push<E>(&mut self, t_us: i64, item: T, release: &mut impl FnMut(i64, T) -> Result<(), E>) -> Result<(), E> {
        if t_us < self.released_us {
            self.late += 1;
            return release(self.released_us, item);
        }
        self.seq += 1;
        self.heap.push(Held { t_us, seq: self.seq, item });
        self.newest_us = self.newest_us.max(t_us);
        let due = self.newest_us.saturating_sub(self.window_us);
        while let Some(top) = self.heap.peek() {
            if top.t_us > due && self.heap.len() <= self.cap {
                break;
            }
            let h = self.heap.pop().expect("peeked");
            self.released_us = h.t_us;
            release(h.t_us, h.item)?;
        }
        Ok(())
    }

    /// Releases everything held, in order.
    pub fn finish<E>(&mut self, release: &mut impl FnMut(i64, T) -> Result<(), E>) -> Result<(), E> {
        while let Some(h) = self.heap.pop() {
            self.released_us = h.t_us;
            release(h.t_us, h.item)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(window: i64, cap: usize, input: &[(i64, u32)]) -> (Vec<(i64, u32)>, u64) {
        let mut r = Reorder::new(window, cap);
        let mut out = Vec::new();
        let mut take = |t: i64, x: u32| -> Result<(), ()> {
            out.push((t, x));
            Ok(())
        };
        for &(t, x) in input {
            r.push(t, x, &mut take).unwrap();
            assert!(r.len() <= cap);
        }
        r.finish(&mut take).unwrap();
        (out, r.late)
    }

    #[test]
    fn skew_inside_the_window_is_put_in_order() {
        let (out, late) = run(10, 100, &[(100, 1), (95, 2), (103, 3), (101, 4), (120, 5), (111, 6)]);
        assert_eq!(out, vec![(95, 2), (100, 1), (101, 4), (103, 3), (111, 6), (120, 5)]);
        assert_eq!(late, 0);
    }

    #[test]
    fn equal_times_keep_their_arrival_order() {
        let (out, _) = run(0, 100, &[(5, 1), (5, 2), (5, 3), (6, 4)]);
        assert_eq!(out, vec![(5, 1), (5, 2), (5, 3), (6, 4)]);
    }

    #[test]
    fn later_than_the_window_is_counted_at_the_current_time() {
        // 100 is released when 111 arrives (window 10); 90 then comes too late.
        let (out, late) = run(10, 100, &[(100, 1), (111, 2), (90, 3), (112, 4)]);
        assert_eq!(out, vec![(100, 1), (100, 3), (111, 2), (112, 4)]);
        assert_eq!(late, 1);
    }

    #[test]
    fn the_cap_bounds_what_is_held() {
        let input: Vec<(i64, u32)> = (0..50).map(|i| (1000 - i64::from(i), i)).collect();
        let (out, late) = run(1_000_000, 4, &input);
        assert_eq!(out.len(), 50);
        assert_eq!(late, 45, "beyond the cap the oldest held goes out and older ones are late");
        assert!(out.windows(2).all(|w| w[0].0 <= w[1].0), "released times never go back: {out:?}");
    }
}
