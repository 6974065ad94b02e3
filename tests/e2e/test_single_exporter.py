"""One exporter between a real broker (tansu) and a real Prometheus: exact counters, histograms and quantiles
against the generator's summary, the raw records seen by an independent client, the live scrape linted by
promtool, every dashboard query and every rule evaluated on live data, and the original's 8 integration tests
(the checks of its integration test script) done right."""

from __future__ import annotations

import json
import math
import re
import signal
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests

import support as s

TOPIC = "quality-single"
GROUP = "e2e-single"
JOB_SEL = f'job="{s.JOB}"'
LATENCY_BOUNDS = [10, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 15000, 20000, 30000]
DURATION_BOUNDS = [0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10]

# `promtool check metrics` findings on a live scrape that are deliberate: the original's metric names, kept
# for compatibility with existing dashboards and alerts (docs/differences.md, "Kept on purpose").
PROMTOOL_EXCEPTIONS = {
    "dashstream_latency_by_model_ms metric names should not contain abbreviated units",
    "dashstream_query_latency_ms metric names should not contain abbreviated units",
}


@dataclass
class Stack:
    tools: object
    broker: s.Tansu
    exporter: s.Exporter
    prom: s.Prometheus
    summaries: list = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def expected(self) -> dict:
        return s.add_summaries(*self.summaries)

    def produce(self, seed: int, count: int, rate: int = 0, bad_ratio: float = 0.02) -> dict:
        summary = s.produce(self.tools.exporter, self.broker.bootstrap, TOPIC, seed, count, rate, bad_ratio)
        self.summaries.append(summary)
        return summary

    def wait_applied(self, timeout: float = 180) -> None:
        exp = self.expected()
        self.prom.wait_value(f"sum(dashstream_exporter_messages_received_total{{{JOB_SEL}}})", exp["records"], timeout)
        self.prom.wait_value(f"sum(dashstream_quality_monitor_queries_total{{{JOB_SEL}}})", exp["quality_events"], timeout)

    def tail(self) -> list[dict]:
        return s.tail_all(self.tools.exporter, self.broker.bootstrap, TOPIC, self.expected()["records"])


@pytest.fixture(scope="module")
def stack(tools, pm, workdir, broker, rule_files):
    wd = workdir / "single"
    broker.create_topic(TOPIC)
    exporter = s.Exporter(pm, tools.exporter, "single", wd, s.exporter_env(broker.bootstrap, TOPIC, GROUP))
    exporter.start()
    exporter.wait_ready()
    s.wait_until("the exporter to own all 4 partitions", lambda: exporter.assigned() == s.PARTITIONS, 60)
    prom = s.Prometheus(pm, wd / "prometheus", [exporter.instance], rule_files)
    prom.start()
    s.wait_until("prometheus to scrape the exporter", lambda: prom.targets_up().get(exporter.instance) == "up", 60)
    st = Stack(tools, broker, exporter, prom)
    st.produce(seed=7, count=6000)
    st.wait_applied()
    yield st
    if exporter.proc.alive():
        exporter.stop()
    pm.stop(prom.proc)


def quality_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["kind"] == "quality"]


# ----------------------------------------------------------------------------------------------- raw records


def test_raw_records_seen_by_an_independent_client(stack):
    """confluent-kafka reads the topic's raw bytes: record count, null and empty values, framing bytes, and the
    exporter's own `tail` view agree with what the generator reports having sent."""
    exp = stack.expected()
    raw = s.read_all(stack.broker.bootstrap, TOPIC)
    high = s.watermarks(stack.broker.bootstrap, TOPIC)
    assert sum(high.values()) == exp["records"]
    assert all(n > 0 for n in high.values()), f"keyed records should reach all 4 partitions: {high}"
    values = {(p, off): v for p, recs in raw.items() for off, _k, v in recs}
    assert len(values) == exp["records"]
    assert sum(1 for v in values.values() if v is None) == exp["bad"].get("payload_missing", 0)
    assert sum(1 for v in values.values() if v == b"") == exp["bad"].get("empty", 0)

    rows = stack.tail()
    assert {(r["partition"], r["offset"]) for r in rows} == set(values)
    framing = {"framed": 0, "framed_zstd": 0, "legacy": 0}
    for r in rows:
        v = values[(r["partition"], r["offset"])]
        if r["kind"] == "payload_missing":
            assert v is None, r
        elif r["kind"] == "error":
            assert v is not None and len(v) == r["size"], r
        elif r["kind"] == "quality":
            framing[s.first_byte_kind(v)] += 1
    assert framing == {k: exp["framing"].get(k, 0) for k in framing}, (framing, exp["framing"])
    assert len(quality_rows(rows)) == exp["quality_events"]


