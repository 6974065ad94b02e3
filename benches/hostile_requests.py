#!/usr/bin/env python3
"""The request-level attacks of issue 26 against one exporter binary, each on a fresh process, under an honest
Prometheus-like scraper (helper of benches/hostile --requests; standard library only, loopback only).

    hostile_requests.py --bin PATH [--seconds S] [--attacks a,b,...] [--json FILE]

For each attack: starts BIN with no broker (HTTP only), a web config with basic auth (one user, bcrypt cost 12,
as the issue measured) for the login attack and none for the others, then an honest scraper (a fresh
connection every 100 ms with the right credentials, 10 s timeout) and, 1 s later, the attack, for S seconds
(default 8) in all. Prints a table and one JSON line per attack: honest scrapes, failures, p50/p99/max in ms
(of all scrapes, failures counted at the time they took), and whether the process was still alive.

Attacks:
  body-crash       GET /metrics with Content-Length: 99999999999999 and POST with 18446744073709551615,
                   no body (the process aborted before the relay refused bodies)
  body-hold        two connections: GET /-/healthy with Content-Length: 1000000, then an empty line every
                   3 s (held both request threads before)
  empty-lines      two connections trickling empty lines only, one every 0.5 s
  bcrypt-pipeline  every 2 s, one connection writes 300 pipelined requests with a wrong password and closes
  slow-reader      a connection with a 4 KiB receive buffer pipelines 1000 scrapes and never reads, held open
  http2            a request line ending HTTP/2.0, once a second (answered only at the idle timeout before)
"""

import argparse
import base64
import json
import math
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

# bcrypt cost 12 of "bench-pw" (made once with the bcrypt crate; the exporter only verifies it).
HASH = "$2b$12$hEt9yPIue9oR76lclcaA9uf6sc0uvBZffJiDy7WZIEM0Q39cVEPTu"
GOOD = "Basic " + base64.b64encode(b"prom:bench-pw").decode()
BAD = "Basic " + base64.b64encode(b"prom:wrong").decode()
ATTACKS = ["body-crash", "body-hold", "empty-lines", "bcrypt-pipeline", "slow-reader", "http2"]


def percentile(xs, p):
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)] if xs else float("nan")


def connect(port, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def start(binary, web_config):
    log = tempfile.NamedTemporaryFile(prefix="dfe-hostile-requests-", suffix=".log", delete=False)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "KAFKA_BROKERS": "127.0.0.1:9",
        "METRICS_BIND_IP": "127.0.0.1",
        "METRICS_PORT": "0",
        "RUST_LOG": "info",
        "WEB_CONFIG_FILE": web_config,
    }
    p = subprocess.Popen([binary], env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = open(log.name).read()
        if "serving metrics on http://127.0.0.1:" in text:
            port = int(text.split("serving metrics on http://127.0.0.1:")[1].split("/")[0])
            return p, port, log.name
        if p.poll() is not None:
            raise SystemExit(f"exporter exited:\n{text}")
        time.sleep(0.05)
    raise SystemExit("exporter did not log its port")


def honest(port, auth, stop, out):
    req = f"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n{auth}Connection: close\r\n\r\n".encode()
    while not stop.is_set():
        t0 = time.monotonic()
        ok = False
        try:
            with connect(port) as s:
                s.sendall(req)
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                ok = data.startswith(b"HTTP/1.1 200 ")
        except OSError:
            pass
        out.append((time.monotonic() - t0, ok))
        time.sleep(0.1)


def attack(kind, port, stop):
    if kind == "body-crash":
        for req in (
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999\r\n\r\n",
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\n",
        ):
            try:
                with connect(port, 2) as s:
                    s.sendall(req)
                    s.recv(4096)
            except OSError:
                pass
        stop.wait()
    elif kind in ("body-hold", "empty-lines"):
        socks = []
        for _ in range(2):
            s = connect(port)
            if kind == "body-hold":
                s.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
            socks.append(s)
        every = 3.0 if kind == "body-hold" else 0.5
        while not stop.wait(every):
            for s in socks:
                try:
                    s.sendall(b"\r\n")
                except OSError:
                    pass
        for s in socks:
            s.close()
    elif kind == "bcrypt-pipeline":
        one = f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {BAD}\r\n\r\n".encode()
        while not stop.is_set():
            try:
                with connect(port) as s:
                    s.sendall(one * 300)
            except OSError:
                pass
            stop.wait(2.0)
    elif kind == "slow-reader":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        try:
            s.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 1000)
        except OSError:
            pass
        stop.wait()
        s.close()
    elif kind == "http2":
        while not stop.is_set():
            try:
                with connect(port, 1) as s:
                    s.sendall(b"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n")
                    s.recv(4096)
            except OSError:
                pass
            stop.wait(1.0)


def run(binary, kind, seconds, tmp):
    cfg = os.path.join(tmp, f"{kind}.yml")
    with open(cfg, "w") as f:
        f.write(f"basic_auth_users:\n  prom: {HASH}\n" if kind == "bcrypt-pipeline" else "{}\n")
    p, port, log = start(binary, cfg)
    auth = f"Authorization: {GOOD}\r\n" if kind == "bcrypt-pipeline" else ""
    # The honest login is cached before the attack begins, as a scraper's would be.
    stop, got = threading.Event(), []
    scraper = threading.Thread(target=honest, args=(port, auth, stop, got))
    scraper.start()
    time.sleep(1.0)
    stop_attack = threading.Event()
    attacker = threading.Thread(target=attack, args=(kind, port, stop_attack))
    attacker.start()
    time.sleep(max(0.0, seconds - 1.0))
    stop_attack.set()
    stop.set()
    attacker.join()
    scraper.join()
    alive = p.poll() is None
    if alive:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
    ms = [t * 1000 for t, _ in got]
    os.unlink(log)
    return {
        "attack": kind,
        "scrapes": len(got),
        "failed": sum(1 for _, ok in got if not ok),
        "p50_ms": round(percentile(ms, 50), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1) if ms else None,
        "alive": alive,
        "exit": p.returncode,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--attacks", default=",".join(ATTACKS))
    ap.add_argument("--json")
    a = ap.parse_args()
    kinds = [k for k in a.attacks.split(",") if k]
    unknown = [k for k in kinds if k not in ATTACKS]
    if unknown:
        raise SystemExit(f"unknown attack(s) {unknown}; known: {ATTACKS}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'attack':<16} {'scrapes':>7} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  process")
        for k in kinds:
            r = run(a.bin, k, a.seconds, tmp)
            rows.append(r)
            state = "alive" if r["alive"] else f"died (exit {r['exit']})"
            print(f"{k:<16} {r['scrapes']:>7} {r['failed']:>6} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}  {state}")
    if a.json:
        with open(a.json, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    # Times are figures, not verdicts (a shared machine makes them vary); a failed scrape or a dead process is.
    slow = [r["attack"] for r in rows if r["p99_ms"] >= 1000]
    if slow:
        print(f"honest p99 at or above 1 s under: {', '.join(slow)}")
    bad = [r["attack"] for r in rows if r["failed"] or not r["alive"]]
    if bad:
        print(f"honest scrapes failed or the process died under: {', '.join(bad)}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
