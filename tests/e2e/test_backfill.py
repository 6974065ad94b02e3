"""`backfill` with the real tools (GitHub issue 30): events stamped over several past hours, unevenly, on three
partitions of a real broker; `backfill` writes them as OpenMetrics stamped in event time; Debian's promtool
turns the file into TSDB blocks; a Prometheus started on those blocks (and scraping nothing) answers, at each
hour boundary, exactly what was produced up to it: the counters, the gauge's last value, a histogram's count
and one of its buckets. A second topic of generated traffic (every kind of event the generator makes, stamped
over the same hours) is backfilled beside it under another instance label, and every query of the shipped
dashboard that reads data families (not the exporter's self-monitoring, which `backfill` leaves out) returns
data over the range."""

from __future__ import annotations

import math
import random
import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import support as s
from test_single_exporter import dashboard_queries, substitute

EXACT_TOPIC = "quality-backfill-exact"
TRAFFIC_TOPIC = "quality-backfill-traffic"
PARTITIONS = 3
HOURS = 4
# Events per hour, uneven on purpose (one hour nearly empty).
PER_HOUR = [37, 3, 80, 21]
SELF_MONITORING = ("dashstream_exporter_", "process_", "dashflow_build_info", "up{", "up)")


@dataclass
class Ev:
    t: float  # event time, Unix seconds (ms precision)
    partition: int
    passed: bool
    score: float
    latency_ms: int
    header_stamp: bool  # the time is in header.timestamp_us; else only in the Kafka timestamp


def stamped_record(ev: Ev, i: int) -> bytes:
    """An unframed DashStreamMessage holding one quality Metrics message, with header.timestamp_us when asked."""
    v, f = s._varint, s._pb_field
    header = f(1, 2, struct.pack(">QQ", 30, i)) + f(4, 2, f"bf-{i}".encode())
    if ev.header_stamp:
        header += f(2, 0, v(int(round(ev.t * 1000)) * 1000))
    header += f(6, 0, v(6)) + f(9, 0, v(1))  # type METRICS, schema_version 1
    m = f(1, 2, header) + f(2, 2, b"quality") + f(3, 2, f"bf-{i}".encode())
    metrics = {"passed": f(4, 0, v(int(ev.passed))), "quality_score": f(2, 1, struct.pack("<d", ev.score)),
               "latency_ms": f(1, 0, v(ev.latency_ms))}
    for name, value in sorted(metrics.items()):
        m += f(4, 2, f(1, 2, name.encode()) + f(2, 2, value))
    for name, value in {"model": "gpt-4o", "category": "Simple"}.items():
        m += f(5, 2, f(1, 2, name.encode()) + f(2, 2, value.encode()))
    return f(6, 2, m)


def make_events(h0: int) -> list[Ev]:
    rng = random.Random(30)
    out = []
    for hour, n in enumerate(PER_HOUR):
        for _ in range(n):
            t = h0 + hour * 3600 + rng.randrange(1, 3_599_000) / 1000  # never exactly on a boundary
            out.append(Ev(t, rng.randrange(PARTITIONS), rng.random() < 0.7, round(rng.uniform(0.05, 1.0), 4),
                          rng.choice([5, 40, 120, 450, 900, 3000]), rng.random() < 0.8))
    return out


def produce_stamped(brokers: str, topic: str, events: list[Ev]) -> None:
    """Each partition's events in time order but for a few swapped neighbours (skew inside the reorder window)."""
    from confluent_kafka import Producer
    failures = []
    prod = Producer(s.kafka_conf(brokers, **{"acks": "all", "linger.ms": 5}))
    by_time = sorted(enumerate(events), key=lambda x: x[1].t)
    for p in range(PARTITIONS):
        mine = [(i, e) for i, e in by_time if e.partition == p]
        for j in range(0, len(mine) - 1, 7):
            if mine[j + 1][1].t - mine[j][1].t < 5:
                mine[j], mine[j + 1] = mine[j + 1], mine[j]
        for i, e in mine:
            prod.produce(topic, value=stamped_record(e, i), key=f"bf-{i}".encode(), partition=p,
                         timestamp=int(round(e.t * 1000)),
                         on_delivery=lambda err, _msg: failures.append(err) if err is not None else None)
    left = prod.flush(30)
    assert left == 0 and not failures, f"{left} records not delivered, failures {failures}"
    s.log(f"produced {len(events)} stamped records to {topic}")


def backfill(tools, brokers: str, topic: str, h0: int, instance: str, out: Path) -> str:
    r = s.run_tool(tools.exporter, [
        "backfill", "--brokers", brokers, "--topic", topic, "--from", str(h0), "--to", str(h0 + HOURS * 3600),
        "--step", "15s", "--label", f"job={s.JOB}", "--label", f"instance={instance}", "--output", str(out)])
    s.log(f"backfill {topic}:\n{r.stderr}")
    text = out.read_text()
    assert text.endswith("\n# EOF\n")
    return r.stderr


def at(prom: s.Prometheus, expr: str, t: int) -> float | None:
    data = prom.api("query", query=expr, time=str(t))
    assert data["resultType"] == "vector", data
    if not data["result"]:
        return None
    assert len(data["result"]) == 1, f"{expr} at {t}: {data['result']}"
    return float(data["result"][0]["value"][1])


