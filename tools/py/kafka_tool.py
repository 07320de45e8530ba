#!/usr/bin/env python3
"""The verifying Kafka client of outpost's tests: librdkafka through confluent-kafka.

Run with the project venv's Python (`make venv`; tests/support/kafka.rs runs it as
$OUTPOST_PYTHON). Subcommands:

  create-topic --bootstrap B --topic T --partitions N [--compacted]
      AdminClient CreateTopics, then waits until every partition has a leader.
  consume --bootstrap B --topic T [--read-committed] [--timeout S]
      Reads every partition from the beginning to the end offset taken at start (the high
      watermark, or the last stable offset under read_committed), then exits. Prints one
      `R` line per record and `END <count>`. Fails (exit 1) if the end is not reached in S s.
  produce --bootstrap B --topic T [--txn commit|abort|none] [--transactional-id ID]
      Reads `P` lines from stdin and produces them (all in one transaction unless
      --txn none; idempotent either way), then commits or aborts. Prints one `R` line per
      delivered record (with its offset) and `END <count>`.
  brokers --bootstrap B
      Prints `B <node_id> <host> <port>` for each broker the Metadata response advertises
      (to check that a client bootstrapping through the proxy is sent back to the proxy).
  warm --bootstrap B [--transactional-id ID]
      InitProducerId plus an empty committed transaction: makes the broker create
      __transaction_state so the first real InitProducerId does not meet
      COORDINATOR_NOT_AVAILABLE.

Line format (fields separated by one space; bytes are hex with an `x` prefix, `-` is null,
`x` alone is an empty byte string):

  R <partition> <offset> <timestamp_ms> <key> <value> <n_headers> {<name> <value>}*
  P <partition|-1> <timestamp_ms|-1> <key> <value> <n_headers> {<name> <value>}*

Header names are hex too. Any failure prints `ERROR <text>` on stderr and exits non-zero.
"""

import argparse
import sys
import time

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic


def fail(msg):
    sys.stderr.write("ERROR %s\n" % msg)
    sys.stderr.flush()
    sys.exit(1)


def enc(b):
    if b is None:
        return "-"
    if isinstance(b, str):
        b = b.encode()
    return "x" + b.hex()


def dec(s):
    if s == "-":
        return None
    if not s.startswith("x"):
        raise ValueError("bad bytes field %r" % s)
    return bytes.fromhex(s[1:])


def record_line(partition, offset, ts, key, value, headers):
    parts = ["R", str(partition), str(offset), str(ts), enc(key), enc(value), str(len(headers))]
    for name, val in headers:
        parts.append(enc(name))
        parts.append(enc(val))
    return " ".join(parts)


def parse_p_line(line):
    f = line.split()
    if not f or f[0] != "P":
        raise ValueError("expected a P line, got %r" % line)
    partition, ts = int(f[1]), int(f[2])
    key, value, n = dec(f[3]), dec(f[4]), int(f[5])
    if len(f) != 6 + 2 * n:
        raise ValueError("wrong field count in %r" % line)
    headers = [(dec(f[6 + 2 * i]).decode(), dec(f[7 + 2 * i])) for i in range(n)]
    return partition, ts, key, value, headers


def topic_metadata(client, topic, timeout):
    md = client.list_topics(topic=topic, timeout=timeout)
    t = md.topics.get(topic)
    if t is None:
        return None
    if t.error is not None:
        if t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return None
        raise KafkaException(t.error)
    return t


def cmd_create_topic(a):
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    cfg = {"cleanup.policy": "compact"} if a.compacted else {}
    fut = admin.create_topics(
        [NewTopic(a.topic, num_partitions=a.partitions, replication_factor=1, config=cfg)],
        request_timeout=a.timeout,
    )
    try:
        fut[a.topic].result(timeout=a.timeout)
    except KafkaException as e:
        fail("create topic %s: %s" % (a.topic, e))
    deadline = time.monotonic() + a.timeout
    while True:
        t = topic_metadata(admin, a.topic, 5)
        if t is not None and len(t.partitions) == a.partitions and all(
            p.leader >= 0 and p.error is None for p in t.partitions.values()
        ):
            break
        if time.monotonic() > deadline:
            fail("topic %s has no leader for every partition after %s s" % (a.topic, a.timeout))
        time.sleep(0.05)
    print("OK %s %d" % (a.topic, a.partitions))


