"""Helpers of the end-to-end suite: processes, ports, the broker, the exporter, Prometheus, the Kafka client,
exposition parsing and Prometheus' histogram_quantile rule. Everything here talks to processes on 127.0.0.1 only."""

from __future__ import annotations

import atexit
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
JOB = "dashstream-quality"  # the original exporter's scrape job name: the shipped rules and dashboard name no job
PARTITIONS = 4


def log(msg: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (callers retry if they lose the race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, check, timeout: float, interval: float = 0.2):
    """Polls `check()` until it returns a truthy value; fails with the last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = check()
        except Exception as e:  # noqa: BLE001 - reported below if it never succeeds
            last = f"{type(e).__name__}: {e}"
        if last and not isinstance(last, str):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------------------------------
# processes


@dataclass
class Proc:
    name: str
    cmd: list[str]
    popen: subprocess.Popen
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class ProcessManager:
    """Starts every process in its own process group, remembers it, and stops what is still running at the end
    (also from atexit and on SIGTERM/SIGINT of the test runner)."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []
        self._lock = threading.Lock()
        atexit.register(self.stop_all)

    def start(self, name: str, cmd: list[str], log_path: Path, env: dict | None = None, cwd: Path | None = None,
              unset: tuple[str, ...] = ()) -> Proc:
        full_env = {k: v for k, v in os.environ.items() if k not in unset}
        if env:
            full_env.update({k: str(v) for k, v in env.items()})
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "ab")
        popen = subprocess.Popen(cmd, env=full_env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        proc = Proc(name, cmd, popen, log_path)
        with self._lock:
            self.procs.append(proc)
        shown = " ".join(cmd)
        extra = " ".join(f"{k}={v}" for k, v in (env or {}).items())
        log(f"started {name} (pid {popen.pid}): {extra + ' ' if extra else ''}{shown}  [log: {log_path}]")
        return proc

    def stop(self, proc: Proc, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Sends `sig` to the process group, waits, and kills the group if it does not exit in time."""
        if proc.alive():
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            rc = proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"{proc.name} (pid {proc.pid}) did not exit within {timeout}s of signal {sig}; killing it")
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            rc = proc.popen.wait(timeout=10)
        # children left in the group (none expected) go too
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        log(f"stopped {proc.name} (pid {proc.pid}): exit code {rc}")
        return rc

    def stop_all(self) -> None:
        with self._lock:
            procs = list(reversed(self.procs))
        for p in procs:
            if p.alive():
                self.stop(p, signal.SIGTERM, timeout=10)


# ---------------------------------------------------------------------------------------------------------------------
# exposition format


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Exposition:
    samples: dict  # (name, frozenset(labels)) -> float
    types: dict  # family -> type
    helps: dict  # family -> help text

    def get(self, name: str, **labels) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def series(self, name: str) -> list[tuple[dict, float]]:
        return [(dict(k[1]), v) for k, v in self.samples.items() if k[0] == name]

    def total(self, name: str, **match) -> float:
        return sum(v for lbl, v in self.series(name) if all(lbl.get(k) == w for k, w in match.items()))


def parse_exposition(text: str) -> Exposition:
    samples, types, helps = {}, {}, {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, fam, typ = line.split(" ", 3)
            types[fam] = typ
            continue
        if line.startswith("# HELP "):
            parts = line.split(" ", 3)
            helps[parts[2]] = parts[3] if len(parts) > 3 else ""
            continue
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise AssertionError(f"unparsable exposition line: {line!r}")
        labels = frozenset(_LABEL.findall(m.group(3) or ""))
        samples[(m.group(1), labels)] = float(m.group(4))
    return Exposition(samples, types, helps)


# ---------------------------------------------------------------------------------------------------------------------
# Prometheus' histogram_quantile (promql/quantile.go of Prometheus 2.42, bucketQuantile), for exact expectations


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """`buckets` are (upper bound, cumulative count) pairs including +Inf, as Prometheus sees them."""
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = sorted(buckets)
    if not math.isinf(buckets[-1][0]):
        return math.nan
    # coalesce equal bounds
    merged: list[list[float]] = []
    for ub, c in buckets:
        if merged and merged[-1][0] == ub:
            merged[-1][1] += c
        else:
            merged.append([ub, c])
    # ensure monotonic
    maxc = -math.inf
    for b in merged:
        if b[1] > maxc:
            maxc = b[1]
        elif b[1] < maxc:
            b[1] = maxc
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    bucket_start = 0.0
    bucket_end = merged[b][0]
    count = merged[b][1]
    if b > 0:
        bucket_start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return bucket_start + (bucket_end - bucket_start) * (rank / count)


def cumulative_buckets(values: list[float], bounds: list[float]) -> list[tuple[float, float]]:
    out = [(b, float(sum(1 for v in values if v <= b))) for b in bounds]
    out.append((math.inf, float(len(values))))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# tansu (the broker)


class Tansu:
    def __init__(self, pm: ProcessManager, binary: Path, workdir: Path) -> None:
        self.pm, self.binary, self.workdir = pm, binary, workdir
        self.proc: Proc | None = None
        self.port = 0
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self, port: int | None = None, advertised_port: int | None = None, authentication: bool = False) -> None:
        """Starts the broker on a free port, or on `port` (a restart on the same port and sqlite file).
        `advertised_port` makes it advertise another port (a TLS terminator in front of it); `authentication`
        makes it require SASL (SCRAM)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        fixed = port
        for attempt in range(5 if fixed is None else 1):
            self.port = fixed if fixed is not None else free_port()
            url = f"tcp://127.0.0.1:{self.port}"
            adv = f"tcp://127.0.0.1:{advertised_port}" if advertised_port else url
            cmd = [str(self.binary), "broker", "--listener-url", url, "--advertised-listener-url", adv,
                   "--storage-engine", "sqlite://tansu.db"]
            if authentication:
                cmd.append("--authentication")
            self.starts += 1
            # tansu 0.6.0 opens no other listener; it reads these variables, which must not point it elsewhere
            self.proc = self.pm.start("tansu broker", cmd, self.workdir / f"tansu-{self.starts}.log", cwd=self.workdir,
                                      env={"RUST_LOG": "warn"}, unset=TANSU_ENV)
            try:
                wait_until(f"tansu listening on {self.bootstrap}", self._listening, timeout=20)
                return
            except AssertionError:
                if self.proc.alive() or fixed is not None:
                    raise
                log(f"tansu exited at start (port race?):\n{self.proc.log_text()[-2000:]}")
        raise AssertionError("tansu did not start")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Stops the broker abruptly (SIGKILL by default); its sqlite file stays for a restart."""
        return self.pm.stop(self.proc, sig, timeout=10)

    def create_user(self, name: str, password: str, mechanism: str = "scram512") -> None:
        """Creates SCRAM credentials (`scram256` or `scram512`) for a user (tansu 0.6.0 needs the broker running
        without --authentication for this)."""
        cmd = [str(self.binary), "user", "create", "--broker", self.url, "--mechanism", mechanism, name, password]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=self.workdir)
        if r.returncode != 0:
            raise AssertionError(f"tansu user create {name} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        log(f"created {mechanism} credentials for user {name} on {self.bootstrap}")

    def _listening(self) -> bool:
        if self.proc and not self.proc.alive():
            raise AssertionError(f"tansu exited with {self.proc.popen.returncode}:\n{self.proc.log_text()[-3000:]}")
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def create_topic(self, name: str, partitions: int = PARTITIONS) -> None:
        cmd = [str(self.binary), "topic", "create", "--broker", self.url, "--partitions", str(partitions), name]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=self.workdir)
        if r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        log(f"created topic {name} with {partitions} partitions on {self.bootstrap}")


class MockCluster:
    """librdkafka's mock cluster in a process of its own (`dashflow-prometheus-exporter mock-broker`): a real
    Kafka-protocol broker on loopback that, unlike tansu 0.6.0, expires a dead member's group membership after
    its `session.timeout.ms`, as Kafka does. Its data lives in memory: it cannot be restarted."""

    def __init__(self, pm: ProcessManager, binary: Path, workdir: Path) -> None:
        self.pm, self.binary, self.workdir = pm, binary, workdir
        self.proc: Proc | None = None
        self.bootstrap = ""

    def start(self, topic: str, partitions: int = PARTITIONS) -> None:
        cmd = [str(self.binary), "mock-broker", "--topic", topic, "--partitions", str(partitions)]
        self.proc = self.pm.start("mock cluster", cmd, self.workdir / "mock-broker.log")

        def address():
            if not self.proc.alive():
                raise AssertionError(f"mock-broker exited with {self.proc.popen.returncode}:\n"
                                     f"{self.proc.log_text()[-3000:]}")
            m = re.search(r"^(127\.0\.0\.1:\d+(?:,127\.0\.0\.1:\d+)*)$", self.proc.log_text(), re.M)
            return [m.group(1)] if m else None  # a list: wait_until reads a string as "not yet"

        self.bootstrap = wait_until("the mock cluster to print its address", address, timeout=20)[0]
        log(f"mock cluster with topic {topic} ({partitions} partitions) at {self.bootstrap}")


TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY",
             "OTEL_EXPORTER_OTLP_ENDPOINT")


# ---------------------------------------------------------------------------------------------------------------------
# the exporter


class Exporter:
    def __init__(self, pm: ProcessManager, binary: Path, name: str, workdir: Path, env: dict) -> None:
        self.pm, self.binary, self.name, self.workdir, self.env = pm, binary, name, workdir, env
        self.proc: Proc | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        env = dict(self.env)
        env.setdefault("METRICS_BIND_IP", "127.0.0.1")
        env["METRICS_PORT"] = "0"  # the exporter picks a free port and logs it
        self.proc = self.pm.start(f"exporter {self.name}", [str(self.binary)], self.workdir / f"exporter-{self.name}.log",
                                  env=env)

        def bound():
            if not self.proc.alive():
                raise AssertionError(f"exporter {self.name} exited with {self.proc.popen.returncode}:\n"
                                     f"{self.proc.log_text()[-3000:]}")
            m = re.search(r"serving metrics on http://127\.0\.0\.1:(\d+)/metrics", self.proc.log_text())
            return int(m.group(1)) if m else None

        self.port = wait_until(f"exporter {self.name} to log its metrics address", bound, timeout=30)
        log(f"exporter {self.name} serves {self.base}/metrics")

    def get(self, path: str, timeout: float = 5.0) -> requests.Response:
        return requests.get(self.base + path, timeout=timeout)

    def scrape(self) -> Exposition:
        r = self.get("/metrics")
        r.raise_for_status()
        return parse_exposition(r.text)

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(f"exporter {self.name} /-/ready", lambda: self.get("/-/ready").status_code == 200, timeout)

    def assigned(self) -> int:
        return int(self.scrape().get("dashstream_exporter_kafka_assigned_partitions"))

    def assigned_partitions(self) -> list[int]:
        """The partitions of the last 'partitions assigned' log line (after the last revoke)."""
        text = self.proc.log_text()
        found = re.findall(r"partitions assigned: \[([0-9, ]*)\]", text)
        if not found:
            return []
        return sorted(int(x) for x in found[-1].split(",") if x.strip())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        return self.pm.stop(self.proc, sig, timeout)


def exporter_env(brokers: str, topic: str, group: str, **extra) -> dict:
    env = {
        "KAFKA_BROKERS": brokers,
        "KAFKA_TOPIC": topic,
        "KAFKA_GROUP_ID": group,
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "KAFKA_CONSUMER_PROPERTIES": "heartbeat.interval.ms=500",
        "METRICS_BIND_IP": "127.0.0.1",
        "PROMETHEUS_SESSION_TIMEOUT_SECS": "2",
        "RUST_LOG": "info",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_tool(binary: Path, args: list[str], timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    log(f"running: {binary.name} {' '.join(args)}")
    r = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=timeout, env=full_env,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise AssertionError(f"{binary.name} {' '.join(args)} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def produce(binary: Path, brokers: str, topic: str, seed: int, count: int, rate: int = 0, bad_ratio: float = 0.02,
            extra: list[str] | None = None) -> dict:
    r = run_tool(binary, ["produce", "--brokers", brokers, "--topic", topic, "--seed", str(seed), "--count", str(count),
                          "--rate", str(rate), "--bad-ratio", str(bad_ratio), "--json", *(extra or [])])
    summary = json.loads(r.stdout)
    assert summary["records"] == count, summary
    assert summary.get("delivery_failures", 0) == 0, summary
    log(f"produced seed={seed}: {summary['records']} records, {summary['quality_events']} quality events")
    return summary


def tail_all(binary: Path, brokers: str, topic: str, count: int) -> list[dict]:
    r = run_tool(binary, ["tail", "--brokers", brokers, "--topic", topic, "--from-beginning", "--limit", str(count),
                          "--json"], timeout=300)
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert len(rows) == count, f"tail printed {len(rows)} records, expected {count}"
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# summaries -> expected metric values


CATEGORIES = ["Simple", "Medium", "Complex", "Edge", "Unknown"]
PRECREATED_MODELS = ["gpt-4", "gpt-4o", "gpt-4o-mini", "gpt-4-turbo", "gpt-3.5-turbo", "o1-preview", "o1-mini",
                     "claude-3.5-sonnet", "claude-3.5-haiku", "claude-3-opus", "gemini-1.5-pro", "gemini-1.5-flash",
                     "llama-3", "mistral"]
DECODE_REASONS = ["empty", "payload_too_large", "decompressed_too_large", "decompress", "invalid_protobuf"]


def add_summaries(*summaries: dict) -> dict:
    """Adds produce summaries (the counts that matter for the exporter's counters)."""
    total = {"records": 0, "quality_events": 0, "passed": 0, "failed": 0, "librarian": 0, "latency_ms_sum": 0,
             "failed_by_category": {}, "by_model": {}, "bad": {}, "framing": {}, "alerts": 0, "issues": {}}
    for s in summaries:
        for k in ("records", "quality_events", "passed", "failed", "librarian", "latency_ms_sum"):
            total[k] += s[k]
        total["alerts"] += s.get("alerts", 0)
        for k in ("failed_by_category", "by_model", "bad", "framing", "issues"):
            for name, n in s.get(k, {}).items():
                total[k][name] = total[k].get(name, 0) + n
    return total


def expected_counters(s: dict) -> dict:
    """{(metric, label name, label value) or (metric,): value} the exporter(s) must show, summed over instances."""
    exp = {
        ("dashstream_exporter_messages_received_total",): s["records"],
        ("dashstream_quality_monitor_queries_total",): s["quality_events"],
        ("dashstream_quality_monitor_queries_passed_total",): s["passed"],
        ("dashstream_librarian_requests_total",): s["librarian"],
        ("dashstream_query_latency_ms_sum",): s["latency_ms_sum"],
        ("dashstream_exporter_kafka_payload_missing_total",): s["bad"].get("payload_missing", 0),
        ("dashstream_exporter_messages_wrong_scope_total",): s["bad"].get("wrong_scope", 0),
        ("dashstream_quality_alerts_total",): s.get("alerts", 0),
    }
    for i in ("tool_results_ignored", "incomplete_coverage", "low_accuracy", "low_relevance", "low_completeness",
              "other"):
        exp[("dashstream_quality_issues_total", "issue", i)] = s.get("issues", {}).get(i, 0)
    for c in CATEGORIES:
        exp[("dashstream_quality_monitor_queries_failed_total", "category", c)] = s["failed_by_category"].get(c, 0)
    models = set(PRECREATED_MODELS) | set(s["by_model"])
    for m in models:
        exp[("dashstream_queries_by_model_total", "model", m)] = s["by_model"].get(m, 0)
    for r in DECODE_REASONS:
        exp[("dashstream_exporter_messages_failed_total", "error_type", r)] = s["bad"].get(r, 0)
    for r in ("decode", "process", "unknown"):
        exp[("dashstream_exporter_messages_failed_total", "error_type", r)] = 0
    for k, n in s["bad"].items():
        if k.startswith("other_type:"):
            exp[("dashstream_exporter_messages_other_type_total", "message_type", k.split(":", 1)[1])] = n
    known = set(DECODE_REASONS) | {"payload_missing", "wrong_scope"}
    unknown = [k for k in s["bad"] if k not in known and not k.startswith("other_type:")]
    assert not unknown, f"produce reported bad-record kinds this suite does not map to metrics: {unknown}"
    assert sum(s["failed_by_category"].values()) == s["failed"], s
    assert s["passed"] + s["failed"] == s["quality_events"], s
    return exp


def promql_for(key: tuple, job_selector: str, wrap: str = "{}") -> str:
    """PromQL summing one expected counter over all instances; `wrap` turns the selector into e.g. last_over_time."""
    metric = key[0]
    matchers = [job_selector]
    if len(key) == 3:
        matchers.append(f'{key[1]}="{key[2]}"')
    sel = f"{metric}{{{', '.join(matchers)}}}"
    return f"sum({wrap.format(sel)})"


# ---------------------------------------------------------------------------------------------------------------------
# Prometheus


class Prometheus:
    """Debian's Prometheus on loopback. `extra_args` are more flags (`--web.enable-remote-write-receiver`,
    `--web.config.file=…`); `port` keeps the port of an earlier start (a restart on the same address);
    `client` are the requests arguments (verify, cert, auth) its own API calls need when a web config is on."""

    def __init__(self, pm: ProcessManager, workdir: Path, targets: list[str], rule_files: list[Path],
                 extra_args: list[str] | None = None, scheme: str = "http", client: dict | None = None) -> None:
        self.pm, self.workdir, self.targets, self.rule_files = pm, workdir, targets, rule_files
        self.extra_args, self.scheme, self.client = extra_args or [], scheme, client or {}
        self.port = 0
        self.starts = 0
        self.data: Path | None = None
        self.proc: Proc | None = None

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def config(self) -> dict:
        return {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": self.targets}]}] if self.targets else [],
        }

    def start(self, port: int | None = None) -> None:
        """Starts it (on `port`, with the data of the previous start, when given)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        r = subprocess.run(["promtool", "check", "config", str(cfg)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"promtool check config failed:\n{r.stdout}\n{r.stderr}"
        for attempt in range(1 if port else 5):
            self.port = port or free_port()
            if not port:
                self.data = self.workdir / f"data-{attempt}"
            self.starts += 1
            self.proc = self.pm.start("prometheus", [
                "prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={self.data}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1d",
                "--log.level=warn", *self.extra_args], self.workdir / f"prometheus-{self.starts}.log")
            try:
                wait_until("prometheus /-/ready", self._ready, timeout=60)
                log(f"prometheus at {self.base} scrapes {self.targets} every 1s with rules {[p.name for p in self.rule_files]}")
                return
            except AssertionError:
                if self.proc.alive():
                    raise
                log(f"prometheus exited at start:\n{self.proc.log_text()[-2000:]}")
        raise AssertionError("prometheus did not start")

    def _ready(self) -> bool:
        if not self.proc.alive():
            raise AssertionError(f"prometheus exited:\n{self.proc.log_text()[-3000:]}")
        return requests.get(self.base + "/-/ready", timeout=2, **self.client).status_code == 200

    def api(self, path: str, **params) -> dict:
        r = requests.get(self.base + "/api/v1/" + path, params=params, timeout=30, **self.client)
        body = r.json()
        if r.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"Prometheus API {path} {params} answered {r.status_code}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[tuple[dict, float]]:
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        assert data["resultType"] == "vector", data
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def value(self, expr: str) -> float | None:
        res = self.query(expr)
        if not res:
            return None
        assert len(res) == 1, f"{expr} returned {len(res)} series: {res}"
        return res[0][1]

    def wait_value(self, expr: str, expected: float, timeout: float = 60) -> None:
        wait_until(f"{expr} == {expected}", lambda: self.value(expr) == expected or f"value {self.value(expr)}",
                   timeout, interval=0.5)

    def targets_up(self) -> dict:
        return {t["labels"]["instance"]: t["health"] for t in self.api("targets")["activeTargets"]}


# ---------------------------------------------------------------------------------------------------------------------
# the independent Kafka client (confluent-kafka, librdkafka of its own wheel)


def kafka_conf(brokers: str, **extra) -> dict:
    conf = {"bootstrap.servers": brokers, "broker.address.family": "v4", "socket.timeout.ms": 10000}
    conf.update(extra)
    return conf


def security_conf(env: dict) -> dict:
    """The exporter's KAFKA_* security variables as librdkafka properties for the independent client."""
    names = {"KAFKA_SECURITY_PROTOCOL": "security.protocol", "KAFKA_SSL_CA_LOCATION": "ssl.ca.location",
             "KAFKA_SSL_CERTIFICATE_LOCATION": "ssl.certificate.location",
             "KAFKA_SSL_KEY_LOCATION": "ssl.key.location", "KAFKA_SSL_KEY_PASSWORD": "ssl.key.password",
             "KAFKA_SASL_MECHANISM": "sasl.mechanism", "KAFKA_SASL_USERNAME": "sasl.username",
             "KAFKA_SASL_PASSWORD": "sasl.password"}
    return {names[k]: str(v) for k, v in env.items() if k in names}


def watermarks(brokers: str, topic: str, partitions: int = PARTITIONS, conf: dict | None = None) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer(kafka_conf(brokers, **{"group.id": "e2e-watermarks", "enable.auto.commit": False}, **(conf or {})))
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in range(partitions)}
    finally:
        c.close()


def low_watermarks(brokers: str, topic: str, partitions: int = PARTITIONS) -> dict[int, int]:
    """The first offset each partition still holds (above 0 once a broker dropped old records)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer(kafka_conf(brokers, **{"group.id": "e2e-watermarks", "enable.auto.commit": False}))
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[0]
                for p in range(partitions)}
    finally:
        c.close()


def committed(brokers: str, group: str, topic: str, partitions: int = PARTITIONS,
              conf: dict | None = None) -> dict[int, int]:
    """The group's committed offsets, read with OffsetFetch (this client does not join the group)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer(kafka_conf(brokers, **{"group.id": group, "enable.auto.commit": False}, **(conf or {})))
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def read_all(brokers: str, topic: str, partitions: int = PARTITIONS) -> dict[int, list[tuple[int, bytes | None, bytes | None]]]:
    """Every record of the topic as (offset, key, value), per partition, read by assignment (no group)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    high = watermarks(brokers, topic, partitions)
    c = Consumer(kafka_conf(brokers, **{"group.id": "e2e-reader", "enable.auto.commit": False,
                                        "enable.partition.eof": True}))
    out: dict[int, list] = {p: [] for p in range(partitions)}
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        done = {p for p in range(partitions) if high[p] == 0}
        deadline = time.monotonic() + 120
        while len(done) < partitions:
            assert time.monotonic() < deadline, f"reading {topic} timed out: {[len(v) for v in out.values()]} of {high}"
            msg = c.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    if msg.offset() >= high[msg.partition()]:
                        done.add(msg.partition())
                    continue
                raise AssertionError(f"consumer error: {msg.error()}")
            out[msg.partition()].append((msg.offset(), msg.key(), msg.value()))
            if msg.offset() + 1 >= high[msg.partition()]:
                done.add(msg.partition())
    finally:
        c.close()
    for p in range(partitions):
        assert len(out[p]) == high[p], f"partition {p}: read {len(out[p])} records, high watermark {high[p]}"
    return out


class Replayer(threading.Thread):
    """Produces given raw records (per partition, in order) at a steady rate to the same partitions of another
    topic. Partitions can be paused and resumed while it runs."""

    def __init__(self, brokers: str, topic: str, records: dict[int, list], rate: float) -> None:
        super().__init__(name="replayer", daemon=True)
        self.brokers, self.topic, self.rate = brokers, topic, rate
        self.queues = {p: list(rs) for p, rs in records.items()}
        self.active = set(self.queues)
        self.sent = 0
        self.sent_by_partition = {p: 0 for p in self.queues}
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def set_active(self, partitions) -> None:
        with self._lock:
            self.active = set(partitions)

    def remaining(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def run(self) -> None:
        from confluent_kafka import Producer
        try:
            failures = []
            prod = Producer(kafka_conf(self.brokers, **{"linger.ms": 5, "acks": "all", "enable.idempotence": False}))

            def delivered(err, _msg):
                if err is not None:
                    failures.append(err)

            start = time.monotonic()
            turn = 0
            while True:
                with self._lock:  # set_active() returns only between two records
                    ready = [p for p in sorted(self.active) if self.queues[p]]
                    if not ready and not self.remaining():
                        break
                    if ready:
                        p = ready[turn % len(ready)]
                        turn += 1
                        _off, key, value = self.queues[p].pop(0)
                        prod.produce(self.topic, value=value, key=key, partition=p, on_delivery=delivered)
                        self.sent += 1
                        self.sent_by_partition[p] += 1
                prod.poll(0)
                if not ready:
                    time.sleep(0.01)
                    continue
                # pace: `rate` records per second overall
                ahead = self.sent / self.rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
            left = prod.flush(30)
            assert left == 0, f"{left} records not delivered"
            assert not failures, f"delivery failures: {failures[:5]}"
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            self.error = e


def first_byte_kind(value: bytes) -> str:
    if value[:1] == b"\x00":
        return "framed"
    if value[:1] == b"\x01":
        return "framed_zstd"
    return "legacy"


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], input=stdin, capture_output=True, text=True, timeout=120)


def dump_failure_context(pm: ProcessManager) -> None:
    for p in pm.procs:
        text = p.log_text()
        tail = "\n".join(text.splitlines()[-25:])
        sys.stdout.write(f"\n----- last lines of {p.name} (pid {p.pid}, {'running' if p.alive() else 'exited ' + str(p.popen.returncode)}) {p.log_path}\n{tail}\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------------------------------
# faults and security: a producer in the background, a test PKI, a TLS terminator (stunnel) in front of tansu


class BackgroundProduce:
    """`produce --json` running in the background (a process of the ProcessManager); `wait()` gives its summary."""

    def __init__(self, pm: ProcessManager, binary: Path, log_path: Path, brokers: str, topic: str, seed: int,
                 count: int, rate: int = 0, bad_ratio: float = 0.02, env: dict | None = None) -> None:
        self.pm, self.count = pm, count
        args = ["produce", "--brokers", brokers, "--topic", topic, "--seed", str(seed), "--count", str(count),
                "--rate", str(rate), "--bad-ratio", str(bad_ratio), "--json"]
        self.proc = pm.start(f"produce seed={seed}", [str(binary), *args], log_path, env=env)

    def wait(self, timeout: float = 300) -> dict:
        try:
            rc = self.proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.pm.stop(self.proc)
            raise AssertionError(f"produce did not finish within {timeout}s:\n{self.proc.log_text()[-2000:]}")
        text = self.proc.log_text()
        assert rc == 0, f"produce exited {rc}:\n{text[-3000:]}"
        lines = [ln for ln in text.splitlines() if ln.startswith("{")]
        assert lines, f"produce printed no JSON summary:\n{text[-3000:]}"
        summary = json.loads(lines[-1])
        assert summary["records"] == self.count, summary
        assert summary.get("delivery_failures", 0) == 0, summary
        log(f"produced in the background: {summary['records']} records, {summary['quality_events']} quality events")
        return summary


def openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60, cwd=cwd)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")


@dataclass
class Pki:
    dir: Path
    ca: Path  # the CA that signed the broker's and the client's certificates
    other_ca: Path  # an unrelated CA (a client trusting only this must refuse the broker)
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path  # encrypted with key_password
    key_password: str


def make_pki(d: Path, key_password: str) -> Pki:
    """A test CA, a broker certificate for 127.0.0.1/localhost, a client certificate whose key is encrypted with
    `key_password`, and an unrelated CA, made with the openssl CLI (EC P-256, valid 2 days)."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    for name, cn in (("ca", "dfe e2e test CA"), ("other-ca", "dfe e2e unrelated CA")):
        openssl("req", "-x509", *ec, "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-new", *ec, "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "server.ext", cwd=d)
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-aes-256-cbc",
            "-pass", f"pass:{key_password}", "-out", "client.key", cwd=d)
    openssl("req", "-new", "-key", "client.key", "-passin", f"pass:{key_password}", "-out", "client.csr",
            "-subj", "/CN=dfe-e2e-exporter", cwd=d)
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "client.pem", "-days", "2", "-extfile", "client.ext", cwd=d)
    log(f"made a test PKI in {d}")
    return Pki(d, d / "ca.pem", d / "other-ca.pem", d / "server.pem", d / "server.key", d / "client.pem",
               d / "client.key", key_password)


class Stunnel:
    """Debian's stunnel4 terminating TLS on 127.0.0.1:port and forwarding to a plain listener; with
    `require_client_cert` it refuses clients without a certificate signed by the test CA (mTLS)."""

    def __init__(self, pm: ProcessManager, workdir: Path, pki: Pki, require_client_cert: bool) -> None:
        self.pm, self.workdir, self.pki, self.require_client_cert = pm, workdir, pki, require_client_cert
        self.port = free_port()
        self.proc: Proc | None = None

    def start(self, forward_port: int) -> None:
        binary = shutil.which("stunnel4") or shutil.which("stunnel")
        assert binary, "prerequisite missing: stunnel4 is not on PATH (.ci/e2e installs Debian's stunnel4)"
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = ["foreground = yes", "pid =", "debug = notice", "", "[kafka]",
                 f"accept = 127.0.0.1:{self.port}", f"connect = 127.0.0.1:{forward_port}",
                 f"cert = {self.pki.server_cert}", f"key = {self.pki.server_key}"]
        if self.require_client_cert:
            lines += [f"CAfile = {self.pki.ca}", "verifyChain = yes", "requireCert = yes"]
        conf = self.workdir / f"stunnel-{self.port}.conf"
        conf.write_text("\n".join(lines) + "\n")
        self.proc = self.pm.start("stunnel", [binary, str(conf)], self.workdir / f"stunnel-{self.port}.log")

        def listening():
            if not self.proc.alive():
                raise AssertionError(f"stunnel exited with {self.proc.popen.returncode}:\n{self.proc.log_text()[-3000:]}")
            with socket.socket() as s:
                s.settimeout(0.5)
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(f"stunnel listening on 127.0.0.1:{self.port}", listening, timeout=20)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


# ---------------------------------------------------------------------------------------------------------------------
# formats (test_formats.py): hand-made quality records, raw HTTP fetches, the Prometheus API's native histograms


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        low = v & 0x7F
        v >>= 7
        if v:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _pb_field(number: int, wire: int, payload: bytes) -> bytes:
    key = _varint((number << 3) | wire)
    return key + _varint(len(payload)) + payload if wire == 2 else key + payload


def quality_record(thread_id: str | None, message_id: bytes, scope_id: str, metrics: dict, tags: dict) -> bytes:
    """An unframed (legacy) DashStreamMessage carrying one quality `Metrics` message of proto/dashstream.proto,
    written field by field, so that a test can send header values the generator never sends (long thread ids,
    no message id). `metrics`: name -> bool, non-negative int or float; `tags`: name -> str."""
    header = b""
    if message_id:
        header += _pb_field(1, 2, message_id)
    if thread_id is not None:
        header += _pb_field(4, 2, thread_id.encode())
    header += _pb_field(6, 0, _varint(6)) + _pb_field(9, 0, _varint(1))  # type METRICS, schema_version 1
    m = _pb_field(1, 2, header) + _pb_field(2, 2, b"quality") + _pb_field(3, 2, scope_id.encode())
    for name, v in sorted(metrics.items()):
        if isinstance(v, bool):
            value = _pb_field(4, 0, _varint(int(v)))
        elif isinstance(v, int):
            assert v >= 0, v
            value = _pb_field(1, 0, _varint(v))
        else:
            value = _pb_field(2, 1, struct.pack("<d", float(v)))
        m += _pb_field(4, 2, _pb_field(1, 2, name.encode()) + _pb_field(2, 2, value))
    for name, v in sorted(tags.items()):
        m += _pb_field(5, 2, _pb_field(1, 2, name.encode()) + _pb_field(2, 2, v.encode()))
    return _pb_field(6, 2, m)


def produce_raw(brokers: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    """Produces (key, value) records with confluent-kafka and waits until every one is acknowledged."""
    from confluent_kafka import Producer
    failures = []
    prod = Producer(kafka_conf(brokers, **{"acks": "all", "linger.ms": 5}))
    for key, value in records:
        prod.produce(topic, value=value, key=key,
                     on_delivery=lambda err, _msg: failures.append(err) if err is not None else None)
    left = prod.flush(30)
    assert left == 0 and not failures, f"{left} records not delivered, failures {failures}"
    log(f"produced {len(records)} hand-made records to {topic}")


@dataclass
class Fetched:
    status: int
    headers: dict  # lower-case name -> value
    raw: bytes  # as sent (compressed when Content-Encoding says so)
    body: bytes  # decompressed


def fetch(url: str, headers: dict | None = None, timeout: float = 10.0) -> Fetched:
    """GET with exactly the given request headers (http.client adds only Host and Accept-Encoding: identity
    unless told otherwise; no Accept header unless given) and no automatic decompression."""
    import gzip
    import http.client
    from urllib.parse import urlsplit
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.putrequest("GET", u.path or "/", skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        raw = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()
    body = gzip.decompress(raw) if hdrs.get("content-encoding") == "gzip" else raw
    return Fetched(resp.status, hdrs, raw, body)


@dataclass
class NativeHistogram:
    count: float
    sum: float
    buckets: list  # (boundary rule, lower, upper, count) as the API gives them, in its order


def native_histograms(prom: "Prometheus", expr: str) -> list[tuple[dict, NativeHistogram]]:
    """An instant query whose result holds native histograms (the API's `histogram` field)."""
    data = prom.api("query", query=expr)
    assert data["resultType"] == "vector", data
    out = []
    for item in data["result"]:
        assert "histogram" in item, f"{expr}: a float sample where a native histogram was expected: {item}"
        h = item["histogram"][1]
        buckets = [(int(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in h.get("buckets", [])]
        out.append((item["metric"], NativeHistogram(float(h["count"]), float(h["sum"]), buckets)))
    return out


def in_native_bucket(rule: int, lower: float, upper: float, v: float) -> bool:
    """Whether v lies in a bucket of the Prometheus API's boundary rule (0: (a,b], 1: [a,b), 2: (a,b), 3: [a,b])."""
    lo_ok = v >= lower if rule in (1, 3) else v > lower
    hi_ok = v <= upper if rule in (0, 3) else v < upper
    return lo_ok and hi_ok


def native_histogram_quantile(q: float, h: NativeHistogram) -> float:
    """histogram_quantile of one native histogram as Prometheus 2.42 computes it (promql/quantile.go,
    histogramQuantile: the first bucket whose cumulative count reaches q * count, linear within it)."""
    if h.count == 0:
        return math.nan
    rank = q * h.count
    count = 0.0
    rule = lower = upper = n = None
    for rule, lower, upper, n in h.buckets:
        count += n
        if count >= rank:
            break
    has_neg = any(up <= 0 and lo < 0 and not (lo < 0 < up) for _r, lo, up, _n in h.buckets)
    has_pos = any(lo >= 0 and up > 0 and not (lo < 0 < up) for _r, lo, up, _n in h.buckets)
    if lower < 0 < upper:
        if not has_neg and has_pos:
            lower = 0.0
        elif has_neg and not has_pos:
            upper = 0.0
    count = min(count, h.count)
    if count < rank:
        return upper
    rank -= count - n
    return lower + (upper - lower) * (rank / n)
