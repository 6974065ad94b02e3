//! Native (exponential) histogram buckets, as Prometheus defines them: at schema `s` the bucket of index `i`
//! holds the values in (2^((i-1)·2^-s), 2^(i·2^-s)], so every power of two is a bound and each bound is the
//! previous one times 2^(2^-s); values of magnitude at most the zero threshold count in a zero bucket.
//!
//! [`Native`] keeps one fixed window of counts per sign (allocated once, `max_buckets` wide), so observing
//! never allocates. When a value falls outside what the window can cover, the window is moved if the
//! populated range and the new index fit, else the schema is lowered by one (pairs of buckets merged, the
//! bucket width doubled, as client_golang does) until they fit. At schema -4 every finite float fits in 132
//! buckets, which is why the limit is at least that. Storage is atomics written by one writer at a time
//! (the histogram's write section in `hist`) and read by scrapes that check the section's sequence number.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// The lowest schema; the highest is 8.
pub const MIN_SCHEMA: i8 = -4;
pub const MAX_SCHEMA: i8 = 8;

/// The upper bounds of the fraction `f` in [0.5, 1) of `v = f·2^e` per bucket within one power of two, for
/// each positive schema: `FRAC[s][j] = 2^((j+1)/2^s - 1)`.
fn frac_bounds(schema: i8) -> &'static [f64] {
    use std::sync::OnceLock;
    static TABLES: OnceLock<Vec<Vec<f64>>> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        (0..=MAX_SCHEMA)
            .map(|s| {
                let n = 1u32 << s;
                (0..n).map(|j| 2f64.powf(f64::from(j + 1) / f64::from(n) - 1.0)).collect()
            })
            .collect()
    });
    &tables[schema as usize]
}

/// `v = frac · 2^exp` with `frac` in [0.5, 1), for finite `v > 0`.
#[inline]
fn frexp(v: f64) -> (f64, i32) {
    let bits = v.to_bits();
    let raw_exp = ((bits >> 52) & 0x7ff) as i32;
    if raw_exp == 0 {
        // Subnormal: scale into the normal range first.
        let (f, e) = frexp(v * 2f64.powi(64));
        return (f, e - 64);
    }
    let frac = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (frac, raw_exp - 1022)
}

/// The bucket index of `v` (finite, > 0) at `schema`. `+Inf` goes to the bucket of `f64::MAX`.
#[inline]
pub fn index(v: f64, schema: i8) -> i32 {
    let v = if v.is_infinite() { f64::MAX } else { v };
    let (frac, exp) = frexp(v);
    if schema > 0 {
        let n = 1 << schema;
        if frac == 0.5 {
            // A power of two: the upper bound of the last bucket of the power below.
            return (exp - 1) * n;
        }
        // j buckets of this power of two lie below v's; the power's first bucket has index (exp-1)·2^s + 1.
        let j = frac_bounds(schema).partition_point(|b| *b < frac) as i32;
        (exp - 1) * n + j + 1
    } else {
        // ceil(log2 v): a power of two is the upper bound of its bucket.
        let i0 = if frac == 0.5 { exp - 1 } else { exp };
        let shift = -schema as u32;
        (i0 + (1 << shift) - 1) >> shift
    }
}

/// The upper bound of bucket `i` at `schema`.
pub fn upper_bound(i: i32, schema: i8) -> f64 {
    2f64.powf(f64::from(i) * 2f64.powi(-i32::from(schema)))
}

/// One sign's window of bucket counts.
struct Window {
    /// The index that `counts[0]` holds.
    base: AtomicI64,
    /// Lowest and highest populated index; `lo > hi` while empty.
    lo: AtomicI64,
    hi: AtomicI64,
    counts: Box<[AtomicU64]>,
}

