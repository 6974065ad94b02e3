#!/usr/bin/env python3
"""Times the exporter's drain and scrapes it (helper of benches/e2e; standard library only).

    e2e_watch.py --url http://127.0.0.1:PORT/metrics --n N --pid-file F --interval SECONDS [--timeout S]

Start it before the exporter (it waits for the port): a small topic can drain within milliseconds of the
exporter binding its port. --pid-file names a file holding the exporter's pid, read after the drain.

1. Until the first event is counted, it polls /metrics every 5 ms (the exporter is idle then, joining its
   group). The drain starts at the midpoint between the last poll that saw
   dashstream_quality_monitor_queries_total == 0 and the first that saw more. If even the first scrape sees
   events (a small topic on a busy machine), the drain is timed from the exporter's process start instead
   (an underestimate of the rate; "start_from" in the JSON says which).
2. Then it scrapes every --interval seconds on a fixed schedule (0.05 = 20 scrapes/s, "with scraping";
   0.5 = 2/s, only to see the end, "without scraping"), timing each scrape from sending the request to
   having the whole body, like Prometheus does: one keep-alive connection, Accept-Encoding: gzip, and with
   --format openmetrics|protobuf the Accept header Prometheus 2.42 sends for that format (default: none, text).
3. The drain ends at dashstream_exporter_last_event_timestamp_seconds as read by the first scrape that sees
   queries_total == N: the wall time at which the worker started applying the batch holding the last event.
   So the end is exact whatever the interval, and both runs are timed the same way.

With --interleave W (seconds) step 2 alternates instead, within the one drain: a window of W seconds scraped
every --interval seconds, then a window of W seconds not scraped at all, and so on (--first quiet starts
with a quiet window). Both kinds of window begin and end with a scrape (the end of one is the beginning of
the next), and each window's ingest rate is (count at its end - count at its start) / (time between the
two scrapes), each scrape timed at the midpoint of sending the request and having the answer. The window
in which the count reaches N is not complete and is reported as such. Drains long enough for several
windows compare ingest with and without scraping under the same conditions (broker, partitions, the
moment of the drain), which separate drains of a second or two cannot.

Prints one JSON line: events, seconds, events_per_second, scrape latencies (ms) taken during the drain
(p50, p99, max, count; percentiles by nearest rank), the series count of the last exposition, the
exporter's VmHWM/VmRSS (KiB) from /proc/PID/status after the drain, the exporter's CPU seconds
(utime + stime of /proc/PID/stat, every thread of the process, librdkafka's included; 10 ms resolution):
"cpu_s" from its start to the scrape that saw the count reach N, "cpu_drain_s" from the first scrape that
saw an event to that scrape, "cpu_threads_s" the same as "cpu_s" per thread name, and, with --interleave,
the windows
(scraped or not, start and end in seconds since the drain began, counts, events/s, complete or not).
Exits 1 on timeout or if the count overshoots N.
"""

import argparse
import gzip
import http.client
import json
import math
import os
import sys
import time
import urllib.parse

ACCEPT = {
    "text": None,
    "openmetrics": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "protobuf": "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,"
    "application/openmetrics-text;version=1.0.0;q=0.8,*/*;q=0.1",
}


def _varint(b, i):
    shift = v = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return v, i


def _fields(b):
    """(field number, wire type, value) of one protobuf message (varint, fixed64 as bytes, length-delimited)."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        f, w = key >> 3, key & 7
        if w == 0:
            v, i = _varint(b, i)
        elif w == 1:
            v, i = b[i : i + 8], i + 8
        elif w == 2:
            n, i = _varint(b, i)
            v, i = b[i : i + n], i + n
        elif w == 5:
            v, i = b[i : i + 4], i + 4
        else:
            raise ValueError(f"wire type {w}")
        yield f, w, v


def protobuf_as_text(body):
    """The counters and gauges of a delimited MetricFamily stream as unlabelled text lines (what value()
    reads), plus one placeholder line per other sample so series() counts the same as in the text format."""
    import struct

    out, i = [], 0
    while i < len(body):
        n, i = _varint(body, i)
        fam, i = body[i : i + n], i + n
        name, metrics = b"", []
        for f, _, v in _fields(fam):
            if f == 1:
                name = v
            elif f == 4:
                metrics.append(v)
        for m in metrics:
            for f, _, v in _fields(m):
                if f in (2, 3):  # gauge, counter: value is field 1 (double)
                    for g, _, x in _fields(v):
                        if g == 1:
                            out.append(name + b" " + repr(struct.unpack("<d", x)[0]).encode())
                elif f == 7:  # histogram: a line per bucket, _sum and _count
                    out.extend(b"h 0" for g, _, _ in _fields(v) if g == 3)
                    out.extend([b"h 0", b"h 0"])
    return b"\n" + b"\n".join(out) + b"\n"


QUERIES = b"dashstream_quality_monitor_queries_total "
LAST_EVENT = b"dashstream_exporter_last_event_timestamp_seconds "
PROCESS_START = b"process_start_time_seconds "


class Scraper:
    def __init__(self, url, accept=None):
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.path = u.hostname, u.port, u.path or "/metrics"
        self.conn = None
        self.headers = {"Accept-Encoding": "gzip"}
        if accept:
            self.headers["Accept"] = accept

    def scrape(self):
        """Returns (seconds taken, body) or raises OSError/HTTPException."""
        took, _, body = self.timed_scrape()
        return took, body

    def timed_scrape(self):
        """Returns (seconds taken, midpoint on the time.perf_counter clock, body)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        t0 = time.perf_counter()
        try:
            self.conn.request("GET", self.path, headers=self.headers)
            r = self.conn.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        took = time.perf_counter() - t0
        if r.status != 200:
            raise http.client.HTTPException(f"/metrics answered {r.status}")
        if r.getheader("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if (r.getheader("Content-Type") or "").startswith("application/vnd.google.protobuf"):
            body = protobuf_as_text(body)
        return took, t0 + took / 2, body


def value(body, prefix):
    i = body.find(b"\n" + prefix)
    if i < 0:
        return None
    j = body.index(b"\n", i + 1)
    return float(body[i + 1 + len(prefix) : j])


def series(body):
    return sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))


