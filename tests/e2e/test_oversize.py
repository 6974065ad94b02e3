"""A record over the payload limit through a real broker (issue 7, item 2).

`tests/it/bad_input.rs` checks the 11 MiB record against the default 10 MiB limit in process, because neither broker
here can carry it to a consumer: librdkafka's mock cluster keeps only ~5 MiB per partition, and tansu 0.6.0 never
returns a record batch larger than the consumer's fetch.max.bytes (the exporter sets 2 MiB), where Kafka returns
the first batch whatever its size (KIP-74); checked with confluent-kafka, 8 and 11 MiB records never came back
even with 16/32 MiB fetch sizes. So here the limit is scaled down: the exporter runs with
DASHSTREAM_MAX_PAYLOAD_BYTES=1 MiB and a producer (confluent-kafka) writes one 1.5 MiB framed record, then the
generator's traffic. The record is larger than max.partition.fetch.bytes (128 KiB), so the exporter must fetch
past it, count it once as `payload_too_large`, and count every record after it exactly."""

from __future__ import annotations

import pytest

import support as s

LIMIT = 1024 * 1024
BIG = 3 * 512 * 1024


def test_a_record_over_the_limit_is_counted_as_too_large_and_everything_after_it_counts(tools, pm, workdir):
    confluent_kafka = pytest.importorskip("confluent_kafka")
    topic, group = "bad-oversize", "e2e-bad-oversize"
    broker = s.Tansu(pm, tools.tansu, workdir / "oversize" / "tansu")
    broker.start()
    broker.create_topic(topic)

    errors = []
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap, "broker.address.family": "v4",
                                         "message.max.bytes": 32 * 1024 * 1024, "compression.type": "none"})
    # 0x00 frame byte, then 1.5 MiB: refused on its size before any protobuf is read.
    producer.produce(topic, value=b"\x00" + b"\x0a" * BIG, partition=0,
                     on_delivery=lambda err, _msg: errors.append(err) if err else None)
    assert producer.flush(60) == 0 and not errors, errors
    # No bad records of the generator's own: the big one is the first rejection, which is always logged.
    summary = s.produce(tools.exporter, broker.bootstrap, topic, seed=81, count=3000, bad_ratio=0)

    exp = s.Exporter(pm, tools.exporter, "oversize", workdir / "oversize",
                     s.exporter_env(broker.bootstrap, topic, group, DASHSTREAM_MAX_PAYLOAD_BYTES=LIMIT))
    exp.start()
    exp.wait_ready(timeout=60)
    want = summary["records"] + 1
    s.wait_until("every record, the big one too, to be counted",
                 lambda: int(exp.scrape().get("dashstream_exporter_messages_received_total")) >= want or None,
                 timeout=120)
    e = exp.scrape()
    expected = s.expected_counters(summary)
    expected[("dashstream_exporter_messages_received_total",)] += 1
    expected[("dashstream_exporter_messages_failed_total", "error_type", "payload_too_large")] += 1
    got = {k: e.total(k[0], **({k[1]: k[2]} if len(k) == 3 else {})) for k in expected}
    wrong = [f"{k}: want {v}, got {got[k]}" for k, v in expected.items() if got[k] != v]
    assert not wrong, "\n".join(wrong)
    log_text = exp.proc.log_text()
    assert f"({BIG + 1} bytes) rejected: payload size {BIG + 1} bytes exceeds maximum {LIMIT} bytes " \
        "[payload_too_large]" in log_text, log_text[-3000:]
    assert exp.stop() == 0