# ----------------------------------------------------------------------------------------------- exact values in Prometheus


def test_prometheus_counters_equal_the_generator_summary(stack):
    exp = stack.expected()
    wrong = []
    for key, want in s.expected_counters(exp).items():
        q = s.promql_for(key, JOB_SEL)
        got = stack.prom.value(q)
        if got != want:
            wrong.append(f"{q} = {got}, expected {want}")
    assert not wrong, "\n".join(wrong)
    assert stack.prom.value(f"sum(dashstream_quality_monitor_queries_total{{{JOB_SEL}}})") == exp["quality_events"]


def test_prometheus_queries_by_model(stack):
    exp = stack.expected()
    got = {m["model"]: v for m, v in stack.prom.query(
        f"sum by (model) (dashstream_queries_by_model_total{{{JOB_SEL}}})")}
    want = {m: float(exp["by_model"].get(m, 0)) for m in set(s.PRECREATED_MODELS) | set(exp["by_model"])}
    assert got == want
    assert sum(got.values()) > 0


def test_prometheus_failure_ratio_by_category(stack):
    exp = stack.expected()
    q = (f"sum by (category) (dashstream_quality_monitor_queries_failed_total{{{JOB_SEL}}})"
         f" / scalar(sum(dashstream_quality_monitor_queries_total{{{JOB_SEL}}}))")
    got = {m["category"]: v for m, v in stack.prom.query(q)}
    want = {c: exp["failed_by_category"].get(c, 0) / exp["quality_events"] for c in s.CATEGORIES}
    assert got == want
    overall = stack.prom.value(f"sum(dashstream_quality_monitor_queries_failed_total{{{JOB_SEL}}})"
                               f" / sum(dashstream_quality_monitor_queries_total{{{JOB_SEL}}})")
    assert overall == exp["failed"] / exp["quality_events"]


def test_prometheus_latency_histogram_and_quantiles(stack):
    """Buckets, count and sum exactly as computed from every produced event, and histogram_quantile exactly as
    Prometheus' interpolation rule gives for those buckets."""
    exp = stack.expected()
    lat = [max(0, r["event"]["latency_ms"]) for r in quality_rows(stack.tail())
           if r["event"].get("latency_ms") is not None]
    assert sum(lat) == exp["latency_ms_sum"]
    buckets = s.cumulative_buckets(lat, LATENCY_BOUNDS)
    got = {float(m["le"]): v for m, v in stack.prom.query(
        f"sum by (le) (dashstream_query_latency_ms_bucket{{{JOB_SEL}}})")}
    assert got == dict(buckets)
    assert stack.prom.value(f"sum(dashstream_query_latency_ms_count{{{JOB_SEL}}})") == len(lat)
    assert stack.prom.value(f"sum(dashstream_query_latency_ms_sum{{{JOB_SEL}}})") == exp["latency_ms_sum"]
    for q in (0.5, 0.95, 0.99):
        want = s.histogram_quantile(q, buckets)
        got_q = stack.prom.value(
            f"histogram_quantile({q}, sum by (le) (dashstream_query_latency_ms_bucket{{{JOB_SEL}}}))")
        assert got_q == want, f"q={q}: Prometheus {got_q}, expected {want}"
        # the dashboard's rate() form over a window holding the whole run scales every bucket alike
        window = int(time.time() - stack.started) + 60
        got_r = stack.prom.value(
            f"histogram_quantile({q}, sum by (le) (rate(dashstream_query_latency_ms_bucket{{{JOB_SEL}}}[{window}s])))")
        assert got_r == pytest.approx(want, rel=1e-9), f"q={q}: rate form {got_r}, expected {want}"
    assert s.histogram_quantile(0.95, buckets) > s.histogram_quantile(0.5, buckets) > 0


