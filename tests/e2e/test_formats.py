"""Every format Prometheus negotiates (GitHub issue 15): one exporter scraped by three real Prometheus 2.42
servers, each asking for what its flags make it ask for, and the exporter's /metrics read with the Accept
headers of Prometheus 2 and 3, checked by parsers this project did not write.

- Prometheus A: --enable-feature=native-histograms,exemplar-storage (scrapes delimited protobuf: native
  histograms and exemplars);
- Prometheus B: no feature (scrapes OpenMetrics by its default Accept; stores classic series only);
- Prometheus C: --enable-feature=exemplar-storage (OpenMetrics with exemplars on the classic `_bucket` series).

A also scrapes two more exporters on the same topic: one with exemplars off and a native window of 132 buckets
per sign (the produced latencies span 142 buckets at schema 3, so its schema must come down to 2 while the
default window of 160 keeps 3), one with native histograms off (PROMETHEUS_NATIVE_HISTOGRAM_MAX_BUCKETS=0: A
must get the classic series from it).

Expectations come from what was produced: every record as `tail --json` decodes it (the generator's message id
is its seed and record number, 8 bytes big-endian each), plus six hand-made records whose header fields the
generator never sends (a thread id with two-byte characters over 77 bytes, one of exactly 77 bytes, one of 78,
one without a message id) or whose latencies stretch the native range (1 ms and 200 s), each sent last into a
latency and a score bucket of its own, so that the exemplar of that bucket must be exactly it."""

from __future__ import annotations

import math
import re
import struct
import time
from dataclasses import dataclass
from email.message import Message

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

import support as s
from test_single_exporter import LATENCY_BOUNDS, PROMTOOL_EXCEPTIONS

TOPIC = "quality-formats"
GROUP = "e2e-formats"
JOB_SEL = f'job="{s.JOB}"'
SEED = 15
COUNT = 4000

QUALITY_BOUNDS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]
HIST = {  # family -> classic bounds
    "dashstream_query_latency_ms": LATENCY_BOUNDS,
    "dashstream_latency_by_model_ms": LATENCY_BOUNDS,
    "dashstream_quality_score_by_model": QUALITY_BOUNDS,
}

TEXT_CT = "text/plain; version=0.0.4"  # today's (src/http/respond.rs), unchanged
OM_CT = "application/openmetrics-text; version=1.0.0; charset=utf-8"
PROTO_ACCEPT = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
PROM2_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
PROM3_ACCEPT = ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
                "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
                "text/plain;version=0.0.4;q=0.3,*/*;q=0.2")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
SHORTENED = re.compile(r"^(?P<prefix>.*)~(?P<hash>[0-9a-f]{8})$", re.S)


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def exemplar_thread_id(thread_id: str) -> str:
    """The documented rule: up to 77 bytes unchanged; longer, the first <= 68 bytes cut at a character boundary,
    then `~` and the FNV-1a 32-bit hash of the whole id in 8 hex digits (src/decode/ids.rs)."""
    raw = thread_id.encode()
    if len(raw) <= 77:
        return thread_id
    keep = 68
    while keep and (raw[keep] & 0xC0) == 0x80:  # a UTF-8 continuation byte: not a boundary
        keep -= 1
    return raw[:keep].decode() + "~" + f"{fnv1a32(raw):08x}"


@dataclass
class Crafted:
    """A hand-made record: the exemplar it must leave, and the buckets (upper bounds) it is the last one in."""
    thread_id: str
    message_id: bytes
    latency_ms: int
    quality_score: float
    latency_le: float
    score_le: float
    want_prefix: str  # what the shortened thread id must start with (before "~"), or the whole id
    model: str = "gpt-4o"

    @property
    def want_thread_id(self) -> str:
        return exemplar_thread_id(self.thread_id)

    @property
    def want_message_id(self) -> str | None:
        return self.message_id[:16].hex() if self.message_id else None


def crafted_records() -> list[Crafted]:
    two_byte = "t-x" + "ü" * 60  # 3 + 120 bytes; the cut at <= 68 bytes on a char boundary keeps 3 + 2 * 32 = 67
    return [
        Crafted(two_byte, bytes(range(20)), 25000, 0.05, 30000, 0.1, "t-x" + "ü" * 32),
        Crafted("a" * 77, bytes(range(100, 116)), 17000, 0.15, 20000, 0.2, "a" * 77),
        Crafted("b" * 78, bytes(range(200, 216)), 12000, 0.22, 15000, 0.3, "b" * 68),
        Crafted("no-message-id", b"", 7000, 0.35, 10000, 0.4, "no-message-id"),
        Crafted("range-low", bytes(range(50, 66)), 1, 0.45, 10, 0.5, "range-low"),
        Crafted("range-high", bytes(range(70, 86)), 200000, 0.55, math.inf, 0.6, "range-high"),
    ]


def generated_message_id(query_id: str) -> str:
    """The generator's header.message_id for record q-N: seed and N, 8 bytes big-endian each."""
    assert query_id.startswith("q-"), query_id
    return struct.pack(">QQ", SEED, int(query_id[2:])).hex()


