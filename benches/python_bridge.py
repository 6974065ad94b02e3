#!/usr/bin/env python3
"""The baseline an operator would otherwise write: a plain Kafka -> Prometheus bridge in Python.

confluent-kafka (librdkafka) + prometheus_client + protobuf classes generated from proto/dashstream.proto
(by grpcio-tools' protoc; the harness puts them on PYTHONPATH). The loop is the straightforward one: poll one
record, strip the 0x00 frame, parse the protobuf, update a Counter/Gauge/Histogram per value (labelled by
model, category and retry status like the exporter's main families), store the record's offset (librdkafka
auto-commits it), repeat. It serves /metrics on --metrics-port like a real bridge would (nobody scrapes it
during the benchmark).

Run by benches/e2e as:
    python_bridge.py --brokers B --topic T --group G --n N [--metrics-port P] [--timeout S]
It stops after N records and prints one JSON line: {"events": counted quality events, "records": N,
"seconds": first counted event -> last, "events_per_second": ..., "peak_rss_kib": VmHWM}.
"""

import argparse
import json
import sys
import time

from confluent_kafka import Consumer
from prometheus_client import Counter, Gauge, Histogram, start_http_server

import dashstream_pb2  # generated from proto/dashstream.proto

LATENCY_BUCKETS = [10, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 15000, 20000, 30000]
RETRY_BUCKETS = [0, 1, 2, 3, 5, 10]
SCORE_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]

QUERIES = Counter("dashstream_quality_monitor_queries", "Total queries processed")
PASSED = Counter("dashstream_quality_monitor_queries_passed", "Queries that passed quality threshold")
FAILED = Counter("dashstream_quality_monitor_queries_failed", "Queries that failed quality threshold", ["category"])
SCORE = Gauge("dashstream_quality_monitor_quality_score", "Current quality score (0.0-1.0)")
ACCURACY = Gauge("dashstream_quality_accuracy", "Quality accuracy score (0.0-1.0)")
RELEVANCE = Gauge("dashstream_quality_relevance", "Quality relevance score (0.0-1.0)")
COMPLETENESS = Gauge("dashstream_quality_completeness", "Quality completeness score (0.0-1.0)")
LATENCY = Histogram("dashstream_query_latency_ms", "Query latency in milliseconds", buckets=LATENCY_BUCKETS)
RETRIES = Histogram("dashstream_quality_retry_count", "Retry count", ["status"], buckets=RETRY_BUCKETS)
BY_MODEL = Counter("dashstream_queries_by_model", "Total queries by model", ["model"])
SCORE_BY_MODEL = Histogram(
    "dashstream_quality_score_by_model", "Quality score by model", ["model"], buckets=SCORE_BUCKETS
)
LATENCY_BY_MODEL = Histogram(
    "dashstream_latency_by_model_ms", "Latency by model in milliseconds", ["model"], buckets=LATENCY_BUCKETS
)
ERRORS = Counter("dashstream_exporter_messages_failed", "Records that could not be decoded", ["error_type"])


def number(v):
    kind = v.WhichOneof("value")
    if kind == "float_value":
        return v.float_value
    if kind == "int_value":
        return v.int_value
    if kind == "bool_value":
        return float(v.bool_value)
    return None


def handle(payload):
    """Applies one record; returns True when it was a quality event."""
    if not payload:
        ERRORS.labels("empty").inc()
        return False
    body = payload[1:] if payload[0] == 0 else payload
    msg = dashstream_pb2.DashStreamMessage()
    try:
        msg.ParseFromString(body)
    except Exception:  # noqa: BLE001 - what a user writes
        ERRORS.labels("decode").inc()
        return False
    if msg.WhichOneof("message") != "metrics" or msg.metrics.scope != "quality":
        return False
    m = msg.metrics
    values = {k: number(v) for k, v in m.metrics.items()}
    tags = m.tags
    QUERIES.inc()
    passed = bool(values.get("passed"))
    if passed:
        PASSED.inc()
    else:
        FAILED.labels(tags.get("category", "Unknown")).inc()
    score = values.get("quality_score")
    if score is not None:
        SCORE.set(score)
    for key, gauge in (("accuracy", ACCURACY), ("relevance", RELEVANCE), ("completeness", COMPLETENESS)):
        if values.get(key) is not None:
            gauge.set(values[key])
    latency = values.get("latency_ms")
    if latency is not None:
        LATENCY.observe(latency)
    retries = values.get("retry_count")
    if retries is not None:
        RETRIES.labels("passed" if passed else "failed").observe(retries)
    model = tags.get("model")
    if model:
        BY_MODEL.labels(model).inc()
        if score is not None:
            SCORE_BY_MODEL.labels(model).observe(score)
        if latency is not None:
            LATENCY_BY_MODEL.labels(model).observe(latency)
    return True


def peak_rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--n", type=int, required=True, help="records to consume before stopping")
    ap.add_argument("--metrics-port", type=int, default=0, help="serve /metrics here (0: an ephemeral port)")
    ap.add_argument("--timeout", type=float, default=600, help="give up after this many seconds")
    a = ap.parse_args()

    start_http_server(a.metrics_port, addr="127.0.0.1")
    consumer = Consumer(
        {
            "bootstrap.servers": a.brokers,
            "group.id": a.group,
            "auto.offset.reset": "earliest",
            "enable.auto.offset.store": False,
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([a.topic])
    deadline = time.monotonic() + a.timeout
    records = events = 0
    first = last = None
    try:
        while records < a.n:
            if time.monotonic() > deadline:
                print(f"python_bridge: timed out after {records} of {a.n} records", file=sys.stderr)
                return 1
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                print(f"python_bridge: {msg.error()}", file=sys.stderr)
                continue
            if handle(msg.value()):
                events += 1
                last = time.time()
                if first is None:
                    first = last
            consumer.store_offsets(message=msg)
            records += 1
    finally:
        consumer.close()
    seconds = (last - first) if first is not None and last > first else float("nan")
    print(
        json.dumps(
            {
                "records": records,
                "events": events,
                "seconds": seconds,
                "events_per_second": events / seconds if seconds == seconds else 0,
                "peak_rss_kib": peak_rss_kib(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
