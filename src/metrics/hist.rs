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
//!
//! A histogram made with [`Hist::rich`] also keeps, per bucket, a recent observation as its exemplar (the
//! record's ids, the value and when it was applied: the first observation of the bucket in each millisecond,
//! so a batch stamped with one time writes each bucket's exemplar once) and optionally native buckets
//! ([`native`]). Its observations go
//! through a write section: a sequence number made odd while one writer updates counts, sum, exemplar and
//! native buckets, even again after. A scrape copies everything and keeps the copy only when the number was
//! even and unchanged around it, so count, buckets, native buckets and sum always agree (Prometheus checks
//! that a native histogram's count equals its buckets'). The worker is the only writer of these three
//! histograms; a scrape that meets a write in progress retries, and yields after a few tries, so even a
//! writer preempted in its section costs the scrape at most its time slice.
//!
//! [`native`]: crate::metrics::native

use std::sync::atomic::{fence, AtomicI64, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use std::sync::Arc;

use prometheus::proto;

use crate::config::NativeConfig;
use crate::decode::ids::{Ids, IDS_BYTES};
use crate::metrics::expo;
use crate::metrics::native::{Native, NativeSnapshot};

const WORDS: usize = IDS_BYTES / 8;

struct Inner {
    /// Upper bounds, increasing, without a trailing +Inf.
    bounds: Box<[f64]>,
    /// `counts[i]` for values in (bounds[i-1], bounds[i]]; the last for the rest (above every bound, NaN).
    counts: Box<[AtomicU64]>,
    /// f64 bits.
    sum: AtomicU64,
    rich: Option<Rich>,
}

/// Exemplars and native buckets, and the write section that keeps them consistent with the counts.
struct Rich {
    seq: AtomicU64,
    /// One per entry of `counts` when exemplars are on, else empty.
    exemplars: Box<[Slot]>,
    native: Option<Native>,
}

/// One bucket's exemplar: the ids as words, their lengths (`PRESENT` set once written), value and time.
struct Slot {
    lens: AtomicU64,
    words: [AtomicU64; WORDS],
    value: AtomicU64,
    ts_ms: AtomicI64,
}

const PRESENT: u64 = 1 << 63;

impl Slot {
    fn new() -> Slot {
        Slot {
            lens: AtomicU64::new(0),
            words: std::array::from_fn(|_| AtomicU64::new(0)),
            value: AtomicU64::new(0),
            ts_ms: AtomicI64::new(0),
        }
    }
}

/// An observation kept as a bucket's exemplar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exemplar {
    pub ids: Ids,
    pub value: f64,
    /// Milliseconds since the epoch.
    pub ts_ms: i64,
}

impl Snapshot {
    /// Fills this snapshot from a histogram of the prometheus crate's protobuf (no exemplars, no native part).
    pub fn set_from_proto(&mut self, h: &proto::Histogram) {
        self.cumulative.clear();
        let finite = h.get_bucket().iter().filter(|b| !(b.upper_bound().is_infinite() && b.upper_bound() > 0.0));
        self.cumulative.extend(finite.map(|b| (b.upper_bound(), b.cumulative_count())));
        self.count = h.get_sample_count();
        self.sum = h.get_sample_sum();
        self.exemplars.clear();
        self.native = None;
    }
}