@dataclass
class Stack:
    tools: object
    broker: s.Tansu
    exporter: s.Exporter  # defaults: exemplars on, schema 3, 160 buckets
    alt: s.Exporter  # PROMETHEUS_EXEMPLARS=false, PROMETHEUS_NATIVE_HISTOGRAM_MAX_BUCKETS=132
    classic: s.Exporter  # PROMETHEUS_NATIVE_HISTOGRAM_MAX_BUCKETS=0
    prom_a: s.Prometheus
    prom_b: s.Prometheus
    prom_c: s.Prometheus
    summary: dict
    rows: list  # tail --json of every record
    crafted: list
    crafted_sent: float  # wall clock just before the hand-made records were produced
    crafted_applied: float  # wall clock once all exporters had applied them
    started: float  # wall clock when the fixture began
    _by_ids: dict | None = None

    def quality(self) -> list[dict]:
        return [r for r in self.rows if r["kind"] == "quality"]

    def thread_ids(self) -> set[str]:
        return {r["event"]["session_id"] for r in self.quality() if r["event"].get("session_id")}

    def by_ids(self) -> dict[tuple[str, str | None], dict]:
        """(exemplar thread_id, exemplar message_id) -> the produced record's event, for every quality record."""
        if self._by_ids is not None:
            return self._by_ids
        out = {}
        crafted = {c.thread_id: c for c in self.crafted}
        for r in self.quality():
            ev = r["event"]
            c = crafted.get(ev.get("session_id"))
            if not c and not ev.get("query_id"):
                # A QualityMonitor evaluation: no query id, and no latency or model either, so it observes no
                # histogram that keeps exemplars.
                assert ev.get("latency_ms") is None and not ev.get("model"), ev
                continue
            key = (c.want_thread_id, c.want_message_id) if c else (ev["session_id"], generated_message_id(ev["query_id"]))
            assert key not in out, f"two records with the exemplar ids {key}"
            out[key] = dict(ev, model_label=r.get("model_label"))
        self._by_ids = out
        return out

    def latencies(self, model: str | None = None) -> list[float]:
        return [float(max(0, r["event"]["latency_ms"])) for r in self.quality()
                if r["event"].get("latency_ms") is not None and (model is None or r.get("model_label") == model)]

    def scores(self, model: str) -> list[float]:
        return [float(r["event"]["quality_score"]) for r in self.quality()
                if r.get("model_label") == model and r["event"].get("quality_score") is not None
                and math.isfinite(r["event"]["quality_score"])]

    def observations(self, family: str, model: str | None = None) -> list[float]:
        if family == "dashstream_query_latency_ms":
            return self.latencies()
        if family == "dashstream_latency_by_model_ms":
            return self.latencies(model)
        return self.scores(model)

    def biggest_model(self) -> str:
        counts: dict[str, int] = {}
        for r in self.quality():
            if r.get("model_label"):
                counts[r["model_label"]] = counts.get(r["model_label"], 0) + 1
        return max(counts, key=lambda m: counts[m])

    def url(self, exporter: s.Exporter | None = None) -> str:
        return (exporter or self.exporter).base + "/metrics"


def crafted_summary(crafted: list[Crafted]) -> dict:
    """What the hand-made records add to the counters of expected_counters (all passed, model gpt-4o, no
    category, application type or turn)."""
    return {"records": len(crafted), "quality_events": len(crafted), "passed": len(crafted), "failed": 0,
            "librarian": 0, "latency_ms_sum": sum(c.latency_ms for c in crafted), "failed_by_category": {},
            "by_model": {"gpt-4o": len(crafted)}, "bad": {}, "framing": {"legacy": len(crafted)}}


