//! Allocations per event on the apply path (issue 6: "no allocation per event on the apply path for known
//! label values").
//!
//! `cargo bench --bench alloc_count` prints, for 100 000 events applied after a warm-up, the heap
//! allocations (alloc + realloc calls, and bytes) per event counted by a global allocator wrapped around the
//! system one:
//!
//! - `apply, known labels`: the 4096-record corpus applied once, then cycled: every model, category, retry
//!   status and session already seen. The target is 0.
//! - `apply, live stream`: fresh generator events (new sessions keep starting, as in production), decoded
//!   beforehand; allocations here come from session bookkeeping growing, amortized.
//! - `decode (framed)`, `decode + normalize` (the poll thread's work) and `decode+normalize+apply` (the
//!   whole path of one record on one thread): with the normalizer warmed up on the corpus (its model-name
//!   cache holds every name), so the target is 0 for these too.
//!
//! - `monitor: decode+norm+apply`: the same whole path for records shaped as DashFlow's QualityMonitor writes
//!   them (scores, average, issue count, issue tags; and its alert events), after a warm-up. The target is 0.
//!
//! - `hand-off + apply (batches)`: the corpus's events pushed through the channel between the poll thread
//!   and the worker (`ingest::batch`: batches filled, sent, applied, reported and handed back), on one
//!   thread, after the batches have gone round once. The target is 0: the batches are allocated once.
//!
//! Under `cargo test --benches` it runs the same with 2 000 events, as a smoke test.
//! It exits non-zero if it finds no quality event to apply; it never fails on the counts (a benchmark,
//! not a test).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use dashflow_prometheus_exporter::decode::event::Normalizer;
use dashflow_prometheus_exporter::decode::Decoded;
use dashflow_prometheus_exporter::ingest::batch::{self, Item};
use dashflow_prometheus_exporter::metrics::unix_now;
use dashflow_prometheus_exporter::sim::generator::{Generator, Traffic};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(l.size() as u64, Relaxed);
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(l.size() as u64, Relaxed);
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        REALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new.saturating_sub(l.size()) as u64, Relaxed);
        System.realloc(p, l, new)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Events per measurement under `cargo bench`; `cargo test --benches` (no `--bench` argument) runs a quick
/// smoke pass instead.
fn events_per_case() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        100_000
    } else {
        2_000
    }
}

fn snapshot() -> (u64, u64) {
    (ALLOCS.load(Relaxed) + REALLOCS.load(Relaxed), BYTES.load(Relaxed))
}

fn report(what: &str, n: usize, f: impl FnOnce()) {
    let (a0, b0) = snapshot();
    f();
    let (a1, b1) = snapshot();
    println!(
        "{what:<28} {n:>7} events: {:>9} allocations ({:.4}/event), {:>11} bytes ({:.1} B/event)",
        a1 - a0,
        (a1 - a0) as f64 / n as f64,
        b1 - b0,
        (b1 - b0) as f64 / n as f64
    );
}

fn main() {
    let events = events_per_case();
    let records = common::corpus(common::Kind::Framed);
    let evs = common::events(&records);
    assert!(!evs.is_empty(), "no quality events");
    let mut a = common::applier(common::metrics());
    common::warm_up(&mut a, &evs);
    common::warm_up(&mut a, &evs);
    let (wall, now) = (unix_now(), Instant::now());

    println!("allocation counts after warm-up (global counting allocator, 1 thread):");
    report("apply, known labels", events, || {
        for i in 0..events {
            a.apply(black_box(&evs[i % evs.len()]), wall, now);
        }
    });

    // A live stream: the generator continues past the corpus, so new sessions keep appearing.
    let mut g = Generator::new(Traffic { seed: 8, zstd_ratio: 0.0, legacy_ratio: 0.0, ..Traffic::default() });
    let mut key = String::new();
    let live: Vec<Vec<u8>> = (0..events)
        .map(|_| {
            let mut v = Vec::new();
            g.next_encoded(&mut v, &mut key);
            v
        })
        .collect();
    let live_evs = common::events(&live);
    report("apply, live stream", events, || {
        for ev in &live_evs {
            a.apply(black_box(ev), wall, now);
        }
    });
    drop(live_evs);

    let mut d = common::decoder();
    let mut n = Normalizer::default();
    for r in &records {
        if let Ok(Decoded::Quality(v)) = d.decode(r) {
            n.event(&v);
        }
    }
    report("decode (framed)", events, || {
        for i in 0..events {
            black_box(d.decode(black_box(&records[i % records.len()])).ok());
        }
    });
    report("decode + normalize (framed)", events, || {
        for i in 0..events {
            if let Ok(Decoded::Quality(v)) = d.decode(black_box(&records[i % records.len()])) {
                black_box(n.event(&v));
            }
        }
    });
    report("decode+normalize+apply", events, || {
        for i in 0..events {
            if let Ok(Decoded::Quality(v)) = d.decode(black_box(&records[i % records.len()])) {
                a.apply(&n.event(&v), wall, now);
            }
        }
    });

    // DashFlow's QualityMonitor shape (issue 27): every record a monitor evaluation (three scores, their
    // average, an issue count and issue tags) or its LOW_QUALITY alert event, through the same path once
    // every label value has been seen.
    let mut g = Generator::new(Traffic {
        seed: 9,
        monitor_ratio: 1.0,
        zstd_ratio: 0.0,
        legacy_ratio: 0.0,
        ..Traffic::default()
    });
    let monitor: Vec<Vec<u8>> = (0..records.len())
        .map(|_| {
            let mut v = Vec::new();
            g.next_encoded(&mut v, &mut key);
            v
        })
        .collect();
    let mut apply_monitor = |count: usize, a: &mut dashflow_prometheus_exporter::metrics::Applier| {
        for i in 0..count {
            if let Ok(Decoded::Quality(v)) = d.decode(black_box(&monitor[i % monitor.len()])) {
                a.apply(&n.event(&v), wall, now);
            }
        }
    };
    apply_monitor(2 * monitor.len(), &mut a);
    report("monitor: decode+norm+apply", events, || apply_monitor(events, &mut a));

    // The channel on one thread: each full batch is applied before the next is filled, so a free batch is
    // always there. The first 8192 records take every batch round once (and size the position tables).
    let (feed, mut inbox, _drain) = batch::channel(8192);
    let mut through = |count: usize, a: &mut dashflow_prometheus_exporter::metrics::Applier| {
        for i in 0..count {
            let item = Item { partition: (i % 64) as i32, offset: i as i64, event: Some(evs[i % evs.len()]) };
            if feed.push(black_box(item)).expect("the inbox is here") {
                inbox.apply_batch(std::time::Duration::ZERO, |batch| batch.for_each(|ev| a.apply(&ev, wall, now)));
            }
        }
    };
    through(2 * 8192, &mut a);
    report("hand-off + apply (batches)", events, || through(events, &mut a));
}