def cmd_consume(a):
    c = Consumer(
        {
            "bootstrap.servers": a.bootstrap,
            # Required by librdkafka even without subscribe(); nothing is committed.
            "group.id": "outpost-verify",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed" if a.read_committed else "read_uncommitted",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        t = topic_metadata(c, a.topic, a.timeout)
        if t is None:
            fail("topic %s does not exist" % a.topic)
        parts = sorted(t.partitions)
        # The end of each partition, now: the high watermark, or under read_committed the
        # last stable offset (librdkafka asks ListOffsets with the consumer's isolation level).
        ends = {}
        for p in parts:
            lo, hi = c.get_watermark_offsets(TopicPartition(a.topic, p), timeout=a.timeout)
            ends[p] = (lo, hi)
        pending = {p for p in parts if ends[p][1] > ends[p][0]}
        out = []
        if pending:
            c.assign([TopicPartition(a.topic, p, ends[p][0]) for p in sorted(pending)])
        deadline = time.monotonic() + a.timeout
        while pending:
            if time.monotonic() > deadline:
                pos = c.position([TopicPartition(a.topic, p) for p in sorted(pending)])
                fail(
                    "consume %s: end not reached in %s s; partitions left (position/end): %s"
                    % (
                        a.topic,
                        a.timeout,
                        ", ".join("%d: %d/%d" % (tp.partition, tp.offset, ends[tp.partition][1]) for tp in pos),
                    )
                )
            m = c.poll(0.2)
            if m is None:
                # Control records and aborted batches are skipped without a message: the
                # position still moves past them.
                pos = c.position([TopicPartition(a.topic, p) for p in sorted(pending)])
                for tp in pos:
                    if tp.offset >= 0 and tp.offset >= ends[tp.partition][1]:
                        pending.discard(tp.partition)
                continue
            p = m.partition()
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if m.offset() >= ends[p][1]:
                        pending.discard(p)
                    continue
                fail("consume %s: %s" % (a.topic, m.error()))
            if m.offset() >= ends[p][1]:
                # Past the end taken at start: not part of this snapshot.
                continue
            _, ts = m.timestamp()
            out.append(record_line(p, m.offset(), ts, m.key(), m.value(), m.headers() or []))
            if m.offset() + 1 >= ends[p][1]:
                pending.discard(p)
        sys.stdout.write("".join(line + "\n" for line in out))
        print("END %d" % len(out))
    finally:
        c.close()


def cmd_produce(a):
    lines = [ln for ln in sys.stdin.read().splitlines() if ln.strip()]
    try:
        recs = [parse_p_line(ln) for ln in lines]
    except (ValueError, IndexError) as e:
        fail("bad input: %s" % e)
    conf = {
        "bootstrap.servers": a.bootstrap,
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.timeout.ms": int(a.timeout * 1000),
    }
    if a.txn != "none":
        conf["transactional.id"] = a.transactional_id or "outpost-verify-%d" % time.time_ns()
        conf["transaction.timeout.ms"] = max(60000, int(a.timeout * 1000))
    p = Producer(conf)
    delivered = [None] * len(recs)
    errors = []

    def on_delivery(i, err, m):
        if err is not None:
            errors.append(str(err))
        else:
            # Key, value and headers as sent (delivery reports do not carry headers); the
            # partition, offset and timestamp as the broker stored them.
            _, ts, key, value, headers = recs[i]
            _, ts = m.timestamp()
            delivered[i] = record_line(m.partition(), m.offset(), ts, key, value, headers)

    try:
        if a.txn != "none":
            p.init_transactions(a.timeout)
            p.begin_transaction()
        for i, (partition, ts, key, value, headers) in enumerate(recs):
            kw = {"on_delivery": lambda err, m, i=i: on_delivery(i, err, m)}
            if partition >= 0:
                kw["partition"] = partition
            if ts >= 0:
                kw["timestamp"] = ts
            if headers:
                kw["headers"] = headers
            p.produce(a.topic, value=value, key=key, **kw)
            p.poll(0)
        if a.txn == "commit":
            p.commit_transaction(a.timeout)
        elif a.txn == "abort":
            p.flush(a.timeout)
            p.abort_transaction(a.timeout)
        else:
            left = p.flush(a.timeout)
            if left:
                fail("produce: %d records not delivered in %s s" % (left, a.timeout))
    except KafkaException as e:
        fail("produce: %s" % e)
    if errors:
        fail("produce: %d delivery errors, first: %s" % (len(errors), errors[0]))
    if a.txn == "abort":
        # Aborted records may have no delivery report at all; print what was reported.
        delivered = [d for d in delivered if d is not None]
    elif any(d is None for d in delivered):
        fail("produce: %d records without a delivery report" % sum(d is None for d in delivered))
    sys.stdout.write("".join(line + "\n" for line in delivered))
    print("END %d" % len(delivered))


def cmd_brokers(a):
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    md = admin.list_topics(timeout=a.timeout)
    for b in sorted(md.brokers.values(), key=lambda b: b.id):
        print("B %d %s %d" % (b.id, b.host, b.port))
    print("END %d" % len(md.brokers))


def cmd_warm(a):
    p = Producer(
        {
            "bootstrap.servers": a.bootstrap,
            "transactional.id": a.transactional_id or "outpost-warm",
        }
    )
    try:
        p.init_transactions(a.timeout)
        p.begin_transaction()
        p.commit_transaction(a.timeout)
    except KafkaException as e:
        fail("warm: %s" % e)
    print("OK warm")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--bootstrap", required=True)
        sp.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")

    sp = sub.add_parser("create-topic")
    common(sp)
    sp.add_argument("--topic", required=True)
    sp.add_argument("--partitions", type=int, default=1)
    sp.add_argument("--compacted", action="store_true")
    sp.set_defaults(fn=cmd_create_topic)

    sp = sub.add_parser("consume")
    common(sp)
    sp.add_argument("--topic", required=True)
    sp.add_argument("--read-committed", action="store_true")
    sp.set_defaults(fn=cmd_consume)

    sp = sub.add_parser("produce")
    common(sp)
    sp.add_argument("--topic", required=True)
    sp.add_argument("--txn", choices=["commit", "abort", "none"], default="commit")
    sp.add_argument("--transactional-id")
    sp.set_defaults(fn=cmd_produce)

    sp = sub.add_parser("brokers")
    common(sp)
    sp.set_defaults(fn=cmd_brokers)

    sp = sub.add_parser("warm")
    common(sp)
    sp.add_argument("--transactional-id")
    sp.set_defaults(fn=cmd_warm)

    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