@pytest.fixture(scope="module")
def stack(tools, pm, workdir, broker):
    t0 = time.time()
    wd = workdir / "formats"
    broker.create_topic(TOPIC)
    exporters = {}
    for name, extra in [("formats", {}),
                        ("formats-alt", {"PROMETHEUS_EXEMPLARS": "false", "PROMETHEUS_NATIVE_HISTOGRAM_MAX_BUCKETS": "132"}),
                        ("formats-classic", {"PROMETHEUS_NATIVE_HISTOGRAM_MAX_BUCKETS": "0"})]:
        e = s.Exporter(pm, tools.exporter, name, wd, s.exporter_env(broker.bootstrap, TOPIC, f"{GROUP}-{name}", **extra))
        e.start()
        exporters[name] = e
    for e in exporters.values():
        e.wait_ready()
        s.wait_until(f"exporter {e.name} to own all 4 partitions", lambda e=e: e.assigned() == s.PARTITIONS, 60)
    main, alt, classic = exporters["formats"], exporters["formats-alt"], exporters["formats-classic"]
    prom_a = s.Prometheus(pm, wd / "prom-a", [main.instance, alt.instance, classic.instance], [],
                          extra_args=["--enable-feature=native-histograms,exemplar-storage"])
    prom_b = s.Prometheus(pm, wd / "prom-b", [main.instance], [])
    prom_c = s.Prometheus(pm, wd / "prom-c", [main.instance], [], extra_args=["--enable-feature=exemplar-storage"])
    for p in (prom_a, prom_b, prom_c):
        p.start()
        s.wait_until("prometheus to scrape every target", lambda p=p: set(p.targets_up().values()) == {"up"}
                     and len(p.targets_up()) == len(p.targets) or f"targets {p.api('targets')['activeTargets']}", 60)

    summary = s.produce(tools.exporter, broker.bootstrap, TOPIC, SEED, COUNT)

    def applied(prom: s.Prometheus, records: int, exporters_seen: int) -> None:
        prom.wait_value(f"sum(dashstream_exporter_messages_received_total{{{JOB_SEL}}})", records * exporters_seen, 180)

    for p in (prom_a, prom_b, prom_c):
        applied(p, summary["records"], len(p.targets))

    crafted = crafted_records()
    sent = time.time()
    s.produce_raw(broker.bootstrap, TOPIC, [
        (c.thread_id.encode(), s.quality_record(c.thread_id, c.message_id, f"crafted-{i}",
                                                {"latency_ms": c.latency_ms, "quality_score": c.quality_score,
                                                 "passed": True},
                                                {"model": c.model, "query_id": f"crafted-{i}"}))
        for i, c in enumerate(crafted)])
    total = summary["records"] + len(crafted)
    for p in (prom_a, prom_b, prom_c):
        applied(p, total, len(p.targets))
    applied_at = time.time()
    rows = s.tail_all(tools.exporter, broker.bootstrap, TOPIC, total)
    st = Stack(tools, broker, main, alt, classic, prom_a, prom_b, prom_c, s.add_summaries(summary, crafted_summary(crafted)),
               rows, crafted, sent, applied_at, t0)
    yield st
    for e in exporters.values():
        if e.proc.alive():
            e.stop()
    for p in (prom_a, prom_b, prom_c):
        pm.stop(p.proc)


def media_type(content_type: str) -> tuple[str, dict]:
    m = Message()
    m["content-type"] = content_type
    return m.get_content_type(), {k.lower(): v for k, v in m.get_params()[1:]}


def openmetrics(st: Stack, exporter: s.Exporter | None = None) -> tuple[str, dict]:
    """The exporter's OpenMetrics exposition, parsed by prometheus_client's strict parser: (text, families)."""
    f = s.fetch(st.url(exporter), {"Accept": "application/openmetrics-text;version=1.0.0"})
    assert f.status == 200 and f.headers.get("content-type") == OM_CT, (f.status, f.headers, f.body[:500])
    text = f.body.decode()
    try:
        fams = {fam.name: fam for fam in text_string_to_metric_families(text)}
    except ValueError as e:
        raise AssertionError(f"prometheus_client's OpenMetrics parser refused the exposition: {e}\n{text[:3000]}")
    return text, fams


def om_exemplars(fams: dict, family: str) -> list:
    return [smp for smp in fams[family].samples if smp.name == family + "_bucket" and smp.exemplar is not None]


# ------------------------------------------------------------------------------------------- counters, three ways


def test_counters_in_prometheus_a_b_c(stack):
    """The same exact counters whichever format a Prometheus scraped (protobuf for A, OpenMetrics for B and C)."""
    wrong = []
    for name, prom in (("A", stack.prom_a), ("B", stack.prom_b), ("C", stack.prom_c)):
        sel = f'{JOB_SEL}, instance="{stack.exporter.instance}"'
        for key, want in s.expected_counters(stack.summary).items():
            q = s.promql_for(key, sel)
            if name == "A" and key[0].removesuffix("_sum") in HIST:  # native there: no _sum series
                q = s.promql_for((key[0].removesuffix("_sum"),) + key[1:], sel, wrap="histogram_sum({})")
            got = prom.value(q)
            if got != want:
                wrong.append(f"Prometheus {name}: {q} = {got}, expected {want}")
    assert not wrong, "\n".join(wrong)


# ------------------------------------------------------------------------------------------- B: today's series