impl Window {
    fn new(width: usize) -> Window {
        Window {
            base: AtomicI64::new(0),
            lo: AtomicI64::new(1),
            hi: AtomicI64::new(0),
            counts: (0..width).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn range(&self) -> Option<(i64, i64)> {
        let (lo, hi) = (self.lo.load(Relaxed), self.hi.load(Relaxed));
        (lo <= hi).then_some((lo, hi))
    }

    /// Whether index `i` can be counted once the window is moved (the populated range and `i` fit).
    fn fits(&self, i: i64) -> bool {
        match self.range() {
            None => true,
            Some((lo, hi)) => (hi.max(i) - lo.min(i)) < self.counts.len() as i64,
        }
    }

    /// Counts one observation at `i`, which [`Window::fits`]. Writer only.
    fn add(&self, i: i64) {
        let width = self.counts.len() as i64;
        let base = self.base.load(Relaxed);
        if !(base..base + width).contains(&i) {
            self.rebase(i);
        }
        let base = self.base.load(Relaxed);
        let slot = &self.counts[(i - base) as usize];
        slot.store(slot.load(Relaxed) + 1, Relaxed);
        match self.range() {
            None => {
                self.lo.store(i, Relaxed);
                self.hi.store(i, Relaxed);
            }
            Some((lo, hi)) => {
                self.lo.store(lo.min(i), Relaxed);
                self.hi.store(hi.max(i), Relaxed);
            }
        }
    }

    /// Moves the window so that it starts at the lower of the populated range and `i`, in place. Writer only.
    fn rebase(&self, i: i64) {
        let old = self.base.load(Relaxed);
        let new = self.range().map_or(i, |(lo, _)| lo.min(i));
        if let Some((lo, hi)) = self.range() {
            // Each count is read, its slot cleared, then written at its new slot; the order never overwrites
            // a count not yet moved.
            let shift = |j: i64| {
                let n = self.counts[(j - old) as usize].swap(0, Relaxed);
                self.counts[(j - new) as usize].store(n, Relaxed);
            };
            if new < old {
                (lo..=hi).rev().for_each(shift);
            } else {
                (lo..=hi).for_each(shift);
            }
        }
        self.base.store(new, Relaxed);
    }

    /// Merges pairs of buckets in place: index `i` becomes `(i + 1) >> 1` (one schema lower). Writer only.
    fn halve(&self) {
        let Some((lo, hi)) = self.range() else { return };
        let base = self.base.load(Relaxed);
        let new_lo = (lo + 1) >> 1;
        // A count's new slot is never after its old one, so going up never overwrites a count not yet moved.
        for j in lo..=hi {
            let n = self.counts[(j - base) as usize].swap(0, Relaxed);
            let dst = &self.counts[(((j + 1) >> 1) - new_lo) as usize];
            dst.store(dst.load(Relaxed) + n, Relaxed);
        }
        self.base.store(new_lo, Relaxed);
        self.lo.store(new_lo, Relaxed);
        self.hi.store((hi + 1) >> 1, Relaxed);
    }

    /// Appends (index, count) of the populated range to `out` (reader side; counts may be zero).
    fn read(&self, out: &mut Vec<(i32, u64)>) {
        out.clear();
        if let Some((lo, hi)) = self.range() {
            let base = self.base.load(Relaxed);
            let width = self.counts.len() as i64;
            for j in lo..=hi {
                // A torn read (a move in progress) is discarded by the caller's sequence check; stay in bounds.
                if (base..base + width).contains(&j) {
                    out.push((j as i32, self.counts[(j - base) as usize].load(Relaxed)));
                }
            }
        }
    }
}

/// A native histogram's buckets (count and sum live with the classic buckets).
pub struct Native {
    schema: AtomicI64,
    zero_threshold: f64,
    zero: AtomicU64,
    positive: Window,
    negative: Window,
}

/// What a scrape copies out of a [`Native`].
#[derive(Default, Debug, Clone, PartialEq)]
pub struct NativeSnapshot {
    pub schema: i8,
    pub zero_threshold: f64,
    pub zero_count: u64,
    /// (index, count), increasing index, from the lowest to the highest populated bucket.
    pub positive: Vec<(i32, u64)>,
    pub negative: Vec<(i32, u64)>,
}

impl Native {
    pub fn new(schema: i8, zero_threshold: f64, max_buckets: usize) -> Native {
        Native {
            schema: AtomicI64::new(i64::from(schema.clamp(MIN_SCHEMA, MAX_SCHEMA))),
            zero_threshold,
            zero: AtomicU64::new(0),
            positive: Window::new(max_buckets),
            negative: Window::new(max_buckets),
        }
    }

    /// Counts `v`. Writer only (inside the histogram's write section). NaN is not counted here.
    #[inline]
    pub fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        if v.abs() <= self.zero_threshold {
            self.zero.store(self.zero.load(Relaxed) + 1, Relaxed);
            return;
        }
        let window = if v > 0.0 { &self.positive } else { &self.negative };
        let schema = self.schema.load(Relaxed) as i8;
        let i = i64::from(index(v.abs(), schema));
        // The common case: a bucket within the populated range.
        let (lo, hi) = (window.lo.load(Relaxed), window.hi.load(Relaxed));
        if lo <= i && i <= hi {
            let slot = &window.counts[(i - window.base.load(Relaxed)) as usize];
            slot.store(slot.load(Relaxed) + 1, Relaxed);
            return;
        }
        self.observe_outside(window, i, schema);
    }

    /// A bucket outside the populated range: the window moves, or the schema is lowered until it fits.
    #[cold]
    fn observe_outside(&self, window: &Window, mut i: i64, mut schema: i8) {
        while !window.fits(i) && schema > MIN_SCHEMA {
            self.positive.halve();
            self.negative.halve();
            schema -= 1;
            i = (i + 1) >> 1;
            self.schema.store(i64::from(schema), Relaxed);
        }
        if !window.fits(i) {
            // Unreachable with at least 132 buckets (module comment); kept in the nearest bucket otherwise.
            let (lo, hi) = window.range().unwrap_or((i, i));
            let width = window.counts.len() as i64;
            i = i.clamp(hi - width + 1, lo + width - 1);
        }
        window.add(i);
    }

    /// Copies the buckets into `out` (reused buffers). The caller checks the write section's sequence.
    pub fn read(&self, out: &mut NativeSnapshot) {
        out.schema = self.schema.load(Relaxed) as i8;
        out.zero_threshold = self.zero_threshold;
        out.zero_count = self.zero.load(Relaxed);
        self.positive.read(&mut out.positive);
        self.negative.read(&mut out.negative);
    }

    /// Bytes held per series.
    pub fn heap_bytes(&self) -> usize {
        (self.positive.counts.len() + self.negative.counts.len()) * std::mem::size_of::<AtomicU64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_the_bucket_definition() {
        // Powers of two are upper bounds at every schema.
        for s in MIN_SCHEMA..=MAX_SCHEMA {
            for e in [-10, -1, 0, 1, 3, 10, 40] {
                let v = 2f64.powi(e);
                let i = index(v, s);
                assert!(upper_bound(i, s) >= v * (1.0 - 1e-12), "s={s} v={v} i={i}");
                assert!(upper_bound(i - 1, s) < v, "s={s} v={v} i={i}");
            }
        }
        assert_eq!(index(1.0, 3), 0);
        assert_eq!(index(1.0001, 3), 1);
        assert_eq!(index(2.0, 3), 8);
        assert_eq!(index(2.0, 0), 1);
        assert_eq!(index(3.0, 0), 2);
        assert_eq!(index(4.0, -1), 1);
        assert_eq!(index(5.0, -1), 2);
        assert_eq!(index(0.5, 0), -1);
        // Values in between land in the bucket whose bounds enclose them.
        let mut x = 1e-5;
        while x < 1e7 {
            for s in [-4, -1, 0, 1, 3, 8] {
                let i = index(x, s);
                let (lo, hi) = (upper_bound(i - 1, s), upper_bound(i, s));
                assert!(lo < x * (1.0 + 1e-12) && x <= hi * (1.0 + 1e-12), "s={s} x={x} i={i} ({lo}, {hi}]");
            }
            x *= 1.37;
        }
        assert_eq!(index(f64::MIN_POSITIVE / 4.0, 0), -1023 - 1, "subnormals");
        assert_eq!(index(f64::INFINITY, -4), index(f64::MAX, -4));
        assert_eq!(index(f64::MAX, -4) - index(f64::from_bits(1), -4) + 1, 132);
    }

    #[test]
    fn counts_zero_bucket_and_signs() {
        let n = Native::new(0, 0.5, 160);
        for v in [0.0, 0.5, -0.25, 1.0, 2.0, 3.0, 3.0, -3.0, f64::NAN] {
            n.observe(v);
        }
        let mut s = NativeSnapshot::default();
        n.read(&mut s);
        assert_eq!((s.schema, s.zero_count), (0, 3));
        assert_eq!(s.positive, vec![(0, 1), (1, 1), (2, 2)]);
        assert_eq!(s.negative, vec![(2, 1)]);
    }

    #[test]
    fn a_wide_spread_lowers_the_schema_and_keeps_every_count() {
        let n = Native::new(3, 0.0, 132);
        let values: Vec<f64> = (0..2000).map(|k| 1.0 + f64::from(k) * 37.0).chain([1e-30, 1e30]).collect();
        for v in &values {
            n.observe(*v);
        }
        let mut s = NativeSnapshot::default();
        n.read(&mut s);
        assert!(s.schema < 3, "schema lowered: {}", s.schema);
        let total: u64 = s.positive.iter().map(|b| b.1).sum();
        assert_eq!(total, values.len() as u64);
        let (lo, hi) = (s.positive.first().unwrap().0, s.positive.last().unwrap().0);
        assert!(hi - lo < 132);
        // Every value is in the bucket the final schema gives it.
        let mut want = std::collections::BTreeMap::new();
        for v in &values {
            *want.entry(index(*v, s.schema)).or_insert(0u64) += 1;
        }
        let got: std::collections::BTreeMap<i32, u64> = s.positive.iter().copied().filter(|b| b.1 > 0).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn the_window_moves_without_losing_counts() {
        let n = Native::new(0, 0.0, 132);
        // Indexes -60 to 60: the window moves down and up, the schema stays.
        for v in [1e10, 1.0, 1e-10, 1e18, 1e-18] {
            n.observe(v);
        }
        let mut s = NativeSnapshot::default();
        n.read(&mut s);
        assert_eq!(s.schema, 0);
        let got: Vec<(i32, u64)> = s.positive.iter().copied().filter(|b| b.1 > 0).collect();
        let mut want: Vec<(i32, u64)> = [1e-18, 1e-10, 1.0, 1e10, 1e18].iter().map(|v| (index(*v, 0), 1)).collect();
        want.sort();
        assert_eq!(got, want);
    }
}
