//! The standard `process_*` metrics (CPU time, memory, file descriptors, threads, start time), read from
//! `/proc` on each scrape; the original exported none. Also the wall clock the exporter stamps metrics with.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::Gauge;

/// Seconds since the Unix epoch, as a float.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Standard `process_*` metrics from /proc (the original exported none).
pub(super) struct ProcessCollector {
    descs: Vec<Desc>,
    cpu: prometheus::Counter,
    rss: Gauge,
    vsize: Gauge,
    fds: Gauge,
    max_fds: Gauge,
    threads: Gauge,
    start: Gauge,
}

impl ProcessCollector {
    pub(super) fn new() -> Self {
        let cpu =
            prometheus::Counter::new("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.")
                .expect("valid metric");
        let g = |n: &str, h: &str| Gauge::new(n, h).expect("valid metric");
        let rss = g("process_resident_memory_bytes", "Resident memory size in bytes.");
        let vsize = g("process_virtual_memory_bytes", "Virtual memory size in bytes.");
        let fds = g("process_open_fds", "Number of open file descriptors.");
        let max_fds = g("process_max_fds", "Maximum number of open file descriptors.");
        let threads = g("process_threads", "Number of OS threads in the process.");
        // Set once from the clock (the /proc/stat boot time is hidden under systemd's ProcSubset=pid).
        let start = g("process_start_time_seconds", "Start time of the process since unix epoch in seconds.");
        start.set(unix_now());
        let mut descs = Vec::new();
        for c in [&rss, &vsize, &fds, &max_fds, &threads, &start] {
            descs.extend(c.desc().into_iter().cloned());
        }
        descs.extend(cpu.desc().into_iter().cloned());
        ProcessCollector { descs, cpu, rss, vsize, fds, max_fds, threads, start }
    }
}

/// Fields of /proc/self/stat after the command name: (utime, stime, num_threads, vsize, rss pages).
fn proc_stat() -> Option<(f64, f64, f64, f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): index = field number - 3.
    let num = |field: usize| f.get(field - 3).and_then(|s| s.parse::<f64>().ok());
    Some((num(14)?, num(15)?, num(20)?, num(23)?, num(24)?))
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
        if let Some((utime, stime, threads, vsize, rss)) = proc_stat() {
            let cpu = (utime + stime) / ticks;
            let prev = self.cpu.get();
            if cpu > prev {
                self.cpu.inc_by(cpu - prev);
            }
            self.threads.set(threads);
            self.vsize.set(vsize);
            self.rss.set(rss * page);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.fds.set(dir.count() as f64);
        }
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes into the struct we own.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            self.max_fds.set(lim.rlim_cur as f64);
        }
        let mut out = Vec::new();
        out.extend(self.cpu.collect());
        for g in [&self.rss, &self.vsize, &self.fds, &self.max_fds, &self.threads, &self.start] {
            out.extend(g.collect());
        }
        out
    }
}