def test_prometheus_b_has_todays_classic_series(stack):
    """Without features, Prometheus keeps today's series of the three families (`_bucket` with the `le` values
    of the text format and the exact bucket counts of the produced events, `_sum`, `_count`). Prometheus 2.42
    asks for OpenMetrics first, and it stores OpenMetrics' `_created` samples as one more series per histogram
    (docs/formats.md); nothing else is added or renamed."""
    text = s.fetch(stack.url()).body.decode()
    e = s.parse_exposition(text)
    model = stack.biggest_model()
    changed = []
    for fam, bounds in HIST.items():
        names = set(stack.prom_b.api("label/__name__/values", **{"match[]": f'{{__name__=~"{fam}_.*"}}'}))
        if names != {fam + "_bucket", fam + "_sum", fam + "_count", fam + "_created"}:
            changed.append(f"{fam}: Prometheus B stores {sorted(names)}")
        les_b = set(stack.prom_b.api("label/le/values", **{"match[]": f"{fam}_bucket"}))
        les_text = {lbl["le"] for lbl, _v in e.series(fam + "_bucket")}
        if les_b != les_text:
            changed.append(f"{fam}: le values in Prometheus B {sorted(les_b, key=float)}, "
                           f"in the text format {sorted(les_text, key=float)}")
        sel = f"{JOB_SEL}" + ("" if fam == "dashstream_query_latency_ms" else f', model="{model}"')
        obs = stack.observations(fam, None if fam == "dashstream_query_latency_ms" else model)
        got = {float(m["le"]): v for m, v in stack.prom_b.query(f"sum by (le) ({fam}_bucket{{{sel}}})")}
        assert got == dict(s.cumulative_buckets(obs, bounds)), fam
        assert stack.prom_b.value(f"sum({fam}_count{{{sel}}})") == len(obs), fam
    assert not changed, "series that a Prometheus without features stores differently from today:\n" + "\n".join(changed)


# ------------------------------------------------------------------------------------------- A: native histograms


def native_of(stack: Stack, family: str, instance: str, model: str | None = None) -> s.NativeHistogram:
    sel = f'{JOB_SEL}, instance="{instance}"' + (f', model="{model}"' if model else "")
    res = s.native_histograms(stack.prom_a, f"{family}{{{sel}}}")
    assert len(res) == 1, f"{family}{{{sel}}} in Prometheus A: {res}"
    return res[0][1]


def check_buckets_hold_the_observations(name: str, h: s.NativeHistogram, obs: list[float]) -> None:
    """Every native bucket Prometheus reports holds exactly the produced observations that fall in it, and none
    is left over."""
    wrong = []
    placed = 0
    for rule, lo, hi, n in h.buckets:
        want = sum(1 for v in obs if s.in_native_bucket(rule, lo, hi, v))
        placed += want
        if want != n:
            wrong.append(f"bucket rule={rule} ({lo!r}, {hi!r}]: Prometheus {n}, produced {want}")
    assert not wrong, f"{name}:\n" + "\n".join(wrong)
    assert placed == len(obs), f"{name}: {len(obs) - placed} observations in no reported bucket"
    assert h.count == len(obs), (name, h.count, len(obs))
    assert h.sum == pytest.approx(math.fsum(obs), rel=1e-12), (name, h.sum, math.fsum(obs))


def schema_of(h: s.NativeHistogram) -> int:
    """The schema that the positive buckets' bounds show (each upper / lower = 2^(2^-schema))."""
    ratios = {round(math.log2(math.log2(hi / lo)), 6) for _r, lo, hi, _n in h.buckets if lo > 0}
    assert len(ratios) == 1, f"buckets of mixed widths: {h.buckets}"
    return -int(ratios.pop())


def test_prometheus_a_stores_only_native_histograms_with_exact_buckets(stack):
    """A (native-histograms on, Prometheus 2.42) ingests the native form: `histogram` values, no `_bucket`
    series; count, sum and every bucket equal the produced events; the default schema is 3."""
    model = stack.biggest_model()
    inst = stack.exporter.instance
    for fam in HIST:
        names = set(stack.prom_a.api("label/__name__/values",
                                     **{"match[]": f'{{__name__=~"{fam}.*", instance="{inst}"}}'}))
        assert names == {fam}, f"{fam}: Prometheus A stores {sorted(names)} for {inst}"
        m = None if fam == "dashstream_query_latency_ms" else model
        h = native_of(stack, fam, inst, m)
        check_buckets_hold_the_observations(f"{fam} model={m}", h, stack.observations(fam, m))
        assert schema_of(h) == 3, f"{fam}: schema {schema_of(h)}, buckets {h.buckets}"
        assert len([b for b in h.buckets if b[1] >= 0]) <= 160
    assert stack.prom_a.value(f'histogram_count(dashstream_query_latency_ms{{{JOB_SEL}, instance="{inst}"}})') \
        == len(stack.latencies())
    assert stack.prom_a.value(f'histogram_sum(dashstream_query_latency_ms{{{JOB_SEL}, instance="{inst}"}})') \
        == stack.summary["latency_ms_sum"]
    # per model: the count of every model's native series
    got = {mt["model"]: v for mt, v in stack.prom_a.query(
        f'histogram_count(dashstream_latency_by_model_ms{{{JOB_SEL}, instance="{inst}"}})')}
    models = {r["model_label"] for r in stack.quality() if r.get("model_label")}
    assert got == {mdl: float(len(stack.latencies(mdl))) for mdl in models}


