"""Prometheus remote write to a real receiver (issue 16, items 3-5): Debian's Prometheus 2.42 with
`--web.enable-remote-write-receiver` and no scrape targets, so every sample it holds was pushed. The exporter
consumes from librdkafka's mock cluster (a broker process of its own) and pushes every second.

1. A known number of events is produced; PromQL over the pushed series equals what was produced, counter by
   counter and label by label, with the configured job, instance and extra labels; the histograms arrive as
   classic `_bucket`/`_sum`/`_count` series that `histogram_quantile` can read.
2. The receiver is stopped for 20 s while more events are produced: the exporter keeps consuming and answering
   scrapes, counts the failed requests and dropped samples (`reason="network"`), and once the receiver is back
   on the same address the next push carries the new totals (values are cumulative; the outage is a gap).
3. The receiver requires TLS with a client certificate and basic auth (Prometheus' own `--web.config.file`):
   the pushes arrive; a wrong password is refused with 401, dropped and counted as `http_4xx`, and the password
   appears in no log and not in `check-config`.

Figures (samples per push, request duration, recovery time, RSS before and after the outage) are logged."""

from __future__ import annotations

import secrets
import subprocess
import time
import warnings

import pytest
import yaml

import support as s

JOB_SEL = 'job="dashstream-quality",instance="edge-e2e",site="e2e"'
SENT = "dashstream_exporter_remote_write_samples_sent_total"
FAILED = "dashstream_exporter_remote_write_samples_failed_total"
REQ_FAILED = "dashstream_exporter_remote_write_requests_failed_total"
PASSWORD = "rw-" + secrets.token_hex(12)


def receiver(pm, workdir, name: str, extra_args: list[str] | None = None, scheme: str = "http",
             client: dict | None = None) -> s.Prometheus:
    prom = s.Prometheus(pm, workdir / name, [], [], ["--web.enable-remote-write-receiver", *(extra_args or [])],
                        scheme=scheme, client=client)
    prom.start()
    return prom


def pushing_exporter(pm, tools, workdir, broker, topic, name: str, url: str, **extra) -> s.Exporter:
    env = s.exporter_env(broker.bootstrap, topic, f"e2e-{name}", REMOTE_WRITE_URL=url, REMOTE_WRITE_INTERVAL_SECS=1,
                         REMOTE_WRITE_INSTANCE="edge-e2e", REMOTE_WRITE_EXTRA_LABELS="site=e2e", **extra)
    exp = s.Exporter(pm, tools.exporter, name, workdir, env)
    exp.start()
    exp.wait_ready()
    return exp


def check_pushed_counters(prom: s.Prometheus, expected: dict, timeout: float = 60) -> None:
    for key, value in expected.items():
        prom.wait_value(s.promql_for(key, JOB_SEL), float(value), timeout=timeout)


def rss(exp: s.Exporter) -> float:
    return exp.scrape().get("process_resident_memory_bytes")


def test_pushed_counters_equal_what_was_produced_and_an_outage_is_a_gap(tools, pm, workdir):
    topic = "remote-write"
    d = workdir / "remote-write"
    broker = s.MockCluster(pm, tools.exporter, d)
    broker.start(topic)
    prom = receiver(pm, d, "prometheus")
    exp = pushing_exporter(pm, tools, d, broker, topic, "rw", f"{prom.base}/api/v1/write")

    # 1. a known number of events, counted by the pushed series
    first = s.produce(tools.exporter, broker.bootstrap, topic, seed=161, count=3000)
    expected = s.expected_counters(first)
    check_pushed_counters(prom, expected)
    count = prom.value(f"dashstream_query_latency_ms_count{{{JOB_SEL}}}")
    assert count == exp.scrape().get("dashstream_query_latency_ms_count") and count > 0
    assert prom.value(f'dashstream_query_latency_ms_bucket{{{JOB_SEL},le="+Inf"}}') == count
    p50 = prom.value(f"histogram_quantile(0.5, dashstream_query_latency_ms_bucket{{{JOB_SEL}}})")
    assert p50 is not None and 0 < p50 <= 30000, p50
    # every series a scrape shows is pushed, and nothing else
    s.wait_until("as many pushed series as scraped ones",
                 lambda: prom.value(f"count({{{JOB_SEL}}})") == len(exp.scrape().samples) or
                 f"{prom.value(f'count({{{JOB_SEL}}})')} pushed, {len(exp.scrape().samples)} scraped", 20)
    samples_per_push = prom.value(f"count({{{JOB_SEL}}})")
    scraped = exp.scrape()
    assert prom.value(f"sum({FAILED}{{{JOB_SEL}}})") == 0
    dur_sum = scraped.get("dashstream_exporter_remote_write_request_duration_seconds_sum")
    dur_n = scraped.get("dashstream_exporter_remote_write_request_duration_seconds_count")
    s.log(f"figures: {samples_per_push:.0f} samples per push, {dur_n:.0f} requests, mean request "
          f"{1000 * dur_sum / dur_n:.1f} ms")

    # 2. the receiver goes away for 20 s while events keep coming
    rss_before = rss(exp)
    port = prom.port
    pm.stop(prom.proc)
    outage_start = time.monotonic()
    second = s.produce(tools.exporter, broker.bootstrap, topic, seed=162, count=2000)
    total = s.add_summaries(first, second)
    s.wait_until("the exporter to apply the second batch",
                 lambda: exp.scrape().get("dashstream_quality_monitor_queries_total") == total["quality_events"], 60)
    time.sleep(max(0.0, 20 - (time.monotonic() - outage_start)))
    during = exp.scrape()
    assert during.get(REQ_FAILED, reason="network") >= 10, during.samples
    assert during.get(FAILED, reason="network") > 0, "dropped batches are counted"
    sent_before = during.get(SENT)
    rss_after = rss(exp)
    prom.start(port=port)
    back = time.monotonic()
    check_pushed_counters(prom, s.expected_counters(total), timeout=30)
    recovery = time.monotonic() - back
    assert exp.scrape().get(SENT) > sent_before
    # the exporter's own failure counters arrive with the first push after the outage
    assert prom.value(f'{REQ_FAILED}{{{JOB_SEL},reason="network"}}') >= 10
    gap = prom.value(f"count_over_time(dashstream_quality_monitor_queries_total{{{JOB_SEL}}}[5m])")
    failed_requests = during.get(REQ_FAILED, reason="network")
    s.log(f"figures: outage 20 s, recovery (receiver ready -> totals visible in PromQL) {recovery:.1f} s, "
          f"{failed_requests:.0f} failed requests, samples stored for "
          f"queries_total in 5m: {gap:.0f}, RSS before/after the outage {rss_before / 2**20:.1f}/"
          f"{rss_after / 2**20:.1f} MiB")
    assert "recovered after" in exp.proc.log_text()
    assert exp.stop() == 0