def test_prometheus_per_model_histograms_and_weighted_score(stack):
    rows = quality_rows(stack.tail())
    with_model = [r for r in rows if r["event"].get("model")]
    scores = [r["event"]["quality_score"] for r in with_model
              if r["event"].get("quality_score") is not None and math.isfinite(r["event"]["quality_score"])]
    assert stack.prom.value(f"sum(dashstream_quality_score_by_model_count{{{JOB_SEL}}})") == len(scores)
    mean = stack.prom.value(f"sum(dashstream_quality_score_by_model_sum{{{JOB_SEL}}})"
                            f" / sum(dashstream_quality_score_by_model_count{{{JOB_SEL}}})")
    assert mean == pytest.approx(sum(scores) / len(scores), rel=1e-9)
    per_model: dict[str, list[int]] = {}
    for r in with_model:
        if r["event"].get("latency_ms") is not None:
            per_model.setdefault(r["model_label"], []).append(max(0, r["event"]["latency_ms"]))
    got = {m["model"]: v for m, v in stack.prom.query(
        f"sum by (model) (dashstream_latency_by_model_ms_count{{{JOB_SEL}}})")}
    assert got == {m: float(len(v)) for m, v in per_model.items()}
    model = max(per_model, key=lambda m: len(per_model[m]))
    buckets = s.cumulative_buckets(per_model[model], LATENCY_BOUNDS)
    p95 = stack.prom.value(f'histogram_quantile(0.95, sum by (le) (dashstream_latency_by_model_ms_bucket{{{JOB_SEL}, model="{model}"}}))')
    assert p95 == s.histogram_quantile(0.95, buckets)


def test_prometheus_librarian_histogram(stack):
    exp = stack.expected()
    lib = [r for r in quality_rows(stack.tail()) if r["event"].get("application_type") in
           ("librarian", "code_assistant", "document_search", "document_search_streaming")]
    assert len(lib) == exp["librarian"]
    durations = [max(0, r["event"]["latency_ms"]) / 1000.0 for r in lib if r["event"].get("latency_ms") is not None]
    got = {float(m["le"]): v for m, v in stack.prom.query(
        f"sum by (le) (dashstream_librarian_request_duration_seconds_bucket{{{JOB_SEL}}})")}
    assert got == dict(s.cumulative_buckets(durations, DURATION_BOUNDS))
    tests = {m["status"]: v for m, v in stack.prom.query(f"sum by (status) (dashstream_librarian_tests_total{{{JOB_SEL}}})")}
    passed = sum(1 for r in lib if r["event"].get("passed"))
    assert tests == {"passed": passed, "failed": len(lib) - passed}


def test_promtool_check_metrics_on_a_live_scrape(stack):
    body = stack.exporter.get("/metrics").text
    r = s.promtool("check", "metrics", stdin=body)
    found = {line.strip() for line in (r.stdout + r.stderr).splitlines() if line.strip()}
    assert found == PROMTOOL_EXCEPTIONS, (
        f"promtool check metrics (exit {r.returncode}) reported:\n" + "\n".join(sorted(found)))
    assert r.returncode == 3  # lint problems (exactly the deliberate ones)


def test_committed_offsets_reach_the_high_watermarks(stack):
    high = s.watermarks(stack.broker.bootstrap, TOPIC)
    s.wait_until("the group's committed offsets to equal the high watermarks",
                 lambda: s.committed(stack.broker.bootstrap, GROUP, TOPIC) == high or
                 f"committed {s.committed(stack.broker.bootstrap, GROUP, TOPIC)} high {high}", timeout=30, interval=1)