def test_native_quantiles_agree_with_the_classic_ones(stack):
    """histogram_quantile over A's native series is Prometheus' own rule applied to A's buckets, and lies in the
    native bucket holding the observation of rank ceil(q * n); B's classic estimate lies in the classic bucket
    holding that same observation. So the two agree to within the classic bucket widened by one native bucket
    width factor 2^(2^-schema) at each end: lo_c / f <= native <= hi_c * f."""
    inst = stack.exporter.instance
    model = stack.biggest_model()
    report = []
    for fam, bounds in HIST.items():
        m = None if fam == "dashstream_query_latency_ms" else model
        obs = sorted(stack.observations(fam, m))
        h = native_of(stack, fam, inst, m)
        f = 2 ** (2 ** -schema_of(h))
        sel_a = f'{JOB_SEL}, instance="{inst}"' + (f', model="{m}"' if m else "")
        sel_b = f"{JOB_SEL}" + (f', model="{m}"' if m else "")
        for q in (0.5, 0.9, 0.99):
            native = stack.prom_a.value(f"histogram_quantile({q}, {fam}{{{sel_a}}})")
            classic = stack.prom_b.value(f"histogram_quantile({q}, sum by (le) ({fam}_bucket{{{sel_b}}}))")
            assert classic == s.histogram_quantile(q, s.cumulative_buckets(obs, bounds)), (fam, q, classic)
            assert native == s.native_histogram_quantile(q, h), (fam, q, native, h.buckets)
            v = obs[math.ceil(q * len(obs)) - 1]
            nb = [b for b in h.buckets if s.in_native_bucket(b[0], b[1], b[2], v)]
            assert len(nb) == 1, (fam, q, v, nb)
            _rule, lo_n, hi_n, _n = nb[0]
            lo_c = max([0.0] + [b for b in bounds if b < v])
            hi_c = min([b for b in bounds if b >= v] + [math.inf])
            report.append(f"{fam} q={q}: observation {v}, native {native} in [{lo_n}, {hi_n}], "
                          f"classic {classic} in [{lo_c}, {hi_c}]")
            assert lo_n <= native <= hi_n, report[-1]
            assert lo_c <= classic <= hi_c, report[-1]
            assert lo_c / f <= native <= hi_c * f, report[-1]
    s.log("quantiles:\n" + "\n".join(report))


def native_index(v: float, schema: int) -> int:
    """The native bucket index of v > 0 at `schema`: bucket i is (2^((i-1)/2^schema), 2^(i/2^schema)]."""
    frac, exp = math.frexp(v)  # v = frac * 2^exp, 0.5 <= frac < 1; exact for powers of two
    if frac == 0.5:
        return (exp - 1) << schema if schema >= 0 else (exp - 1) >> -schema
    return math.ceil(math.log2(v) * 2.0 ** schema)


def index_span(obs: list[float], schema: int) -> int:
    idx = [native_index(v, schema) for v in obs if v > 0]
    return max(idx) - min(idx) + 1


def test_max_buckets_lowers_the_schema_and_zero_turns_native_off(stack):
    """The produced latencies (1 ms to 200 s) span 142 buckets at schema 3: within the default window of 160 the
    schema stays 3; with PROMETHEUS_NATIVE_HISTOGRAM_MAX_BUCKETS=132 it comes down one step, to 2 (72 buckets),
    and the counts stay exact. With 0 there is no native histogram, so Prometheus A keeps the classic series of
    that exporter."""
    obs = stack.latencies()
    assert index_span(obs, 3) == 142 and index_span(obs, 2) == 72, (index_span(obs, 3), index_span(obs, 2))
    main = native_of(stack, "dashstream_query_latency_ms", stack.exporter.instance)
    assert schema_of(main) == 3
    h = native_of(stack, "dashstream_query_latency_ms", stack.alt.instance)
    check_buckets_hold_the_observations("window of 132", h, obs)
    assert schema_of(h) == 2, f"schema {schema_of(h)}: {h.buckets}"
    idx = [round(math.log2(hi) * 4) for _r, lo, hi, _n in h.buckets if lo > 0]
    assert max(idx) - min(idx) + 1 == 72, idx

    inst = stack.classic.instance
    names = set(stack.prom_a.api("label/__name__/values",
                                 **{"match[]": f'{{__name__=~"dashstream_query_latency_ms.*", instance="{inst}"}}'}))
    assert names == {"dashstream_query_latency_ms_bucket", "dashstream_query_latency_ms_sum",
                     "dashstream_query_latency_ms_count"}, names
    got = {float(mt["le"]): v for mt, v in stack.prom_a.query(
        f'sum by (le) (dashstream_query_latency_ms_bucket{{instance="{inst}"}})')}
    assert got == dict(s.cumulative_buckets(obs, LATENCY_BOUNDS))


# ------------------------------------------------------------------------------------------- exemplars in Prometheus


def exemplars(prom: s.Prometheus, selector: str, start: float) -> list[tuple[dict, dict]]:
    data = prom.api("query_exemplars", query=selector, start=f"{start - 60:.3f}", end=f"{time.time() + 60:.3f}")
    return [(series["seriesLabels"], ex) for series in data for ex in series["exemplars"]]


