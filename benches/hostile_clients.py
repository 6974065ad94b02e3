#!/usr/bin/env python3
"""Hostile HTTP clients against the exporter, plus a Prometheus-like scraper (helper of benches/hostile;
standard library only, loopback only).

    hostile_clients.py --port PORT --pid-file F --conns C --seconds S [--scrape-interval 0.1]

Start it before the exporter. Waits for the port (then reads the exporter's pid from F), then for S seconds (or until SIGTERM/SIGINT):
- keeps C hostile connections open, reopening each one the server closes (--reopen-delay seconds later,
  default 1; every connection is serviced 20 times a second), in five kinds, round robin:
  idle (connects, sends nothing), slow-loris (a request line, then one header byte per second, never
  finishing), oversized (a header line of 1 MiB, sent as fast as the server takes it), garbage (4 KiB of
  random bytes, an invalid request line or HTTP/0.9, then CRLF CRLF) and non-GET (POST/PUT/DELETE with a
  body on one kept-alive connection, once a second);
- scrapes /metrics every --scrape-interval seconds (0: not at all) on a fresh connection, like Prometheus
  (gzip, its Accept header), timing each from connect to the whole body, and records its status (run the
  scraper as a process of its own, with --conns 0: in the attacking process it would wait for the GIL);
- samples Threads: and VmRSS: of /proc/PID/status every 20 ms.
Prints one JSON line: scrapes (count, by status, latency p50/p99/max in ms of the 200s), hostile
connections opened, answers seen by status, peak threads, peak RSS (KiB), and the exporter's CPU time
(user + system, seconds) when last sampled.
"""

import argparse
import errno
import gzip
import json
import math
import os
import random
import selectors
import signal
import socket
import threading
import time

KINDS = ["idle", "loris", "big", "garbage", "method"]
PROM_REQ = (
    "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: Prometheus/2.53.0\r\n"
    "Accept: application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1\r\n"
    "Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\nConnection: close\r\n\r\n"
)


def percentile(xs, p):
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)] if xs else float("nan")


class Hostile:
    def __init__(self, kind, addr, rng):
        self.kind, self.rng = kind, rng
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.setblocking(False)
        self.s.connect_ex(addr)
        self.out = b""
        self.next_at = time.monotonic()
        self.got = b""
        if kind == "loris":
            self.out = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: "
        elif kind == "big":
            self.out = b"GET /metrics HTTP/1.1\r\nX-Big: " + b"x" * (1 << 20)
        elif kind == "garbage":
            junk = [
                bytes(rng.getrandbits(8) for _ in range(4096)) + b"\r\n\r\n",
                b"GARBAGE\r\n\r\n",
                b"GET /\r\n\r\n",
                b"GET /" + b"u" * 40000 + b" HTTP/1.1\r\n\r\n",
            ]
            self.out = junk[rng.randrange(len(junk))]

    def tick(self, now):
        """Sends what is due; returns False once the server has closed the connection."""
        if self.kind == "loris" and not self.out and now >= self.next_at:
            self.out, self.next_at = b"a", now + 1.0
        if self.kind == "method" and not self.out and now >= self.next_at:
            m = ("POST", "PUT", "DELETE")[self.rng.randrange(3)]
            self.out = f"{m} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".encode()
            self.next_at = now + 1.0
        try:
            while True:
                b = self.s.recv(65536)
                if not b:
                    return False
                self.got += b[:4096]
        except BlockingIOError:
            pass
        except OSError:
            return False
        if self.out:
            try:
                n = self.s.send(self.out[:262144])
                self.out = self.out[n:]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                if e.errno in (errno.ENOTCONN, errno.EINPROGRESS):
                    return True
                return False
        return True

    def statuses(self):
        out = []
        for part in self.got.split(b"HTTP/1.")[1:]:
            try:
                out.append(int(part[2:5]))
            except ValueError:
                pass
        return out