# ---------------------------------------------------------------------------------- the original's integration tests


def test_original_1_metrics_endpoint_accessible(stack):
    r = stack.exporter.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# HELP " in r.text and "# TYPE " in r.text
    assert len(r.text) > 1000


def test_original_2_quality_metrics_present(stack):
    e = stack.exporter.scrape()
    for fam, typ in [("dashstream_quality_monitor_queries_total", "counter"),
                     ("dashstream_quality_monitor_queries_passed_total", "counter"),
                     ("dashstream_quality_monitor_queries_failed_total", "counter"),
                     ("dashstream_quality_monitor_quality_score", "gauge"),
                     ("dashstream_query_latency_ms", "histogram")]:
        assert e.types.get(fam) == typ, fam
        assert any(k[0].startswith(fam) for k in e.samples), fam


def test_original_3_librarian_metrics_present_under_their_prefixed_names(stack):
    """The original also asserted that the un-prefixed names are absent from the body, which cannot pass
    (they are substrings of the prefixed ones). Done right: no metric family has the un-prefixed name."""
    e = stack.exporter.scrape()
    for fam, typ in [("dashstream_librarian_requests_total", "counter"), ("dashstream_librarian_iterations", "gauge"),
                     ("dashstream_librarian_tests_total", "counter"),
                     ("dashstream_librarian_request_duration_seconds", "histogram")]:
        assert e.types.get(fam) == typ, fam
        unprefixed = fam.removeprefix("dashstream_")
        assert unprefixed not in e.types
        assert not any(k[0] == unprefixed or k[0].startswith(unprefixed + "_") for k in e.samples)
    assert e.get("dashstream_librarian_requests_total") == stack.expected()["librarian"]


def test_original_4_metric_values_reasonable(stack):
    """The original applied [0, 1] to every line containing "quality_score" (bucket counts included), which
    fails once a count exceeds 1. Done right: each kind of value gets the range that fits it."""
    e = stack.exporter.scrape()
    for (name, labels), v in e.samples.items():
        assert not math.isnan(v), name
        if name.endswith(("_total", "_count", "_bucket")):
            assert v >= 0, (name, dict(labels), v)
            if name.startswith("dashstream_"):  # event counts are whole numbers (process CPU seconds are not)
                assert v == int(v), (name, dict(labels), v)
    for g in ("dashstream_quality_monitor_quality_score", "dashstream_quality_accuracy",
              "dashstream_quality_relevance", "dashstream_quality_completeness"):
        assert 0 <= e.get(g) <= 1, g
    for lbl, v in e.series("dashstream_quality_score_by_model_bucket"):
        if lbl["le"] != "+Inf":
            assert 0 < float(lbl["le"]) <= 1, lbl
    # histograms: cumulative buckets, +Inf equals _count; latencies are plausible
    families = {n[:-len("_bucket")] for (n, _l) in e.samples if n.endswith("_bucket")}
    for fam in families:
        groups: dict = {}
        for lbl, v in e.series(fam + "_bucket"):
            key = frozenset((k, x) for k, x in lbl.items() if k != "le")
            groups.setdefault(key, []).append((float(lbl["le"]), v))
        for key, bs in groups.items():
            counts = [c for _le, c in sorted(bs)]
            assert counts == sorted(counts), (fam, key, bs)
            assert counts[-1] == e.get(fam + "_count", **dict(key)), (fam, key)
            if "latency" in fam and counts[-1] > 0:
                mean = e.get(fam + "_sum", **dict(key)) / counts[-1]
                assert 0 <= mean < 3.6e6, (fam, key, mean)


def test_original_5_process_healthy(stack):
    """The original checked `docker ps`; here: the process runs, /-/healthy and /-/ready answer 200, the
    readiness gauge is 1, and the `healthcheck` subcommand agrees."""
    assert stack.exporter.proc.alive()
    assert stack.exporter.get("/-/healthy").status_code == 200
    assert stack.exporter.get("/-/ready").status_code == 200
    assert stack.exporter.scrape().get("dashstream_exporter_ready") == 1
    s.run_tool(stack.tools.exporter, ["healthcheck", "--url", f"{stack.exporter.base}/-/ready", "--timeout", "3"])
    assert stack.prom.value(f'up{{{JOB_SEL}}}') == 1