def observed_value(family: str, ev: dict) -> float | None:
    if "latency" in family:
        return float(max(0, ev["latency_ms"])) if ev.get("latency_ms") is not None else None
    return float(ev["quality_score"]) if ev.get("quality_score") is not None else None


def check_exemplar(stack: Stack, where: str, family: str, series: dict, labels: dict, value: float) -> list[str]:
    """An exemplar names a record that was produced (its thread id as shortened by the rule, its message id as
    the generator or the hand-made record set it), and its value is that record's observation in `family`,
    of the series' model."""
    bad = []
    if set(labels) - {"thread_id", "message_id"} or "thread_id" not in labels:
        return [f"{where}: exemplar labels {labels}"]
    key = (labels["thread_id"], labels.get("message_id"))
    ev = stack.by_ids().get(key)
    if ev is None:
        return [f"{where}: no produced record has the exemplar ids {key}"]
    if key[1] is not None and not HEX32.match(key[1]):
        bad.append(f"{where}: message_id {key[1]!r} is not 32 lowercase hex digits")
    if observed_value(family, ev) != value:
        bad.append(f"{where}: exemplar value {value}, the record {key} has {observed_value(family, ev)}")
    if "model" in series and series["model"] != ev["model_label"]:
        bad.append(f"{where}: the record {key} has model {ev['model_label']}")
    return bad


def in_bucket(family: str, le: float, value: float) -> bool:
    lower = max([0.0] + [b for b in HIST[family] if b < le])
    return lower < value <= le


def test_exemplars_in_prometheus_a_native(stack):
    """A stores exemplars (from the protobuf scrape) on the native series of all three families; each carries a
    thread_id the producer sent and a 32-hex-digit message_id. The exporter with exemplars off gives none."""
    bad, seen = [], {}
    for fam in HIST:
        got = exemplars(stack.prom_a, f'{{__name__=~"{fam}(_bucket)?", instance="{stack.exporter.instance}"}}',
                        stack.started)
        seen[fam] = got
        assert got, f"{fam}: no exemplars in Prometheus A"
        names = {lbl["__name__"] for lbl, _e in got}
        assert names == {fam}, f"{fam}: exemplars on {names}"
        for lbl, ex in got:
            bad += check_exemplar(stack, f"A {lbl}", fam, lbl, ex["labels"], float(ex["value"]))
        off = exemplars(stack.prom_a, f'{{__name__=~"{fam}(_bucket)?", instance="{stack.alt.instance}"}}', stack.started)
        assert off == [], f"{fam}: exemplars from the exporter with PROMETHEUS_EXEMPLARS=false: {off}"
    assert not bad, "\n".join(bad) + f"\nseen: {seen}"


def test_exemplars_in_prometheus_c_classic_buckets(stack):
    """C (exemplar storage, OpenMetrics scrape) has the exemplars on the `_bucket` series; the buckets into which
    a hand-made record was sent last carry exactly its exemplar (thread id shortened as documented, message id
    the hex of its first 16 bytes, no message id when it had none), with its value and a timestamp from when it
    was applied."""
    bad = []
    for fam in HIST:
        got = exemplars(stack.prom_c, f"{fam}_bucket{{{JOB_SEL}}}", stack.started)
        assert got, f"{fam}: no exemplars in Prometheus C"
        for lbl, ex in got:
            bad += check_exemplar(stack, f"C {lbl}", fam, lbl, ex["labels"], float(ex["value"]))
            if not in_bucket(fam, float(lbl["le"]), float(ex["value"])):
                bad.append(f"C {lbl}: exemplar value {ex['value']} outside its bucket")
        for c in stack.crafted:
            le = c.latency_le if "latency" in fam else c.score_le
            value = c.latency_ms if "latency" in fam else c.quality_score
            mine = [(lbl, ex) for lbl, ex in got if float(lbl["le"]) == le
                    and (fam == "dashstream_query_latency_ms" or lbl.get("model") == c.model)]
            assert mine, f"{fam} le={le}: no exemplar in C"
            lbl, last = max(mine, key=lambda x: float(x[1]["timestamp"]))
            bad += exemplar_is(f"C {fam} le={le}", last["labels"], float(last["value"]), float(last["timestamp"]),
                               c, value, stack)
    assert not bad, "\n".join(bad)


def exemplar_is(where: str, labels: dict, value: float, ts: float | None, c: Crafted, want_value: float,
                stack: Stack) -> list[str]:
    bad = []
    tid = labels.get("thread_id")
    if tid != c.want_thread_id:
        bad.append(f"{where}: thread_id {tid!r}, expected {c.want_thread_id!r}")
    if len(c.thread_id.encode()) > 77:  # the hand-written expectation agrees with the rule's implementation above
        m = SHORTENED.match(c.want_thread_id)
        assert m and m.group("prefix") == c.want_prefix and len(c.want_prefix.encode()) <= 68, c
    else:
        assert c.want_thread_id == c.thread_id == c.want_prefix, c
    if labels.get("message_id") != c.want_message_id:
        bad.append(f"{where}: message_id {labels.get('message_id')!r}, expected {c.want_message_id!r}")
    if set(labels) != ({"thread_id", "message_id"} if c.message_id else {"thread_id"}):
        bad.append(f"{where}: labels {labels}")
    if value != want_value:
        bad.append(f"{where}: value {value}, expected {want_value}")
    if ts is None or not (stack.crafted_sent - 0.001 <= ts <= stack.crafted_applied + 0.001):
        bad.append(f"{where}: timestamp {ts} not between sending ({stack.crafted_sent}) and seeing it applied "
                   f"({stack.crafted_applied})")
    return bad


