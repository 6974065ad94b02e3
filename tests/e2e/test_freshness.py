"""Freshness and the monitoring bundle as an operator of the original imports it (issue 18).

One exporter follows a live stream from librdkafka's mock cluster (a broker process of its own); Debian's
Prometheus scrapes it under the original's job name `dashstream-quality` with only monitoring/alerts.yml loaded
(no recording rules). Then:
1. no critical alert is pending or firing, and every dashboard query returns data (the dashboard needs no
   recording rules);
2. the exporter is paused (SIGSTOP) for about 20 s while the producer keeps writing: right after SIGCONT the time
   lag is about the pause, the event delay histogram holds delays of that size, and once the exporter has caught
   up the time lag is back near 0;
3. after the exporter stops, the target-down alert's expression holds for it."""

from __future__ import annotations

import os
import signal
import time

import yaml

import support as s
from test_single_exporter import dashboard_gaps

PAUSE_S = 20.0
# The mock cluster keeps about 5 MiB per partition and drops the oldest records silently: at DashFlow's record
# shape (~480 B) 1 300 records/s keep the backlog of the pause (and what the run writes) below that, as
# 2 000/s of the earlier ~320 B records did.
RATE = 1300
TIME_LAG = "dashstream_exporter_kafka_consumer_time_lag_seconds"


def alert_expr(name: str) -> str:
    rules = yaml.safe_load((s.REPO / "monitoring" / "alerts.yml").read_text())
    for g in rules["groups"]:
        for r in g["rules"]:
            if r.get("alert") == name:
                return r["expr"]
    raise AssertionError(f"no alert {name} in monitoring/alerts.yml")


def test_freshness_pause_alerts_and_dashboard_under_the_originals_job_name(tools, pm, workdir):
    assert s.JOB == "dashstream-quality", "the original's job name"
    topic, group = "freshness", "e2e-freshness"
    d = workdir / "freshness"
    broker = s.MockCluster(pm, tools.exporter, d)
    broker.start(topic)
    exp = s.Exporter(pm, tools.exporter, "freshness", d, s.exporter_env(broker.bootstrap, topic, group))
    exp.start()
    exp.wait_ready()
    s.wait_until("the exporter to own all 4 partitions", lambda: exp.assigned() == s.PARTITIONS, 60)
    prom = s.Prometheus(pm, d / "prometheus", [exp.instance], [s.REPO / "monitoring" / "alerts.yml"])
    prom.start()

    # a live stream long enough to outlast the pause: RATE records/s for 75 s
    live = s.BackgroundProduce(pm, tools.exporter, d / "produce.log", broker.bootstrap, topic, seed=71,
                               count=int(RATE * 75), rate=RATE, bad_ratio=0.0)
    s.wait_until("events applied and scraped", lambda: (prom.value("sum(dashstream_quality_monitor_queries_total)")
                                                        or 0) > 5000, 60)
    s.wait_until("session turns observed (sessions closed)",
                 lambda: (prom.value("sum(dashstream_turns_by_session_count)") or 0) > 0, 30)
    time.sleep(6)  # a few 1 s evaluations and scrapes with traffic in every window

    # 1. no critical alert pending or firing; every dashboard query has data without recording rules
    critical = prom.query('ALERTS{severity="critical"}')
    assert not critical, f"critical alerts while all is well: {critical}"
    assert not prom.query('{__name__=~"job:.+"}'), "no recording rule is loaded here"
    empty, nan = dashboard_gaps(prom)
    assert not empty, "dashboard queries without data (only alerts.yml loaded):\n" + "\n".join(empty)
    assert not nan, "dashboard queries returning NaN:\n" + "\n".join(nan)
    steady = exp.scrape().get(TIME_LAG)
    assert steady < 2.0, f"following a live stream, the time lag is small: {steady}"

    # 2. pause the exporter while the producer keeps writing
    before = exp.scrape()
    delayed_before = before.get("dashstream_exporter_event_delay_seconds_count") - \
        before.get("dashstream_exporter_event_delay_seconds_bucket", le="10")
    os.killpg(exp.proc.pid, signal.SIGSTOP)
    t_stop = time.monotonic()
    time.sleep(PAUSE_S)
    os.killpg(exp.proc.pid, signal.SIGCONT)
    paused = time.monotonic() - t_stop
    seen: list[tuple[float, float]] = []  # (seconds since SIGCONT, time lag)
    t_cont = time.monotonic()
    while time.monotonic() - t_cont < 5:
        seen.append((time.monotonic() - t_cont, exp.scrape().get(TIME_LAG)))
        time.sleep(0.05)
    peak = max(v for _t, v in seen)
    s.log(f"FIGURE pause: {paused:.1f}s paused; time lag after SIGCONT peaked at {peak:.1f}s; first scrapes "
          f"{[round(v, 1) for _t, v in seen[:8]]}")
    assert paused - 3 <= peak <= paused + 5, f"time lag right after a {paused:.1f}s pause: {seen[:20]}"
    s.wait_until("the time lag to return to about 0 once caught up",
                 lambda: exp.scrape().get(TIME_LAG) < 1.0 or f"time lag {exp.scrape().get(TIME_LAG)}", 60,
                 interval=0.25)
    after = exp.scrape()
    delayed = after.get("dashstream_exporter_event_delay_seconds_count") - \
        after.get("dashstream_exporter_event_delay_seconds_bucket", le="10")
    # about RATE x (pause - 10 s) events waited longer than 10 s; at least half of that, allowing for the rate
    assert delayed - delayed_before >= RATE * (PAUSE_S - 10) / 2, (delayed_before, delayed)
    assert after.get("dashstream_exporter_event_clock_skew_total") == 0
    summary = live.wait()
    s.wait_until("every record counted", lambda: exp.scrape().get("dashstream_exporter_messages_received_total")
                 >= summary["records"] or None, 60)

    # 3. the exporter stops: the target-down alert's expression holds for its instance
    exp.stop()
    expr = alert_expr("DashflowExporterTargetDown")
    down = s.wait_until("the target-down expression to hold", lambda: prom.query(expr) or None, 30)
    assert [m["instance"] for m, _v in down] == [exp.instance]
    assert [m["job"] for m, _v in down] == [s.JOB]
