"""Kafka TLS and SASL against brokers that enforce them (issue 7, item 5, Kafka side).

tansu 0.6.0 enforces SASL SCRAM-SHA-256/512 itself (`--authentication`) but cannot serve TLS, so TLS comes from
Debian's stunnel4 in front of tansu's plain listener, with tansu advertising the stunnel port: every connection
of the clients (bootstrap and partition leader) is TLS end to end, and stunnel can require client certificates.
A test PKI (CA, broker certificate for 127.0.0.1/localhost, client certificate with an encrypted key, and an
unrelated CA) is made with the openssl CLI at test time.

Proven here: ssl with CA verification (and a wrong CA refused), ssl with mTLS (and a client without a certificate
refused), sasl_plaintext with SCRAM-SHA-256 and SCRAM-SHA-512, sasl_ssl with SCRAM-SHA-512 (and a wrong password
refused). Not provable here: SASL/PLAIN (tansu 0.6.0 has no PLAIN), GSSAPI, OAUTHBEARER. Refusals must give a
clear error in the log, /-/ready 503, /-/healthy 200 and a running process. No secret may appear in any log or
in `check-config`."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import support as s

TOPIC = "quality-secured"
USER = "dfe-exporter"
SASL_PASSWORD = "scram-" + secrets.token_hex(12)
WRONG_PASSWORD = "wrong-" + secrets.token_hex(12)
KEY_PASSWORD = "keypw-" + secrets.token_hex(12)
RECEIVED = "dashstream_exporter_messages_received_total"


@dataclass
class Secured:
    name: str
    tansu: s.Tansu
    stunnel: s.Stunnel | None

    @property
    def bootstrap(self) -> str:
        return self.stunnel.bootstrap if self.stunnel else self.tansu.bootstrap


@pytest.fixture(scope="module")
def pki(workdir) -> s.Pki:
    return s.make_pki(workdir / "security" / "pki", KEY_PASSWORD)


def secured_broker(pm, tools, workdir, pki, name: str, tls: str | None, sasl: bool) -> Secured:
    """tansu with the topic (and the SCRAM user) created while open, then restarted as the secured broker:
    `--authentication` when `sasl`, advertising a stunnel port when `tls` is "tls" or "mtls"."""
    wd = workdir / "security" / name
    t = s.Tansu(pm, tools.tansu, wd / "tansu")
    t.start()
    t.create_topic(TOPIC)
    if sasl:
        for mechanism in ("scram256", "scram512"):
            t.create_user(USER, SASL_PASSWORD, mechanism)
    t.kill(signal.SIGTERM)
    st = s.Stunnel(pm, wd, pki, require_client_cert=(tls == "mtls")) if tls else None
    t.start(port=t.port, advertised_port=st.port if st else None, authentication=sasl)
    if st:
        st.start(forward_port=t.port)
    return Secured(name, t, st)


@pytest.fixture(scope="module")
def tls_broker(pm, tools, workdir, pki):
    return secured_broker(pm, tools, workdir, pki, "tls", "tls", sasl=False)


@pytest.fixture(scope="module")
def mtls_broker(pm, tools, workdir, pki):
    return secured_broker(pm, tools, workdir, pki, "mtls", "mtls", sasl=False)


@pytest.fixture(scope="module")
def sasl_broker(pm, tools, workdir, pki):
    return secured_broker(pm, tools, workdir, pki, "sasl", None, sasl=True)


@pytest.fixture(scope="module")
def sasl_ssl_broker(pm, tools, workdir, pki):
    return secured_broker(pm, tools, workdir, pki, "sasl-ssl", "tls", sasl=True)


_EXPORTERS: list[s.Exporter] = []  # every exporter of this module, for the secrets test


def ssl_env(pki: s.Pki, ca: Path | None = None, client_cert: bool = False) -> dict:
    env = {"KAFKA_SSL_CA_LOCATION": str(ca or pki.ca)}
    if client_cert:
        env.update(KAFKA_SSL_CERTIFICATE_LOCATION=str(pki.client_cert), KAFKA_SSL_KEY_LOCATION=str(pki.client_key),
                   KAFKA_SSL_KEY_PASSWORD=pki.key_password)
    return env


def sasl_env(mechanism: str, password: str = SASL_PASSWORD) -> dict:
    return {"KAFKA_SASL_MECHANISM": mechanism, "KAFKA_SASL_USERNAME": USER, "KAFKA_SASL_PASSWORD": password}


def start_exporter(pm, tools, workdir, broker: Secured, name: str, group: str, security: dict) -> s.Exporter:
    env = s.exporter_env(broker.bootstrap, TOPIC, group, RUST_LOG="debug", **security)
    exp = s.Exporter(pm, tools.exporter, name, workdir / "security", env)
    _EXPORTERS.append(exp)
    exp.start()
    return exp


def counts_events_through(pm, tools, workdir, broker: Secured, name: str, security: dict, seed: int) -> None:
    """The exporter joins through the secured listener, and counts exactly what `produce` (with the same security
    settings) sent through it."""
    group = f"e2e-sec-{name}"
    exp = start_exporter(pm, tools, workdir, broker, name, group, security)
    exp.wait_ready(timeout=60)
    s.wait_until("the exporter to own all 4 partitions", lambda: exp.assigned() == s.PARTITIONS, 60)
    r = s.run_tool(tools.exporter, ["produce", "--brokers", broker.bootstrap, "--topic", TOPIC, "--seed", str(seed),
                                    "--count", "3000", "--json"], env={k: str(v) for k, v in security.items()})
    summary = json.loads(r.stdout)
    assert summary["records"] == 3000 and summary.get("delivery_failures", 0) == 0, summary
    conf = s.security_conf(security)
    # a new group starts at the earliest offset: it counts every record of the topic (other tests' too)
    want = sum(s.watermarks(broker.bootstrap, TOPIC, conf=conf).values())
    assert want >= summary["records"]
    s.wait_until(f"{name}: every record counted", lambda: int(exp.scrape().get(RECEIVED)) >= want or None, timeout=120)
    time.sleep(1)
    e = exp.scrape()
    assert int(e.get(RECEIVED)) == want
    assert e.get("dashstream_quality_monitor_queries_total") >= summary["quality_events"] > 0
    assert exp.stop() == 0
    high = s.watermarks(broker.bootstrap, TOPIC, conf=conf)
    assert sum(high.values()) == want
    assert s.committed(broker.bootstrap, group, TOPIC, conf=conf) == high
    s.log(f"{name}: counted {summary['records']} records produced through {broker.bootstrap}")


def refused(pm, tools, workdir, broker: Secured, name: str, security: dict, clear_error: str) -> str:
    """The exporter starts, stays up and healthy, is never ready, and logs `clear_error` (a regex)."""
    exp = start_exporter(pm, tools, workdir, broker, name, f"e2e-sec-{name}", security)
    s.wait_until(f"{name}: the refusal in the log", lambda: re.search(clear_error, exp.proc.log_text()) or
                 "not yet", timeout=30)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 4:
        assert exp.proc.alive(), exp.proc.log_text()[-3000:]
        assert exp.get("/-/healthy").status_code == 200
        assert exp.get("/-/ready").status_code == 503
        assert exp.scrape().get("dashstream_exporter_ready") == 0
        time.sleep(0.25)
    e = exp.scrape()
    assert e.get(RECEIVED) == 0
    assert e.get("dashstream_exporter_kafka_consumer_errors_total") > 0
    assert exp.stop() == 0
    text = exp.proc.log_text()
    assert "panicked" not in text
    line = next(ln for ln in text.splitlines() if re.search(clear_error, ln))
    s.log(f"{name}: refused as expected; the log says: {line.strip()[:300]}")
    return text


# ----------------------------------------------------------------------------------------------------------- TLS


def test_ssl_with_ca_verification(pm, tools, workdir, pki, tls_broker):
    counts_events_through(pm, tools, workdir, tls_broker, "ssl", {"KAFKA_SECURITY_PROTOCOL": "ssl", **ssl_env(pki)},
                          seed=71)


def test_ssl_broker_signed_by_another_ca_is_refused(pm, tools, workdir, pki, tls_broker):
    refused(pm, tools, workdir, tls_broker, "ssl-wrong-ca",
            {"KAFKA_SECURITY_PROTOCOL": "ssl", **ssl_env(pki, ca=pki.other_ca)},
            # librdkafka reports it as "SSL handshake failed: ... certificate verify failed" or, when the
            # failure surfaces on the socket read, as "ssl/statem/statem_clnt.c:...:certificate verify failed"
            r"certificate verify failed")


def test_ssl_with_client_certificate_mtls(pm, tools, workdir, pki, mtls_broker):
    counts_events_through(pm, tools, workdir, mtls_broker, "mtls",
                          {"KAFKA_SECURITY_PROTOCOL": "ssl", **ssl_env(pki, client_cert=True)}, seed=72)


def test_mtls_without_client_certificate_is_refused(pm, tools, workdir, pki, mtls_broker):
    refused(pm, tools, workdir, mtls_broker, "mtls-no-cert", {"KAFKA_SECURITY_PROTOCOL": "ssl", **ssl_env(pki)},
            r"(?i)ssl.*(alert|certificate required|handshake failed)")
    log = mtls_broker.stunnel.proc.log_text()
    assert re.search(r"(?i)peer did not return a certificate|certificate required", log), log[-2000:]


# ----------------------------------------------------------------------------------------------------------- SASL


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_plaintext_scram(pm, tools, workdir, sasl_broker, mechanism):
    counts_events_through(pm, tools, workdir, sasl_broker, f"sasl-{mechanism.lower()}",
                          {"KAFKA_SECURITY_PROTOCOL": "sasl_plaintext", **sasl_env(mechanism)},
                          seed=73 if mechanism.endswith("256") else 74)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_scram_over_tls(pm, tools, workdir, pki, sasl_ssl_broker, mechanism):
    counts_events_through(pm, tools, workdir, sasl_ssl_broker, f"sasl-ssl-{mechanism.lower()}",
                          {"KAFKA_SECURITY_PROTOCOL": "sasl_ssl", **sasl_env(mechanism), **ssl_env(pki)},
                          seed=76 if mechanism.endswith("256") else 75)


def test_sasl_wrong_password_is_refused(pm, tools, workdir, sasl_broker):
    refused(pm, tools, workdir, sasl_broker, "sasl-wrong-password",
            {"KAFKA_SECURITY_PROTOCOL": "sasl_plaintext", **sasl_env("SCRAM-SHA-256", WRONG_PASSWORD)},
            r"(?i)SASL.*authentication.*fail|Authentication failed")


def test_sasl_ssl_wrong_password_is_refused(pm, tools, workdir, pki, sasl_ssl_broker):
    refused(pm, tools, workdir, sasl_ssl_broker, "sasl-ssl-wrong-password",
            {"KAFKA_SECURITY_PROTOCOL": "sasl_ssl", **sasl_env("SCRAM-SHA-512", WRONG_PASSWORD), **ssl_env(pki)},
            r"(?i)SASL.*authentication.*fail|Authentication failed")


# ----------------------------------------------------------------------------------------------------------- secrets


def test_no_secret_in_logs_or_check_config(tools, pki):
    """Every exporter of this module ran with RUST_LOG=debug; none of their logs holds a password, and
    check-config shows the secret properties masked."""
    assert len(_EXPORTERS) >= 5, "run the whole module: this test reads the logs of the others"
    for exp in _EXPORTERS:
        text = exp.proc.log_text()
        assert text, exp.name
        for secret in (SASL_PASSWORD, WRONG_PASSWORD, KEY_PASSWORD):
            assert secret not in text, f"a secret appears in the log of exporter {exp.name}"
    env = {"KAFKA_BROKERS": "127.0.0.1:9", "KAFKA_SECURITY_PROTOCOL": "sasl_ssl", **sasl_env("SCRAM-SHA-512"),
           **ssl_env(pki, client_cert=True), "RUST_LOG": "debug"}
    r = subprocess.run([str(tools.exporter), "check-config"], env={**os.environ, **env}, capture_output=True,
                       text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    for secret in (SASL_PASSWORD, KEY_PASSWORD):
        assert secret not in out, "a secret appears in check-config output"
    assert "sasl.password=***" in out and "ssl.key.password=***" in out, out
    assert f"sasl.username={USER}" in out, out