# ------------------------------------------------------------------------------------------- OpenMetrics, parsed


def test_openmetrics_parsed_by_prometheus_client(stack):
    text, fams = openmetrics(stack)
    lines = text.split("\n")
    assert lines[-1] == "# EOF" or (lines[-1] == "" and lines[-2] == "# EOF"), repr(text[-200:])
    assert text.count("# EOF") == 1
    plain = s.parse_exposition(s.fetch(stack.url()).body.decode())
    # counters: the family named without _total, the sample with it, and a _created sample
    text_counters = sorted(f for f, t in plain.types.items() if t == "counter")
    assert text_counters, plain.types
    for name in text_counters:
        assert name.endswith("_total"), f"text counter {name} has no _total"
        fam = name[: -len("_total")]
        assert fam in fams and fams[fam].type == "counter", f"{fam}: {fams.get(fam)}"
        assert name not in fams, f"a counter family named with _total: {name}"
        kinds = {smp.name for smp in fams[fam].samples}
        assert name in kinds and fam + "_created" in kinds, f"{fam}: samples {sorted(kinds)}"
    for key, want in s.expected_counters(stack.summary).items():
        fam = key[0][: -len("_total")] if key[0].endswith("_total") else key[0].rsplit("_", 1)[0]
        vals = [smp.value for smp in fams[fam].samples if smp.name == key[0]
                and (len(key) == 1 or smp.labels.get(key[1]) == key[2])]
        assert sum(vals) == want, (key, vals, want)
    start = plain.get("process_start_time_seconds")
    now = time.time()
    for fam in HIST:
        assert fams[fam].type == "histogram", fams[fam]
        created = [smp for smp in fams[fam].samples if smp.name == fam + "_created"]
        assert created, f"{fam}: no _created sample"
        for smp in created:
            assert math.floor(start) - 1 <= smp.value <= now, (fam, smp, start, now)
        # the same buckets as the text format, le written canonically
        om = {(smp.labels.get("model"), float(smp.labels["le"])): smp.value for smp in fams[fam].samples
              if smp.name == fam + "_bucket"}
        tx = {(lbl.get("model"), float(lbl["le"])): v for lbl, v in plain.series(fam + "_bucket")}
        assert om == tx, fam
    units = {f.name: f.unit for f in fams.values() if f.unit}
    s.log(f"OpenMetrics units: {units}")
    assert units, "no # UNIT line"
    # exemplars: on latency buckets, labels exactly thread_id and message_id, values inside their bucket
    bad = []
    for fam in HIST:
        exs = om_exemplars(fams, fam)
        assert exs, f"{fam}: no exemplar in the OpenMetrics exposition"
        for smp in exs:
            bad += check_exemplar(stack, f"OpenMetrics {smp.name}{smp.labels}", fam, smp.labels, smp.exemplar.labels,
                                  smp.exemplar.value)
            if not in_bucket(fam, float(smp.labels["le"]), smp.exemplar.value):
                bad.append(f"{smp.name}{smp.labels}: exemplar value {smp.exemplar.value} outside the bucket")
        for c in stack.crafted:
            le = c.latency_le if "latency" in fam else c.score_le
            value = c.latency_ms if "latency" in fam else c.quality_score
            smp = [x for x in exs if float(x.labels["le"]) == le and x.labels.get("model") in (None, c.model)]
            assert len(smp) == 1, (fam, le, smp)
            ts = smp[0].exemplar.timestamp
            bad += exemplar_is(f"OpenMetrics {fam} le={le}", smp[0].exemplar.labels, smp[0].exemplar.value,
                               float(ts) if ts is not None else None, c, value, stack)
    assert not bad, "\n".join(bad)


def test_openmetrics_without_exemplars_when_turned_off(stack):
    text, fams = openmetrics(stack, stack.alt)
    with_ex = [f"{smp.name}{smp.labels} {smp.exemplar}" for fam in fams.values() for smp in fam.samples
               if smp.exemplar is not None]
    assert not with_ex, "exemplars with PROMETHEUS_EXEMPLARS=false:\n" + "\n".join(with_ex[:20])
    assert " # {" not in text
    assert om_exemplars(openmetrics(stack)[1], "dashstream_query_latency_ms"), "the default exporter has exemplars"


# ------------------------------------------------------------------------------------------- negotiation