def test_original_6_histogram_structure(stack):
    e = stack.exporter.scrape()
    for fam, bounds in [("dashstream_query_latency_ms", LATENCY_BOUNDS),
                        ("dashstream_librarian_request_duration_seconds", DURATION_BOUNDS)]:
        les = [lbl["le"] for lbl, _v in e.series(fam + "_bucket")]
        assert sorted(float(x) for x in les) == [float(b) for b in bounds] + [math.inf], (fam, les)
        assert e.series(fam + "_sum") and e.series(fam + "_count"), fam


def test_original_7_metrics_increase_over_time(stack):
    """queries_total never decreases while traffic flows, rises during it, and ends exactly where the
    generator says; Prometheus sees no counter reset."""
    before = stack.exporter.scrape().get("dashstream_quality_monitor_queries_total")
    seen: list[float] = []
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            try:
                seen.append(stack.exporter.scrape().get("dashstream_quality_monitor_queries_total"))
            except requests.RequestException:
                pass
            time.sleep(0.2)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    try:
        summary = stack.produce(seed=8, count=1500, rate=500)
        stack.wait_applied()
        time.sleep(0.5)
    finally:
        stop.set()
        t.join(10)
    assert seen == sorted(seen), "queries_total went down"
    assert len(set(seen)) >= 3, f"queries_total should rise in steps while traffic flows: {sorted(set(seen))}"
    assert seen[-1] == before + summary["quality_events"]
    assert stack.prom.value(f"sum(resets(dashstream_quality_monitor_queries_total{{{JOB_SEL}}}[10m]))") == 0


# ----------------------------------------------------------------------------------------------- dashboard and rules, live


def dashboard_queries() -> list[tuple[str, str]]:
    from test_monitoring_files import DASHBOARD, all_panels
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for p in all_panels(dash):
        for t in p.get("targets", []):
            out.append((p["title"], t["expr"]))
    return out


def substitute(expr: str) -> str:
    """What Grafana sends with every variable at "All" (for job and instance: the values found, here matched by .+)
    and 1 m rate intervals."""
    for var, value in {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h", "$job": ".+",
                       "$instance": ".+", "$model": ".+"}.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, expr
    return expr


def dashboard_gaps(prom: s.Prometheus) -> tuple[list[str], list[str]]:
    """Every dashboard query asked of `prom`: the ones without data, and the ones answering NaN."""
    empty, nan = [], []
    for title, expr in dashboard_queries():
        res = prom.query(substitute(expr))
        if not res:
            empty.append(f"{title}: {expr}")
        elif any(math.isnan(v) for _m, v in res):
            nan.append(f"{title}: {expr} -> {res}")
    return empty, nan


def test_every_dashboard_query_returns_data_live(stack):
    # fresh traffic so every 5 minute window holds events, and sessions have closed (timeout 2 s)
    stack.produce(seed=9, count=800, rate=400)
    stack.wait_applied()
    s.wait_until("closed sessions in Prometheus",
                 lambda: (stack.prom.value(f"sum(dashstream_turns_by_session_count{{{JOB_SEL}}})") or 0) > 0, 30)
    time.sleep(3)  # a few rule evaluations (1 s) after the last scrape
    assert len(dashboard_queries()) >= 40
    empty, nan = dashboard_gaps(stack.prom)
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
    assert not nan, "dashboard queries returning NaN:\n" + "\n".join(nan)
    # the template variables resolve too
    jobs = stack.prom.api("label/job/values", **{"match[]": "dashstream_exporter_ready"})
    assert jobs == [s.JOB]
    instances = stack.prom.api("label/instance/values", **{"match[]": f'dashstream_exporter_ready{{job=~"{s.JOB}"}}'})
    assert instances == [stack.exporter.instance]
    models = stack.prom.api("label/model/values", **{"match[]": 'dashstream_queries_by_model_total{job=~".+"}'})
    assert set(s.PRECREATED_MODELS) <= set(models)