@pytest.fixture(scope="module")
def history(tools, broker, pm, workdir):
    now = int(time.time())
    h0 = (now // 3600) * 3600 - (HOURS + 1) * 3600  # whole hours, the last ending at least an hour ago
    events = make_events(h0)
    broker.create_topic(EXACT_TOPIC, PARTITIONS)
    broker.create_topic(TRAFFIC_TOPIC, PARTITIONS)
    produce_stamped(broker.bootstrap, EXACT_TOPIC, events)
    s.produce(tools.exporter, broker.bootstrap, TRAFFIC_TOPIC, seed=30, count=6000, bad_ratio=0.01,
              extra=["--partitions-key", "random", "--timestamps-from", str(h0 + 1),
                     "--timestamps-span", f"{HOURS * 3600 - 2}s"])
    d = workdir / "backfill"
    d.mkdir()
    exact_err = backfill(tools, broker.bootstrap, EXACT_TOPIC, h0, "backfill-exact", d / "exact.om")
    backfill(tools, broker.bootstrap, TRAFFIC_TOPIC, h0, "backfill-traffic", d / "traffic.om")
    for name in ("exact", "traffic"):
        r = s.promtool("tsdb", "create-blocks-from", "openmetrics", str(d / f"{name}.om"), str(d / "blocks"))
        assert r.returncode == 0, f"promtool refused {name}.om:\n{r.stdout}\n{r.stderr}"
        s.log(f"promtool {name}.om:\n{r.stdout}")
    prom = s.Prometheus(pm, d / "prometheus", targets=[], rule_files=[])
    # The blocks go into the data directory of whichever start attempt succeeds.
    for attempt in range(5):
        data = prom.workdir / f"data-{attempt}"
        data.mkdir(parents=True)
        for block in (d / "blocks").iterdir():
            shutil.copytree(block, data / block.name)
    prom.start()
    yield h0, events, prom, exact_err
    pm.stop(prom.proc)


def test_counters_gauges_and_histograms_at_each_hour_boundary(history):
    h0, events, prom, err = history
    assert f"applied: {len(events)} quality events" in err, err
    for p in range(PARTITIONS):
        n = sum(1 for e in events if e.partition == p)
        assert f"{n} records read" in err.split(f"partition {p}:")[1].split("\n")[0], err
    sel = f'{{job="{s.JOB}",instance="backfill-exact"}}'
    checked = 0
    for k in range(1, HOURS + 1):  # the range is (h0, h0 + HOURS h]: its first boundary is h0 + 15 s
        b = h0 + k * 3600
        upto = sorted((e for e in events if e.t <= b), key=lambda e: e.t)
        total = float(len(upto))
        assert at(prom, f"dashstream_quality_monitor_queries_total{sel}", b) == total, (k, b)
        assert at(prom, f"dashstream_quality_monitor_queries_passed_total{sel}", b) == \
            float(sum(e.passed for e in upto)), k
        assert at(prom, f'dashstream_queries_by_model_total{{job="{s.JOB}",instance="backfill-exact",model="gpt-4o"}}',
                  b) == total, k
        assert at(prom, f"dashstream_query_latency_ms_count{sel}", b) == total, k
        assert at(prom, f'dashstream_query_latency_ms_bucket{{job="{s.JOB}",instance="backfill-exact",le="500"}}',
                  b) == float(sum(e.latency_ms <= 500 for e in upto)), k
        sum_latency = at(prom, f"dashstream_query_latency_ms_sum{sel}", b)
        assert sum_latency == float(sum(e.latency_ms for e in upto)), k
        # The gauge holds the last event's value before the boundary.
        assert at(prom, f"dashstream_quality_monitor_quality_score{sel}", b) == upto[-1].score, k
        checked += 1
    assert checked == HOURS
    # Between boundaries too: half past each hour, what was produced up to the last 15 s step.
    for k in range(HOURS):
        t = h0 + k * 3600 + 1800
        step = t - t % 15
        assert at(prom, f"dashstream_quality_monitor_queries_total{sel}", t) == \
            float(sum(1 for e in events if e.t <= step)), k
    # Per hour, through PromQL over the stored samples (from the second hour: the first has no sample at h0).
    for k in range(2, HOURS + 1):
        b = h0 + k * 3600
        got = at(prom, f"increase(dashstream_quality_monitor_queries_total{sel}[1h])", b)
        want = float(sum(1 for e in events if b - 3600 < e.t <= b))
        # increase() extrapolates to the window's edges; with a sample exactly at both ends there is nothing to
        # extrapolate.
        assert got is not None and math.isclose(got, want, abs_tol=1e-9), (k, got, want)


def test_the_dashboards_data_queries_return_data_over_the_range(history):
    h0, _events, prom, _err = history
    data_queries = [(title, expr) for title, expr in dashboard_queries()
                    if not any(m in expr for m in SELF_MONITORING)]
    assert len(data_queries) >= 20, data_queries
    empty = []
    for title, expr in data_queries:
        q = substitute(expr)
        data = prom.api("query_range", query=q, start=str(h0 + 600), end=str(h0 + HOURS * 3600), step="60")
        values = [float(v) for series in data["result"] for _t, v in series["values"]]
        if not any(not math.isnan(v) for v in values):
            empty.append(f"{title}: {q}")
    assert not empty, "dashboard queries without data over the backfilled range:\n" + "\n".join(empty)