NEGOTIATION = [  # (Accept or None for no header, expected content type or "proto")
    (None, TEXT_CT),
    ("*/*", TEXT_CT),
    ("text/plain", TEXT_CT),
    ("text/plain;version=0.0.4", TEXT_CT),
    ("application/json", TEXT_CT),
    ("application/openmetrics-text;version=2.0.0", TEXT_CT),
    ("application/openmetrics-text;version=1.0.0;q=0", TEXT_CT),
    ("application/openmetrics-text;version=1.0.0;q=0.2,text/plain;version=0.0.4;q=0.9", TEXT_CT),
    ("application/openmetrics-text", OM_CT),
    ("application/openmetrics-text;version=0.0.1", OM_CT),
    ("application/openmetrics-text;version=1.0.0", OM_CT),
    ("application/openmetrics-text; version=1.0.0; charset=utf-8", OM_CT),
    ("text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;q=0.8", OM_CT),
    (PROM2_ACCEPT, OM_CT),
    (PROM3_ACCEPT, OM_CT),
    (PROTO_ACCEPT, "proto"),
    (PROTO_ACCEPT + ";q=0.9," + PROM2_ACCEPT.split(",", 1)[1], "proto"),
]


def skeleton(text: str) -> list[str]:
    """The exposition without sample values: every metadata line, and the series (name and labels) of the data
    families, in order. The exporter's own families are left out: a labelled child of theirs (a connection
    closed for a new reason) may appear between two fetches."""
    return [ln if ln.startswith("#") else ln.rsplit(" ", 1)[0] for ln in text.splitlines()
            if ln.startswith("#") or (ln.startswith("dashstream_") and not ln.startswith("dashstream_exporter_"))]


@pytest.mark.parametrize("gzip", [False, True], ids=["identity", "gzip"])
def test_content_negotiation(stack, gzip):
    seen, bad = [], []
    text_bodies = []
    for accept, want in NEGOTIATION:
        hdrs = {} if accept is None else {"Accept": accept}
        if gzip:
            hdrs["Accept-Encoding"] = "gzip"
        f = s.fetch(stack.url(), hdrs)
        ct = f.headers.get("content-type")
        enc = f.headers.get("content-encoding")
        seen.append(f"Accept {accept!r}: {f.status} {ct!r} encoding {enc!r} {len(f.raw)} bytes")
        if f.status != 200:
            bad.append(seen[-1])
            continue
        if (enc == "gzip") != gzip:
            bad.append(seen[-1] + " (Content-Encoding)")
        vary = {v.strip().lower() for v in f.headers.get("vary", "").split(",")}
        if not {"accept", "accept-encoding"} <= vary:  # a cache must key the answer on both
            bad.append(seen[-1] + f" (Vary: {f.headers.get('vary')!r})")
        if f.headers.get("content-length") != str(len(f.raw)):
            bad.append(seen[-1] + f" (Content-Length {f.headers.get('content-length')!r})")
        if want == "proto":
            typ, params = media_type(ct or "")
            if (typ, params.get("proto"), params.get("encoding")) != (
                    "application/vnd.google.protobuf", "io.prometheus.client.MetricFamily", "delimited"):
                bad.append(seen[-1] + " (expected delimited protobuf)")
            continue
        if ct != want:
            bad.append(seen[-1] + f" (expected {want!r})")
            continue
        body = f.body.decode()
        if want == OM_CT:
            try:
                list(text_string_to_metric_families(body))
            except ValueError as e:
                bad.append(seen[-1] + f" (OpenMetrics parser: {e})")
        else:
            s.parse_exposition(body)
            text_bodies.append((accept, body))
            if "# EOF" in body or "# UNIT" in body or " # {" in body:
                bad.append(seen[-1] + " (OpenMetrics syntax in the text format)")
    assert not bad, "\n".join(bad) + "\n\nall:\n" + "\n".join(seen)
    # every text answer is the same exposition (sample values aside, which move between two fetches)
    first = skeleton(text_bodies[0][1])
    for accept, body in text_bodies[1:]:
        assert skeleton(body) == first, f"text format for Accept {accept!r} differs from no Accept"


def test_promtool_check_metrics_on_the_text_format(stack):
    body = s.fetch(stack.url()).body.decode()
    r = s.promtool("check", "metrics", stdin=body)
    found = {line.strip() for line in (r.stdout + r.stderr).splitlines() if line.strip()}
    assert found == PROMTOOL_EXCEPTIONS, f"promtool check metrics (exit {r.returncode}) reported:\n" + "\n".join(sorted(found))
    assert r.returncode == 3


def test_every_scrape_succeeded_in_every_prometheus(stack):
    """No target of A, B or C ever failed a scrape: each Prometheus's own parser took every response."""
    for name, prom in (("A", stack.prom_a), ("B", stack.prom_b), ("C", stack.prom_c)):
        targets = prom.api("targets")["activeTargets"]
        assert all(t["health"] == "up" and not t["lastError"] for t in targets), (name, targets)
        assert prom.value("min(min_over_time(up[1h]))") == 1, name