def proc(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def scrape_once(port):
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(PROM_REQ.format(port=port).encode())
        raw = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            raw += b
    finally:
        s.close()
    took = time.perf_counter() - t0
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/"):
        raise ValueError(f"no HTTP answer ({len(raw)} bytes before the close, {took * 1000:.1f} ms)")
    status = int(head.split(b" ")[1])
    if status == 200:
        if b"content-encoding: gzip" in head.lower():
            body = gzip.decompress(body)
        if b"\ndashstream_quality_monitor_queries_total " not in body:
            status = -1  # a 200 without the known metric
    return status, took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid-file", required=True)
    ap.add_argument("--conns", type=int, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--scrape-interval", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--reopen-delay", type=float, default=1.0)
    a = ap.parse_args()
    addr = ("127.0.0.1", a.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(addr, timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("hostile_clients: the exporter's port never opened")
            time.sleep(0.02)

    pid = int(open(a.pid_file).read())
    peak = {"threads": 0, "rss": 0, "cpu": 0.0}

    def cpu_seconds():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def sampler():
        while not stop.is_set():
            peak["threads"] = max(peak["threads"], proc(pid, "Threads:"))
            peak["rss"] = max(peak["rss"], proc(pid, "VmRSS:"))
            c = cpu_seconds()
            if c is not None:
                peak["cpu"] = c
            time.sleep(0.02)

    scrapes = []
    scrape_errors = []

    def scraper():
        nxt = time.monotonic()
        while not stop.is_set():
            try:
                scrapes.append(scrape_once(a.port))
            except (OSError, ValueError, IndexError) as e:
                scrapes.append((0, 0.0))
                scrape_errors.append(f"{type(e).__name__}: {e}")
            nxt += a.scrape_interval
            time.sleep(max(0.0, nxt - time.monotonic()))

    threads = [threading.Thread(target=sampler)]
    if a.scrape_interval > 0:
        threads.append(threading.Thread(target=scraper))
    for t in threads:
        t.start()
    rng = random.Random(a.seed)
    conns = [Hostile(KINDS[i % len(KINDS)], addr, rng) for i in range(a.conns)]
    opened, answers = len(conns), {}
    end = time.monotonic() + a.seconds
    reopen = []  # (when, kind)
    while (conns or reopen) and not stop.is_set() and time.monotonic() < end:
        now = time.monotonic()
        alive = []
        for c in conns:
            if c.tick(now):
                alive.append(c)
            else:
                for st in c.statuses():
                    answers[st] = answers.get(st, 0) + 1
                c.s.close()
                reopen.append((now + a.reopen_delay, c.kind))
        while reopen and reopen[0][0] <= now:
            alive.append(Hostile(reopen.pop(0)[1], addr, rng))
            opened += 1
        conns = alive
        time.sleep(max(0.0, 0.05 - (time.monotonic() - now)))
    if a.conns == 0:
        while not stop.is_set() and time.monotonic() < end:
            stop.wait(0.1)
    stop.set()
    for c in conns:
        for st in c.statuses():
            answers[st] = answers.get(st, 0) + 1
        c.s.close()
    for t in threads:
        t.join()
    ok = [took * 1000 for st, took in scrapes if st == 200]
    by_status = {}
    for st, _ in scrapes:
        by_status[str(st)] = by_status.get(str(st), 0) + 1
    print(json.dumps({
        "conns": a.conns,
        "scrapes": len(scrapes),
        "scrape_status": by_status,
        "scrape_errors": scrape_errors[:20],
        "scrape_p50_ms": percentile(ok, 50),
        "scrape_p99_ms": percentile(ok, 99),
        "scrape_max_ms": max(ok) if ok else float("nan"),
        "hostile_opened": opened,
        "hostile_answers": {str(k): v for k, v in sorted(answers.items())},
        "peak_threads": peak["threads"],
        "peak_rss_kib": peak["rss"],
        "exporter_cpu_seconds": peak["cpu"],
    }))


if __name__ == "__main__":
    main()
