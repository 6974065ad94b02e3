//! A histogram that a scrape reads without waiting for the thread that observes.
//!
//! The prometheus crate's `Histogram` keeps a hot and a cold shard so that a collect sees count, sum and
//! buckets from the same instant: the collecting thread flips the shards and then busy-waits until every
//! observation in flight on the old shard has finished. When the worker thread is preempted in the middle of
//! an `observe` (a 2-core machine during a drain), the scrape spins until it runs again, taking CPU from it,
//! and every observation costs four atomic read-modify-writes.
//!
//! [`Hist`] keeps one count per bucket (not cumulative; the last one is for values above every bound and NaN)
//! and the sum. `_count` and every cumulative bucket are computed from the bucket counts a scrape reads, so
//! `_count` always equals the `+Inf` bucket; `_sum` may be one in-flight observation ahead of or behind them.
//! An observation is two atomic operations and a scrape never waits. The text written is what the crate
//! writes for the same observations (tests in `family`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use prometheus::proto;

use crate::metrics::expo;

struct Inner {
    /// Upper bounds, increasing, without a trailing +Inf.
    bounds: Box<[f64]>,
    /// `counts[i]` for values in (bounds[i-1], bounds[i]]; the last for the rest (above every bound, NaN).
    counts: Box<[AtomicU64]>,
    /// f64 bits.
    sum: AtomicU64,
}

/// A histogram; cloning is cheap (shared).
#[derive(Clone)]
pub struct Hist {
    inner: Arc<Inner>,
}

impl Hist {
    /// A histogram with these upper bounds, checked and adjusted exactly as the prometheus crate does (empty
    /// means its default buckets; a trailing +Inf is implicit and dropped; bounds must increase).
    pub fn new(buckets: &[f64]) -> Result<Hist, prometheus::Error> {
        let mut bounds = if buckets.is_empty() { prometheus::DEFAULT_BUCKETS.to_vec() } else { buckets.to_vec() };
        if let Some(w) = bounds.windows(2).find(|w| w[0] >= w[1]) {
            return Err(prometheus::Error::Msg(format!(
                "histogram buckets must be in increasing order: {} >= {}",
                w[0], w[1]
            )));
        }
        if bounds.last().is_some_and(|b| b.is_sign_positive() && b.is_infinite()) {
            bounds.pop();
        }
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Ok(Hist { inner: Arc::new(Inner { bounds: bounds.into(), counts, sum: AtomicU64::new(0f64.to_bits()) }) })
    }

    #[inline]
    pub fn observe(&self, v: f64) {
        let inner = &*self.inner;
        let i = inner.bounds.iter().position(|b| v <= *b).unwrap_or(inner.bounds.len());
        inner.counts[i].fetch_add(1, Relaxed);
        let mut old = inner.sum.load(Relaxed);
        loop {
            let new = (f64::from_bits(old) + v).to_bits();
            match inner.sum.compare_exchange_weak(old, new, Relaxed, Relaxed) {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
    }

    /// Number of observations.
    pub fn get_sample_count(&self) -> u64 {
        self.inner.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Sum of the observations.
    pub fn get_sample_sum(&self) -> f64 {
        f64::from_bits(self.inner.sum.load(Relaxed))
    }

    /// Fills `cumulative` (one slot per finite bound) with (upper bound, cumulative count); returns the total
    /// count and the sum.
    fn snapshot(&self, cumulative: &mut [(f64, u64)]) -> (u64, f64) {
        let inner = &*self.inner;
        let mut total = 0;
        for (i, c) in inner.counts.iter().enumerate() {
            total += c.load(Relaxed);
            if let (Some(slot), Some(&b)) = (cumulative.get_mut(i), inner.bounds.get(i)) {
                *slot = (b, total);
            }
        }
        (total, self.get_sample_sum())
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines.
    pub fn write(&self, name: &str, labels: &[u8], out: &mut Vec<u8>) {
        let n = self.inner.bounds.len();
        let mut stack = [(0.0, 0u64); 32];
        let mut heap = Vec::new();
        let cumulative = if n <= stack.len() {
            &mut stack[..n]
        } else {
            heap.resize(n, (0.0, 0));
            &mut heap[..]
        };
        let (total, sum) = self.snapshot(cumulative);
        expo::histogram(name, labels, cumulative, sum, total, out);
    }
}

impl prometheus::core::Metric for Hist {
    /// The protobuf form (the slow path, for comparing with the crate's encoder).
    fn metric(&self) -> proto::Metric {
        let mut v = vec![(0.0, 0); self.inner.bounds.len()];
        let (total, sum) = self.snapshot(&mut v);
        let mut h = proto::Histogram::default();
        h.set_sample_count(total);
        h.set_sample_sum(sum);
        h.set_bucket(
            v.into_iter()
                .map(|(ub, c)| {
                    let mut b = proto::Bucket::default();
                    b.set_upper_bound(ub);
                    b.set_cumulative_count(c);
                    b
                })
                .collect(),
        );
        let mut m = proto::Metric::default();
        m.set_histogram(h);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Histogram, HistogramOpts};

    #[test]
    fn buckets_are_checked_and_adjusted_like_the_crate() {
        for b in [vec![], vec![1.0, 2.0, f64::INFINITY], vec![0.5], vec![1.0, 1.0], vec![2.0, 1.0]] {
            let ours = Hist::new(&b);
            let theirs = Histogram::with_opts(HistogramOpts::new("h", "h").buckets(b.clone()));
            assert_eq!(ours.is_ok(), theirs.is_ok(), "{b:?}");
            if let (Ok(o), Ok(t)) = (ours, theirs) {
                let t = prometheus::core::Metric::metric(&t);
                let o = prometheus::core::Metric::metric(&o);
                let bounds = |m: &proto::Metric| -> Vec<f64> {
                    m.get_histogram().get_bucket().iter().map(|b| b.upper_bound()).collect()
                };
                assert_eq!(bounds(&o), bounds(&t), "{b:?}");
            }
        }
    }

    #[test]
    fn counts_sums_and_nan() {
        let h = Hist::new(&[1.0, 10.0]).unwrap();
        for v in [0.5, 1.0, 1.5, 10.0, 11.0, f64::NAN] {
            h.observe(v);
        }
        assert_eq!(h.get_sample_count(), 6);
        assert!(h.get_sample_sum().is_nan());
        let mut text = Vec::new();
        h.write("x", b"", &mut text);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "x_bucket{le=\"1\"} 2\nx_bucket{le=\"10\"} 4\nx_bucket{le=\"+Inf\"} 6\nx_sum NaN\nx_count 6\n"
        );
        let h2 = h.clone();
        let t = std::thread::spawn(move || (0..10_000).for_each(|_| h2.observe(2.0)));
        (0..10_000).for_each(|_| h.observe(0.0));
        t.join().unwrap();
        assert_eq!(h.get_sample_count(), 20_006, "no observation lost between two writers");
    }
}
