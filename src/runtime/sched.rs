//! Scheduler hints, so that a scrape does not wait while a backlog drain keeps every core busy: short slices
//! for the threads that answer HTTP, a lower priority for the ingest threads (ARCHITECTURE.md, Scheduling).
//!
//! A thread asking for a short slice (the EEVDF scheduler's custom slices, Linux 6.12+, no privilege
//! needed) gets an early deadline when woken and runs its few microseconds of work at once instead of after
//! a busy thread's slice; its CPU share is unchanged, and older kernels ignore or refuse the request. A
//! request handler needs more than one short slice, so the ingest threads also run `KAFKA_INGEST_NICE` nice
//! levels lower ([`lower_priority`]), which works on any kernel. Both are best effort; figures are in
//! benches/RESULTS.md.

/// The slice the HTTP threads ask for: the shortest the kernel grants.
pub const SHORT_SLICE_NS: u64 = 100_000;

/// `struct sched_attr` of sched_setattr(2), its first version (48 bytes): no utilization clamps, so those
/// stay as they are.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

const SCHED_OTHER: u32 = 0;
const SCHED_BATCH: u32 = 3;
const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;

fn get_attr() -> std::io::Result<SchedAttr> {
    let mut attr = SchedAttr::default();
    // SAFETY: sched_getattr(2) for the calling thread (pid 0) into a struct of the size passed.
    let r = unsafe {
        libc::syscall(libc::SYS_sched_getattr, 0, &mut attr as *mut SchedAttr, std::mem::size_of::<SchedAttr>(), 0)
    };
    if r == 0 {
        Ok(attr)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn set_attr(attr: &SchedAttr) -> std::io::Result<()> {
    // SAFETY: sched_setattr(2) for the calling thread (pid 0) from a struct whose `size` field is its size.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// What [`prefer_latency`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The thread now runs with this slice (nanoseconds) as read back from the kernel.
    Slice(u64),
    /// The kernel accepted the request but reports another slice: it does not support custom slices.
    Ignored,
    /// The thread has a real-time or deadline policy, which already wins over every normal thread: untouched.
    NotFair,
    /// The kernel refused (errno text).
    Refused(String),
}

/// Asks the scheduler to run the calling thread with [`SHORT_SLICE_NS`] slices: it keeps its policy, nice
/// value and reset-on-fork flag. Threads it starts afterwards inherit the slice. Best effort: see [`Outcome`].
pub fn prefer_latency() -> Outcome {
    let ns = SHORT_SLICE_NS;
    let mut attr = match get_attr() {
        Ok(a) => a,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    if attr.policy != SCHED_OTHER && attr.policy != SCHED_BATCH {
        return Outcome::NotFair;
    }
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    attr.flags &= SCHED_FLAG_RESET_ON_FORK;
    attr.runtime = ns;
    attr.deadline = 0;
    attr.period = 0;
    if let Err(e) = set_attr(&attr) {
        return Outcome::Refused(e.to_string());
    }
    match get_attr() {
        Ok(now) if now.runtime == ns => Outcome::Slice(now.runtime),
        Ok(_) => Outcome::Ignored,
        Err(e) => Outcome::Refused(e.to_string()),
    }
}

/// [`prefer_latency`] for a thread of the HTTP side, logged once per process at debug level.
pub fn prefer_latency_for(thread: &str) {
    static LOGGED: std::sync::Once = std::sync::Once::new();
    let outcome = prefer_latency();
    LOGGED.call_once(|| match &outcome {
        Outcome::Slice(ns) => log::debug!("{thread}: HTTP threads run with {} µs scheduler slices", ns / 1000),
        other => log::debug!("{thread}: short scheduler slices not available ({other:?})"),
    });
}

/// Raises the calling thread's nice value by `by` (capped at 19), which needs no privilege; threads it
/// starts afterwards inherit the new value. Returns the nice value now in force.
///
/// The ingest threads (librdkafka's, the poll thread, the worker) take this so that on saturated cores the
/// HTTP threads win: their weight against a nice-0 thread drops to about a third at +5. A slice alone does
/// not do it: a request handler needs more CPU per scrape than one short slice, and at equal weight it then
/// waits out the busy threads' slices.
pub fn lower_priority(by: i32) -> std::io::Result<i32> {
    // SAFETY: getpriority/setpriority(2) on the calling thread (who = 0 is the caller's thread id on Linux).
    unsafe {
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, 0);
        if now == -1 && *libc::__errno_location() != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let want = (now + by.max(0)).min(19);
        if want != now && libc::setpriority(libc::PRIO_PROCESS, 0, want) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(want)
    }
}

/// [`lower_priority`] for an ingest thread; a refusal is logged (once per process) and otherwise ignored.
pub fn lower_priority_for(thread: &str, by: i32) {
    static LOGGED: std::sync::Once = std::sync::Once::new();
    if by == 0 {
        return;
    }
    let outcome = lower_priority(by);
    LOGGED.call_once(|| match &outcome {
        Ok(n) => log::debug!("{thread}: ingest threads run at nice {n}"),
        Err(e) => log::warn!("{thread}: cannot lower the ingest threads' priority (KAFKA_INGEST_NICE): {e}"),
    });
}

/// Runs `f` on a short-lived thread that first applies `hint`, and returns what the thread returned (`Err`
/// if it panicked). The threads `f` starts (tiny_http's, librdkafka's) inherit the hint; the calling thread
/// keeps its own scheduling.
pub fn on_thread_with<T: Send>(hint: impl FnOnce() + Send, f: impl FnOnce() -> T + Send) -> std::thread::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            hint();
            f()
        })
        .join()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running kernel's (major, minor) version.
    fn kernel() -> (u32, u32) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("kernel release");
        let mut parts = release.trim().split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    /// On a kernel with custom slices (6.12+) the thread gets the short slice and its children inherit it,
    /// while nice and policy stay; an older kernel must report that it ignored or refused the request and
    /// change nothing. Runs in its own thread so the test harness's threads are not touched.
    #[test]
    fn short_slice_keeps_nice_and_is_inherited() {
        let custom_slices = kernel() >= (6, 12);
        std::thread::spawn(move || {
            let before = get_attr().expect("sched_getattr");
            let outcome = prefer_latency();
            let after = get_attr().expect("sched_getattr");
            assert_eq!((after.policy, after.nice), (before.policy, before.nice));
            match outcome {
                Outcome::Slice(ns) => {
                    assert_eq!(ns, SHORT_SLICE_NS);
                    assert_eq!(after.runtime, SHORT_SLICE_NS);
                    let child = std::thread::spawn(|| get_attr().expect("sched_getattr").runtime).join().unwrap();
                    assert_eq!(child, SHORT_SLICE_NS, "threads started later inherit the slice");
                }
                Outcome::Ignored | Outcome::Refused(_) => {
                    assert!(
                        !custom_slices,
                        "kernel {:?} has custom slices but the request failed: {outcome:?}",
                        kernel()
                    );
                    assert_eq!(after.runtime, before.runtime);
                }
                Outcome::NotFair => panic!("test threads run SCHED_OTHER"),
            }
        })
        .join()
        .unwrap();
    }

    /// Raising nice works without privilege, is capped at 19, and threads started afterwards inherit it.
    #[test]
    fn lower_priority_raises_nice_and_is_inherited() {
        std::thread::spawn(|| {
            let before = get_attr().expect("sched_getattr").nice;
            let now = lower_priority(5).expect("raise nice");
            assert_eq!(now, (before + 5).min(19));
            assert_eq!(get_attr().unwrap().nice, now);
            let child = std::thread::spawn(|| get_attr().unwrap().nice).join().unwrap();
            assert_eq!(child, now);
            assert_eq!(lower_priority(30).unwrap(), 19);
            assert_eq!(get_attr().unwrap().nice, 19);
        })
        .join()
        .unwrap();
    }

    /// A nice value set before is kept (sched_setattr would otherwise reset it to 0 with the slice).
    #[test]
    fn a_raised_nice_value_survives() {
        std::thread::spawn(|| {
            let mut attr = get_attr().expect("sched_getattr");
            attr.size = std::mem::size_of::<SchedAttr>() as u32;
            attr.nice = 7; // raising nice needs no privilege
            attr.flags = 0;
            set_attr(&attr).expect("raise nice");
            let _ = prefer_latency();
            assert_eq!(get_attr().unwrap().nice, 7);
        })
        .join()
        .unwrap();
    }
}