def bcrypt(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # Debian's libxcrypt makes $2b$ hashes; Prometheus' exporter-toolkit accepts them
    h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024))
    assert h and h.startswith("$2b$"), h
    return h


def test_tls_with_a_client_certificate_and_basic_auth(tools, pm, workdir):
    topic = "remote-write-tls"
    d = workdir / "remote-write-tls"
    pki = s.make_pki(d / "pki", "keypw-" + secrets.token_hex(8))
    plain_key = d / "pki" / "client-plain.key"
    s.openssl("pkey", "-in", str(pki.client_key), "-passin", f"pass:{pki.key_password}", "-out", str(plain_key),
              cwd=d / "pki")
    web = d / "web.yml"
    web.write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key),
                              "client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": str(pki.ca)},
        "basic_auth_users": {"edge": bcrypt(PASSWORD)},
    }))
    client = {"verify": str(pki.ca), "cert": (str(pki.client_cert), str(plain_key)), "auth": ("edge", PASSWORD)}
    prom = receiver(pm, d, "prometheus", [f"--web.config.file={web}"], scheme="https", client=client)
    broker = s.MockCluster(pm, tools.exporter, d)
    broker.start(topic)
    pw = d / "password"
    pw.write_text(PASSWORD + "\n")
    url = f"https://127.0.0.1:{prom.port}/api/v1/write"
    tls = dict(REMOTE_WRITE_TLS_CA_FILE=pki.ca, REMOTE_WRITE_TLS_CERT_FILE=pki.client_cert,
               REMOTE_WRITE_TLS_KEY_FILE=plain_key, REMOTE_WRITE_BASIC_AUTH_USERNAME="edge")
    exp = pushing_exporter(pm, tools, d, broker, topic, "rw-tls", url, REMOTE_WRITE_BASIC_AUTH_PASSWORD_FILE=pw, **tls)
    summary = s.produce(tools.exporter, broker.bootstrap, topic, seed=163, count=1000)
    check_pushed_counters(prom, s.expected_counters(summary))
    assert exp.scrape().get(REQ_FAILED, reason="tls") == 0

    # a wrong password: 401, dropped at once and counted, never retried
    bad = pushing_exporter(pm, tools, d, broker, topic, "rw-badpw", url,
                           REMOTE_WRITE_BASIC_AUTH_PASSWORD="wrong-" + PASSWORD, **tls)
    s.wait_until("refused pushes counted", lambda: bad.scrape().get(FAILED, reason="http_4xx") > 0, 30)
    sc = bad.scrape()
    assert sc.get(SENT) == 0
    refused = sc.get(REQ_FAILED, reason="http_4xx")
    assert refused >= 1 and sc.get(FAILED, reason="http_4xx") >= refused
    for reason in ("http_5xx", "http_429", "network", "timeout", "tls"):
        assert sc.get(REQ_FAILED, reason=reason) == 0, f"a 401 is not retried: {reason}"
    assert "HTTP 401" in bad.proc.log_text()

    # no CA: the receiver's certificate is not trusted by the system bundle -> counted as tls, retried
    untrusted = pushing_exporter(pm, tools, d, broker, topic, "rw-untrusted", url,
                                 REMOTE_WRITE_BASIC_AUTH_USERNAME="edge", REMOTE_WRITE_BASIC_AUTH_PASSWORD_FILE=pw)
    s.wait_until("TLS failures counted", lambda: untrusted.scrape().get(REQ_FAILED, reason="tls") >= 2, 30)

    r = subprocess.run([str(tools.exporter), "check-config"], capture_output=True, text=True, timeout=30,
                       env={**s.exporter_env(broker.bootstrap, topic, "x"), "REMOTE_WRITE_URL": url,
                            "REMOTE_WRITE_BASIC_AUTH_PASSWORD": PASSWORD,
                            **{k: str(v) for k, v in tls.items()}})
    assert r.returncode == 0, r.stderr
    assert "REMOTE_WRITE_BASIC_AUTH_PASSWORD=*** (env)" in r.stdout
    assert "tls on with a client certificate, auth basic" in r.stdout, r.stdout
    for p in (exp, bad, untrusted):
        assert PASSWORD not in p.proc.log_text()
    assert PASSWORD not in r.stdout + r.stderr
    for p in (exp, bad, untrusted):
        assert p.stop() == 0