def test_recording_rules_live(stack):
    groups = stack.prom.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len([r for r in rules if r["type"] == "recording"]) >= 50
    assert len([r for r in rules if r["type"] == "alerting"]) >= 12
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad
    exp = stack.expected()
    stack.prom.wait_value(f'job:dashstream_exporter_replicas:count{{{JOB_SEL}}}', 1, 30)
    stack.prom.wait_value(f'job:dashstream_exporter_ready:sum{{{JOB_SEL}}}', 1, 30)
    stack.prom.wait_value(f'job:dashstream_exporter_kafka_assigned_partitions:sum{{{JOB_SEL}}}', s.PARTITIONS, 30)
    # the latest-value rule picks this (only) exporter's gauge
    gauge = stack.exporter.scrape().get("dashstream_quality_monitor_quality_score")
    assert stack.prom.value(f'job:dashstream_quality_monitor_quality_score:latest{{{JOB_SEL}}}') == gauge
    ratio = stack.prom.value(f'job:dashstream_quality_monitor_success:ratio_rate5m{{{JOB_SEL}}}')
    assert ratio == pytest.approx(exp["passed"] / exp["quality_events"], rel=0.05)


def test_alerts_live(stack):
    """The alert rules evaluated on live data: exactly the alerts whose condition the produced traffic meets
    are active (pending: their `for` has not passed), and no other."""
    exp = stack.expected()
    rows = quality_rows(stack.tail())
    scores = [r["event"]["quality_score"] for r in rows if r["event"].get("model")]
    decode = sum(exp["bad"].get(k, 0) for k in s.DECODE_REASONS) / exp["records"]
    foreign = (exp["bad"].get("wrong_scope", 0) + sum(v for k, v in exp["bad"].items() if k.startswith("other_type:"))) / exp["records"]
    conditions = {
        "DashflowExporterDecodeFailureRatio": (decode, 0.01, ">"),
        "DashflowExporterForeignMessages": (foreign, 0.05, ">"),
        "DashflowQualityScoreLow": (sum(scores) / len(scores), 0.90, "<"),
        "DashflowQualityFailureRateHigh": (exp["failed"] / exp["quality_events"], 0.10, ">"),
    }
    expected = set()
    for name, (value, threshold, op) in conditions.items():
        s.log(f"{name}: traffic value {value:.4f} vs threshold {threshold}")
        assert abs(value - threshold) > 0.02 * threshold, f"{name}: traffic too close to its threshold to test"
        if (value > threshold) if op == ">" else (value < threshold):
            expected.add(name)

    def active():
        return {a["labels"]["alertname"]: a["state"] for a in stack.prom.api("alerts")["alerts"]}

    s.wait_until(f"active alerts == {sorted(expected)}", lambda: set(active()) == expected or f"active: {active()}",
                 timeout=30, interval=1)
    assert all(state == "pending" for state in active().values()), active()


# ----------------------------------------------------------------------------------------------- the end


def test_original_8_no_error_logs_and_a_clean_stop(stack):
    """The original grepped `docker logs` for ERROR and panic. Here: the exporter's whole log has no ERROR and
    no panic, it exits 0 on SIGTERM, and its final commit leaves the group at the high watermarks."""
    assert stack.exporter.scrape().get("dashstream_exporter_kafka_consumer_errors_total") == 0
    rc = stack.exporter.stop(signal.SIGTERM)
    assert rc == 0
    text = stack.exporter.proc.log_text()
    bad = [line for line in text.splitlines() if "[ERROR]" in line or re.search(r"panic", line, re.I)]
    assert not bad, "\n".join(bad[:20])
    assert "stopped cleanly" in text
    high = s.watermarks(stack.broker.bootstrap, TOPIC)
    assert sum(high.values()) == stack.expected()["records"]
    assert s.committed(stack.broker.bootstrap, GROUP, TOPIC) == high