def status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    k, v = line.split(":")
                    out[k.strip()] = int(v.split()[0])
    except OSError:
        pass
    return out


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of every thread of the process so far (fields 14 and 15 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu_seconds(pid):
    """utime + stime per thread name (librdkafka's "rdk:broker1" etc., "kafka-poll", "worker"), summed."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        out[name] = round(out.get(name, 0) + (int(fields[11]) + int(fields[12])) / CLK_TCK, 3)
    return out


def percentile(xs, p):
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--pid-file", required=True)
    ap.add_argument("--interval", type=float, required=True)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--interleave", type=float, default=0, help="window length (s); 0 = no windows")
    ap.add_argument("--first", choices=["scraped", "quiet"], default="scraped")
    ap.add_argument("--format", choices=sorted(ACCEPT), default="text",
                    help="the exposition format to ask for (Accept header as Prometheus 2.42 sends it)")
    a = ap.parse_args()

    s = Scraper(a.url, ACCEPT[a.format])
    deadline = time.monotonic() + a.timeout

    def fail(msg):
        print(f"e2e_watch: {msg}", file=sys.stderr)
        sys.exit(1)

    # 1. Wait for the first counted event. The pid file is written right after the exporter starts, before
    # its port opens, so it is there by the first answer.
    last_zero = None
    pid = None
    while True:
        if time.monotonic() > deadline:
            fail("no event counted before the timeout")
        sent = time.time()
        try:
            _, body = s.scrape()
        except (OSError, http.client.HTTPException):
            time.sleep(0.002)
            continue
        count = value(body, QUERIES)
        if count is None:
            fail("no dashstream_quality_monitor_queries_total in /metrics")
        if pid is None:
            with open(a.pid_file) as f:
                pid = int(f.read().strip())
        if count > 0:
            cpu_start = cpu_seconds(pid)
            if last_zero is None:
                # The drain began before this watcher's first scrape (a small topic on a busy machine drains
                # within milliseconds of the port opening): time it from the process start, which makes the
                # rate an underestimate, and say so.
                start = value(body, PROCESS_START)
                start_from = "process_start"
                print("e2e_watch: the first scrape already counted events; timing from the process start",
                      file=sys.stderr)
            else:
                start = (last_zero + time.time()) / 2
                start_from = "first_count"
            break
        last_zero = sent
        time.sleep(0.005)
    began = time.perf_counter()

    # 2. Scrape on a fixed schedule until the count reaches N.
    latencies = []
    windows = []
    next_at = time.monotonic()
    if a.interleave > 0:
        scraped = a.first == "scraped"
        _, w_mid, body = s.timed_scrape()
        w_count = count = value(body, QUERIES)
        w_end = next_at + a.interleave
    while count < a.n:
        if a.interleave > 0 and not scraped:
            next_at = w_end
        else:
            next_at += a.interval
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        if time.monotonic() > deadline:
            fail(f"timed out at {count:.0f} of {a.n} events")
        took, mid, body = s.timed_scrape()
        count = value(body, QUERIES)
        if count < a.n and (a.interleave <= 0 or scraped):
            latencies.append(took * 1000)
        if a.interleave > 0 and (next_at >= w_end - 1e-6 or count >= a.n):
            windows.append(
                {
                    "scraped": scraped,
                    "start_s": round(w_mid - began, 4),
                    "end_s": round(mid - began, 4),
                    "count_start": w_count,
                    "count_end": count,
                    "events_per_second": (count - w_count) / (mid - w_mid) if mid > w_mid else 0,
                    "complete": count < a.n,
                }
            )
            scraped, w_mid, w_count = not scraped, mid, count
            w_end += a.interleave
    cpu_end = cpu_seconds(pid)
    cpu_threads = thread_cpu_seconds(pid)
    if count != a.n:
        fail(f"counted {count:.0f} events, expected {a.n}")
    end = value(body, LAST_EVENT)
    seconds = end - start
    st = status(pid)
    print(
        json.dumps(
            {
                "events": a.n,
                "seconds": seconds,
                "events_per_second": a.n / seconds if seconds > 0 else 0,
                "start_from": start_from,
                "scrape_ms": {
                    "p50": percentile(latencies, 50),
                    "p99": percentile(latencies, 99),
                    "max": max(latencies, default=float("nan")),
                    "count": len(latencies),
                    "all": [round(x, 3) for x in latencies],
                },
                "series": series(body),
                "peak_rss_kib": st.get("VmHWM", 0),
                "rss_kib": st.get("VmRSS", 0),
                "cpu_s": cpu_end,
                "cpu_drain_s": cpu_end - cpu_start,
                "cpu_threads_s": cpu_threads,
                "windows": windows,
            }
        )
    )


if __name__ == "__main__":
    main()