/// What a scrape copies out of a histogram; reused from scrape to scrape.
#[derive(Default, Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// (upper bound, cumulative count) per finite bound.
    pub cumulative: Vec<(f64, u64)>,
    pub count: u64,
    pub sum: f64,
    /// One per bucket, the `+Inf` one last; empty without exemplars.
    pub exemplars: Vec<Option<Exemplar>>,
    pub native: Option<NativeSnapshot>,
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
        Ok(Hist {
            inner: Arc::new(Inner { bounds: bounds.into(), counts, sum: AtomicU64::new(0f64.to_bits()), rich: None }),
        })
    }

    /// A histogram with exemplars and/or native buckets (classic when both are off).
    pub fn rich(buckets: &[f64], exemplars: bool, native: Option<NativeConfig>) -> Result<Hist, prometheus::Error> {
        let mut h = Hist::new(buckets)?;
        if exemplars || native.is_some() {
            let inner = Arc::get_mut(&mut h.inner).expect("just made");
            let slots = if exemplars { inner.counts.len() } else { 0 };
            inner.rich = Some(Rich {
                seq: AtomicU64::new(0),
                exemplars: (0..slots).map(|_| Slot::new()).collect(),
                native: native.map(|n| Native::new(n.schema, n.zero_threshold, usize::from(n.max_buckets))),
            });
        }
        Ok(h)
    }

    /// Whether this histogram keeps exemplars.
    pub fn has_exemplars(&self) -> bool {
        self.inner.rich.as_ref().is_some_and(|r| !r.exemplars.is_empty())
    }

    #[inline]
    pub fn observe(&self, v: f64) {
        let inner = &*self.inner;
        let i = inner.bounds.iter().position(|b| v <= *b).unwrap_or(inner.bounds.len());
        if let Some(rich) = &inner.rich {
            return self.observe_rich(rich, i, v, None);
        }
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

    /// Observes `v` and, when this histogram keeps exemplars and `ids` is not empty, makes it its bucket's
    /// exemplar, stamped `ts_ms` (milliseconds since the epoch).
    #[inline]
    pub fn observe_with(&self, v: f64, ids: &Ids, ts_ms: i64) {
        let inner = &*self.inner;
        let i = inner.bounds.iter().position(|b| v <= *b).unwrap_or(inner.bounds.len());
        match &inner.rich {
            Some(rich) => self.observe_rich(rich, i, v, (!ids.is_empty()).then_some((ids, ts_ms))),
            None => self.observe(v),
        }
    }

    fn observe_rich(&self, rich: &Rich, i: usize, v: f64, exemplar: Option<(&Ids, i64)>) {
        let inner = &*self.inner;
        // Enter the write section: the sequence goes from even to odd (another writer in it: wait for it).
        let seq = loop {
            let s = rich.seq.load(Relaxed);
            if s & 1 == 0 && rich.seq.compare_exchange_weak(s, s + 1, Acquire, Relaxed).is_ok() {
                break s;
            }
            std::hint::spin_loop();
        };
        fence(Release);
        let c = &inner.counts[i];
        c.store(c.load(Relaxed) + 1, Relaxed);
        inner.sum.store((f64::from_bits(inner.sum.load(Relaxed)) + v).to_bits(), Relaxed);
        // One exemplar per bucket and millisecond: the worker stamps a whole batch with one time, so under
        // load the first observation of each batch in a bucket is kept and the rest cost nothing.
        if let (Some(slot), Some((ids, ts_ms))) = (rich.exemplars.get(i), exemplar) {
            if slot.ts_ms.load(Relaxed) != ts_ms {
                let mut words = [0u64; WORDS];
                let lens = ids.to_words(&mut words);
                for (w, x) in slot.words.iter().zip(words) {
                    w.store(x, Relaxed);
                }
                slot.lens.store(lens | PRESENT, Relaxed);
                slot.value.store(v.to_bits(), Relaxed);
                slot.ts_ms.store(ts_ms, Relaxed);
            }
        }
        if let Some(n) = &rich.native {
            n.observe(v);
        }
        rich.seq.store(seq + 2, Release);
    }

    /// Copies the histogram into `out` (consistent for a rich histogram, see the module comment).
    pub fn read(&self, out: &mut Snapshot) {
        let inner = &*self.inner;
        let Some(rich) = &inner.rich else {
            self.read_counts(out);
            out.exemplars.clear();
            out.native = None;
            return;
        };
        let mut tries = 0u32;
        loop {
            let s1 = rich.seq.load(Acquire);
            if s1 & 1 == 0 {
                self.read_counts(out);
                out.exemplars.clear();
                for slot in rich.exemplars.iter() {
                    let lens = slot.lens.load(Relaxed);
                    let words: [u64; WORDS] = std::array::from_fn(|k| slot.words[k].load(Relaxed));
                    let value = f64::from_bits(slot.value.load(Relaxed));
                    let ts_ms = slot.ts_ms.load(Relaxed);
                    out.exemplars.push(if lens & PRESENT == 0 {
                        None
                    } else {
                        Ids::from_words(&words, lens & !PRESENT).map(|ids| Exemplar { ids, value, ts_ms })
                    });
                }
                match &rich.native {
                    Some(n) => n.read(out.native.get_or_insert_with(NativeSnapshot::default)),
                    None => out.native = None,
                }
                fence(Acquire);
                if rich.seq.load(Relaxed) == s1 {
                    return;
                }
            }
            tries += 1;
            if tries % 64 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    fn read_counts(&self, out: &mut Snapshot) {
        let inner = &*self.inner;
        out.cumulative.clear();
        let mut total = 0;
        for (i, c) in inner.counts.iter().enumerate() {
            total += c.load(Relaxed);
            if let Some(&b) = inner.bounds.get(i) {
                out.cumulative.push((b, total));
            }
        }
        out.count = total;
        out.sum = self.get_sample_sum();
    }

    /// Heap bytes of one series (classic counts, exemplar slots, native windows).
    pub fn heap_bytes(&self) -> usize {
        let inner = &*self.inner;
        let classic = inner.bounds.len() * 8 + inner.counts.len() * 8;
        classic
            + inner.rich.as_ref().map_or(0, |r| {
                r.exemplars.len() * std::mem::size_of::<Slot>() + r.native.as_ref().map_or(0, Native::heap_bytes)
            })
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

    /// A scrape of a rich histogram always sees count, buckets, native buckets and sum of the same
    /// observations, while another thread observes.
    #[test]
    fn a_rich_snapshot_is_consistent_while_observing() {
        let native = NativeConfig { schema: 3, zero_threshold: 0.5, max_buckets: 160 };
        let h = Hist::rich(&[10.0, 100.0], true, Some(native)).unwrap();
        let writer = h.clone();
        let ids = Ids::new("thread-1", &[7; 16]);
        let t = std::thread::spawn(move || {
            for k in 0..200_000u64 {
                writer.observe_with((k % 1000) as f64, &ids, k as i64);
            }
        });
        let mut snap = Snapshot::default();
        let mut reads = 0;
        while !t.is_finished() || reads == 0 {
            h.read(&mut snap);
            let n = snap.native.as_ref().unwrap();
            let native_total: u64 = n.zero_count + n.positive.iter().map(|b| b.1).sum::<u64>();
            assert_eq!(native_total, snap.count);
            // Values 0..999 cycle; the sum of the first `count` of them is known exactly.
            let (full, part) = (snap.count / 1000, snap.count % 1000);
            assert_eq!(snap.sum, (full * 499_500 + part * (part.max(1) - 1) / 2) as f64);
            assert!(snap.cumulative.windows(2).all(|w| w[0].1 <= w[1].1));
            reads += 1;
        }
        t.join().unwrap();
        h.read(&mut snap);
        assert_eq!(snap.count, 200_000);
        assert_eq!(snap.cumulative, vec![(10.0, 2200), (100.0, 20_200)]);
        let e = snap.exemplars[2].unwrap();
        assert_eq!((e.value, e.ts_ms, e.ids.thread_id()), (999.0, 199_999, "thread-1"));
        assert_eq!(snap.exemplars.len(), 3);
        let mut text = Vec::new();
        h.write("x", b"", &mut text);
        assert!(String::from_utf8(text).unwrap().contains("x_count 200000\n"));
    }

    /// What one series holds (docs/formats.md): the latency buckets with exemplars and the default
    /// native window.
    #[test]
    fn memory_per_series() {
        let latency = [10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 15000.0, 20000.0, 30000.0];
        assert_eq!(std::mem::size_of::<Slot>(), 120);
        assert_eq!(Hist::new(&latency).unwrap().heap_bytes(), 200);
        assert_eq!(Hist::rich(&latency, true, None).unwrap().heap_bytes(), 200 + 13 * 120);
        assert_eq!(Hist::rich(&latency, true, Some(NativeConfig::default())).unwrap().heap_bytes(), 4320);
        let max = NativeConfig { max_buckets: 4096, ..NativeConfig::default() };
        assert_eq!(Hist::rich(&latency, false, Some(max)).unwrap().heap_bytes(), 200 + 2 * 4096 * 8);
    }

    #[test]
    fn observing_without_ids_keeps_no_exemplar() {
        let h = Hist::rich(&[1.0], true, None).unwrap();
        h.observe(0.5);
        h.observe_with(2.0, &Ids::default(), 5);
        let mut snap = Snapshot::default();
        h.read(&mut snap);
        assert_eq!(snap.exemplars, vec![None, None]);
        assert_eq!((snap.count, snap.sum, snap.native.is_none()), (2, 2.5, true));
        assert!(!Hist::rich(&[1.0], false, None).unwrap().has_exemplars());
    }
}
